"""The FP16/INT8 pipeline around TF-TRT, with a CPU stand-in for TrtGraphConverterV2.

There is no GPU or TensorRT here, so these tests replace TF-TRT's converter with a
double that keeps its API rules (constructor keywords checked against the real
signature; convert -> build -> save order; INT8 calibration consumed in convert() for
static shapes and in build() for dynamic ones) and saves a chosen SavedModel. They check
OUR glue: inputs handed to build(), calibration, error mapping, accuracy gate, layout
and report. They say nothing about TensorRT itself: scripts/gpu-smoke.sh does that.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.compiler.tensorrt import trt_convert
from tensorflow_serving.apis import prediction_log_pb2

from trtserve_converter import tensorrt_env
from trtserve_converter.layout import copy_tree

pytestmark = pytest.mark.tf

REAL_CONVERTER = trt_convert.TrtGraphConverterV2


class FakeConverter:
    """Records what the pipeline asks of TF-TRT; saves `save_from` as the result."""

    save_from: Path
    fail_in: str | None = None
    instances: list[FakeConverter]

    def __init__(self, **kwargs: Any) -> None:
        inspect.signature(REAL_CONVERTER.__init__).bind(None, **kwargs)  # real keywords only
        self.kwargs = kwargs
        self.calls: list[str] = []
        self.build_inputs: list[dict[str, Any]] = []
        self.calibration_inputs: list[dict[str, Any]] = []
        self._calibration: Callable[[], Iterator[Any]] | None = None
        self.instances.append(self)

    def _function(self) -> Any:
        model = tf.saved_model.load(self.kwargs["input_saved_model_dir"])
        self._model = model  # keep the variables alive
        return model.signatures[self.kwargs["input_saved_model_signature_key"]]

    def _calibrate(self) -> None:
        assert self._calibration is not None
        for batch in self._calibration():
            if self.fail_in == "calibration":
                raise RuntimeError("Calibration failed: bad ranges")
            self.calibration_inputs.append(batch)
            self._func(**batch)

    def convert(self, calibration_input_fn: Any = None) -> Any:
        self.calls.append("convert")
        need_calibration = self.kwargs["precision_mode"] == "INT8"
        if need_calibration != (calibration_input_fn is not None):
            raise ValueError("calibration_input_fn must be given exactly for INT8")
        if self.fail_in == "convert":
            raise RuntimeError("conversion exploded")
        self._func = self._function()
        self._calibration = calibration_input_fn
        if need_calibration and not self.kwargs["use_dynamic_shape"]:
            self._calibrate()
        return self._func

    def build(self, input_fn: Any) -> None:
        assert self.calls == ["convert"], "build() before convert()"
        self.calls.append("build")
        for batch in input_fn():
            if self.fail_in == "build":
                raise RuntimeError("Engine building failed: out of memory")
            self.build_inputs.append(batch)
            self._func(**batch)
        if self._calibration is not None and self.kwargs["use_dynamic_shape"]:
            self._calibrate()

    def summary(self, line_length: int = 160, detailed: bool = True, print_fn: Any = None) -> None:
        assert "build" in self.calls
        print_fn("TRTEngineOpName: TRTEngineOp_000_000 (fake summary)")

    def save(self, output_saved_model_dir: str) -> None:
        assert self.calls == ["convert", "build"], "save() before build()"
        self.calls.append("save")
        copy_tree(self.save_from, Path(output_saved_model_dir))
        engine = Path(output_saved_model_dir) / "assets" / "trt-serialized-engine.TRTEngineOp_0"
        engine.parent.mkdir(exist_ok=True)
        engine.write_bytes(b"engine")


@pytest.fixture
def fake_trt(monkeypatch: pytest.MonkeyPatch, models: Any) -> type[FakeConverter]:
    """TensorRT 'available' on a fake GPU, and the converter double in place."""

    class Converter(FakeConverter):
        save_from = models.classifier
        fail_in = None
        instances: list[FakeConverter] = []  # noqa: RUF012 - per-test class

    def probe() -> tensorrt_env.TensorRTInfo:
        return tensorrt_env.TensorRTInfo(
            tensorflow_version="2.17.1", linked="8.6.1", loaded="8.6.1", gpu="Fake GPU"
        )

    monkeypatch.setattr(tensorrt_env, "probe_tensorrt", probe)
    monkeypatch.setattr(trt_convert, "TrtGraphConverterV2", Converter)
    return Converter


def test_fp16_builds_every_build_shape_then_saves(
    fake_trt: type[FakeConverter], models: Any, run_cli: Any, caplog: pytest.LogCaptureFixture
) -> None:
    result = run_cli(
        "--source", str(models.classifier), "--model-name", "clf", "--precision", "FP16",
        "--build-shape", "images=1x8x8x3", "--build-shape", "images=16x8x8x3",
        "--max-workspace-bytes", "2048", "--profile-strategy", "Optimal",
    )  # fmt: skip
    assert result.code == 0, result.report
    (converter,) = fake_trt.instances
    assert converter.calls == ["convert", "build", "save"]
    assert "TRTEngineOp_000_000 (fake summary)" in caplog.text  # TF-TRT's summary is logged
    assert converter.kwargs["precision_mode"] == "FP16"
    assert converter.kwargs["max_workspace_size_bytes"] == 2048
    assert converter.kwargs["dynamic_shape_profile_strategy"] == "Optimal"
    shapes = [tuple(batch["images"].shape) for batch in converter.build_inputs]
    assert shapes == [(1, 8, 8, 3), (16, 8, 8, 3)]
    assert all(batch["images"].dtype == tf.float32 for batch in converter.build_inputs)
    report = result.report
    assert report["enginesBuilt"] == 1
    assert report["tensorrtLinked"] == "8.6.1"
    assert report["gpu"] == "Fake GPU"
    assert {"fetch", "inspect", "convert", "build", "save", "accuracy", "total"} <= set(
        report["durations"]
    )
    assert report["accuracy"]["passed"] is True  # the gate is on by default for FP16
    version = result.output_base / "clf" / "1"
    assert (version / "assets" / "trt-serialized-engine.TRTEngineOp_0").is_file()
    assert (version / "assets.extra" / "tf_serving_warmup_requests").is_file()


def test_accuracy_gate_failure_serves_nothing(
    fake_trt: type[FakeConverter], models: Any, run_cli: Any
) -> None:
    fake_trt.save_from = models.classifier_other  # a "conversion" that changed the results
    result = run_cli(
        "--source", str(models.classifier), "--model-name", "clf", "--precision", "FP16"
    )
    assert (result.code, result.report["reason"]) == (40, "AccuracyGateFailed")
    assert "beyond tolerance" in result.report["message"]
    assert result.report["accuracy"]["passed"] is False
    assert list((result.output_base / "clf").iterdir()) == []


@pytest.mark.parametrize("dynamic", ["--dynamic-shapes", "--no-dynamic-shapes"])
def test_int8_calibrates_on_the_calibration_data(
    fake_trt: type[FakeConverter], models: Any, run_cli: Any, tmp_path: Path, dynamic: str
) -> None:
    data = np.random.default_rng(0).standard_normal((20, 8, 8, 3))  # float64: cast to float32
    np.savez(tmp_path / "cal.npz", images=data)
    result = run_cli(
        "--source", str(models.classifier), "--model-name", "clf", "--precision", "INT8",
        "--calibration-source", str(tmp_path / "cal.npz"), "--calibration-batch-size", "4",
        "--calibration-batches", "3", dynamic, "--no-accuracy-check",
    )  # fmt: skip
    assert result.code == 0, result.report
    (converter,) = fake_trt.instances
    assert converter.kwargs["use_calibration"] is True
    assert len(converter.calibration_inputs) == 3
    first = converter.calibration_inputs[0]["images"]
    assert first.dtype == tf.float32
    np.testing.assert_allclose(first.numpy(), data[:4].astype(np.float32))
    build_shapes = [tuple(b["images"].shape) for b in converter.build_inputs]
    if dynamic == "--dynamic-shapes":  # the profiles must cover the calibration batch
        assert build_shapes == [(1, 8, 8, 3), (4, 8, 8, 3)]
    else:
        assert build_shapes == [(1, 8, 8, 3)]
    assert "calibrate" in result.report["durations"]


@pytest.mark.parametrize(
    ("fail_in", "code", "reason"),
    [
        ("convert", 31, "ConversionFailed"),
        ("build", 33, "EngineBuildFailed"),
        ("calibration", 32, "CalibrationFailed"),
    ],
)
def test_tf_trt_failures_are_typed(
    *,
    fake_trt: type[FakeConverter],
    models: Any,
    run_cli: Any,
    fail_in: str,
    code: int,
    reason: str,
) -> None:
    fake_trt.fail_in = fail_in
    result = run_cli(
        "--source", str(models.classifier), "--model-name", "clf", "--precision", "INT8",
        "--synthetic-calibration",
    )  # fmt: skip
    assert (result.code, result.report["reason"]) == (code, reason)
    assert result.report["message"].count("\n") == 0
    assert list((result.output_base / "clf").iterdir()) == []


def test_missing_calibration_file_is_a_calibration_failure(
    fake_trt: type[FakeConverter], models: Any, run_cli: Any, tmp_path: Path
) -> None:
    result = run_cli(
        "--source", str(models.classifier), "--model-name", "clf", "--precision", "INT8",
        "--calibration-source", str(tmp_path / "absent.npz"),
    )  # fmt: skip
    assert (result.code, result.report["reason"]) == (32, "CalibrationFailed")
    assert fake_trt.instances == []


def test_accuracy_and_warmup_inputs_use_the_first_build_shape(
    fake_trt: type[FakeConverter], models: Any, run_cli: Any
) -> None:
    result = run_cli(
        "--source", str(models.classifier), "--model-name", "clf", "--precision", "FP16",
        "--build-shape", "images=16x8x8x3", "--accuracy-samples", "40", "--warmup-records", "2",
    )  # fmt: skip
    assert result.code == 0, result.report
    assert result.report["accuracy"]["samples"] == 48  # 3 batches of the built shape
    warmup = result.output_base / "clf" / "1" / "assets.extra" / "tf_serving_warmup_requests"
    shapes = [
        tuple(d.size for d in log.predict_log.request.inputs["images"].tensor_shape.dim)
        for log in (
            prediction_log_pb2.PredictionLog.FromString(record.numpy())
            for record in tf.data.TFRecordDataset(str(warmup))
        )
    ]
    assert shapes == [(16, 8, 8, 3), (16, 8, 8, 3)]
