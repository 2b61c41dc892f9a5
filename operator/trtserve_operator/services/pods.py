"""What the serving pods say about the conversion (the ``convert`` initContainer)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from trtserve_operator.api.v1alpha1 import ConversionStatus
from trtserve_operator.services.builders.names import CONVERT_CONTAINER, HASH_ANNOTATION
from trtserve_operator.services.report import parse_termination_message


class Stage(IntEnum):
    """Conversion stage of one pod; a higher value wins when pods are combined."""

    PENDING = 0
    SUCCEEDED = 1
    CONVERTING = 2
    FAILED = 3


@dataclass(frozen=True)
class PodConversion:
    stage: Stage
    message: str = ""
    report: ConversionStatus | None = None


def _terminated(state: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    return (state or {}).get("terminated")


def _report(terminated: Mapping[str, Any]) -> ConversionStatus:
    exit_code = int(terminated.get("exitCode", 0))
    return parse_termination_message(terminated.get("message"), exit_code)


def _pending_message(pod: Mapping[str, Any]) -> str:
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"{condition.get('reason', 'Unschedulable')}: {condition.get('message', '')}"
    return "waiting for the serving pod to start"


def pod_conversion(pod: Mapping[str, Any]) -> PodConversion:
    """Stage of the ``convert`` initContainer of ``pod``.

    A non-zero exit is a failure whether the container is still terminated, waiting in
    CrashLoopBackOff, or running again (its ``lastState`` keeps the failed run's report).
    """
    statuses = pod.get("status", {}).get("initContainerStatuses") or []
    status = next((s for s in statuses if s.get("name") == CONVERT_CONTAINER), None)
    if status is None:
        return PodConversion(Stage.PENDING, _pending_message(pod))
    state = status.get("state") or {}
    terminated = _terminated(state)
    if terminated is not None:
        report = _report(terminated)
        if int(terminated.get("exitCode", 0)) == 0:
            return PodConversion(Stage.SUCCEEDED, report.message or "", report)
        return PodConversion(Stage.FAILED, report.message or "", report)
    last = _terminated(status.get("lastState"))
    if last is not None and int(last.get("exitCode", 0)) != 0:
        report = _report(last)
        waiting = (state.get("waiting") or {}).get("reason")
        suffix = f" ({waiting})" if waiting else " (retrying)"
        return PodConversion(Stage.FAILED, f"{report.message}{suffix}", report)
    if "running" in state:
        return PodConversion(Stage.CONVERTING, "converting the SavedModel with TF-TRT")
    waiting = state.get("waiting") or {}
    detail = ": ".join(x for x in (waiting.get("reason"), waiting.get("message")) if x)
    return PodConversion(Stage.PENDING, f"converter not started: {detail or 'waiting'}")


def current_pods(
    pods: Iterable[Mapping[str, Any]], config_hash: str | None
) -> list[Mapping[str, Any]]:
    """The pods of the current pod template (by config hash), or all pods when none is.

    Terminating pods are left out: they say nothing about the current state.
    """
    alive = [p for p in pods if not p.get("metadata", {}).get("deletionTimestamp")]
    if config_hash is None:
        return alive
    current = [
        p
        for p in alive
        if (p.get("metadata", {}).get("annotations") or {}).get(HASH_ANNOTATION) == config_hash
    ]
    return current or alive


def combined_conversion(pods: Iterable[Mapping[str, Any]]) -> PodConversion:
    """The most telling stage over ``pods``: failed > converting > succeeded > pending."""
    best = PodConversion(Stage.PENDING, "no serving pod yet")
    for pod in pods:
        stage = pod_conversion(pod)
        if stage.stage > best.stage or (stage.stage == best.stage and best.report is None):
            best = stage
    return best
