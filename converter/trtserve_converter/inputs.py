"""Input generators: seeded random tensors of the signature's dtypes and shapes."""

# TensorFlow and the transports are imported lazily: --help, argument errors and a
# TF-less failure path must stay fast and never import TensorFlow.
# ruff: noqa: PLC0415

from __future__ import annotations

from typing import Any

import numpy as np

from trtserve_converter.config import BuildShape
from trtserve_converter.savedmodel import TensorInfo

InputBatch = dict[str, Any]  # input name -> numpy array (or bytes array for strings)
EMPTY_EXAMPLE = b""  # a valid serialized, empty tf.train.Example


def numpy_dtype(dtype: str) -> Any:
    """numpy dtype of a TF dtype name; strings map to object arrays of bytes."""
    if dtype == "string":
        return np.dtype(object)
    import tensorflow as tf

    return np.dtype(tf.dtypes.as_dtype(dtype).as_numpy_dtype)


def random_array(dtype: str, shape: tuple[int, ...], rng: np.random.Generator) -> Any:
    """Random values that any model accepts: normal floats, 0/1 integers, booleans.

    Strings are empty serialized tf.Examples (only used for engine building).
    """
    if dtype == "string":
        return np.full(shape, EMPTY_EXAMPLE, dtype=object)
    np_dtype = numpy_dtype(dtype)
    if np.issubdtype(np_dtype, np.floating):
        return rng.standard_normal(shape).astype(np_dtype)
    if np.issubdtype(np_dtype, np.integer):
        return rng.integers(0, 2, size=shape).astype(np_dtype)
    if np_dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    raise ValueError(f"cannot generate inputs of dtype {dtype}")


def random_batch(
    specs: dict[str, TensorInfo], shape: BuildShape, rng: np.random.Generator
) -> InputBatch:
    """One input per signature tensor, with the given build shape."""
    return {name: random_array(specs[name].dtype, dims, rng) for name, dims in shape.items()}


def with_batch_size(shape: BuildShape, batch_size: int) -> BuildShape:
    """The shape with its leading (batch) dimension replaced, scalars left alone."""
    return {name: (batch_size, *dims[1:]) if dims else dims for name, dims in shape.items()}


def build_inputs(
    specs: dict[str, TensorInfo], shapes: list[BuildShape], seed: int
) -> list[InputBatch]:
    """One random input per build shape, for TF-TRT's build(input_fn)."""
    rng = np.random.default_rng(seed)
    return [random_batch(specs, shape, rng) for shape in shapes]


def batch_rows(batch: InputBatch) -> int:
    """Rows (leading dimension) of an input batch; 1 for scalars."""
    sizes = {np.shape(value)[0] if np.ndim(value) else 1 for value in batch.values()}
    return min(sizes) if sizes else 0


def to_tensors(batch: InputBatch) -> dict[str, Any]:
    """Keyword arguments for a signature function."""
    import tensorflow as tf

    return {
        name: tf.constant(value, dtype=tf.string)
        if np.asarray(value).dtype == object
        else tf.constant(value)
        for name, value in batch.items()
    }
