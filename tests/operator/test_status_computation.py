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
    invalid_spec_status,
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


def pod(
    init: dict[str, Any] | None, config_hash: str = "h1", ready: bool = False, **meta: Any
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Running" if ready else "Pending"}
    status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
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
    assert result.event is None  # "not converted yet" on a new TRTModel is no news


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
    assert result.event is not None
    assert result.event.warning
    assert result.event.reason == "SignatureNotFound"
    assert "no signature 'x'" in result.event.message


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


def test_a_ready_pod_makes_ready_and_transition_time_only_moves_on_change() -> None:
    ok = report(result="Succeeded", reason="Succeeded", exitCode=0, message="converted")
    done = {"state": {"terminated": {"exitCode": 0, "message": ok}}}
    starting = compute_status(
        TARGET,
        deployment=deployment(replicas=2),
        pods=[pod(done), pod(done)],
        previous=None,
        now=T0,
    )
    assert starting.status.phase is Phase.STARTING
    pods = [pod(done, ready=True), pod(done)]
    ready = compute_status(
        TARGET,
        deployment=deployment(replicas=2, readyReplicas=1, availableReplicas=1, updatedReplicas=2),
        pods=pods,
        previous=starting.status,
        now=T1,
    )
    by_type = conditions(ready)
    assert ready.status.phase is Phase.READY
    assert by_type["Ready"].status is ConditionStatus.TRUE
    assert by_type["Ready"].last_transition_time == T1
    assert by_type["Converted"].last_transition_time == T0  # unchanged: still True
    assert (ready.status.ready_replicas, ready.status.pods) == (1, "1/2")
    # One Event for the update, though Ready and Available both changed.
    assert ready.event is not None
    assert (ready.event.warning, ready.event.reason) == (False, "ModelAvailable")

    again = compute_status(
        TARGET,
        deployment=deployment(replicas=2, readyReplicas=1, availableReplicas=1, updatedReplicas=2),
        pods=pods,
        previous=ready.status,
        now="2026-01-01T01:00:00Z",
    )
    assert again.event is None
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


def test_only_actionable_transitions_are_events_and_at_most_one_per_update() -> None:
    running = [pod({"state": {"running": {"startedAt": T0}}})]
    converting = compute_status(
        TARGET, deployment=deployment(), pods=running, previous=None, now=T0
    )
    assert converting.event is None  # converting: progress, no Event
    ok = report(result="Succeeded", reason="Succeeded", exitCode=0, message="converted 3 ops")
    done = [pod({"state": {"terminated": {"exitCode": 0, "message": ok}}})]
    converted = compute_status(
        TARGET, deployment=deployment(), pods=done, previous=converting.status, now=T1
    )
    assert converted.event is not None  # the conversion finished
    assert (converted.event.warning, converted.event.reason) == (False, "Converted")
    assert "converted 3 ops" in converted.event.message
    served = [pod({"state": {"terminated": {"exitCode": 0, "message": ok}}}, ready=True)]
    ready = compute_status(
        TARGET, deployment=deployment(), pods=served, previous=converted.status, now=T1
    )
    assert ready.event is not None
    assert ready.event.reason == "ModelAvailable"
    # A scale-out (one more pod, not ready yet) changes capacity, not Ready: no Event.
    scaled = compute_status(
        TARGET, deployment=deployment(), pods=[*served, *done], previous=ready.status, now=T1
    )
    assert conditions(scaled)["Ready"].status is ConditionStatus.TRUE
    assert scaled.status.pods == "1/2"
    assert scaled.event is None


def test_conversion_finished_and_ready_at_once_is_one_event_naming_both() -> None:
    ok = report(result="Succeeded", reason="Succeeded", exitCode=0, message="converted 3 ops")
    done = [pod({"state": {"terminated": {"exitCode": 0, "message": ok}}}, ready=True)]
    result = compute_status(
        TARGET,
        deployment=deployment(replicas=2, readyReplicas=2, availableReplicas=2, updatedReplicas=2),
        pods=done,
        previous=None,
        now=T0,
    )
    assert result.event is not None
    assert result.event.reason == "ModelAvailable"
    assert "Ready=True" in result.event.message
    assert "Converted=True: converted 3 ops" in result.event.message


def test_a_failure_is_announced_once() -> None:
    failed = [pod({"state": {"terminated": {"exitCode": 31, "message": report()}}})]
    first = compute_status(TARGET, deployment=deployment(), pods=failed, previous=None, now=T0)
    assert first.event is not None
    assert (first.event.warning, first.event.reason) == (True, "ConversionFailed")
    again = compute_status(
        TARGET, deployment=deployment(), pods=failed, previous=first.status, now=T1
    )
    assert again.event is None


def test_invalid_spec_keeps_the_rest_of_the_status_and_announces_once() -> None:
    before = status_to_wire(
        compute_status(TARGET, deployment=deployment(), pods=[], previous=None, now=T0).status
    )
    new, event = invalid_spec_status(
        before, generation=4, message="spec.serving.replicas: must be >= 0", now=T1
    )
    ready = next(c for c in new["conditions"] if c["type"] == "Ready")
    assert (new["phase"], new["observedGeneration"]) == ("Failed", 4)
    assert (ready["reason"], ready["status"], ready["observedGeneration"]) == (
        "InvalidSpec",
        "False",
        4,
    )
    assert ready["lastTransitionTime"] == T0  # Ready was already False
    assert new["endpoint"] == before["endpoint"]
    assert event is not None
    assert (event.warning, event.reason) == (True, "InvalidSpec")
    again, second = invalid_spec_status(new, generation=4, message=ready["message"], now=T1)
    assert second is None
    assert status_merge_patch(new, again) == {}
