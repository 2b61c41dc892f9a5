"""The ConfigMap holding TF Serving's batching parameters file."""

from __future__ import annotations

from typing import Any

from trtserve_operator.services.builders.batching import render_batching_parameters
from trtserve_operator.services.builders.names import (
    BATCHING_FILE,
    batching_configmap_name,
    child_metadata,
)
from trtserve_operator.services.builders.target import Target


def build_batching_configmap(target: Target) -> dict[str, Any]:
    """ConfigMap ``<name>-batching`` with ``batching.config``, mounted by the serving
    container. Only kept while batching is enabled (see :class:`..Children`): turning
    batching off leaves an existing one unused and unchanged, and the garbage collector
    removes it with its TRTModel."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": child_metadata(target, batching_configmap_name(target), "batching-config"),
        "data": {BATCHING_FILE: render_batching_parameters(target.spec.serving.batching)},
    }
