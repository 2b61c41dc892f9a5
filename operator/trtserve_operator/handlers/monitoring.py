"""Watch on the namespace-wide ``trtserve-monitoring`` ConfigMaps: put them back."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from trtserve_operator.handlers.indexes import MANAGED
from trtserve_operator.handlers.view import view_of
from trtserve_operator.kube.errors import KubeError
from trtserve_operator.services.builders.monitoring import MONITORING_COMPONENT
from trtserve_operator.services.builders.names import LABEL_COMPONENT, MONITORING_CONFIGMAP
from trtserve_operator.services.reconciler import Reconciler

logger = logging.getLogger(__name__)

SHARED = {**MANAGED, LABEL_COMPONENT: MONITORING_COMPONENT}


@kopf.on.event("v1", "configmaps", labels=SHARED)
async def monitoring_config_changed(
    namespace: str | None, name: str, memo: kopf.Memo, **_: Any
) -> None:
    """Edited or deleted: compare again, and repair it now if a model of the namespace
    mounts it (otherwise the next converge in the namespace does)."""
    if name != MONITORING_CONFIGMAP:
        return
    reconciler: Reconciler = memo["reconciler"]
    namespace = namespace or ""
    reconciler.monitoring.forget(namespace)
    view = view_of(memo)
    if not view.has_models(namespace):
        return
    try:
        await reconciler.monitoring.ensure(namespace, view)
    except KubeError as error:
        logger.warning("Repairing ConfigMap %s/%s failed: %s", namespace, name, error)
