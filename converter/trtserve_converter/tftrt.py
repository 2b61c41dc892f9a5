"""Step 3: TF-TRT conversion with `TrtGraphConverterV2` (TensorFlow 2.17.1).

The flags map one to one onto the converter's constructor arguments, which TF itself
packs into `TrtConversionParams` and validates (`_check_conversion_params`):

| flag | TrtGraphConverterV2 argument |
| --- | --- |
| --precision | precision_mode |
| --max-workspace-bytes | max_workspace_size_bytes |
| --minimum-segment-size | minimum_segment_size |
| --maximum-cached-engines | maximum_cached_engines |
| --dynamic-shapes | use_dynamic_shape |
| --profile-strategy | dynamic_shape_profile_strategy (only with dynamic shapes) |
| --signature-key | input_saved_model_signature_key |
| (INT8) | use_calibration=True: INT8 ranges always come from calibration |
| (fixed) | allow_build_at_runtime=True (TF's default; TF forces it during conversion) |
"""

# TensorFlow and the transports are imported lazily: --help, argument errors and a
# TF-less failure path must stay fast and never import TensorFlow.
# ruff: noqa: PLC0415

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtserve_converter.config import ConvertConfig, Precision
from trtserve_converter.errors import (
    CalibrationFailed,
    ConversionFailed,
    ConverterError,
    EngineBuildFailed,
    OutputWriteFailed,
    TensorRTUnavailable,
    summarize,
)
from trtserve_converter.inputs import InputBatch, to_tensors

LOG = logging.getLogger(__name__)

TRT_ENGINE_OP = "TRTEngineOp"
# Graph plumbing that is not computation: not counted as "remaining native ops".
NON_COMPUTE_OPS = frozenset(
    {"Placeholder", "Const", "Identity", "IdentityN", "NoOp", "_Arg", "_Retval"}
)
SERIALIZED_ENGINE_PREFIX = "trt-serialized-engine."
NO_TRT_MESSAGE = "not been built with TensorRT"


def converter_kwargs(config: ConvertConfig, saved_model_dir: Path) -> dict[str, Any]:
    """Keyword arguments of TrtGraphConverterV2 for this run (see the module table)."""
    if not config.precision.uses_tensorrt:
        raise ValueError("NATIVE does not use TF-TRT")
    kwargs: dict[str, Any] = {
        "input_saved_model_dir": str(saved_model_dir),
        "input_saved_model_signature_key": config.signature_key,
        "use_dynamic_shape": config.dynamic_shapes,
        "max_workspace_size_bytes": config.max_workspace_bytes,
        "precision_mode": config.precision.value,
        "minimum_segment_size": config.minimum_segment_size,
        "maximum_cached_engines": config.maximum_cached_engines,
        "use_calibration": config.precision is Precision.INT8,
        "allow_build_at_runtime": True,
    }
    if config.dynamic_shapes:
        kwargs["dynamic_shape_profile_strategy"] = config.profile_strategy.value
    return kwargs


def conversion_params(config: ConvertConfig) -> Any:
    """The same parameters as TF's own `TrtConversionParams` namedtuple."""
    from tensorflow.python.compiler.tensorrt import trt_convert

    kwargs = converter_kwargs(config, Path("."))
    return trt_convert.TrtConversionParams(
        max_workspace_size_bytes=kwargs["max_workspace_size_bytes"],
        precision_mode=kwargs["precision_mode"],
        minimum_segment_size=kwargs["minimum_segment_size"],
        maximum_cached_engines=kwargs["maximum_cached_engines"],
        use_calibration=kwargs["use_calibration"],
        allow_build_at_runtime=kwargs["allow_build_at_runtime"],
    )


@dataclass
class OpCounts:
    trt_engine_ops: int
    native_ops: int


def count_ops(graph_def: Any) -> OpCounts:
    """TRTEngineOps vs remaining compute ops of a GraphDef (incl. its function library).

    The native fallback segments that TF-TRT keeps for each engine (`segment_func`)
    are not counted: they only run when an engine cannot.
    """
    segment_functions = set()
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        nodes.extend(function.node_def)
    for node in nodes:
        if node.op == TRT_ENGINE_OP and "segment_func" in node.attr:
            segment_functions.add(node.attr["segment_func"].func.name)
    trt = native = 0
    counted = list(graph_def.node)
    for function in graph_def.library.function:
        if function.signature.name not in segment_functions:
            counted.extend(function.node_def)
    for node in counted:
        if node.op == TRT_ENGINE_OP:
            trt += 1
        elif node.op not in NON_COMPUTE_OPS:
            native += 1
    return OpCounts(trt_engine_ops=trt, native_ops=native)


def count_serialized_engines(saved_model_dir: Path) -> int:
    """Engines TF-TRT serialized into the SavedModel's assets by save()."""
    assets = saved_model_dir / "assets"
    if not assets.is_dir():
        return 0
    return sum(1 for path in assets.iterdir() if path.name.startswith(SERIALIZED_ENGINE_PREFIX))


@dataclass
class TrtResult:
    counts: OpCounts
    engines_built: int
    durations: dict[str, float] = field(default_factory=dict)


class _TrackedInputs:
    """An input_fn for TF-TRT that remembers whether TF started consuming it.

    TF runs calibration inside convert() (static shapes) or build() (dynamic shapes);
    an error after the calibration generator started is a calibration failure.
    """

    def __init__(self, batches: list[InputBatch]) -> None:
        self.batches = batches
        self.started = False
        self.seconds = 0.0

    def __call__(self) -> Iterator[dict[str, Any]]:
        self.started = True
        began = time.monotonic()
        for batch in self.batches:
            yield to_tensors(batch)
        # TF runs the model between yields: first batch to exhaustion ~ calibration time.
        self.seconds += time.monotonic() - began


def _timed(durations: dict[str, float], name: str, action: Callable[[], Any]) -> Any:
    started = time.monotonic()
    try:
        return action()
    finally:
        durations[name] = durations.get(name, 0.0) + round(time.monotonic() - started, 3)


def _log_summary(converter: Any) -> None:
    """TF-TRT's own per-engine summary (informative only: never fails the run)."""
    try:
        converter.summary(detailed=False, print_fn=lambda line: LOG.info("%s", line))
    except Exception as error:
        LOG.debug("no TF-TRT summary: %s", error)


def convert_with_tftrt(
    config: ConvertConfig,
    saved_model_dir: Path,
    output_dir: Path,
    build_batches: list[InputBatch],
    calibration: list[InputBatch] | None,
) -> TrtResult:
    """convert() (with calibration for INT8), build() every build shape, save()."""
    from tensorflow.python.compiler.tensorrt import trt_convert

    durations: dict[str, float] = {}
    try:
        converter = trt_convert.TrtGraphConverterV2(**converter_kwargs(config, saved_model_dir))
    except RuntimeError as error:
        if NO_TRT_MESSAGE in str(error):
            raise TensorRTUnavailable(
                "TensorFlow here was built without TensorRT: run the GPU converter image or "
                "use precision NATIVE"
            ) from error
        raise ConversionFailed(f"TF-TRT rejected the parameters ({summarize(error)})") from error
    except ValueError as error:
        raise ConversionFailed(f"TF-TRT rejected the parameters ({summarize(error)})") from error

    calibration_fn = _TrackedInputs(calibration) if calibration is not None else None
    try:
        converted = _timed(
            durations, "convert", lambda: converter.convert(calibration_input_fn=calibration_fn)
        )
    except ConverterError:
        raise
    except Exception as error:
        if calibration_fn is not None and calibration_fn.started:
            raise CalibrationFailed(f"INT8 calibration failed ({summarize(error)})") from error
        raise ConversionFailed(f"TF-TRT conversion failed ({summarize(error)})") from error
    counts = count_ops(converted.graph.as_graph_def())
    LOG.info("converted: %d TRTEngineOps, %d native ops", counts.trt_engine_ops, counts.native_ops)

    build_fn = _TrackedInputs(build_batches)
    try:
        _timed(durations, "build", lambda: converter.build(input_fn=build_fn))
    except Exception as error:
        if calibration_fn is not None and calibration_fn.started:
            raise CalibrationFailed(f"INT8 calibration failed ({summarize(error)})") from error
        raise EngineBuildFailed(
            f"building TensorRT engines failed ({summarize(error)}): check --build-shape and "
            "--max-workspace-bytes"
        ) from error
    _log_summary(converter)
    if calibration_fn is not None:
        # TF calibrates inside convert() (static shapes) or build() (dynamic shapes);
        # this is the part of that time spent running the calibration batches.
        durations["calibrate"] = round(calibration_fn.seconds, 3)
    try:
        _timed(durations, "save", lambda: converter.save(str(output_dir)))
    except OSError as error:
        raise OutputWriteFailed(
            f"saving the converted model failed ({summarize(error)})"
        ) from error
    except Exception as error:
        raise ConversionFailed(f"saving the converted model failed ({summarize(error)})") from error
    engines = count_serialized_engines(output_dir)
    LOG.info("saved with %d serialized TensorRT engines", engines)
    return TrtResult(counts=counts, engines_built=engines, durations=durations)
