"""The reconciler's decisions against an in-memory API (no kopf, no HTTP)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from trtserve_operator.api.v1alpha1 import TRTModelSpec
from trtserve_operator.kube.errors import ConflictError, NotFoundError, TransientError
from trtserve_operator.kube.resources import ApiResource
from trtserve_operator.services.builders.target import Target
from trtserve_operator.services.reconciler import Reconciler
from trtserve_operator.settings import Settings


class MemoryKube:
    """A KubeApi keeping objects in a dict and recording every call."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.statuses: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    async def get(self, resource: ApiResource, namespace: str, name: str) -> dict[str, Any]:
        self.calls.append(("get", resource.kind))
        try:
            return copy.deepcopy(self.objects[(resource.kind, namespace, name)])
        except KeyError:
            raise NotFoundError("not found", code=404) from None

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", str(obj["kind"])))
        key = (str(obj["kind"]), obj["metadata"]["namespace"], obj["metadata"]["name"])
        if key in self.objects:
            raise ConflictError("AlreadyExists", code=409)
        self.objects[key] = copy.deepcopy(dict(obj))
        return copy.deepcopy(self.objects[key])

    async def merge_patch(
        self,
        resource: ApiResource,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        self.calls.append(("patch", resource.kind))
        self.objects[(resource.kind, namespace, name)].update(copy.deepcopy(dict(patch)))
        return copy.deepcopy(self.objects[(resource.kind, namespace, name)])

    async def patch_trtmodel_status(
        self, namespace: str, name: str, status_patch: Mapping[str, Any]
    ) -> None:
        self.calls.append(("status", "TRTModel"))
        self.statuses.append(dict(status_patch))

    async def create_event(
        self, involved: Mapping[str, Any], *, event_type: str, reason: str, message: str
    ) -> None:
        self.calls.append(("event", reason))
        self.events.append({"type": event_type, "reason": reason, "involved": dict(involved)})

    async def close(self) -> None:
        pass


class EmptyView:
    """A cache that has seen nothing (e.g. right after the operator started)."""

    def child(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        return None

    def pods(self, namespace: str, instance: str) -> Sequence[Mapping[str, Any]]:
        return []


class KubeView(EmptyView):
    """A cache that is up to date with the MemoryKube."""

    def __init__(self, kube: MemoryKube) -> None:
        self.kube = kube

    def child(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.kube.objects.get((kind, namespace, name))


TARGET = Target(
    "m", "ns", TRTModelSpec.model_validate({"source": {"uri": "s3://b/m"}}), uid="u", generation=1
)


def reconciler(kube: MemoryKube) -> Reconciler:
    return Reconciler(kube, Settings(converter_image="c:1"))


def test_first_converge_creates_children_writes_status_and_announces() -> None:
    kube = MemoryKube()
    asyncio.run(reconciler(kube).converge(TARGET, EmptyView(), None))
    assert [c for c in kube.calls if c[0] == "create"] == [
        ("create", "ConfigMap"),  # trtserve-monitoring: the namespace's first model
        ("create", "ConfigMap"),
        ("create", "Service"),
        ("create", "Deployment"),
    ]
    assert ("ConfigMap", "ns", "trtserve-monitoring") in kube.objects
    assert len(kube.statuses) == 1
    assert kube.statuses[0]["phase"] == "Pending"
    (applied,) = kube.events
    assert applied["reason"] == "Applied"
    assert applied["involved"]["uid"] == "u"


def test_second_converge_with_an_up_to_date_cache_sends_nothing() -> None:
    kube = MemoryKube()
    service = reconciler(kube)
    asyncio.run(service.converge(TARGET, EmptyView(), None))
    before = len(kube.calls)
    asyncio.run(service.converge(TARGET, KubeView(kube), None))
    assert kube.calls[before:] == []


def test_stale_cache_conflict_is_resolved_by_reading_the_object() -> None:
    kube = MemoryKube()
    asyncio.run(reconciler(kube).converge(TARGET, EmptyView(), None))
    kube.calls.clear()
    asyncio.run(reconciler(kube).converge(TARGET, EmptyView(), None))
    creates = [c for c in kube.calls if c[0] == "create"]
    gets = [c for c in kube.calls if c[0] == "get"]
    assert len(creates) == 4  # with the namespace's monitoring ConfigMap
    assert len(gets) == 4
    assert not [c for c in kube.calls if c[0] == "patch"]


def test_conflict_with_an_object_being_deleted_is_transient() -> None:
    kube = MemoryKube()
    asyncio.run(reconciler(kube).converge(TARGET, EmptyView(), None))
    kube.objects[("ConfigMap", "ns", "m-batching")]["metadata"]["deletionTimestamp"] = "t"
    with pytest.raises(TransientError):
        asyncio.run(reconciler(kube).converge(TARGET, EmptyView(), None))


def test_status_is_only_written_when_it_changes_and_survives_a_mangled_one() -> None:
    kube = MemoryKube()
    service = reconciler(kube)
    asyncio.run(service.converge(TARGET, EmptyView(), {"phase": 42, "conditions": "x"}))
    assert len(kube.statuses) == 1
    asyncio.run(service.refresh_status(TARGET, KubeView(kube), None))
    assert len(kube.statuses) == 1  # remembered what it wrote: nothing new to say
    assert [e["reason"] for e in kube.events] == ["Applied"]


def test_unsupported_image_never_touches_the_deployment() -> None:
    kube = MemoryKube()
    spec = TRTModelSpec.model_validate(
        {"source": {"uri": "s3://b/m"}, "serving": {"image": "tensorflow/serving:2.19.0-gpu"}}
    )
    target = Target("m", "ns", spec, uid="u", generation=2)
    asyncio.run(reconciler(kube).converge(target, EmptyView(), None))
    assert ("create", "Deployment") not in kube.calls
    assert kube.statuses[0]["phase"] == "Failed"
    assert any(
        e["reason"] == "UnsupportedServingImage" and e["type"] == "Warning" for e in kube.events
    )


class PodView(KubeView):
    """An up-to-date cache whose model has one pod with the given convert status."""

    def __init__(self, kube: MemoryKube, init_status: dict[str, Any]) -> None:
        super().__init__(kube)
        self.init_status = init_status

    def pods(self, namespace: str, instance: str) -> Sequence[Mapping[str, Any]]:
        return [
            {"metadata": {"name": "m-1"}, "status": {"initContainerStatuses": [self.init_status]}}
        ]


def test_a_failed_conversion_is_counted_once_across_status_refreshes() -> None:
    kube = MemoryKube()
    service = reconciler(kube)
    asyncio.run(service.converge(TARGET, EmptyView(), None))
    report = '{"v":1,"result":"Failed","reason":"AccuracyGateFailed","exitCode":40,"message":"x"}'
    failed = {
        "name": "convert",
        "state": {"terminated": {"exitCode": 40, "message": report}},
    }
    for _ in range(3):
        asyncio.run(service.refresh_status(TARGET, PodView(kube, failed), None))
    metrics = service.metrics
    assert metrics.value("trtserve_conversions_failed_total", reason="AccuracyGateFailed") == 1
    assert metrics.value("trtserve_models", phase="Failed") == 1
    service.forget("ns", "m")
    assert metrics.value("trtserve_models", phase="Failed") == 0


def test_monitoring_configmap_is_created_once_per_namespace() -> None:
    kube = MemoryKube()
    service = reconciler(kube)
    other = Target("other", "ns", TARGET.spec, uid="u2", generation=1)
    elsewhere = Target("m", "ns2", TARGET.spec, uid="u3", generation=1)
    asyncio.run(service.converge(TARGET, EmptyView(), None))
    kube.calls.clear()
    # The cache has not seen the new ConfigMap yet: the second model must not retry it.
    asyncio.run(service.converge(other, EmptyView(), None))
    assert [c for c in kube.calls if c[0] == "create"] == [
        ("create", "ConfigMap"),
        ("create", "Service"),
        ("create", "Deployment"),
    ]
    assert ("ConfigMap", "ns", "other-batching") in kube.objects
    asyncio.run(service.converge(elsewhere, EmptyView(), None))
    assert ("ConfigMap", "ns2", "trtserve-monitoring") in kube.objects


def test_a_deleted_monitoring_configmap_is_put_back_after_forget() -> None:
    kube = MemoryKube()
    service = reconciler(kube)
    asyncio.run(service.converge(TARGET, EmptyView(), None))
    del kube.objects[("ConfigMap", "ns", "trtserve-monitoring")]
    asyncio.run(service.converge(TARGET, KubeView(kube), None))
    assert ("ConfigMap", "ns", "trtserve-monitoring") not in kube.objects  # not looked at
    service.monitoring.forget("ns")  # what the watch handler does on its DELETED event
    asyncio.run(service.converge(TARGET, KubeView(kube), None))
    assert ("ConfigMap", "ns", "trtserve-monitoring") in kube.objects


def test_restart_with_an_existing_monitoring_configmap_writes_nothing() -> None:
    kube = MemoryKube()
    asyncio.run(reconciler(kube).converge(TARGET, EmptyView(), None))
    kube.calls.clear()
    stored = kube.statuses[-1]
    asyncio.run(reconciler(kube).converge(TARGET, KubeView(kube), stored))  # a new process
    assert kube.calls == []
