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


async def _follow(
    memo: kopf.Memo, view: IndexView, owner: tuple[Target, dict[str, Any]], what: str
) -> None:
    """Converge (``what="converge"``) or refresh the status of ``owner``.

    kopf does not retry watch-event handlers: transient API errors are retried here with
    backoff (one pending retry per TRTModel); other API errors wait for the next event.
    """
    reconciler: Reconciler = memo["reconciler"]
    target, status = owner
    try:
        if what == "converge":
            await reconciler.converge(target, view, status)
        else:
            await reconciler.refresh_status(target, view, plain(status))
    except TransientError as error:
        logger.warning(
            "%s of %s/%s failed, retrying later: %s", what, target.namespace, target.name, error
        )
        _retries(memo).schedule(
            (target.namespace, target.name), lambda: _converge_again(reconciler, view, target)
        )
    except KubeError as error:
        logger.warning("%s of %s/%s failed: %s", what, target.namespace, target.name, error)


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
@kopf.on.event("v1", "services", labels=MANAGED)
@kopf.on.event("v1", "configmaps", labels=MANAGED)
async def child_changed(
    namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **kwargs: Any
) -> None:
    """A child changed or vanished: converge its TRTModel (a no-op when it still matches)."""
    view = IndexView.from_kwargs(kwargs)
    owner = _owner(view, namespace or "", labels)
    if owner is not None:
        await _follow(memo, view, owner, "converge")


@kopf.on.event("v1", "pods", labels=MANAGED)
async def pod_changed(
    namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **kwargs: Any
) -> None:
    """A serving pod changed: recompute the TRTModel's status from the pods."""
    view = IndexView.from_kwargs(kwargs)
    owner = _owner(view, namespace or "", labels)
    if owner is not None:
        await _follow(memo, view, owner, "status refresh")
