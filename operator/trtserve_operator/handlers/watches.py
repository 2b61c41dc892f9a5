"""Watches on the children and pods: put hand-edited children back, follow reality."""

from __future__ import annotations

from typing import Any

import kopf

from trtserve_operator.handlers.follow import follow
from trtserve_operator.handlers.indexes import MANAGED
from trtserve_operator.handlers.view import IndexView
from trtserve_operator.services.builders.names import LABEL_INSTANCE
from trtserve_operator.services.reconciler import Reconciler


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
@kopf.on.event("v1", "services", labels=MANAGED)
@kopf.on.event("v1", "configmaps", labels=MANAGED)
async def child_changed(
    namespace: str | None,
    labels: kopf.Labels,
    body: kopf.Body,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """A child changed or vanished: converge its TRTModel (a no-op when it still matches)."""
    instance = labels.get(LABEL_INSTANCE)
    kind = body.get("kind")
    if not instance or not kind:
        return
    reconciler: Reconciler = memo["reconciler"]
    view = IndexView.from_kwargs(kwargs)
    key = (namespace or "default", instance)
    await follow(
        memo,
        key,
        lambda: reconciler.child_changed(*key, str(kind), view),
        retry=lambda: reconciler.reconverge(*key, view),
    )


@kopf.on.event("v1", "pods", labels=MANAGED)
async def pod_changed(
    namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **kwargs: Any
) -> None:
    """A serving pod changed: its TRTModel's status may have (coalesced, see reconciler)."""
    instance = labels.get(LABEL_INSTANCE)
    if instance:
        reconciler: Reconciler = memo["reconciler"]
        reconciler.pods_changed(namespace or "default", instance, IndexView.from_kwargs(kwargs))
