"""Watch on the ConfigMaps (kopf): put hand-edited children back.

Deployments, Services and Pods are watched by the adapter itself (the high-churn kinds):
their changes arrive in :mod:`.children`.
"""

from __future__ import annotations

from typing import Any

import kopf

from trtserve_operator.handlers.follow import follow, retries_of
from trtserve_operator.handlers.indexes import MANAGED
from trtserve_operator.handlers.view import view_of
from trtserve_operator.services.builders.names import LABEL_INSTANCE
from trtserve_operator.services.reconciler import Reconciler


@kopf.on.event("v1", "configmaps", labels=MANAGED)
async def child_changed(
    namespace: str | None,
    labels: kopf.Labels,
    body: kopf.Body,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """A child changed or vanished: converge its TRTModel (a no-op when it still matches)."""
    instance = labels.get(LABEL_INSTANCE)
    kind = body.get("kind")
    if not instance or not kind:
        return
    reconciler: Reconciler = memo["reconciler"]
    view = view_of(memo)
    key = (namespace or "default", instance)
    await follow(
        retries_of(memo),
        key,
        lambda: reconciler.child_changed(*key, str(kind), view),
        retry=lambda: reconciler.reconverge(*key, view),
    )
