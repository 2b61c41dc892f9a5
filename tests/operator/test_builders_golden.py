"""Every example renders to its golden manifests, which are valid Kubernetes objects.

Regenerate the goldens after an intended change with
``TRTSERVE_UPDATE_GOLDEN=1 pytest tests/operator/test_builders_golden.py`` and review the
diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from builder_inputs import EXAMPLES, GOLDEN, manifests, rendered

KUBERNETES_VERSION = "1.30.0"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example_matches_golden(example: Path) -> None:
    text = yaml.safe_dump_all(manifests(example), sort_keys=False)
    golden = GOLDEN / f"{example.stem}.yaml"
    if os.environ.get("TRTSERVE_UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"no golden for {example.name}: run with TRTSERVE_UPDATE_GOLDEN=1"
    assert text == golden.read_text(encoding="utf-8")


def test_every_golden_has_an_example() -> None:
    assert {p.stem for p in GOLDEN.glob("*.yaml")} == {p.stem for p in EXAMPLES}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_rendered_objects_are_valid_kubernetes(example: Path) -> None:
    for obj in manifests(example):
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_validation_would_catch_a_broken_manifest() -> None:
    children = rendered(EXAMPLES[0])[0]
    broken = dict(children.service)
    broken["spec"] = {**broken["spec"], "ports": [{"name": "grpc", "port": "not-a-number"}]}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
