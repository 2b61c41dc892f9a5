"""The alerts, checked by Prometheus' own promtool: the chart's rendered PrometheusRule
passes `promtool check rules`, and every alert has a `promtool test rules` unit test in
which it fires (with the labels and annotations a receiver gets) and one in which it
does not."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from trtserve_observability import alerts
from trtserve_observability.__main__ import outputs

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "charts" / "trtserve" / "files" / "alerts" / "trtserve.rules.yaml"
NS, MODEL = "team-a", "resnet50"


def render(template: str, labels: dict[str, str], value: float) -> str:
    """The alert templates' two forms, as Prometheus renders them."""
    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), template)
    return re.sub(r'\{\{ printf "%\.(\d)f" \$value \}\}', lambda m: f"{value:.{m.group(1)}f}", text)


def expected(name: str, labels: dict[str, str], value: float) -> dict[str, Any]:
    (alert,) = [a for a in alerts.ALERTS if a.name == name]
    rule = alert.rule()
    return {
        "exp_labels": {**labels, "severity": alert.severity},
        "exp_annotations": {
            key: render(text, labels, value) for key, text in rule["annotations"].items()
        },
    }


def info(phase: str, reason: str) -> str:
    return (
        f'trtserve_model_info{{namespace="{NS}", model="{MODEL}", phase="{phase}", '
        f'reason="{reason}", precision=""}}'
    )


def failed(reason: str) -> str:
    return (
        f'trtserve_model_conversion_failed{{namespace="{NS}", model="{MODEL}", reason="{reason}"}}'
    )


MODEL_LABELS = {"namespace": NS, "model": MODEL}
CASES: list[tuple[str, list[dict[str, str]], str, list[dict[str, Any]]]] = [
    # (alert, input series, eval time, the alerts expected then)
    ("TRTModelNotReady", [{"series": info("Failed", "AccuracyGateFailed"), "values": "1x20"}],
     "16m", [expected("TRTModelNotReady",
                      {**MODEL_LABELS, "phase": "Failed", "reason": "AccuracyGateFailed"}, 1)]),
    ("TRTModelNotReady", [{"series": info("Failed", "AccuracyGateFailed"), "values": "1x20"}],
     "14m", []),  # not for 15 minutes yet
    ("TRTModelNotReady", [{"series": info("Ready", "ModelAvailable"), "values": "1x20"}],
     "16m", []),
    ("TRTModelNotReady", [{"series": info("Pending", "ScaledToZero"), "values": "1x20"}],
     "16m", []),
    ("TRTModelConversionFailing", [{"series": failed("Timeout"), "values": "1x40"}],
     "31m", [expected("TRTModelConversionFailing", {**MODEL_LABELS, "reason": "Timeout"}, 1)]),
    ("TRTModelConversionFailing", [{"series": failed("Timeout"), "values": "1x40"}],
     "29m", []),
    ("TRTModelAccuracyGateFailed", [{"series": failed("AccuracyGateFailed"), "values": "1x5"}],
     "1m", [expected("TRTModelAccuracyGateFailed", MODEL_LABELS, 1)]),
    ("TRTModelAccuracyGateFailed", [{"series": failed("Timeout"), "values": "1x5"}],
     "1m", []),
    ("TRTModelCachePublishFailed",
     [{"series": f'trtserve_model_conversion_seconds{{namespace="{NS}", model="{MODEL}", '
                 f'precision="FP16", cache="PublishFailed"}}', "values": "300x20"}],
     "11m", [expected("TRTModelCachePublishFailed", MODEL_LABELS, 1)]),
    ("TRTModelCachePublishFailed",
     [{"series": f'trtserve_model_conversion_seconds{{namespace="{NS}", model="{MODEL}", '
                 f'precision="FP16", cache="Hit"}}', "values": "300x20"}],
     "11m", []),
    ("TRTServeNoLeader",
     [{"series": 'trtserve_operator_leader{pod="op-0"}', "values": "0x10"},
      {"series": 'trtserve_operator_leader{pod="op-1"}', "values": "0x10"}],
     "6m", [expected("TRTServeNoLeader", {}, 0)]),
    ("TRTServeNoLeader",
     [{"series": 'trtserve_operator_leader{pod="op-0"}', "values": "0x10"},
      {"series": 'trtserve_operator_leader{pod="op-1"}', "values": "1x10"}],
     "6m", []),
    ("TRTServeOperatorDown",
     [{"series": 'up{job="something-else"}', "values": "1x10"}],
     "6m", [expected("TRTServeOperatorDown", {}, 1)]),
    ("TRTServeOperatorDown",
     [{"series": 'trtserve_operator_leader{pod="op-0"}', "values": "1x10"}],
     "6m", []),
    ("TRTModelSlowerThanBaseline",
     [{"series": f'trtserve_benchmark_speedup{{namespace="{NS}", model="{MODEL}", '
                 f'baseline="resnet50-native", significant="true"}}', "values": "0.8x5"}],
     "1m", [expected("TRTModelSlowerThanBaseline",
                     {**MODEL_LABELS, "baseline": "resnet50-native"}, 0.8)]),
    ("TRTModelSlowerThanBaseline",
     [{"series": f'trtserve_benchmark_speedup{{namespace="{NS}", model="{MODEL}", '
                 f'baseline="resnet50-native", significant="false"}}', "values": "0.8x5"}],
     "1m", []),
]  # fmt: skip


def test_the_committed_rules_are_the_generated_ones() -> None:
    assert RULES.read_text(encoding="utf-8") == outputs()[RULES]


def test_every_alert_has_a_summary_a_description_a_runbook_and_a_severity() -> None:
    admin = (REPO / "docs" / "admin.md").read_text(encoding="utf-8")
    for alert in alerts.ALERTS:
        rule = alert.rule()
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert set(rule["annotations"]) == {"summary", "description", "runbook"}
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert f"### Alert: {alert.name}" in admin, f"docs/admin.md has no runbook of {alert.name}"
        assert anchor == f"alert-{alert.name.lower()}"


def test_every_alert_fires_in_one_case_and_not_in_another() -> None:
    fired = {name for name, _, _, want in CASES if want}
    quiet = {name for name, _, _, want in CASES if not want}
    names = {alert.name for alert in alerts.ALERTS}
    assert fired == names
    assert quiet == names


def test_promtool_checks_the_rendered_prometheus_rule(promtool: Path, tmp_path: Path) -> None:
    helm = REPO / ".tools" / "bin" / "helm"
    if not helm.exists():
        pytest.skip("helm is not installed: run scripts/install-tools.sh")
    rendered = subprocess.run(
        [helm, "template", "t", REPO / "charts" / "trtserve", "--values",
         REPO / "tests" / "chart" / "required-values.yaml", "--set", "prometheusRule.enabled=true"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (rule,) = [
        doc
        for doc in yaml.safe_load_all(rendered.stdout)
        if doc and doc["kind"] == "PrometheusRule"
    ]
    path = tmp_path / "rendered.rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]), encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "rules", path], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts.ALERTS)} rules found" in result.stdout


def test_promtool_unit_tests_every_alert(promtool: Path, tmp_path: Path) -> None:
    tests = [
        {
            "name": f"{name} #{index}",
            "interval": "1m",
            "input_series": series,
            "alert_rule_test": [{"eval_time": at, "alertname": name, "exp_alerts": want}],
        }
        for index, (name, series, at, want) in enumerate(CASES)
    ]
    path = tmp_path / "alerts.test.yaml"
    path.write_text(
        yaml.safe_dump({"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": tests}),
        encoding="utf-8",
    )
    result = subprocess.run(
        [promtool, "test", "rules", path], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_broken_expectation_fails_promtool(promtool: Path, tmp_path: Path) -> None:
    """The unit tests can fail: the firing case of TRTModelNotReady expected quiet."""
    name, series, at, _ = CASES[0]
    test = {
        "input_series": series,
        "interval": "1m",
        "alert_rule_test": [{"eval_time": at, "alertname": name, "exp_alerts": []}],
    }
    path = tmp_path / "broken.test.yaml"
    path.write_text(yaml.safe_dump({"rule_files": [str(RULES)], "tests": [test]}), encoding="utf-8")
    result = subprocess.run(
        [promtool, "test", "rules", path], check=False, capture_output=True, text=True
    )
    assert result.returncode != 0
