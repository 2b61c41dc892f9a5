"""Manifests for the API tests: a minimal valid TRTModel and YAML loading."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from trtserve_operator.api.v1alpha1 import API_VERSION, KIND

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
INVALID = Path(__file__).resolve().parent / "invalid"

MINIMAL: dict[str, Any] = {
    "apiVersion": API_VERSION,
    "kind": KIND,
    "metadata": {"name": "resnet50", "namespace": "default"},
    "spec": {"source": {"uri": "s3://models/resnet50"}},
}


def minimal() -> dict[str, Any]:
    """A fresh copy of the smallest valid TRTModel."""
    return copy.deepcopy(MINIMAL)


def with_spec(**spec: Any) -> dict[str, Any]:
    """The minimal TRTModel with top-level spec fields replaced (wire names)."""
    manifest = minimal()
    manifest["spec"].update(spec)
    return manifest


def load_documents(path: Path) -> list[dict[str, Any]]:
    """Every non-empty YAML document of a file."""
    with path.open() as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


def is_trtmodel(document: dict[str, Any]) -> bool:
    return document.get("apiVersion") == API_VERSION and document.get("kind") == KIND
