"""scripts/install-tools.sh is idempotent and fast once the tools are there (CI and
developers run it on every `make test`)."""

from __future__ import annotations

import time

import pytest
from chart_support import REPO_ROOT, run_tool

SCRIPT = REPO_ROOT / "scripts" / "install-tools.sh"
TOOLS = REPO_ROOT / ".tools" / "bin"


def test_script_is_valid_bash() -> None:
    result = run_tool("bash", "-n", SCRIPT)
    assert result.returncode == 0, result.stderr


def test_second_run_installs_nothing_and_is_fast() -> None:
    if not ((TOOLS / "helm").is_file() and (TOOLS / "checkov").exists()):
        pytest.skip("the tools are not installed yet: run scripts/install-tools.sh")
    started = time.monotonic()
    result = run_tool("bash", SCRIPT)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "helm v4.1.4: already installed" in result.stdout
    assert "checkov 3.3.30: already installed" in result.stdout
    assert elapsed < 5
    version = run_tool(TOOLS / "helm", "version", "--template", "{{.Version}}")
    assert version.stdout.strip() == "v4.1.4"
