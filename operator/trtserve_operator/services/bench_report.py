"""``trt-bench``'s JSON summary (docs/bench.md), read from the benchmark pod's termination
message, as ``status.benchmark``."""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from trtserve_operator.api.v1alpha1 import (
    BenchmarkLevel,
    BenchmarkModelResult,
    BenchmarkResult,
    BenchmarkStatus,
)
from trtserve_operator.services.builders.benchmark_job import BenchmarkRun

EXIT_REASONS: dict[int, str] = {
    0: "Succeeded",
    2: "InvalidArguments",
    10: "EndpointUnavailable",
    11: "ModelNotAvailable",
    21: "SignatureNotFound",
    22: "InvalidInputs",
    40: "ErrorRateExceeded",
    70: "InternalError",
}
"""trt-bench's exit code -> reason (docs/bench.md), for a pod that left no summary."""
_SIGNAL_REASONS = {137: "OOMKilledOrKilled", 143: "Terminated"}
MAX_MESSAGE = 1024


class _Summary(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class SummaryLevel(_Summary):
    concurrency: int
    requests: int | None = None
    errors: int | None = None
    qps: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None


class SummaryEndpoint(_Summary):
    endpoint: str | None = None
    levels: list[SummaryLevel] = []


class SummaryComparisonLevel(_Summary):
    concurrency: int
    qps_change_percent: float | None = None
    p50_change_percent: float | None = None
    p99_change_percent: float | None = None
    noise_percent: float | None = None
    significant: bool | None = None


class SummaryComparison(_Summary):
    levels: list[SummaryComparisonLevel] = []
    speedup: float | None = None


class BenchSummary(_Summary):
    """The summary's keys; unknown keys are ignored so newer trt-bench stays readable."""

    v: int
    result: str
    reason: str
    exit_code: int
    message: str
    duration_seconds: float | None = None
    model: str | None = None
    signature: str | None = None
    target: SummaryEndpoint | None = None
    baseline: SummaryEndpoint | None = None
    comparison: SummaryComparison | None = None


def reason_for_exit_code(exit_code: int) -> str:
    if exit_code in EXIT_REASONS:
        return EXIT_REASONS[exit_code]
    return _SIGNAL_REASONS.get(exit_code, "BenchmarkExited")


def parse_summary(message: str | None, exit_code: int) -> BenchSummary:
    """The summary in a terminated ``bench`` container's message; a stand-in built from the
    exit code and the last log line when there is none (killed, crashed before writing)."""
    text = (message or "").strip()
    if text:
        try:
            return BenchSummary.model_validate(json.loads(text))
        except (ValueError, ValidationError):
            pass
    last_line = text.splitlines()[-1].strip() if text else ""
    return BenchSummary(
        v=1,
        result="Succeeded" if exit_code == 0 else "Failed",
        reason=reason_for_exit_code(exit_code),
        exit_code=exit_code,
        message=last_line or f"trt-bench exited with code {exit_code} and no summary",
    )


def _by_concurrency(levels: Sequence[SummaryLevel]) -> dict[int, SummaryLevel]:
    return {level.concurrency: level for level in levels}


def _side(
    run: BenchmarkRun, *, baseline: bool, level: SummaryLevel | None, endpoint: str | None
) -> BenchmarkModelResult:
    model = run.baseline if baseline else run.target
    return BenchmarkModelResult(
        name=model.name,
        generation=model.generation,
        uid=model.uid or None,
        endpoint=endpoint,
        qps=level.qps if level else None,
        p50_ms=level.p50_ms if level else None,
        p99_ms=level.p99_ms if level else None,
        errors=level.errors if level else None,
    )


def summary_to_status(
    summary: BenchSummary, run: BenchmarkRun, *, job: str, start_time: str | None, now: str
) -> BenchmarkStatus:
    """``status.benchmark`` of a finished run: both models at the highest level measured,
    the speedup, and every level."""
    target = summary.target or SummaryEndpoint()
    baseline = summary.baseline or SummaryEndpoint()
    comparison = summary.comparison or SummaryComparison()
    ours, theirs = _by_concurrency(target.levels), _by_concurrency(baseline.levels)
    compared = {level.concurrency: level for level in comparison.levels}
    concurrencies = sorted(set(ours) | set(theirs))
    levels = []
    for concurrency in concurrencies:
        mine, other = ours.get(concurrency), theirs.get(concurrency)
        change = compared.get(concurrency)
        levels.append(
            BenchmarkLevel(
                concurrency=concurrency,
                qps=mine.qps if mine else None,
                p50_ms=mine.p50_ms if mine else None,
                p99_ms=mine.p99_ms if mine else None,
                baseline_qps=other.qps if other else None,
                baseline_p50_ms=other.p50_ms if other else None,
                baseline_p99_ms=other.p99_ms if other else None,
                qps_change_percent=change.qps_change_percent if change else None,
                p50_change_percent=change.p50_change_percent if change else None,
                p99_change_percent=change.p99_change_percent if change else None,
                noise_percent=change.noise_percent if change else None,
                significant=change.significant if change else None,
            )
        )
    top = concurrencies[-1] if concurrencies else None
    top_change = compared.get(top) if top is not None else None
    succeeded = summary.result == "Succeeded" and summary.exit_code == 0
    return BenchmarkStatus(
        result=BenchmarkResult.SUCCEEDED if succeeded else BenchmarkResult.FAILED,
        reason=summary.reason[:256] or ("Succeeded" if succeeded else "BenchmarkFailed"),
        message=" ".join(summary.message.split())[:MAX_MESSAGE],
        job=job,
        start_time=start_time,
        completion_time=now,
        speedup=comparison.speedup,
        significant=top_change.significant if top_change else None,
        concurrency=top,
        target=_side(
            run, baseline=False, level=ours.get(top) if top else None, endpoint=target.endpoint
        ),
        baseline=_side(
            run, baseline=True, level=theirs.get(top) if top else None, endpoint=baseline.endpoint
        ),
        levels=levels or None,
    )
