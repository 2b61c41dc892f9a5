"""The kopf side of the operator: level-triggered handlers only, projections that keep
what converging compares.

kopf writes to an object (diff-base and progress annotations, finalizers) only for its
change-detecting handlers (on.create/update/resume/delete/field), daemons and timers. The
operator registers none of them, so a TRTModel's only writer is its status update.
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import kopf
import pytest
from builder_inputs import EXAMPLES, example_bodies, rendered
from kopf._cogs.structs.references import Resource

import trtserve_operator.cli  # noqa: F401  (registers every handler, as `run` does)
from trtserve_operator.cli import build_projectors
from trtserve_operator.handlers.benchmarks import job_projection
from trtserve_operator.handlers.indexes import MANAGED, trtmodel_projection
from trtserve_operator.handlers.lifecycle import (
    NoDiffBaseStorage,
    NoProgressStorage,
    configure_kopf,
)
from trtserve_operator.services.builders.benchmark_job import KEY_ANNOTATION
from trtserve_operator.services.builders.monitoring import build_monitoring_configmap
from trtserve_operator.services.converge import Action, plan
from trtserve_operator.services.targets import target_from_body


def test_no_handler_makes_kopf_write_to_the_objects() -> None:
    registry = kopf.get_default_registry()
    changing = registry._changing.get_all_handlers()
    spawning = registry._spawning.get_all_handlers()
    assert changing == [], "a change-detecting handler makes kopf store a diff-base"
    assert spawning == [], "daemons and timers make kopf store progress"
    watching = {handler.id for handler in registry._watching.get_all_handlers()}
    # Issue 11's handlers are level-triggered too: the benchmark's.
    assert {i.split("/")[0] for i in watching} == {
        "trtmodel_event",
        "benchmark_trtmodel_event",
        "benchmark_job_event",
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
    projected = job_projection(job)
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
        projected = trtmodel_projection(served)
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


def test_index_functions_are_async() -> None:
    """kopf runs synchronous handlers in a thread pool: index functions stay async."""
    registry = kopf.get_default_registry()
    for handler in registry._indexing.get_all_handlers():
        assert asyncio.iscoroutinefunction(handler.fn), handler.id


def test_child_watches_select_the_operators_objects_server_side() -> None:
    """Every watch whose handlers only want the operator's own objects (``labels=`` with the
    ``managed-by`` label) asks the API server for those only: client-side label filters
    would leave kopf streaming and processing every object of that kind in scope. A new
    kind watched that way (a Job, say) fails here until it is in WATCHED_CHILDREN."""
    settings = kopf.OperatorSettings()
    configure_kopf(settings)
    registry = kopf.get_default_registry()
    handlers = [
        *registry._indexing.get_all_handlers(),
        *registry._watching.get_all_handlers(),
    ]
    managed = {
        (
            handler.selector.group or "",
            handler.selector.version,
            handler.selector.plural or handler.selector.any_name,
        )
        for handler in handlers
        if MANAGED.items() <= dict(handler.labels or {}).items() and handler.selector is not None
    }
    assert ("batch", "v1", "jobs") in managed
    for group, version, plural in managed:
        resource = Resource(group, version or "v1", plural)
        selectors = list(settings.watching.label_selectors.collect(resource))
        assert selectors == ["app.kubernetes.io/managed-by=trtserve-operator"], plural
    trtmodels = Resource("trtserve.io", "v1alpha1", "trtmodels")
    assert list(settings.watching.label_selectors.collect(trtmodels)) == []


def test_kopf_does_not_watch_what_the_adapter_watches() -> None:
    """The children and pods are listed and watched by the adapter's informers
    (kube/watch.py): a kopf handler or index on them would stream every event twice."""
    registry = kopf.get_default_registry()
    handlers = [
        *registry._indexing.get_all_handlers(),
        *registry._watching.get_all_handlers(),
    ]
    watched = {handler.selector.plural for handler in handlers if handler.selector is not None}
    informed = {projector.resource.plural for projector in build_projectors().values()}
    assert informed == {"deployments", "services", "configmaps", "pods"}
    assert watched.isdisjoint(informed), watched
