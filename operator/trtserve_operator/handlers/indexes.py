"""kopf indexes: the operator's read cache of TRTModels, their children and pods.

Each index stores a plain-dict projection (no managedFields), keyed by
``(namespace, name)`` (pods: ``(namespace, app.kubernetes.io/instance)``). kopf fills
them from the watch streams before any handler runs, so reading them costs no request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from trtserve_operator.api.v1alpha1 import GROUP, PLURAL, VERSION
from trtserve_operator.services.builders.names import LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY

MANAGED = {LABEL_MANAGED_BY: MANAGED_BY}


def plain(value: Any) -> Any:
    """A deep copy of kopf's body views as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def projection(body: Mapping[str, Any], *, keep_status: bool = True) -> dict[str, Any]:
    metadata = {k: v for k, v in body.get("metadata", {}).items() if k != "managedFields"}
    projected = {k: v for k, v in body.items() if k not in ("metadata", "status")}
    projected["metadata"] = metadata
    if keep_status and "status" in body:
        projected["status"] = body["status"]
    result: dict[str, Any] = plain(projected)
    return result


@kopf.index(GROUP, VERSION, PLURAL)
def trtmodel_index(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace or "", name): projection(body)}


@kopf.index("apps", "v1", "deployments", labels=MANAGED)
def deployment_index(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace or "", name): projection(body)}


@kopf.index("v1", "services", labels=MANAGED)
def service_index(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace or "", name): projection(body, keep_status=False)}


@kopf.index("v1", "configmaps", labels=MANAGED)
def configmap_index(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    return {(namespace or "", name): projection(body, keep_status=False)}


@kopf.index("v1", "pods", labels=MANAGED)
def pod_index(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    """Only what the status needs: name, annotations, deletion and container statuses."""
    metadata = body.get("metadata", {})
    status = body.get("status", {})
    return {
        (namespace or "", labels.get(LABEL_INSTANCE, "")): plain(
            {
                "metadata": {
                    "name": metadata.get("name"),
                    "annotations": metadata.get("annotations") or {},
                    "deletionTimestamp": metadata.get("deletionTimestamp"),
                },
                "status": {
                    "phase": status.get("phase"),
                    "conditions": status.get("conditions") or [],
                    "initContainerStatuses": status.get("initContainerStatuses") or [],
                },
            }
        )
    }
