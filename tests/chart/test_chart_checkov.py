"""checkov's Kubernetes checks on every rendered value set: no failure, and every skip is one
of the accepted findings annotated in the Deployment, with its reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from chart_support import Rendered, run_tool

# Findings the chart accepts (annotated in templates/deployment.yaml, explained in
# docs/admin.md). A new skip must be added here on purpose.
ACCEPTED_SKIPS = {
    "CKV_K8S_38",  # the operator needs its ServiceAccount token to call the API
    "CKV_K8S_15",  # imagePullPolicy IfNotPresent with a pinned tag (only when not Always)
    "CKV_K8S_43",  # pinned by tag, not digest (only when image.digest is empty)
}


@pytest.fixture(scope="session")
def checkov_results(
    checkov: Path, renders: dict[str, Rendered], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """One checkov run over all renders (a file per value set): it takes a few seconds."""
    directory = tmp_path_factory.mktemp("rendered")
    for name, rendered in renders.items():
        (directory / f"{name}.yaml").write_text(rendered.text)
    result = run_tool(
        checkov, "--directory", directory, "--framework", "kubernetes", "--output", "json",
        "--skip-download", "--compact",
    )  # fmt: skip
    # checkov exits 1 when a check fails; anything else (or no JSON) is a crash.
    assert result.returncode in {0, 1}, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["check_type"] == "kubernetes"
    assert report["summary"]["parsing_errors"] == 0
    return report["results"]  # type: ignore[no-any-return]


def test_no_failed_checks(checkov_results: dict[str, Any]) -> None:
    failures = [
        f"{check['file_path']}: {check['check_id']} {check['check_name']} ({check['resource']})"
        for check in checkov_results["failed_checks"]
    ]
    assert failures == []


def test_checks_ran_on_every_value_set(
    checkov_results: dict[str, Any], renders: dict[str, Rendered]
) -> None:
    files = {check["file_path"].lstrip("/") for check in checkov_results["passed_checks"]}
    assert files == {f"{name}.yaml" for name in renders}
    passed = {check["check_id"] for check in checkov_results["passed_checks"]}
    # The restricted-pod checks really ran (and passed), not just got skipped.
    assert {"CKV_K8S_20", "CKV_K8S_22", "CKV_K8S_28", "CKV_K8S_31", "CKV_K8S_37"} <= passed
    assert {"CKV_K8S_8", "CKV_K8S_9", "CKV_K8S_11", "CKV_K8S_13", "CKV_K8S_14"} <= passed
    assert "CKV_K8S_49" in passed  # no wildcard in (Cluster)Roles


def test_every_skip_is_accepted_and_explained(checkov_results: dict[str, Any]) -> None:
    for check in checkov_results["skipped_checks"]:
        assert check["check_id"] in ACCEPTED_SKIPS, check["check_id"]
        reason = check["check_result"].get("suppress_comment") or ""
        assert len(reason) > 30, f"{check['check_id']} skipped without a real reason"


def test_conditional_skips_follow_the_values(checkov_results: dict[str, Any]) -> None:
    """custom-images pins a digest and pulls Always, so those two checks run and pass there."""
    skipped = {
        (check["file_path"].lstrip("/"), check["check_id"])
        for check in checkov_results["skipped_checks"]
    }
    passed = {
        (check["file_path"].lstrip("/"), check["check_id"])
        for check in checkov_results["passed_checks"]
    }
    assert ("default.yaml", "CKV_K8S_43") in skipped
    assert ("custom-images.yaml", "CKV_K8S_43") in passed
    assert ("custom-images.yaml", "CKV_K8S_15") in passed
