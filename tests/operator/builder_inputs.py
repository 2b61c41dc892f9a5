"""Inputs shared by the builder tests: the repository's examples rendered as the CLI does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from trtserve_operator.services.builders import Children, build_benchmark_jobs, build_children
from trtserve_operator.services.builders.monitoring import build_monitoring_configmap
from trtserve_operator.services.builders.target import Target
from trtserve_operator.services.targets import target_from_body
from trtserve_operator.settings import Settings

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))
GOLDEN = Path(__file__).resolve().parent / "golden"

SETTINGS = Settings(
    converter_image="trtserve/converter:0.1.0",
    serving_image="tensorflow/serving:2.17.1-gpu",
    log_format="json",
)


def example_bodies(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as stream:
        documents = [doc for doc in yaml.safe_load_all(stream) if doc]
    bodies = [doc for doc in documents if doc.get("kind") == "TRTModel"]
    for body in bodies:
        metadata = body.setdefault("metadata", {})
        metadata.setdefault("namespace", "default")
        metadata.setdefault("uid", "00000000-0000-0000-0000-000000000000")
    return bodies


def example_targets(path: Path) -> list[Target]:
    return [target_from_body(body) for body in example_bodies(path)]


def rendered(path: Path) -> list[Children]:
    return [build_children(target, SETTINGS) for target in example_targets(path)]


def manifests(path: Path) -> list[dict[str, Any]]:
    """Everything the operator applies for the TRTModels of ``path``, in ``render``'s order:
    the namespace-wide monitoring ConfigMap of each namespace, each model's children, then
    the benchmark Jobs (as run at the models' generations, 0 in the examples)."""
    targets = example_targets(path)
    namespaces = list(dict.fromkeys(target.namespace for target in targets))
    shared = [build_monitoring_configmap(namespace) for namespace in namespaces]
    children = [obj for t in targets for obj in build_children(t, SETTINGS).all()]
    return [*shared, *children, *build_benchmark_jobs(targets, SETTINGS)]
