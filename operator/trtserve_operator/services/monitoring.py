"""The namespace-wide ``trtserve-monitoring`` ConfigMap every serving pod mounts.

TF Serving's monitoring file is identical for every model, so one ConfigMap per namespace
holds it (see :mod:`.builders.monitoring`). Converging a model makes sure it exists with
the rendered content; it is created by the first model of a namespace and costs nothing
afterwards: the cache is read, and a namespace whose ConfigMap this process already
applied is not looked at again until the ConfigMap changes or disappears (the watch
handler calls :meth:`SharedMonitoringConfig.forget`), so models converging right after it
was created do not see a stale cache and try again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from trtserve_operator.services.builders.monitoring import build_monitoring_configmap
from trtserve_operator.services.builders.names import MONITORING_CONFIGMAP
from trtserve_operator.services.converge import Action, Step, plan


class ChildView(Protocol):
    def child(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None: ...


Apply = Callable[[Step], Awaitable[Mapping[str, Any] | None]]


class SharedMonitoringConfig:
    """Creates or repairs ``trtserve-monitoring`` in the namespaces that have models."""

    def __init__(self, apply: Apply) -> None:
        self._apply = apply
        self._applied: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}

    def reset(self) -> None:
        """Compare every namespace's ConfigMap again at its next converge."""
        self._applied.clear()
        self._locks.clear()

    def forget(self, namespace: str) -> None:
        """The ConfigMap changed or was deleted: compare it again on the next converge."""
        self._applied.discard(namespace)

    async def ensure(self, namespace: str, view: ChildView) -> str | None:
        """Create or patch the namespace's ConfigMap if needed; what was done, if anything."""
        if namespace in self._applied:
            return None
        async with self._locks.setdefault(namespace, asyncio.Lock()):
            if namespace in self._applied:  # another model of the namespace just did it
                return None
            desired = build_monitoring_configmap(namespace)
            step = plan(desired, view.child("ConfigMap", namespace, MONITORING_CONFIGMAP))
            await self._apply(step)
            self._applied.add(namespace)
        if step.action is Action.NOOP:
            return None
        done = "created" if step.action is Action.CREATE else "patched"
        return f"{done} ConfigMap {MONITORING_CONFIGMAP}"
