"""kopf's index of TRTModels: part of the operator's read cache.

The index keeps a *projection*: only the fields the operator reads, keyed by
``(namespace, name)``. kopf fills it from the watch stream before any handler runs, so
reading it costs no request. The children and pods, which a real cluster changes far more
often, are cached by the adapter's own informers instead, in projections of the same kind
(:mod:`trtserve_operator.kube.projections`; docs/operator.md, "How reads work"); the
benchmark Jobs are a kopf index of :mod:`.benchmarks`.

What is kept, and why (anything else is dropped: managedFields, other controllers'
annotations such as kubectl's last-applied-configuration, status conditions...):

- TRTModel: identity (name, namespace, uid, generation, deletionTimestamp), ``spec``
  (rendered) and ``status`` (the previous status after a restart).

The projection references the watch event's own dicts (no copy): kopf does not change
them, and everything else of the event is freed. The index function is ``async`` only so
that kopf calls it in its event loop: kopf runs a synchronous handler in a thread pool,
which cost more CPU than the projection itself (profiled at 500 models).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from trtserve_operator.api.v1alpha1 import GROUP, PLURAL, VERSION
from trtserve_operator.services.builders.names import LABEL_MANAGED_BY, MANAGED_BY

MANAGED = {LABEL_MANAGED_BY: MANAGED_BY}

IDENTITY = ("name", "namespace", "uid", "generation", "deletionTimestamp")


def _pick(source: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(source, Mapping):
        return {}
    return {key: source[key] for key in keys if key in source}


def trtmodel_projection(body: Mapping[str, Any]) -> dict[str, Any]:
    projected: dict[str, Any] = {
        "metadata": _pick(body.get("metadata"), IDENTITY),
        "spec": body.get("spec") or {},
    }
    if body.get("status"):
        projected["status"] = body["status"]
    return projected


@kopf.index(GROUP, VERSION, PLURAL)
async def trtmodel_index(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace or "", name): trtmodel_projection(body)}
