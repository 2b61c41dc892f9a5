"""TRTModel status from what exists: the Deployment, its Pods and the converter's report.

Pure functions: the caller passes the observed objects and the previous status and gets
the new status plus at most one Event to post. ``lastTransitionTime`` only changes when a
condition's status changes.

Events are only posted for transitions a person acts on (see :func:`announcement`): the
model became Ready, something failed, or the conversion finished. Progress ("Converting",
"Starting", children created) is visible in the status and the logs, not as Events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trtserve_operator.api.v1alpha1 import (
    Condition,
    ConditionStatus,
    Endpoint,
    Phase,
    TRTModelStatus,
)
from trtserve_operator.services.builders.names import (
    grpc_endpoint,
    rest_endpoint,
    selector_string,
)
from trtserve_operator.services.builders.target import Target
from trtserve_operator.services.pods import PodConversion, Stage, combined_conversion, current_pods

CONVERTED = "Converted"
AVAILABLE = "Available"
READY = "Ready"
CONDITION_TYPES = (CONVERTED, AVAILABLE, READY)
INVALID_SPEC = "InvalidSpec"
INVALID_CHILD = "InvalidChild"
"""Ready reason when the API server rejected a rendered child as invalid (422)."""
CHILD_REJECTED = "ChildRejected"
"""Ready reason when the API server refused a child write for another reason (400, 403...)."""


@dataclass(frozen=True)
class Blocker:
    """Why the operator refuses to roll out the spec (reason is a Condition reason)."""

    reason: str
    message: str


@dataclass(frozen=True)
class Transition:
    """A change worth a Kubernetes Event on the TRTModel (``Warning`` when ``warning``)."""

    warning: bool
    reason: str
    message: str


CONVERSION_FINISHED = "Converted"
"""Event reason when the conversion succeeded (the condition's own reason is ``Succeeded``)."""


@dataclass(frozen=True)
class StatusResult:
    status: TRTModelStatus
    event: Transition | None


@dataclass(frozen=True)
class _Verdict:
    status: ConditionStatus
    reason: str
    message: str
    warning: bool = False


def _converted(conversion: PodConversion) -> _Verdict:
    report = conversion.report
    match conversion.stage:
        case Stage.SUCCEEDED:
            return _Verdict(ConditionStatus.TRUE, "Succeeded", conversion.message)
        case Stage.FAILED:
            reason = (report.reason if report else None) or "ConversionFailed"
            return _Verdict(ConditionStatus.FALSE, reason, conversion.message, warning=True)
        case Stage.CONVERTING:
            return _Verdict(ConditionStatus.UNKNOWN, "Converting", conversion.message)
        case _:
            return _Verdict(ConditionStatus.UNKNOWN, "Pending", conversion.message)


def _int(obj: Mapping[str, Any] | None, *path: str) -> int | None:
    value: Any = obj
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return int(value) if isinstance(value, int) else None


def _available(deployment: Mapping[str, Any] | None) -> _Verdict:
    if deployment is None:
        return _Verdict(ConditionStatus.FALSE, "DeploymentMissing", "the Deployment does not exist")
    available = _int(deployment, "status", "availableReplicas") or 0
    if available > 0:
        return _Verdict(
            ConditionStatus.TRUE,
            "MinimumReplicasAvailable",
            f"{available} serving pod(s) available",
        )
    return _Verdict(ConditionStatus.FALSE, "NoReplicasAvailable", "no serving pod is available")


def _ready(
    target: Target,
    deployment: Mapping[str, Any] | None,
    converted: _Verdict,
    blocker: Blocker | None,
) -> _Verdict:
    if blocker is not None:
        return _Verdict(ConditionStatus.FALSE, blocker.reason, blocker.message, warning=True)
    if converted.warning:
        return _Verdict(ConditionStatus.FALSE, converted.reason, converted.message, warning=True)
    wanted = target.spec.serving.replicas
    if wanted == 0:
        return _Verdict(ConditionStatus.FALSE, "ScaledToZero", "spec.serving.replicas is 0")
    ready = _int(deployment, "status", "readyReplicas") or 0
    updated = _int(deployment, "status", "updatedReplicas")
    if deployment is not None and ready >= wanted and (updated is None or updated >= wanted):
        return _Verdict(
            ConditionStatus.TRUE,
            "ModelAvailable",
            f"{ready}/{wanted} serving pod(s) ready; model {target.model_name!r} loaded",
        )
    if converted.reason in ("Converting", "Pending"):
        return _Verdict(ConditionStatus.FALSE, converted.reason, converted.message)
    return _Verdict(
        ConditionStatus.FALSE,
        "Starting",
        f"{ready}/{wanted} serving pod(s) ready, loading the model",
    )


def _phase(converted: _Verdict, ready: _Verdict) -> Phase:
    if ready.warning:
        return Phase.FAILED
    if ready.status is ConditionStatus.TRUE:
        return Phase.READY
    if converted.reason == "Converting":
        return Phase.CONVERTING
    if converted.status is ConditionStatus.TRUE:
        return Phase.STARTING
    return Phase.PENDING


def _condition(
    kind: str,
    verdict: _Verdict,
    previous: Mapping[str, Condition],
    generation: int,
    now: str,
) -> Condition:
    before = previous.get(kind)
    unchanged = before is not None and before.status == verdict.status
    return Condition(
        type=kind,
        status=verdict.status,
        observed_generation=generation,
        last_transition_time=before.last_transition_time if unchanged and before else now,
        reason=verdict.reason,
        message=verdict.message[:32768],
    )


def _changed(before: Condition | None, now: Condition) -> bool:
    return before is None or (before.status, before.reason) != (now.status, now.reason)


def announcement(
    before: Mapping[str, Condition], now: Sequence[Condition], failures: set[str]
) -> Transition | None:
    """The one Event of a status update, if a person would act on what changed.

    - a failure (``failures``: condition types whose verdict is a failure) that is new or
      has a new reason: ``Warning``, the failure's reason (``Ready`` carries it when both
      ``Converted`` and ``Ready`` fail);
    - ``Ready`` became ``True``: ``Normal``, ``ModelAvailable``;
    - ``Converted`` became ``True`` (the conversion finished): ``Normal``, ``Converted``.

    When several happen at once they make one Event: the first of the list above gives the
    type and reason, the message names them all. Everything else (pending, converting,
    starting, a rollout making Ready briefly False) is no Event: it is in the status.
    """
    changed = {c.type: c for c in now if _changed(before.get(c.type), c)}
    failed = [
        changed[kind]
        for kind in (READY, CONVERTED, AVAILABLE)
        if kind in changed and kind in failures
    ]
    news: list[Condition] = []
    if failed:
        news.append(failed[0])
    for kind in (READY, CONVERTED):
        condition = changed.get(kind)
        if condition is not None and condition.status is ConditionStatus.TRUE:
            news.append(condition)
    if not news:
        return None
    first = news[0]
    if first.type in failures:
        reason, warning = first.reason, True
    elif first.type == READY:
        reason, warning = first.reason, False
    else:
        reason, warning = CONVERSION_FINISHED, False
    message = "; ".join(f"{c.type}={c.status.value}: {c.message}" for c in news)
    return Transition(warning=warning, reason=reason, message=message)


def compute_status(
    target: Target,
    *,
    deployment: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    previous: TRTModelStatus | None,
    now: str,
    config_hash: str | None = None,
    blocker: Blocker | None = None,
) -> StatusResult:
    """The status the TRTModel should have now, and the Event to post since ``previous``."""
    conversion = combined_conversion(current_pods(pods, config_hash))
    converted = _converted(conversion)
    verdicts = {
        CONVERTED: converted,
        AVAILABLE: _available(deployment),
        READY: _ready(target, deployment, converted, blocker),
    }
    before = {c.type: c for c in (previous.conditions if previous and previous.conditions else [])}
    conditions = [
        _condition(kind, verdicts[kind], before, target.generation, now) for kind in CONDITION_TYPES
    ]
    failures = {kind for kind, verdict in verdicts.items() if verdict.warning}
    status = TRTModelStatus(
        phase=_phase(converted, verdicts[READY]),
        observed_generation=target.generation,
        conditions=conditions,
        replicas=_int(deployment, "status", "replicas") or 0,
        ready_replicas=_int(deployment, "status", "readyReplicas") or 0,
        selector=selector_string(target),
        endpoint=Endpoint(grpc=grpc_endpoint(target), rest=rest_endpoint(target)),
        conversion=conversion.report or (previous.conversion if previous else None),
    )
    return StatusResult(status=status, event=announcement(before, conditions, failures))


def status_to_wire(status: TRTModelStatus) -> dict[str, Any]:
    """The status as stored in the API (camelCase, unset fields omitted)."""
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def status_merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Merge patch turning status ``old`` into ``new`` (removed keys become ``None``);
    empty when they are equal, so an unchanged status costs no request."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if before == value:
            continue
        if isinstance(before, Mapping) and isinstance(value, Mapping):
            patch[key] = status_merge_patch(before, value)
        else:
            patch[key] = value
    return patch


def invalid_spec_status(
    old: Mapping[str, Any], *, generation: int, message: str, now: str
) -> tuple[dict[str, Any], Transition | None]:
    """``Ready=False``/``InvalidSpec`` on a TRTModel whose spec does not validate (the rest
    of the stored status is kept: it still describes what runs), and its Event when the
    spec was not already reported invalid."""
    conditions = [c for c in old.get("conditions") or [] if c.get("type") != READY]
    before: Mapping[str, Any] = next(
        (c for c in old.get("conditions") or [] if c.get("type") == READY), {}
    )
    unchanged = before.get("status") == ConditionStatus.FALSE.value
    ready = {
        "type": READY,
        "status": ConditionStatus.FALSE.value,
        "observedGeneration": generation,
        "lastTransitionTime": before.get("lastTransitionTime") if unchanged else now,
        "reason": INVALID_SPEC,
        "message": message[:32768],
    }
    new = {**old, "phase": Phase.FAILED.value, "observedGeneration": generation}
    new["conditions"] = [*conditions, ready]
    event = None
    if before.get("reason") != INVALID_SPEC:
        event = Transition(warning=True, reason=INVALID_SPEC, message=f"Ready=False: {message}")
    return new, event
