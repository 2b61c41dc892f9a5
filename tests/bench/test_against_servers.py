"""trt-bench against the TF Serving double (real gRPC/REST servers, TF Serving's protos,
half_plus_two running on CPU), with injected latencies, failures and deadlines.

Timing assertions are one-sided or loose on purpose (a shared 2-core machine): they
check that what was injected is what was measured, not how fast this machine is.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from .conftest import FAST, MODEL_NAME, BenchRun, Served
from .testdata import REPO_ROOT

pytestmark = [pytest.mark.tf, pytest.mark.slow]

Serve = Callable[..., Served]
RunBench = Callable[..., BenchRun]


def measured_requests(summary: dict[str, Any], role: str = "target") -> int:
    return sum(level["requests"] for level in summary[role]["levels"])


def test_counts_and_percentiles_match_the_injected_latencies(
    serve: Serve, run_bench: RunBench
) -> None:
    # every 5th request takes 60 ms, the others 5 ms: p50 is fast, p90/p99 are slow
    server = serve(latency=lambda i: 0.060 if i % 5 == 4 else 0.005)
    run = run_bench(
        "--endpoint", server.address, "--model-name", MODEL_NAME,
        "--concurrency", "1,3", "--warmup-seconds", "0.2", "--duration-seconds", "1.2",
        "--rounds", "2",
    )  # fmt: skip
    assert run.code == 0, run.summary["message"]
    summary = run.summary
    assert summary["result"] == "Succeeded"
    assert summary["model"] == MODEL_NAME
    assert summary["signature"] == "serving_default"
    assert summary["durationSeconds"] == 1.2
    target = summary["target"]
    assert target["endpoint"] == server.address
    assert target["modelVersion"] == 123
    # every request sent was answered and counted: the server saw exactly these
    assert server.core.predict_calls == target["warmupRequests"] + measured_requests(summary)
    levels = {level["concurrency"]: level for level in target["levels"]}
    assert sorted(levels) == [1, 3]
    for level in levels.values():
        assert level["errors"] == 0
        assert level["requests"] >= 15
        assert 5.0 <= level["p50Ms"] < 30.0
        assert level["p90Ms"] >= 60.0
        assert level["p99Ms"] >= 60.0
        assert level["p50Ms"] <= level["p90Ms"] <= level["p99Ms"] <= level["maxMs"] < 1000.0
        # closed loop: QPS is the successes over the measured time (about the duration)
        assert level["qps"] * 1.2 == pytest.approx(level["requests"], rel=0.25)
    assert levels[3]["qps"] > 1.5 * levels[1]["qps"]  # three in flight
    assert summary["baseline"] is None
    assert summary["comparison"] is None
    assert summary["inputShapes"] == {"x": [1, 1]}


def test_ten_percent_failures_are_counted_as_errors(serve: Serve, run_bench: RunBench) -> None:
    server = serve(failure=lambda i: grpc.StatusCode.INTERNAL if i % 10 == 9 else None)
    run = run_bench(
        "--endpoint", server.address, "--model-name", MODEL_NAME, "--concurrency", "1,4",
        "--max-error-rate", "0.5", *FAST,
    )  # fmt: skip
    assert run.code == 0, run.summary["message"]
    target = run.summary["target"]
    assert server.core.predict_calls == target["warmupRequests"] + measured_requests(run.summary)
    for level in target["levels"]:
        # each level is one contiguous range of request indices: 1 in 10 failed
        assert abs(level["errors"] - level["requests"] / 10) < 1
        assert level["errors"] >= 1
        assert level["errorsByCode"] == {"INTERNAL": level["errors"]}


def test_an_error_rate_over_the_limit_fails_with_the_levels_measured(
    serve: Serve, run_bench: RunBench
) -> None:
    server = serve(failure=lambda i: grpc.StatusCode.UNAVAILABLE if i % 10 == 9 else None)
    run = run_bench(
        "--endpoint", server.address, "--model-name", MODEL_NAME, "--concurrency", "1,4", *FAST
    )  # fmt: skip
    assert run.code == 40
    summary = run.summary
    assert (summary["result"], summary["reason"], summary["exitCode"]) == (
        "Failed",
        "ErrorRateExceeded",
        40,
    )
    assert "--max-error-rate=0.01" in summary["message"]
    assert "UNAVAILABLE" in summary["message"]
    [level] = summary["target"]["levels"]  # stopped after the first level
    assert level["concurrency"] == 1
    assert level["errors"] >= 1


def test_the_request_deadline_turns_slow_answers_into_errors(
    serve: Serve, run_bench: RunBench
) -> None:
    server = serve(latency=lambda i: 0.5 if i % 4 == 3 else 0.002)
    run = run_bench(
        "--endpoint", server.address, "--model-name", MODEL_NAME, "--concurrency", "2",
        "--deadline-seconds", "0.1", "--max-error-rate", "0.6", *FAST,
    )  # fmt: skip
    assert run.code == 0, run.summary["message"]
    [level] = run.summary["target"]["levels"]
    assert run.summary["deadlineSeconds"] == 0.1
    assert level["errorsByCode"] == {"DEADLINE_EXCEEDED": level["errors"]}
    assert abs(level["errors"] - level["requests"] / 4) < 2
    # no answer later than the deadline counts as a success (the slow ones take 500 ms;
    # the margin is the client's own scheduling delay on a busy machine)
    assert level["maxMs"] < 100.0 + 50.0


def test_a_server_slower_than_the_deadline_is_reported_unreachable(
    serve: Serve, run_bench: RunBench
) -> None:
    server = serve(latency=lambda i: 0.3)
    run = run_bench(
        "--endpoint", server.address, "--model-name", MODEL_NAME, "--concurrency", "1",
        "--deadline-seconds", "0.05", *FAST,
    )  # fmt: skip
    assert run.code == 10
    assert run.summary["reason"] == "EndpointUnavailable"
    assert "DEADLINE_EXCEEDED" in run.summary["message"]
    assert "--deadline-seconds" in run.summary["message"]


def test_baseline_comparison_interleaved(serve: Serve, run_bench: RunBench, call_log: Any) -> None:
    target = serve("target", latency=lambda i: 0.002)
    baseline = serve("baseline", latency=lambda i: 0.015)
    run = run_bench(
        "--endpoint", target.address, "--baseline", baseline.address, "--model-name", MODEL_NAME,
        "--concurrency", "1,2", "--warmup-seconds", "0.2", "--duration-seconds", "0.8",
        "--rounds", "2",
    )  # fmt: skip
    assert run.code == 0, run.summary["message"]
    summary = run.summary
    assert summary["baseline"]["endpoint"] == baseline.address
    assert target.core.predict_calls == summary["target"]["warmupRequests"] + measured_requests(
        summary
    )
    assert baseline.core.predict_calls == summary["baseline"]["warmupRequests"] + measured_requests(
        summary, "baseline"
    )
    comparison = summary["comparison"]
    assert [level["concurrency"] for level in comparison["levels"]] == [1, 2]
    for level in comparison["levels"]:
        assert level["qpsChangePercent"] > 100  # ~5x fewer ms per request
        assert level["p50ChangePercent"] < -50
        assert level["significant"] is True
        assert level["noisePercent"] < level["qpsChangePercent"]
    top_target = summary["target"]["levels"][-1]["qps"]
    top_baseline = summary["baseline"]["levels"][-1]["qps"]
    assert comparison["speedup"] == pytest.approx(top_target / top_baseline, rel=0.01)
    assert comparison["speedup"] > 2
    assert "QPS +" in summary["message"]
    assert "speedup" in summary["message"]
    # interleaving: warm-ups, then per level T B | B T (ABBA): the servers alternate in runs
    runs: list[str] = []
    for name, _ in call_log.calls:
        if not runs or runs[-1] != name:
            runs.append(name)
    # T(warm-up) B(warm-up) | c=1: T B B T | c=2: T B B T  ->  T B T B T B T
    assert runs == ["target", "baseline"] * 3 + ["target"]


def test_rest_protocol(serve: Serve, run_bench: RunBench) -> None:
    server = serve(rest=True, latency=lambda i: 0.040 if i % 5 == 4 else 0.003)
    run = run_bench(
        "--endpoint", server.address, "--model-name", MODEL_NAME, "--protocol", "rest",
        "--concurrency", "1,2", *FAST,
    )  # fmt: skip
    assert run.code == 0, run.summary["message"]
    assert run.summary["protocol"] == "rest"
    target = run.summary["target"]
    assert target["modelVersion"] == 123
    assert server.core.predict_calls == target["warmupRequests"] + measured_requests(run.summary)
    for level in target["levels"]:
        assert level["errors"] == 0
        assert level["p50Ms"] < 40.0 <= level["p99Ms"]


def test_rest_failures_and_rejections(serve: Serve, run_bench: RunBench) -> None:
    failing = serve(rest=True, failure=lambda i: grpc.StatusCode.INTERNAL if i % 10 == 9 else None)
    run = run_bench(
        "--endpoint", failing.address, "--model-name", MODEL_NAME, "--protocol", "rest",
        "--concurrency", "1", "--max-error-rate", "0.5", *FAST,
    )  # fmt: skip
    assert run.code == 0
    [level] = run.summary["target"]["levels"]
    assert abs(level["errors"] - level["requests"] / 10) < 1
    assert level["errorsByCode"] == {"INTERNAL": level["errors"]}
    # a wrong model name is the REST 404 of TF Serving
    run = run_bench(
        "--endpoint", failing.address, "--model-name", "nope", "--protocol", "rest",
        "--wait-seconds", "0", *FAST,
    )  # fmt: skip
    assert run.code == 11
    assert "'nope'" in run.summary["message"]


def test_npz_inputs_are_sent(serve: Serve, run_bench: RunBench, tmp_path: Path) -> None:
    server = serve()
    path = tmp_path / "inputs.npz"
    np.savez(path, x=np.arange(8, dtype=np.float32).reshape(8, 1))
    run = run_bench(
        "--endpoint", server.address, "--model-name", MODEL_NAME, "--inputs", str(path),
        "--concurrency", "1", *FAST,
    )  # fmt: skip
    assert run.code == 0, run.summary["message"]
    assert run.summary["inputShapes"] == {"x": [8, 1]}


def test_waits_until_the_model_is_available(serve: Serve, run_bench: RunBench) -> None:
    server = serve(available_after=1.5)
    run = run_bench(
        "--endpoint", server.address, "--model-name", MODEL_NAME, "--wait-seconds", "10",
        "--concurrency", "1", *FAST,
    )  # fmt: skip
    assert run.code == 0, run.summary["message"]
    assert server.core.status_calls >= 2


def test_a_model_that_does_not_load_in_time(serve: Serve, run_bench: RunBench) -> None:
    server = serve(available_after=60)
    run = run_bench(
        "--endpoint", server.address, "--model-name", MODEL_NAME, "--wait-seconds", "1", *FAST
    )  # fmt: skip
    assert run.code == 11
    assert run.summary["reason"] == "ModelNotAvailable"
    assert "version 123 LOADING" in run.summary["message"]
    assert "--wait-seconds=1" in run.summary["message"]
    assert server.core.status_calls >= 2  # polled until the wait was over, not once
    assert server.core.predict_calls == 0


def test_an_unknown_model(serve: Serve, run_bench: RunBench) -> None:
    server = serve()
    run = run_bench("--endpoint", server.address, "--model-name", "resnet", "--wait-seconds", "0")
    assert run.code == 11
    assert "model 'resnet'" in run.summary["message"]
    assert "--model-name" in run.summary["message"]


def test_nothing_listening(run_bench: RunBench) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = run_bench("--endpoint", f"127.0.0.1:{port}", "--model-name", "m", "--wait-seconds", "0")
    assert run.code == 10
    assert run.summary["reason"] == "EndpointUnavailable"
    assert f"127.0.0.1:{port}" in run.summary["message"]
    assert run.summary["target"]["levels"] == []


def test_an_unknown_signature_lists_the_existing_ones(serve: Serve, run_bench: RunBench) -> None:
    server = serve()
    run = run_bench(
        "--endpoint", server.address, "--model-name", MODEL_NAME, "--signature-key", "predict"
    )  # fmt: skip
    assert run.code == 21
    assert "classify_x_to_y" in run.summary["message"]
    assert "serving_default" in run.summary["message"]
    assert run.summary["signature"] == "predict"


def test_a_shape_against_the_signature(serve: Serve, run_bench: RunBench) -> None:
    server = serve()
    run = run_bench(
        "--endpoint", server.address, "--model-name", MODEL_NAME, "--shape", "x=4x2", *FAST
    )  # fmt: skip
    assert run.code == 22
    assert "x: DT_FLOAT [?x1]" in run.summary["message"]
    assert server.core.predict_calls == 0


def test_a_server_rejecting_the_inputs(serve: Serve, run_bench: RunBench) -> None:
    server = serve(failure=lambda i: grpc.StatusCode.INVALID_ARGUMENT)
    run = run_bench("--endpoint", server.address, "--model-name", MODEL_NAME, *FAST)
    assert run.code == 22
    assert "rejects the request (INVALID_ARGUMENT: injected failure" in run.summary["message"]
    assert server.core.predict_calls == 1  # the probe, nothing more


def test_baseline_with_another_model_name(serve: Serve, run_bench: RunBench) -> None:
    target = serve("target")
    baseline = serve("baseline")
    run = run_bench(
        "--endpoint", target.address, "--baseline", baseline.address, "--model-name",
        MODEL_NAME, "--baseline-model-name", "native", "--wait-seconds", "0", *FAST,
    )  # fmt: skip
    assert run.code == 11
    assert "baseline endpoint" in run.summary["message"]
    assert "'native'" in run.summary["message"]


def test_the_console_script_in_its_own_process(serve: Serve, tmp_path: Path) -> None:
    """`python -m trtserve_bench` as the Job runs it: a process without the
    TensorFlow runtime (protos.py's path), summary on stdout and in --report-path."""
    server = serve(latency=lambda i: 0.002)
    report = tmp_path / "termination-log"
    result = subprocess.run(
        [
            sys.executable, "-m", "trtserve_bench", "--endpoint", server.address,
            "--model-name", MODEL_NAME, "--concurrency", "1,2", "--json",
            "--report-path", str(report), "--log-level", "INFO", "--log-format", "json", *FAST,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO_ROOT / "converter"), "PATH": "/usr/bin:/bin"},
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert report.read_text(encoding="utf-8") == result.stdout.strip()
    assert summary["result"] == "Succeeded"
    assert server.core.predict_calls == summary["target"]["warmupRequests"] + measured_requests(
        summary
    )
    logs = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any("target c=2:" in entry["message"] for entry in logs)
