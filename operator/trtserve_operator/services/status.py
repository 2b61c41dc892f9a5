"""TRTModel status from what exists: the Deployment, its Pods and the converter's report.

One model of what is true at once, since during a rollout two things are:

- **what serves** (``status.served``, condition ``Ready``): the generation whose pods are
  ready, its precision and its conversion report. While any pod of the previous pod
  template is ready, that is the previous generation (the Service balances over both, so
  the new one does not serve alone yet); once none is, the current generation. ``Ready``
  is True while any serving pod is ready: a model that serves is Ready, whatever is being
  rolled out and however many pods are missing (capacity is ``status.pods``, ready/desired).
- **what is being rolled out** (condition ``Progressing``): ``NewRevisionAvailable`` once
  the current generation serves alone, ``RollingOut`` while its pods start, False with
  ``RolloutStalled`` (and the new pods' converter reason or the kubelet's) when it cannot
  go on by itself or the Deployment passed its progress deadline, or with the reason the
  operator refuses the spec.
- ``Converted``: the conversion of the *current* pod template's pods only.

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
    ConversionStatus,
    Endpoint,
    Phase,
    ServedStatus,
    TRTModelStatus,
)
from trtserve_operator.services.builders.names import (
    grpc_endpoint,
    rest_endpoint,
    selector_string,
)
from trtserve_operator.services.builders.target import Target
from trtserve_operator.services.pods import (
    PodConversion,
    Stage,
    Stuck,
    alive_pods,
    combined_conversion,
    is_current,
    is_ready,
    stuck,
)

CONVERTED = "Converted"
AVAILABLE = "Available"
PROGRESSING = "Progressing"
READY = "Ready"
CONDITION_TYPES = (CONVERTED, AVAILABLE, PROGRESSING, READY)
MODEL_AVAILABLE = "ModelAvailable"
NEW_REVISION_AVAILABLE = "NewRevisionAvailable"
ROLLING_OUT = "RollingOut"
ROLLOUT_STALLED = "RolloutStalled"
PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
"""The deployment controller's reason when a rollout passed ``progressDeadlineSeconds``
(``spec.conversion.timeoutSeconds`` plus a startup budget, see the Deployment builder)."""
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


@dataclass(frozen=True)
class PodsView:
    """The serving pods, split by pod template: current (this generation's rendering) and
    previous, with how many of each are ready and what blocks the current ones."""

    current: list[Mapping[str, Any]]
    ready_current: int
    ready_previous: int
    stuck: Stuck | None

    @classmethod
    def of(cls, pods: Sequence[Mapping[str, Any]], config_hash: str | None) -> PodsView:
        alive = alive_pods(pods)
        current = [p for p in alive if is_current(p, config_hash)]
        previous = [p for p in alive if not is_current(p, config_hash)]
        blocked = next((found for p in current if (found := stuck(p)) is not None), None)
        return cls(
            current=current,
            ready_current=sum(1 for p in current if is_ready(p)),
            ready_previous=sum(1 for p in previous if is_ready(p)),
            stuck=blocked,
        )

    @property
    def ready(self) -> int:
        return self.ready_current + self.ready_previous


def _served(
    target: Target,
    view: PodsView,
    conversion: PodConversion,
    previous: TRTModelStatus | None,
) -> ServedStatus | None:
    """What serves now: the previous generation while any of its pods is ready, else the
    current one once one of its pods is; nothing when no pod is ready."""
    before = previous.served if previous else None
    if view.ready_previous > 0:
        if before is None:  # a status written before status.served existed
            return ServedStatus(ready_replicas=view.ready)
        return before.model_copy(update={"ready_replicas": view.ready})
    if view.ready_current == 0:
        return None
    report: ConversionStatus | None = None
    if conversion.stage is Stage.SUCCEEDED:
        report = conversion.report
    elif before is not None and before.generation == target.generation:
        report = before.conversion
    return ServedStatus(
        generation=target.generation,
        precision=target.spec.conversion.precision.value,
        ready_replicas=view.ready_current,
        conversion=report,
    )


def _ready(
    target: Target,
    view: PodsView,
    served: ServedStatus | None,
    converted: _Verdict,
    blocker: Blocker | None,
) -> _Verdict:
    if served is not None:
        wanted = target.spec.serving.replicas
        message = f"{view.ready} serving pod(s) ready of {wanted}; model {target.model_name!r}"
        if served.generation != target.generation:
            which = (
                f"generation {served.generation}" if served.generation else "an earlier generation"
            )
            message += f" served by {which} while generation {target.generation} rolls out"
        return _Verdict(ConditionStatus.TRUE, MODEL_AVAILABLE, message)
    if blocker is not None:
        return _Verdict(ConditionStatus.FALSE, blocker.reason, blocker.message, warning=True)
    if target.spec.serving.replicas == 0:
        return _Verdict(ConditionStatus.FALSE, "ScaledToZero", "spec.serving.replicas is 0")
    if converted.warning:
        return _Verdict(ConditionStatus.FALSE, converted.reason, converted.message, warning=True)
    if view.stuck is not None:
        return _Verdict(ConditionStatus.FALSE, view.stuck.reason, view.stuck.message, warning=True)
    if converted.reason in ("Converting", "Pending"):
        return _Verdict(ConditionStatus.FALSE, converted.reason, converted.message)
    return _Verdict(
        ConditionStatus.FALSE,
        "Starting",
        f"0/{target.spec.serving.replicas} serving pod(s) ready, loading the model",
    )


def _deadline_exceeded(deployment: Mapping[str, Any] | None) -> str | None:
    """The deployment controller's message once the rollout passed
    ``progressDeadlineSeconds`` (``Progressing=False ProgressDeadlineExceeded``), else None."""
    conditions = ((deployment or {}).get("status") or {}).get("conditions") or []
    for condition in conditions:
        if (
            condition.get("type") == PROGRESSING
            and condition.get("status") == ConditionStatus.FALSE.value
            and condition.get("reason") == PROGRESS_DEADLINE_EXCEEDED
        ):
            return str(condition.get("message") or "the rollout timed out")
    return None


def _progressing(
    target: Target,
    view: PodsView,
    served: ServedStatus | None,
    converted: _Verdict,
    blocker: Blocker | None,
    *,
    deadline_exceeded: str | None,
) -> _Verdict:
    generation = target.generation
    if blocker is not None:
        return _Verdict(ConditionStatus.FALSE, blocker.reason, blocker.message, warning=True)
    if served is not None and served.generation == generation:
        return _Verdict(
            ConditionStatus.TRUE,
            NEW_REVISION_AVAILABLE,
            f"generation {generation} serves ({view.ready_current} pod(s) ready)",
        )
    if converted.warning:
        return _Verdict(
            ConditionStatus.FALSE,
            ROLLOUT_STALLED,
            f"generation {generation}: the new pods' converter failed: {converted.reason}: "
            f"{converted.message}",
            warning=True,
        )
    if view.stuck is not None:
        return _Verdict(
            ConditionStatus.FALSE,
            ROLLOUT_STALLED,
            f"generation {generation}: {view.stuck.reason}: {view.stuck.message}",
            warning=True,
        )
    if target.spec.serving.replicas == 0:
        return _Verdict(ConditionStatus.TRUE, NEW_REVISION_AVAILABLE, "scaled to zero")
    if deadline_exceeded is not None:
        return _Verdict(
            ConditionStatus.FALSE,
            ROLLOUT_STALLED,
            f"generation {generation}: {PROGRESS_DEADLINE_EXCEEDED} ({deadline_exceeded}); "
            f"{view.ready_current}/{target.spec.serving.replicas} new pod(s) ready "
            f"({converted.message or converted.reason})",
            warning=True,
        )
    return _Verdict(
        ConditionStatus.TRUE,
        ROLLING_OUT,
        f"generation {generation}: {view.ready_current}/{target.spec.serving.replicas} new "
        f"pod(s) ready ({converted.message or converted.reason})",
    )


def _phase(converted: _Verdict, ready: _Verdict) -> Phase:
    if ready.status is ConditionStatus.TRUE:
        return Phase.READY
    if ready.warning:
        return Phase.FAILED
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
        for kind in (READY, PROGRESSING, CONVERTED, AVAILABLE)
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
    view = PodsView.of(pods, config_hash)
    conversion = combined_conversion(view.current)
    converted = _converted(conversion)
    served = _served(target, view, conversion, previous)
    verdicts = {
        CONVERTED: converted,
        AVAILABLE: _available(deployment),
        PROGRESSING: _progressing(
            target,
            view,
            served,
            converted,
            blocker,
            deadline_exceeded=_deadline_exceeded(deployment),
        ),
        READY: _ready(target, view, served, converted, blocker),
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
        ready_replicas=view.ready,
        pods=f"{view.ready}/{target.spec.serving.replicas}",
        served=served,
        selector=selector_string(target),
        # No endpoint for a refused model that has nothing running (it gets no Service).
        endpoint=(
            None
            if blocker is not None and deployment is None
            else Endpoint(grpc=grpc_endpoint(target), rest=rest_endpoint(target))
        ),
        conversion=conversion.report or (previous.conversion if previous else None),
        # Owned by the benchmark service (services/benchmark.py): carried as it is.
        benchmark=previous.benchmark if previous else None,
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
