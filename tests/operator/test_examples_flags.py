"""Examples and docs never repeat a flag the operator sets, and every flag the operator
sets is one that extraArgs may not set."""

from __future__ import annotations

import re

from builder_inputs import EXAMPLES, REPO, example_targets

from trtserve_operator.api import rules
from trtserve_operator.services.builders.deployment import serving_args


def flag_name(arg: str) -> str:
    return arg.lstrip("-").split("=", 1)[0]


def operator_flags() -> set[str]:
    flags: set[str] = set()
    for path in EXAMPLES:
        for target in example_targets(path):
            own = serving_args(target)[
                : len(serving_args(target)) - len(target.spec.serving.extra_args or [])
            ]
            flags |= {flag_name(arg) for arg in own}
    return flags


def test_every_flag_the_operator_sets_is_managed() -> None:
    assert operator_flags() <= set(rules.MANAGED_SERVER_FLAGS)


def test_no_example_repeats_a_flag_the_operator_sets() -> None:
    for path in EXAMPLES:
        for target in example_targets(path):
            extra = {flag_name(arg) for arg in target.spec.serving.extra_args or []}
            assert not extra & operator_flags(), (path.name, extra)


def test_docs_do_not_use_a_managed_flag_as_the_extra_argument_example() -> None:
    api = (REPO / "docs" / "api.md").read_text()
    for line in api.splitlines():
        if "extraArgs" in line and "e.g." in line:
            for flag in re.findall(r"--(\w+)", line.split("e.g.", 1)[1].split(";")[0]):
                assert flag not in rules.MANAGED_SERVER_FLAGS, line
