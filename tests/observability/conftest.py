"""Fixtures of the dashboards' and alerts' tests: Debian's real promtool and Prometheus
(package ``prometheus``; .ci/run installs it). Missing: the tests that need them skip,
naming the package."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def _tool(name: str) -> Path:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed: apt-get install prometheus (Debian's package)")
    return Path(path)


@pytest.fixture(scope="session")
def promtool() -> Path:
    return _tool("promtool")


@pytest.fixture(scope="session")
def prometheus() -> Path:
    return _tool("prometheus")
