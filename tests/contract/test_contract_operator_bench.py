"""Both sides of docs/bench.md: the benchmark Job's arguments mean to ``trt-bench`` what
spec.benchmark says, and what ``trt-bench`` writes reads back as status.benchmark.

Skipped where the converter package has no ``trtserve_bench`` (the load generator
is developed alongside); once it is there, a renamed flag, a changed exit code or a
summary the operator cannot read fails here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from trtserve_operator.api import rules
from trtserve_operator.api.v1alpha1 import Benchmark, BenchmarkResult
from trtserve_operator.services.bench_report import EXIT_REASONS, parse_summary, summary_to_status
from trtserve_operator.services.builders.benchmark_job import BenchmarkRun, build_bench_args
from trtserve_operator.services.targets import target_from_body

bench_cli = pytest.importorskip("trtserve_bench.cli", reason="trt-bench not there yet")
bench_errors = pytest.importorskip("trtserve_bench.errors")
bench_summary = pytest.importorskip("trtserve_bench.summary")

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
SUMMARY_EXAMPLE: dict[str, Any] = {
    "v": 1, "result": "Succeeded", "reason": "Succeeded", "exitCode": 0,
    "message": "resnet50 at concurrency 16: QPS +62.0 %; speedup 1.62x",
    "durationSeconds": 20.0, "model": "resnet50", "signature": "serving_default",
    "target": {"endpoint": "resnet50-fp16:8500", "levels": [
        {"concurrency": 1, "requests": 4810, "errors": 0, "qps": 240.5, "p50Ms": 4.1,
         "p90Ms": 4.4, "p99Ms": 5.2, "maxMs": 9.8},
        {"concurrency": 16, "requests": 16240, "errors": 0, "qps": 812.0, "p50Ms": 19.6,
         "p90Ms": 21.0, "p99Ms": 25.0, "maxMs": 40.1}]},
    "baseline": {"endpoint": "resnet50-native:8500", "levels": [
        {"concurrency": 1, "requests": 3100, "errors": 0, "qps": 155.2, "p50Ms": 6.3,
         "p90Ms": 6.9, "p99Ms": 7.4, "maxMs": 12.0},
        {"concurrency": 16, "requests": 10030, "errors": 0, "qps": 501.2, "p50Ms": 35.7,
         "p90Ms": 38.0, "p99Ms": 41.8, "maxMs": 60.2}]},
    "comparison": {"levels": [
        {"concurrency": 1, "qpsChangePercent": 55.0, "p50ChangePercent": -35.2,
         "p99ChangePercent": -30.0, "noisePercent": 3.0, "significant": True},
        {"concurrency": 16, "qpsChangePercent": 62.0, "p50ChangePercent": -45.1,
         "p99ChangePercent": -40.2, "noisePercent": 2.1, "significant": True}],
        "speedup": 1.62},
}  # fmt: skip
"""docs/bench.md's example summary."""


def example_runs() -> list[BenchmarkRun]:
    runs = []
    for path in EXAMPLES:
        bodies = {}
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and doc.get("kind") == "TRTModel":
                doc["metadata"].setdefault("namespace", "default")
                doc["metadata"].update(uid=f"uid-{doc['metadata']['name']}", generation=1)
                bodies[doc["metadata"]["name"]] = doc
        for body in bodies.values():
            benchmark = body["spec"].get("benchmark")
            if benchmark:
                baseline = bodies[benchmark["baseline"]]
                runs.append(BenchmarkRun(target_from_body(body), target_from_body(baseline)))
    return runs


RUNS = example_runs()


def test_an_example_has_a_benchmark() -> None:
    assert RUNS


@pytest.mark.parametrize("run", RUNS, ids=lambda run: run.target.name)
def test_rendered_arguments_parse_with_trt_bench(run: BenchmarkRun) -> None:
    args = bench_cli.parse_args(build_bench_args(run, log_format="json"), {})
    settings = run.settings
    assert args.endpoint == f"{run.target.name}.{run.target.namespace}.svc:8500"
    assert args.model_name == run.target.model_name
    assert args.baseline == f"{run.baseline.name}.{run.baseline.namespace}.svc:8500"
    assert args.baseline_model_name == run.baseline.model_name
    assert args.protocol == settings.protocol.value
    assert args.signature_key == run.target.spec.source.signature_key
    assert args.unknown_dim == settings.batch_size
    assert tuple(args.concurrency) == tuple(settings.concurrency)
    assert args.duration_seconds == settings.duration_seconds
    assert args.rounds == settings.rounds
    assert args.warmup_seconds == settings.warmup_seconds
    assert args.max_error_rate == settings.max_error_rate
    assert args.json is True
    assert args.report_path == "/dev/termination-log"
    assert args.progress is False
    assert args.log_format == "json"


def test_api_bounds_are_within_trt_bench_bounds() -> None:
    """What the CRD admits, trt-bench accepts."""
    concurrency = Benchmark.model_json_schema(by_alias=True)["properties"]["concurrency"]
    assert concurrency["maxItems"] == rules.MAX_BENCHMARK_LEVELS <= bench_cli.MAX_LEVELS
    level_bound = concurrency["items"]["maximum"]
    assert level_bound <= bench_cli.MAX_CONCURRENCY
    run = RUNS[0]
    widest = [*range(1, rules.MAX_BENCHMARK_LEVELS), level_bound]
    args = [a for a in build_bench_args(run) if not a.startswith("--concurrency=")]
    args.append(f"--concurrency={','.join(str(c) for c in widest)}")
    assert list(bench_cli.parse_args(args, {}).concurrency) == widest


def test_exit_code_table_is_trt_benchs() -> None:
    assert {reason: code for code, reason in EXIT_REASONS.items()} == bench_errors.exit_codes()


def test_trt_bench_failure_summary_reads_back() -> None:
    error = bench_errors.ModelNotAvailable("resnet50-native: not AVAILABLE after 120 s")
    text = bench_summary.render(
        bench_summary.bare_summary(
            error, model="resnet50", signature="serving_default",
            endpoint="resnet50-fp16.default.svc:8500", duration_seconds=20.0,
        )
    )  # fmt: skip
    assert len(text.encode()) <= 4096
    status = summary_to_status(
        parse_summary(text, error.exit_code), RUNS[0], job="j", start_time=None, now="t"
    )
    assert status.result is BenchmarkResult.FAILED
    assert status.reason == "ModelNotAvailable"
    assert status.message == "resnet50-native: not AVAILABLE after 120 s"


def test_documented_summary_fits_and_reads_back() -> None:
    """docs/bench.md's example, re-rendered by trt-bench's own encoder."""
    text = bench_summary.render(json.loads(json.dumps(SUMMARY_EXAMPLE)))
    assert len(text.encode()) <= 4096
    status = summary_to_status(parse_summary(text, 0), RUNS[0], job="j", start_time=None, now="t")
    assert status.speedup == SUMMARY_EXAMPLE["comparison"]["speedup"]
    assert status.concurrency == 16
