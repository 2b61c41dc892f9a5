"""Handlers of the TRTModel resource: converge on create, update and resume."""

from __future__ import annotations

import logging
from typing import Any

import kopf
from pydantic import ValidationError

from trtserve_operator.api.v1alpha1 import GROUP, PLURAL, VERSION
from trtserve_operator.api.validation import describe_validation_error
from trtserve_operator.handlers.errors import kopf_errors
from trtserve_operator.handlers.indexes import plain
from trtserve_operator.handlers.view import IndexView
from trtserve_operator.services.reconciler import Reconciler
from trtserve_operator.services.targets import target_from_body

logger = logging.getLogger(__name__)


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
async def reconcile(
    body: kopf.Body, status: kopf.Status, memo: kopf.Memo, retry: int, **kwargs: Any
) -> None:
    """Render the children, create/patch what differs, write the status."""
    reconciler: Reconciler = memo["reconciler"]
    raw_body, raw_status = plain(body), plain(status)
    try:
        target = target_from_body(raw_body)
    except ValidationError as error:
        message = describe_validation_error(error, root="spec")
        async with kopf_errors(retry):
            await reconciler.report_invalid(raw_body, raw_status, message)
        raise kopf.PermanentError(message) from error
    async with kopf_errors(retry):
        await reconciler.converge(target, IndexView.from_kwargs(kwargs), raw_status)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def deleted(type: str, namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    """A deleted TRTModel needs no cleanup: its children carry ownerReferences and the
    garbage collector removes them, so no finalizer blocks deletion when the operator is
    down. Only the in-memory state about it is dropped."""
    if type == "DELETED":
        reconciler: Reconciler = memo["reconciler"]
        reconciler.forget(namespace or "", name)
        logger.info("TRTModel %s/%s deleted; its children are garbage-collected", namespace, name)
