"""TensorFlow Serving's own API protos, loaded without starting TensorFlow.

`tensorflow_serving.apis.*_pb2` import `tensorflow.core.framework.tensor_pb2` and its
siblings, and importing any `tensorflow.*` module runs `tensorflow/__init__.py` first:
the whole runtime, about 4-5 s and 400 MB of memory, for a process that only needs the
generated message classes (measured with TF 2.17.1 on the CI machine: 0.16 s and ~70 MB
this way). When TensorFlow is not imported yet, the `tensorflow` package is therefore
stood in for by an empty package object with the real package's path while TF Serving's
modules load, so Python finds the generated `tensorflow/core/**/_pb2.py` files without
executing `tensorflow/__init__.py`; the stand-in is removed again afterwards, so a later
`import tensorflow` loads the real package. When TensorFlow is already imported (e.g.
in-process tests), the ordinary import is used.

The services come from the generated `*_pb2_grpc` stubs only: `prediction_service_pb2`
and `model_service_pb2` of tensorflow-serving-api 2.17.1 do not import under protobuf 4's
upb backend (they assign the read-only `FileDescriptor.has_options`), and the stubs do
not need them.
"""

# The protos are imported lazily, on first use: --help and argument errors stay instant.
# ruff: noqa: PLC0415

from __future__ import annotations

import importlib.util
import sys
import threading
import types
from dataclasses import dataclass
from typing import Any

from trtserve_bench.errors import InternalError

_LOCK = threading.Lock()
_LOADED: Protos | None = None


@dataclass(frozen=True)
class Protos:
    """The generated modules trt-bench uses."""

    predict_pb2: Any
    get_model_metadata_pb2: Any
    get_model_status_pb2: Any
    model_pb2: Any
    prediction_service_pb2_grpc: Any
    model_service_pb2_grpc: Any
    tensor_pb2: Any
    tensor_shape_pb2: Any
    types_pb2: Any
    meta_graph_pb2: Any


def _import_all() -> Protos:
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow.core.protobuf import meta_graph_pb2
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    return Protos(
        predict_pb2=predict_pb2,
        get_model_metadata_pb2=get_model_metadata_pb2,
        get_model_status_pb2=get_model_status_pb2,
        model_pb2=model_pb2,
        prediction_service_pb2_grpc=prediction_service_pb2_grpc,
        model_service_pb2_grpc=model_service_pb2_grpc,
        tensor_pb2=tensor_pb2,
        tensor_shape_pb2=tensor_shape_pb2,
        types_pb2=types_pb2,
        meta_graph_pb2=meta_graph_pb2,
    )


def _import_without_tensorflow_runtime() -> Protos:
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise InternalError(
            "the tensorflow package (its generated protos) is not installed: run trt-bench "
            "in the converter image, or pip install tensorflow-cpu==2.17.1 and "
            "tensorflow-serving-api==2.17.1 --no-deps"
        )
    stand_in = types.ModuleType("tensorflow")
    stand_in.__path__ = list(spec.submodule_search_locations)
    stand_in.__spec__ = spec
    sys.modules["tensorflow"] = stand_in
    try:
        return _import_all()
    finally:
        if sys.modules.get("tensorflow") is stand_in:
            del sys.modules["tensorflow"]


def load() -> Protos:
    """The protos (imported once per process)."""
    global _LOADED  # noqa: PLW0603 - a process-wide import cache, like sys.modules
    with _LOCK:
        if _LOADED is None:
            try:
                _LOADED = (
                    _import_all()
                    if "tensorflow" in sys.modules
                    else _import_without_tensorflow_runtime()
                )
            except ImportError as error:
                raise InternalError(
                    f"cannot import TensorFlow Serving's API protos ({error}): install "
                    "tensorflow-serving-api==2.17.1 (with --no-deps, docs/versions.md)"
                ) from None
        return _LOADED
