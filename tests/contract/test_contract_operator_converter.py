"""Both sides of docs/contract.md: the operator renders arguments the converter accepts
with the intended meaning, and reads back the reports the converter writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trtserve_operator.api.v1alpha1 import Accuracy, TRTModelSpec
from trtserve_operator.services.builders.cache import (
    CACHE_SECRET_DIR,
    CacheDefaults,
    cache_args,
    resolve_cache,
)
from trtserve_operator.services.builders.converter_args import build_converter_args
from trtserve_operator.services.builders.target import Target
from trtserve_operator.services.pods import Stage, pod_conversion
from trtserve_operator.services.report import EXIT_REASONS, parse_termination_message
from trtserve_operator.services.targets import target_from_body

converter_cli = pytest.importorskip("trtserve_converter.cli")
converter_report = pytest.importorskip("trtserve_converter.report")
converter_errors = pytest.importorskip("trtserve_converter.errors")
converter_config = pytest.importorskip("trtserve_converter.config")

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def example_targets() -> list[Target]:
    targets = []
    for path in EXAMPLES:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and doc.get("kind") == "TRTModel":
                doc["metadata"].setdefault("namespace", "default")
                targets.append(target_from_body(doc))
    return targets


def extra_target() -> Target:
    spec = TRTModelSpec.model_validate(
        {
            "source": {"uri": "pvc://claim/dir/model", "version": 3, "signatureKey": "sig"},
            "modelName": "m_1",
            "conversion": {
                "precision": "INT8",
                "buildShapes": [{"a": [1, 8], "b": [1, 3, 3]}, {"a": [16, 8], "b": [16, 3, 3]}],
                "calibration": {"synthetic": True, "batches": 2, "batchSize": 4},
                "accuracy": {"enabled": True, "minTop1Agreement": 0.97, "rtol": 0.05},
                "dynamicShapes": False,
                "profileStrategy": "ImplicitBatchModeCompatible",
                "warmupRecords": 0,
            },
        }
    )
    return Target("extra", "ns", spec)


TARGETS = [*example_targets(), extra_target()]


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_rendered_arguments_parse_with_the_converter(target: Target) -> None:
    args = build_converter_args(target, log_format="json")
    parsed = converter_cli.build_parser().parse_args(args)
    config = converter_cli.config_from_args(parsed)
    spec = target.spec
    assert config.model_name == target.model_name
    assert config.output_base == "/models"
    assert config.signature_key == spec.source.signature_key
    assert config.precision.value == spec.conversion.precision.value
    assert config.max_workspace_bytes == spec.conversion.max_workspace_bytes
    assert config.minimum_segment_size == spec.conversion.minimum_segment_size
    assert config.dynamic_shapes == spec.conversion.dynamic_shapes
    assert config.profile_strategy.value == spec.conversion.profile_strategy.value
    assert config.timeout_seconds == spec.conversion.timeout_seconds
    assert config.warmup_records == spec.conversion.warmup_records
    assert config.log_format == "json"
    assert len(config.build_shapes) == len(spec.conversion.build_shapes or [])
    if spec.source.version is not None:
        assert config.source_version == spec.source.version
        assert config.model_version == spec.source.version
    else:  # the converter keeps the source's own version number (else 1)
        assert config.model_version is None
    if spec.source.uri.startswith("pvc://"):
        assert config.source.startswith("/mnt/source")
    else:
        assert config.source == spec.source.uri
    if spec.conversion.accuracy.enabled is not None:
        assert config.accuracy_check == spec.conversion.accuracy.enabled
    # Unset tolerances mean the converter's per-precision defaults, set ones are passed on.
    accuracy = spec.conversion.accuracy
    defaults = converter_config.DEFAULT_TOLERANCES[config.precision]
    assert config.accuracy_rtol == (defaults.rtol if accuracy.rtol is None else accuracy.rtol)
    assert config.accuracy_atol == (defaults.atol if accuracy.atol is None else accuracy.atol)
    assert config.accuracy_min_top1 == accuracy.min_top1_agreement


def test_build_shapes_mean_the_same_on_both_sides() -> None:
    target = extra_target()
    parsed = converter_cli.build_parser().parse_args(build_converter_args(target))
    config = converter_cli.config_from_args(parsed)
    shapes = [
        {name: list(shape) for name, shape in engine.items()} for engine in config.build_shapes
    ]
    assert shapes == target.spec.conversion.build_shapes


def test_exit_code_table_is_the_converters() -> None:
    assert {reason: code for code, reason in EXIT_REASONS.items()} == converter_errors.exit_codes()


@pytest.mark.parametrize(
    ("result", "reason", "exit_code"),
    [
        ("Succeeded", "Succeeded", 0),
        ("Failed", "AccuracyGateFailed", 40),
        ("Failed", "Timeout", 60),
    ],
)
def test_converter_reports_parse_into_the_status(result: str, reason: str, exit_code: int) -> None:
    text = converter_report.report_json(
        result=result,
        reason=reason,
        exit_code=exit_code,
        message="converted resnet50 to FP16",
        precision="FP16",
        durations={"fetch": 1.0, "total": 70.2},
        trtEngineOps=3,
        nativeOps=12,
        enginesBuilt=2,
        accuracy={"passed": exit_code == 0, "samples": 32, "maxAbsError": 0.0004},
        tensorflowVersion="2.17.1",
        tensorrtLinked="8.6.1",
        tensorrtLoaded="8.6.1",
        gpu="NVIDIA A10",
    )
    status = parse_termination_message(text, exit_code)
    assert status.result == result
    assert status.reason == reason
    assert status.exit_code == exit_code
    assert status.duration_seconds == 70.2
    assert status.trt_engine_ops == 3
    assert status.engines_built == 2
    assert status.tensorrt_version == "8.6.1"
    assert status.gpu == "NVIDIA A10"
    assert status.accuracy is not None
    assert status.accuracy.samples == 32
    pod = {"status": {"initContainerStatuses": [
        {"name": "convert", "state": {"terminated": {"exitCode": exit_code, "message": text}}}
    ]}}  # fmt: skip
    expected = Stage.SUCCEEDED if exit_code == 0 else Stage.FAILED
    assert pod_conversion(pod).stage is expected


def test_a_report_cut_to_the_termination_message_cap_still_parses() -> None:
    text = converter_report.report_json(
        result="Failed",
        reason="SignatureNotFound",
        exit_code=21,
        message="signature 'x' not found; the model has: "
        + ", ".join(f"s{i}" for i in range(3000)),
        gpu="NVIDIA A10",
    )
    assert len(text.encode()) <= 4096
    status = parse_termination_message(text, 21)
    assert status.reason == "SignatureNotFound"
    assert status.message is not None
    assert status.message.endswith("…")


def test_rendered_cache_flags_mean_the_same_to_the_converter() -> None:
    spec = TRTModelSpec.model_validate(
        {"source": {"uri": "s3://b/m"}, "cache": {"uri": "pvc://claim/dir", "readOnly": True}}
    )
    target = Target("m", "team-a", spec)
    defaults = CacheDefaults(secret_name="creds", signing_secret_name="sign")
    args = build_converter_args(target) + cache_args(target, resolve_cache(target, defaults))
    config = converter_cli.config_from_args(converter_cli.build_parser().parse_args(args))
    assert config.cache_uri == "/mnt/cache/dir"
    assert config.cache_namespace == "team-a"
    assert config.cache_publish is False
    assert config.cache_credentials_dir == CACHE_SECRET_DIR
    assert config.cache_signing_key_file is not None


def test_the_converters_cache_report_reaches_the_status() -> None:
    text = converter_report.report_json(
        result="Succeeded",
        reason="Succeeded",
        exit_code=0,
        message="served m from the cache",
        cache={"result": "PublishFailed", "key": "b" * 64, "publish": 1.5, "warning": "denied"},
    )
    status = parse_termination_message(text, 0)
    assert status.cache is not None
    assert (status.cache.result, status.cache.seconds, status.cache.warning) == (
        "PublishFailed",
        1.5,
        "denied",
    )


def test_api_describes_the_converters_default_tolerances() -> None:
    """The CRD's rtol/atol descriptions name the converter's per-precision defaults."""
    for kind in ("rtol", "atol"):
        description = Accuracy.model_fields[kind].description or ""
        for precision, tolerances in converter_config.DEFAULT_TOLERANCES.items():
            assert f"{precision.value} {getattr(tolerances, kind):g}" in description
