"""The namespace-wide ``trtserve-monitoring`` ConfigMaps: put them back when they change.

Called from :mod:`.children` when the adapter's ConfigMap informer sees the shared
ConfigMap of a namespace change or disappear.
"""

from __future__ import annotations

import logging

from trtserve_operator.handlers.view import CacheView
from trtserve_operator.kube.errors import KubeError
from trtserve_operator.services.builders.names import MONITORING_CONFIGMAP
from trtserve_operator.services.reconciler import Reconciler

logger = logging.getLogger(__name__)


async def monitoring_config_changed(
    reconciler: Reconciler, namespace: str, view: CacheView
) -> None:
    """Edited or deleted: compare again, and repair it now if a model of the namespace
    mounts it (otherwise the next converge in the namespace does)."""
    reconciler.monitoring.forget(namespace)
    if not view.has_models(namespace):
        return
    try:
        await reconciler.monitoring.ensure(namespace, view)
    except KubeError as error:
        logger.warning(
            "Repairing ConfigMap %s/%s failed: %s", namespace, MONITORING_CONFIGMAP, error
        )
