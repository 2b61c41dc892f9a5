"""INT8 calibration data: .npz/.npy files or a TFRecord of serialized tensors.

- `.npz`: one array per signature input name (a single-input model may use any key);
  the leading dimension indexes samples.
- `.npy`: one array, single-input models only.
- anything else is read as a TFRecord file whose records are `tf.io.serialize_tensor`
  outputs, each one sample or one batch (single-input models only).
"""

# TensorFlow and the transports are imported lazily: --help, argument errors and a
# TF-less failure path must stay fast and never import TensorFlow.
# ruff: noqa: PLC0415

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from trtserve_converter.config import BuildShape
from trtserve_converter.errors import CalibrationFailed, summarize
from trtserve_converter.inputs import InputBatch, numpy_dtype, random_batch, with_batch_size
from trtserve_converter.savedmodel import TensorInfo

LOG = logging.getLogger(__name__)


def _single_input(specs: dict[str, TensorInfo], kind: str) -> TensorInfo:
    if len(specs) != 1:
        raise CalibrationFailed(
            f"{kind} calibration data holds one array but the signature has inputs "
            f"{sorted(specs)}: use an .npz with one array per input name"
        )
    return next(iter(specs.values()))


def load_calibration_arrays(path: Path, specs: dict[str, TensorInfo]) -> dict[str, Any]:
    """Read the calibration file into input name -> array (samples first), checked."""
    try:
        raw = _read(path, specs)
    except CalibrationFailed:
        raise
    except Exception as error:
        raise CalibrationFailed(
            f"cannot read calibration data {path.name} ({summarize(error, 200)}): use .npz, "
            ".npy or a TFRecord of serialized tensors"
        ) from error
    return {name: _checked(specs[name], array) for name, array in raw.items()}


def _read(path: Path, specs: dict[str, TensorInfo]) -> dict[str, Any]:
    with path.open("rb") as handle:
        head = handle.read(6)
    if head.startswith(b"PK"):  # .npz is a zip of .npy files
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        if set(specs) <= set(arrays):
            return {name: arrays[name] for name in specs}
        if len(specs) == 1 and len(arrays) == 1:
            return {next(iter(specs)): next(iter(arrays.values()))}
        raise CalibrationFailed(
            f"calibration .npz has arrays {sorted(arrays)} but the signature's inputs are "
            f"{sorted(specs)}: name one array per input"
        )
    if head.startswith(b"\x93NUMPY"):
        spec = _single_input(specs, ".npy")
        return {spec.name: np.load(path, allow_pickle=False)}
    if zipfile.is_zipfile(path):
        raise CalibrationFailed(f"{path.name} is a zip but not an .npz")
    spec = _single_input(specs, "TFRecord")
    return {spec.name: _read_tfrecord(path, spec)}


def _read_tfrecord(path: Path, spec: TensorInfo) -> Any:
    import tensorflow as tf

    rank = None if spec.shape is None else len(spec.shape)
    rows = []
    for record in tf.data.TFRecordDataset(str(path)):
        value = tf.io.parse_tensor(record, out_type=tf.dtypes.as_dtype(spec.dtype)).numpy()
        if rank is not None and value.ndim == rank - 1:
            value = value[np.newaxis, ...]  # one sample -> a batch of one
        rows.append(value)
    if not rows:
        raise CalibrationFailed(f"calibration TFRecord {path.name} has no records")
    return np.concatenate(rows, axis=0)


def _checked(spec: TensorInfo, array: Any) -> Any:
    array = np.asarray(array)
    if spec.shape is not None:
        if array.ndim != len(spec.shape):
            raise CalibrationFailed(
                f"calibration data for {spec.name!r} has shape {list(array.shape)}, the "
                f"signature expects rank {len(spec.shape)} ({list(spec.shape)})"
            )
        for index, (got, want) in enumerate(zip(array.shape, spec.shape, strict=True)):
            if index > 0 and want is not None and got != want:
                raise CalibrationFailed(
                    f"calibration data for {spec.name!r} has shape {list(array.shape)}, "
                    f"dimension {index} must be {want}"
                )
    if spec.is_string and array.dtype.kind in "SU":
        raise CalibrationFailed(
            f"calibration data for string input {spec.name!r} is a fixed-width numpy array, "
            "which drops trailing NUL bytes of serialized protos: use a TFRecord of "
            "tf.io.serialize_tensor(string tensor) records"
        )
    if array.shape[:1] == (0,):
        raise CalibrationFailed(f"calibration data for {spec.name!r} is empty")
    target = numpy_dtype(spec.dtype)
    if array.dtype != target:
        if not np.can_cast(array.dtype, target, casting="same_kind"):
            raise CalibrationFailed(
                f"calibration data for {spec.name!r} is {array.dtype}, the signature "
                f"expects {spec.dtype}"
            )
        array = array.astype(target)
    return array


def calibration_batches(arrays: dict[str, Any], batch_size: int, batches: int) -> list[InputBatch]:
    """Consecutive batches of `batch_size` samples, at most `batches` of them."""
    samples = min(len(array) for array in arrays.values())
    available = samples // batch_size
    if available == 0:
        raise CalibrationFailed(
            f"calibration data has {samples} samples, fewer than one batch of {batch_size}: "
            "lower --calibration-batch-size or add data"
        )
    if available < batches:
        LOG.warning(
            "calibration data covers %d batches of %d, not the %d requested",
            available,
            batch_size,
            batches,
        )
    count = min(available, batches)
    return [
        {name: array[i * batch_size : (i + 1) * batch_size] for name, array in arrays.items()}
        for i in range(count)
    ]


def synthetic_batches(
    specs: dict[str, TensorInfo], shape: BuildShape, batch_size: int, batches: int, seed: int
) -> list[InputBatch]:
    """Seeded random calibration batches (explicitly requested; logged as a warning)."""
    LOG.warning(
        "INT8 calibration on SYNTHETIC random inputs (--synthetic-calibration): the "
        "quantization ranges will not reflect real data and accuracy may suffer"
    )
    rng = np.random.default_rng(seed)
    batch_shape = with_batch_size(shape, batch_size)
    return [random_batch(specs, batch_shape, rng) for _ in range(batches)]
