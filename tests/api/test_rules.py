"""Every cross-field rule, on valid and invalid objects, enforced alike by CEL and pydantic.

The CRD side is evaluated with cel-python through :func:`validate_against_crd` (schema,
defaulting and every ``x-kubernetes-validations`` rule); the model side is
:class:`TRTModel`. Both must accept the valid objects and reject the invalid ones with the
same message at the same camelCase path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import ValidationError

from trtserve_operator.api import rules
from trtserve_operator.api.crd import build_crd
from trtserve_operator.api.v1alpha1 import TRTModel
from trtserve_operator.api.validation import describe_validation_error

from .crd_validation import evaluate_rule, validate_against_crd
from .manifests import minimal


@dataclass(frozen=True)
class Case:
    id: str
    patch: dict[str, Any]
    """Merged into the minimal manifest's spec (or the whole object with key "metadata")."""
    rule: rules.Rule | None = None
    """The rule the object violates; None for a valid object."""
    path: str = ""
    """camelCase path both enforcers name for an invalid object ("" at the object's root)."""


def build(patch: dict[str, Any]) -> dict[str, Any]:
    manifest = minimal()
    if "metadata" in patch:
        manifest["metadata"].update(patch["metadata"])
        patch = {k: v for k, v in patch.items() if k != "metadata"}
    manifest["spec"].update(patch)
    return manifest


def source(uri: str) -> dict[str, Any]:
    return {"source": {"uri": uri}}


def conversion(**fields: Any) -> dict[str, Any]:
    return {"conversion": fields}


def batching(**fields: Any) -> dict[str, Any]:
    return {"serving": {"batching": fields}}


INPUT = [{"name": "x", "shape": [-1, 3]}]

CASES = [
    # source / calibration URIs
    *(Case(f"uri-{scheme}", source(f"{scheme}://bucket/model")) for scheme in rules.URI_SCHEMES),
    Case("uri-ftp", source("ftp://host/model"), rules.URI_SCHEME, "spec.source.uri"),
    Case("uri-no-scheme", source("/models/resnet50"), rules.URI_SCHEME, "spec.source.uri"),
    Case("uri-S3-upper", source("S3://bucket/model"), rules.URI_SCHEME, "spec.source.uri"),
    Case("uri-no-bucket", source("s3:///model"), rules.URI_AUTHORITY, "spec.source.uri"),
    Case("pvc-claim-only", source("pvc://models")),
    Case("pvc-claim-path", source("pvc://models/resnet50/1")),
    Case("pvc-bad-claim", source("pvc://Models_1/x"), rules.PVC_CLAIM, "spec.source.uri"),
    Case("pvc-claim-dash-end", source("pvc://models-/x"), rules.PVC_CLAIM, "spec.source.uri"),
    Case(
        "calibration-uri-file",
        conversion(precision="INT8", calibration={"uri": "file:///data/calib.npz"}),
        rules.URI_SCHEME,
        "spec.conversion.calibration.uri",
    ),
    # INT8 calibration
    Case("int8-uri", conversion(precision="INT8", calibration={"uri": "s3://b/c.npz"})),
    Case("int8-synthetic", conversion(precision="INT8", calibration={"synthetic": True})),
    Case("fp16-no-calibration", conversion(precision="FP16")),
    Case(
        "int8-no-calibration",
        conversion(precision="INT8"),
        rules.INT8_CALIBRATION,
        "spec.conversion.calibration",
    ),
    Case(
        "int8-empty-calibration",
        conversion(precision="INT8", calibration={"batches": 4}),
        rules.INT8_CALIBRATION,
        "spec.conversion.calibration",
    ),
    Case(
        "int8-synthetic-false",
        conversion(precision="INT8", calibration={"synthetic": False}),
        rules.INT8_CALIBRATION,
        "spec.conversion.calibration",
    ),
    # declared inputs and build shapes
    Case("shapes-without-inputs", conversion(buildShapes=[{"anything": [1, 2, 3]}])),
    Case("inputs-without-shapes", conversion(inputs=INPUT)),
    Case("shapes-match", conversion(inputs=INPUT, buildShapes=[{"x": [1, 3]}, {"x": [64, 3]}])),
    Case(
        "shapes-two-inputs",
        conversion(
            inputs=[{"name": "a", "shape": [-1, 3]}, {"name": "b", "shape": [-1, -1]}],
            buildShapes=[{"a": [2, 3], "b": [2, 7]}],
        ),
    ),
    Case(
        "inputs-duplicate",
        conversion(inputs=[*INPUT, *INPUT]),
        rules.INPUT_NAMES_UNIQUE,
        "spec.conversion.inputs",
    ),
    Case(
        "shapes-undeclared-input",
        conversion(inputs=INPUT, buildShapes=[{"x": [1, 3]}, {"y": [1, 3]}]),
        rules.BUILD_SHAPE_INPUTS,
        "spec.conversion.buildShapes",
    ),
    Case(
        "shapes-rank",
        conversion(inputs=INPUT, buildShapes=[{"x": [1, 3, 1]}]),
        rules.BUILD_SHAPE_RANK,
        "spec.conversion.buildShapes",
    ),
    Case(
        "shapes-fixed-dim",
        conversion(inputs=INPUT, buildShapes=[{"x": [8, 4]}]),
        rules.BUILD_SHAPE_DIMS,
        "spec.conversion.buildShapes",
    ),
    Case(
        "shapes-rank-16",
        conversion(
            inputs=[{"name": "x", "shape": [-1] * 15 + [2]}],
            buildShapes=[{"x": [1] * 15 + [3]}],
        ),
        rules.BUILD_SHAPE_DIMS,
        "spec.conversion.buildShapes",
    ),
    # GPUs
    Case(
        "cpu-native",
        {"conversion": {"precision": "NATIVE"}, "serving": {"gpus": 0, "allowCpu": True}},
    ),
    Case(
        "cpu-fp16",
        {"serving": {"gpus": 0, "allowCpu": True}},
        rules.GPUS_REQUIRED,
        "spec.serving.gpus",
    ),
    Case(
        "cpu-native-not-allowed",
        {"conversion": {"precision": "NATIVE"}, "serving": {"gpus": 0}},
        rules.GPUS_REQUIRED,
        "spec.serving.gpus",
    ),
    # batching
    Case("batch-sizes", batching(maxBatchSize=8, allowedBatchSizes=[1, 2, 4, 8])),
    Case("batch-sizes-default-max", batching(allowedBatchSizes=[8, 32])),
    Case("batch-sizes-single", batching(maxBatchSize=4, allowedBatchSizes=[4])),
    Case(
        "batch-sizes-last",
        batching(maxBatchSize=8, allowedBatchSizes=[1, 2, 4]),
        rules.BATCH_SIZES_LAST,
        "spec.serving.batching.allowedBatchSizes",
    ),
    Case(
        "batch-sizes-order",
        batching(maxBatchSize=8, allowedBatchSizes=[1, 4, 2, 8]),
        rules.BATCH_SIZES_INCREASING,
        "spec.serving.batching.allowedBatchSizes",
    ),
    Case(
        "batch-sizes-repeat",
        batching(maxBatchSize=8, allowedBatchSizes=[1, 1, 8]),
        rules.BATCH_SIZES_INCREASING,
        "spec.serving.batching.allowedBatchSizes",
    ),
    Case(
        "batch-sizes-order-at-32",
        batching(maxBatchSize=64, allowedBatchSizes=[*range(1, 31), 65, 64]),
        rules.BATCH_SIZES_INCREASING,
        "spec.serving.batching.allowedBatchSizes",
    ),
    # extra args
    Case(
        "args-ok", {"serving": {"extraArgs": ["--tensorflow_intra_op_parallelism=4", "--portable"]}}
    ),
    Case(
        "args-port",
        {"serving": {"extraArgs": ["--port=9000"]}},
        rules.MANAGED_FLAGS,
        "spec.serving.extraArgs",
    ),
    Case(
        "args-model-name",
        {"serving": {"extraArgs": ["--tensorflow_session_parallelism=2", "--model_name"]}},
        rules.MANAGED_FLAGS,
        "spec.serving.extraArgs",
    ),
    # benchmark
    Case("benchmark-minimal", {"benchmark": {"baseline": "resnet50-native"}}),
    Case("benchmark-levels", {"benchmark": {"baseline": "b", "concurrency": [1, 2, 64, 4096]}}),
    Case(
        "benchmark-levels-repeat",
        {"benchmark": {"baseline": "b", "concurrency": [1, 4, 4]}},
        rules.BENCHMARK_LEVELS_INCREASING,
        "spec.benchmark.concurrency",
    ),
    Case(
        "benchmark-levels-decreasing",
        {"benchmark": {"baseline": "b", "concurrency": [16, 4]}},
        rules.BENCHMARK_LEVELS_INCREASING,
        "spec.benchmark.concurrency",
    ),
    Case(
        "benchmark-self",
        {"benchmark": {"baseline": "resnet50"}},  # the minimal manifest's own name
        rules.BENCHMARK_NOT_SELF,
        "spec.benchmark.baseline",
    ),
    # spec.cache.uri and spec.serving.gpuProduct (converted-model cache)
    *(
        Case(f"cache-uri-{scheme}", {"cache": {"uri": f"{scheme}://bucket/c"}})
        for scheme in ("s3", "gs", "pvc")
    ),
    Case(
        "cache-uri-https",
        {"cache": {"uri": "https://host/c"}},
        rules.CACHE_URI_SCHEME,
        "spec.cache.uri",
    ),
    Case(
        "cache-uri-pvc-bad-claim",
        {"cache": {"uri": "pvc://Bad_Claim/c"}},
        rules.PVC_CLAIM,
        "spec.cache.uri",
    ),
    Case(
        "gpu-product-with-same-selector",
        {
            "serving": {
                "gpuProduct": "NVIDIA-A100-SXM4-80GB",
                "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
            }
        },
    ),
    Case(
        "gpu-product-contradicts-selector",
        {
            "serving": {
                "gpuProduct": "NVIDIA-A100-SXM4-80GB",
                "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-L4"},
            }
        },
        rules.GPU_PRODUCT_SELECTOR,
        "spec.serving.gpuProduct",
    ),
    # spec.serving.disruptionBudget.maxUnavailable (an int-or-string, as the PDB's)
    *(
        Case(
            f"max-unavailable-{value}", {"serving": {"disruptionBudget": {"maxUnavailable": value}}}
        )
        for value in (1, 1000, "1%", "25%", "100%")
    ),
    Case("disruption-budget-off", {"serving": {"disruptionBudget": {"enabled": False}}}),
    *(
        Case(
            f"max-unavailable-bad-{value}",
            {"serving": {"disruptionBudget": {"maxUnavailable": value}}},
            rules.MAX_UNAVAILABLE,
            "spec.serving.disruptionBudget.maxUnavailable",
        )
        for value in (0, -1, 1001, "0%", "101%", "1", "50", "ten")
    ),
    # metadata.name (rule at the CRD's root; the model names metadata.name)
    Case("name-ok", {"metadata": {"name": "resnet-50"}}),
    Case("name-upper", {"metadata": {"name": "ResNet"}}, rules.METADATA_NAME, "metadata.name"),
    Case("name-digit", {"metadata": {"name": "50resnet"}}, rules.METADATA_NAME, "metadata.name"),
    Case("name-dot", {"metadata": {"name": "resnet.v1"}}, rules.METADATA_NAME, "metadata.name"),
    Case("name-64", {"metadata": {"name": "a" * 64}}, rules.METADATA_NAME, "metadata.name"),
]
VALID = [case for case in CASES if case.rule is None]
INVALID = [case for case in CASES if case.rule is not None]


def crd_line(case: Case) -> str:
    """The line validate_against_crd reports: rules at the root have no field path."""
    assert case.rule is not None
    path = "<root>" if case.rule is rules.METADATA_NAME else case.path
    return f"{path}: {case.rule.message}"


@pytest.mark.parametrize("case", VALID, ids=lambda case: case.id)
def test_valid_object_passes_cel_and_models(case: Case) -> None:
    manifest = build(case.patch)
    assert validate_against_crd(manifest) == []
    TRTModel.model_validate(manifest)


@pytest.mark.parametrize("case", INVALID, ids=lambda case: case.id)
def test_cel_rejects_with_the_rules_message(case: Case) -> None:
    assert validate_against_crd(build(case.patch)) == [crd_line(case)]


@pytest.mark.parametrize("case", INVALID, ids=lambda case: case.id)
def test_models_reject_with_the_same_message_and_path(case: Case) -> None:
    assert case.rule is not None
    with pytest.raises(ValidationError) as raised:
        TRTModel.model_validate(build(case.patch))
    assert describe_validation_error(raised.value) == f"{case.path}: {case.rule.message}"


def _all_rules() -> list[rules.Rule]:
    return [value for value in vars(rules).values() if isinstance(value, rules.Rule)]


def _crd_rules(node: Any) -> list[dict[str, str]]:
    if isinstance(node, dict):
        found = list(node.get("x-kubernetes-validations", []))
        return found + [rule for child in node.values() for rule in _crd_rules(child)]
    if isinstance(node, list):
        return [rule for child in node for rule in _crd_rules(child)]
    return []


def test_every_rule_is_in_the_crd_and_tested_on_an_invalid_object() -> None:
    in_crd = {entry["rule"] for entry in _crd_rules(build_crd())}
    tested = {case.rule for case in INVALID}
    for rule in _all_rules():
        assert rule.rule in in_crd, rule.message
        assert rule in tested, f"no invalid case for: {rule.message}"


def test_every_crd_rule_has_a_message_and_comes_from_the_rules_module() -> None:
    known = {(rule.rule, rule.message) for rule in _all_rules()}
    for entry in _crd_rules(build_crd()):
        assert (entry["rule"], entry["message"]) in known


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        (rules.URI_SCHEME, "https://host/m.tar.gz", True),
        (rules.URI_SCHEME, "file:///m", False),
        (rules.PVC_CLAIM, "s3://anything", True),
        (rules.PVC_CLAIM, "pvc://claim.v2/dir", True),
        (rules.PVC_CLAIM, "pvc://-claim", False),
        (rules.INT8_CALIBRATION, {}, True),  # without defaulting: precision unset
        (rules.INT8_CALIBRATION, {"precision": "INT8", "calibration": {}}, False),
        (rules.GPUS_REQUIRED, {}, True),
        (rules.GPUS_REQUIRED, {"serving": {"gpus": 0}}, False),
        (rules.BATCH_SIZES_LAST, {"allowedBatchSizes": [4]}, True),  # maxBatchSize unset
        (rules.BATCH_SIZES_INCREASING, [], True),
        (rules.BATCH_SIZES_INCREASING, [3, 2], False),
        (rules.MANAGED_FLAGS, ["-port=1"], False),
        (rules.METADATA_NAME, {"metadata": {"name": "m"}}, True),
        (rules.BENCHMARK_LEVELS_INCREASING, [7], True),
        (rules.BENCHMARK_NOT_SELF, {"metadata": {"name": "m"}, "spec": {}}, True),
        (
            rules.BENCHMARK_NOT_SELF,
            {"metadata": {"name": "m"}, "spec": {"benchmark": {"baseline": "m"}}},
            False,
        ),
    ],
)
def test_rules_hold_without_defaulting(rule: rules.Rule, value: Any, expected: bool) -> None:
    """The CEL guards (has()) keep rules meaningful on objects that were not defaulted."""
    assert evaluate_rule(rule.rule, value) is expected
