"""docs/api.md documents every field of the models, and its generated tables are fresh."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from trtserve_operator.api import rules
from trtserve_operator.api.reference import replace_reference
from trtserve_operator.api.v1alpha1 import TRTModelSpec, TRTModelStatus

from .manifests import REPO

API_MD = REPO / "docs" / "api.md"


def _models_in(annotation: Any) -> Iterator[tuple[type[BaseModel], bool]]:
    """Models inside an annotation, and whether they sit in a list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, False
        return
    origin = typing.get_origin(annotation)
    for arg in typing.get_args(annotation):
        for model, in_list in _models_in(arg):
            yield model, in_list or origin is list


def field_paths(model: type[BaseModel], prefix: str) -> Iterator[str]:
    """camelCase paths of every field of ``model`` and its nested models, walked from the
    models themselves (not from the CRD the tables are generated from)."""
    for name, info in model.model_fields.items():
        path = f"{prefix}.{info.alias or name}"
        yield path
        for child, in_list in _models_in(info.annotation):
            yield from field_paths(child, path + ("[]" if in_list else ""))


def test_generated_reference_is_fresh() -> None:
    text = API_MD.read_text()
    assert replace_reference(text) == text, (
        "docs/api.md is stale: run "
        "`.venv/bin/python -m trtserve_operator.api.reference docs/api.md`"
    )


def test_every_model_field_is_documented() -> None:
    text = API_MD.read_text()
    paths = [*field_paths(TRTModelSpec, "spec"), *field_paths(TRTModelStatus, "status")]
    assert len(paths) > 60
    assert [path for path in paths if f"`{path}`" not in text] == []


def test_every_rule_message_is_documented() -> None:
    text = API_MD.read_text()
    for rule in vars(rules).values():
        if isinstance(rule, rules.Rule):
            assert rule.message.replace("|", "\\|") in text, rule.message


def test_readme_says_where_the_cli_comes_from_before_using_it() -> None:
    """`trtserve-operator` is not on PATH after `make run`: it lives in .venv-operator/bin."""
    readme = (REPO / "README.md").read_text()
    lines = readme.splitlines()
    first_command = next(
        index for index, line in enumerate(lines) if line.startswith("trtserve-operator ")
    )
    before = "\n".join(lines[:first_command])
    after_block = "\n".join(lines[first_command : first_command + 8])
    assert ".venv-operator/bin" in before + after_block
