"""The kopf side of the operator and the adapter's projections.

kopf writes to an object (diff-base and progress annotations, finalizers) only for its
change-detecting handlers (on.create/update/resume/delete/field), daemons and timers. The
operator registers no resource handler at all (the adapter's informers watch every kind),
so a TRTModel's only writer is its status update; the projections keep what converging
compares.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import kopf
import pytest
from builder_inputs import EXAMPLES, example_bodies, rendered

import trtserve_operator.cli  # noqa: F401  (registers every handler, as `run` does)
from trtserve_operator.cli import build_projectors
from trtserve_operator.handlers.lifecycle import (
    NoDiffBaseStorage,
    NoProgressStorage,
    configure_kopf,
)
from trtserve_operator.services.builders.benchmark_job import KEY_ANNOTATION
from trtserve_operator.services.builders.monitoring import build_monitoring_configmap
from trtserve_operator.services.converge import Action, plan
from trtserve_operator.services.targets import target_from_body


def test_kopf_watches_nothing_and_writes_nothing_to_the_objects() -> None:
    """Every kind is listed and watched by the adapter's informers (kube/watch.py): kopf
    has only the process's activities. A resource handler would stream its kind twice,
    and a change-detecting one, a daemon or a timer would make kopf write to objects."""
    registry = kopf.get_default_registry()
    for handlers in (
        registry._indexing,
        registry._watching,
        registry._changing,
        registry._spawning,
        registry._webhooks,
    ):
        assert handlers.get_all_handlers() == []
    activities = {handler.id for handler in registry._activities.get_all_handlers()}
    # informers, leadership: probes (/healthz)
    assert activities == {"login", "startup", "cleanup", "informers", "leadership"}
    informed = {projector.resource.plural for projector in build_projectors().values()}
    assert informed == {
        "trtmodels",
        "deployments",
        "services",
        "configmaps",
        "poddisruptionbudgets",
        "pods",
        "jobs",
    }


def test_kopf_settings_store_and_post_nothing() -> None:
    settings = kopf.OperatorSettings()
    configure_kopf(settings)
    assert isinstance(settings.persistence.diffbase_storage, NoDiffBaseStorage)
    assert isinstance(settings.persistence.progress_storage, NoProgressStorage)
    assert settings.posting.enabled is False
    body = kopf.Body({"metadata": {"name": "m"}, "spec": {"a": 1}})
    assert settings.persistence.diffbase_storage.build(body=body) == {}
    assert settings.persistence.diffbase_storage.fetch(body=body) is None


def with_api_defaults(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` as an API server returns it: extra metadata, defaults, status."""
    served = copy.deepcopy(obj)
    served["metadata"].update(
        uid="u",
        resourceVersion="1",
        generation=1,
        creationTimestamp="t",
        managedFields=[{"manager": "trtserve-operator", "fieldsV1": {"f:spec": {}}}],
        annotations={"kubectl.kubernetes.io/last-applied-configuration": "{" + "x" * 2000 + "}"},
    )
    if obj["kind"] == "Deployment":
        pod = served["spec"]["template"]["spec"]
        pod.update(dnsPolicy="ClusterFirst", restartPolicy="Always", schedulerName="default")
        for container in pod["containers"] + pod["initContainers"]:
            container.update(imagePullPolicy="IfNotPresent", terminationMessagePath="/dev/t")
        served["status"] = {
            "replicas": 1,
            "readyReplicas": 1,
            "conditions": [{"type": "Available", "status": "True", "message": "x" * 200}],
        }
    return served


def adapter_projection(served: dict[str, Any], *, listed: bool = False) -> dict[str, Any]:
    """What the adapter's informer caches of ``served`` (decoded from its JSON); as a list
    item (``listed``), without the ``kind`` and ``apiVersion`` a list's items lack."""
    projector = build_projectors()[served["kind"]]
    if listed:
        served = {k: v for k, v in served.items() if k not in ("kind", "apiVersion")}
    projection: dict[str, Any] = projector.decode_object(json.dumps(served).encode()).projection
    return projection


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_child_projections_keep_every_field_converging_compares(example: Path) -> None:
    for children in rendered(example):
        for child in children.all():
            served = with_api_defaults(child)
            projected = adapter_projection(served)
            assert projected == adapter_projection(served, listed=True)
            assert set(projected) <= {"apiVersion", "kind", "metadata", "spec", "data", "status"}
            assert set(projected["metadata"]) == {
                "name", "namespace", "uid", "generation", "labels", "ownerReferences"
            }  # fmt: skip
            assert plan(child, projected).action is Action.NOOP, child["kind"]
            assert "managedFields" not in projected["metadata"]
            assert "annotations" not in projected["metadata"]
            assert "resourceVersion" not in projected["metadata"]
            if child["kind"] == "Deployment":
                assert projected["status"] == {"replicas": 1, "readyReplicas": 1}


def test_a_deployment_keeps_its_progressing_condition_only_past_the_deadline() -> None:
    """While a rollout progresses the deployment controller rewrites the Progressing
    condition's message and times with every pod: cached, each would be a change to look
    at. Only ProgressDeadlineExceeded is read (the status's RolloutStalled)."""
    children = rendered(EXAMPLES[0])[0]
    assert children.deployment is not None
    served = with_api_defaults(children.deployment)
    progressing = {
        "type": "Progressing",
        "status": "True",
        "reason": "ReplicaSetUpdated",
        "message": 'ReplicaSet "m-1" is progressing.',
        "lastUpdateTime": "t",
    }
    served["status"]["conditions"].append(progressing)
    assert "conditions" not in adapter_projection(served)["status"]
    progressing.update(
        status="False",
        reason="ProgressDeadlineExceeded",
        message='ReplicaSet "m-2" has timed out progressing.',
    )
    assert adapter_projection(served)["status"]["conditions"] == [
        {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": 'ReplicaSet "m-2" has timed out progressing.',
        }
    ]


def test_the_shared_monitoring_configmap_projection_compares_equal() -> None:
    shared = build_monitoring_configmap("ns")
    projected = adapter_projection(with_api_defaults(shared))
    assert plan(shared, projected).action is Action.NOOP
    assert "annotations" not in projected["metadata"]


def test_job_projection_keeps_the_run_key_and_conditions_only() -> None:
    job = {
        "metadata": {
            "name": "m-bench-1",
            "uid": "j",
            "annotations": {KEY_ANNOTATION: "1/b/u/1", "other": "x" * 1000},
            "managedFields": [{}],
        },
        "spec": {"template": {"spec": {"containers": [{"name": "bench"}]}}},
        "status": {
            "conditions": [
                {"type": "Complete", "status": "True", "reason": "R", "message": "M",
                 "lastProbeTime": "t"},
            ],
            "startTime": "t",
        },
    }  # fmt: skip
    projected = adapter_projection({"kind": "Job", "apiVersion": "batch/v1", **job})
    assert projected == adapter_projection({"kind": "Job", **job}, listed=True)
    assert "spec" not in projected
    assert projected["metadata"]["annotations"] == {KEY_ANNOTATION: "1/b/u/1"}
    assert projected["status"] == {
        "conditions": [{"type": "Complete", "status": "True", "reason": "R", "message": "M"}]
    }


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_trtmodel_projection_keeps_identity_spec_and_status(example: Path) -> None:
    for body in example_bodies(example):
        served = {**body, "status": {"phase": "Ready"}}
        served["metadata"] = {**body["metadata"], "managedFields": [{}], "generation": 3}
        projected = adapter_projection(served)
        assert projected == adapter_projection(served, listed=True)
        assert target_from_body(projected) == target_from_body(served)
        assert projected["status"] == {"phase": "Ready"}
        assert set(projected["metadata"]) <= {"name", "namespace", "uid", "generation"}


def test_pod_projection_keeps_what_the_status_reads() -> None:
    pod = {
        "metadata": {"name": "p", "annotations": {"trtserve.io/config-hash": "h", "x": "y"}},
        "spec": {"containers": [{"name": "serving", "image": "i"}]},
        "status": {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": "0/3 nodes", "lastProbeTime": None},
                {"type": "Initialized", "status": "False"},
            ],
            "initContainerStatuses": [
                {"name": "convert", "state": {"running": {}}, "lastState": {},
                 "image": "c", "imageID": "sha", "containerID": "cri://x"},
            ],
        },
    }  # fmt: skip
    projected = adapter_projection({"kind": "Pod", "apiVersion": "v1", **pod})
    assert "spec" not in projected
    assert projected["metadata"]["annotations"] == {"trtserve.io/config-hash": "h"}
    assert projected["status"]["conditions"] == [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/3 nodes"}
    ]  # fmt: skip
    assert projected["status"]["initContainerStatuses"] == [
        {"name": "convert", "state": {"running": {}}, "lastState": {}}
    ]
