"""TF-TRT parameter mapping against TF's own TrtConversionParams, and the CPU behaviour."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest
import tensorflow as tf
from tensorflow.core.framework import function_pb2, graph_pb2, node_def_pb2
from tensorflow.python.compiler.tensorrt import trt_convert

from trtserve_converter.cli import parse_config
from trtserve_converter.config import ConvertConfig, Precision, ProfileStrategy
from trtserve_converter.errors import InvalidArguments, TensorRTUnavailable
from trtserve_converter.tensorrt_env import probe_tensorrt
from trtserve_converter.tftrt import (
    conversion_params,
    convert_with_tftrt,
    converter_kwargs,
    count_ops,
    count_serialized_engines,
)

pytestmark = pytest.mark.tf

TRT_PRECISIONS = ["FP32", "FP16", "INT8"]


def config_for(*extra: str) -> ConvertConfig:
    return parse_config(["--source", "x", "--model-name", "m", *extra], {})


@pytest.mark.parametrize("precision", TRT_PRECISIONS)
@pytest.mark.parametrize("strategy", [s.value for s in ProfileStrategy])
@pytest.mark.parametrize("dynamic", ["--dynamic-shapes", "--no-dynamic-shapes"])
def test_parameters_map_onto_tf_trt(precision: str, strategy: str, dynamic: str) -> None:
    config = config_for(
        "--precision", precision, "--profile-strategy", strategy, dynamic,
        "--max-workspace-bytes", "123456789", "--minimum-segment-size", "5",
        "--maximum-cached-engines", "4", "--signature-key", "sig",
    )  # fmt: skip
    kwargs = converter_kwargs(config, Path("/m"))
    accepted = inspect.signature(trt_convert.TrtGraphConverterV2.__init__).parameters
    assert set(kwargs) <= set(accepted)
    assert kwargs["input_saved_model_dir"] == "/m"
    assert kwargs["input_saved_model_signature_key"] == "sig"
    assert kwargs["use_dynamic_shape"] is (dynamic == "--dynamic-shapes")
    if dynamic == "--dynamic-shapes":
        assert kwargs["dynamic_shape_profile_strategy"] == strategy
        assert strategy in trt_convert.supported_profile_strategies()
    else:
        assert "dynamic_shape_profile_strategy" not in kwargs

    params = conversion_params(config)
    assert isinstance(params, trt_convert.TrtConversionParams)
    trt_convert._check_conversion_params(params, is_v2=True)  # TF's own validation
    assert params.precision_mode in trt_convert.TrtPrecisionMode.supported_precision_modes()
    assert params._asdict() == {
        "max_workspace_size_bytes": 123456789,
        "precision_mode": precision,
        "minimum_segment_size": 5,
        "maximum_cached_engines": 4,
        "use_calibration": precision == "INT8",
        "allow_build_at_runtime": True,
    }
    # Every TrtConversionParams field is set explicitly, none left to TF's defaults.
    assert set(params._fields) <= set(kwargs)


def test_profile_strategies_are_exactly_tf_trts() -> None:
    assert {s.value for s in ProfileStrategy} == set(trt_convert.supported_profile_strategies())
    assert {p.value for p in Precision if p.uses_tensorrt} == {
        p for p in trt_convert.TrtPrecisionMode.supported_precision_modes() if p.isupper()
    }


def test_default_workspace_matches_tf_on_cpu_builds() -> None:
    assert config_for().max_workspace_bytes == trt_convert.DEFAULT_TRT_MAX_WORKSPACE_SIZE_BYTES


@pytest.mark.parametrize("segment_size", ["0", "-2"])
def test_segment_size_rejected_like_tf(segment_size: str) -> None:
    with pytest.raises(InvalidArguments):
        config_for("--minimum-segment-size", segment_size)
    bad = config_for().model_copy(update={"minimum_segment_size": int(segment_size)})
    with pytest.raises(ValueError, match="minimum segment size"):
        trt_convert._check_conversion_params(conversion_params(bad), is_v2=True)


def test_segment_size_minus_one_accepted_like_tf() -> None:
    config = config_for("--minimum-segment-size", "-1")
    trt_convert._check_conversion_params(conversion_params(config), is_v2=True)


def test_native_has_no_tf_trt_parameters() -> None:
    with pytest.raises(ValueError, match="NATIVE"):
        converter_kwargs(config_for("--precision", "NATIVE"), Path("/m"))


def test_probe_on_cpu_tensorflow_reports_a_problem_without_crashing() -> None:
    info = probe_tensorrt()
    assert info.tensorflow_version == "2.17.1"
    assert info.linked is None
    assert info.loaded is None
    assert info.problem is not None
    assert "without TensorRT" in info.problem
    with pytest.raises(TensorRTUnavailable):
        info.require()


def test_tf_trt_constructor_error_on_cpu_maps_to_tensorrt_unavailable(
    models: Any, tmp_path: Path
) -> None:
    """Even past the probe, TF's own 'not built with TensorRT' error is typed."""
    with pytest.raises(TensorRTUnavailable, match="without TensorRT"):
        convert_with_tftrt(config_for(), models.classifier, tmp_path / "out", [], None)


@pytest.mark.parametrize(
    "extra",
    [
        ("--precision", "FP16"),
        ("--precision", "FP32"),
        ("--precision", "INT8", "--synthetic-calibration"),
    ],
)
def test_tensorrt_precisions_on_cpu_fail_with_exit_30(
    models: Any, run_cli: Any, extra: tuple[str, ...]
) -> None:
    result = run_cli("--source", str(models.classifier), "--model-name", "clf", *extra)
    assert result.code == 30
    report = result.report
    assert (report["result"], report["reason"], report["exitCode"]) == (
        "Failed",
        "TensorRTUnavailable",
        30,
    )
    assert "NATIVE" in report["message"]
    assert report["tensorflowVersion"] == "2.17.1"
    assert "tensorrtLoaded" not in report
    assert json.loads(result.report_text) == report
    assert not (result.output_base / "clf").exists()  # failed fast, nothing written


def _node(name: str, op: str, segment: str | None = None) -> node_def_pb2.NodeDef:
    node = node_def_pb2.NodeDef(name=name, op=op)
    if segment:
        node.attr["segment_func"].func.name = segment
    return node


def test_count_ops_separates_engines_from_native_ops() -> None:
    graph = graph_pb2.GraphDef(
        node=[
            _node("x", "Placeholder"),
            _node("w", "Const"),
            _node("engine0", "TRTEngineOp", "seg0"),
            _node("engine1", "TRTEngineOp", "seg1"),
            _node("topk", "TopKV2"),
            _node("out", "Identity"),
        ]
    )
    for name in ("seg0", "seg1"):
        segment = graph.library.function.add()
        segment.signature.name = name
        segment.node_def.extend([_node("conv", "Conv2D"), _node("relu", "Relu")])
    other = function_pb2.FunctionDef()
    other.signature.name = "helper"
    other.node_def.extend([_node("add", "AddV2")])
    graph.library.function.append(other)
    counts = count_ops(graph)
    assert (counts.trt_engine_ops, counts.native_ops) == (2, 2)  # TopKV2 + AddV2


def test_count_ops_of_a_real_signature(models: Any) -> None:
    function = tf.saved_model.load(str(models.classifier)).signatures["serving_default"]
    counts = count_ops(function.graph.as_graph_def())
    assert counts.trt_engine_ops == 0
    assert counts.native_ops >= 4  # conv, relu, mean, matmul, softmax (+ call wrappers)


def test_count_serialized_engines(tmp_path: Path) -> None:
    assert count_serialized_engines(tmp_path) == 0
    (tmp_path / "assets").mkdir()
    for name in ("trt-serialized-engine.TRTEngineOp_000_000", "trt-serialized-engine.x", "vocab"):
        (tmp_path / "assets" / name).write_bytes(b"")
    assert count_serialized_engines(tmp_path) == 2
