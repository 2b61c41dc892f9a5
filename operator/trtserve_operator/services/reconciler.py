"""Reconcile TRTModels level-triggered: converge the children, then a coalesced status.

Every watch event of a TRTModel, its children or its pods leads here; nothing is stored on
the TRTModel itself except its status. Converging compares the rendered children with the
cached ones (the :class:`ClusterView`: kopf's TRTModel index and the adapter's informers),
so it is the same whether the operator saw every event or just started: a restart lists
every TRTModel and converges each once, from what exists.

- :meth:`Reconciler.observe`: a TRTModel event. A spec this process has already converged
  (same uid, same spec) is skipped, so the operator's own status writes cost no work.
- :meth:`Reconciler.child_changed`: a child changed or vanished: converge again (a no-op
  when it still matches).
- :meth:`Reconciler.pods_changed`: only the status can change (a pod, or a Deployment's
  replica counts).

Status updates are *requested* and run once per model per ``status_interval`` (see
:mod:`.coalesce`), computed from the cache as it is then; each posts at most one Event
(:func:`.status.announcement`). Writes go through one :class:`.limits.WriteLimiter`.

Extending: a service that adds children of its own passes a :data:`ChildRenderer` (a
pure builder) to the reconciler; its manifests are converged like the built-in children,
after them, with the same write limiter and the same handling of refusals. See
``docs/operator.md``, "Extending the reconciler". Two things are deliberately *not*
renderers: the namespace-wide ``trtserve-monitoring`` ConfigMap (one per namespace, owned
by no model: :class:`.monitoring.SharedMonitoringConfig`, called once per converge, writes
it once per namespace) and the A/B benchmark Job (it depends on both models' readiness and
is deleted once read: :mod:`.benchmark` runs it).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from trtserve_operator.api.v1alpha1 import Phase, TRTModelStatus
from trtserve_operator.api.validation import describe_validation_error
from trtserve_operator.kube.errors import (
    ConflictError,
    KubeError,
    NotFoundError,
    RejectedError,
    TransientError,
)
from trtserve_operator.kube.port import KubeApi
from trtserve_operator.kube.resources import BY_KIND, DEPLOYMENTS
from trtserve_operator.services.builders import Children, build_children
from trtserve_operator.services.builders.names import HASH_ANNOTATION, MONITORING_CONFIGMAP
from trtserve_operator.services.builders.target import Target
from trtserve_operator.services.coalesce import Coalescer
from trtserve_operator.services.converge import Action, Step, plan, removal
from trtserve_operator.services.limits import Priority, WriteLimiter
from trtserve_operator.services.metrics import Metrics
from trtserve_operator.services.monitoring import SharedMonitoringConfig
from trtserve_operator.services.status import (
    CHILD_REJECTED,
    INVALID_CHILD,
    Blocker,
    Transition,
    compute_status,
    invalid_spec_status,
    status_merge_patch,
    status_to_wire,
)
from trtserve_operator.services.targets import blocker_for, object_reference, target_from_body
from trtserve_operator.settings import Settings

logger = logging.getLogger(__name__)

Key = tuple[str, str]
"""(namespace, name) of a TRTModel."""

ChildRenderer = Callable[[Target, Settings], Sequence[dict[str, Any]]]
"""A pure builder of additional children of a TRTModel (each with the TRTModel's
ownerReference and ``managed-by`` label, of a kind the handlers index and watch)."""


class ClusterView(Protocol):
    """Cached reads of the objects the operator watches."""

    def child(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None: ...

    def pods(self, namespace: str, instance: str) -> Sequence[Mapping[str, Any]]: ...

    def trtmodel(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...


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


def rejection(error: RejectedError, kind: str, name: str) -> Blocker:
    """``Ready=False`` for a child the API server refused, with the server's message."""
    reason = INVALID_CHILD if error.code == 422 else CHILD_REJECTED
    return Blocker(reason, f"the API server refused {kind} {name}: {error}")


@dataclass
class ModelState:
    """What this process knows about one TRTModel (memory only, rebuilt after a restart)."""

    uid: str
    generation: int
    spec: Any
    """The spec as last seen (the parsed JSON of the event, never mutated): compared with
    ``==``, a C-level walk that is several times cheaper per event than canonical JSON."""
    target: Target | None = None
    invalid: str | None = None
    """The InvalidSpec message when the spec does not validate (then ``target`` is None)."""
    rejected: Blocker | None = None
    """A child write the API server refused in the last converge."""
    converged: bool = False
    """The last converge of this spec finished (no transient error left to retry)."""
    unseen: set[str] = field(default_factory=set)
    """Kinds of the children this process created whose watch event has not arrived yet:
    another event of the model (the Service's, say) must not create them a second time."""
    written: dict[str, Any] | None = None
    """The status last written by this process (the cache may lag behind it)."""
    children: Children | None = None
    """The children rendered from ``target`` (rendered once per spec: every event of a
    child compares with them)."""
    blocker: Blocker | None = None
    """Why the spec must not be rolled out, if it must not (found once per spec, like the
    children, not at every converge and status update)."""


class Reconciler:
    """Converge + status for TRTModels; one instance per operator process."""

    def __init__(
        self,
        kube: KubeApi,
        settings: Settings,
        metrics: Metrics | None = None,
        *,
        renderers: Sequence[ChildRenderer] = (),
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.metrics = metrics or Metrics()
        self._renderers = tuple(renderers)
        # Bounds how many models are rendered and applied at once (a restart resumes every
        # model together): keeps the memory peak small.
        self._slots = asyncio.Semaphore(settings.max_concurrent_reconciles)
        self.writes = WriteLimiter(settings.max_concurrent_writes)
        self._models: dict[Key, ModelState] = {}
        self._locks: dict[Key, asyncio.Lock] = {}
        self._view: ClusterView | None = None
        self.status_updates: Coalescer[Key] = Coalescer(
            self._update_status, settings.status_interval
        )
        self.monitoring = SharedMonitoringConfig(self.apply)

    # --- entry points (the handlers) ------------------------------------------------------

    async def observe(self, body: Mapping[str, Any], view: ClusterView) -> None:
        """A TRTModel was listed, created or changed: converge it unless this spec already
        was (its own status writes come back here as changes and cost nothing)."""
        self._view = view
        metadata = body.get("metadata", {})
        key = (str(metadata.get("namespace") or "default"), str(metadata["name"]))
        if metadata.get("deletionTimestamp"):
            return  # the garbage collector removes the children
        uid = str(metadata.get("uid") or "")
        spec = body.get("spec")
        state = self._models.get(key)
        if state is not None and state.uid == uid and state.spec == spec and state.converged:
            return
        # Validated and rendered within the model's slot too: after a restart with
        # hundreds of models the first writes go out at once, not after every spec is
        # validated (the API server would wait meanwhile).
        async with self._slots:
            state = self._remember(key, body, uid, spec, state)
            if state.target is None:
                self.status_updates.request(key)
                return
            await self._converge_in_slot(key, state, view)

    async def reconverge(self, namespace: str, name: str, view: ClusterView) -> None:
        """Converge again with the TRTModel as the cache has it now (retries)."""
        body = view.trtmodel(namespace, name)
        state = self._models.get((namespace, name))
        if body is None:
            return
        if state is not None:
            state.converged = False
        await self.observe(body, view)

    async def child_changed(
        self, namespace: str, instance: str, kind: str, view: ClusterView
    ) -> None:
        """A child (``kind``) of ``instance`` changed or vanished: put it back if it
        differs."""
        await self.children_changed(namespace, instance, (kind,), view)

    async def children_changed(
        self, namespace: str, instance: str, kinds: Iterable[str], view: ClusterView
    ) -> None:
        """Children of ``instance`` (of ``kinds``) changed or vanished: one converge."""
        self._view = view
        key = (namespace, instance)
        state = self._models.get(key)
        if state is None or state.target is None:
            return  # not seen yet (its own event converges it) or invalid
        kinds = set(kinds)
        echoes = kinds <= state.unseen
        state.unseen.difference_update(kinds)  # the cache has caught up with them
        if echoes and state.converged and self._as_created(key, state, kinds, view):
            # The watch shows what this process just created, unchanged: nothing else
            # changed with it (another child's change has its own event), so there is
            # nothing to compare again. The status may now read the real Deployment.
            self.status_updates.request(key)
            return
        await self._converge(key, state, view)

    def pods_changed(self, namespace: str, instance: str, view: ClusterView) -> None:
        """A serving pod of ``instance`` changed: its status may have."""
        self._view = view
        key = (namespace, instance)
        if key in self._models:
            self.status_updates.request(key)

    def forget(self, namespace: str, name: str) -> None:
        """Drop what is remembered about a deleted TRTModel."""
        key = (namespace, name)
        self._models.pop(key, None)
        self._locks.pop(key, None)
        self.status_updates.forget(key)
        self.metrics.forget_model(key)

    def reset(self) -> None:
        """Forget every model and cancel the status updates (this process stopped leading:
        what it wrote is no longer known to be what is stored). Their next converge
        starts from the caches, as after a restart."""
        self.status_updates.cancel_all()
        self._models.clear()
        self._locks.clear()
        self.monitoring.reset()
        self.metrics.forget_models()

    async def close(self) -> None:
        await self.status_updates.close()

    # --- converging ----------------------------------------------------------------------

    def _remember(
        self,
        key: Key,
        body: Mapping[str, Any],
        uid: str,
        spec: Any,
        previous: ModelState | None,
    ) -> ModelState:
        generation = int(body.get("metadata", {}).get("generation") or 0)
        state = ModelState(uid=uid, generation=generation, spec=spec)
        if previous is not None and previous.uid == uid:
            state.written = previous.written
        try:
            state.target = target_from_body(body)
            state.blocker = blocker_for(state.target, self.settings)
        except ValidationError as error:
            state.invalid = describe_validation_error(error, root="spec")
            state.converged = True
            logger.warning("TRTModel %s/%s is invalid: %s", *key, state.invalid)
        self._models[key] = state
        return state

    def _as_created(self, key: Key, state: ModelState, kinds: set[str], view: ClusterView) -> bool:
        """Whether every child of ``kinds`` is cached exactly as rendered (what the first
        converge of an ADDED child's echo would find)."""
        if state.rejected is not None or state.children is None:
            return False
        for kind in kinds:
            desired = state.children.of_kind(kind)
            if desired is None:
                return False  # a renderer's child, or one that is not wanted: compare all
            actual = view.child(kind, key[0], desired["metadata"]["name"])
            if actual is None or plan(desired, actual).action is not Action.NOOP:
                return False
        for kind in kinds:  # compared and up to date, as a converge would count them
            self.metrics.inc("trtserve_child_actions_total", kind=kind, action=Action.NOOP.value)
        return True

    def _children(self, state: ModelState, target: Target) -> Children:
        if state.children is None:
            state.children = build_children(target, self.settings)
        return state.children

    def _lock(self, key: Key) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    @asynccontextmanager
    async def _counting_errors(self) -> AsyncIterator[None]:
        try:
            yield
        except KubeError as error:
            self.metrics.inc("trtserve_api_errors_total", error=type(error).__name__)
            raise

    async def _converge(self, key: Key, state: ModelState, view: ClusterView) -> None:
        """Create/patch what differs from the rendered children, then request a status.

        A child the API server refuses (422 and other 4xx) does not stop the others: it
        becomes ``Ready=False`` with the server's message. Transient errors propagate
        (the caller retries); the status is requested either way.
        """
        async with self._slots:
            await self._converge_in_slot(key, state, view)

    async def _converge_in_slot(self, key: Key, state: ModelState, view: ClusterView) -> None:
        """:meth:`_converge` for a caller that holds one of the reconcile slots."""
        target = state.target
        assert target is not None
        try:
            async with self._lock(key), self._counting_errors():
                blocker = state.blocker
                children = self._children(state, target)
                # The first child the API server refused, as (error, kind, name).
                refused = await self._ensure_monitoring(key, view)
                # A refused spec keeps what runs (a Deployment of an earlier spec and its
                # Service) but gets nothing new: no Service with no pod behind it.
                running = view.child(DEPLOYMENTS.kind, *key) is not None
                wanted = children.wanted(
                    deployment=blocker is None, service=blocker is None or running
                )
                for render in self._renderers:
                    wanted.extend(render(target, self.settings))
                for step in self._steps(key, state, view, wanted, children.unwanted()):
                    kind, meta = str(step.desired["kind"]), step.desired["metadata"]
                    try:
                        await self.apply(step)
                    except RejectedError as error:
                        logger.error("TRTModel %s/%s: %s", *key, error)
                        self.metrics.inc("trtserve_api_errors_total", error=type(error).__name__)
                        refused = refused or (error, kind, meta["name"])
                        continue
                    if step.action is Action.CREATE:
                        state.unseen.add(kind)
                    if step.action is not Action.NOOP:
                        done = {Action.CREATE: "Created", Action.DELETE: "Deleted"}
                        logger.info(
                            "%s %s %s/%s",
                            done.get(step.action, "Patched"),
                            kind,
                            key[0],
                            meta["name"],
                        )
                state.rejected = rejection(*refused) if refused else None
                state.converged = True
        finally:
            self.status_updates.request(key)
        if refused is not None:
            # The status says Ready=False with the server's message; raising lets the
            # caller retry the converge on the refusal schedule (handlers/retries.py).
            raise refused[0]

    @staticmethod
    def _steps(
        key: Key,
        state: ModelState,
        view: ClusterView,
        wanted: Sequence[Mapping[str, Any]],
        unwanted: Sequence[str],
    ) -> list[Step]:
        """What converging does to each child: create, patch or leave alone what is
        wanted, delete what is not (see :func:`.converge.removal`)."""
        steps = []
        for desired in wanted:
            kind, meta = str(desired["kind"]), desired["metadata"]
            actual = view.child(kind, meta["namespace"], meta["name"])
            if actual is None and kind in state.unseen:
                steps.append(Step(Action.NOOP, desired))  # created a moment ago
            else:
                steps.append(plan(desired, actual))
        for kind in unwanted:
            gone = {"kind": kind, "metadata": {"namespace": key[0], "name": key[1]}}
            steps.append(removal(gone, view.child(kind, *key), state.uid))
        return steps

    async def _ensure_monitoring(
        self, key: Key, view: ClusterView
    ) -> tuple[RejectedError, str, str] | None:
        """The namespace's ``trtserve-monitoring`` ConfigMap, which every serving pod
        mounts: created by the namespace's first converge, not looked at again by the
        others (see :class:`.monitoring.SharedMonitoringConfig`). A refusal is the model's
        ``Ready=False``, like a refused child."""
        try:
            done = await self.monitoring.ensure(key[0], view)
        except RejectedError as error:
            logger.error("TRTModel %s/%s: %s", *key, error)
            self.metrics.inc("trtserve_api_errors_total", error=type(error).__name__)
            return error, "ConfigMap", MONITORING_CONFIGMAP
        if done is not None:
            logger.info("%s in namespace %s", done, key[0])
        return None

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
        if step.action is Action.DELETE:
            async with self.writes.slot(Priority.CHILD):
                await self.kube.delete(resource, namespace, name)
            return None
        if step.action is Action.CREATE:
            try:
                async with self.writes.slot(Priority.CHILD):
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
        try:
            async with self.writes.slot(Priority.CHILD):
                return await self.kube.merge_patch(resource, namespace, name, step.patch)
        except NotFoundError:
            async with self.writes.slot(Priority.CHILD):
                return await self.kube.create(desired)

    # --- status --------------------------------------------------------------------------

    async def _update_status(self, key: Key) -> None:
        """Write the status of ``key`` if it changed, and post its Event if it has one."""
        state = self._models.get(key)
        view = self._view
        if state is None or view is None:
            return
        body = view.trtmodel(*key)
        metadata = (body or {}).get("metadata", {})
        if (
            body is None
            or metadata.get("deletionTimestamp")
            or metadata.get("uid", "") != state.uid
        ):
            return
        stored = state.written if state.written is not None else dict(body.get("status") or {})
        new, event, observed = self._desired_status(key, state, view, stored)
        patch = status_merge_patch(stored, new)
        async with self._counting_errors():
            if patch:
                async with self.writes.slot(Priority.STATUS):
                    await self.kube.patch_trtmodel_status(*key, patch)
                self.metrics.inc("trtserve_status_writes_total")
                state.written = new
        if observed is not None:
            # After the write: a conversion report is counted once, when it reaches the
            # status (not again if the write failed and is retried).
            self.metrics.observe_status(key, *observed)
        if event is not None:
            await self.announce(key, state.uid, event)

    def _desired_status(
        self, key: Key, state: ModelState, view: ClusterView, stored: Mapping[str, Any]
    ) -> tuple[
        dict[str, Any], Transition | None, tuple[TRTModelStatus | None, TRTModelStatus] | None
    ]:
        """The status to write, its Event, and (previous, new) for the model metrics."""
        if state.target is None:
            assert state.invalid is not None
            self.metrics.set_phase(key, Phase.FAILED.value)
            new, event = invalid_spec_status(
                stored, generation=state.generation, message=state.invalid, now=utc_now()
            )
            return new, event, None
        target = state.target
        blocker = state.blocker or state.rejected
        deployment = view.child(DEPLOYMENTS.kind, *key)
        if deployment is None and DEPLOYMENTS.kind in state.unseen:
            # Created a moment ago and not in the cache yet: what was rendered stands in.
            deployment = self._children(state, target).deployment
        config_hash = (
            (deployment or {})
            .get("spec", {})
            .get("template", {})
            .get("metadata", {})
            .get("annotations", {})
            .get(HASH_ANNOTATION)
        )
        previous = _parse_status(stored)
        result = compute_status(
            target,
            deployment=deployment,
            pods=view.pods(*key),
            previous=previous,
            now=utc_now(),
            config_hash=config_hash,
            blocker=blocker,
        )
        return status_to_wire(result.status), result.event, (previous, result.status)

    async def announce(self, key: Key, uid: str, transition: Transition) -> None:
        """Post ``transition`` as an Event; a failure is logged, never retried (the status,
        which says the same, is what must be right)."""
        event_type = "Warning" if transition.warning else "Normal"
        reference = object_reference(
            {"metadata": {"namespace": key[0], "name": key[1], "uid": uid}}
        )
        try:
            async with self.writes.slot(Priority.STATUS):
                await self.kube.create_event(
                    reference,
                    event_type=event_type,
                    reason=transition.reason,
                    message=transition.message,
                )
        except KubeError as error:
            self.metrics.inc("trtserve_api_errors_total", error=type(error).__name__)
            logger.warning("Event %s on %s/%s not posted: %s", transition.reason, *key, error)
            return
        self.metrics.inc("trtserve_events_total", type=event_type)
