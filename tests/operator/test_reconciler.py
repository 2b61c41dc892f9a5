"""The reconciler's decisions against an in-memory API (no kopf, no HTTP).

Every write is counted: a first converge is the Deployment, the Service and one status
write; a second is nothing at all.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from trtserve_operator.kube.errors import (
    ConflictError,
    NotFoundError,
    RejectedError,
    TransientError,
)
from trtserve_operator.kube.resources import ApiResource
from trtserve_operator.services.reconciler import Reconciler
from trtserve_operator.settings import Settings


class MemoryKube:
    """A KubeApi keeping objects in a dict and recording every call."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.statuses: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.refuse: dict[str, RejectedError] = {}
        """kind -> the error a create or patch of that kind gets (an API server's 422)."""

    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] != "get"]

    async def get(self, resource: ApiResource, namespace: str, name: str) -> dict[str, Any]:
        self.calls.append(("get", resource.kind))
        try:
            return copy.deepcopy(self.objects[(resource.kind, namespace, name)])
        except KeyError:
            raise NotFoundError("not found", code=404) from None

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", str(obj["kind"])))
        if str(obj["kind"]) in self.refuse:
            raise self.refuse[str(obj["kind"])]
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
        if resource.kind in self.refuse:
            raise self.refuse[resource.kind]
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
        self.events.append(
            {"type": event_type, "reason": reason, "message": message, "involved": dict(involved)}
        )

    async def close(self) -> None:
        pass


INVALID = RejectedError(
    'create deployments ns/m: 422 Invalid: Deployment.apps "m" is invalid: '
    "spec.template.spec.containers[0].env[0].name: Required value",
    code=422,
    reason="Invalid",
)


def trtmodel(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "trtserve.io/v1alpha1",
        "kind": "TRTModel",
        "metadata": {"name": "m", "namespace": "ns", "uid": "u", "generation": 1},
        "spec": {"source": {"uri": "s3://b/m"}, **spec},
    }


class View:
    """A cache that is up to date with the MemoryKube (``stale``: has seen no child)."""

    def __init__(self, kube: MemoryKube, body: dict[str, Any], *, stale: bool = False) -> None:
        self.kube = kube
        self.body = body
        self.stale = stale
        self.pod_list: list[dict[str, Any]] = []

    def child(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        return None if self.stale else self.kube.objects.get((kind, namespace, name))

    def pods(self, namespace: str, instance: str) -> Sequence[Mapping[str, Any]]:
        return self.pod_list

    def trtmodel(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.body


def reconciler(kube: MemoryKube, interval: float = 0.0) -> Reconciler:
    return Reconciler(kube, Settings(converter_image="c:1", status_interval=interval))


async def settled(service: Reconciler, seconds: float = 0.05) -> None:
    """Let the coalesced status updates run."""
    await asyncio.sleep(seconds)


def test_first_converge_is_deployment_service_and_one_status_write() -> None:
    kube = MemoryKube()

    async def scenario() -> None:
        service = reconciler(kube)
        await service.observe(trtmodel(), View(kube, trtmodel(), stale=True))
        await settled(service)

    asyncio.run(scenario())
    assert kube.writes() == [
        ("create", "Service"),
        ("create", "Deployment"),
        ("status", "TRTModel"),
    ]
    assert kube.statuses[0]["phase"] == "Pending"
    assert kube.events == []  # nothing a person acts on yet


def test_batching_gets_its_configmap_before_the_deployment() -> None:
    kube = MemoryKube()
    body = trtmodel(serving={"batching": {"enabled": True}})

    async def scenario() -> None:
        service = reconciler(kube)
        await service.observe(body, View(kube, body, stale=True))
        await settled(service)

    asyncio.run(scenario())
    creates = [c for c in kube.writes() if c[0] == "create"]
    assert creates == [("create", "ConfigMap"), ("create", "Service"), ("create", "Deployment")]


def test_turning_batching_off_leaves_the_configmap_alone() -> None:
    kube = MemoryKube()
    on = trtmodel(serving={"batching": {"enabled": True}})
    off = trtmodel(serving={"batching": {"enabled": False}})

    async def scenario() -> None:
        service = reconciler(kube)
        await service.observe(on, View(kube, on))
        await settled(service)
        kube.calls.clear()
        await service.observe(off, View(kube, off))
        await settled(service)

    asyncio.run(scenario())
    assert ("ConfigMap", "ns", "m-batching") in kube.objects
    assert [c for c in kube.calls if c[1] == "ConfigMap"] == []
    patched = kube.objects[("Deployment", "ns", "m")]["spec"]["template"]["spec"]
    assert all(v["name"] != "batching-config" for v in patched["volumes"])


def test_an_event_for_a_spec_already_converged_costs_nothing() -> None:
    kube = MemoryKube()

    async def scenario() -> None:
        service = reconciler(kube)
        view = View(kube, trtmodel())
        await service.observe(trtmodel(), view)
        await settled(service)
        kube.calls.clear()
        # The operator's own status write comes back as a change of the TRTModel.
        await service.observe({**trtmodel(), "status": kube.statuses[-1]}, view)
        await service.child_changed("ns", "m", "Deployment", view)
        await settled(service)

    asyncio.run(scenario())
    assert kube.calls == []


def test_stale_cache_conflict_is_resolved_by_reading_the_object() -> None:
    kube = MemoryKube()

    async def scenario() -> None:
        await reconciler(kube).observe(trtmodel(), View(kube, trtmodel(), stale=True))
        kube.calls.clear()
        await reconciler(kube).observe(trtmodel(), View(kube, trtmodel(), stale=True))

    asyncio.run(scenario())
    assert [c[0] for c in kube.calls if c[0] in ("create", "get")] == ["create", "get"] * 2
    assert not [c for c in kube.calls if c[0] == "patch"]


def test_conflict_with_an_object_being_deleted_is_transient() -> None:
    kube = MemoryKube()

    async def scenario() -> None:
        await reconciler(kube).observe(trtmodel(), View(kube, trtmodel()))
        kube.objects[("Service", "ns", "m")]["metadata"]["deletionTimestamp"] = "t"
        await reconciler(kube).observe(trtmodel(), View(kube, trtmodel(), stale=True))

    with pytest.raises(TransientError):
        asyncio.run(scenario())


def test_a_mangled_status_is_rewritten_once() -> None:
    kube = MemoryKube()
    body = {**trtmodel(), "status": {"phase": 42, "conditions": "x"}}

    async def scenario() -> None:
        service = reconciler(kube)
        await service.observe(body, View(kube, body))
        await settled(service)
        service.pods_changed("ns", "m", View(kube, body))
        await settled(service)

    asyncio.run(scenario())
    assert len(kube.statuses) == 1
    assert kube.statuses[0]["phase"] == "Pending"


def test_unsupported_image_never_touches_the_deployment() -> None:
    kube = MemoryKube()
    body = trtmodel(serving={"image": "tensorflow/serving:2.19.0-gpu"})

    async def scenario() -> None:
        service = reconciler(kube)
        await service.observe(body, View(kube, body))
        await settled(service)

    asyncio.run(scenario())
    assert ("create", "Deployment") not in kube.calls
    assert kube.statuses[0]["phase"] == "Failed"
    assert [(e["type"], e["reason"]) for e in kube.events] == [
        ("Warning", "UnsupportedServingImage")
    ]


def test_a_child_the_api_server_rejects_is_ready_false_with_its_message_and_one_warning() -> None:
    kube = MemoryKube()
    kube.refuse["Deployment"] = INVALID
    body = trtmodel()

    async def scenario() -> None:
        service = reconciler(kube)
        view = View(kube, body)
        await service.observe(body, view)
        await settled(service)
        # Later events (the Service changes, a retry) hit the same refusal.
        await service.child_changed("ns", "m", "Deployment", view)
        await service.reconverge("ns", "m", view)
        await settled(service)

    asyncio.run(scenario())
    assert ("create", "Service") in kube.calls  # the other children are still applied
    (status,) = kube.statuses  # written once: the refusal did not change afterwards
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert status["phase"] == "Failed"
    assert (ready["status"], ready["reason"]) == ("False", "InvalidChild")
    assert "containers[0].env[0].name: Required value" in ready["message"]
    (event,) = kube.events
    assert (event["type"], event["reason"]) == ("Warning", "InvalidChild")
    assert "env[0].name: Required value" in event["message"]


def test_other_refusals_are_child_rejected() -> None:
    kube = MemoryKube()
    kube.refuse["Service"] = RejectedError("create services ns/m: 403 Forbidden", code=403)
    body = trtmodel()

    async def scenario() -> None:
        service = reconciler(kube)
        await service.observe(body, View(kube, body))
        await settled(service)

    asyncio.run(scenario())
    ready = next(c for c in kube.statuses[0]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ChildRejected"
    assert ("create", "Deployment") in kube.calls


def test_fixing_the_spec_clears_the_refusal() -> None:
    kube = MemoryKube()
    kube.refuse["Deployment"] = INVALID
    bad = trtmodel()
    good = {**trtmodel(), "metadata": {**trtmodel()["metadata"], "generation": 2}}
    good["spec"] = {**good["spec"], "modelName": "fixed"}

    async def scenario() -> None:
        service = reconciler(kube)
        await service.observe(bad, View(kube, bad))
        await settled(service)
        del kube.refuse["Deployment"]
        await service.observe(good, View(kube, good))
        await settled(service)

    asyncio.run(scenario())
    assert ("Deployment", "ns", "m") in kube.objects
    ready = next(c for c in kube.statuses[-1]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] != "InvalidChild"
    assert kube.statuses[-1]["phase"] == "Pending"


def test_an_invalid_spec_gets_invalid_spec_and_no_children() -> None:
    kube = MemoryKube()
    body = trtmodel(serving={"replicas": -3})

    async def scenario() -> None:
        service = reconciler(kube)
        await service.observe(body, View(kube, body))
        await service.observe(body, View(kube, body))
        await settled(service)

    asyncio.run(scenario())
    assert [c for c in kube.calls if c[0] == "create"] == []
    (status,) = kube.statuses
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "InvalidSpec"
    assert "spec.serving.replicas" in ready["message"]
    assert [e["reason"] for e in kube.events] == ["InvalidSpec"]


def test_changes_of_the_deployment_and_pods_coalesce_into_one_status_write() -> None:
    kube = MemoryKube()
    body = trtmodel()

    async def scenario() -> None:
        service = reconciler(kube, interval=0.3)
        view = View(kube, body)
        await service.observe(body, view)
        await settled(service, 0.4)
        assert len(kube.statuses) == 1
        deployment = kube.objects[("Deployment", "ns", "m")]
        template = deployment["spec"]["template"]
        # The Deployment controller and the kubelet report, many times within 0.1 s.
        for ready in (0, 0, 1):
            deployment["status"] = {"replicas": 1, "readyReplicas": ready}
            await service.child_changed("ns", "m", "Deployment", view)
            view.pod_list = [
                {
                    "metadata": {"name": "p", "annotations": template["metadata"]["annotations"]},
                    "status": {"initContainerStatuses": [{"name": "convert", "state": state}]},
                }
                for state in ({"running": {}}, {"terminated": {"exitCode": 0, "message": ""}})
            ][-1:]
            service.pods_changed("ns", "m", view)
            await asyncio.sleep(0.03)
        await settled(service, 0.5)

    asyncio.run(scenario())
    assert len(kube.statuses) == 2  # the first converge's, then one for all the changes
    assert kube.statuses[1]["readyReplicas"] == 1


def test_a_child_event_before_the_cache_shows_a_new_child_does_not_create_it_again() -> None:
    kube = MemoryKube()
    body = trtmodel()

    async def scenario() -> None:
        service = reconciler(kube)
        await service.observe(body, View(kube, body, stale=True))
        # The Service's ADDED event arrives before the Deployment's.
        await service.child_changed("ns", "m", "Service", View(kube, body, stale=True))
        await settled(service)
        # The Deployment is deleted by hand: its event makes the operator put it back.
        del kube.objects[("Deployment", "ns", "m")]
        await service.child_changed("ns", "m", "Deployment", View(kube, body))

    asyncio.run(scenario())
    assert [c for c in kube.calls if c[1] == "Deployment"] == [("create", "Deployment")] * 2
    assert ("get", "Deployment") not in kube.calls


def test_a_service_can_add_children_that_are_converged_like_the_others() -> None:
    kube = MemoryKube()
    body = trtmodel()

    def extra(target: Any, settings: Settings) -> list[dict[str, Any]]:
        return [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"{target.name}-extra", "namespace": target.namespace},
                "data": {"k": target.spec.source.uri},
            }
        ]

    async def scenario() -> None:
        service = Reconciler(kube, Settings(status_interval=0), renderers=[extra])
        await service.observe(body, View(kube, body, stale=True))
        await settled(service)
        kube.calls.clear()
        await service.child_changed("ns", "m", "ConfigMap", View(kube, body))

    asyncio.run(scenario())
    assert kube.objects[("ConfigMap", "ns", "m-extra")]["data"] == {"k": "s3://b/m"}
    assert kube.calls == []  # up to date: nothing sent
