"""Reconcile TRTModels level-triggered: converge the children, then a coalesced status.

Every watch event of a TRTModel, its children or its pods leads here; nothing is stored on
the TRTModel itself except its status. Converging compares the rendered children with the
cached ones (kopf's indexes), so it is the same whether the operator saw every event or
just started: a restart lists every TRTModel and converges each once, from what exists.

- :meth:`Reconciler.observe`: a TRTModel event. A spec this process has already converged
  (same uid, same spec) is skipped, so the operator's own status writes cost no work.
- :meth:`Reconciler.child_changed`: a child changed or vanished: converge again (a no-op
  when it still matches).
- :meth:`Reconciler.pods_changed`: only the status can change.

Status updates are *requested* and run once per model per ``status_interval`` (see
:mod:`.coalesce`), computed from the cache as it is then; each posts at most one Event
(:func:`.status.announcement`). Writes go through one :class:`.limits.WriteLimiter`.

Extending: a service that adds children of its own (a benchmark Job, say) passes a
:data:`ChildRenderer` (a pure builder) to the reconciler; its manifests are converged
like the built-in children, after them, with the same write limiter and the same
handling of refusals. See ``docs/operator.md``, "Extending the reconciler".
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from trtserve_operator.api.v1alpha1 import TRTModelStatus
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
from trtserve_operator.services.builders.names import HASH_ANNOTATION
from trtserve_operator.services.builders.target import Target
from trtserve_operator.services.coalesce import Coalescer
from trtserve_operator.services.converge import Action, Step, plan
from trtserve_operator.services.limits import Priority, WriteLimiter
from trtserve_operator.services.metrics import Metrics
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


def spec_fingerprint(spec: Any) -> str:
    """Canonical JSON of a spec: equal exactly when the specs are equal."""
    return json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)


def rejection(error: RejectedError, kind: str, name: str) -> Blocker:
    """``Ready=False`` for a child the API server refused, with the server's message."""
    reason = INVALID_CHILD if error.code == 422 else CHILD_REJECTED
    return Blocker(reason, f"the API server refused {kind} {name}: {error}")


@dataclass
class ModelState:
    """What this process knows about one TRTModel (memory only, rebuilt after a restart)."""

    uid: str
    generation: int
    fingerprint: str
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
        fingerprint = spec_fingerprint(body.get("spec"))
        state = self._models.get(key)
        if (
            state is not None
            and state.uid == uid
            and state.fingerprint == fingerprint
            and state.converged
        ):
            return
        state = self._remember(key, body, uid, fingerprint, state)
        if state.target is None:
            self.status_updates.request(key)
            return
        await self._converge(key, state, view)

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
        self._view = view
        key = (namespace, instance)
        state = self._models.get(key)
        if state is None or state.target is None:
            return  # not seen yet (its own event converges it) or invalid
        state.unseen.discard(kind)  # the cache has caught up with it (or its deletion)
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

    async def close(self) -> None:
        await self.status_updates.close()

    # --- converging ----------------------------------------------------------------------

    def _remember(
        self,
        key: Key,
        body: Mapping[str, Any],
        uid: str,
        fingerprint: str,
        previous: ModelState | None,
    ) -> ModelState:
        generation = int(body.get("metadata", {}).get("generation") or 0)
        state = ModelState(uid=uid, generation=generation, fingerprint=fingerprint)
        if previous is not None and previous.uid == uid:
            state.written = previous.written
        try:
            state.target = target_from_body(body)
        except ValidationError as error:
            state.invalid = describe_validation_error(error, root="spec")
            state.converged = True
            logger.warning("TRTModel %s/%s is invalid: %s", *key, state.invalid)
        self._models[key] = state
        return state

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
        target = state.target
        assert target is not None
        try:
            async with self._slots, self._lock(key), self._counting_errors():
                blocker = blocker_for(target, self.settings)
                children = self._children(state, target)
                rejected: Blocker | None = None
                wanted = children.wanted(deployment=blocker is None)
                for render in self._renderers:
                    wanted.extend(render(target, self.settings))
                for desired in wanted:
                    kind, meta = str(desired["kind"]), desired["metadata"]
                    actual = view.child(kind, meta["namespace"], meta["name"])
                    step = plan(desired, actual)
                    if actual is None and kind in state.unseen:
                        step = Step(Action.NOOP, desired)  # created a moment ago
                    try:
                        await self.apply(step)
                    except RejectedError as error:
                        logger.error("TRTModel %s/%s: %s", *key, error)
                        self.metrics.inc("trtserve_api_errors_total", error=type(error).__name__)
                        rejected = rejected or rejection(error, kind, meta["name"])
                        continue
                    if step.action is Action.CREATE:
                        state.unseen.add(kind)
                    if step.action is not Action.NOOP:
                        done = "Created" if step.action is Action.CREATE else "Patched"
                        logger.info("%s %s %s/%s", done, kind, key[0], meta["name"])
                state.rejected = rejected
                state.converged = True
        finally:
            self.status_updates.request(key)

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
        new, event = self._desired_status(key, state, view, stored)
        patch = status_merge_patch(stored, new)
        async with self._counting_errors():
            if patch:
                async with self.writes.slot(Priority.STATUS):
                    await self.kube.patch_trtmodel_status(*key, patch)
                self.metrics.inc("trtserve_status_writes_total")
                state.written = new
        if event is not None:
            await self.announce(key, state.uid, event)

    def _desired_status(
        self, key: Key, state: ModelState, view: ClusterView, stored: Mapping[str, Any]
    ) -> tuple[dict[str, Any], Transition | None]:
        if state.target is None:
            assert state.invalid is not None
            return invalid_spec_status(
                stored, generation=state.generation, message=state.invalid, now=utc_now()
            )
        target = state.target
        blocker = blocker_for(target, self.settings) or state.rejected
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
        result = compute_status(
            target,
            deployment=deployment,
            pods=view.pods(*key),
            previous=_parse_status(stored),
            now=utc_now(),
            config_hash=config_hash,
            blocker=blocker,
        )
        return status_to_wire(result.status), result.event

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
