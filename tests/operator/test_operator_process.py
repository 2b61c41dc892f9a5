"""The operator process (kopf via KopfRunner) against kmock's KubernetesEmulator.

Each test uses its own TRTModel name, so one operator run serves the whole module. What
kmock does not emulate is never tested here: garbage collection (deletion only checks
that the handlers finish), resourceVersion, status split, selectors, schema validation.
Pod and Deployment status are injected the way a kubelet and the Deployment controller
would report them; the API server's 422 for an invalid child is injected at the
emulator's boundary (``UidAssigningEmulator.refuse``). Writes are counted per model from
the emulator's request log.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from kmock_cluster import (
    CONFIGMAPS,
    DEPLOYMENTS,
    EVENTS,
    MODELS,
    PDBS,
    PODS,
    SERVICES,
    EmulatedCluster,
    invalid_status,
    method_of,
    operator_metrics,
    operator_running,
    settle,
    template_pod,
    trtmodel,
    wait_for,
    writes_about,
)

from trtserve_operator.services.builders.names import HASH_ANNOTATION

NS = "default"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def operator(cluster: EmulatedCluster) -> Iterator[Any]:
    with operator_running() as runner:
        yield runner
    assert runner.exception is None
    assert runner.exit_code == 0


def model_path(name: str) -> str:
    return f"{MODELS.format(ns=NS)}/{name}"


def status_of(cluster: EmulatedCluster, name: str) -> dict[str, Any]:
    body = cluster.get(model_path(name)) or {}
    return dict(body.get("status") or {})


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions", []) if c["type"] == kind)


def create_and_wait(cluster: EmulatedCluster, name: str, **spec: Any) -> dict[str, Any]:
    cluster.post(MODELS.format(ns=NS), trtmodel(name, NS, **spec))
    deployment = wait_for(
        lambda: cluster.get(f"{DEPLOYMENTS.format(ns=NS)}/{name}"), what=f"deployment {name}"
    )
    wait_for(lambda: status_of(cluster, name).get("phase"), what=f"status of {name}")
    return deployment


def serving_pod(
    name: str, deployment: dict[str, Any], init_status: dict[str, Any]
) -> dict[str, Any]:
    status = {"phase": "Pending", "initContainerStatuses": [init_status]}
    return template_pod(deployment, f"{name}-abc12", NS, status)


def events_for(cluster: EmulatedCluster, name: str) -> list[dict[str, Any]]:
    listing = cluster.get(EVENTS.format(ns=NS)) or {}
    return [e for e in listing.get("items", []) if e["involvedObject"]["name"] == name]


def test_create_makes_owned_children_and_status_in_four_writes(
    cluster: EmulatedCluster, operator: Any
) -> None:
    mark = len(cluster.requests())
    deployment = create_and_wait(cluster, "create-m")
    service = cluster.get(f"{SERVICES.format(ns=NS)}/create-m")
    assert service is not None
    budget = cluster.get(f"{PDBS.format(ns=NS)}/create-m")
    assert budget is not None
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]
    # No batching: no ConfigMap (nothing would read it).
    assert cluster.get(f"{CONFIGMAPS.format(ns=NS)}/create-m-batching") is None
    for child in (deployment, service, budget):
        (owner,) = child["metadata"]["ownerReferences"]
        assert owner["kind"] == "TRTModel"
        assert owner["name"] == "create-m"
        assert owner["uid"] == "uid-create-m"
        assert owner["controller"] is True
    init = deployment["spec"]["template"]["spec"]["initContainers"][0]
    assert init["image"] == "example.com/trtserve/converter:test"  # from TRTSERVE_ env

    status = status_of(cluster, "create-m")
    assert status["phase"] == "Pending"
    assert status["endpoint"] == {
        "grpc": "create-m.default.svc:8500",
        "rest": "http://create-m.default.svc:8501/v1/models/create-m",
    }
    assert (
        status["selector"] == "app.kubernetes.io/instance=create-m,app.kubernetes.io/name=trtserve"
    )
    assert {c["type"] for c in status["conditions"]} == {
        "Converted", "Available", "Progressing", "Ready",
    }  # fmt: skip
    assert all(c["observedGeneration"] == 1 for c in status["conditions"])
    settle(cluster, quiet=1.5)
    # Deployment, Service, PodDisruptionBudget, one status write; nothing on the TRTModel's
    # metadata (kopf keeps no annotations) and no Event (nothing a person acts on happened).
    assert sorted(writes_about(cluster, "create-m", since=mark)) == [
        "PATCH trtmodels/status",
        "POST deployments",
        "POST poddisruptionbudgets",
        "POST services",
    ]
    body = cluster.get(model_path("create-m")) or {}
    assert not any(k.startswith("trtserve.io/") for k in body["metadata"].get("annotations", {}))
    assert events_for(cluster, "create-m") == []


def test_batching_model_gets_its_configmap(cluster: EmulatedCluster, operator: Any) -> None:
    create_and_wait(cluster, "batch-m", serving={"batching": {"enabled": True}})
    configmap = cluster.get(f"{CONFIGMAPS.format(ns=NS)}/batch-m-batching")
    assert configmap is not None
    assert "max_batch_size" in configmap["data"]["batching.config"]
    assert configmap["metadata"]["ownerReferences"][0]["name"] == "batch-m"


def test_spec_update_patches_deployment_and_changes_template_hash(
    cluster: EmulatedCluster, operator: Any
) -> None:
    before = create_and_wait(cluster, "update-m")
    old_hash = before["spec"]["template"]["metadata"]["annotations"][HASH_ANNOTATION]
    cluster.patch(
        model_path("update-m"),
        {"metadata": {"generation": 2}, "spec": {"conversion": {"precision": "FP32"}}},
    )

    def patched() -> dict[str, Any] | None:
        current = cluster.get(f"{DEPLOYMENTS.format(ns=NS)}/update-m") or {}
        annotations = current["spec"]["template"]["metadata"]["annotations"]
        return current if annotations[HASH_ANNOTATION] != old_hash else None

    after = wait_for(patched, what="template hash change")
    args = after["spec"]["template"]["spec"]["initContainers"][0]["args"]
    assert "--precision=FP32" in args
    assert "--precision=FP16" not in args
    deployment_patches = [
        r
        for r in cluster.writes()
        if str(r.method).endswith("PATCH") and "/deployments/update-m" in str(r.url)
    ]
    assert deployment_patches, "the Deployment must be patched, not re-created"
    wait_for(lambda: status_of(cluster, "update-m").get("observedGeneration") == 2)


def test_disruption_budget_follows_the_spec_and_is_deleted_when_turned_off(
    cluster: EmulatedCluster, operator: Any
) -> None:
    """maxUnavailable is patched in place; enabled: false deletes the budget (left behind,
    it would still limit evictions) with one DELETE, and the deletion's echo writes
    nothing more."""
    create_and_wait(cluster, "budget-m")
    path = f"{PDBS.format(ns=NS)}/budget-m"
    cluster.patch(
        model_path("budget-m"),
        {
            "metadata": {"generation": 2},
            "spec": {"serving": {"disruptionBudget": {"maxUnavailable": "50%"}}},
        },
    )
    wait_for(
        lambda: (cluster.get(path) or {}).get("spec", {}).get("maxUnavailable") == "50%",
        what="maxUnavailable patched",
    )
    settle(cluster, quiet=0.5)
    mark = len(cluster.requests())
    cluster.patch(
        model_path("budget-m"),
        {
            "metadata": {"generation": 3},
            "spec": {"serving": {"disruptionBudget": {"enabled": False}}},
        },
    )
    wait_for(lambda: cluster.get(path) is None, what="budget deleted")
    settle(cluster, quiet=1.0)
    child_writes = [
        w for w in writes_about(cluster, "budget-m", since=mark) if "trtmodels" not in w
    ]
    assert child_writes == ["DELETE poddisruptionbudgets"]
    assert cluster.get(f"{DEPLOYMENTS.format(ns=NS)}/budget-m") is not None


def test_deleted_child_is_recreated(cluster: EmulatedCluster, operator: Any) -> None:
    create_and_wait(cluster, "gone-m")
    settle(cluster, quiet=0.5)
    cluster.delete(f"{DEPLOYMENTS.format(ns=NS)}/gone-m")
    cluster.delete(f"{SERVICES.format(ns=NS)}/gone-m")
    again = wait_for(
        lambda: cluster.get(f"{DEPLOYMENTS.format(ns=NS)}/gone-m"), what="deployment recreated"
    )
    assert again["metadata"]["ownerReferences"][0]["name"] == "gone-m"
    wait_for(lambda: cluster.get(f"{SERVICES.format(ns=NS)}/gone-m"), what="service recreated")


def test_hand_edited_child_is_put_back(cluster: EmulatedCluster, operator: Any) -> None:
    create_and_wait(cluster, "edit-m")
    settle(cluster, quiet=1.5)
    patched_before = operator_metrics().get(
        'trtserve_child_actions_total{action="patch",kind="Service"}', 0
    )
    cluster.patch(f"{SERVICES.format(ns=NS)}/edit-m", {"spec": {"type": "NodePort"}})
    wait_for(
        lambda: (
            (cluster.get(f"{SERVICES.format(ns=NS)}/edit-m") or {})["spec"]["type"] == "ClusterIP"
        ),
        what="service type restored",
    )
    patched = operator_metrics()['trtserve_child_actions_total{action="patch",kind="Service"}']
    assert patched == patched_before + 1
    settle(cluster, quiet=1.5)
    assert events_for(cluster, "edit-m") == []  # a repair is logged, not an Event


def test_a_child_the_api_server_rejects_is_reported_in_status_and_one_warning(
    cluster: EmulatedCluster, operator: Any
) -> None:
    """Defence in depth (issue 8): a pod field that passes the CRD schema but not the API
    server's Go validation (an empty toleration key needs operator Exists)."""
    assert cluster.emulator is not None
    cluster.emulator.refuse(
        "deployments",
        "reject-m",
        invalid_status(
            "Deployment.apps",
            "reject-m",
            "spec.template.spec.tolerations[0].operator",
            "Required value",
        ),
    )
    toleration = {"operator": "Equal", "value": "x"}
    cluster.post(
        MODELS.format(ns=NS), trtmodel("reject-m", NS, serving={"tolerations": [toleration]})
    )
    status = wait_for(
        lambda: (s := status_of(cluster, "reject-m")).get("phase") and s, what="status"
    )
    ready = condition(status, "Ready")
    assert status["phase"] == "Failed"
    assert (ready["status"], ready["reason"]) == ("False", "InvalidChild")
    assert "tolerations[0].operator: Required value" in ready["message"]
    assert cluster.get(f"{SERVICES.format(ns=NS)}/reject-m") is not None  # the rest exists
    # The Service's own watch event converges again and meets the same refusal: still one
    # status write and one Warning.
    cluster.patch(f"{SERVICES.format(ns=NS)}/reject-m", {"metadata": {"labels": {"x": "y"}}})
    settle(cluster, quiet=1.5)
    (warning,) = events_for(cluster, "reject-m")
    assert (warning["type"], warning["reason"]) == ("Warning", "InvalidChild")
    assert "Required value" in warning["message"]
    assert writes_about(cluster, "reject-m").count("PATCH trtmodels/status") == 1


def test_deployment_and_pod_changes_coalesce_into_one_status_write_and_one_event(
    cluster: EmulatedCluster, operator: Any
) -> None:
    deployment = create_and_wait(cluster, "burst-m")
    settle(cluster, quiet=1.5)
    mark = len(cluster.requests())
    report = {"v": 1, "result": "Succeeded", "reason": "Succeeded", "exitCode": 0,
              "message": "converted burst-m to FP16"}  # fmt: skip
    running = {"name": "convert", "ready": False, "restartCount": 0, "state": {"running": {}}}
    pod = serving_pod("burst-m", deployment, running)
    # Within a fraction of a second, as a kubelet and the Deployment controller report.
    cluster.post(PODS.format(ns=NS), pod)
    done = {**running, "ready": True, "state": {"terminated": {"exitCode": 0,
            "message": json.dumps(report)}}}  # fmt: skip
    cluster.patch(f"{PODS.format(ns=NS)}/burst-m-abc12", {"status": {"phase": "Running",
                  "conditions": [{"type": "Ready", "status": "True"}],
                  "initContainerStatuses": [done]}})  # fmt: skip
    cluster.patch(
        f"{DEPLOYMENTS.format(ns=NS)}/burst-m",
        {"status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1,
                    "updatedReplicas": 1}},
    )  # fmt: skip
    wait_for(lambda: status_of(cluster, "burst-m").get("phase") == "Ready", what="Ready")
    settle(cluster, quiet=1.5)
    assert writes_about(cluster, "burst-m", since=mark) == [
        "PATCH trtmodels/status",
        "POST events",
    ]
    (event,) = events_for(cluster, "burst-m")
    assert (event["type"], event["reason"]) == ("Normal", "ModelAvailable")
    assert "converted burst-m to FP16" in event["message"]  # the conversion, same Event


def test_failed_converter_termination_message_fails_the_model(
    cluster: EmulatedCluster, operator: Any
) -> None:
    deployment = create_and_wait(cluster, "fail-m")
    report = {
        "v": 1,
        "result": "Failed",
        "reason": "AccuracyGateFailed",
        "exitCode": 40,
        "message": "max relative error 0.31 > rtol 0.01 on output 'y'",
        "precision": "FP16",
        "accuracy": {"passed": False, "samples": 32, "maxRelError": 0.31},
    }
    init_status = {
        "name": "convert",
        "ready": False,
        "restartCount": 1,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 40, "message": json.dumps(report)}},
    }
    cluster.post(PODS.format(ns=NS), serving_pod("fail-m", deployment, init_status))

    status = wait_for(
        lambda: (s := status_of(cluster, "fail-m")).get("phase") == "Failed" and s,
        what="phase Failed",
    )
    ready = condition(status, "Ready")
    assert ready["status"] == "False"
    assert ready["reason"] == "AccuracyGateFailed"
    assert "max relative error 0.31" in ready["message"]
    assert condition(status, "Converted")["reason"] == "AccuracyGateFailed"
    assert status["conversion"]["reason"] == "AccuracyGateFailed"
    assert status["conversion"]["exitCode"] == 40
    assert status["conversion"]["accuracy"] == {"passed": False, "samples": 32, "maxRelError": 0.31}
    warnings = wait_for(
        lambda: [e for e in events_for(cluster, "fail-m") if e["type"] == "Warning"]
    )
    assert {e["reason"] for e in warnings} >= {"AccuracyGateFailed"}


def test_ready_replicas_make_the_model_ready(cluster: EmulatedCluster, operator: Any) -> None:
    deployment = create_and_wait(cluster, "ready-m")
    pending = condition(status_of(cluster, "ready-m"), "Ready")
    report = {
        "v": 1, "result": "Succeeded", "reason": "Succeeded", "exitCode": 0,
        "message": "converted ready-m to FP16: 3 TRTEngineOps, 1 engines",
        "trtEngineOps": 3, "enginesBuilt": 1, "tensorrtLoaded": "8.6.1",
        "durations": {"total": 70.2},
    }  # fmt: skip
    init_status = {
        "name": "convert",
        "ready": True,
        "restartCount": 0,
        "state": {"terminated": {"exitCode": 0, "message": json.dumps(report)}},
    }
    cluster.post(PODS.format(ns=NS), serving_pod("ready-m", deployment, init_status))
    wait_for(lambda: status_of(cluster, "ready-m").get("phase") == "Starting", what="Starting")
    # The kubelet reports the pod ready, then the Deployment controller counts it.
    cluster.patch(
        f"{PODS.format(ns=NS)}/ready-m-abc12",
        {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
    )
    cluster.patch(
        f"{DEPLOYMENTS.format(ns=NS)}/ready-m",
        {
            "status": {
                "replicas": 1,
                "readyReplicas": 1,
                "availableReplicas": 1,
                "updatedReplicas": 1,
            }
        },
    )
    status = wait_for(
        lambda: (s := status_of(cluster, "ready-m")).get("phase") == "Ready" and s,
        what="phase Ready",
    )
    ready = condition(status, "Ready")
    assert ready["status"] == "True"
    assert ready["lastTransitionTime"] >= pending["lastTransitionTime"]
    assert condition(status, "Available")["status"] == "True"
    assert condition(status, "Converted")["status"] == "True"
    assert status["readyReplicas"] == 1
    assert status["replicas"] == 1
    assert status["conversion"]["trtEngineOps"] == 3
    assert status["conversion"]["tensorrtVersion"] == "8.6.1"
    assert status["conversion"]["durationSeconds"] == 70.2
    wait_for(lambda: "ModelAvailable" in {e["reason"] for e in events_for(cluster, "ready-m")})


def test_unsupported_serving_image_is_refused(cluster: EmulatedCluster, operator: Any) -> None:
    cluster.post(
        MODELS.format(ns=NS),
        trtmodel("new-tfs-m", NS, serving={"image": "tensorflow/serving:2.18.0-gpu"}),
    )
    status = wait_for(
        lambda: (s := status_of(cluster, "new-tfs-m")).get("phase") and s, what="status"
    )
    assert status["phase"] == "Failed"
    ready = condition(status, "Ready")
    assert ready["reason"] == "UnsupportedServingImage"
    assert "2.18" in ready["message"]
    settle(cluster, quiet=0.5)
    assert cluster.get(f"{DEPLOYMENTS.format(ns=NS)}/new-tfs-m") is None


def test_invalid_spec_is_reported_with_the_field(cluster: EmulatedCluster, operator: Any) -> None:
    # kmock does not validate against the CRD schema, so an invalid spec reaches the operator.
    cluster.post(
        MODELS.format(ns=NS),
        trtmodel("bad-m", NS, serving={"replicas": -3}),
    )
    status = wait_for(lambda: (s := status_of(cluster, "bad-m")).get("phase") and s, what="status")
    ready = condition(status, "Ready")
    assert status["phase"] == "Failed"
    assert ready["reason"] == "InvalidSpec"
    assert "spec.serving.replicas" in ready["message"]
    settle(cluster, quiet=0.5)
    assert cluster.get(f"{DEPLOYMENTS.format(ns=NS)}/bad-m") is None


def test_delete_finishes_cleanly(cluster: EmulatedCluster, operator: Any) -> None:
    create_and_wait(cluster, "delete-m")
    settle(cluster, quiet=0.5)
    body = cluster.get(model_path("delete-m")) or {}
    assert not body["metadata"].get("finalizers"), "no finalizer: deletion never blocks"
    cluster.delete(model_path("delete-m"))
    wait_for(lambda: cluster.get(model_path("delete-m")) is None, what="TRTModel gone")
    settle(cluster, quiet=0.5)


def test_metrics_endpoint_counts_what_the_operator_did(
    cluster: EmulatedCluster, operator: Any
) -> None:
    create_and_wait(cluster, "metrics-m")
    port = os.environ["TRTSERVE_METRICS_PORT"]
    text = httpx2.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    created = 'trtserve_child_actions_total{action="create",kind="Deployment"}'
    assert float(samples[created]) >= 1
    assert float(samples["trtserve_status_writes_total"]) >= 1
    assert 'trtserve_child_actions_total{action="noop",kind="Service"}' in samples
    assert float(samples['trtserve_models{phase="Pending"}']) >= 1


def test_shared_monitoring_configmap_is_created_and_put_back(
    cluster: EmulatedCluster, operator: Any
) -> None:
    create_and_wait(cluster, "monitored-m")
    path = f"{CONFIGMAPS.format(ns=NS)}/trtserve-monitoring"
    shared = cluster.get(path)
    assert shared is not None
    assert "prometheus_config" in shared["data"]["monitoring.config"]
    settle(cluster, quiet=0.5)
    # Once per namespace, however many models this module's tests created before.
    creates = [
        request
        for request in cluster.writes()
        if method_of(request) == "POST"
        and (request.data or {}).get("metadata", {}).get("name") == "trtserve-monitoring"
    ]
    assert len(creates) == 1
    cluster.delete(path)
    again = wait_for(lambda: cluster.get(path), what="monitoring ConfigMap put back")
    assert again["data"] == shared["data"]
    cluster.patch(path, {"data": {"monitoring.config": "edited"}})
    wait_for(
        lambda: (cluster.get(path) or {}).get("data") == shared["data"],
        what="monitoring ConfigMap repaired",
    )
