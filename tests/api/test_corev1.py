"""The embedded core/v1 types carry the real Kubernetes schemas, in the CRD and in the models."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import kubernetes_validate
import pytest
from pydantic import ValidationError

from trtserve_operator.api import corev1
from trtserve_operator.api.crd import render_crd
from trtserve_operator.api.v1alpha1 import TRTModel
from trtserve_operator.api.validation import describe_validation_error

from .crd_validation import validate_against_crd
from .manifests import REPO, with_spec
from .test_crd_schema import node_at


@pytest.fixture(scope="module")
def definitions() -> dict[str, Any]:
    return corev1.kubernetes_definitions(corev1.KUBERNETES_VERSION)


def test_committed_schemas_are_generated_from_the_pinned_kubernetes(
    definitions: dict[str, Any],
) -> None:
    assert corev1.SCHEMA_FILE.read_text() == corev1.render_schema_file(definitions), (
        "operator/trtserve_operator/api/corev1-schemas.json is stale: run `python -m "
        "trtserve_operator.api.corev1 > operator/trtserve_operator/api/corev1-schemas.json`"
    )
    assert corev1.schemas()["Toleration"]["properties"]["operator"]["type"] == "string"


@pytest.mark.parametrize(("where", "enum"), corev1.ENUMS.items(), ids=str)
def test_every_added_enum_is_what_the_kubernetes_description_states(
    definitions: dict[str, Any], where: tuple[str, str], enum: tuple[str, ...]
) -> None:
    definition, field = where
    description = definitions[definition]["properties"][field]["description"]
    for value in enum:
        if value:
            assert re.search(rf"\b{value}\b", description), (value, description)


def test_the_crd_inlines_the_committed_schemas() -> None:
    schemas = corev1.schemas()
    assert node_at("spec.serving.tolerations.[]") == schemas["Toleration"]
    assert node_at("spec.serving.env.[]") == schemas["EnvVar"]
    affinity = dict(node_at("spec.serving.affinity"))
    assert affinity.pop("description") == "Affinity of the serving pods (core/v1 Affinity)."
    assert affinity == {k: v for k, v in schemas["Affinity"].items() if k != "description"}


def test_required_fields_and_enums_reach_the_crd() -> None:
    assert node_at("spec.serving.env.[]")["required"] == ["name"]
    assert node_at("spec.serving.tolerations.[].operator")["enum"] == [
        "",
        "Equal",
        "Exists",
        "Lt",
        "Gt",
    ]
    divisor = node_at("spec.serving.env.[].valueFrom.resourceFieldRef.divisor")
    assert divisor["x-kubernetes-int-or-string"] is True
    assert "type" not in divisor


def test_list_markers_are_those_of_the_pod_spec(definitions: dict[str, Any]) -> None:
    """serving.tolerations/env merge like PodSpec.tolerations and Container.env."""
    markers = ("x-kubernetes-list-type", "x-kubernetes-list-map-keys")
    pod = definitions["io.k8s.api.core.v1.PodSpec"]["properties"]["tolerations"]
    container = definitions["io.k8s.api.core.v1.Container"]["properties"]["env"]
    for crd_path, kubernetes in (
        ("spec.serving.tolerations", pod),
        ("spec.serving.env", container),
    ):
        node = node_at(crd_path)
        assert {k: node.get(k) for k in markers} == {k: kubernetes.get(k) for k in markers}


def test_accepted_core_values_make_a_valid_pod() -> None:
    serving = {
        "tolerations": [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
            {"operator": "Exists"},
            {
                "key": "node.kubernetes.io/unreachable",
                "effect": "NoExecute",
                "tolerationSeconds": 60,
            },
        ],
        "env": [
            {"name": "TF_CPP_MIN_LOG_LEVEL", "value": "1"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
        ],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {
                                "matchExpressions": [
                                    {"key": "app", "operator": "In", "values": ["resnet50"]}
                                ]
                            },
                        },
                    }
                ]
            }
        },
    }
    manifest = with_spec(serving=serving)
    assert validate_against_crd(manifest) == []
    parsed = TRTModel.model_validate(manifest).spec.serving
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "containers": [{"name": "c", "image": "i", "env": parsed.env}],
            "tolerations": parsed.tolerations,
            "affinity": parsed.affinity,
        },
    }
    kubernetes_validate.validate(pod, corev1.KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    ("serving", "line"),
    [
        (
            {"tolerations": [{"operator": "Sometimes"}]},
            "spec.serving.tolerations[0].operator: Input should be '', 'Equal', 'Exists', 'Lt' "
            "or 'Gt'",
        ),
        ({"env": [{"value": "x"}]}, "spec.serving.env[0].name: required field"),
        (
            {"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"key": "k"}}, "bogus": 1}]},
            "spec.serving.env[0].bogus: unknown field",
        ),
    ],
)
def test_models_name_the_nested_field(serving: dict[str, Any], line: str) -> None:
    with pytest.raises(ValidationError) as raised:
        TRTModel.model_validate(with_spec(serving=serving))
    assert describe_validation_error(raised.value) == line


def test_crd_stays_small_enough_for_client_side_apply() -> None:
    """``kubectl apply`` without --server-side stores the object in a 256 KiB annotation."""
    assert len(render_crd().encode()) < 200 * 1024


def test_schema_file_is_package_data() -> None:
    """The operator image installs the package (not the source tree): the JSON must ship."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    package_data = pyproject["tool"]["setuptools"]["package-data"]["trtserve_operator"]
    relative = corev1.SCHEMA_FILE.relative_to(REPO / "operator" / "trtserve_operator")
    assert any(relative.match(pattern) for pattern in package_data)
