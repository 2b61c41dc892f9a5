"""The JSON summary of docs/bench.md, at most 4096 bytes, and its one-line message.

The summary is the Job's termination message, which Kubernetes caps at 4096 bytes:
`render` keeps it under the cap by shortening the message, dropping the optional keys,
then the levels between the lowest and the highest, then shortening the message further.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from trtserve_bench.errors import SUCCEEDED_EXIT_CODE, SUCCEEDED_REASON, BenchError
from trtserve_bench.runner import EndpointRun, RunState, describe_inputs
from trtserve_bench.stats import Comparison, LevelComparison, LevelStats, compare
from trtserve_converter.termination import (
    MAX_TERMINATION_MESSAGE_BYTES,
    encode,
    shorten_message,
    size,
)

LOG = logging.getLogger(__name__)

MAX_SUMMARY_BYTES = MAX_TERMINATION_MESSAGE_BYTES
SCHEMA_VERSION = 1
MIN_MESSAGE_CHARS = 512
OPTIONAL_TOP = ("protocol", "rounds", "warmupSeconds", "deadlineSeconds", "inputShapes")
OPTIONAL_ENDPOINT = ("model", "modelVersion", "warmupRequests")
OPTIONAL_LEVEL = ("qpsSpreadPercent", "p50SpreadPercent", "clientCpuPercent", "errorsByCode")
OPTIONAL_COMPARISON_LEVEL = ("p50NoisePercent", "p50Significant")
MAX_ERROR_CODES = 4  # errorsByCode keeps the most frequent ones


def _round(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else _round(seconds * 1000, 3)


def level_json(stats: LevelStats) -> dict[str, Any]:
    return {
        "concurrency": stats.concurrency,
        "requests": stats.requests,
        "errors": stats.errors,
        "qps": _round(stats.qps, 1),
        "p50Ms": _ms(stats.p50),
        "p90Ms": _ms(stats.p90),
        "p99Ms": _ms(stats.p99),
        "maxMs": _ms(stats.max),
        "qpsSpreadPercent": _round(stats.qps_spread_percent, 1),
        "p50SpreadPercent": _round(stats.p50_spread_percent, 1),
        "clientCpuPercent": _round(stats.client_cpu_percent, 1),
        "errorsByCode": dict(list(stats.errors_by_code.items())[:MAX_ERROR_CODES]),
    }


def endpoint_json(run: EndpointRun) -> dict[str, Any]:
    return {
        "endpoint": run.transport.address,
        "model": run.transport.model_name,
        "modelVersion": run.model_version,
        "warmupRequests": run.warmup_requests,
        "levels": [level_json(stats) for stats in run.levels],
    }


def comparison_level_json(level: LevelComparison) -> dict[str, Any]:
    return {
        "concurrency": level.concurrency,
        "qpsChangePercent": _round(level.qps_change_percent, 1),
        "p50ChangePercent": _round(level.p50_change_percent, 1),
        "p99ChangePercent": _round(level.p99_change_percent, 1),
        "noisePercent": _round(level.noise_percent, 1),
        "significant": level.significant,
        "p50NoisePercent": _round(level.p50_noise_percent, 1),
        "p50Significant": level.p50_significant,
    }


def comparison_of(state: RunState) -> Comparison | None:
    if state.baseline is None:
        return None
    return compare(state.target.levels, state.baseline.levels)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f} %"


def comparison_phrase(level: LevelComparison) -> str:
    """`QPS +62.0 %, p50 -45.1 %, p99 -40.2 % vs baseline (noise ±2.1 %)` + verdict."""
    noise = "n/a" if level.noise_percent is None else f"±{level.noise_percent:.1f} %"
    text = (
        f"QPS {_percent(level.qps_change_percent)}, p50 {_percent(level.p50_change_percent)}, "
        f"p99 {_percent(level.p99_change_percent)} vs baseline (noise {noise})"
    )
    return text if level.significant else f"{text}: within the noise, no measurable difference"


def success_message(state: RunState, comparison: Comparison | None) -> str:
    model = state.target.transport.model_name
    if not state.target.levels:
        return f"{model}: nothing measured"
    top = state.target.levels[-1]
    if comparison is None or not comparison.levels:
        return (
            f"{model} at concurrency {top.concurrency}: {top.qps:.1f} QPS, "
            f"p50 {_ms(top.p50)} ms, p99 {_ms(top.p99)} ms"
        )
    level = comparison.levels[-1]
    speedup = "n/a" if comparison.speedup is None else f"{comparison.speedup:.2f}x"
    return (
        f"{model} at concurrency {level.concurrency}: {comparison_phrase(level)}; speedup {speedup}"
    )


def build_summary(
    state: RunState,
    *,
    protocol: str,
    deadline_seconds: float,
    error: BenchError | None = None,
) -> dict[str, Any]:
    """The full summary (before fitting it under the cap)."""
    comparison = comparison_of(state)
    plan = state.plan
    return {
        "v": SCHEMA_VERSION,
        "result": "Failed" if error else "Succeeded",
        "reason": error.reason if error else SUCCEEDED_REASON,
        "exitCode": error.exit_code if error else SUCCEEDED_EXIT_CODE,
        "message": error.message if error else success_message(state, comparison),
        "durationSeconds": plan.duration_seconds,
        "model": state.target.transport.model_name,
        "signature": plan.signature_key,
        "protocol": protocol,
        "rounds": plan.rounds,
        "warmupSeconds": plan.warmup_seconds,
        "deadlineSeconds": deadline_seconds,
        "inputShapes": describe_inputs(state.input_shapes),
        "target": endpoint_json(state.target),
        "baseline": endpoint_json(state.baseline) if state.baseline else None,
        "comparison": None
        if comparison is None
        else {
            "levels": [comparison_level_json(level) for level in comparison.levels],
            "speedup": _round(comparison.speedup, 3),
        },
    }


def bare_summary(
    error: BenchError,
    *,
    model: str | None,
    signature: str,
    endpoint: str | None,
    duration_seconds: float | None,
) -> dict[str, Any]:
    """The summary of a run that measured nothing (bad arguments, no protos)."""
    return {
        "v": SCHEMA_VERSION,
        "result": "Failed",
        "reason": error.reason,
        "exitCode": error.exit_code,
        "message": error.message,
        "durationSeconds": duration_seconds,
        "model": model,
        "signature": signature,
        "target": {"endpoint": endpoint, "levels": []},
        "baseline": None,
        "comparison": None,
    }


def _level_lists(data: dict[str, Any]) -> list[list[dict[str, Any]]]:
    lists = [data["target"]["levels"]]
    if data.get("baseline"):
        lists.append(data["baseline"]["levels"])
    if data.get("comparison"):
        lists.append(data["comparison"]["levels"])
    return lists


def _drop_optional(data: dict[str, Any], limit: int) -> None:
    """Drop optional keys, least useful first, until the summary fits."""
    endpoints = [data[role] for role in ("target", "baseline") if data.get(role)]
    measured = [level for endpoint in endpoints for level in endpoint["levels"]]
    compared = data["comparison"]["levels"] if data.get("comparison") else []
    steps: list[tuple[list[dict[str, Any]], tuple[str, ...]]] = [
        (measured, OPTIONAL_LEVEL[::-1]),
        (compared, OPTIONAL_COMPARISON_LEVEL),
        (endpoints, OPTIONAL_ENDPOINT),
        ([data], OPTIONAL_TOP),
    ]
    for objects, keys in steps:
        for key in keys:
            if size(data) <= limit:
                return
            for obj in objects:
                obj.pop(key, None)


def _drop_middle_levels(data: dict[str, Any], limit: int) -> None:
    """Drop levels (in every list alike) until the summary fits: the one after the
    lowest first, the highest never; mark the summary truncated."""
    while size(data) > limit:
        concurrencies = sorted({level["concurrency"] for level in data["target"]["levels"]})
        if len(concurrencies) <= 1:
            return
        drop = concurrencies[1] if len(concurrencies) > 2 else concurrencies[0]
        for levels in _level_lists(data):
            levels[:] = [level for level in levels if level["concurrency"] != drop]
        data["truncated"] = True


def render(data: dict[str, Any], limit: int = MAX_SUMMARY_BYTES) -> str:
    """Compact one-line JSON of the summary, at most `limit` bytes in UTF-8."""
    data = json.loads(encode(data))  # a deep copy; fails loudly on NaN
    data["message"] = " ".join(str(data["message"]).split())
    shorten_message(data, MIN_MESSAGE_CHARS, limit)
    _drop_optional(data, limit)
    _drop_middle_levels(data, limit)
    shorten_message(data, 0, limit)
    return encode(data)


def write(text: str, path: str) -> None:
    """Write the summary to --report-path; failures are logged, the exit code still tells."""
    try:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as error:
        LOG.error("could not write the summary to %s: %s", path, error)
