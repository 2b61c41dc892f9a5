"""Changes of the children and pods the adapter watches itself: what they mean for their
TRTModel.

The adapter's informers (:mod:`trtserve_operator.kube.watch`) call these for every change
of a cached projection; the composition root wires them up at startup. Level-triggered
like the kopf handlers:

- a Deployment, Service or ConfigMap created, deleted, or changed in what converging
  compares (labels, ownerReferences, ``spec``/``data``): converge its TRTModel again (a
  child deleted or edited by hand is put back). Converges of one model do not overlap:
  changes that arrive while one runs are converged once more right after it;
- a Deployment whose replica counts alone changed (the Deployment controller's status
  updates), or any pod change: only the model's status may have changed (a coalesced
  status update, see :mod:`trtserve_operator.services.coalesce`);
- the namespace's shared ``trtserve-monitoring`` ConfigMap changed or deleted: repair it
  (:mod:`.monitoring`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping
from typing import Any

from trtserve_operator.handlers.follow import follow
from trtserve_operator.handlers.monitoring import monitoring_config_changed
from trtserve_operator.handlers.retries import Retries
from trtserve_operator.handlers.view import IndexView
from trtserve_operator.services.builders.monitoring import MONITORING_COMPONENT
from trtserve_operator.services.builders.names import (
    LABEL_COMPONENT,
    LABEL_INSTANCE,
    MONITORING_CONFIGMAP,
)
from trtserve_operator.services.reconciler import Reconciler

logger = logging.getLogger(__name__)

Key = tuple[str, str]


def _labels(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> Mapping[str, Any]:
    labels = ((new or old or {}).get("metadata") or {}).get("labels") or {}
    return labels if isinstance(labels, Mapping) else {}


def _instance(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> str | None:
    instance = _labels(old, new).get(LABEL_INSTANCE)
    return str(instance) if instance else None


def _same_converged_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return old.get("metadata") == new.get("metadata") and old.get("spec") == new.get("spec")


class ChildChanges:
    """The informers' callbacks, bound to the reconciler and the operator's view."""

    def __init__(self, reconciler: Reconciler, view: IndexView, retries: Retries) -> None:
        self._reconciler = reconciler
        self._view = view
        self._retries = retries
        self._pending: dict[Key, set[str]] = {}
        self._running: dict[Key, asyncio.Task[None]] = {}
        self._repairs: dict[str, asyncio.Task[None]] = {}
        self._repair_again: set[str] = set()

    def deployment(
        self,
        namespace: str,
        name: str,
        old: Mapping[str, Any] | None,
        new: Mapping[str, Any] | None,
        group: str | None = None,
    ) -> None:
        instance = _instance(old, new)
        if instance is None:
            return
        if old is not None and new is not None and _same_converged_fields(old, new):
            self._reconciler.pods_changed(namespace, instance, self._view)
            return
        self._converge((namespace, instance), "Deployment")

    def service(
        self,
        namespace: str,
        name: str,
        old: Mapping[str, Any] | None,
        new: Mapping[str, Any] | None,
        group: str | None = None,
    ) -> None:
        instance = _instance(old, new)
        if instance is not None:
            self._converge((namespace, instance), "Service")

    def configmap(
        self,
        namespace: str,
        name: str,
        old: Mapping[str, Any] | None,
        new: Mapping[str, Any] | None,
        group: str | None = None,
    ) -> None:
        if (
            name == MONITORING_CONFIGMAP
            and _labels(old, new).get(LABEL_COMPONENT) == MONITORING_COMPONENT
        ):
            self._repair(namespace)
            return
        instance = _instance(old, new)
        if instance is not None:
            self._converge((namespace, instance), "ConfigMap")

    def pod(
        self,
        namespace: str,
        name: str,
        old: Mapping[str, Any] | None,
        new: Mapping[str, Any] | None,
        group: str | None = None,
    ) -> None:
        if group:
            self._reconciler.pods_changed(namespace, group, self._view)

    def _converge(self, key: Key, kind: str) -> None:
        self._pending.setdefault(key, set()).add(kind)
        if key not in self._running:
            self._running[key] = asyncio.create_task(self._run(key))

    async def _run(self, key: Key) -> None:
        reconciler, view = self._reconciler, self._view
        try:
            while kinds := self._pending.pop(key, None):
                await follow(
                    self._retries,
                    key,
                    functools.partial(reconciler.children_changed, *key, kinds, view),
                    retry=functools.partial(reconciler.reconverge, *key, view),
                )
        except Exception:  # a defect: logged like kopf logs a failed handler
            logger.exception("Converging %s/%s after a child changed failed", *key)
        finally:
            self._running.pop(key, None)

    def _repair(self, namespace: str) -> None:
        if namespace in self._repairs:
            self._repair_again.add(namespace)
        else:
            self._repairs[namespace] = asyncio.create_task(self._run_repair(namespace))

    async def _run_repair(self, namespace: str) -> None:
        try:
            while True:
                await monitoring_config_changed(self._reconciler, namespace, self._view)
                if namespace not in self._repair_again:
                    return
                self._repair_again.discard(namespace)
        except Exception:  # a defect: logged like kopf logs a failed handler
            logger.exception("Repairing %s in %s failed", MONITORING_CONFIGMAP, namespace)
        finally:
            self._repairs.pop(namespace, None)

    async def close(self) -> None:
        tasks = [*self._running.values(), *self._repairs.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._pending.clear()
