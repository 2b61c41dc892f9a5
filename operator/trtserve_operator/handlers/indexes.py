"""kopf indexes: the operator's read cache of TRTModels and ConfigMaps.

Each index keeps a *projection*: only the fields the operator reads, keyed by
``(namespace, name)``. kopf fills them from the watch streams before any handler runs, so
reading them costs no request. Deployments, Services and Pods, the kinds a real cluster
changes most often, are cached by the adapter's own informers instead, in the same
projections (:mod:`trtserve_operator.kube.projections`; docs/operator.md, "How reads
work").

What is kept, and why (anything else is dropped: managedFields, other controllers'
annotations such as kubectl's last-applied-configuration, status conditions...):

- TRTModel: identity (name, namespace, uid, generation, deletionTimestamp), ``spec``
  (rendered) and ``status`` (the previous status after a restart).
- ConfigMap: identity, labels and ownerReferences, and ``data`` whole: converging
  compares every rendered field with it (:func:`trtserve_operator.services.converge.plan`).

The projections reference the watch event's own dicts (no copy): kopf does not change
them, and everything else of the event is freed. The index functions are ``async`` only
so that kopf calls them in its event loop: kopf runs a synchronous handler in a thread
pool, which cost more CPU than the projection itself (profiled at 500 models).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from trtserve_operator.api.v1alpha1 import GROUP, PLURAL, VERSION
from trtserve_operator.services.builders.names import LABEL_MANAGED_BY, MANAGED_BY

MANAGED = {LABEL_MANAGED_BY: MANAGED_BY}

IDENTITY = ("name", "namespace", "uid", "generation", "deletionTimestamp")
CHILD_METADATA = (*IDENTITY, "labels", "ownerReferences")


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


def child_projection(body: Mapping[str, Any]) -> dict[str, Any]:
    projected: dict[str, Any] = {
        key: body[key] for key in ("apiVersion", "kind", "spec", "data") if key in body
    }
    projected["metadata"] = _pick(body.get("metadata"), CHILD_METADATA)
    return projected


@kopf.index(GROUP, VERSION, PLURAL)
async def trtmodel_index(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace or "", name): trtmodel_projection(body)}


@kopf.index("v1", "configmaps", labels=MANAGED)
async def configmap_index(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace or "", name): child_projection(body)}
