"""The ConfigMap holding TF Serving's batching parameters file."""

from __future__ import annotations

from typing import Any

from trtserve_operator.services.builders.batching import render_batching_parameters
from trtserve_operator.services.builders.names import (
    BATCHING_FILE,
    batching_configmap_name,
    labels,
)
from trtserve_operator.services.builders.target import Target


def build_batching_configmap(target: Target) -> dict[str, Any]:
    """ConfigMap ``<name>-batching`` with ``batching.config`` (always rendered, mounted only
    when batching is enabled, so toggling batching is a plain rollout)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": batching_configmap_name(target),
            "namespace": target.namespace,
            "labels": labels(target, component="batching-config"),
            "ownerReferences": [target.owner_reference()],
        },
        "data": {BATCHING_FILE: render_batching_parameters(target.spec.serving.batching)},
    }
