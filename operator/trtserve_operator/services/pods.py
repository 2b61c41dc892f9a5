"""What the serving pods say about the conversion (the ``convert`` initContainer)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from trtserve_operator.api.v1alpha1 import ConversionStatus
from trtserve_operator.services.builders.names import (
    CONVERT_CONTAINER,
    HASH_ANNOTATION,
    SERVING_CONTAINER,
)
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
    return parse_termination_message(
        terminated.get("message"), exit_code, kubelet_reason=terminated.get("reason")
    )


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


@dataclass(frozen=True)
class Stuck:
    """Why a pod cannot make progress by itself: a Ready/Progressing reason and what to fix."""

    reason: str
    message: str


IMAGE_PULL_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName"})
CONFIG_REASONS = frozenset({"CreateContainerConfigError"})
START_REASONS = frozenset({"CreateContainerError", "RunContainerError"})
_CONTAINER_FIELDS = {
    CONVERT_CONTAINER: "the converter image (TRTSERVE_CONVERTER_IMAGE, chart converterImage)",
    SERVING_CONTAINER: "spec.serving.image",
}


def _statuses(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def stuck(pod: Mapping[str, Any]) -> Stuck | None:
    """What keeps ``pod`` from running, in the kubelet's and the scheduler's own words:
    unschedulable, an image that cannot be pulled, a container the kubelet cannot create
    (e.g. a missing Secret or ConfigMap key), TF Serving crash-looping. None otherwise."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            detail = condition.get("message") or condition.get("reason") or "unschedulable"
            return Stuck(
                "Unschedulable",
                f"no node can run the serving pod ({detail}): check the GPU nodes, "
                "spec.serving.resources, nodeSelector and tolerations, and that the "
                "PersistentVolumeClaim of spec.source exists",
            )
    for status in _statuses(pod):
        name = str(status.get("name"))
        waiting = (status.get("state") or {}).get("waiting") or {}
        reason, detail = waiting.get("reason"), waiting.get("message") or ""
        where = _CONTAINER_FIELDS.get(name, f"container {name}")
        if reason in IMAGE_PULL_REASONS:
            return Stuck(
                "ImagePullFailed",
                f"container {name}: {reason} {detail}".rstrip()
                + f": check {where} and the pull secrets",
            )
        if reason in CONFIG_REASONS:
            return Stuck(
                "ContainerConfigError",
                f"container {name}: {detail or reason}: create what it names (a Secret or "
                "ConfigMap of the namespace) or fix the spec that refers to it",
            )
        if reason in START_REASONS:
            return Stuck("ContainerStartFailed", f"container {name}: {reason} {detail}".rstrip())
        last = (status.get("lastState") or {}).get("terminated") or {}
        if name == SERVING_CONTAINER and reason == "CrashLoopBackOff":
            if last.get("reason") == "OOMKilled":
                return Stuck(
                    "ServingOOMKilled",
                    "TF Serving ran out of memory loading or serving the model: raise "
                    "spec.serving.resources.limits.memory",
                )
            code = last.get("exitCode")
            return Stuck(
                "ServingCrashLoop",
                f"TF Serving keeps exiting (exit code {code}): "
                "kubectl logs -c serving --previous says why",
            )
    return None


def is_ready(pod: Mapping[str, Any]) -> bool:
    """The pod's Ready condition is True: it is an endpoint of the Service."""
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def alive_pods(pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Pods not being deleted: a terminating pod says nothing about what comes next."""
    return [p for p in pods if not p.get("metadata", {}).get("deletionTimestamp")]


def is_current(pod: Mapping[str, Any], config_hash: str | None) -> bool:
    """Whether ``pod`` was made from the current pod template (its config hash)."""
    if config_hash is None:
        return True
    annotations = pod.get("metadata", {}).get("annotations") or {}
    return bool(annotations.get(HASH_ANNOTATION) == config_hash)


def combined_conversion(pods: Iterable[Mapping[str, Any]]) -> PodConversion:
    """The most telling stage over ``pods``: failed > converting > succeeded > pending."""
    best = PodConversion(Stage.PENDING, "no serving pod yet")
    for pod in pods:
        stage = pod_conversion(pod)
        if stage.stage > best.stage or (stage.stage == best.stage and best.report is None):
            best = stage
    return best
