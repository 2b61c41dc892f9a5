"""Warmup records are real PredictionLogs that TF Serving can replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from trtserve_converter.warmup import prediction_logs, write_warmup

pytestmark = pytest.mark.tf


def read_logs(path: Path) -> list[Any]:
    return [
        prediction_log_pb2.PredictionLog.FromString(record.numpy())
        for record in tf.data.TFRecordDataset(str(path))
    ]


def test_warmup_file_parses_as_prediction_logs(tmp_path: Path) -> None:
    batches: list[dict[str, Any]] = [
        {"a": np.ones((1, 4), np.float32), "b": np.array([3], np.int64)},
        {"a": np.zeros((2, 4), np.float32), "b": np.array([1, 2], np.int64)},
    ]
    path = write_warmup(tmp_path, prediction_logs("two", "serving_default", batches))
    assert path == tmp_path / "assets.extra" / "tf_serving_warmup_requests"
    logs = read_logs(path)
    assert len(logs) == 2
    for log, batch in zip(logs, batches, strict=True):
        assert log.WhichOneof("log_type") == "predict_log"
        request = log.predict_log.request
        assert request.model_spec.name == "two"
        assert request.model_spec.signature_name == "serving_default"
        assert set(request.inputs) == {"a", "b"}
        for name, value in batch.items():
            np.testing.assert_array_equal(tf.make_ndarray(request.inputs[name]), value)
        assert request.inputs["b"].dtype == tf.int64.as_datatype_enum


def test_cli_writes_replayable_warmup_records(models: Any, run_cli: Any) -> None:
    result = run_cli(
        "--source", str(models.classifier), "--model-name", "clf", "--precision", "NATIVE",
        "--warmup-records", "3",
    )  # fmt: skip
    assert result.code == 0, result.report
    version = result.output_base / "clf" / "1"
    logs = read_logs(version / "assets.extra" / "tf_serving_warmup_requests")
    assert len(logs) == 3
    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    for log in logs:
        request = log.predict_log.request
        images = tf.make_ndarray(request.inputs["images"])
        assert images.shape == (1, 8, 8, 3)
        assert serve(images=tf.constant(images))["probabilities"].shape == (1, 4)


def test_no_warmup_records_when_disabled(models: Any, run_cli: Any) -> None:
    result = run_cli(
        "--source", str(models.classifier), "--model-name", "clf", "--precision", "NATIVE",
        "--warmup-records", "0",
    )  # fmt: skip
    assert result.code == 0, result.report
    assert not (result.output_base / "clf" / "1" / "assets.extra").exists()


def test_more_warmup_records_than_accuracy_samples(models: Any, run_cli: Any) -> None:
    result = run_cli(
        "--source", str(models.classifier), "--model-name", "clf", "--precision", "NATIVE",
        "--accuracy-check", "--accuracy-samples", "2", "--warmup-records", "5",
    )  # fmt: skip
    assert result.code == 0, result.report
    assert result.report["accuracy"]["samples"] == 2
    warmup = result.output_base / "clf" / "1" / "assets.extra" / "tf_serving_warmup_requests"
    assert len(read_logs(warmup)) == 5
