"""The models agree with the CRD on what they accept, and read manifests the operator's way."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from trtserve_operator.api.v1alpha1 import (
    Precision,
    TRTModel,
    TRTModelSpec,
    TRTModelStatus,
)
from trtserve_operator.api.validation import describe_validation_error

from .crd_validation import RULES_NOT_CHECKED, validate_against_crd
from .manifests import EXAMPLES, is_trtmodel, load_documents, minimal, with_spec

STATUS: dict[str, Any] = {
    "phase": "Ready",
    "observedGeneration": 3,
    "conditions": [
        {
            "type": "Converted",
            "status": "True",
            "reason": "Succeeded",
            "message": "converted resnet50 to FP16: 3 TRTEngineOps, 2 engines",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
            "observedGeneration": 3,
        },
        {
            "type": "Ready",
            "status": "True",
            "reason": "Available",
            "message": "2/2 serving pods ready",
            "lastTransitionTime": "2026-01-01T00:01:00Z",
            "observedGeneration": 3,
        },
    ],
    "replicas": 2,
    "readyReplicas": 2,
    "selector": "app.kubernetes.io/instance=resnet50,app.kubernetes.io/name=trtserve-model",
    "endpoint": {"grpc": "resnet50.default.svc:8500", "rest": "http://resnet50:8501/v1/models/r"},
    "conversion": {
        "result": "Succeeded",
        "reason": "Succeeded",
        "exitCode": 0,
        "precision": "FP16",
        "durationSeconds": 70.2,
        "trtEngineOps": 3,
        "nativeOps": 12,
        "enginesBuilt": 2,
        "accuracy": {"passed": True, "samples": 32, "maxAbsError": 0.0004, "top1Agreement": 1.0},
        "tensorflowVersion": "2.17.1",
        "tensorrtVersion": "8.6.1",
        "gpu": "NVIDIA A10",
    },
}


def test_wire_names_are_camel_case_and_python_names_snake_case() -> None:
    spec = TRTModelSpec.model_validate(
        {"source": {"uri": "s3://b/m", "secretRef": {"name": "creds"}}, "modelName": "m"}
    )
    assert spec.source.secret_ref is not None
    assert spec.source.secret_ref.name == "creds"
    assert spec.model_name == "m"
    dumped = spec.model_dump(by_alias=True, exclude_none=True)
    assert dumped["source"]["secretRef"] == {"name": "creds"}
    assert dumped["serving"]["gpuMemoryFraction"] == 0.5


def test_defaults() -> None:
    spec = TRTModelSpec.model_validate({"source": {"uri": "s3://b/m"}})
    assert spec.conversion.precision is Precision.FP16
    assert spec.serving.replicas == 1
    assert spec.serving.gpus == 1
    assert spec.serving.batching.enabled is False
    assert spec.conversion.accuracy.samples == 32
    assert spec.model_name is None  # the operator uses metadata.name


def test_nulls_mean_absent_like_the_api_server_prunes_them() -> None:
    manifest = with_spec(conversion=None, serving={"replicas": 2, "image": None})
    manifest["spec"]["source"]["secretRef"] = None
    assert validate_against_crd(manifest) == []
    spec = TRTModel.model_validate(manifest).spec
    assert spec.conversion.precision is Precision.FP16
    assert spec.serving.image is None
    assert spec.source.secret_ref is None


def test_quantities_may_be_integers_or_strings() -> None:
    manifest = with_spec(
        serving={"resources": {"requests": {"cpu": 4, "memory": "16Gi"}, "limits": {"cpu": "0.5"}}}
    )
    assert validate_against_crd(manifest) == []
    resources = TRTModel.model_validate(manifest).spec.serving.resources
    assert resources is not None
    assert resources.requests == {"cpu": "4", "memory": "16Gi"}
    assert resources.limits == {"cpu": "0.5"}


def test_fractional_numbers_are_not_quantities_for_either() -> None:
    """int-or-string takes 4 but not 0.5: both sides ask for "0.5" or "500m"."""
    manifest = with_spec(serving={"resources": {"limits": {"cpu": 0.5}}})
    error, not_checked = validate_against_crd(manifest)
    assert error.startswith("spec.serving.resources.limits.cpu: ")
    assert not_checked == RULES_NOT_CHECKED
    with pytest.raises(ValidationError, match=r"resources\.limits\.cpu"):
        TRTModel.model_validate(manifest)


def test_core_types_keep_their_fields_as_given() -> None:
    toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    affinity: dict[str, Any] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["a100"]}]}
                ]
            }
        }
    }
    env = {
        "name": "TF_CPP_MIN_LOG_LEVEL",
        "valueFrom": {"configMapKeyRef": {"name": "c", "key": "level"}},
    }
    cpus = {
        "name": "CPUS",
        "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": 1}},
    }
    manifest = with_spec(
        serving={"tolerations": [toleration], "affinity": affinity, "env": [env, cpus]}
    )
    assert validate_against_crd(manifest) == []
    serving = TRTModel.model_validate(manifest).spec.serving
    assert serving.tolerations == [toleration]
    assert list(serving.tolerations[0]) == ["key", "operator", "effect"]  # the manifest's order
    assert serving.affinity == affinity
    assert serving.env == [env, cpus]


def test_core_types_drop_nulls_like_the_api_server() -> None:
    manifest = with_spec(serving={"tolerations": [{"operator": "Exists", "effect": None}]})
    assert validate_against_crd(manifest) == []
    assert TRTModel.model_validate(manifest).spec.serving.tolerations == [{"operator": "Exists"}]


def test_duplicate_env_names_are_rejected_by_both() -> None:
    env = [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]
    manifest = with_spec(serving={"env": env})
    assert validate_against_crd(manifest) == ["spec.serving.env[1]: Duplicate value: ('A',)"]
    with pytest.raises(ValidationError) as raised:
        TRTModel.model_validate(manifest)
    assert describe_validation_error(raised.value) == "spec.serving.env: duplicate env name(s) A"


@pytest.mark.parametrize(
    "path",
    [p for p in sorted(EXAMPLES.glob("*.yaml"))],
    ids=lambda p: p.name,
)
def test_model_dump_of_every_example_is_valid_for_the_crd(path: Any) -> None:
    """What the models write back (e.g. a normalized spec) is accepted by the API server."""
    for document in filter(is_trtmodel, load_documents(path)):
        model = TRTModel.model_validate(document)
        dumped = model.model_dump(by_alias=True, exclude_none=True, mode="json")
        assert validate_against_crd(dumped) == []
        assert TRTModel.model_validate(dumped) == model


def test_a_full_status_is_valid_for_both() -> None:
    manifest = minimal()
    manifest["status"] = STATUS
    assert validate_against_crd(manifest) == []
    status = TRTModelStatus.model_validate(STATUS)
    assert status.conversion is not None
    assert status.conversion.gpu == "NVIDIA A10"
    dumped = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert dumped == STATUS


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"phase": "Running"}, "status.phase"),
        ({"replicas": -1}, "status.replicas"),
        ({"kopf": {"progress": {}}}, "status.kopf"),
    ],
)
def test_invalid_status_is_rejected_by_both(patch: dict[str, Any], field: str) -> None:
    manifest = minimal()
    manifest["status"] = {**STATUS, **patch}
    errors = [line for line in validate_against_crd(manifest) if line != RULES_NOT_CHECKED]
    assert errors
    assert all(line.startswith(field) for line in errors), errors
    with pytest.raises(ValidationError):
        TRTModelStatus.model_validate(manifest["status"])


def test_duplicate_condition_types_are_rejected_by_the_crd() -> None:
    manifest = minimal()
    manifest["status"] = {**STATUS, "conditions": [STATUS["conditions"][0]] * 2}
    assert validate_against_crd(manifest) == [
        "status.conditions[1]: Duplicate value: ('Converted',)"
    ]


def test_whole_object_requires_kind_and_api_version() -> None:
    manifest = minimal()
    manifest["kind"] = "Deployment"
    with pytest.raises(ValidationError, match="kind"):
        TRTModel.model_validate(manifest)


def test_metadata_keeps_server_fields() -> None:
    manifest = minimal()
    manifest["metadata"].update(uid="1234", resourceVersion="7", generation=3)
    model = TRTModel.model_validate(manifest)
    assert model.metadata.model_dump(by_alias=True, exclude_none=True) == manifest["metadata"]
