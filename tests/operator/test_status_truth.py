"""Status that tells the truth while things change (issue 19): what serves and what is
rolled out are both in the status, each true at once; stuck pods and contradicting reports
get reasons of their own."""

from __future__ import annotations

import json
from typing import Any

from test_status_computation import T0, T1, TARGET, conditions, deployment, pod, report

from trtserve_operator.api.v1alpha1 import (
    ConditionStatus,
    ConversionStatus,
    Phase,
    ServedStatus,
    TRTModelSpec,
    TRTModelStatus,
)
from trtserve_operator.services.benchmark import ready_at_generation
from trtserve_operator.services.builders.target import Target
from trtserve_operator.services.report import parse_termination_message
from trtserve_operator.services.status import compute_status, status_to_wire

OK = report(result="Succeeded", reason="Succeeded", exitCode=0, message="converted to FP16")
DONE = {"state": {"terminated": {"exitCode": 0, "message": OK}}}
CONVERTING = {"state": {"running": {"startedAt": T0}}}
FP32 = Target(
    name="m",
    namespace="ns",
    uid="u",
    generation=2,
    spec=TRTModelSpec.model_validate(
        {"source": {"uri": "s3://b/m"}, "conversion": {"precision": "FP32"}}
    ),
)


def served_fp16(generation: int = 1) -> TRTModelStatus:
    """The status of generation 1 (FP16) while it served alone."""
    old = Target(
        name="m",
        namespace="ns",
        uid="u",
        generation=generation,
        spec=TRTModelSpec.model_validate(
            {"source": {"uri": "s3://b/m"}, "conversion": {"precision": "FP16"}}
        ),
    )
    result = compute_status(
        old,
        deployment=deployment(),
        pods=[pod(DONE, config_hash="old", ready=True)],
        previous=None,
        now=T0,
        config_hash="old",
    )
    assert result.status.served is not None
    assert result.status.served.generation == generation
    return result.status


def as_object(status: TRTModelStatus, generation: int) -> dict[str, Any]:
    return {"metadata": {"generation": generation}, "status": status_to_wire(status)}


def test_a_spec_change_is_not_ready_at_the_new_generation_before_its_pod_serves() -> None:
    """FP16 -> FP32: the old pod serves, the new one converts. Ready stays True (the model
    is served), but by generation 1 in FP16, and the benchmark does not start."""
    before = served_fp16()
    pods = [pod(DONE, config_hash="old", ready=True), pod(CONVERTING, config_hash="new")]
    result = compute_status(
        FP32, deployment=deployment(), pods=pods, previous=before, now=T1, config_hash="new"
    )
    status = result.status
    by_type = conditions(result)
    assert by_type["Ready"].status is ConditionStatus.TRUE
    assert "served by generation 1 while generation 2 rolls out" in by_type["Ready"].message
    assert status.served is not None
    assert (status.served.generation, status.served.precision) == (1, "FP16")
    assert by_type["Progressing"].status is ConditionStatus.TRUE
    assert by_type["Progressing"].reason == "RollingOut"
    assert by_type["Converted"].reason == "Converting"  # the new pods' conversion
    assert not ready_at_generation(as_object(status, 2))

    # The old pod goes away, the new one serves: now generation 2 serves alone.
    new = [pod(DONE, config_hash="new", ready=True)]
    done = compute_status(
        FP32, deployment=deployment(), pods=new, previous=status, now=T1, config_hash="new"
    )
    assert done.status.served is not None
    assert (done.status.served.generation, done.status.served.precision) == (2, "FP32")
    assert conditions(done)["Progressing"].reason == "NewRevisionAvailable"
    assert ready_at_generation(as_object(done.status, 2))


def test_both_revisions_ready_is_still_the_previous_generation_serving() -> None:
    """The Service balances over the surge pod and the old pod: the benchmark would
    measure both, so the new generation does not serve alone yet."""
    pods = [pod(DONE, config_hash="old", ready=True), pod(DONE, config_hash="new", ready=True)]
    result = compute_status(
        FP32, deployment=deployment(), pods=pods, previous=served_fp16(), now=T1, config_hash="new"
    )
    assert result.status.served is not None
    assert result.status.served.generation == 1
    assert result.status.pods == "2/1"
    assert not ready_at_generation(as_object(result.status, 2))


def test_a_failed_new_revision_while_the_old_one_serves_is_a_stalled_rollout() -> None:
    failed = report(reason="AccuracyGateFailed", exitCode=40, message="top-1 0.5 below 0.9")
    new = {
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 40, "message": failed}},
    }
    before = served_fp16()
    pods = [pod(DONE, config_hash="old", ready=True), pod(new, config_hash="new")]
    result = compute_status(
        FP32, deployment=deployment(), pods=pods, previous=before, now=T1, config_hash="new"
    )
    by_type = conditions(result)
    assert result.status.phase is Phase.READY  # served: not an outage
    assert by_type["Ready"].status is ConditionStatus.TRUE
    assert by_type["Progressing"].status is ConditionStatus.FALSE
    assert by_type["Progressing"].reason == "RolloutStalled"
    assert "AccuracyGateFailed" in by_type["Progressing"].message
    assert "top-1 0.5 below 0.9" in by_type["Progressing"].message
    assert by_type["Converted"].reason == "AccuracyGateFailed"
    served = result.status.served
    assert served is not None
    assert served.precision == "FP16"  # what serves, with its own report
    assert served.conversion is not None
    assert served.conversion.message == "converted to FP16"
    assert result.event is not None
    assert (result.event.warning, result.event.reason) == (True, "RolloutStalled")


def test_a_rollout_past_its_progress_deadline_is_stalled_while_the_old_pod_serves() -> None:
    """The new pod still converts (or loads) when the Deployment passes
    progressDeadlineSeconds: nothing failed yet, but the rollout will not finish by
    itself in time. Progressing says so with the controller's message; Ready stays True."""
    before = served_fp16()
    pods = [pod(DONE, config_hash="old", ready=True), pod(CONVERTING, config_hash="new")]
    stalled = deployment()
    stalled["status"]["conditions"] = [
        {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": 'ReplicaSet "m-2" has timed out progressing.',
        }
    ]
    progressing = compute_status(
        FP32, deployment=deployment(), pods=pods, previous=before, now=T1, config_hash="new"
    )
    assert conditions(progressing)["Progressing"].reason == "RollingOut"
    result = compute_status(
        FP32, deployment=stalled, pods=pods, previous=before, now=T1, config_hash="new"
    )
    by_type = conditions(result)
    assert by_type["Ready"].status is ConditionStatus.TRUE
    assert by_type["Progressing"].status is ConditionStatus.FALSE
    assert by_type["Progressing"].reason == "RolloutStalled"
    assert "ProgressDeadlineExceeded" in by_type["Progressing"].message
    assert 'ReplicaSet "m-2" has timed out progressing.' in by_type["Progressing"].message
    assert result.event is not None
    assert (result.event.warning, result.event.reason) == (True, "RolloutStalled")
    # Once the new revision serves alone, the stale condition does not matter.
    alone = compute_status(
        FP32,
        deployment=stalled,
        pods=[pod(DONE, config_hash="new", ready=True)],
        previous=result.status,
        now=T1,
        config_hash="new",
    )
    assert conditions(alone)["Progressing"].reason == "NewRevisionAvailable"


def test_scaling_out_keeps_ready_and_shows_capacity() -> None:
    two = TARGET  # spec.serving.replicas = 2
    first = compute_status(
        two, deployment=deployment(), pods=[pod(DONE, ready=True)], previous=None, now=T0
    )
    scaled = compute_status(
        two,
        deployment=deployment(),
        pods=[pod(DONE, ready=True), pod(CONVERTING)],
        previous=first.status,
        now=T1,
    )
    by_type = conditions(scaled)
    assert by_type["Ready"].status is ConditionStatus.TRUE
    assert by_type["Ready"].reason == "ModelAvailable"
    assert by_type["Progressing"].reason == "NewRevisionAvailable"
    assert scaled.status.pods == "1/2"
    assert scaled.event is None


def stuck_status(status: dict[str, Any]) -> Any:
    body = pod(None)
    body["status"] = {"phase": "Pending", **status}
    return compute_status(TARGET, deployment=deployment(), pods=[body], previous=None, now=T0)


def test_each_stuck_state_has_its_own_reason_and_what_to_fix() -> None:
    cases = {
        "Unschedulable": (
            {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                             "message": "0/3 nodes: 3 Insufficient nvidia.com/gpu"}]},
            "Insufficient nvidia.com/gpu",
        ),
        "ImagePullFailed": (
            {"containerStatuses": [{"name": "serving", "state": {"waiting": {
                "reason": "ImagePullBackOff", "message": 'Back-off pulling image "x:1"'}}}]},
            "spec.serving.image",
        ),
        "ContainerConfigError": (
            {"initContainerStatuses": [{"name": "convert", "state": {"waiting": {
                "reason": "CreateContainerConfigError",
                "message": 'secret "s3-credentials" not found'}}}]},
            'secret "s3-credentials" not found',
        ),
        "ServingOOMKilled": (
            {"containerStatuses": [{"name": "serving",
                                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                                    "lastState": {"terminated": {"reason": "OOMKilled",
                                                                 "exitCode": 137}}}]},
            "spec.serving.resources.limits.memory",
        ),
    }  # fmt: skip
    for reason, (status, hint) in cases.items():
        result = stuck_status(status)
        ready = conditions(result)["Ready"]
        assert (ready.status, ready.reason) == (ConditionStatus.FALSE, reason), reason
        assert hint in ready.message, reason
        assert conditions(result)["Progressing"].reason == "RolloutStalled", reason
        assert result.event is not None, reason
        assert (result.event.warning, result.event.reason) == (True, reason)


def conversion(message: str | None, exit_code: int, kubelet: str | None = None) -> ConversionStatus:
    return parse_termination_message(message, exit_code, kubelet_reason=kubelet)


def test_the_exit_code_decides_and_a_contradicting_report_is_its_own_reason() -> None:
    success = report(result="Succeeded", reason="Succeeded", exitCode=0, message="ok")
    said_success = conversion(success, 40)
    assert (said_success.result, said_success.reason) == ("Failed", "ConverterReportInvalid")
    assert "exited with code 40 (AccuracyGateFailed)" in (said_success.message or "")
    assert said_success.exit_code == 40
    said_failure = conversion(report(), 0)
    assert (said_failure.result, said_failure.reason) == ("Succeeded", "ConverterReportInvalid")
    assert "ConversionFailed" in (said_failure.message or "")
    agreeing = conversion(report(reason="Timeout", exitCode=60, message="too slow"), 60)
    assert (agreeing.result, agreeing.reason, agreeing.message) == ("Failed", "Timeout", "too slow")


def test_a_truncated_report_is_invalid_not_copied() -> None:
    cut = report(message="x" * 100)[:60]
    status = conversion(cut, 31)
    assert status.reason == "ConverterReportInvalid"
    assert "{" not in (status.message or "")
    assert "code 31 (ConversionFailed)" in (status.message or "")


def test_messages_are_one_line() -> None:
    tail = conversion("Traceback\n  File x\nValueError: bad\n", 70)
    assert tail.message == "ValueError: bad"
    multi = conversion(report(message="first\nsecond"), 31)
    assert multi.message == "first second"


def test_the_kubelets_oom_kill_is_named_with_the_limit_to_raise() -> None:
    status = conversion("Killed", 137, kubelet="OOMKilled")
    assert status.reason == "OOMKilled"
    assert "spec.serving.resources.limits.memory" in (status.message or "")
    killed = conversion("", 137)
    assert killed.reason == "OOMKilledOrKilled"  # no kubelet reason: it cannot tell


def test_messages_name_the_trtmodel_fields_not_the_converter_flags() -> None:
    message = (
        "converted model differs from the original: top-1 agreement 0.5 below "
        "--accuracy-min-top1 0.9 (...): use a higher precision, better calibration data, "
        "or a lower --accuracy-min-top1"
    )
    status = conversion(report(reason="AccuracyGateFailed", exitCode=40, message=message), 40)
    assert "--accuracy" not in (status.message or "")
    assert (status.message or "").count("spec.conversion.accuracy.minTop1Agreement") == 2


def test_a_status_from_before_served_existed_still_reads_as_served() -> None:
    old = TRTModelStatus(served=None, observed_generation=1)
    pods = [pod(DONE, config_hash="old", ready=True), pod(CONVERTING, config_hash="new")]
    result = compute_status(
        FP32, deployment=deployment(), pods=pods, previous=old, now=T1, config_hash="new"
    )
    assert conditions(result)["Ready"].status is ConditionStatus.TRUE
    assert result.status.served == ServedStatus(ready_replicas=1)
    assert "an earlier generation" in conditions(result)["Ready"].message
    assert json.dumps(status_to_wire(result.status))  # serializable
