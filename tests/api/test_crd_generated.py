"""The committed CRD is the generated one, and it is a well-formed structural CRD."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import yaml

from trtserve_operator.api.crd import build_crd, render_crd

REPO = Path(__file__).resolve().parents[2]
CRD_PATH = REPO / "crds" / "trtmodels.yaml"


def test_committed_crd_is_generated_from_the_models() -> None:
    assert CRD_PATH.read_text() == render_crd(), (
        "crds/trtmodels.yaml is stale: run "
        "`.venv/bin/python -m trtserve_operator.api.crd > crds/trtmodels.yaml`"
    )


def test_rendered_yaml_round_trips_to_build_crd() -> None:
    assert yaml.safe_load(render_crd()) == build_crd()


def test_crd_is_a_valid_custom_resource_definition() -> None:
    """The CRD object itself passes the apiextensions.k8s.io/v1 OpenAPI schema (strict)."""
    kubernetes_validate.validate(build_crd(), "1.37.0", strict=True)


def test_module_prints_the_crd() -> None:
    """`python -m trtserve_operator.api.crd` is how crds/trtmodels.yaml is regenerated."""
    result = subprocess.run(
        [sys.executable, "-m", "trtserve_operator.api.crd"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert result.stdout == render_crd()
