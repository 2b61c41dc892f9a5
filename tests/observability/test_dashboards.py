"""The dashboards as generated: the committed JSON is what the SDK builds, every panel
queries the dashboard's Prometheus variable, and the Model dashboard's variables select a
TRTModel. That every query parses and returns series is
tests/operator/test_prometheus_queries.py."""

from __future__ import annotations

import json

from trtserve_observability import dashboards
from trtserve_observability.__main__ import CHART_FILES, outputs


def test_the_committed_dashboards_are_the_generated_ones() -> None:
    for path, text in outputs().items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name}: run make observability"


def test_every_panel_queries_the_datasource_variable_with_at_least_one_query() -> None:
    for spec in dashboards.DASHBOARDS:
        board = json.loads((CHART_FILES / "dashboards" / f"{spec.uid}.json").read_text())
        assert board["uid"] == spec.uid
        panels = [p for p in board["panels"] if p["type"] != "row"]
        assert len(panels) == sum(len(row[1]) for row in spec.rows)
        for panel in panels:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["expr"], panel["title"]
        names = [v["name"] for v in board["templating"]["list"]]
        assert names == (
            ["datasource", "namespace", "model"] if spec.model_variables else ["datasource"]
        )


def test_the_model_variables_come_from_the_operators_per_model_metric() -> None:
    board = json.loads((CHART_FILES / "dashboards" / "trtserve-model.json").read_text())
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert "trtserve_model_info" in json.dumps(variables["namespace"]["query"])
    assert "$namespace" in json.dumps(variables["model"]["query"])
