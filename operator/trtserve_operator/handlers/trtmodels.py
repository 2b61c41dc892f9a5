"""Handler of the TRTModel resource: every event converges it (level-triggered).

``@kopf.on.event`` rather than ``on.create/update/resume``: kopf stores nothing on the
TRTModel for it (no diff-base or progress annotations, no finalizer), so the operator's
only write to a TRTModel is its status. kopf does not retry event handlers: a transient
API error is retried by :mod:`.follow` with backoff.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from trtserve_operator.api.v1alpha1 import GROUP, PLURAL, VERSION
from trtserve_operator.handlers.follow import follow, retries_of
from trtserve_operator.handlers.view import view_of
from trtserve_operator.services.reconciler import Reconciler

logger = logging.getLogger(__name__)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def trtmodel_event(
    type: str | None,
    body: kopf.Body,
    namespace: str | None,
    name: str,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Listed (``type`` None), added or modified: converge; deleted: forget.

    A deleted TRTModel needs no cleanup: its children carry ownerReferences and the
    garbage collector removes them, so no finalizer blocks deletion while the operator
    is down. Only the in-memory state about it is dropped.
    """
    reconciler: Reconciler = memo["reconciler"]
    key = (namespace or "default", name)
    if type == "DELETED":
        reconciler.forget(*key)
        logger.info("TRTModel %s/%s deleted; its children are garbage-collected", *key)
        return
    view = view_of(memo)
    await follow(
        retries_of(memo),
        key,
        lambda: reconciler.observe(body, view),
        retry=lambda: reconciler.reconverge(*key, view),
    )
