"""What a change of a cached object means: the callbacks of the adapter's informers.

The adapter's informers (:mod:`trtserve_operator.kube.watch`) call these for every change
of a cached projection; the composition root wires them up at startup and calls
:meth:`Changes.start` once every cache has its first listing. Everything is
level-triggered: a change means "look again", never "this is what changed":

- a TRTModel listed (at start), created or changed: converge it (its own status writes
  come back as changes and cost a comparison), and take its benchmark's next step;
  deleted: forget it (its children are garbage-collected: no finalizer, nothing to clean
  up while the operator is down);
- a Deployment, Service or ConfigMap created, deleted, or changed in what converging
  compares (labels, ownerReferences, ``spec``/``data``): converge its TRTModel again (a
  child deleted or edited by hand is put back);
- a Deployment whose replica counts alone changed (the Deployment controller's status
  updates), or any pod change: only the model's status may have changed (a coalesced
  status update, see :mod:`trtserve_operator.services.coalesce`);
- a benchmark Job changed (started, finished, deleted): its TRTModel's benchmark step;
- the namespace's shared ``trtserve-monitoring`` ConfigMap changed or deleted: repair it
  (:mod:`.monitoring`).

Converges of one model do not overlap, and neither do its benchmark steps: changes that
arrive while one runs are handled once more right after it. A transient API error is
retried with backoff (:mod:`.follow`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any, Generic, TypeVar

from trtserve_operator.handlers.follow import follow
from trtserve_operator.handlers.monitoring import monitoring_config_changed
from trtserve_operator.handlers.retries import Retries
from trtserve_operator.handlers.view import CacheView
from trtserve_operator.services.benchmark import Benchmarks
from trtserve_operator.services.builders.monitoring import MONITORING_COMPONENT
from trtserve_operator.services.builders.names import (
    LABEL_COMPONENT,
    LABEL_INSTANCE,
    MONITORING_CONFIGMAP,
)
from trtserve_operator.services.reconciler import Reconciler

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

TRTMODEL = "TRTModel"
"""The reason of a converge that the TRTModel itself changed (the others: a child's kind)."""
RESYNC = "Resync"
"""A reason of a converge: the periodic resync (converge again from the caches)."""


def _labels(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> Mapping[str, Any]:
    labels = ((new or old or {}).get("metadata") or {}).get("labels") or {}
    return labels if isinstance(labels, Mapping) else {}


def _instance(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> str | None:
    instance = _labels(old, new).get(LABEL_INSTANCE)
    return str(instance) if instance else None


def _same_converged_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return old.get("metadata") == new.get("metadata") and old.get("spec") == new.get("spec")


class _OneAtATime(Generic[K]):
    """At most one task per key: ``work(key, reasons)``; reasons that arrive while it runs
    are handled by one more call right after it (so no change is missed and calls for one
    key never overlap). A failure is a defect: logged like kopf logs a failed handler."""

    def __init__(
        self,
        work: Callable[[K, set[str]], Awaitable[None]],
        failed: Callable[[K], str],
    ) -> None:
        self._work = work
        self._failed = failed
        self._pending: dict[K, set[str]] = {}
        self._running: dict[K, asyncio.Task[None]] = {}

    def submit(self, key: K, reason: str) -> None:
        self._pending.setdefault(key, set()).add(reason)
        if key not in self._running:
            self._running[key] = asyncio.create_task(self._run(key))

    async def _run(self, key: K) -> None:
        try:
            while reasons := self._pending.pop(key, None):
                await self._work(key, reasons)
        except Exception:
            logger.exception("%s failed", self._failed(key))
        finally:
            self._running.pop(key, None)

    def cancel(self) -> list[asyncio.Task[None]]:
        """Cancel every task and drop what is pending; the tasks, to wait for."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        self._running.clear()
        self._pending.clear()
        return tasks

    async def close(self) -> None:
        await asyncio.gather(*self.cancel(), return_exceptions=True)


class Changes:
    """The informers' callbacks, bound to the services and the operator's view."""

    def __init__(
        self,
        reconciler: Reconciler,
        benchmarks: Benchmarks,
        view: CacheView,
        retries: Retries,
    ) -> None:
        self._reconciler = reconciler
        self._benchmarks = benchmarks
        self._view = view
        self._retries = retries
        self._started = False
        self._converges: _OneAtATime[tuple[str, str]] = _OneAtATime(
            self._converge_model,
            lambda key: "Converging {}/{}".format(*key),
        )
        self._steps: _OneAtATime[tuple[str, str]] = _OneAtATime(
            self._benchmark_step,
            lambda key: "The benchmark step of {}/{}".format(*key),
        )
        self._repairs: _OneAtATime[str] = _OneAtATime(
            self._repair_monitoring,
            lambda namespace: f"Repairing {MONITORING_CONFIGMAP} in {namespace}",
        )

    def start(self) -> int:
        """Every cache has its first listing: converge every cached TRTModel (and take its
        benchmark's step); from now on TRTModel and Job changes are handled as they come.
        The number of TRTModels.

        Before this, TRTModel and Job changes are ignored: converging against caches that
        are still listing could create a child that exists. Nothing is lost, since the
        TRTModel cache read here already has every change that arrived.
        """
        self._started = True
        models = list(self._view.caches.trtmodels)
        for key in models:
            self._converges.submit(key, TRTMODEL)
            self._steps.submit(key, TRTMODEL)
        return len(models)

    def stop(self) -> None:
        """This process stopped leading: cancel the converges, benchmark steps, repairs,
        status updates and retries in flight, and forget what the services remembered of
        the models (another process writes now; :meth:`start` begins again from the
        caches). Child and pod changes are then ignored like TRTModel changes."""
        self._started = False
        for work in (self._converges, self._steps, self._repairs):
            work.cancel()
        self._retries.cancel_all()
        self._reconciler.reset()
        self._benchmarks.reset()

    @property
    def started(self) -> bool:
        return self._started

    def resync(self) -> int:
        """Converge every cached TRTModel again (the periodic resync); the number."""
        if not self._started:
            return 0
        models = list(self._view.caches.trtmodels)
        for key in models:
            self._converges.submit(key, RESYNC)
        return len(models)

    def trtmodel(
        self,
        namespace: str,
        name: str,
        old: Mapping[str, Any] | None,
        new: Mapping[str, Any] | None,
        group: str | None = None,
    ) -> None:
        if not self._started:
            return
        key = (namespace, name)
        if new is None:
            self._reconciler.forget(namespace, name)
            # Its own Jobs go with it (ownerReferences); those measuring it as a baseline
            # are stopped by the step.
            self._benchmarks.forget(namespace, name)
            logger.info("TRTModel %s/%s deleted; its children are garbage-collected", *key)
        else:
            self._converges.submit(key, TRTMODEL)
        self._steps.submit(key, TRTMODEL)

    def job(
        self,
        namespace: str,
        name: str,
        old: Mapping[str, Any] | None,
        new: Mapping[str, Any] | None,
        group: str | None = None,
    ) -> None:
        if self._started and group:
            self._steps.submit((namespace, group), "Job")

    def deployment(
        self,
        namespace: str,
        name: str,
        old: Mapping[str, Any] | None,
        new: Mapping[str, Any] | None,
        group: str | None = None,
    ) -> None:
        instance = _instance(old, new)
        if instance is None or not self._started:
            return
        if old is not None and new is not None and _same_converged_fields(old, new):
            self._reconciler.pods_changed(namespace, instance, self._view)
            return
        self._converges.submit((namespace, instance), "Deployment")

    def service(
        self,
        namespace: str,
        name: str,
        old: Mapping[str, Any] | None,
        new: Mapping[str, Any] | None,
        group: str | None = None,
    ) -> None:
        self._child_changed("Service", namespace, old, new)

    def disruption_budget(
        self,
        namespace: str,
        name: str,
        old: Mapping[str, Any] | None,
        new: Mapping[str, Any] | None,
        group: str | None = None,
    ) -> None:
        self._child_changed("PodDisruptionBudget", namespace, old, new)

    def _child_changed(
        self,
        kind: str,
        namespace: str,
        old: Mapping[str, Any] | None,
        new: Mapping[str, Any] | None,
    ) -> None:
        instance = _instance(old, new)
        if instance is not None and self._started:
            self._converges.submit((namespace, instance), kind)

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
            if self._started:
                self._repairs.submit(namespace, MONITORING_CONFIGMAP)
            return
        self._child_changed("ConfigMap", namespace, old, new)

    def pod(
        self,
        namespace: str,
        name: str,
        old: Mapping[str, Any] | None,
        new: Mapping[str, Any] | None,
        group: str | None = None,
    ) -> None:
        if group and self._started:
            self._reconciler.pods_changed(namespace, group, self._view)

    async def _converge_model(self, key: tuple[str, str], reasons: set[str]) -> None:
        namespace, name = key
        reconciler, view = self._reconciler, self._view
        retry = functools.partial(reconciler.reconverge, namespace, name, view)
        what = f"Converging {namespace}/{name}"
        if TRTMODEL in reasons:
            body = view.trtmodel(namespace, name)
            if body is None:
                return  # deleted meanwhile
            observe = functools.partial(reconciler.observe, body, view)
            await follow(self._retries, key, observe, retry=retry, what=what)
        if RESYNC in reasons and TRTMODEL not in reasons:
            await follow(self._retries, key, retry, retry=retry, what=what)
        kinds = reasons - {TRTMODEL, RESYNC}
        if kinds:
            changed = functools.partial(reconciler.children_changed, namespace, name, kinds, view)
            await follow(self._retries, key, changed, retry=retry, what=what)

    async def _benchmark_step(self, key: tuple[str, str], _: set[str]) -> None:
        """The benchmark of ``key`` and of those it is the baseline of, one step on
        (:mod:`trtserve_operator.services.benchmark`); retried apart from the converges."""
        step = functools.partial(self._benchmarks.model_changed, *key, self._view)
        what = "The benchmark of {}/{}".format(*key)
        await follow(self._retries, ("benchmark", *key), step, retry=step, what=what)

    async def _repair_monitoring(self, namespace: str, _: set[str]) -> None:
        await monitoring_config_changed(self._reconciler, namespace, self._view)

    async def close(self) -> None:
        await asyncio.gather(self._converges.close(), self._steps.close(), self._repairs.close())
