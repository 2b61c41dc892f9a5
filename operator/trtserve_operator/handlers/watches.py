"""Watches on the children and pods: put hand-edited children back, follow reality."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from trtserve_operator.handlers.indexes import MANAGED, plain
from trtserve_operator.handlers.retries import Retries
from trtserve_operator.handlers.view import IndexView
from trtserve_operator.kube.errors import KubeError, TransientError
from trtserve_operator.services.builders.names import LABEL_INSTANCE
from trtserve_operator.services.builders.target import Target
from trtserve_operator.services.reconciler import Reconciler
from trtserve_operator.services.targets import target_from_body

logger = logging.getLogger(__name__)


def _owner(
    view: IndexView, namespace: str, labels: Mapping[str, str]
) -> tuple[Target, dict[str, Any]] | None:
    """The live, valid TRTModel a child or pod belongs to, with its status."""
    instance = labels.get(LABEL_INSTANCE)
    model = view.trtmodel(namespace, instance) if instance else None
    if model is None or model.get("metadata", {}).get("deletionTimestamp"):
        return None
    try:
        return target_from_body(model), dict(model.get("status") or {})
    except ValidationError:
        return None


def _retries(memo: kopf.Memo) -> Retries:
    retries = memo.setdefault("retries", Retries())
    assert isinstance(retries, Retries)
    return retries


async def _converge_again(reconciler: Reconciler, view: IndexView, target: Target) -> None:
    """The retried converge, with the TRTModel as the cache has it now."""
    owner = _owner(view, target.namespace, {LABEL_INSTANCE: target.name})
    if owner is not None:
        await reconciler.converge(owner[0], view, owner[1])


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
@kopf.on.event("v1", "services", labels=MANAGED)
@kopf.on.event("v1", "configmaps", labels=MANAGED)
async def child_changed(
    type: str, namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **kwargs: Any
) -> None:
    """A child changed or vanished: converge its TRTModel (a no-op when it still matches)."""
    view = IndexView.from_kwargs(kwargs)
    owner = _owner(view, namespace or "", labels)
    if owner is None:
        return
    reconciler: Reconciler = memo["reconciler"]
    try:
        await reconciler.converge(owner[0], view, owner[1])
    except TransientError as error:
        logger.warning(
            "Converging %s/%s failed, retrying later: %s", namespace, owner[0].name, error
        )
        _retries(memo).schedule(
            (namespace, owner[0].name), lambda: _converge_again(reconciler, view, owner[0])
        )
    except KubeError as error:
        # Watch events are not retried by kopf; the next event or resume converges again.
        logger.warning(
            "Could not converge %s/%s after a %s: %s", namespace, owner[0].name, type, error
        )


@kopf.on.event("v1", "pods", labels=MANAGED)
async def pod_changed(
    namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **kwargs: Any
) -> None:
    """A serving pod changed: recompute the TRTModel's status from the pods."""
    view = IndexView.from_kwargs(kwargs)
    owner = _owner(view, namespace or "", labels)
    if owner is None:
        return
    reconciler: Reconciler = memo["reconciler"]
    try:
        await reconciler.refresh_status(owner[0], view, plain(owner[1]))
    except TransientError as error:
        logger.warning(
            "Status of %s/%s not written, retrying later: %s", namespace, owner[0].name, error
        )
        _retries(memo).schedule(
            (namespace, owner[0].name), lambda: _converge_again(reconciler, view, owner[0])
        )
    except KubeError as error:
        logger.warning("Could not update the status of %s/%s: %s", namespace, owner[0].name, error)
