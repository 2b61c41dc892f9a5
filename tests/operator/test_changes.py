"""What a change of an informer-cached object asks of the services (handlers/changes.py):
a TRTModel is converged (every cached one once the caches are listed, none before) and
its benchmark stepped; a child is converged for what converging compares, a status update
for replica counts and pods; a benchmark Job steps its model's benchmark; converges of
one model never overlap and changes that arrive during one are converged once more,
together; transient errors are retried."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any, cast

from trtserve_operator.handlers.changes import Changes
from trtserve_operator.handlers.leadership import Leadership
from trtserve_operator.handlers.retries import Backoff, Retries
from trtserve_operator.handlers.view import Caches, CacheView
from trtserve_operator.kube.cache import ObjectCache
from trtserve_operator.kube.errors import TransientError
from trtserve_operator.services.benchmark import Benchmarks
from trtserve_operator.services.metrics import Metrics
from trtserve_operator.services.reconciler import Reconciler

LABELS = {"app.kubernetes.io/managed-by": "trtserve-operator", "app.kubernetes.io/instance": "m"}


def deployment(image: str = "s:1", ready: int = 0, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "m", "namespace": "ns", "labels": LABELS, **metadata},
        "spec": {"template": {"spec": {"containers": [{"image": image}]}}},
        "status": {"readyReplicas": ready} if ready else {},
    }


class FakeReconciler:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.gate: asyncio.Event | None = None
        self.failures = 0

    async def children_changed(
        self, namespace: str, instance: str, kinds: Iterable[str], view: Any
    ) -> None:
        self.calls.append(("converge", namespace, instance, sorted(kinds)))
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise TransientError("503")

    @property
    def monitoring(self) -> Any:
        calls = self.calls

        class Monitoring:
            def forget(self, namespace: str) -> None:
                calls.append(("forget monitoring", namespace))

            async def ensure(self, namespace: str, view: Any) -> None:
                calls.append(("ensure monitoring", namespace))

        return Monitoring()

    async def reconverge(self, namespace: str, name: str, view: Any) -> None:
        self.calls.append(("reconverge", namespace, name))

    async def observe(self, body: Mapping[str, Any], view: Any) -> None:
        self.calls.append(("observe", body["metadata"]["name"], body["spec"]))
        if self.gate is not None:
            await self.gate.wait()

    def forget(self, namespace: str, name: str) -> None:
        self.calls.append(("forget", namespace, name))

    def pods_changed(self, namespace: str, instance: str, view: Any) -> None:
        self.calls.append(("status", namespace, instance))

    def reset(self) -> None:
        self.calls.append(("reset",))


class FakeBenchmarks:
    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.calls = calls

    async def model_changed(self, namespace: str, name: str, view: Any) -> None:
        self.calls.append(("benchmark", namespace, name))

    def forget(self, namespace: str, name: str) -> None:
        self.calls.append(("forget benchmark", namespace, name))

    def reset(self) -> None:
        self.calls.append(("reset benchmarks",))


def caches() -> Caches:
    return Caches(
        trtmodels=ObjectCache("TRTModel"),
        deployments=ObjectCache("Deployment"),
        services=ObjectCache("Service"),
        configmaps=ObjectCache("ConfigMap"),
        disruption_budgets=ObjectCache("PodDisruptionBudget"),
        pods=ObjectCache("Pod", group_label="app.kubernetes.io/instance"),
        jobs=ObjectCache("Job", group_label="app.kubernetes.io/instance"),
    )


def changes_for(fake: FakeReconciler, view: Any = None, *, started: bool = True) -> Changes:
    """The callbacks of a leader whose caches are listed (``started``), unless not."""
    changes = Changes(
        cast(Reconciler, fake),
        cast(Benchmarks, FakeBenchmarks(fake.calls)),
        cast(CacheView, view if view is not None else CacheView(caches())),
        Retries(Backoff(0.01, 0.01), Backoff(0.01, 0.01)),
    )
    if started:
        changes.start()
    return changes


def trtmodel(name: str, precision: str = "FP16") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": {"precision": precision}}


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0.02)


def test_what_each_change_asks_for() -> None:
    async def scenario() -> list[tuple[Any, ...]]:
        fake = FakeReconciler()
        changes = changes_for(fake)
        changes.deployment("ns", "m", None, deployment())  # created
        await settle()
        changes.deployment("ns", "m", deployment(), deployment(ready=1))  # replica counts
        await settle()
        changes.deployment("ns", "m", deployment(ready=1), deployment("s:2", ready=1))  # edited
        await settle()
        changes.deployment("ns", "m", deployment(), deployment(ownerReferences=[]))  # metadata
        await settle()
        changes.deployment("ns", "m", deployment(), None)  # deleted
        await settle()
        changes.service("ns", "m", None, {"metadata": {"labels": LABELS}, "spec": {}})
        await settle()
        changes.configmap("ns", "m-batching", None, {"metadata": {"labels": LABELS}, "data": {}})
        await settle()
        changes.pod("ns", "m-1", None, {"metadata": {"name": "m-1"}}, "m")
        changes.pod("ns", "x", None, {"metadata": {"name": "x"}}, None)  # not a model's
        changes.deployment("ns", "other", None, {"metadata": {"name": "other"}})  # no instance
        await settle()
        await changes.close()
        return fake.calls

    assert asyncio.run(scenario()) == [
        ("converge", "ns", "m", ["Deployment"]),
        ("status", "ns", "m"),
        ("converge", "ns", "m", ["Deployment"]),
        ("converge", "ns", "m", ["Deployment"]),
        ("converge", "ns", "m", ["Deployment"]),
        ("converge", "ns", "m", ["Service"]),
        ("converge", "ns", "m", ["ConfigMap"]),
        ("status", "ns", "m"),
    ]


def test_changes_during_a_converge_are_converged_once_more_together() -> None:
    async def scenario() -> list[tuple[Any, ...]]:
        fake = FakeReconciler()
        fake.gate = asyncio.Event()
        changes = changes_for(fake)
        changes.deployment("ns", "m", None, deployment())
        await settle()
        for _ in range(3):  # while the first converge runs
            changes.service("ns", "m", None, {"metadata": {"labels": LABELS}})
            changes.deployment("ns", "m", deployment(), deployment("s:2"))
        await settle()
        assert len(fake.calls) == 1, "no second converge of the model while one runs"
        fake.gate.set()
        await settle()
        await changes.close()
        return fake.calls

    assert asyncio.run(scenario()) == [
        ("converge", "ns", "m", ["Deployment"]),
        ("converge", "ns", "m", ["Deployment", "Service"]),
    ]


def test_a_transient_error_is_retried_with_the_model_as_cached_then() -> None:
    async def scenario() -> list[tuple[Any, ...]]:
        fake = FakeReconciler()
        fake.failures = 1
        changes = changes_for(fake)
        changes.deployment("ns", "m", None, deployment())
        await settle()
        await changes.close()
        return fake.calls

    assert asyncio.run(scenario()) == [
        ("converge", "ns", "m", ["Deployment"]),
        ("reconverge", "ns", "m"),
    ]


class ModelsView:
    def __init__(self, namespaces: set[str]) -> None:
        self.namespaces = namespaces
        self.caches = caches()  # no TRTModel cached: start() converges none

    def has_models(self, namespace: str) -> bool:
        return namespace in self.namespaces


def test_the_shared_monitoring_configmap_is_repaired_where_models_mount_it() -> None:
    shared = {"metadata": {"name": "trtserve-monitoring", "labels": {
        "app.kubernetes.io/managed-by": "trtserve-operator",
        "app.kubernetes.io/component": "monitoring-config"}}}  # fmt: skip

    async def scenario() -> list[tuple[Any, ...]]:
        fake = FakeReconciler()
        changes = changes_for(fake, ModelsView({"ns"}))
        changes.configmap("ns", "trtserve-monitoring", shared, None)  # deleted
        changes.configmap("empty", "trtserve-monitoring", None, shared)  # no model mounts it
        await settle()
        await changes.close()
        return fake.calls

    assert asyncio.run(scenario()) == [
        ("forget monitoring", "ns"),
        ("ensure monitoring", "ns"),
        ("forget monitoring", "empty"),
    ]


def test_trtmodels_are_converged_once_every_cache_is_listed_not_before() -> None:
    """Before start() a TRTModel change does nothing (the caches may still be listing:
    converging then could create a child that exists); start() converges every cached
    TRTModel as the cache has it then, and steps its benchmark."""

    async def scenario() -> tuple[list[tuple[Any, ...]], int]:
        fake = FakeReconciler()
        view = CacheView(caches())
        changes = changes_for(fake, view, started=False)
        view.caches.trtmodels.put("ns", "a", trtmodel("a"))
        changes.trtmodel("ns", "a", None, trtmodel("a"))  # listed or watched before start
        view.caches.trtmodels.put("ns", "b", trtmodel("b", "INT8"))
        changes.job("ns", "b-bench", None, {"metadata": {"name": "b-bench"}}, "b")
        await settle()
        assert fake.calls == []
        started = changes.start()
        await settle()
        await changes.close()
        return fake.calls, started

    calls, started = asyncio.run(scenario())
    assert started == 2
    assert sorted(calls) == sorted([
        ("observe", "a", {"precision": "FP16"}),
        ("observe", "b", {"precision": "INT8"}),
        ("benchmark", "ns", "a"),
        ("benchmark", "ns", "b"),
    ])  # fmt: skip


def test_the_resync_converges_every_cached_model_again_from_the_cache() -> None:
    """Issue 15: the periodic resync (TRTSERVE_RESYNC_SECONDS) reconverges every cached
    TRTModel (no write where nothing differs: the converge compares); before start() it
    does nothing."""

    async def scenario() -> tuple[list[tuple[Any, ...]], int, int]:
        fake = FakeReconciler()
        view = CacheView(caches())
        changes = changes_for(fake, view, started=False)
        view.caches.trtmodels.put("ns", "a", trtmodel("a"))
        view.caches.trtmodels.put("ns", "b", trtmodel("b"))
        before = changes.resync()
        changes.start()
        await settle()
        fake.calls.clear()
        count = changes.resync()
        await settle()
        await changes.close()
        return fake.calls, before, count

    calls, before, count = asyncio.run(scenario())
    assert (before, count) == (0, 2)
    assert sorted(calls) == [("reconverge", "ns", "a"), ("reconverge", "ns", "b")]


def test_a_trtmodel_change_converges_it_and_a_deletion_forgets_it() -> None:
    async def scenario() -> list[tuple[Any, ...]]:
        fake = FakeReconciler()
        view = CacheView(caches())
        changes = changes_for(fake, view)
        changes.start()
        view.caches.trtmodels.put("ns", "m", trtmodel("m", "FP32"))
        changes.trtmodel("ns", "m", trtmodel("m"), trtmodel("m", "FP32"))
        await settle()
        view.caches.trtmodels.remove("ns", "m")
        changes.trtmodel("ns", "m", trtmodel("m", "FP32"), None)
        await settle()
        changes.job("ns", "m-bench", None, {"metadata": {"name": "m-bench"}}, "m")
        changes.job("ns", "other", None, {"metadata": {"name": "other"}}, None)  # no model
        await settle()
        await changes.close()
        return fake.calls

    assert asyncio.run(scenario()) == [
        ("observe", "m", {"precision": "FP32"}),
        ("benchmark", "ns", "m"),
        ("forget", "ns", "m"),
        ("forget benchmark", "ns", "m"),
        ("benchmark", "ns", "m"),
        ("benchmark", "ns", "m"),
    ]


def test_a_model_changed_during_its_converge_is_converged_once_more_as_cached_then() -> None:
    """A spec change and a child change that arrive during a converge: one more converge
    right after it, of the newest spec and of the child's kind; a model deleted before its
    converge runs is not converged."""

    async def scenario() -> list[tuple[Any, ...]]:
        fake = FakeReconciler()
        fake.gate = asyncio.Event()
        view = CacheView(caches())
        changes = changes_for(fake, view)
        changes.start()
        view.caches.trtmodels.put("ns", "m", trtmodel("m"))
        changes.trtmodel("ns", "m", None, trtmodel("m"))
        await settle()
        for precision in ("FP32", "INT8"):
            view.caches.trtmodels.put("ns", "m", trtmodel("m", precision))
            changes.trtmodel("ns", "m", None, trtmodel("m", precision))
        changes.service("ns", "m", None, {"metadata": {"labels": LABELS}})
        view.caches.trtmodels.put("ns", "gone", trtmodel("gone"))
        changes.trtmodel("ns", "gone", None, trtmodel("gone"))
        view.caches.trtmodels.remove("ns", "gone")
        await settle()
        fake.gate.set()
        await settle()
        await changes.close()
        return [call for call in fake.calls if call[0] != "benchmark"]

    assert asyncio.run(scenario()) == [
        ("observe", "m", {"precision": "FP16"}),
        ("observe", "m", {"precision": "INT8"}),
        ("converge", "ns", "m", ["Service"]),
    ]


def test_a_follower_converges_nothing_and_stopping_cancels_the_work_in_flight() -> None:
    """Issue 15: replicas that do not lead keep their caches warm but act on no change
    (children, pods, the shared ConfigMap, Jobs, TRTModels). When the leader stops
    leading, the converge in flight is cancelled, pending retries are dropped and the
    services forget their models; after start() again everything is converged anew."""
    shared = {"metadata": {"name": "trtserve-monitoring", "labels": {
        "app.kubernetes.io/managed-by": "trtserve-operator",
        "app.kubernetes.io/component": "monitoring-config"}}}  # fmt: skip

    async def scenario() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], bool, int]:
        fake = FakeReconciler()
        view = CacheView(caches())
        view.caches.trtmodels.put("ns", "m", trtmodel("m"))
        changes = changes_for(fake, view, started=False)
        changes.deployment("ns", "m", None, deployment())
        changes.service("ns", "m", None, {"metadata": {"labels": LABELS}, "spec": {}})
        changes.pod("ns", "m-1", None, {"metadata": {"name": "m-1"}}, "m")
        changes.configmap("ns", "trtserve-monitoring", shared, None)
        changes.trtmodel("ns", "m", None, trtmodel("m"))
        changes.job("ns", "m-bench", None, {"metadata": {"name": "m-bench"}}, "m")
        await settle()
        as_follower = list(fake.calls)
        fake.gate = asyncio.Event()  # the leader's converge hangs (a slow API server)
        changes.start()
        await settle()
        changes._retries.schedule(("benchmark", "ns", "m"), asyncio.Event().wait)
        changes.stop()
        await settle()
        stopped = list(fake.calls)
        pending = changes._retries.pending(("benchmark", "ns", "m"))
        fake.gate.set()  # the cancelled converge never goes on
        await settle()
        await changes.close()
        return as_follower, stopped, pending, len(fake.calls) - len(stopped)

    as_follower, stopped, pending, after_stop = asyncio.run(scenario())
    assert as_follower == []
    assert after_stop == 0
    assert ("observe", "m", {"precision": "FP16"}) in stopped
    assert stopped[-2:] == [("reset",), ("reset benchmarks",)]
    assert not pending


def test_leadership_counts_real_transitions_only() -> None:
    """Starting as a follower is no transition; leading and stopping are one each."""

    async def scenario() -> Metrics:
        metrics = Metrics()
        leadership = Leadership(changes_for(FakeReconciler(), started=False), metrics)
        assert metrics.value("trtserve_leader_transitions_total", to="follower") == 0
        leadership.listed()
        leadership.started_leading()
        assert metrics.value("trtserve_operator_leader") == 1
        leadership.stopped_leading()
        return metrics

    metrics = asyncio.run(scenario())
    assert metrics.value("trtserve_operator_leader") == 0
    assert metrics.value("trtserve_leader_transitions_total", to="leader") == 1
    assert metrics.value("trtserve_leader_transitions_total", to="follower") == 1
