"""What README, docs and the chart's NOTES show as the READY=True reason is what the status
computation writes."""

from __future__ import annotations

import re
from pathlib import Path

from builder_inputs import REPO
from test_status_computation import T0, TARGET, conditions, deployment, pod, report

from trtserve_operator.services.status import compute_status

SAMPLE_ROW = re.compile(r"^\S+\s+(?:FP16|FP32|INT8|NATIVE)\s+True\s+(\S+)\s", re.MULTILINE)
NOTES = REPO / "charts" / "trtserve" / "templates" / "NOTES.txt"
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def ready_reason() -> str:
    ok = report(result="Succeeded", reason="Succeeded", exitCode=0, message="converted")
    pods = [pod({"state": {"terminated": {"exitCode": 0, "message": ok}}}, ready=True)]
    ready = compute_status(
        TARGET,
        deployment=deployment(replicas=2, readyReplicas=2, availableReplicas=2, updatedReplicas=2),
        pods=pods,
        previous=None,
        now=T0,
    )
    return str(conditions(ready)["Ready"].reason)


def test_notes_show_the_reason_the_operator_writes() -> None:
    shown = re.findall(r"REASON=(\w+)", NOTES.read_text())
    assert shown
    assert set(shown) == {ready_reason()}


def test_sample_kubectl_output_shows_the_reason_the_operator_writes() -> None:
    shown = {
        (path.name, reason) for path in DOCUMENTS for reason in SAMPLE_ROW.findall(path.read_text())
    }
    assert shown
    assert {reason for _, reason in shown} == {ready_reason()}, shown


def test_documents_exist() -> None:
    assert all(Path(path).exists() for path in [NOTES, *DOCUMENTS])
