"""NATIVE end to end: local dir, http(s) .tar.gz, S3 (moto); layout and atomicity."""

from __future__ import annotations

import io
import logging
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from trtserve_converter import warmup

pytestmark = pytest.mark.tf


def outputs_of(
    model_dir: Path, inputs: dict[str, Any], key: str = "serving_default"
) -> dict[str, Any]:
    function = tf.saved_model.load(str(model_dir)).signatures[key]
    return {
        name: value.numpy()
        for name, value in function(**{k: tf.constant(v) for k, v in inputs.items()}).items()
    }


def assert_same_outputs(
    original: Path, converted: Path, inputs: dict[str, Any], key: str = "serving_default"
) -> None:
    expected = outputs_of(original, inputs, key)
    got = outputs_of(converted, inputs, key)
    assert set(got) == set(expected)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])


def images(n: int = 3) -> dict[str, Any]:
    return {"images": np.random.default_rng(7).standard_normal((n, 8, 8, 3)).astype(np.float32)}


def test_native_from_local_dir(models: Any, run_cli: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="trtserve_converter")
    result = run_cli(
        "--source", str(models.classifier), "--model-name", "clf", "--precision", "NATIVE",
        "--accuracy-check",
    )  # fmt: skip
    assert result.code == 0, result.report
    # The last line names the version served and the directory it is served from.
    last = caplog.records[-1].getMessage()
    assert last.startswith("succeeded: ")
    assert f"served as version 1 from {result.output_base / 'clf' / '1'}" in last
    report = result.report
    assert (report["result"], report["reason"], report["exitCode"]) == ("Succeeded", "Succeeded", 0)
    assert (report["precision"], report["modelName"], report["modelVersion"]) == (
        "NATIVE",
        "clf",
        1,
    )
    assert report["trtEngineOps"] == 0
    assert report["enginesBuilt"] == 0
    assert report["nativeOps"] > 0
    assert report["tensorflowVersion"] == "2.17.1"
    assert report["accuracy"]["passed"] is True
    assert report["accuracy"]["samples"] == 32
    assert report["accuracy"]["top1Agreement"] == 1.0
    assert set(report["durations"]) <= {
        "fetch", "inspect", "convert", "calibrate", "build", "accuracy", "save", "total"
    }  # fmt: skip
    version = result.output_base / "clf" / "1"
    assert_same_outputs(models.classifier, version, images())
    # Only the version directory is left in the model directory: no staging leftovers.
    assert [p.name for p in (result.output_base / "clf").iterdir()] == ["1"]
    assert [p.name for p in result.output_base.iterdir()] == ["clf"]  # work dir removed
    assert (version / "assets.extra" / "tf_serving_warmup_requests").is_file()


def test_native_two_input_model_with_int_input(models: Any, run_cli: Any) -> None:
    result = run_cli(
        "--source", f"file://{models.two_input}", "--model-name", "two", "--precision", "NATIVE",
        "--model-version", "3", "--accuracy-check", "--warmup-records", "2",
    )  # fmt: skip
    assert result.code == 0, result.report
    inputs = {"a": np.ones((2, 4), np.float32), "b": np.array([1, 5], np.int64)}
    assert_same_outputs(models.two_input, result.output_base / "two" / "3", inputs)


def test_native_half_plus_two_tf_serving_testdata(
    half_plus_two: Path, run_cli: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """TF Serving's real TF1 model: numbered version dir, string-input signatures."""
    from tensorflow.python.platform import tf_logging  # noqa: PLC0415 - TF only where needed

    # TF emits the reference-variable warning with log_first_n, counted per process: an
    # earlier test loading the same model (tests/bench's server) would leave none to see.
    tf_logging._log_counter_per_token.clear()
    caplog.set_level(logging.INFO)
    result = run_cli(
        "--source", str(half_plus_two), "--model-name", "half_plus_two", "--precision", "NATIVE",
        "--accuracy-check",
    )  # fmt: skip
    assert result.code == 0, result.report
    messages = [record.getMessage() for record in caplog.records]
    # TF warned 20 times (5 TF1 reference variables x 4 signatures): one summary instead.
    reference = [m for m in messages if "reference variable" in m]
    assert len(reference) == 1, reference
    assert "a, a2, b, c, c2" in reference[0]
    # Every step is logged as started once ("step save: started" came three times).
    started = [m for m in messages if m.startswith("step ") and m.endswith(": started")]
    assert len(started) == len(set(started)), started
    assert "step save: started" in started
    # The source's version number is kept: a client asking for version 123 finds it.
    version = result.output_base / "half_plus_two" / "123"
    assert [p.name for p in (result.output_base / "half_plus_two").iterdir()] == ["123"]
    assert result.report["modelVersion"] == 123
    assert "half_plus_two/123" in result.report["message"]
    assert "version 123" in result.report["message"]
    source = half_plus_two / "00000123"
    # NATIVE re-saves unchanged: byte-identical files, every signature kept.
    for path in source.rglob("*"):
        if path.is_file():
            assert (version / path.relative_to(source)).read_bytes() == path.read_bytes()
    got = outputs_of(version, {"x": np.array([[1.0], [4.0]], np.float32)})
    np.testing.assert_allclose(got["y"], [[2.5], [4.0]])
    assert result.report["accuracy"]["passed"] is True


def test_half_plus_two_string_signature_skips_accuracy_and_warmup(
    half_plus_two: Path, run_cli: Any
) -> None:
    """regress_x_to_y takes serialized tf.Examples: no valid inputs can be invented."""
    result = run_cli(
        "--source", str(half_plus_two), "--model-name", "hp2", "--precision", "NATIVE",
        "--signature-key", "regress_x_to_y", "--accuracy-check", "--source-version", "123",
    )  # fmt: skip
    assert result.code == 0, result.report
    assert "accuracy" not in result.report
    assert "skipped" in result.report["message"]
    assert "strings" in result.report["message"]
    version = result.output_base / "hp2" / "123"
    assert (version / "saved_model.pb").is_file()
    assert not (version / "assets.extra").exists()


def test_native_from_http_tar_gz(
    models: Any, classifier_tarball: Path, http_root: Path, http_server: str, run_cli: Any
) -> None:
    shutil.copy(classifier_tarball, http_root / "classifier.tar.gz")
    result = run_cli(
        "--source", f"{http_server}/classifier.tar.gz", "--model-name", "clf",
        "--precision", "NATIVE",
    )  # fmt: skip
    assert result.code == 0, result.report
    # The archive holds classifier/7/: the version directory is found, taken and kept.
    assert_same_outputs(models.classifier, result.output_base / "clf" / "7", images())
    assert result.report["modelVersion"] == 7


def test_http_bearer_token(
    *,
    classifier_tarball: Path,
    http_root: Path,
    http_server: str,
    run_cli: Any,
    monkeypatch: pytest.MonkeyPatch,
    bearer_token: str,
) -> None:
    shutil.copy(classifier_tarball, http_root / "classifier.tar.gz")
    url = f"{http_server}/private/classifier.tar.gz"
    monkeypatch.delenv("TRT_CONVERT_HTTP_BEARER_TOKEN", raising=False)
    denied = run_cli("--source", url, "--model-name", "clf", "--precision", "NATIVE")
    assert (denied.code, denied.report["reason"]) == (11, "SourceAuthFailed")
    assert "TRT_CONVERT_HTTP_BEARER_TOKEN" in denied.report["message"]
    monkeypatch.setenv("TRT_CONVERT_HTTP_BEARER_TOKEN", bearer_token)
    allowed = run_cli("--source", url, "--model-name", "clf", "--precision", "NATIVE")
    assert allowed.code == 0, allowed.report


def test_http_missing_is_source_not_found(http_server: str, run_cli: Any) -> None:
    result = run_cli(
        "--source", f"{http_server}/nope.tar.gz", "--model-name", "m", "--precision", "NATIVE"
    )
    assert (result.code, result.report["reason"]) == (10, "SourceNotFound")
    assert not (result.output_base / "m").exists()


def _upload_tree(endpoint: str, bucket: str, root: Path, prefix: str) -> None:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    for path in root.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(root).as_posix()}")


def test_native_from_s3_directory_and_archive(
    models: Any, classifier_tarball: Path, s3_env: str, run_cli: Any
) -> None:
    _upload_tree(s3_env, "models", models.classifier, "classifier/5")
    result = run_cli(
        "--source", "s3://models/classifier", "--model-name", "clf", "--precision", "NATIVE",
    )  # fmt: skip
    assert result.code == 0, result.report
    assert_same_outputs(models.classifier, result.output_base / "clf" / "5", images())

    boto3.client("s3", endpoint_url=s3_env, region_name="us-east-1").upload_file(
        str(classifier_tarball), "models", "archives/classifier.tgz"
    )
    archived = run_cli(
        "--source", "s3://models/archives/classifier.tgz", "--model-name", "clf2",
        "--precision", "NATIVE", "--model-version", "2",
    )  # fmt: skip
    assert archived.code == 0, archived.report
    assert_same_outputs(models.classifier, archived.output_base / "clf2" / "2", images())

    missing = run_cli(
        "--source", "s3://models/absent", "--model-name", "x", "--precision", "NATIVE"
    )
    assert (missing.code, missing.report["reason"]) == (10, "SourceNotFound")


def test_s3_source_size_cap(models: Any, s3_env: str, run_cli: Any) -> None:
    _upload_tree(s3_env, "capped", models.classifier, "m")
    result = run_cli(
        "--source", "s3://capped/m", "--model-name", "m", "--precision", "NATIVE",
        "--max-source-bytes", "1000",
    )  # fmt: skip
    assert (result.code, result.report["reason"]) == (14, "SourceTooLarge")


def test_unsafe_archive_is_rejected_with_its_exit_code(tmp_path: Path, run_cli: Any) -> None:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("model/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../../etc"
        tar.addfile(info)
        data = tarfile.TarInfo("../escape.txt")
        data.size = 1
        tar.addfile(data, io.BytesIO(b"x"))
    result = run_cli("--source", str(archive), "--model-name", "m", "--precision", "NATIVE")
    assert (result.code, result.report["reason"]) == (13, "BadArchive")
    assert not (tmp_path / "escape.txt").exists()
    assert not (result.output_base / "m").exists()


def test_missing_signature_lists_existing_ones(models: Any, run_cli: Any) -> None:
    result = run_cli(
        "--source", str(models.without_default), "--model-name", "m", "--precision", "NATIVE"
    )
    assert (result.code, result.report["reason"]) == (21, "SignatureNotFound")
    assert "'serving_default' not found" in result.report["message"]
    assert "embed, predict" in result.report["message"]
    ok = run_cli(
        "--source", str(models.without_default), "--model-name", "m", "--precision", "NATIVE",
        "--signature-key", "predict",
    )  # fmt: skip
    assert ok.code == 0, ok.report


def test_not_a_saved_model(tmp_path: Path, run_cli: Any) -> None:
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "b").mkdir()
    result = run_cli(
        "--source", str(tmp_path / "empty"), "--model-name", "m", "--precision", "NATIVE"
    )
    assert (result.code, result.report["reason"]) == (20, "NotASavedModel")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a protobuf at all")
    result = run_cli("--source", str(broken), "--model-name", "m", "--precision", "NATIVE")
    assert (result.code, result.report["reason"]) == (20, "NotASavedModel")


def test_failure_midway_leaves_no_version_dir(
    models: Any, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the model was written to staging publishes nothing."""

    def broken_writer(version_dir: Path, records: Any) -> Path:
        (version_dir / "assets.extra").mkdir()
        (version_dir / "assets.extra" / "partial").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(warmup, "write_warmup", broken_writer)
    result = run_cli(
        "--source", str(models.classifier), "--model-name", "clf", "--precision", "NATIVE"
    )
    assert (result.code, result.report["reason"]) == (50, "OutputWriteFailed")
    assert "No space left" in result.report["message"]
    assert list((result.output_base / "clf").iterdir()) == []


def test_rerun_replaces_the_version_and_cleans_stale_staging(
    models: Any, tmp_path: Path, run_cli: Any
) -> None:
    base = tmp_path / "models"
    stale = base / "clf" / ".trt-convert-staging-1-deadbeef"
    stale.mkdir(parents=True)
    (base / "clf" / "1").mkdir()
    (base / "clf" / "1" / "old-file").write_text("old")
    result = run_cli(
        "--source", str(models.classifier), "--model-name", "clf", "--precision", "NATIVE",
        output_base=base,
    )  # fmt: skip
    assert result.code == 0, result.report
    assert sorted(p.name for p in (base / "clf").iterdir()) == ["1"]
    assert not (base / "clf" / "1" / "old-file").exists()
    assert (base / "clf" / "1" / "saved_model.pb").is_file()


def test_timeout_is_reported(models: Any, run_supervised: Any) -> None:
    result = run_supervised(
        "--source", str(models.classifier), "--model-name", "clf", "--precision", "NATIVE",
        "--timeout-seconds", "0.001",
    )  # fmt: skip
    assert (result.code, result.report["reason"]) == (60, "Timeout")
    assert not (result.output_base / "clf" / "1").exists()


def test_timeout_interrupts_a_stalled_download(http_server: str, run_supervised: Any) -> None:
    started = time.monotonic()
    result = run_supervised(
        "--source", f"{http_server}/slow/model.tar.gz", "--model-name", "m",
        "--precision", "NATIVE", "--timeout-seconds", "1.5",
    )  # fmt: skip
    assert (result.code, result.report["reason"]) == (60, "Timeout")
    assert "--timeout-seconds=1.5" in result.report["message"]
    assert time.monotonic() - started < 6  # well before the server would answer
    assert not (result.output_base / "m").exists()


def test_half_plus_two_string_signature_with_real_tf_examples(
    half_plus_two: Path, tmp_path: Path, run_cli: Any
) -> None:
    """Calibration data of serialized tf.Examples makes the gate and warmup possible."""
    examples = [
        tf.train.Example(
            features=tf.train.Features(
                feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=[v]))}
            )
        ).SerializeToString()
        for v in (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)
    ]
    data = tmp_path / "examples.tfrecord"
    with tf.io.TFRecordWriter(str(data)) as writer:
        for start in (0, 4):
            writer.write(tf.io.serialize_tensor(tf.constant(examples[start : start + 4])).numpy())
    result = run_cli(
        "--source", str(half_plus_two), "--model-name", "hp2", "--precision", "NATIVE",
        "--signature-key", "regress_x_to_y", "--accuracy-check", "--calibration-source",
        str(data), "--calibration-batch-size", "4", "--warmup-records", "1",
    )  # fmt: skip
    assert result.code == 0, result.report
    assert result.report["accuracy"] == {
        "passed": True,
        "samples": 8,
        "maxAbsError": 0.0,
        "maxRelError": 0.0,
    }
    warmup = result.output_base / "hp2" / "123" / "assets.extra" / "tf_serving_warmup_requests"
    (record,) = list(tf.data.TFRecordDataset(str(warmup)))
    request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
    assert request.model_spec.signature_name == "regress_x_to_y"
    assert list(request.inputs["inputs"].string_val) == examples[:4]
