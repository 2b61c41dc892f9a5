"""Inputs: shapes from the signature and --shape, .npz files, and TensorProtos built
without TensorFlow that TensorFlow reads back identically."""

# ruff: noqa: PLC0415

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from trtserve_bench import protos
from trtserve_bench.errors import InvalidInputs, SignatureNotFound
from trtserve_bench.inputs import (
    NUMPY_DTYPES,
    InputSpec,
    check_compatible,
    load_npz,
    random_inputs,
    resolve_shapes,
    rest_body,
    signature_inputs,
    tensor_proto,
)

from .testdata import HALF_PLUS_TWO

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE = InputSpec("image", "DT_FLOAT", (None, 224, 224, 3))
IDS = InputSpec("ids", "DT_INT64", (None, None))
SPECS = {"image": IMAGE, "ids": IDS}


def test_unknown_dims_take_the_flag_value() -> None:
    assert resolve_shapes(SPECS, {}, 1) == {"image": (1, 224, 224, 3), "ids": (1, 1)}
    assert resolve_shapes(SPECS, {}, 8) == {"image": (8, 224, 224, 3), "ids": (8, 8)}


def test_shape_overrides_must_agree_with_the_signature() -> None:
    shapes = resolve_shapes(SPECS, {"image": (32, 224, 224, 3), "ids": (32, 7)}, 1)
    assert shapes == {"image": (32, 224, 224, 3), "ids": (32, 7)}
    with pytest.raises(InvalidInputs, match=r"'image' the shape 1x100x100x3.*\[\?x224x224x3\]"):
        resolve_shapes(SPECS, {"image": (1, 100, 100, 3)}, 1)
    with pytest.raises(InvalidInputs, match=r"rank|shape"):
        resolve_shapes(SPECS, {"ids": (1, 2, 3)}, 1)
    with pytest.raises(InvalidInputs, match="--shape names nope, not inputs"):
        resolve_shapes(SPECS, {"nope": (1,)}, 1)


def test_unknown_rank_needs_a_shape() -> None:
    specs = {"inputs": InputSpec("inputs", "DT_STRING", None)}
    with pytest.raises(InvalidInputs, match="unknown rank: give its shape with --shape inputs="):
        resolve_shapes(specs, {}, 1)
    assert resolve_shapes(specs, {"inputs": (4,)}, 1) == {"inputs": (4,)}


def test_random_inputs_have_the_declared_dtypes_and_are_seeded() -> None:
    specs = {name.lower(): InputSpec(name.lower(), name, (2, 3)) for name in NUMPY_DTYPES}
    shapes = resolve_shapes(specs, {}, 1)
    first, again = random_inputs(specs, shapes, 7), random_inputs(specs, shapes, 7)
    for name, spec in specs.items():
        assert first[name].shape == (2, 3)
        assert first[name].dtype == NUMPY_DTYPES[spec.dtype]
        np.testing.assert_array_equal(first[name], again[name])
    assert first["dt_string"].ravel().tolist() == [b""] * 6


def test_unsupported_dtype_is_named() -> None:
    spec = {"v": InputSpec("v", "DT_VARIANT", (1,))}
    with pytest.raises(InvalidInputs, match="DT_VARIANT, which trt-bench cannot generate"):
        random_inputs(spec, {"v": (1,)}, 0)


def test_npz_inputs(tmp_path: Path) -> None:
    path = tmp_path / "inputs.npz"
    np.savez(path, image=np.zeros((2, 224, 224, 3), np.float64), ids=np.ones((2, 5), np.int32))
    arrays = load_npz(path, SPECS)
    assert arrays["image"].dtype == np.float32
    assert arrays["image"].shape == (2, 224, 224, 3)
    assert arrays["ids"].dtype == np.int64
    np.savez(path, image=np.zeros((2, 224, 224, 3), np.float32))
    with pytest.raises(InvalidInputs, match="holds image, the signature's inputs are image, ids"):
        load_npz(path, SPECS)
    np.savez(path, image=np.zeros((2, 224, 224, 3), np.float32), ids=np.ones((2, 5), np.float32))
    with pytest.raises(InvalidInputs, match="'ids' has dtype float32, input 'ids' is DT_INT64"):
        load_npz(path, SPECS)
    np.savez(path, image=np.zeros((2, 10, 10, 3), np.float32), ids=np.ones((2, 5), np.int64))
    with pytest.raises(InvalidInputs, match="--inputs array 'image'"):
        load_npz(path, SPECS)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(InvalidInputs, match=r"not a readable \.npz"):
        load_npz(tmp_path / "bad.npz", SPECS)


def test_the_baseline_must_accept_the_targets_inputs() -> None:
    shapes = {"image": (1, 224, 224, 3), "ids": (1, 1)}
    check_compatible(SPECS, SPECS, shapes)
    with pytest.raises(InvalidInputs, match="baseline's signature has inputs"):
        check_compatible(SPECS, {"image": IMAGE}, shapes)
    half = {"image": InputSpec("image", "DT_HALF", IMAGE.dims), "ids": IDS}
    with pytest.raises(InvalidInputs, match="DT_FLOAT at the target, DT_HALF at the baseline"):
        check_compatible(SPECS, half, shapes)


def test_rest_body_is_columnar_with_base64_strings() -> None:
    body = rest_body(
        {"x": np.array([[1.5], [2.0]], np.float32), "s": np.array([b"\x00a"], dtype=object)},
        "serving_default",
    )
    assert json.loads(json.dumps(body)) == {
        "signature_name": "serving_default",
        "inputs": {"x": [[1.5], [2.0]], "s": [{"b64": base64.b64encode(b"\x00a").decode()}]},
    }


@pytest.mark.tf
@pytest.mark.parametrize("dtype", sorted(NUMPY_DTYPES))
def test_tensor_proto_matches_tensorflow(dtype: str) -> None:
    import tensorflow as tf

    loaded = protos.load()
    spec = InputSpec("x", dtype, (2, 3))
    array = random_inputs({"x": spec}, {"x": (2, 3)}, 3)["x"]
    if dtype == "DT_STRING":
        array = np.array([[b"a", b"", b"\xff"], [b"x" * 300, b"b", b"c"]], dtype=object)
    proto = tensor_proto(array, spec, loaded.tensor_pb2, loaded.types_pb2)
    assert isinstance(proto, tf.make_tensor_proto(array).__class__)
    expected = tf.make_tensor_proto(array)  # what TensorFlow itself would send
    assert proto.dtype == expected.dtype
    assert proto.tensor_shape == expected.tensor_shape
    back = tf.make_ndarray(proto)
    assert back.shape == (2, 3)
    np.testing.assert_array_equal(back, array)


@pytest.mark.tf
def test_signature_of_a_real_signature_def_map() -> None:
    if not (HALF_PLUS_TWO / "saved_model.pb").is_file():
        pytest.skip(f"TF Serving test data not found at {HALF_PLUS_TWO}")
    from tensorflow.core.protobuf import saved_model_pb2

    loaded = protos.load()
    saved = saved_model_pb2.SavedModel.FromString((HALF_PLUS_TWO / "saved_model.pb").read_bytes())
    defs = saved.meta_graphs[0].signature_def
    assert signature_inputs(defs, "serving_default", loaded.types_pb2) == {
        "x": InputSpec("x", "DT_FLOAT", (None, 1))
    }
    assert signature_inputs(defs, "classify_x_to_y", loaded.types_pb2) == {
        "inputs": InputSpec("inputs", "DT_STRING", None)
    }
    with pytest.raises(
        SignatureNotFound,
        match=r"'nope' not found \(the model has: classify_x_to_y, .*serving_default",
    ):
        signature_inputs(defs, "nope", loaded.types_pb2)


@pytest.mark.tf
def test_protos_load_without_starting_tensorflow() -> None:
    """In a fresh process: the protos load in well under a second without TensorFlow's
    runtime, and a later `import tensorflow` still works and shares the proto classes."""
    script = (
        "import sys, time\n"
        "start = time.perf_counter()\n"
        "from trtserve_bench import protos\n"
        "loaded = protos.load()\n"
        "seconds = time.perf_counter() - start\n"
        "assert 'tensorflow.python' not in sys.modules, 'the TF runtime was imported'\n"
        "assert 'tensorflow' not in sys.modules\n"
        "request = loaded.predict_pb2.PredictRequest()\n"
        "request.inputs['x'].dtype = loaded.types_pb2.DT_FLOAT\n"
        "import tensorflow as tf\n"
        "assert type(tf.make_tensor_proto([1.0])) is loaded.tensor_pb2.TensorProto\n"
        "print(seconds)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO_ROOT / "converter"), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.strip().splitlines()[-1]) < 3.0  # TF's runtime alone takes ~5 s
