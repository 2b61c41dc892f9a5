"""Fixtures of the chart tests: the real helm and checkov binaries, and the chart rendered once
per value set (``tests/chart/values/*.yaml`` plus the defaults) for the whole session.

The tools come from ``scripts/install-tools.sh`` (``.tools/bin``) or the PATH; when one is
missing, the tests that need it are skipped with that reason (CI installs both).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from chart_support import (
    DEFAULT_VALUE_SET,
    VALUE_SETS,
    Rendered,
    find_tool,
    helm_template,
    values_args,
)


@pytest.fixture(scope="session")
def helm() -> Path:
    path = find_tool("helm")
    if path is None:
        pytest.skip("helm is not installed: run scripts/install-tools.sh")
    return path


@pytest.fixture(scope="session")
def checkov() -> Path:
    path = find_tool("checkov")
    if path is None:
        pytest.skip("checkov is not installed: run scripts/install-tools.sh")
    return path


@pytest.fixture(scope="session")
def renders(helm: Path) -> dict[str, Rendered]:
    """Every value set rendered once; a render that fails fails every test using it."""
    rendered: dict[str, Rendered] = {}
    for name in VALUE_SETS:
        result = helm_template(helm, *values_args(name), required=False)
        assert result.returncode == 0, f"helm template ({name}) failed:\n{result.stderr}"
        manifests = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
        rendered[name] = Rendered(name=name, text=result.stdout, manifests=manifests)
    return rendered


@pytest.fixture(params=sorted(VALUE_SETS))
def rendered(request: pytest.FixtureRequest, renders: dict[str, Rendered]) -> Rendered:
    """Each value set in turn."""
    return renders[request.param]


@pytest.fixture
def default(renders: dict[str, Rendered]) -> Rendered:
    return renders[DEFAULT_VALUE_SET]
