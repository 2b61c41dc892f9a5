"""Request inputs: the signature's input specs, their shapes, and the arrays sent.

Everything here works on numpy and the generated TF protos only (no TensorFlow runtime):
a TensorProto of a numeric array is its dtype, its shape and the array's little-endian
bytes in `tensor_content`, exactly what `tf.make_tensor_proto` produces for them (the
tests compare both).
"""

from __future__ import annotations

import base64
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trtserve_bench.errors import InvalidInputs, SignatureNotFound

# TF DataType enum name -> numpy dtype; strings are object arrays of bytes.
NUMPY_DTYPES: dict[str, Any] = {
    "DT_FLOAT": np.dtype("<f4"),
    "DT_DOUBLE": np.dtype("<f8"),
    "DT_HALF": np.dtype("<f2"),
    "DT_INT8": np.dtype("i1"),
    "DT_INT16": np.dtype("<i2"),
    "DT_INT32": np.dtype("<i4"),
    "DT_INT64": np.dtype("<i8"),
    "DT_UINT8": np.dtype("u1"),
    "DT_UINT16": np.dtype("<u2"),
    "DT_UINT32": np.dtype("<u4"),
    "DT_UINT64": np.dtype("<u8"),
    "DT_BOOL": np.dtype("?"),
    "DT_STRING": np.dtype(object),
}
EMPTY_EXAMPLE = b""  # a valid serialized, empty tf.train.Example

Shape = tuple[int, ...]
Arrays = dict[str, Any]  # input name -> numpy array


@dataclass(frozen=True)
class InputSpec:
    """One signature input: its dtype name (`DT_FLOAT`) and dims (None = unknown)."""

    name: str
    dtype: str
    dims: tuple[int | None, ...] | None  # None: unknown rank

    def describe(self) -> str:
        dims = (
            "?" if self.dims is None else "x".join("?" if d is None else str(d) for d in self.dims)
        )
        return f"{self.name}: {self.dtype} [{dims}]"


def signature_inputs(
    signature_defs: Mapping[str, Any], signature_key: str, types_pb2: Any
) -> dict[str, InputSpec]:
    """The input specs of one SignatureDef of a SignatureDefMap's `signature_def` map."""
    if signature_key not in signature_defs:
        existing = ", ".join(sorted(signature_defs)) or "none"
        raise SignatureNotFound(
            f"signature {signature_key!r} not found (the model has: {existing}): "
            "set --signature-key"
        )
    specs = {}
    for name, info in sorted(signature_defs[signature_key].inputs.items()):
        shape = info.tensor_shape
        dims = (
            None
            if shape.unknown_rank
            else tuple(dim.size if dim.size >= 0 else None for dim in shape.dim)
        )
        specs[name] = InputSpec(name, types_pb2.DataType.Name(info.dtype), dims)
    return specs


def _check_shape(spec: InputSpec, shape: Shape, origin: str) -> None:
    if spec.dims is None:
        return
    if len(shape) != len(spec.dims) or any(
        want is not None and want != got for want, got in zip(spec.dims, shape, strict=False)
    ):
        raise InvalidInputs(
            f"{origin} gives input {spec.name!r} the shape {'x'.join(map(str, shape)) or '()'}, "
            f"the signature declares {spec.describe()}: fix {origin}"
        )


def resolve_shapes(
    specs: Mapping[str, InputSpec], overrides: Mapping[str, Shape], unknown_dim: int
) -> dict[str, Shape]:
    """Each input's shape: `--shape` where given, else the signature's, unknown dims set."""
    unknown = sorted(set(overrides) - set(specs))
    if unknown:
        raise InvalidInputs(
            f"--shape names {', '.join(unknown)}, not inputs of the signature "
            f"({', '.join(specs) or 'none'}): fix --shape"
        )
    shapes = {}
    for name, spec in specs.items():
        if name in overrides:
            _check_shape(spec, overrides[name], "--shape")
            shapes[name] = overrides[name]
        elif spec.dims is None:
            raise InvalidInputs(
                f"input {name!r} has an unknown rank: give its shape with --shape {name}=DIMS "
                "(e.g. 1x224x224x3) or its data with --inputs"
            )
        else:
            shapes[name] = tuple(unknown_dim if dim is None else dim for dim in spec.dims)
    return shapes


def numpy_dtype(spec: InputSpec) -> Any:
    try:
        return NUMPY_DTYPES[spec.dtype]
    except KeyError:
        raise InvalidInputs(
            f"input {spec.name!r} has dtype {spec.dtype}, which trt-bench cannot generate: "
            f"supported are {', '.join(NUMPY_DTYPES)}"
        ) from None


def random_inputs(specs: Mapping[str, InputSpec], shapes: Mapping[str, Shape], seed: int) -> Arrays:
    """Seeded random inputs any model accepts: normal floats, 0/1 integers and booleans,
    empty serialized tf.Examples for strings."""
    rng = np.random.default_rng(seed)
    arrays: Arrays = {}
    for name, spec in specs.items():
        dtype, shape = numpy_dtype(spec), shapes[name]
        if spec.dtype == "DT_STRING":
            arrays[name] = np.full(shape, EMPTY_EXAMPLE, dtype=object)
        elif dtype.kind == "f":
            arrays[name] = rng.standard_normal(shape).astype(dtype)
        else:
            arrays[name] = rng.integers(0, 2, size=shape).astype(dtype)
    return arrays


def load_npz(path: Path, specs: Mapping[str, InputSpec]) -> Arrays:
    """One array per signature input from an .npz, cast to the declared dtypes."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            loaded = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise InvalidInputs(
            f"--inputs {str(path)!r} is not a readable .npz ({error}): write it with "
            "numpy.savez(path, input_name=array, ...)"
        ) from None
    missing, extra = sorted(set(specs) - set(loaded)), sorted(set(loaded) - set(specs))
    if missing or extra:
        raise InvalidInputs(
            f"--inputs {str(path)!r} holds {', '.join(sorted(loaded)) or 'no arrays'}, the "
            f"signature's inputs are {', '.join(specs)}: store exactly one array per input"
        )
    arrays: Arrays = {}
    for name, spec in specs.items():
        array = loaded[name]
        if spec.dtype == "DT_STRING":
            if array.dtype.kind not in "SU":
                raise InvalidInputs(
                    f"--inputs array {name!r} has dtype {array.dtype}, input {name!r} is "
                    "DT_STRING: store bytes (numpy dtype S)"
                )
            array = np.vectorize(
                lambda item: item if isinstance(item, bytes) else str(item).encode(),
                otypes=[object],
            )(array)
        else:
            dtype = numpy_dtype(spec)
            if not np.can_cast(array.dtype, dtype, casting="same_kind"):
                raise InvalidInputs(
                    f"--inputs array {name!r} has dtype {array.dtype}, input {name!r} is "
                    f"{spec.dtype}: store it as {dtype.name}"
                )
            array = np.ascontiguousarray(array.astype(dtype, copy=False))
        _check_shape(spec, array.shape, f"--inputs array {name!r}")
        arrays[name] = array
    return arrays


def check_compatible(
    target: Mapping[str, InputSpec], baseline: Mapping[str, InputSpec], shapes: Mapping[str, Shape]
) -> None:
    """The baseline must accept the target's inputs (same names and dtypes, shapes fit)."""
    if set(target) != set(baseline):
        raise InvalidInputs(
            f"the baseline's signature has inputs {', '.join(baseline) or 'none'}, the "
            f"target's {', '.join(target)}: compare two versions of the same model"
        )
    for name, spec in baseline.items():
        if spec.dtype != target[name].dtype:
            raise InvalidInputs(
                f"input {name!r} is {target[name].dtype} at the target, {spec.dtype} at the "
                "baseline: compare two versions of the same model"
            )
        _check_shape(spec, shapes[name], "the target's inputs (at the baseline)")


def tensor_proto(array: Any, spec: InputSpec, tensor_pb2: Any, types_pb2: Any) -> Any:
    """A TensorProto of `array` (dtype, shape, little-endian bytes / string_val)."""
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DataType.Value(spec.dtype))
    for size in np.shape(array):
        proto.tensor_shape.dim.add(size=int(size))
    if spec.dtype == "DT_STRING":
        proto.string_val.extend(np.asarray(array, dtype=object).ravel().tolist())
    else:
        dtype = numpy_dtype(spec)
        proto.tensor_content = np.ascontiguousarray(array, dtype=dtype).tobytes()
    return proto


def predict_request(
    arrays: Mapping[str, Any],
    specs: Mapping[str, InputSpec],
    model_name: str,
    signature_key: str,
    protos: Any,
) -> Any:
    """The PredictRequest sent at every gRPC call."""
    request = protos.predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_key
    for name, array in arrays.items():
        request.inputs[name].CopyFrom(
            tensor_proto(array, specs[name], protos.tensor_pb2, protos.types_pb2)
        )
    return request


def _json_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    return value


def rest_body(arrays: Mapping[str, Any], signature_key: str) -> dict[str, Any]:
    """The body of TF Serving's REST predict in the columnar ("inputs") format."""
    return {
        "signature_name": signature_key,
        "inputs": {name: _json_value(np.asarray(a).tolist()) for name, a in arrays.items()},
    }
