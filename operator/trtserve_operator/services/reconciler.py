"""Reconcile one TRTModel: converge its children, then write a truthful status.

Reads come from a :class:`ClusterView` (kopf's in-memory indexes of the watched objects),
so converging an unchanged model costs no request at all; writes go through the adapter.
The last status written per model is remembered, so two events racing before the watch
stream shows the new status do not announce the same transition twice.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from pydantic import ValidationError

from trtserve_operator.api.v1alpha1 import TRTModelStatus
from trtserve_operator.kube.errors import ConflictError, KubeError, NotFoundError, TransientError
from trtserve_operator.kube.port import KubeApi
from trtserve_operator.kube.resources import BY_KIND, DEPLOYMENTS
from trtserve_operator.services.builders import build_children
from trtserve_operator.services.builders.names import HASH_ANNOTATION
from trtserve_operator.services.builders.target import Target
from trtserve_operator.services.converge import Action, Step, plan
from trtserve_operator.services.metrics import Metrics
from trtserve_operator.services.monitoring import SharedMonitoringConfig
from trtserve_operator.services.status import (
    Blocker,
    Transition,
    compute_status,
    status_merge_patch,
    status_to_wire,
)
from trtserve_operator.services.targets import blocker_for, object_reference
from trtserve_operator.settings import Settings

logger = logging.getLogger(__name__)


class ClusterView(Protocol):
    """Cached reads of the objects the operator watches."""

    def child(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None: ...

    def pods(self, namespace: str, instance: str) -> Sequence[Mapping[str, Any]]: ...


def _parse_status(wire: Mapping[str, Any]) -> TRTModelStatus | None:
    """The stored status, or ``None`` when there is none or it was mangled by hand."""
    if not wire:
        return None
    try:
        return TRTModelStatus.model_validate(wire)
    except ValidationError:
        logger.warning("Ignoring an unreadable status: it is rewritten from scratch")
        return None


def utc_now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Reconciler:
    """Converge + status for TRTModels; one instance per operator process."""

    def __init__(self, kube: KubeApi, settings: Settings, metrics: Metrics | None = None) -> None:
        self.kube = kube
        self.settings = settings
        self.metrics = metrics or Metrics()
        # Bounds how many models are rendered and applied at once (a restart resumes every
        # model together): keeps the memory peak and the burst on the API server small.
        self._slots = asyncio.Semaphore(settings.max_concurrent_reconciles)
        self._written: dict[tuple[str, str], dict[str, Any]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.monitoring = SharedMonitoringConfig(self.apply)

    def _lock(self, target: Target) -> asyncio.Lock:
        return self._locks.setdefault((target.namespace, target.name), asyncio.Lock())

    @asynccontextmanager
    async def _counting_errors(self) -> AsyncIterator[None]:
        try:
            yield
        except KubeError as error:
            self.metrics.inc("trtserve_api_errors_total", error=type(error).__name__)
            raise

    def forget(self, namespace: str, name: str) -> None:
        """Drop what is remembered about a deleted TRTModel."""
        self._written.pop((namespace, name), None)
        self._locks.pop((namespace, name), None)
        self.metrics.forget_model((namespace, name))

    async def apply(self, step: Step) -> Mapping[str, Any] | None:
        """Carry out one converge step; returns the object as the API returned it."""
        desired = step.desired
        resource = BY_KIND[str(desired["kind"])]
        namespace = desired["metadata"]["namespace"]
        name = desired["metadata"]["name"]
        self.metrics.inc(
            "trtserve_child_actions_total", kind=resource.kind, action=step.action.value
        )
        if step.action is Action.NOOP:
            return None
        if step.action is Action.CREATE:
            try:
                return await self.kube.create(desired)
            except ConflictError as conflict:
                # The cache had not seen it yet: compare with the real object instead.
                actual = await self.kube.get(resource, namespace, name)
                retry = plan(desired, actual)
                if retry.action is Action.CREATE:
                    # Still being deleted (foreground deletion): try again later.
                    raise TransientError(f"{conflict} (the old object is being deleted)") from None
                return await self.apply(retry)
        assert step.patch is not None
        logger.info("Patching %s %s/%s back to the rendered spec", resource.kind, namespace, name)
        try:
            return await self.kube.merge_patch(resource, namespace, name, step.patch)
        except NotFoundError:
            return await self.kube.create(desired)

    async def converge(
        self,
        target: Target,
        view: ClusterView,
        status: Mapping[str, Any] | None,
    ) -> None:
        """Create/patch what differs from the rendered children, then update the status."""
        async with self._slots, self._lock(target), self._counting_errors():
            blocker = blocker_for(target, self.settings)
            children = build_children(target, self.settings)
            wanted = [children.configmap, children.service]
            if blocker is None:
                wanted.append(children.deployment)
            applied: dict[str, Mapping[str, Any] | None] = {}
            changes: list[str] = []
            shared = await self.monitoring.ensure(target.namespace, view)
            if shared is not None:
                changes.append(shared)
            for desired in wanted:
                meta = desired["metadata"]
                actual = view.child(desired["kind"], meta["namespace"], meta["name"])
                step = plan(desired, actual)
                applied[desired["kind"]] = await self.apply(step) or actual
                if step.action is not Action.NOOP:
                    done = "created" if step.action is Action.CREATE else "patched"
                    changes.append(f"{done} {desired['kind']} {meta['name']}")
            if changes:
                await self.announce(
                    target, Transition(warning=False, reason="Applied", message="; ".join(changes))
                )
            await self._update_status(target, view, status, blocker, applied.get("Deployment"))

    async def refresh_status(
        self, target: Target, view: ClusterView, status: Mapping[str, Any] | None
    ) -> None:
        """Recompute the status after a Deployment or Pod changed."""
        async with self._slots, self._lock(target), self._counting_errors():
            await self._update_status(target, view, status, blocker_for(target, self.settings))

    async def _update_status(
        self,
        target: Target,
        view: ClusterView,
        status: Mapping[str, Any] | None,
        blocker: Blocker | None,
        deployment: Mapping[str, Any] | None = None,
    ) -> None:
        key = (target.namespace, target.name)
        if deployment is None:
            deployment = view.child(DEPLOYMENTS.kind, target.namespace, target.name)
        config_hash = (
            (deployment or {})
            .get("spec", {})
            .get("template", {})
            .get("metadata", {})
            .get("annotations", {})
            .get(HASH_ANNOTATION)
        )
        old = self._written.get(key)
        if old is None:
            old = dict(status or {})
        previous = _parse_status(old)
        result = compute_status(
            target,
            deployment=deployment,
            pods=view.pods(target.namespace, target.name),
            previous=previous,
            now=utc_now(),
            config_hash=config_hash,
            blocker=blocker,
        )
        self.metrics.observe_status(key, previous, result.status)
        new = status_to_wire(result.status)
        patch = status_merge_patch(old, new)
        if patch:
            await self.kube.patch_trtmodel_status(target.namespace, target.name, patch)
            self.metrics.inc("trtserve_status_writes_total")
            self._written[key] = new
        for transition in result.transitions:
            await self.announce(target, transition)

    async def announce(self, target: Target, transition: Transition) -> None:
        event_type = "Warning" if transition.warning else "Normal"
        self.metrics.inc("trtserve_events_total", type=event_type)
        await self.kube.create_event(
            object_reference(target),
            event_type=event_type,
            reason=transition.reason,
            message=transition.message,
        )

    async def report_invalid(
        self, body: Mapping[str, Any], status: Mapping[str, Any] | None, message: str
    ) -> None:
        """Ready=False/InvalidSpec on a TRTModel whose spec does not validate."""
        metadata = body.get("metadata", {})
        namespace = str(metadata.get("namespace") or "default")
        name = str(metadata["name"])
        generation = int(metadata.get("generation") or 0)
        old = dict(status or {})
        conditions = [c for c in old.get("conditions") or [] if c.get("type") != "Ready"]
        before: Mapping[str, Any] = next(
            (c for c in old.get("conditions") or [] if c.get("type") == "Ready"), {}
        )
        unchanged = before.get("status") == "False"
        ready = {
            "type": "Ready",
            "status": "False",
            "observedGeneration": generation,
            "lastTransitionTime": before.get("lastTransitionTime") if unchanged else utc_now(),
            "reason": "InvalidSpec",
            "message": message,
        }
        self.metrics.set_phase((namespace, name), "Failed")
        new = {**old, "phase": "Failed", "observedGeneration": generation}
        new["conditions"] = [*conditions, ready]
        patch = status_merge_patch(old, new)
        if patch:
            await self.kube.patch_trtmodel_status(namespace, name, patch)
        if before.get("reason") != "InvalidSpec":
            await self.kube.create_event(
                object_reference(body), event_type="Warning", reason="InvalidSpec", message=message
            )
