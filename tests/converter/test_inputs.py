"""Build, calibration and accuracy input generators: dtypes and shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from trtserve_converter.calibration import (
    calibration_batches,
    load_calibration_arrays,
    synthetic_batches,
)
from trtserve_converter.errors import CalibrationFailed
from trtserve_converter.inputs import build_inputs, to_tensors
from trtserve_converter.savedmodel import TensorInfo

pytestmark = pytest.mark.tf

SPECS = {
    "a": TensorInfo("a", "float32", (None, 4)),
    "b": TensorInfo("b", "int64", (None,)),
    "flag": TensorInfo("flag", "bool", (None, 2)),
    "half": TensorInfo("half", "float16", (None, 3)),
}
IMAGE = {"images": TensorInfo("images", "float32", (None, 8, 8, 3))}


def test_build_inputs_follow_every_build_shape() -> None:
    shapes = [
        {"a": (1, 4), "b": (1,), "flag": (1, 2), "half": (1, 3)},
        {"a": (16, 4), "b": (16,), "flag": (16, 2), "half": (16, 3)},
    ]
    batches = build_inputs(SPECS, shapes, seed=3)
    assert len(batches) == 2
    for batch, shape in zip(batches, shapes, strict=True):
        assert {name: value.shape for name, value in batch.items()} == shape
        assert batch["a"].dtype == np.float32
        assert batch["b"].dtype == np.int64
        assert batch["flag"].dtype == np.bool_
        assert batch["half"].dtype == np.float16
    again = build_inputs(SPECS, shapes, seed=3)
    np.testing.assert_array_equal(again[1]["a"], batches[1]["a"])  # seeded
    tensors = to_tensors(batches[0])
    assert tensors["b"].dtype == tf.int64
    assert tensors["half"].dtype == tf.float16


def test_string_inputs_are_serialized_empty_examples() -> None:
    specs = {"inputs": TensorInfo("inputs", "string", None)}
    (batch,) = build_inputs(specs, [{"inputs": (2,)}], seed=0)
    tensor = to_tensors(batch)["inputs"]
    assert tensor.dtype == tf.string
    parsed = tf.io.parse_example(tensor, {"x": tf.io.FixedLenFeature([1], tf.float32, [0.0])})
    assert parsed["x"].shape == (2, 1)


def test_synthetic_calibration_batches(caplog: pytest.LogCaptureFixture) -> None:
    batches = synthetic_batches(IMAGE, {"images": (1, 8, 8, 3)}, batch_size=4, batches=3, seed=0)
    assert len(batches) == 3
    assert all(b["images"].shape == (4, 8, 8, 3) for b in batches)
    assert all(b["images"].dtype == np.float32 for b in batches)
    assert "SYNTHETIC" in caplog.text


def test_npz_calibration_is_checked_cast_and_batched(tmp_path: Path) -> None:
    path = tmp_path / "cal.npz"
    np.savez(path, images=np.zeros((10, 8, 8, 3), np.float64))
    arrays = load_calibration_arrays(path, IMAGE)
    assert arrays["images"].dtype == np.float32
    batches = calibration_batches(arrays, batch_size=4, batches=10)
    assert [b["images"].shape for b in batches] == [(4, 8, 8, 3), (4, 8, 8, 3)]


def test_npz_for_two_inputs_needs_their_names(tmp_path: Path) -> None:
    specs = {k: SPECS[k] for k in ("a", "b")}
    good = tmp_path / "good.npz"
    np.savez(good, a=np.ones((3, 4), np.float32), b=np.arange(3))
    arrays = load_calibration_arrays(good, specs)
    assert arrays["b"].dtype == np.int64
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.ones((3, 4), np.float32))
    with pytest.raises(CalibrationFailed, match=r"arrays \['x'\]"):
        load_calibration_arrays(bad, specs)


def test_npy_and_tfrecord_calibration(tmp_path: Path) -> None:
    npy = tmp_path / "cal.npy"
    np.save(npy, np.ones((5, 8, 8, 3), np.float32))
    assert load_calibration_arrays(npy, IMAGE)["images"].shape == (5, 8, 8, 3)

    record_file = tmp_path / "cal.tfrecord"
    with tf.io.TFRecordWriter(str(record_file)) as writer:
        writer.write(tf.io.serialize_tensor(tf.ones((8, 8, 3))).numpy())  # one sample
        writer.write(tf.io.serialize_tensor(tf.zeros((2, 8, 8, 3))).numpy())  # a batch
    arrays = load_calibration_arrays(record_file, IMAGE)
    assert arrays["images"].shape == (3, 8, 8, 3)
    assert arrays["images"].dtype == np.float32


@pytest.mark.parametrize(
    ("array", "fragment"),
    [
        (np.ones((5, 8, 8), np.float32), "rank 4"),
        (np.ones((5, 8, 8, 4), np.float32), "dimension 3 must be 3"),
        (np.ones((0, 8, 8, 3), np.float32), "empty"),
        (np.array([["a"]]), "rank 4"),
    ],
)
def test_bad_calibration_arrays(tmp_path: Path, array: Any, fragment: str) -> None:
    path = tmp_path / "cal.npy"
    np.save(path, array)
    with pytest.raises(CalibrationFailed, match=fragment):
        load_calibration_arrays(path, IMAGE)


def test_float_data_for_int_input_and_unreadable_files(tmp_path: Path) -> None:
    path = tmp_path / "cal.npy"
    np.save(path, np.ones((4,), np.float32))
    with pytest.raises(CalibrationFailed, match="expects int64"):
        load_calibration_arrays(path, {"b": SPECS["b"]})
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(CalibrationFailed, match="cannot read"):
        load_calibration_arrays(junk, IMAGE)
    with pytest.raises(CalibrationFailed, match="one array"):
        load_calibration_arrays(path, {k: SPECS[k] for k in ("a", "b")})


def test_too_few_samples_for_one_batch(tmp_path: Path) -> None:
    with pytest.raises(CalibrationFailed, match="fewer than one batch"):
        calibration_batches({"images": np.ones((3, 8, 8, 3), np.float32)}, 8, 10)


def test_fixed_width_bytes_are_rejected_for_string_inputs(tmp_path: Path) -> None:
    """numpy 'S' arrays drop trailing NUL bytes: serialized protos would be corrupted."""
    path = tmp_path / "cal.npy"
    np.save(path, np.array([b"\x08\x00", b"\x10\x00"]))
    assert np.load(path)[0] == b"\x08"  # the reason: the NUL byte is gone
    with pytest.raises(CalibrationFailed, match="TFRecord"):
        load_calibration_arrays(path, {"inputs": TensorInfo("inputs", "string", None)})
