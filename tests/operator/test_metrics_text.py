"""The metrics text is valid Prometheus exposition format."""

from __future__ import annotations

import pytest

from trtserve_operator.services.metrics import Metrics


def test_counters_render_with_help_type_and_labels() -> None:
    metrics = Metrics()
    metrics.inc("trtserve_events_total", type="Warning")
    metrics.inc("trtserve_events_total", type="Warning")
    metrics.inc("trtserve_status_writes_total")
    text = metrics.render()
    assert "# TYPE trtserve_events_total counter" in text.splitlines()
    assert 'trtserve_events_total{type="Warning"} 2' in text.splitlines()
    assert "trtserve_status_writes_total 1" in text.splitlines()
    assert text.endswith("\n")


def test_label_values_are_escaped() -> None:
    metrics = Metrics()
    metrics.inc("trtserve_api_errors_total", error='a"b\\c')
    assert 'trtserve_api_errors_total{error="a\\"b\\\\c"} 1' in metrics.render()


def test_unknown_metric_is_a_bug() -> None:
    with pytest.raises(KeyError):
        Metrics().inc("nope_total")
