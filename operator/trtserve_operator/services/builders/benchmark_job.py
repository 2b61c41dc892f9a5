"""The A/B benchmark Job: ``trt-bench`` in the converter image against two models' Services.

Pure: a :class:`BenchmarkRun` (this model, its baseline, both at the generations they are
Ready at) becomes a ``batch/v1`` Job. The Job's name and its ``trtserve.io/benchmark-key``
annotation are derived from what makes a run unique (both generations and the baseline's
uid), so creating it twice for the same run is an ``AlreadyExists``, never a second run.

The pod runs with restricted pod security, no GPU and no service account token; it is
labelled ``app.kubernetes.io/name: trtserve-bench`` and without the operator's
``managed-by`` label, so neither model's Service selects it and the serving-pod watch
ignores it. ``trt-bench`` writes its JSON summary (docs/bench.md, at most 4096 bytes) to
``/dev/termination-log``, where the operator reads it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from trtserve_operator.api.v1alpha1 import Benchmark, BenchmarkProtocol
from trtserve_operator.services.builders.names import (
    APP_NAME,
    GRPC_PORT,
    LABEL_COMPONENT,
    LABEL_INSTANCE,
    LABEL_NAME,
    LABEL_PART_OF,
    MANAGED_LABELS,
    REST_PORT,
    child_metadata,
)
from trtserve_operator.services.builders.security import (
    container_security_context,
    pod_security_context,
)
from trtserve_operator.services.builders.target import Target

BENCH_CONTAINER = "bench"
BENCH_COMPONENT = "benchmark"
BENCHMARK_JOB_LABELS = {**MANAGED_LABELS, LABEL_COMPONENT: BENCH_COMPONENT}
"""The labels of every benchmark Job (what the operator's Job informer selects)."""
BENCH_POD_APP = f"{APP_NAME}-bench"
KEY_ANNOTATION = "trtserve.io/benchmark-key"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
"""Set on a Job's pods by the Job controller (Kubernetes 1.27+)."""
TERMINATION_LOG = "/dev/termination-log"
TTL_SECONDS_AFTER_FINISHED = 3600
"""The operator deletes a finished Job once it has read the result; this only cleans up
after an operator that was down at the time."""
WAIT_SECONDS = 120
"""How long trt-bench waits for each endpoint to serve the model (both are Ready already)."""
START_BUDGET_SECONDS = 900
"""Image pull and start of the converter image, in activeDeadlineSeconds."""
DEFAULT_REQUESTS = {"cpu": "1", "memory": "512Mi"}
DEFAULT_LIMITS = {"memory": "1Gi"}
"""The load generator is one asyncio loop: one whole core, and no CPU limit (throttling
would be measured as server latency)."""


@dataclass(frozen=True)
class BenchmarkRun:
    """One benchmark: this model against its baseline, each at its current generation."""

    target: Target
    baseline: Target

    @property
    def settings(self) -> Benchmark:
        benchmark = self.target.spec.benchmark
        assert benchmark is not None, "a BenchmarkRun needs spec.benchmark"
        return benchmark

    @property
    def key(self) -> str:
        """What makes a run unique: a new generation of either model is a new run."""
        return (
            f"{self.target.generation}/{self.baseline.name}/{self.baseline.uid}/"
            f"{self.baseline.generation}"
        )


def benchmark_job_name(run: BenchmarkRun) -> str:
    """``<name>-bench-<hash of the run key>``, at most 63 characters (a label value)."""
    digest = hashlib.sha256(run.key.encode()).hexdigest()[:10]
    return f"{run.target.name[:45].rstrip('-')}-bench-{digest}"


def endpoint(target: Target, protocol: BenchmarkProtocol) -> str:
    port = GRPC_PORT if protocol is BenchmarkProtocol.GRPC else REST_PORT
    return f"{target.name}.{target.namespace}.svc:{port}"


def build_bench_args(run: BenchmarkRun, log_format: str = "text") -> list[str]:
    """The ``trt-bench`` command line (docs/bench.md), every value explicit."""
    settings = run.settings
    return [
        f"--endpoint={endpoint(run.target, settings.protocol)}",
        f"--model-name={run.target.model_name}",
        f"--baseline={endpoint(run.baseline, settings.protocol)}",
        f"--baseline-model-name={run.baseline.model_name}",
        f"--protocol={settings.protocol.value}",
        f"--signature-key={run.target.spec.source.signature_key}",
        f"--unknown-dim={settings.batch_size}",
        f"--concurrency={','.join(str(level) for level in settings.concurrency)}",
        f"--duration-seconds={settings.duration_seconds}",
        f"--rounds={settings.rounds}",
        f"--warmup-seconds={settings.warmup_seconds}",
        f"--max-error-rate={settings.max_error_rate!r}",
        f"--wait-seconds={WAIT_SECONDS}",
        "--json",
        f"--report-path={TERMINATION_LOG}",
        "--no-progress",
        f"--log-format={log_format}",
    ]


def active_deadline_seconds(settings: Benchmark) -> int:
    """Start, both waits and warmups, and every level measured on both models."""
    measured = 2 * len(settings.concurrency) * settings.duration_seconds
    return START_BUDGET_SECONDS + 2 * (WAIT_SECONDS + settings.warmup_seconds) + measured


def bench_pod_labels(target: Target) -> dict[str, str]:
    """No ``managed-by`` and a name of its own: no model's Service or watch matches it."""
    return {
        LABEL_NAME: BENCH_POD_APP,
        LABEL_INSTANCE: target.name,
        LABEL_COMPONENT: BENCH_COMPONENT,
        LABEL_PART_OF: APP_NAME,
    }


def _resources(settings: Benchmark) -> dict[str, Any]:
    given = settings.resources
    requests = dict(given.requests or {}) if given and given.requests else dict(DEFAULT_REQUESTS)
    limits = dict(given.limits or {}) if given and given.limits else dict(DEFAULT_LIMITS)
    return {"requests": requests, "limits": limits}


def build_benchmark_job(
    run: BenchmarkRun, *, image: str, log_format: str = "text"
) -> dict[str, Any]:
    """Job ``<name>-bench-<hash>`` owned by the benchmarked TRTModel."""
    metadata = child_metadata(run.target, benchmark_job_name(run), BENCH_COMPONENT)
    metadata["annotations"] = {KEY_ANNOTATION: run.key}
    security = container_security_context()
    container = {
        "name": BENCH_CONTAINER,
        "image": image,
        "command": ["trt-bench"],
        "args": build_bench_args(run, log_format),
        "env": [{"name": "HOME", "value": "/tmp"}],
        "resources": _resources(run.settings),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": security,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            # One attempt: a failed benchmark is reported, not retried into a different run.
            "backoffLimit": 0,
            "activeDeadlineSeconds": active_deadline_seconds(run.settings),
            "ttlSecondsAfterFinished": TTL_SECONDS_AFTER_FINISHED,
            "template": {
                "metadata": {"labels": bench_pod_labels(run.target)},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security_context(owns_volumes=False),
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }
