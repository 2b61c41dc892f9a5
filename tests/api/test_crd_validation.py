"""The CRD validation helper reports what the API server would, in the order it would."""

from __future__ import annotations

from .crd_validation import RULES_NOT_CHECKED, validate_against_crd
from .manifests import minimal, with_spec

INT8_MESSAGE = (
    "spec.conversion.calibration: INT8 requires calibration.uri or calibration.synthetic: true"
)


def test_minimal_manifest_is_valid() -> None:
    assert validate_against_crd(minimal()) == []


def test_cel_runs_alongside_non_blocking_schema_errors() -> None:
    manifest = with_spec(conversion={"precision": "INT8", "timeoutSeconds": 1})
    assert validate_against_crd(manifest) == [
        "spec.conversion.timeoutSeconds: Invalid value: 1: 1 is less than the minimum of 60",
        INT8_MESSAGE,
    ]


def test_blocking_schema_errors_stop_every_cel_rule() -> None:
    manifest = with_spec(conversion={"precision": "INT8"}, serving={"replicas": "2"})
    assert validate_against_crd(manifest) == [
        "spec.serving.replicas: Invalid value: '2': '2' is not of type 'integer'",
        RULES_NOT_CHECKED,
    ]


def test_unknown_fields_fail_the_request_before_validation() -> None:
    manifest = with_spec(conversion={"precision": "INT8", "calibrate": True})
    assert validate_against_crd(manifest) == [
        'spec.conversion.calibrate: unknown field "calibrate"'
    ]


def test_unknown_fields_inside_embedded_core_types_are_rejected() -> None:
    manifest = with_spec(serving={"affinity": {"anything": {"goes": [1]}}})
    assert validate_against_crd(manifest) == [
        'spec.serving.affinity.anything: unknown field "anything"'
    ]


def test_unknown_top_level_field() -> None:
    manifest = minimal()
    manifest["extra"] = 1
    assert validate_against_crd(manifest) == ['extra: unknown field "extra"']


def test_defaults_are_applied_before_cel() -> None:
    """gpus: 0 with NATIVE but allowCpu left out: the default false makes the rule fail."""
    manifest = with_spec(conversion={"precision": "NATIVE"}, serving={"gpus": 0})
    [error] = validate_against_crd(manifest)
    assert error.startswith("spec.serving.gpus: gpus: 0 is only allowed with")


def test_generate_name_gets_a_name_before_the_name_rule() -> None:
    manifest = minimal()
    del manifest["metadata"]["name"]
    manifest["metadata"]["generateName"] = "resnet50-"
    assert validate_against_crd(manifest) == []


def test_the_manifest_is_not_modified() -> None:
    manifest = with_spec(conversion=None)
    validate_against_crd(manifest)
    assert manifest == with_spec(conversion=None)
