"""The JSON report: contract keys, one line, <= 4096 bytes even with huge errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trtserve_converter.errors import ConversionFailed, ConverterError, TensorRTUnavailable
from trtserve_converter.report import (
    MAX_REPORT_BYTES,
    AccuracyReport,
    Report,
    render_report,
    report_json,
    write_report,
)


def full_report(message: str, gpu: str = "NVIDIA A10") -> Report:
    return Report.succeeded(
        message,
        precision="FP16",
        model_name="resnet50",
        model_version=1,
        durations={"fetch": 1.2, "convert": 20.1, "total": 70.2},
        trt_engine_ops=3,
        native_ops=12,
        engines_built=2,
        accuracy=AccuracyReport(
            passed=True, samples=32, max_abs_error=0.0004, max_rel_error=0.002, top1_agreement=1.0
        ),
        tensorflow_version="2.17.1",
        tensorrt_linked="8.6.1",
        tensorrt_loaded="8.6.1",
        gpu=gpu,
    )


def test_contract_example_keys_and_compact_form() -> None:
    text = render_report(full_report("converted resnet50 to FP16: 3 TRTEngineOps, 2 engines"))
    assert "\n" not in text
    assert text == json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    data = json.loads(text)
    assert list(data)[:5] == ["v", "result", "reason", "exitCode", "message"]
    assert data["v"] == 1
    assert data["accuracy"] == {
        "passed": True,
        "samples": 32,
        "maxAbsError": 0.0004,
        "maxRelError": 0.002,
        "top1Agreement": 1.0,
    }
    assert data["tensorrtLinked"] == "8.6.1"
    assert data["enginesBuilt"] == 2


def test_absent_optional_keys_are_omitted() -> None:
    data = json.loads(render_report(Report.failed(TensorRTUnavailable("no TensorRT"))))
    assert data == {
        "v": 1,
        "result": "Failed",
        "reason": "TensorRTUnavailable",
        "exitCode": 30,
        "message": "no TensorRT",
    }


@pytest.mark.parametrize("size", [4000, 10_000, 1_000_000])
def test_long_error_is_shortened_to_fit(size: int) -> None:
    error = ConversionFailed("x" * size)
    text = render_report(Report.failed(error, precision="INT8", durations={"total": 1.0}))
    assert len(text.encode()) <= MAX_REPORT_BYTES
    data = json.loads(text)
    assert data["reason"] == "ConversionFailed"
    assert data["message"].endswith("…")
    assert data["precision"] == "INT8"  # message shortened before keys are dropped
    assert data["durations"] == {"total": 1.0}


def test_multibyte_and_escaped_messages_fit_in_bytes() -> None:
    for unit in ("é", "€", '"', "\\", "\u0001"):
        text = render_report(Report.failed(ConverterError(unit * 5000)))
        assert len(text.encode("utf-8")) <= MAX_REPORT_BYTES
        assert json.loads(text)["message"].endswith("…")


def test_optional_keys_are_dropped_when_shortening_is_not_enough() -> None:
    text = render_report(full_report("m" * 5000, gpu="G" * 5000))
    assert len(text.encode()) <= MAX_REPORT_BYTES
    data = json.loads(text)
    assert "gpu" not in data
    assert {"v", "result", "reason", "exitCode", "message"} <= set(data)
    assert len(data["message"]) >= 512  # the message keeps a useful prefix


def test_messages_are_one_line() -> None:
    error = ConversionFailed("first line\n  second line\r\nthird")
    assert error.message == "first line second line third"
    assert json.loads(render_report(Report.failed(error)))["message"] == error.message


def test_non_finite_numbers_become_null() -> None:
    report = AccuracyReport(
        passed=False, samples=1, max_abs_error=float("inf"), max_rel_error=float("nan")
    )
    assert report.max_abs_error is None
    assert report.max_rel_error is None


def test_report_json_for_contract_tests() -> None:
    data = json.loads(
        report_json(
            result="Failed",
            reason="Timeout",
            exit_code=60,
            message="too slow " * 1000,
            precision="FP16",
            modelName="m",
        )
    )
    assert (data["reason"], data["exitCode"], data["modelName"]) == ("Timeout", 60, "m")
    assert data["message"].endswith("…")


def test_write_report_creates_parent_and_survives_unwritable_path(tmp_path: Path) -> None:
    base = tmp_path
    text = write_report(full_report("ok"), base / "a" / "b.json")
    assert (base / "a" / "b.json").read_text() == text
    # A directory cannot be written as a file: logged, not raised.
    assert write_report(full_report("ok"), base) == text
