"""Every manifest under tests/api/invalid/ is rejected by the CRD (schema or CEL) and by the
models, each time with a message naming the field its ``# field:`` header names."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from trtserve_operator.api.v1alpha1 import TRTModel
from trtserve_operator.api.validation import describe_validation_error, error_lines

from .crd_validation import RULES_NOT_CHECKED, validate_against_crd
from .manifests import INVALID, load_documents

FIXTURES = sorted(INVALID.glob("*.yaml"))


def expected_field(path: Path) -> str:
    """The camelCase path from the fixture's ``# field: <path>`` header line."""
    for line in path.read_text().splitlines():
        if line.startswith("# field:"):
            return line.removeprefix("# field:").strip()
    raise AssertionError(f"{path.name} has no '# field:' header")


def names_field(line: str, field: str) -> bool:
    """Whether an error line is about ``field`` (or, for a rule at the CRD's root, says so)."""
    if line.startswith("<root>:"):
        return field in line
    return line == field or line.startswith((f"{field}:", f"{field}.", f"{field}["))


def test_there_are_at_least_fifteen_fixtures() -> None:
    assert len(FIXTURES) >= 15


@pytest.mark.parametrize("path", FIXTURES, ids=lambda path: path.stem)
def test_crd_rejects_naming_the_field(path: Path) -> None:
    field = expected_field(path)
    [manifest] = load_documents(path)
    errors = [line for line in validate_against_crd(manifest) if line != RULES_NOT_CHECKED]
    assert errors, f"{path.name} passed the CRD"
    assert all(names_field(line, field) for line in errors), errors


@pytest.mark.parametrize("path", FIXTURES, ids=lambda path: path.stem)
def test_models_reject_naming_the_field(path: Path) -> None:
    field = expected_field(path)
    [manifest] = load_documents(path)
    with pytest.raises(ValidationError) as raised:
        TRTModel.model_validate(manifest)
    lines = error_lines(raised.value.errors(include_url=False))
    assert all(names_field(line, field) for line in lines), lines
    assert describe_validation_error(raised.value).startswith(field)
