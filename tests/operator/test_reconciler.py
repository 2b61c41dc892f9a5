"""The reconciler's decisions against an in-memory API (no kopf, no HTTP).

Every write is counted: a first converge is the Deployment, the Service and one status
write (plus, once per namespace, the shared ``trtserve-monitoring`` ConfigMap); a second is
nothing at all.
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


def named(name: str, namespace: str = "ns", **spec: Any) -> dict[str, Any]:
    body = trtmodel(**spec)
    body["metadata"] = {**body["metadata"], "name": name, "namespace": namespace, "uid": name}
    return body


def test_first_converge_is_deployment_service_and_one_status_write() -> None:
    kube = MemoryKube()
    first, second = named("m"), named("other")

    async def scenario() -> None:
        service = reconciler(kube)
        await service.observe(first, View(kube, first, stale=True))
        await settled(service)
        assert kube.writes() == [
            ("create", "ConfigMap"),  # trtserve-monitoring: the namespace's first model
            ("create", "Service"),
            ("create", "PodDisruptionBudget"),
            ("create", "Deployment"),
            ("status", "TRTModel"),
        ]
        kube.calls.clear()
        # The cache has not seen the new ConfigMap yet: the next model must not retry it.
        await service.observe(second, View(kube, second, stale=True))
        await settled(service)

    asyncio.run(scenario())
    assert kube.writes() == [
        ("create", "Service"),
        ("create", "PodDisruptionBudget"),
        ("create", "Deployment"),
        ("status", "TRTModel"),
    ]
    assert ("ConfigMap", "ns", "trtserve-monitoring") in kube.objects
    assert kube.statuses[0]["phase"] == "Pending"
    assert kube.events == []  # nothing a person acts on yet (no "Applied" Event any more)


def test_batching_gets_its_configmap_before_the_deployment() -> None:
    kube = MemoryKube()
    body = trtmodel(serving={"batching": {"enabled": True}})

    async def scenario() -> None:
        service = reconciler(kube)
        await service.observe(body, View(kube, body, stale=True))
        await settled(service)

    asyncio.run(scenario())
    creates = [c for c in kube.writes() if c[0] == "create"]
    assert creates == [("create", "ConfigMap")] * 2 + [
        ("create", "Service"),
        ("create", "PodDisruptionBudget"),
        ("create", "Deployment"),
    ]
    assert ("ConfigMap", "ns", "m-batching") in kube.objects
    assert ("ConfigMap", "ns", "trtserve-monitoring") in kube.objects


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


def test_an_equal_spec_in_another_order_is_skipped_and_a_nested_change_is_not() -> None:
    kube = MemoryKube()

    async def scenario() -> None:
        service = reconciler(kube)
        first = trtmodel(serving={"replicas": 1, "batching": {"enabled": False}})
        view = View(kube, first)
        await service.observe(first, view)
        await settled(service)
        kube.calls.clear()
        same = trtmodel(serving={"batching": {"enabled": False}, "replicas": 1})
        await service.observe(same, view)
        assert kube.calls == []
        changed = trtmodel(serving={"replicas": 2, "batching": {"enabled": False}})
        await service.observe(changed, View(kube, changed))
        await settled(service)

    asyncio.run(scenario())
    assert ("patch", "Deployment") in kube.calls


def test_stale_cache_conflict_is_resolved_by_reading_the_object() -> None:
    kube = MemoryKube()

    async def scenario() -> None:
        await reconciler(kube).observe(trtmodel(), View(kube, trtmodel(), stale=True))
        kube.calls.clear()
        await reconciler(kube).observe(trtmodel(), View(kube, trtmodel(), stale=True))

    asyncio.run(scenario())
    # A new process each time: the monitoring ConfigMap too is read back after its 409.
    assert [c[0] for c in kube.calls if c[0] in ("create", "get")] == ["create", "get"] * 4
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
    """Nor the Service: a refused model with nothing running gets none (no pod would be
    behind it), and its status shows no endpoint (issue 19, item 9)."""
    kube = MemoryKube()
    body = trtmodel(serving={"image": "tensorflow/serving:2.19.0-gpu"})

    async def scenario() -> None:
        service = reconciler(kube)
        await service.observe(body, View(kube, body))
        await settled(service)

    asyncio.run(scenario())
    assert ("create", "Deployment") not in kube.calls
    assert ("create", "Service") not in kube.calls
    assert "endpoint" not in kube.statuses[0]
    assert kube.statuses[0]["phase"] == "Failed"
    assert [(e["type"], e["reason"]) for e in kube.events] == [
        ("Warning", "UnsupportedServingImage")
    ]


def test_without_a_converter_image_nothing_is_rolled_out_and_the_status_says_how() -> None:
    """No TRTSERVE_CONVERTER_IMAGE and no spec.converterImage (issue 19, item 5)."""
    kube = MemoryKube()
    body = trtmodel()

    async def scenario() -> None:
        service = Reconciler(kube, Settings(converter_image=None, status_interval=0.0))
        await service.observe(body, View(kube, body))
        await settled(service)

    asyncio.run(scenario())
    assert ("create", "Deployment") not in kube.calls
    assert ("create", "Service") not in kube.calls
    ready = next(c for c in kube.statuses[0]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ConverterImageMissing")
    assert "TRTSERVE_CONVERTER_IMAGE" in ready["message"]
    assert [(e["type"], e["reason"]) for e in kube.events] == [("Warning", "ConverterImageMissing")]


def test_a_spec_converter_image_is_enough_without_the_operators() -> None:
    kube = MemoryKube()
    body = trtmodel(converterImage="registry.example/conv:1")

    async def scenario() -> None:
        service = Reconciler(kube, Settings(converter_image=None, status_interval=0.0))
        await service.observe(body, View(kube, body))
        await settled(service)

    asyncio.run(scenario())
    deployment = kube.objects[("Deployment", "ns", "m")]
    init = deployment["spec"]["template"]["spec"]["initContainers"][0]
    assert init["image"] == "registry.example/conv:1"


def test_a_child_the_api_server_rejects_is_ready_false_with_its_message_and_one_warning() -> None:
    kube = MemoryKube()
    kube.refuse["Deployment"] = INVALID
    body = trtmodel()

    async def scenario() -> None:
        service = reconciler(kube)
        view = View(kube, body)
        with pytest.raises(RejectedError):  # so that the caller retries it
            await service.observe(body, view)
        await settled(service)
        # Later events (the Service changes, a retry) hit the same refusal.
        with pytest.raises(RejectedError):
            await service.child_changed("ns", "m", "Deployment", view)
        with pytest.raises(RejectedError):
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
        with pytest.raises(RejectedError):
            await service.observe(body, View(kube, body))
        await settled(service)

    asyncio.run(scenario())
    ready = next(c for c in kube.statuses[0]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ChildRejected"
    assert ("create", "Deployment") in kube.calls


def test_a_refusal_lifted_later_converges_on_the_retry_without_a_spec_change() -> None:
    """Issue 15: RBAC granted after the fact. The retry (reconverge, as handlers/follow.py
    schedules it on a refusal) creates what was refused, with no spec change."""
    kube = MemoryKube()
    kube.refuse["Service"] = RejectedError("create services ns/m: 403 Forbidden", code=403)
    body = trtmodel()

    async def scenario() -> None:
        service = reconciler(kube)
        view = View(kube, body)
        with pytest.raises(RejectedError):
            await service.observe(body, view)
        await settled(service)
        del kube.refuse["Service"]  # the rights are granted
        await service.reconverge("ns", "m", view)
        await settled(service)

    asyncio.run(scenario())
    assert ("Service", "ns", "m") in kube.objects
    first = next(c for c in kube.statuses[0]["conditions"] if c["type"] == "Ready")
    last = next(c for c in kube.statuses[-1]["conditions"] if c["type"] == "Ready")
    assert first["reason"] == "ChildRejected"
    assert last["reason"] != "ChildRejected"


def test_fixing_the_spec_clears_the_refusal() -> None:
    kube = MemoryKube()
    kube.refuse["Deployment"] = INVALID
    bad = trtmodel()
    good = {**trtmodel(), "metadata": {**trtmodel()["metadata"], "generation": 2}}
    good["spec"] = {**good["spec"], "modelName": "fixed"}

    async def scenario() -> None:
        service = reconciler(kube)
        with pytest.raises(RejectedError):
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
                    "status": {
                        "conditions": [{"type": "Ready", "status": str(ready == 1)}],
                        "initContainerStatuses": [{"name": "convert", "state": state}],
                    },
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


class CountingView(View):
    """Records which children are looked up."""

    def __init__(self, kube: MemoryKube, body: dict[str, Any]) -> None:
        super().__init__(kube, body)
        self.looked_up: list[str] = []

    def child(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        self.looked_up.append(kind)
        return super().child(kind, namespace, name)


def test_the_watch_echo_of_a_created_child_compares_only_that_child() -> None:
    """A first converge creates the Service and the Deployment; their ADDED events then
    arrive. Each is compared with what was rendered, and nothing else is looked at again
    (every other child's change has an event of its own); the status is asked for."""
    kube = MemoryKube()
    body = trtmodel()

    async def scenario() -> list[str]:
        service = reconciler(kube)
        await service.observe(body, View(kube, body, stale=True))
        await settled(service)
        kube.calls.clear()
        view = CountingView(kube, body)
        await service.child_changed("ns", "m", "Service", view)
        await service.child_changed("ns", "m", "Deployment", view)
        await settled(service)
        return view.looked_up

    looked_up = asyncio.run(scenario())
    assert looked_up.count("Service") == 1
    assert looked_up.count("Deployment") == 2  # the echo, and the status update reading it
    assert "ConfigMap" not in looked_up
    assert kube.writes() == []  # the status equals what was written: nothing sent


def test_a_created_child_edited_before_its_echo_arrives_is_put_back() -> None:
    kube = MemoryKube()
    body = trtmodel()

    async def scenario() -> None:
        service = reconciler(kube)
        await service.observe(body, View(kube, body, stale=True))
        await settled(service)
        kube.calls.clear()
        kube.objects[("Service", "ns", "m")]["spec"]["ports"] = []  # edited meanwhile
        await service.child_changed("ns", "m", "Service", View(kube, body))
        await settled(service)

    asyncio.run(scenario())
    assert kube.writes() == [("patch", "Service")]
    assert kube.objects[("Service", "ns", "m")]["spec"]["ports"]


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


def failed_pod(kube: MemoryKube) -> dict[str, Any]:
    """A current serving pod whose converter failed the accuracy gate."""
    template = kube.objects[("Deployment", "ns", "m")]["spec"]["template"]
    report = '{"v":1,"result":"Failed","reason":"AccuracyGateFailed","exitCode":40,"message":"x"}'
    terminated = {"terminated": {"exitCode": 40, "message": report}}
    return {
        "metadata": {"name": "m-1", "annotations": template["metadata"]["annotations"]},
        "status": {"initContainerStatuses": [{"name": "convert", "state": terminated}]},
    }


def test_a_failed_conversion_is_counted_once_across_status_refreshes() -> None:
    kube = MemoryKube()
    body = trtmodel()
    service = reconciler(kube)

    async def scenario() -> None:
        view = View(kube, body)
        await service.observe(body, view)
        await settled(service)
        view.pod_list = [failed_pod(kube)]
        for _ in range(3):
            service.pods_changed("ns", "m", view)
            await settled(service)

    asyncio.run(scenario())
    metrics = service.metrics
    assert kube.statuses[-1]["conversion"]["reason"] == "AccuracyGateFailed"
    assert metrics.value("trtserve_conversions_failed_total", reason="AccuracyGateFailed") == 1
    assert metrics.value("trtserve_models", phase="Failed") == 1
    service.forget("ns", "m")
    assert metrics.value("trtserve_models", phase="Failed") == 0


def test_a_conversion_report_is_not_counted_again_after_a_restart() -> None:
    kube = MemoryKube()
    body = trtmodel()

    async def scenario() -> Reconciler:
        first = reconciler(kube)
        view = View(kube, body)
        await first.observe(body, view)
        await settled(first)
        view.pod_list = [failed_pod(kube)]
        first.pods_changed("ns", "m", view)
        await settled(first)
        stored: dict[str, Any] = {}
        for patch in kube.statuses:
            stored.update(patch)
        restarted = {**body, "status": stored}
        second = reconciler(kube)  # a new process: the status is read from the cache
        view.body = restarted
        await second.observe(restarted, view)
        await settled(second)
        return second

    metrics = asyncio.run(scenario()).metrics
    assert metrics.value("trtserve_conversions_failed_total", reason="AccuracyGateFailed") == 0
    assert metrics.value("trtserve_models", phase="Failed") == 1


def test_an_invalid_spec_counts_as_a_failed_model() -> None:
    kube = MemoryKube()
    body = trtmodel(serving={"replicas": -3})
    service = reconciler(kube)

    async def scenario() -> None:
        await service.observe(body, View(kube, body))
        await settled(service)

    asyncio.run(scenario())
    assert service.metrics.value("trtserve_models", phase="Failed") == 1
    assert service.metrics.value("trtserve_models", phase="Pending") == 0


def test_monitoring_configmap_is_created_once_per_namespace() -> None:
    kube = MemoryKube()
    models = [named("m"), named("other"), named("m", "ns2")]

    async def scenario() -> None:
        service = reconciler(kube)
        await asyncio.gather(
            *(service.observe(body, View(kube, body, stale=True)) for body in models)
        )
        await settled(service)

    asyncio.run(scenario())
    assert ("ConfigMap", "ns", "trtserve-monitoring") in kube.objects
    assert ("ConfigMap", "ns2", "trtserve-monitoring") in kube.objects
    assert kube.writes().count(("create", "ConfigMap")) == 2
    assert ("get", "ConfigMap") not in kube.calls  # no 409 to resolve: never sent twice


def test_a_deleted_monitoring_configmap_is_put_back_after_forget() -> None:
    kube = MemoryKube()
    body = trtmodel()

    async def scenario() -> None:
        service = reconciler(kube)
        view = View(kube, body)
        await service.observe(body, view)
        del kube.objects[("ConfigMap", "ns", "trtserve-monitoring")]
        await service.child_changed("ns", "m", "Service", view)
        assert ("ConfigMap", "ns", "trtserve-monitoring") not in kube.objects  # not looked at
        service.monitoring.forget("ns")  # what the watch handler does on its DELETED event
        await service.child_changed("ns", "m", "Service", view)
        await settled(service)

    asyncio.run(scenario())
    assert ("ConfigMap", "ns", "trtserve-monitoring") in kube.objects


def test_restart_with_an_existing_monitoring_configmap_writes_nothing() -> None:
    kube = MemoryKube()
    body = trtmodel()

    async def scenario() -> None:
        first = reconciler(kube)
        await first.observe(body, View(kube, body, stale=True))
        await settled(first)
        stored: dict[str, Any] = {}
        for patch in kube.statuses:
            stored.update(patch)
        kube.calls.clear()
        restarted = {**body, "status": stored}
        second = reconciler(kube)  # a new process with a filled cache
        await second.observe(restarted, View(kube, restarted))
        await settled(second)

    asyncio.run(scenario())
    assert kube.calls == []


def test_a_refused_monitoring_configmap_is_ready_false_and_the_children_still_applied() -> None:
    kube = MemoryKube()
    kube.refuse["ConfigMap"] = RejectedError("create configmaps ns/x: 403 Forbidden", code=403)
    body = trtmodel()

    async def scenario() -> None:
        service = reconciler(kube)
        with pytest.raises(RejectedError):
            await service.observe(body, View(kube, body))
        await settled(service)

    asyncio.run(scenario())
    assert ("create", "Deployment") in kube.calls
    ready = next(c for c in kube.statuses[0]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ChildRejected"
    assert "trtserve-monitoring" in ready["message"]


def test_status_updates_leave_the_benchmark_services_status_benchmark_alone() -> None:
    kube = MemoryKube()
    body = trtmodel()
    benchmark = {"result": "Succeeded", "speedup": 2.1, "target": {"name": "m", "generation": 1}}

    async def scenario() -> None:
        service = reconciler(kube)
        view = View(kube, body)
        await service.observe(body, view)
        await settled(service)
        # The benchmark service merge-patches status.benchmark on its own; the cache has it.
        view.body = {**body, "status": {**kube.statuses[-1], "benchmark": benchmark}}
        kube.objects[("Deployment", "ns", "m")]["status"] = {"replicas": 1}
        service.pods_changed("ns", "m", view)
        await settled(service)

    asyncio.run(scenario())
    assert len(kube.statuses) == 2
    assert kube.statuses[1]["replicas"] == 1
    assert "benchmark" not in kube.statuses[1]  # neither removed nor rewritten


def test_after_a_restart_the_first_writes_do_not_wait_for_every_spec_to_be_validated() -> None:
    """Many models converging at once (a restart): each is validated and rendered within
    its reconcile slot, so once the namespace's first write (its monitoring ConfigMap) is
    answered, the next writes go out while most specs are still waiting, instead of after
    all of them are validated (the API server would sit idle meanwhile)."""

    class SlowKube(MemoryKube):
        def __init__(self) -> None:
            super().__init__()
            self.models_known_at_create: list[int] = []
            self.service: Reconciler | None = None

        async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
            if self.service is not None:
                self.models_known_at_create.append(len(self.service._models))
            await asyncio.sleep(0.001)  # a request takes a while
            return await super().create(obj)

    kube = SlowKube()
    bodies = [named(f"m{i}") for i in range(60)]

    async def scenario() -> None:
        service = Reconciler(
            kube, Settings(converter_image="c:1", status_interval=0, max_concurrent_reconciles=4)
        )
        kube.service = service
        await asyncio.gather(*(service.observe(b, View(kube, b, stale=True)) for b in bodies))
        await settled(service)

    asyncio.run(scenario())
    assert sum(1 for c in kube.writes() if c == ("create", "Deployment")) == 60
    first, second = kube.models_known_at_create[:2]  # the ConfigMap, then a Service
    assert first == 1
    assert second <= 4 + 1
