"""The operator's /metrics: valid Prometheus text, and model metrics counted once."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from trtserve_operator.api.v1alpha1 import ConversionStatus, Phase, TRTModelStatus
from trtserve_operator.services.metrics import Metrics, cache_result

KEY = ("ns", "m")


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the rendered text, parsed back with Prometheus' own parser."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.render())
        for sample in family.samples
    }


def failed(reason: str, message: str = "boom") -> ConversionStatus:
    return ConversionStatus(result="Failed", reason=reason, message=message, exit_code=40)


def succeeded(seconds: float, precision: str = "FP16") -> ConversionStatus:
    return ConversionStatus(
        result="Succeeded", reason="Succeeded", precision=precision, duration_seconds=seconds
    )


def status(conversion: ConversionStatus | None, phase: Phase = Phase.READY) -> TRTModelStatus:
    return TRTModelStatus(phase=phase, conversion=conversion)


def test_counters_render_with_help_type_and_labels() -> None:
    metrics = Metrics()
    metrics.inc("trtserve_events_total", type="Warning")
    metrics.inc("trtserve_events_total", type="Warning")
    metrics.inc("trtserve_status_writes_total")
    text = metrics.render()
    assert "# TYPE trtserve_events_total counter" in text.splitlines()
    assert samples(metrics)[("trtserve_events_total", (("type", "Warning"),))] == 2
    assert samples(metrics)[("trtserve_status_writes_total", ())] == 1
    assert metrics.value("trtserve_events_total", type="Warning") == 2
    assert "_created" not in text
    assert text.endswith("\n")


def test_label_values_are_escaped() -> None:
    metrics = Metrics()
    metrics.inc("trtserve_api_errors_total", error='a"b\\c')
    assert 'trtserve_api_errors_total{error="a\\"b\\\\c"} 1.0' in metrics.render()
    assert samples(metrics)[("trtserve_api_errors_total", (("error", 'a"b\\c'),))] == 1


def test_unknown_metric_is_a_bug() -> None:
    with pytest.raises(KeyError):
        Metrics().inc("nope_total")


def test_registries_are_independent() -> None:
    one, two = Metrics(), Metrics()
    one.inc("trtserve_status_writes_total")
    assert two.value("trtserve_status_writes_total") == 0


def test_models_by_phase_lists_every_phase_and_forgets_deleted_models() -> None:
    metrics = Metrics()
    metrics.observe_status(("ns", "a"), None, status(None, Phase.READY))
    metrics.observe_status(("ns", "b"), None, status(None, Phase.READY))
    metrics.observe_status(("ns", "c"), None, status(None, Phase.CONVERTING))
    metrics.observe_status(("ns", "b"), None, status(None, Phase.FAILED))  # b moved on
    by_phase = {
        labels[0][1]: value
        for (name, labels), value in samples(metrics).items()
        if name == "trtserve_models"
    }
    assert by_phase == {"Pending": 0, "Converting": 1, "Starting": 0, "Ready": 1, "Failed": 1}
    metrics.forget_model(("ns", "c"))
    assert samples(metrics)[("trtserve_models", (("phase", "Converting"),))] == 0


def test_a_failure_is_counted_once_however_often_the_status_is_recomputed() -> None:
    metrics = Metrics()
    report = failed("AccuracyGateFailed")
    first = status(report, Phase.FAILED)
    metrics.observe_status(KEY, None, first)
    for _ in range(5):  # pod events recompute the same status
        metrics.observe_status(KEY, first, status(report, Phase.FAILED))
    assert metrics.value("trtserve_conversions_failed_total", reason="AccuracyGateFailed") == 1
    # A different failure (new report) counts again.
    metrics.observe_status(KEY, first, status(failed("Timeout"), Phase.FAILED))
    assert metrics.value("trtserve_conversions_failed_total", reason="Timeout") == 1


def test_a_failure_already_in_the_stored_status_is_not_counted_after_a_restart() -> None:
    metrics = Metrics()
    stored = status(failed("SignatureNotFound"), Phase.FAILED)
    metrics.observe_status(KEY, stored, status(failed("SignatureNotFound"), Phase.FAILED))
    assert metrics.value("trtserve_conversions_failed_total", reason="SignatureNotFound") == 0


def test_conversion_duration_histogram_by_precision_and_cache() -> None:
    metrics = Metrics()
    metrics.observe_status(("ns", "a"), None, status(succeeded(70.0, "FP16")))
    metrics.observe_status(("ns", "a"), status(succeeded(70.0, "FP16")), status(succeeded(70.0)))
    metrics.observe_status(("ns", "b"), None, status(succeeded(400.0, "INT8")))
    got = samples(metrics)
    fp16 = (("cache", "Disabled"), ("precision", "FP16"))
    assert got[("trtserve_conversion_duration_seconds_count", fp16)] == 1
    assert got[("trtserve_conversion_duration_seconds_sum", fp16)] == 70.0
    bucket = "trtserve_conversion_duration_seconds_bucket"
    assert got[(bucket, tuple(sorted((*fp16, ("le", "60.0")))))] == 0
    assert got[(bucket, tuple(sorted((*fp16, ("le", "120.0")))))] == 1
    int8 = (("cache", "Disabled"), ("precision", "INT8"))
    assert got[("trtserve_conversion_duration_seconds_count", int8)] == 1
    # Failures are counted, not timed.
    metrics.observe_status(("ns", "c"), None, status(failed("Timeout"), Phase.FAILED))
    assert samples(metrics)[("trtserve_conversion_duration_seconds_count", fp16)] == 1


def test_cache_result_is_read_from_the_status_when_it_has_one() -> None:
    class WithCache:
        class cache:  # noqa: N801  (mimics status.conversion.cache)
            result = "Hit"

    assert cache_result(succeeded(1.0)) == "Disabled"
    assert cache_result(WithCache()) == "Hit"  # type: ignore[arg-type]


def test_per_model_gauges_say_what_the_status_says_and_go_with_the_model() -> None:
    """Issue 17: what the dashboards and alerts read of each model, from its status."""
    metrics = Metrics()
    served = TRTModelStatus.model_validate(
        {
            "phase": "Ready",
            "readyReplicas": 2,
            "pods": "2/3",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "ModelAvailable",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                },
            ],
            "served": {"generation": 2, "precision": "FP16", "readyReplicas": 2},
            "conversion": {
                "result": "Succeeded",
                "precision": "FP16",
                "durationSeconds": 312.5,
                "trtEngineOps": 4,
                "enginesBuilt": 2,
                "cache": {"result": "Miss"},
                "accuracy": {"passed": True, "samples": 32, "maxAbsError": 0.002},
            },
            "benchmark": {
                "result": "Succeeded",
                "speedup": 1.8,
                "significant": True,
                "baseline": {"name": "m-native"},
            },
        }
    )
    metrics.observe_status(KEY, None, served)
    got = samples(metrics)
    labels = (("model", "m"), ("namespace", "ns"))
    info = (("model", "m"), ("namespace", "ns"), ("phase", "Ready"), ("precision", "FP16"),
            ("reason", "ModelAvailable"))  # fmt: skip
    assert got[("trtserve_model_info", info)] == 1
    assert got[("trtserve_model_ready_replicas", labels)] == 2
    assert got[("trtserve_model_desired_replicas", labels)] == 3
    conversion = (*labels[:1], ("cache", "Miss"), labels[1], ("precision", "FP16"))
    assert got[("trtserve_model_conversion_seconds", tuple(sorted(conversion)))] == 312.5
    assert got[("trtserve_model_trt_engine_ops", labels)] == 4
    assert got[("trtserve_model_engines_built", labels)] == 2
    assert got[("trtserve_model_accuracy_max_abs_error", labels)] == 0.002
    speedup = tuple(sorted((*labels, ("baseline", "m-native"), ("significant", "true"))))
    assert got[("trtserve_benchmark_speedup", speedup)] == 1.8
    metrics.forget_model(KEY)
    assert not [name for name, _ in samples(metrics) if name.startswith("trtserve_model_")]
