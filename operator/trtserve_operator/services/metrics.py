"""What the operator did and what its models are doing, for Prometheus (``GET /metrics``).

Built on ``prometheus_client`` (the reference Python client: counters, a histogram with
buckets, a gauge computed at scrape time, and the exposition format with its escaping),
with one registry per :class:`Metrics` so tests and several reconcilers never share state.

Model metrics are derived from the status the reconciler computes, so they count what
the status shows, once: a conversion report is counted when it first reaches a model's
status (not on every pod event that recomputes the same status, and not again after a
restart, because the stored status already holds it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from trtserve_operator.api.v1alpha1 import (
    BenchmarkStatus,
    ConversionStatus,
    Phase,
    TRTModelStatus,
)
from trtserve_operator.services.model_metrics import ModelCollector

# One series per counter, without the ``_created`` companion series: the counters are
# process-local and reset on restart, which Prometheus' rate() already handles.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

_COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "trtserve_child_actions_total": (
        "Children created, patched or left alone by converging.",
        ("kind", "action"),
    ),
    "trtserve_status_writes_total": ("TRTModel status patches sent.", ()),
    "trtserve_events_total": ("Kubernetes Events posted on TRTModels.", ("type",)),
    "trtserve_api_errors_total": ("Failed Kubernetes API requests by error class.", ("error",)),
    "trtserve_benchmarks_total": (
        "A/B benchmarks finished (status.benchmark written), by result.",
        ("result",),
    ),
    "trtserve_conversions_failed_total": (
        "Failed conversions by the converter's reason, counted once per failure report.",
        ("reason",),
    ),
    "trtserve_converge_failures_total": (
        "Converges (and benchmark steps) that failed and were scheduled again, by error class.",
        ("reason",),
    ),
    "trtserve_leader_transitions_total": (
        "Times this process started (to=leader) or stopped (to=follower) leading.",
        ("to",),
    ),
}
LEADER = "trtserve_operator_leader"
RETRIES_PENDING = "trtserve_retries_pending"

CONVERSION_DURATION = "trtserve_conversion_duration_seconds"
CONVERSION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
"""Seconds: a cache hit takes seconds, an FP16 ResNet-50 minutes, INT8 with calibration more."""
MODELS_BY_PHASE = "trtserve_models"
CACHE_DISABLED = "Disabled"

ModelKey = tuple[str, str]


def cache_result(conversion: ConversionStatus) -> str:
    """``status.conversion.cache.result`` when the status carries one, else ``Disabled``.

    Read by attribute so this works before and after the converted-model cache adds
    ``cache`` to ``ConversionStatus``.
    """
    cache: Any = getattr(conversion, "cache", None)
    result = getattr(cache, "result", None) if cache is not None else None
    return str(result) if result else CACHE_DISABLED


class _PhaseCollector(Collector):
    """``trtserve_models{phase}``: the models this process converges, by status phase."""

    def __init__(self, phases: dict[ModelKey, str]) -> None:
        self._phases = phases

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(MODELS_BY_PHASE, "TRTModels by status.phase.", labels=["phase"])
        counts = dict.fromkeys((phase.value for phase in Phase), 0)
        for phase in self._phases.values():
            counts[phase] = counts.get(phase, 0) + 1
        for phase, count in counts.items():
            family.add_metric([phase], count)
        yield family


class Metrics:
    """The operator's metrics registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._counters = {
            name: Counter(name, help_text, labels, registry=self.registry)
            for name, (help_text, labels) in _COUNTERS.items()
        }
        self._durations = Histogram(
            CONVERSION_DURATION,
            "Duration of successful conversions (the converter's report), by precision and "
            "converted-model cache result.",
            ("precision", "cache"),
            buckets=CONVERSION_BUCKETS,
            registry=self.registry,
        )
        self._pending = Gauge(
            RETRIES_PENDING,
            "Converges and benchmark steps waiting for their next attempt after a failure.",
            registry=self.registry,
        )
        self._leader = Gauge(
            LEADER,
            "1 while this process holds the leader Lease (the only one that writes), else 0.",
            registry=self.registry,
        )
        self._children: dict[tuple[Any, ...], Counter] = {}
        self._phases: dict[ModelKey, str] = {}
        self.registry.register(_PhaseCollector(self._phases))
        self._statuses: dict[ModelKey, TRTModelStatus] = {}
        self._benchmarks: dict[ModelKey, BenchmarkStatus | None] = {}
        self.registry.register(ModelCollector(self._statuses, self._benchmarks))

    def inc(self, name: str, **labels: str) -> None:
        # The labelled child is looked up once per label set: prometheus_client's
        # ``labels()`` takes a lock and validates the names on every call, a visible share
        # of the CPU of a converge that changes nothing (profiled at 500 models).
        key = (name, *labels.items())
        child = self._children.get(key)
        if child is None:
            counter = self._counters[name]  # KeyError: an undeclared metric is a bug
            child = self._children[key] = counter.labels(**labels) if labels else counter
        child.inc()

    def retry_changed(self, reason: str, pending: int) -> None:
        """A failure to retry (``reason``: its error class) or the end of a retry loop
        (``reason`` empty); ``pending``: retries waiting now."""
        if reason:
            self.inc("trtserve_converge_failures_total", reason=reason)
        self._pending.set(pending)

    def set_leader(self, leading: bool, *, transition: bool = True) -> None:
        """The leader gauge, and a transition unless this is the state at start."""
        self._leader.set(1 if leading else 0)
        if transition:
            self.inc("trtserve_leader_transitions_total", to="leader" if leading else "follower")

    def value(self, name: str, **labels: str) -> float:
        """Current value of a counter sample (0 when never incremented)."""
        sample = self.registry.get_sample_value(name, labels or None)
        return sample or 0.0

    def render(self) -> str:
        """Prometheus text exposition format 0.0.4."""
        return generate_latest(self.registry).decode("utf-8")

    # --- model metrics, from the status the reconciler computed ---------------------

    def set_phase(self, key: ModelKey, phase: str) -> None:
        self._phases[key] = phase

    def set_benchmark(self, key: ModelKey, benchmark: BenchmarkStatus | None) -> None:
        """``status.benchmark`` as the benchmark service last decided it (it writes that
        field itself, apart from the reconciler's status)."""
        self._benchmarks[key] = benchmark

    def forget_model(self, key: ModelKey) -> None:
        self._phases.pop(key, None)
        self._statuses.pop(key, None)
        self._benchmarks.pop(key, None)

    def forget_models(self) -> None:
        """No model is converged here any more (this process stopped leading)."""
        self._phases.clear()
        self._statuses.clear()
        self._benchmarks.clear()

    def observe_status(
        self, key: ModelKey, previous: TRTModelStatus | None, new: TRTModelStatus
    ) -> None:
        """Phase gauge and the per-model gauges, plus the conversion report when it is
        new in the status."""
        if new.phase is not None:
            self.set_phase(key, new.phase.value)
        self._statuses[key] = new
        report = new.conversion
        if report is None or (previous is not None and previous.conversion == report):
            return
        if report.result == "Failed":
            self.inc("trtserve_conversions_failed_total", reason=report.reason or "Unknown")
        elif report.result == "Succeeded" and report.duration_seconds is not None:
            self._durations.labels(
                precision=report.precision or "Unknown", cache=cache_result(report)
            ).observe(report.duration_seconds)
