"""What a change of an informer-cached child or pod asks of the reconciler
(handlers/children.py): converge for what converging compares, a status update for
replica counts and pods; converges of one model never overlap and changes that arrive
during one are converged once more, together; transient errors are retried."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, cast

from trtserve_operator.handlers.children import ChildChanges
from trtserve_operator.handlers.retries import Retries
from trtserve_operator.handlers.view import IndexView
from trtserve_operator.kube.errors import TransientError
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

    def pods_changed(self, namespace: str, instance: str, view: Any) -> None:
        self.calls.append(("status", namespace, instance))


def changes_for(fake: FakeReconciler) -> ChildChanges:
    view = cast(IndexView, object())
    return ChildChanges(cast(Reconciler, fake), view, Retries(delays=(0.01,)))


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

    def has_models(self, namespace: str) -> bool:
        return namespace in self.namespaces


def test_the_shared_monitoring_configmap_is_repaired_where_models_mount_it() -> None:
    shared = {"metadata": {"name": "trtserve-monitoring", "labels": {
        "app.kubernetes.io/managed-by": "trtserve-operator",
        "app.kubernetes.io/component": "monitoring-config"}}}  # fmt: skip

    async def scenario() -> list[tuple[Any, ...]]:
        fake = FakeReconciler()
        changes = ChildChanges(
            cast(Reconciler, fake), cast(IndexView, ModelsView({"ns"})), Retries(delays=(0.01,))
        )
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
