"""Helpers shared by the chart tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "trtserve"
VALUES_DIR = Path(__file__).parent / "values"
RELEASE = "trt"
NAMESPACE = "trtserve-system"
DEFAULT_VALUE_SET = "default"
VALUE_SETS: dict[str, Path | None] = {
    DEFAULT_VALUE_SET: None,
    **{path.stem: path for path in sorted(VALUES_DIR.glob("*.yaml"))},
}

Manifest = dict[str, Any]


def find_tool(name: str) -> Path | None:
    """The repository's pinned tool in ``.tools/bin`` first, else the one on the PATH."""
    local = REPO_ROOT / ".tools" / "bin" / name
    if local.is_file():
        return local
    found = shutil.which(name)
    return Path(found) if found else None


def run_tool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run a tool without raising: the tests look at the exit code and the output."""
    return subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, check=False, timeout=120
    )


@dataclass(frozen=True)
class Rendered:
    """The output of ``helm template`` for one value set."""

    name: str
    text: str
    manifests: list[Manifest] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Manifest]:
        return [manifest for manifest in self.manifests if manifest["kind"] == kind]

    def one(self, kind: str) -> Manifest:
        found = self.of_kind(kind)
        assert len(found) == 1, f"{self.name}: expected one {kind}, got {len(found)}"
        return found[0]

    @property
    def operator_container(self) -> Mapping[str, Any]:
        containers = self.one("Deployment")["spec"]["template"]["spec"]["containers"]
        assert len(containers) == 1
        return containers[0]  # type: ignore[no-any-return]

    @property
    def env(self) -> dict[str, str]:
        return {item["name"]: item["value"] for item in self.operator_container["env"]}


def helm_template(helm: Path, *extra: str | Path) -> subprocess.CompletedProcess[str]:
    return run_tool(helm, "template", RELEASE, CHART_DIR, "--namespace", NAMESPACE, *extra)
