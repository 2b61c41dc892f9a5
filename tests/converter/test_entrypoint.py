"""The real `trt-convert` console script in a subprocess (as the initContainer runs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.tf

TRT_CONVERT = Path(sys.executable).with_name("trt-convert")


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    if not TRT_CONVERT.exists():
        pytest.skip(f"console script not installed at {TRT_CONVERT} (pip install -e .)")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRT_CONVERT_")}
    return subprocess.run(
        [str(TRT_CONVERT), *args],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_configured_by_environment_only_with_json_logs(models: Any, tmp_path: Path) -> None:
    report = tmp_path / "termination-log"
    result = run(
        {
            "TRT_CONVERT_SOURCE": str(models.two_input),
            "TRT_CONVERT_MODEL_NAME": "two",
            "TRT_CONVERT_MODEL_VERSION": "4",
            "TRT_CONVERT_PRECISION": "NATIVE",
            "TRT_CONVERT_OUTPUT_BASE": str(tmp_path / "models"),
            "TRT_CONVERT_REPORT_PATH": str(report),
            "TRT_CONVERT_LOG_FORMAT": "json",
        }
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(report.read_text())
    assert (data["result"], data["modelVersion"]) == ("Succeeded", 4)
    assert (tmp_path / "models" / "two" / "4" / "saved_model.pb").is_file()
    ours = [
        json.loads(line)
        for line in result.stderr.splitlines()
        if line.startswith("{") and '"logger":"trtserve_converter' in line
    ]
    assert any(entry["message"].startswith("step fetch") for entry in ours)


def test_fp16_on_cpu_tensorflow_exits_30_without_crashing(models: Any, tmp_path: Path) -> None:
    report = tmp_path / "termination-log"
    result = run(
        {},
        "--source", str(models.classifier), "--model-name", "clf", "--precision", "FP16",
        "--output-base", str(tmp_path / "models"), "--report-path", str(report),
    )  # fmt: skip
    assert result.returncode == 30, result.stderr
    data = json.loads(report.read_text())
    assert (data["reason"], data["exitCode"]) == ("TensorRTUnavailable", 30)
    assert "TensorRTUnavailable" in result.stderr


GPU_WHEEL_PYTHON = os.environ.get("TRTSERVE_TF_GPU_PYTHON")


@pytest.mark.skipif(
    not GPU_WHEEL_PYTHON,
    reason="opt-in: set TRTSERVE_TF_GPU_PYTHON to a python with the GPU wheel tensorflow==2.17.1 "
    "(and pydantic, fsspec) but without TensorRT libraries",
)
def test_gpu_wheel_without_tensorrt_libraries_exits_30(models: Any, tmp_path: Path) -> None:
    """The GPU build is linked against TensorRT 8.6.1; without libnvinfer it must not abort."""
    report = tmp_path / "termination-log"
    converter_src = Path(__file__).resolve().parents[2] / "converter"
    result = subprocess.run(
        [
            str(GPU_WHEEL_PYTHON),
            "-m",
            "trtserve_converter",
            "--source",
            str(models.classifier),
            "--model-name",
            "clf",
            "--precision",
            "FP16",
            "--output-base",
            str(tmp_path / "models"),
            "--report-path",
            str(report),
        ],
        env={**os.environ, "PYTHONPATH": str(converter_src)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 30, result.stderr
    data = json.loads(report.read_text())
    assert data["tensorrtLinked"] == "8.6.1"
    assert "libnvinfer8" in data["message"]


@pytest.mark.slow
def test_json_logs_carry_tensorflows_native_lines_too(models: Any, tmp_path: Path) -> None:
    """TensorFlow's C++ lines (forced here with TF_CPP_MAX_VLOG_LEVEL) came out as plain
    text among the JSON records; now every stderr line is one JSON object."""
    report = tmp_path / "termination-log"
    result = run(
        {"TF_CPP_MAX_VLOG_LEVEL": "1", "TF_CPP_MIN_LOG_LEVEL": "0"},
        "--source", str(models.classifier), "--model-name", "clf", "--precision", "NATIVE",
        "--output-base", str(tmp_path / "models"), "--report-path", str(report),
        "--log-format", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    native = [entry for entry in entries if entry["logger"] == "native"]
    assert any(".cc:" in entry.get("source", "") for entry in native), native[:3]
    assert {entry["level"] for entry in native} <= {"INFO", "WARNING", "ERROR", "CRITICAL"}
    assert entries[-1]["logger"] == "trtserve_converter"
    assert entries[-1]["message"].startswith("succeeded: ")
    assert json.loads(report.read_text())["result"] == "Succeeded"
