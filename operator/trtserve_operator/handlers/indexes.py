"""kopf indexes: the operator's read cache of TRTModels, their children and pods.

Each index keeps a *projection*: only the fields the operator reads, keyed by
``(namespace, name)`` (pods: ``(namespace, app.kubernetes.io/instance)``). kopf fills
them from the watch streams before any handler runs, so reading them costs no request.

What is kept, and why (anything else is dropped: managedFields, other controllers'
annotations such as kubectl's last-applied-configuration, status conditions...):

- TRTModel: identity (name, namespace, uid, generation, deletionTimestamp), ``spec``
  (rendered) and ``status`` (the previous status after a restart).
- Deployment, Service, ConfigMap: identity, labels and ownerReferences, and ``spec`` /
  ``data`` whole: converging compares every rendered field with them
  (:func:`trtserve_operator.services.converge.plan`). Deployment ``status``: only the
  replica counts the TRTModel status is computed from.
- Pod: its name, template hash annotation, deletion, scheduling failure and the
  ``convert`` initContainer's state (the converter's report).

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
from trtserve_operator.services.builders.names import (
    CONVERT_CONTAINER,
    HASH_ANNOTATION,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    MANAGED_BY,
)

MANAGED = {LABEL_MANAGED_BY: MANAGED_BY}

IDENTITY = ("name", "namespace", "uid", "generation", "deletionTimestamp")
CHILD_METADATA = (*IDENTITY, "labels", "ownerReferences")
DEPLOYMENT_STATUS = ("replicas", "readyReplicas", "availableReplicas", "updatedReplicas")
INIT_STATUS = ("name", "state", "lastState")


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


def child_projection(body: Mapping[str, Any], *, status: tuple[str, ...] = ()) -> dict[str, Any]:
    projected: dict[str, Any] = {
        key: body[key] for key in ("apiVersion", "kind", "spec", "data") if key in body
    }
    projected["metadata"] = _pick(body.get("metadata"), CHILD_METADATA)
    if status:
        projected["status"] = _pick(body.get("status"), status)
    return projected


def pod_projection(body: Mapping[str, Any]) -> dict[str, Any]:
    metadata = body.get("metadata") or {}
    status = body.get("status") or {}
    annotations = metadata.get("annotations") or {}
    return {
        "metadata": {
            "name": metadata.get("name"),
            "annotations": _pick(annotations, (HASH_ANNOTATION,)),
            "deletionTimestamp": metadata.get("deletionTimestamp"),
        },
        "status": {
            "phase": status.get("phase"),
            "conditions": [
                _pick(c, ("type", "status", "reason", "message"))
                for c in status.get("conditions") or []
                if c.get("type") == "PodScheduled" and c.get("status") == "False"
            ],
            "initContainerStatuses": [
                _pick(s, INIT_STATUS)
                for s in status.get("initContainerStatuses") or []
                if s.get("name") == CONVERT_CONTAINER
            ],
        },
    }


@kopf.index(GROUP, VERSION, PLURAL)
async def trtmodel_index(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace or "", name): trtmodel_projection(body)}


@kopf.index("apps", "v1", "deployments", labels=MANAGED)
async def deployment_index(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace or "", name): child_projection(body, status=DEPLOYMENT_STATUS)}


@kopf.index("v1", "services", labels=MANAGED)
async def service_index(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace or "", name): child_projection(body)}


@kopf.index("v1", "configmaps", labels=MANAGED)
async def configmap_index(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace or "", name): child_projection(body)}


@kopf.index("v1", "pods", labels=MANAGED)
async def pod_index(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace or "", labels.get(LABEL_INSTANCE, "")): pod_projection(body)}
