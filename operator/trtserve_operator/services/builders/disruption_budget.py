"""The PodDisruptionBudget of the serving pods (``spec.serving.disruptionBudget``)."""

from __future__ import annotations

from typing import Any

from trtserve_operator.services.builders.names import child_metadata, selector_labels
from trtserve_operator.services.builders.target import Target

ALWAYS_ALLOW = "AlwaysAllow"
"""``unhealthyPodEvictionPolicy`` (policy/v1, GA in Kubernetes 1.31): a pod that is not
ready may always be evicted. With the default (``IfHealthyBudget``) a model whose new pods
convert, crash-loop or wait for a GPU would leave the budget unhealthy, and those pods
unevictable: a stuck rollout would block the drain of its node until someone intervened."""


def build_disruption_budget(target: Target) -> dict[str, Any] | None:
    """PodDisruptionBudget ``<name>`` over every serving pod of the model (all revisions,
    the Service's selector); None when ``spec.serving.disruptionBudget.enabled`` is false.

    ``maxUnavailable`` (never ``minAvailable``): the disruption controller scales it with
    the Deployment's replicas and rounds a percentage up, so a single replica stays
    evictable and a drain is never blocked by the budget alone.
    """
    budget = target.spec.serving.disruption_budget
    if not budget.enabled:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": child_metadata(target, target.name),
        "spec": {
            "maxUnavailable": budget.max_unavailable,
            "selector": {"matchLabels": selector_labels(target)},
            "unhealthyPodEvictionPolicy": ALWAYS_ALLOW,
        },
    }
