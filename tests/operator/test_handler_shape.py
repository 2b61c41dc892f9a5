"""The kopf side of the operator: level-triggered handlers only, projections that keep
what converging compares.

kopf writes to an object (diff-base and progress annotations, finalizers) only for its
change-detecting handlers (on.create/update/resume/delete/field), daemons and timers. The
operator registers none of them, so a TRTModel's only writer is its status update.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import kopf
import pytest
from builder_inputs import EXAMPLES, example_bodies, rendered

import trtserve_operator.cli  # noqa: F401  (registers every handler, as `run` does)
from trtserve_operator.handlers.indexes import (
    child_projection,
    pod_projection,
    trtmodel_projection,
)
from trtserve_operator.handlers.lifecycle import (
    NoDiffBaseStorage,
    NoProgressStorage,
    configure_kopf,
)
from trtserve_operator.services.converge import Action, plan
from trtserve_operator.services.targets import target_from_body


def test_no_handler_makes_kopf_write_to_the_objects() -> None:
    registry = kopf.get_default_registry()
    changing = registry._changing.get_all_handlers()
    spawning = registry._spawning.get_all_handlers()
    assert changing == [], "a change-detecting handler makes kopf store a diff-base"
    assert spawning == [], "daemons and timers make kopf store progress"
    watching = {handler.id for handler in registry._watching.get_all_handlers()}
    assert {"trtmodel_event", "child_changed", "pod_changed"} <= {i.split("/")[0] for i in watching}


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


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_child_projections_keep_every_field_converging_compares(example: Path) -> None:
    for children in rendered(example):
        for child in children.all():
            status = ("replicas", "readyReplicas") if child["kind"] == "Deployment" else ()
            projected = child_projection(with_api_defaults(child), status=status)
            assert plan(child, projected).action is Action.NOOP, child["kind"]
            assert "managedFields" not in projected["metadata"]
            assert "annotations" not in projected["metadata"]
            assert "conditions" not in projected.get("status", {})


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
    projected = pod_projection(pod)
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
