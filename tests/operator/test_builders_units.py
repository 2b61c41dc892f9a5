"""Builder details the goldens do not make obvious: args, pvc mounts, images, hashes."""

from __future__ import annotations

from typing import Any

import pytest

from trtserve_operator.api.v1alpha1 import TRTModelSpec
from trtserve_operator.services.builders import build_children
from trtserve_operator.services.builders.converter_args import build_converter_args
from trtserve_operator.services.builders.images import unsupported_serving_image
from trtserve_operator.services.builders.names import HASH_ANNOTATION
from trtserve_operator.services.builders.target import Target
from trtserve_operator.settings import Settings

SETTINGS = Settings(converter_image="conv:1", serving_image="tensorflow/serving:2.17.1-gpu")


def target(**spec: Any) -> Target:
    spec.setdefault("source", {"uri": "s3://bucket/model"})
    return Target("m", "ns", TRTModelSpec.model_validate(spec), uid="u", generation=1)


def pod_spec(t: Target) -> dict[str, Any]:
    spec: dict[str, Any] = build_children(t, SETTINGS).deployment["spec"]["template"]["spec"]
    return spec


def test_converter_args_render_every_conversion_setting() -> None:
    args = build_converter_args(
        target(
            source={"uri": "gs://b/m", "version": 7, "signatureKey": "predict"},
            modelName="resnet",
            conversion={
                "precision": "INT8",
                "buildShapes": [{"a": [1, 224, 224, 3], "b": [1, 10]}, {"a": [8, 224, 224, 3]}],
                "calibration": {"uri": "s3://b/cal.npz", "batches": 4, "batchSize": 2},
                "accuracy": {"enabled": False, "minTop1Agreement": 0.9},
                "dynamicShapes": False,
                "profileStrategy": "Range+Optimal",
                "timeoutSeconds": 600,
            },
        )
    )
    assert args[:4] == [
        "--source=gs://b/m",
        "--output-base=/models",
        "--model-name=resnet",
        "--signature-key=predict",
    ]
    for expected in (
        "--source-version=7",
        "--model-version=7",
        "--precision=INT8",
        "--no-dynamic-shapes",
        "--profile-strategy=Range+Optimal",
        "--build-shape=a=1x224x224x3,b=1x10",
        "--build-shape=a=8x224x224x3",
        "--calibration-source=s3://b/cal.npz",
        "--calibration-batches=4",
        "--calibration-batch-size=2",
        "--no-accuracy-check",
        "--accuracy-min-top1=0.9",
        "--timeout-seconds=600",
    ):
        assert expected in args


def test_pvc_source_is_mounted_read_only_and_passed_as_a_path() -> None:
    spec = pod_spec(target(source={"uri": "pvc://models-claim/zoo/resnet"}))
    init = spec["initContainers"][0]
    assert "--source=/mnt/source/zoo/resnet" in init["args"]
    assert {"name": "source-pvc", "mountPath": "/mnt/source", "readOnly": True} in init[
        "volumeMounts"
    ]
    assert {
        "name": "source-pvc",
        "persistentVolumeClaim": {"claimName": "models-claim", "readOnly": True},
    } in spec["volumes"]


def test_secret_ref_is_env_and_a_read_only_mount_for_the_converter_only() -> None:
    spec = pod_spec(target(source={"uri": "s3://b/m", "secretRef": {"name": "creds"}}))
    init, serving = spec["initContainers"][0], spec["containers"][0]
    assert init["envFrom"] == [{"secretRef": {"name": "creds"}}]
    assert {
        "name": "source-credentials",
        "mountPath": "/var/run/secrets/trtserve/source",
        "readOnly": True,
    } in init["volumeMounts"]
    assert "envFrom" not in serving
    # Required through envFrom (no "optional"), optional as a volume: a missing Secret is
    # the kubelet's `CreateContainerConfigError: secret "creds" not found` in the pod's
    # status, the model's ContainerConfigError, not PodInitializing forever (issue 19).
    assert "optional" not in init["envFrom"][0]["secretRef"]
    assert {
        "name": "source-credentials",
        "secret": {"secretName": "creds", "optional": True},
    } in spec["volumes"]


def test_gpu_request_is_the_same_for_converter_and_serving() -> None:
    spec = pod_spec(target(serving={"gpus": 2, "resources": {"limits": {"memory": "8Gi"}}}))
    for container in (spec["initContainers"][0], spec["containers"][0]):
        assert container["resources"]["limits"] == {"memory": "8Gi", "nvidia.com/gpu": "2"}


def test_batching_flags_and_mount_only_when_enabled() -> None:
    off = pod_spec(target())["containers"][0]
    on_spec = pod_spec(target(serving={"batching": {"enabled": True}}))
    on = on_spec["containers"][0]
    assert not any(a.startswith("--enable_batching") for a in off["args"])
    assert "--enable_batching=true" in on["args"]
    assert "--batching_parameters_file=/etc/trtserve/batching/batching.config" in on["args"]
    assert {"name": "batching-config", "configMap": {"name": "m-batching"}} in on_spec["volumes"]


def test_serving_probes_never_kill_a_loading_model() -> None:
    serving = pod_spec(target())["containers"][0]
    assert serving["readinessProbe"]["httpGet"] == {"path": "/v1/models/m", "port": "http"}
    startup = serving["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 3600
    assert "tcpSocket" in serving["livenessProbe"]


def test_template_hash_changes_exactly_when_the_rendering_changes() -> None:
    def hash_of(t: Target) -> str:
        deployment = build_children(t, SETTINGS).deployment
        return str(deployment["spec"]["template"]["metadata"]["annotations"][HASH_ANNOTATION])

    base = hash_of(target())
    assert hash_of(target()) == base
    assert hash_of(target(serving={"replicas": 5})) == base  # scaling is not a rollout
    assert hash_of(target(conversion={"precision": "FP32"})) != base
    batching = target(serving={"batching": {"enabled": True}})
    bigger = target(serving={"batching": {"enabled": True, "maxBatchSize": 64}})
    assert hash_of(batching) != hash_of(bigger)  # a ConfigMap change rolls the pods


def test_spec_images_override_settings() -> None:
    spec = pod_spec(target(converterImage="c:2", serving={"image": "my/serving:2.17.1-gpu"}))
    assert spec["initContainers"][0]["image"] == "c:2"
    assert spec["containers"][0]["image"] == "my/serving:2.17.1-gpu"


@pytest.mark.parametrize(
    ("image", "refused"),
    [
        ("tensorflow/serving:2.17.1-gpu", False),
        ("tensorflow/serving:2.16.1-gpu", False),
        ("registry:5000/tensorflow/serving:2.17.1-gpu", False),
        ("tensorflow/serving@sha256:0123", False),
        ("tensorflow/serving", False),
        ("my/custom-serving:trt", False),
        ("tensorflow/serving:2.18.0-gpu", True),
        ("tensorflow/serving:2.19.1", True),
        ("registry:5000/tensorflow/serving:3.0.0-gpu", True),
        ("tensorflow/serving:latest-gpu", True),
        ("tensorflow/serving:nightly-gpu", True),
    ],
)
def test_serving_images_from_2_18_are_refused(image: str, refused: bool) -> None:
    assert (unsupported_serving_image(image) is not None) is refused


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRTSERVE_NAMESPACES", "a, b,,c")
    monkeypatch.setenv("TRTSERVE_LOG_FORMAT", "json")
    monkeypatch.setenv("TRTSERVE_LOG_LEVEL", "debug")
    monkeypatch.setenv("TRTSERVE_SERVING_IMAGE", "x/serving:2.17.1-gpu")
    settings = Settings()
    assert settings.namespaces == ("a", "b", "c")
    assert settings.log_format == "json"
    assert settings.log_level == "DEBUG"
    assert settings.serving_image == "x/serving:2.17.1-gpu"
    assert settings.health_port == 19080


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NAMESPACES", "SERVING_IMAGE", "LOG_FORMAT"):
        monkeypatch.delenv(f"TRTSERVE_{name}", raising=False)
    settings = Settings()
    assert settings.namespaces == ()
    assert settings.serving_image == "tensorflow/serving:2.17.1-gpu"
    assert settings.log_format == "text"


def test_tolerances_are_rendered_only_when_given() -> None:
    """Unset rtol/atol leave the converter's per-precision defaults in force (docs/api.md)."""
    unset = build_converter_args(
        target(conversion={"precision": "INT8", "calibration": {"synthetic": True}})
    )
    assert not [arg for arg in unset if arg.startswith(("--accuracy-rtol", "--accuracy-atol"))]
    given = build_converter_args(target(conversion={"accuracy": {"rtol": 0.2, "atol": 0.0}}))
    assert "--accuracy-rtol=0.2" in given
    assert "--accuracy-atol=0.0" in given


# --- rollouts, scale-down and drains (issue 16) ----------------------------------------------


def test_a_stopping_pod_drains_then_gets_the_longest_request_before_it_is_killed() -> None:
    spec = pod_spec(target())
    serving = spec["containers"][0]
    assert serving["lifecycle"] == {"preStop": {"exec": {"command": ["sleep", "10"]}}}
    assert spec["terminationGracePeriodSeconds"] == 10 + 30
    tuned = pod_spec(target(serving={"drainSeconds": 25, "requestTimeoutSeconds": 120}))
    assert tuned["containers"][0]["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "25"]
    assert tuned["terminationGracePeriodSeconds"] == 145
    none = pod_spec(target(serving={"drainSeconds": 0}))
    assert "lifecycle" not in none["containers"][0]
    assert none["terminationGracePeriodSeconds"] == 30


@pytest.mark.parametrize(
    ("field", "value"),
    [("drainSeconds", 301), ("drainSeconds", -1), ("requestTimeoutSeconds", 0),
     ("requestTimeoutSeconds", 3601)],
)  # fmt: skip
def test_drain_bounds_name_the_field(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=f"serving.{field}"):
        target(serving={field: value})


def test_replicas_spread_over_nodes_and_zones_by_default_per_revision() -> None:
    spread = pod_spec(target())["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in spread] == [
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    ]
    for constraint in spread:
        assert constraint["maxSkew"] == 1
        assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"  # never blocks scheduling
        assert constraint["labelSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "m"
        assert constraint["matchLabelKeys"] == ["pod-template-hash"]


def test_the_spread_is_overridable_and_can_be_turned_off() -> None:
    mine = [{"maxSkew": 2, "topologyKey": "rack", "whenUnsatisfiable": "DoNotSchedule"}]
    assert (
        pod_spec(target(serving={"topologySpreadConstraints": mine}))["topologySpreadConstraints"]
        == mine
    )
    assert "topologySpreadConstraints" not in pod_spec(
        target(serving={"topologySpreadConstraints": []})
    )
    with pytest.raises(ValueError, match="whenUnsatisfiable"):
        target(serving={"topologySpreadConstraints": [{**mine[0], "whenUnsatisfiable": "Maybe"}]})


def test_the_disruption_budget_covers_every_revision_and_never_blocks_on_unready_pods() -> None:
    children = build_children(target(), SETTINGS)
    budget = children.disruption_budget
    assert budget is not None
    assert children.deployment is not None
    assert budget["kind"] == "PodDisruptionBudget"
    assert budget["spec"]["maxUnavailable"] == 1
    # The Service's selector: old and new revisions alike (no pod-template-hash).
    assert budget["spec"]["selector"]["matchLabels"] == children.service["spec"]["selector"]
    assert budget["spec"]["selector"] == children.deployment["spec"]["selector"]
    # Converting, crash-looping or unscheduled pods never hold up a drain.
    assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert "minAvailable" not in budget["spec"]
    assert budget["metadata"]["ownerReferences"][0]["uid"] == "u"
    # Applied with the Service, before the Deployment; deleted nowhere.
    wanted = [c["kind"] for c in children.wanted(deployment=True)]
    assert wanted == ["Service", "PodDisruptionBudget", "Deployment"]
    assert children.unwanted() == []


def test_the_disruption_budget_is_settable_and_turned_off_is_deleted() -> None:
    half = build_children(target(serving={"disruptionBudget": {"maxUnavailable": "50%"}}), SETTINGS)
    assert half.disruption_budget is not None
    assert half.disruption_budget["spec"]["maxUnavailable"] == "50%"
    off = build_children(target(serving={"disruptionBudget": {"enabled": False}}), SETTINGS)
    assert off.disruption_budget is None
    assert "PodDisruptionBudget" not in [c["kind"] for c in off.wanted(deployment=True)]
    assert off.unwanted() == ["PodDisruptionBudget"]
