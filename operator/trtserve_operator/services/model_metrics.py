"""Per-TRTModel gauges, computed at scrape time from the last status the reconciler
computed for each model this process converges (the leader's; a follower has none).

One series per model and gauge, labelled ``namespace`` and ``model`` (the TRTModel), as
the dashboards and alerts of ``observability/`` query them: cardinality is the number of
TRTModels. Everything here is derived from ``status``, so it says what
``kubectl get trtm`` says.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from trtserve_operator.api.v1alpha1 import BenchmarkStatus, TRTModelStatus

ModelKey = tuple[str, str]

MODEL_INFO = "trtserve_model_info"
READY_REPLICAS = "trtserve_model_ready_replicas"
DESIRED_REPLICAS = "trtserve_model_desired_replicas"
CONVERSION_SECONDS = "trtserve_model_conversion_seconds"
TRT_ENGINE_OPS = "trtserve_model_trt_engine_ops"
ENGINES_BUILT = "trtserve_model_engines_built"
ACCURACY_MAX_ABS_ERROR = "trtserve_model_accuracy_max_abs_error"
BENCHMARK_SPEEDUP = "trtserve_benchmark_speedup"
CONVERSION_FAILED = "trtserve_model_conversion_failed"

MODEL_LABELS = ["namespace", "model"]


def _ready_reason(status: TRTModelStatus) -> str:
    for condition in status.conditions or []:
        if condition.type == "Ready":
            return condition.reason or ""
    return ""


def _desired(status: TRTModelStatus) -> int | None:
    """The ``desired`` of ``status.pods`` (``ready/desired``)."""
    _, _, desired = (status.pods or "").partition("/")
    return int(desired) if desired.isdigit() else None


class ModelCollector(Collector):
    """The gauges of every model in ``statuses`` (live: the metrics own the mapping)."""

    def __init__(
        self,
        statuses: Mapping[ModelKey, TRTModelStatus],
        benchmarks: Mapping[ModelKey, BenchmarkStatus | None],
    ) -> None:
        self._statuses = statuses
        self._benchmarks = benchmarks

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            MODEL_INFO,
            "1 per TRTModel: its status.phase, Ready reason and the precision it serves.",
            labels=[*MODEL_LABELS, "phase", "reason", "precision"],
        )
        ready = GaugeMetricFamily(READY_REPLICAS, "Ready serving pods.", labels=MODEL_LABELS)
        desired = GaugeMetricFamily(DESIRED_REPLICAS, "spec.serving.replicas.", labels=MODEL_LABELS)
        seconds = GaugeMetricFamily(
            CONVERSION_SECONDS,
            "Duration of the last conversion report (status.conversion), by its precision "
            "and cache result.",
            labels=[*MODEL_LABELS, "precision", "cache"],
        )
        engine_ops = GaugeMetricFamily(
            TRT_ENGINE_OPS, "TRTEngineOps of the last conversion report.", labels=MODEL_LABELS
        )
        engines = GaugeMetricFamily(
            ENGINES_BUILT, "Engines pre-built by the last conversion.", labels=MODEL_LABELS
        )
        accuracy = GaugeMetricFamily(
            ACCURACY_MAX_ABS_ERROR,
            "Largest absolute error the accuracy gate measured in the last conversion.",
            labels=MODEL_LABELS,
        )
        failed = GaugeMetricFamily(
            CONVERSION_FAILED,
            "1 while the conversion of the model's current pods has failed "
            "(status.conversion.result Failed), by the converter's reason.",
            labels=[*MODEL_LABELS, "reason"],
        )
        speedup = GaugeMetricFamily(
            BENCHMARK_SPEEDUP,
            "status.benchmark.speedup: this model's QPS / its baseline's, at the highest "
            "concurrency level of its last A/B benchmark.",
            labels=[*MODEL_LABELS, "baseline", "significant"],
        )
        for (namespace, name), status in list(self._statuses.items()):
            labels = [namespace, name]
            served = status.served.precision if status.served else None
            phase = status.phase.value if status.phase else ""
            info.add_metric([*labels, phase, _ready_reason(status), served or ""], 1)
            ready.add_metric(labels, status.ready_replicas or 0)
            if (wanted := _desired(status)) is not None:
                desired.add_metric(labels, wanted)
            report = status.conversion
            if report is not None and report.result == "Failed":
                failed.add_metric([*labels, report.reason or "Unknown"], 1)
            if report is not None and report.result == "Succeeded":
                if report.duration_seconds is not None:
                    cache = (report.cache.result if report.cache else None) or "Disabled"
                    seconds.add_metric(
                        [*labels, report.precision or "", cache], report.duration_seconds
                    )
                if report.trt_engine_ops is not None:
                    engine_ops.add_metric(labels, report.trt_engine_ops)
                if report.engines_built is not None:
                    engines.add_metric(labels, report.engines_built)
                if report.accuracy is not None and report.accuracy.max_abs_error is not None:
                    accuracy.add_metric(labels, report.accuracy.max_abs_error)
            # The benchmark service writes status.benchmark itself: its view is newer.
            key = (namespace, name)
            bench = self._benchmarks.get(key, status.benchmark)
            if bench is not None and bench.speedup is not None:
                baseline = (bench.baseline.name if bench.baseline else None) or ""
                significant = "true" if bench.significant else "false"
                speedup.add_metric([*labels, baseline, significant], bench.speedup)
        yield from (info, ready, desired, seconds, engine_ops, engines, accuracy, failed, speedup)
