"""Helpers shared by the chart tests (the fixtures are in conftest.py).

Run as a script, it prints the values table of docs/admin.md, generated from the `# --`
comments of values.yaml:

    .venv/bin/python tests/chart/chart_support.py
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "trtserve"
VALUES_DIR = Path(__file__).parent / "values"
REQUIRED_VALUES = Path(__file__).parent / "required-values.yaml"
"""Values without a default (the image repositories), given before every value set."""
RELEASE = "trt"
NAMESPACE = "trtserve-system"
DEFAULT_VALUE_SET = "default"
VALUE_SETS: dict[str, Path | None] = {
    DEFAULT_VALUE_SET: None,
    **{path.stem: path for path in sorted(VALUES_DIR.glob("*.yaml"))},
}

Manifest = dict[str, Any]


def values_args(value_set: str) -> list[str | Path]:
    """The helm flags selecting a value set (none for the chart defaults)."""
    values = VALUE_SETS[value_set]
    return ["--values", REQUIRED_VALUES, *(["--values", values] if values else [])]


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
        """The operator's environment as the kubelet sets it (downward API fields filled
        in as the pod ``operator-0`` in the release namespace would have them)."""
        return {
            item["name"]: item["value"]
            if "value" in item
            else DOWNWARD_API[item["valueFrom"]["fieldRef"]["fieldPath"]]
            for item in self.operator_container["env"]
        }


DOWNWARD_API = {"metadata.namespace": NAMESPACE, "metadata.name": "operator-0"}


def helm_template(
    helm: Path, *extra: str | Path, chart: Path = CHART_DIR, required: bool = True
) -> subprocess.CompletedProcess[str]:
    """``helm template``; with the required values first unless ``required=False``."""
    base: list[str | Path] = ["--values", REQUIRED_VALUES] if required else []
    return run_tool(helm, "template", RELEASE, chart, "--namespace", NAMESPACE, *base, *extra)


VALUES_PATH = CHART_DIR / "values.yaml"
DOC_COMMENT = "# --"


@dataclass(frozen=True)
class ValueDoc:
    """A key of values.yaml and the comment block right above it."""

    path: str
    comment: str  # the text of a `# --` block above the key, "" when there is none
    parent_documented: bool  # whether an enclosing key has a `# --` comment


def value_docs() -> list[ValueDoc]:
    """Every key of values.yaml, in file order, with its dotted path and documentation."""
    lines = VALUES_PATH.read_text().splitlines()
    stack: list[tuple[int, str, bool]] = []
    docs: list[ValueDoc] = []
    for index, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][\w-]*):", line)
        if not match:
            continue
        indent, key = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        start = index
        while start > 0 and lines[start - 1].strip().startswith("#"):
            start -= 1
        block = [text.strip().lstrip("#").strip() for text in lines[start:index]]
        own = start < index and lines[start].strip().startswith(DOC_COMMENT)
        comment = " ".join(block).removeprefix("--").strip() if own else ""
        path = ".".join([*(name for _, name, _ in stack), key])
        docs.append(ValueDoc(path, comment, any(doc for _, _, doc in stack)))
        stack.append((indent, key, own))
    return docs


def values_table() -> str:
    """The Markdown table of every value that has its own `# --` comment, with its default."""
    values = yaml.safe_load(VALUES_PATH.read_text())
    rows = ["| value | default | description |", "| --- | --- | --- |"]
    for doc in value_docs():
        if not doc.comment:
            continue
        default: Any = values
        for key in doc.path.split("."):
            default = default[key]
        shown = (
            f'"{default}"'
            if isinstance(default, str)
            else yaml.safe_dump(default, default_flow_style=True, width=1000)
            .replace("\n...", "")
            .strip()
        )
        cells = [f"`{doc.path}`", f"`{shown}`", doc.comment]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(values_table(), end="")
