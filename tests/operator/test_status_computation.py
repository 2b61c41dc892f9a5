"""Status from injected Deployment and Pod objects (pure, no cluster)."""

from __future__ import annotations

import json
from typing import Any

from trtserve_operator.api.v1alpha1 import ConditionStatus, Phase, TRTModelSpec
from trtserve_operator.services.builders.names import HASH_ANNOTATION
from trtserve_operator.services.builders.target import Target
from trtserve_operator.services.status import (
    Blocker,
    compute_status,
    status_merge_patch,
    status_to_wire,
)

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:05:00Z"
TARGET = Target(
    name="m",
    namespace="ns",
    uid="u",
    generation=3,
    spec=TRTModelSpec.model_validate({"source": {"uri": "s3://b/m"}, "serving": {"replicas": 2}}),
)


def pod(init: dict[str, Any] | None, config_hash: str = "h1", **meta: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Pending"}
    if init is not None:
        status["initContainerStatuses"] = [{"name": "convert", **init}]
    return {
        "metadata": {"name": "p", "annotations": {HASH_ANNOTATION: config_hash}, **meta},
        "status": status,
    }


def report(**fields: Any) -> str:
    base = {"v": 1, "result": "Failed", "reason": "ConversionFailed", "exitCode": 31,
            "message": "TF-TRT conversion failed"}  # fmt: skip
    return json.dumps({**base, **fields})


def deployment(**status: int) -> dict[str, Any]:
    return {"spec": {"replicas": 2}, "status": status}


def conditions(result: Any) -> dict[str, Any]:
    return {c.type: c for c in result.status.conditions}


def test_no_pod_yet_is_pending() -> None:
    result = compute_status(TARGET, deployment=deployment(), pods=[], previous=None, now=T0)
    assert result.status.phase is Phase.PENDING
    assert result.status.endpoint is not None
    assert result.status.endpoint.grpc == "m.ns.svc:8500"
    assert result.status.endpoint.rest == "http://m.ns.svc:8501/v1/models/m"
    assert result.status.selector == "app.kubernetes.io/instance=m,app.kubernetes.io/name=trtserve"
    assert all(c.observed_generation == 3 for c in result.status.conditions or [])
    assert result.transitions == []  # "not converted yet" on a new TRTModel is no news


def test_running_converter_is_converting() -> None:
    pods = [pod({"state": {"running": {"startedAt": T0}}})]
    result = compute_status(TARGET, deployment=deployment(), pods=pods, previous=None, now=T0)
    assert result.status.phase is Phase.CONVERTING
    assert conditions(result)["Converted"].status is ConditionStatus.UNKNOWN


def test_failed_converter_report_becomes_reason_and_conversion_status() -> None:
    message = report(reason="SignatureNotFound", exitCode=21, message="no signature 'x'; have: a")
    pods = [pod({"state": {"terminated": {"exitCode": 21, "message": message}}})]
    result = compute_status(TARGET, deployment=deployment(), pods=pods, previous=None, now=T0)
    ready = conditions(result)["Ready"]
    assert result.status.phase is Phase.FAILED
    assert ready.status is ConditionStatus.FALSE
    assert ready.reason == "SignatureNotFound"
    assert "no signature 'x'" in ready.message
    assert result.status.conversion is not None
    assert result.status.conversion.exit_code == 21
    assert any(t.warning and t.reason == "SignatureNotFound" for t in result.transitions)


def test_crash_loop_keeps_failed_from_last_state() -> None:
    message = report(reason="AccuracyGateFailed", exitCode=40)
    init = {
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 40, "message": message}},
    }
    result = compute_status(
        TARGET, deployment=deployment(), pods=[pod(init)], previous=None, now=T0
    )
    assert result.status.phase is Phase.FAILED
    assert conditions(result)["Ready"].reason == "AccuracyGateFailed"
    assert "CrashLoopBackOff" in conditions(result)["Ready"].message


def test_killed_converter_without_report_uses_exit_code_and_log_tail() -> None:
    init = {"state": {"terminated": {"exitCode": 137, "message": "loading\nKilled"}}}
    result = compute_status(
        TARGET, deployment=deployment(), pods=[pod(init)], previous=None, now=T0
    )
    assert result.status.phase is Phase.FAILED
    assert result.status.conversion is not None
    assert result.status.conversion.message == "Killed"
    assert result.status.conversion.exit_code == 137


def test_ready_replicas_make_ready_and_transition_time_only_moves_on_change() -> None:
    ok = report(result="Succeeded", reason="Succeeded", exitCode=0, message="converted")
    pods = [pod({"state": {"terminated": {"exitCode": 0, "message": ok}}})]
    starting = compute_status(
        TARGET, deployment=deployment(replicas=2, readyReplicas=1), pods=pods, previous=None, now=T0
    )
    assert starting.status.phase is Phase.STARTING
    ready = compute_status(
        TARGET,
        deployment=deployment(replicas=2, readyReplicas=2, availableReplicas=2, updatedReplicas=2),
        pods=pods,
        previous=starting.status,
        now=T1,
    )
    by_type = conditions(ready)
    assert ready.status.phase is Phase.READY
    assert by_type["Ready"].status is ConditionStatus.TRUE
    assert by_type["Ready"].last_transition_time == T1
    assert by_type["Converted"].last_transition_time == T0  # unchanged: still True
    assert ready.status.ready_replicas == 2
    assert {t.reason for t in ready.transitions} == {"ModelAvailable", "MinimumReplicasAvailable"}

    again = compute_status(
        TARGET,
        deployment=deployment(replicas=2, readyReplicas=2, availableReplicas=2, updatedReplicas=2),
        pods=pods,
        previous=ready.status,
        now="2026-01-01T01:00:00Z",
    )
    assert again.transitions == []
    assert status_merge_patch(status_to_wire(ready.status), status_to_wire(again.status)) == {}


def test_pods_of_an_old_template_do_not_decide() -> None:
    failed = {"state": {"terminated": {"exitCode": 31, "message": report()}}}
    running = {"state": {"running": {}}}
    pods = [pod(failed, config_hash="old"), pod(running, config_hash="new")]
    result = compute_status(
        TARGET, deployment=deployment(), pods=pods, previous=None, now=T0, config_hash="new"
    )
    assert result.status.phase is Phase.CONVERTING


def test_terminating_pods_are_ignored() -> None:
    failed = {"state": {"terminated": {"exitCode": 31, "message": report()}}}
    pods = [pod(failed, deletionTimestamp=T0)]
    result = compute_status(TARGET, deployment=deployment(), pods=pods, previous=None, now=T0)
    assert result.status.phase is Phase.PENDING


def test_blocker_fails_ready_with_its_reason() -> None:
    blocker = Blocker("UnsupportedServingImage", "2.18 cannot load TRT ops")
    result = compute_status(
        TARGET, deployment=None, pods=[], previous=None, now=T0, blocker=blocker
    )
    assert result.status.phase is Phase.FAILED
    assert conditions(result)["Ready"].reason == "UnsupportedServingImage"
    assert conditions(result)["Available"].reason == "DeploymentMissing"


def test_merge_patch_removes_dropped_keys_and_nests() -> None:
    old = {"phase": "Failed", "conversion": {"reason": "X", "gpu": "A10"}, "replicas": 1}
    new = {"phase": "Ready", "conversion": {"reason": "Succeeded"}, "replicas": 1}
    assert status_merge_patch(old, new) == {
        "phase": "Ready",
        "conversion": {"gpu": None, "reason": "Succeeded"},
    }
