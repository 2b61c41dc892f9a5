"""describe_validation_error: one line, camelCase paths, cross-field rules at their field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from trtserve_operator.api.v1alpha1 import TRTModelSpec
from trtserve_operator.api.validation import (
    describe_validation_error,
    error_lines,
    format_loc,
    rule_error,
)


def spec_error(spec: dict[str, object]) -> ValidationError:
    with pytest.raises(ValidationError) as raised:
        TRTModelSpec.model_validate(spec)
    return raised.value


@pytest.mark.parametrize(
    ("loc", "root", "expected"),
    [
        (
            ("conversion", "buildShapes", 0, "input_1", 2),
            "",
            "conversion.buildShapes[0].input_1[2]",
        ),
        (("serving", "replicas"), "spec", "spec.serving.replicas"),
        ((), "spec", "spec"),
        ((3,), "", "[3]"),
    ],
)
def test_format_loc(loc: tuple[int | str, ...], root: str, expected: str) -> None:
    assert format_loc(loc, root) == expected


def test_rule_error_is_reported_at_the_rules_field_with_the_root() -> None:
    error = spec_error({"source": {"uri": "s3://b/m"}, "conversion": {"precision": "INT8"}})
    assert describe_validation_error(error, root="spec") == (
        "spec.conversion.calibration: INT8 requires calibration.uri or calibration.synthetic: true"
    )
    assert describe_validation_error(error) == (
        "conversion.calibration: INT8 requires calibration.uri or calibration.synthetic: true"
    )


def test_several_errors_make_one_line_in_order() -> None:
    error = spec_error(
        {
            "source": {"uri": "ftp://h/m"},
            "serving": {"replicas": -1, "bogus": True},
            "conversion": {"precision": "FP8"},
        }
    )
    line = describe_validation_error(error, root="spec")
    assert "\n" not in line
    assert line.split("; ") == [
        "spec.source.uri: uri scheme must be one of s3, gs, http, https, pvc (e.g. s3://bucket/path)",
        "spec.conversion.precision: Input should be 'FP32', 'FP16', 'INT8' or 'NATIVE'",
        "spec.serving.replicas: Input should be greater than or equal to 0",
        "spec.serving.bogus: unknown field",
    ]


def test_missing_required_field() -> None:
    assert describe_validation_error(spec_error({}), root="spec") == "spec.source: required field"


def test_messages_without_pydantic_prefixes() -> None:
    error = spec_error({"source": {"uri": "s3://b/m"}, "serving": {"gpus": 0}})
    [line] = error_lines(error.errors())
    assert line.startswith("serving.gpus: gpus: 0 is only allowed with")
    assert "Value error" not in line


def test_long_messages_are_cut_to_fit_a_condition() -> None:
    error = spec_error(
        {
            "source": {"uri": "s3://b/m"},
            "serving": {"env": [f"not-an-object-{i}" for i in range(60)]},
        }
    )
    line = describe_validation_error(error)
    assert len(line) == 1024
    assert line.endswith("…")
    assert line.startswith("serving.env[0]: Input should be a valid dictionary")


def test_rule_error_path_may_be_empty_or_dotted() -> None:
    assert rule_error(".a.b", "m").context == {"rule_message": "m", "field_path": "a.b"}
    assert rule_error("", "m").context == {"rule_message": "m", "field_path": ""}
