"""TRTModels, Jobs and pods for the benchmark tests, as the API and the kubelet show them."""

from __future__ import annotations

import json
from typing import Any

from trtserve_operator.services.builders.benchmark_job import BenchmarkRun
from trtserve_operator.services.targets import target_from_body

NS = "default"

# docs/bench.md's example summary (two levels), as trt-bench prints it.
SUMMARY: dict[str, Any] = {
    "v": 1,
    "result": "Succeeded",
    "reason": "Succeeded",
    "exitCode": 0,
    "message": "resnet50 at concurrency 16: QPS +62.0 %, p50 -45.1 %, p99 -40.2 % vs baseline "
    "(noise ±2.1 %); speedup 1.62x",
    "durationSeconds": 20.0,
    "model": "resnet50",
    "signature": "serving_default",
    "target": {
        "endpoint": "resnet50-fp16.default.svc:8500",
        "levels": [
            {"concurrency": 1, "requests": 4810, "errors": 0, "qps": 240.5, "p50Ms": 4.1,
             "p90Ms": 4.4, "p99Ms": 5.2, "maxMs": 9.8},
            {"concurrency": 16, "requests": 16240, "errors": 0, "qps": 812.0, "p50Ms": 19.6,
             "p90Ms": 21.0, "p99Ms": 25.0, "maxMs": 40.1},
        ],
    },
    "baseline": {
        "endpoint": "resnet50-native.default.svc:8500",
        "levels": [
            {"concurrency": 1, "requests": 3100, "errors": 0, "qps": 155.2, "p50Ms": 6.3,
             "p90Ms": 6.9, "p99Ms": 7.4, "maxMs": 12.0},
            {"concurrency": 16, "requests": 10030, "errors": 2, "qps": 501.2, "p50Ms": 35.7,
             "p90Ms": 38.0, "p99Ms": 41.8, "maxMs": 60.2},
        ],
    },
    "comparison": {
        "levels": [
            {"concurrency": 1, "qpsChangePercent": 55.0, "p50ChangePercent": -35.2,
             "p99ChangePercent": -30.0, "noisePercent": 3.0, "significant": True},
            {"concurrency": 16, "qpsChangePercent": 62.0, "p50ChangePercent": -45.1,
             "p99ChangePercent": -40.2, "noisePercent": 2.1, "significant": True},
        ],
        "speedup": 1.62,
    },
}  # fmt: skip


def model(
    name: str,
    *,
    generation: int = 1,
    ready: bool = True,
    baseline: str | None = None,
    benchmark: dict[str, Any] | None = None,
    precision: str = "FP16",
) -> dict[str, Any]:
    """A TRTModel body as the cache holds it, served alone (or not) at ``generation``."""
    spec: dict[str, Any] = {
        "source": {"uri": "s3://models/resnet50"},
        "conversion": {"precision": precision},
    }
    if baseline is not None:
        spec["benchmark"] = {"baseline": baseline, "concurrency": [1, 16], **(benchmark or {})}
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "observedGeneration": generation,
                "reason": "ModelAvailable" if ready else "Starting",
                "lastTransitionTime": "2025-01-01T00:00:00Z",
            },
            {
                "type": "Progressing",
                "status": "True",
                "observedGeneration": generation,
                "reason": "NewRevisionAvailable" if ready else "RollingOut",
                "lastTransitionTime": "2025-01-01T00:00:00Z",
            },
        ],
    }
    if ready:
        status["served"] = {"generation": generation, "precision": precision, "readyReplicas": 1}
    return {
        "apiVersion": "trtserve.io/v1alpha1",
        "kind": "TRTModel",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": generation},
        "spec": spec,
        "status": status,
    }


def run_of(target_body: dict[str, Any], baseline_body: dict[str, Any]) -> BenchmarkRun:
    return BenchmarkRun(target_from_body(target_body), target_from_body(baseline_body))


def finished(job: dict[str, Any], *, failed: bool = False, reason: str = "") -> dict[str, Any]:
    """``job`` with the Job controller's terminal condition."""
    condition = {
        "type": "Failed" if failed else "Complete",
        "status": "True",
        "reason": reason or ("BackoffLimitExceeded" if failed else ""),
        "message": "Job has reached the specified backoff limit" if failed else "",
    }
    return {**job, "status": {"conditions": [condition], "succeeded": 0 if failed else 1}}


def bench_pod(
    job: dict[str, Any], summary: dict[str, Any] | str | None, exit_code: int = 0
) -> dict[str, Any]:
    """The Job's pod after ``trt-bench`` exited, as the Job controller and kubelet make it."""
    template = job["spec"]["template"]
    metadata = job["metadata"]
    message = json.dumps(summary, separators=(",", ":")) if isinstance(summary, dict) else summary
    terminated: dict[str, Any] = {
        "exitCode": exit_code,
        "reason": "Completed" if exit_code == 0 else "Error",
    }
    if message is not None:
        terminated["message"] = message
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{metadata['name']}-x7k2p",
            "namespace": metadata["namespace"],
            "labels": {
                **template["metadata"]["labels"],
                "batch.kubernetes.io/job-name": metadata["name"],
                "job-name": metadata["name"],
            },
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "Job", "name": metadata["name"],
                 "uid": metadata.get("uid", ""), "controller": True}
            ],
        },
        "spec": template["spec"],
        "status": {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "containerStatuses": [{"name": "bench", "state": {"terminated": terminated}}],
        },
    }  # fmt: skip
