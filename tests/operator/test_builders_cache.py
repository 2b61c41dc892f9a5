"""The converted-model cache in the rendered pod: converter flags, volumes, GPU product."""

from __future__ import annotations

from typing import Any

import pytest

from trtserve_operator.api.v1alpha1 import TRTModelSpec
from trtserve_operator.services.builders import build_children
from trtserve_operator.services.builders.cache import CACHE_SECRET_DIR, CACHE_SIGNING_DIR
from trtserve_operator.services.builders.target import Target
from trtserve_operator.services.report import parse_termination_message
from trtserve_operator.settings import Settings

CACHED = Settings(
    converter_image="conv:1",
    cache_uri="s3://models-cache/trtserve",
    cache_secret_name="cache-credentials",
    cache_signing_secret_name="cache-signing",
    cache_signing_secret_key="hmac",
)
PLAIN = Settings(converter_image="conv:1")


def target(**spec: Any) -> Target:
    spec.setdefault("source", {"uri": "s3://bucket/model"})
    spec.setdefault("serving", {})
    return Target("m", "team-a", TRTModelSpec.model_validate(spec), uid="u", generation=1)


def pod(t: Target, settings: Settings) -> dict[str, Any]:
    spec: dict[str, Any] = build_children(t, settings).deployment["spec"]["template"]["spec"]
    return spec


def convert(pod_spec: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod_spec["initContainers"]
    return container  # type: ignore[no-any-return]


def cache_flags(pod_spec: dict[str, Any]) -> list[str]:
    return [arg for arg in convert(pod_spec)["args"] if arg.startswith(("--cache-", "--no-cache-"))]


def test_without_a_cache_nothing_is_rendered() -> None:
    spec = pod(target(), PLAIN)
    assert cache_flags(spec) == []
    assert not [v for v in spec["volumes"] if v["name"].startswith("cache")]


def test_the_operator_cache_renders_flags_and_separate_read_only_secret_volumes() -> None:
    spec = pod(target(source={"uri": "s3://b/m", "secretRef": {"name": "src"}}), CACHED)
    assert cache_flags(spec) == [
        "--cache-uri=s3://models-cache/trtserve",
        "--cache-namespace=team-a",
        f"--cache-credentials-dir={CACHE_SECRET_DIR}",
        f"--cache-signing-key-file={CACHE_SIGNING_DIR}/key",
    ]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["cache-credentials"]["secret"] == {
        "secretName": "cache-credentials",
        "defaultMode": 0o440,
    }
    assert volumes["cache-signing"]["secret"]["items"] == [{"key": "hmac", "path": "key"}]
    mounts = {m["mountPath"]: m for m in convert(spec)["volumeMounts"]}
    assert mounts[CACHE_SECRET_DIR] == {
        "name": "cache-credentials",
        "mountPath": CACHE_SECRET_DIR,
        "readOnly": True,
    }
    assert mounts[CACHE_SIGNING_DIR]["readOnly"] is True
    # the cache's credentials are files only: the environment belongs to the source
    assert convert(spec)["envFrom"] == [{"secretRef": {"name": "src"}}]
    serving = spec["containers"][0]
    assert not [m for m in serving["volumeMounts"] if "cache" in m["name"]]


def test_spec_cache_overrides_and_disables() -> None:
    spec = pod(
        target(cache={"uri": "gs://team-cache/x", "secretRef": {"name": "mine"}, "readOnly": True}),
        CACHED,
    )
    assert cache_flags(spec)[:1] == ["--cache-uri=gs://team-cache/x"]
    assert "--no-cache-publish" in cache_flags(spec)
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["cache-credentials"]["secret"]["secretName"] == "mine"
    assert cache_flags(pod(target(cache={"enabled": False}), CACHED)) == []
    own = pod(target(cache={"uri": "s3://own/c"}), PLAIN)
    assert cache_flags(own) == ["--cache-uri=s3://own/c", "--cache-namespace=team-a"]
    assert cache_flags(pod(target(cache={"enabled": True}), PLAIN)) == []  # no URI anywhere


@pytest.mark.parametrize("read_only", [False, True])
def test_a_pvc_cache_is_mounted(read_only: bool) -> None:
    spec = pod(target(cache={"uri": "pvc://model-cache/trt", "readOnly": read_only}), PLAIN)
    assert cache_flags(spec)[0] == "--cache-uri=/mnt/cache/trt"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["cache-pvc"]["persistentVolumeClaim"] == {
        "claimName": "model-cache",
        "readOnly": read_only,
    }
    mounts = {m["name"]: m for m in convert(spec)["volumeMounts"]}
    assert mounts["cache-pvc"]["mountPath"] == "/mnt/cache"
    assert mounts["cache-pvc"].get("readOnly", False) is read_only


def test_gpu_product_selects_one_gpu_type() -> None:
    spec = pod(
        target(serving={"gpuProduct": "NVIDIA-A100-SXM4-80GB", "nodeSelector": {"pool": "a"}}),
        PLAIN,
    )
    assert spec["nodeSelector"] == {"pool": "a", "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert "nodeSelector" not in pod(target(), PLAIN)


def test_a_cache_change_rolls_the_pods() -> None:
    before = build_children(target(), PLAIN).deployment
    after = build_children(target(), CACHED).deployment
    annotations = [d["spec"]["template"]["metadata"]["annotations"] for d in (before, after)]
    assert annotations[0] != annotations[1]


def test_the_reports_cache_object_becomes_status_conversion_cache() -> None:
    report = (
        '{"v":1,"result":"Succeeded","reason":"Succeeded","exitCode":0,"message":"served",'
        '"cache":{"result":"Hit","key":"' + "a" * 64 + '","lookup":0.2,"download":3.1,'
        '"verify":0.4,"check":1.5}}'
    )
    status = parse_termination_message(report, 0)
    assert status.cache is not None
    assert (status.cache.result, status.cache.key, status.cache.seconds) == ("Hit", "a" * 64, 5.2)
    assert parse_termination_message(report.replace(',"cache"', ',"x"'), 0).cache is None


def test_the_operator_cache_uri_is_checked_at_start() -> None:
    with pytest.raises(ValueError, match="cache uri scheme"):
        Settings(cache_uri="https://host/cache")
    assert Settings(cache_uri="").cache_uri is None
