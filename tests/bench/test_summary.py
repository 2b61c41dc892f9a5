"""The JSON summary of docs/bench.md: its keys, and the 4096-byte cap."""

from __future__ import annotations

import io
import json
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from trtserve_bench.display import print_result
from trtserve_bench.errors import ErrorRateExceeded
from trtserve_bench.runner import EndpointRun, Plan, RunState
from trtserve_bench.stats import Round, level_stats
from trtserve_bench.summary import MAX_SUMMARY_BYTES, build_summary, render

LEVEL_KEYS = {"concurrency", "requests", "errors", "qps", "p50Ms", "p90Ms", "p99Ms", "maxMs"}
COMPARISON_KEYS = {
    "concurrency",
    "qpsChangePercent",
    "p50ChangePercent",
    "p99ChangePercent",
    "noisePercent",
    "significant",
}
TOP_KEYS = {
    "v",
    "result",
    "reason",
    "exitCode",
    "message",
    "durationSeconds",
    "model",
    "signature",
    "target",
    "baseline",
    "comparison",
}


def plan(levels: tuple[int, ...]) -> Plan:
    return Plan(levels, 20.0, 3, 10.0, 60.0, 0.01, "serving_default")


def endpoint(role: str, address: str, model: str, levels: tuple[int, ...], qps: int) -> Any:
    run = EndpointRun(role, SimpleNamespace(address=address, model_name=model))  # type: ignore[arg-type]
    for concurrency in levels:
        rounds = [
            Round(
                concurrency,
                1.0,
                [concurrency / qps] * (qps + delta),
                Counter({f"CODE_{n}": n + 1 for n in range(8)}),
            )
            for delta in (-2, 0, 2)
        ]
        run.levels.append(level_stats(rounds))
    return run


def state(levels: tuple[int, ...], *, baseline: bool = True, name: str = "resnet50") -> RunState:
    result = RunState(
        plan(levels),
        endpoint("target", "resnet50-fp16.models.svc.cluster.local:8500", name, levels, 162),
        endpoint("baseline", "resnet50-native.models.svc.cluster.local:8500", name, levels, 100)
        if baseline
        else None,
    )
    result.input_shapes = {"input_1": (1, 224, 224, 3)}
    return result


def test_keys_of_a_successful_comparison() -> None:
    summary = json.loads(
        render(build_summary(state((1, 4, 16)), protocol="grpc", deadline_seconds=10))
    )
    assert set(summary) >= TOP_KEYS
    assert summary["v"] == 1
    assert (summary["result"], summary["reason"], summary["exitCode"]) == (
        "Succeeded",
        "Succeeded",
        0,
    )
    assert summary["durationSeconds"] == 20.0
    assert (summary["model"], summary["signature"]) == ("resnet50", "serving_default")
    for role in ("target", "baseline"):
        assert set(summary[role]) >= {"endpoint", "levels"}
        assert [level["concurrency"] for level in summary[role]["levels"]] == [1, 4, 16]
        for level in summary[role]["levels"]:
            assert set(level) >= LEVEL_KEYS
    comparison = summary["comparison"]
    assert comparison["speedup"] == pytest.approx(1.62, abs=0.01)
    for level in comparison["levels"]:
        assert set(level) >= COMPARISON_KEYS
        assert level["qpsChangePercent"] == pytest.approx(62.0, abs=0.5)
        assert level["significant"] is True
    assert "QPS +62.0 %" in summary["message"]
    assert "speedup 1.62x" in summary["message"]
    assert "\n" not in summary["message"]


def test_without_baseline_comparison_and_baseline_are_null() -> None:
    summary = json.loads(
        render(build_summary(state((1,), baseline=False), protocol="grpc", deadline_seconds=10))
    )
    assert summary["baseline"] is None
    assert summary["comparison"] is None
    assert summary["message"].startswith("resnet50 at concurrency 1: 162.0 QPS")


def test_a_failure_keeps_the_levels_measured() -> None:
    error = ErrorRateExceeded("5 of 100 requests failed")
    summary = json.loads(
        render(build_summary(state((1,)), protocol="grpc", deadline_seconds=10, error=error))
    )
    assert (summary["result"], summary["reason"], summary["exitCode"]) == (
        "Failed",
        "ErrorRateExceeded",
        40,
    )
    assert summary["message"] == "5 of 100 requests failed"
    assert len(summary["target"]["levels"]) == 1


def test_sixteen_levels_and_a_huge_message_fit_4096_bytes() -> None:
    levels = (*tuple(2**n for n in range(12)), 3000, 3500, 4000, 4096)
    big = state(levels, name="m" * 200)
    error = ErrorRateExceeded("ü" * 5000 + " end")
    data = build_summary(big, protocol="grpc", deadline_seconds=10, error=error)
    assert len(json.dumps(data).encode()) > MAX_SUMMARY_BYTES  # the test means something
    text = render(data)
    assert len(text.encode("utf-8")) <= MAX_SUMMARY_BYTES
    summary = json.loads(text)
    assert set(summary) >= TOP_KEYS
    assert summary["message"].endswith("…")
    assert summary["truncated"] is True
    # the highest level (speedup, status.benchmark) survives in every list
    for levels_list in (
        summary["target"]["levels"],
        summary["baseline"]["levels"],
        summary["comparison"]["levels"],
    ):
        assert levels_list[-1]["concurrency"] == 4096
        for level in levels_list:
            assert {"concurrency"} <= set(level)
    for level in summary["target"]["levels"]:
        assert set(level) >= LEVEL_KEYS
    assert summary["comparison"]["speedup"] == pytest.approx(1.62, abs=0.01)


def test_optional_keys_go_before_levels() -> None:
    data = build_summary(state((1, 4, 16)), protocol="grpc", deadline_seconds=10)
    full = render(data, limit=100_000)
    assert "errorsByCode" in full
    smaller = json.loads(render(data, limit=len(full.encode()) - 200))
    assert not smaller.get("truncated")
    assert "errorsByCode" not in smaller["target"]["levels"][0]
    assert [lv["concurrency"] for lv in smaller["target"]["levels"]] == [1, 4, 16]


def test_no_nan_ever() -> None:
    run = state((1,), baseline=False)
    run.target.levels = [level_stats([Round(1, 1.0, [], Counter({"INTERNAL": 3}))])]
    text = render(build_summary(run, protocol="grpc", deadline_seconds=10))
    assert "NaN" not in text
    level = json.loads(text)["target"]["levels"][0]
    assert level["p50Ms"] is None
    assert level["qps"] == 0.0


def test_the_table_and_the_comparison_lines() -> None:
    run = state((1, 16))
    # at c=16 the baseline is as fast as the target, within its round-to-round spread
    run.baseline.levels[-1] = run.target.levels[-1]  # type: ignore[union-attr]
    stream = io.StringIO()
    print_result(run, stream)
    text = stream.getvalue()
    assert "target" in text
    assert "baseline" in text
    assert "resnet50-native.models.svc.cluster.local:8500" in text
    assert (
        "concurrency 1: QPS +62.0 %, p50 -38.3 %, p99 -38.3 % vs baseline (noise ±4.0 %)\n" in text
    )
    assert "concurrency 16: QPS +0.0 %" in text
    assert "within the noise, no measurable difference" in text
    assert "speedup (QPS at the highest concurrency): 1.00x" in text
