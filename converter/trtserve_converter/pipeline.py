"""The converter's steps in order: fetch, inspect, convert, accuracy, write, report.

`run(config)` never raises: every outcome, including bugs, becomes a Report whose
`exitCode` is the process exit code.
"""

# TensorFlow and the transports are imported lazily: --help, argument errors and a
# TF-less failure path must stay fast and never import TensorFlow.
# ruff: noqa: PLC0415

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trtserve_converter.accuracy import AccuracyResult, evaluate
from trtserve_converter.config import ConvertConfig, Precision
from trtserve_converter.errors import (
    AccuracyGateFailed,
    CalibrationFailed,
    ConverterError,
    InternalError,
    OutputWriteFailed,
    SourceAuthFailed,
    summarize,
)
from trtserve_converter.inputs import InputBatch, batch_rows, build_inputs, random_batch
from trtserve_converter.progress import channel
from trtserve_converter.report import AccuracyReport, CacheReport, Report

if TYPE_CHECKING:
    from trtserve_converter.cache import Manifest, ModelCache
    from trtserve_converter.cache.check import ModelCheck

LOG = logging.getLogger(__name__)
WORK_PREFIX = ".trt-convert-work-"
CACHE_ATTEMPTS = 3
"""Entries tried per run: a rejected entry may be replaced by another converter's."""


@dataclass
class RunState:
    """What is known so far; a failure report carries it too."""

    config: ConvertConfig
    model_version: int | None = None  # the version written; known after `inspect`
    version_in_source: int | None = None  # the source's own number (00000123 -> 123)
    durations: dict[str, float] = field(default_factory=dict)
    tensorflow_version: str | None = None
    tensorrt_linked: str | None = None
    tensorrt_loaded: str | None = None
    gpu: str | None = None
    trt_engine_ops: int | None = None
    native_ops: int | None = None
    engines_built: int | None = None
    accuracy: AccuracyResult | None = None
    notes: list[str] = field(default_factory=list)
    cache: ModelCache | None = None
    cached_accuracy: AccuracyReport | None = None

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        LOG.info("step %s: started", name)
        # The parent's report, should it stop this process at --timeout-seconds.
        channel().send(step=name, fields=self.report_fields())
        try:
            yield
        finally:
            seconds = time.monotonic() - started
            self.durations[name] = round(self.durations.get(name, 0.0) + seconds, 3)
            LOG.info("step %s: %.2fs", name, seconds)

    def report_fields(self) -> dict[str, Any]:
        accuracy = self.cached_accuracy  # a hit reports the stored conversion's gate
        if self.accuracy is not None:
            accuracy = AccuracyReport(
                passed=self.accuracy.passed,
                samples=self.accuracy.samples,
                max_abs_error=self.accuracy.max_abs_error,
                max_rel_error=self.accuracy.max_rel_error,
                top1_agreement=self.accuracy.top1_agreement,
            )
        return {
            "precision": self.config.precision.value,
            "model_name": self.config.model_name,
            "model_version": self.model_version,
            "durations": dict(self.durations) or None,
            "trt_engine_ops": self.trt_engine_ops,
            "native_ops": self.native_ops,
            "engines_built": self.engines_built,
            "accuracy": accuracy,
            "tensorflow_version": self.tensorflow_version,
            "tensorrt_linked": self.tensorrt_linked,
            "tensorrt_loaded": self.tensorrt_loaded,
            "gpu": self.gpu,
            "cache": self.cache.report() if self.cache else CacheReport(result="Disabled"),
        }


def run(config: ConvertConfig) -> Report:
    """Run every step; return the success or failure report."""
    state = RunState(config, model_version=config.model_version)
    started = time.monotonic()
    try:
        message = _run_steps(state)
        report = Report.succeeded(message, **_with_total(state, started))
    except ConverterError as error:
        LOG.error("%s: %s", error.reason, error.message)
        report = Report.failed(error, **_with_total(state, started))
    except Exception as error:
        LOG.exception("internal error")
        internal = InternalError(
            f"{type(error).__name__}: {error} (a converter bug: please report it)"
        )
        report = Report.failed(internal, **_with_total(state, started))
    return report


def _with_total(state: RunState, started: float) -> dict[str, Any]:
    state.durations["total"] = round(time.monotonic() - started, 3)
    return state.report_fields()


def check_arguments_without_tensorflow(config: ConvertConfig) -> None:
    """Cheap checks before anything heavy is imported or downloaded."""
    if (
        config.precision is Precision.INT8
        and not config.calibration_source
        and not config.synthetic_calibration
    ):
        raise CalibrationFailed(
            "INT8 needs calibration data: set spec.conversion.calibration.uri "
            "(--calibration-source) or allow synthetic calibration (--synthetic-calibration)"
        )


def _run_steps(state: RunState) -> str:
    config = state.config
    check_arguments_without_tensorflow(config)
    import tensorflow as tf

    from trtserve_converter.tensorrt_env import enable_memory_growth, gpu_name, probe_tensorrt

    state.tensorflow_version = str(tf.__version__)
    enable_memory_growth()
    if config.precision.uses_tensorrt:
        info = probe_tensorrt()
        state.tensorrt_linked, state.tensorrt_loaded, state.gpu = info.linked, info.loaded, info.gpu
        info.require()  # fail fast, before any download
    else:
        state.gpu = gpu_name()
    from trtserve_converter.cache import open_cache

    state.cache = open_cache(config)

    output_base = Path(config.output_base)
    try:
        output_base.mkdir(parents=True, exist_ok=True)
        work_dir = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=output_base))
    except OSError as error:
        raise OutputWriteFailed(
            f"cannot write to --output-base {output_base} ({error}): mount a writable volume"
        ) from error
    channel().send(work_dir=str(work_dir))  # removed by the parent if it stops this process
    try:
        return _convert_in(state, work_dir)
    finally:
        if state.cache is not None:
            state.cache.close()
        shutil.rmtree(work_dir, ignore_errors=True)


def _convert_in(state: RunState, work_dir: Path) -> str:
    from trtserve_converter import layout
    from trtserve_converter.savedmodel import (
        input_specs,
        load_saved_model,
        resolve_build_shapes,
        signature_function,
    )

    config = state.config
    cache = state.cache if state.cache is not None and state.cache.enabled else None
    served = _cached_by_metadata(state, cache, work_dir)
    if served is not None:
        return served
    saved_model_dir, version = _fetch(state, work_dir)
    served = _cached_by_content(state, cache, work_dir, saved_model_dir)
    if served is not None:
        return served
    with state.step("inspect"):
        original_model = load_saved_model(saved_model_dir)
        original = signature_function(original_model, config.signature_key)
        specs = input_specs(original)
        state.native_ops = _native_op_count(original)
        LOG.info(
            "signature %s inputs: %s",
            config.signature_key,
            ", ".join(f"{s.name}:{s.dtype}{list(s.shape or [])}" for s in specs.values()),
        )
        # NATIVE needs no build shapes, but given ones are still checked.
        build_shapes = (
            resolve_build_shapes(specs, config.build_shapes)
            if config.precision.uses_tensorrt or config.build_shapes
            else []
        )

    output_base = Path(config.output_base)
    layout.remove_stale_staging(output_base, config.model_name)
    staging = layout.create_staging(output_base, config.model_name, version)
    final = layout.version_dir(output_base, config.model_name, version)
    try:
        calibration = _calibration(state, work_dir, specs, build_shapes)
        if config.precision.uses_tensorrt:
            _convert_trt(
                state=state,
                saved_model_dir=saved_model_dir,
                staging=staging,
                specs=specs,
                build_shapes=build_shapes,
                calibration=calibration,
            )
        else:
            with state.step("convert"):  # NATIVE's conversion is a byte copy
                try:
                    copied = layout.copy_tree(saved_model_dir, staging)
                except OSError as error:
                    raise OutputWriteFailed(f"copying the model failed ({error})") from error
                LOG.info("NATIVE: copied the SavedModel unchanged (%d bytes)", copied)
            state.trt_engine_ops = 0
            state.engines_built = 0
        samples = _sample_inputs(state, specs, calibration, build_shapes)
        _accuracy_gate(state, original, staging, samples)
        with state.step("save"):  # one step: warmup records, then the atomic rename
            _write_warmup(state, staging, samples)
            layout.publish(staging, final)
    except BaseException:
        layout.discard(staging)
        raise
    message = _success_message(state, final)
    if cache is not None:  # only a served, gated result is published
        # Served: should the deadline stop the publish, the parent reports the success.
        channel().send(step="publish", served=message, fields=state.report_fields())
        stored = Report.succeeded(message, **state.report_fields())
        report = stored.model_dump(by_alias=True, exclude_none=True, exclude={"cache"})
        cache.publish(final, report, state.version_in_source)
    return message


def _cached_by_metadata(state: RunState, cache: ModelCache | None, work_dir: Path) -> str | None:
    """A hit keyed by the source's metadata (listing, strong ETag): no source download."""
    from trtserve_converter.cache.key import metadata_identity
    from trtserve_converter.fetch import local_path

    if cache is None or local_path(state.config.source) is not None:
        return None  # local sources are hashed after locating the SavedModel
    with state.step("fetch"):
        identity = metadata_identity(state.config.source, state.config.source_version)
    if identity is None:
        return None
    return _from_cache(state, cache, work_dir, identity, fetched=False)


def _cached_by_content(
    state: RunState, cache: ModelCache | None, work_dir: Path, saved_model_dir: Path
) -> str | None:
    """A hit keyed by the sha256 of the fetched files (when metadata could not tell)."""
    from trtserve_converter.cache.key import files_identity

    if cache is None or not cache.enabled or cache.key is not None:
        return None
    with state.step("fetch"):
        identity = files_identity(saved_model_dir)
    return _from_cache(state, cache, work_dir, identity, fetched=True)


def _from_cache(
    state: RunState, cache: ModelCache, work_dir: Path, source: dict[str, Any], *, fetched: bool
) -> str | None:
    """Serve the key's entry, waiting for a converter that holds the key; None: convert.
    `fetched`: the source is downloaded (a content key), else keyed by its metadata.

    Steps of a hit: download into a staging directory, verify every file's size and
    sha256, load the model and run its warmup input, rename into place. Anything wrong
    is a warning and the next candidate (or a conversion): the cache fails closed.
    """
    from trtserve_converter.cache.check import ModelCheck
    from trtserve_converter.cache.key import Runtime, compute_capability, key_inputs

    config = state.config
    calibration = _calibration_identity(state, cache, work_dir)
    if config.calibration_source and calibration is None:
        return None
    runtime = Runtime(
        tensorflow=state.tensorflow_version,
        tensorrt_linked=state.tensorrt_linked,
        tensorrt_loaded=state.tensorrt_loaded,
        gpu=state.gpu,
        compute_capability=compute_capability(),
    )
    cache.set_key(key_inputs(config, source, calibration, runtime))
    rejected: set[str] = set()
    manifest = cache.lookup()
    checker = ModelCheck(work_dir, config.log_level, config.log_format)
    try:
        for _ in range(CACHE_ATTEMPTS):
            if manifest is None:
                manifest = cache.wait_or_claim(rejected)
                if manifest is None:
                    return None
            checker.start()  # its TensorFlow import runs while the entry downloads
            served = _install_from_cache(state, cache, manifest, checker, fetched=fetched)
            if served is not None:
                return served
            rejected.add(manifest.entry)
            manifest = None
        return None
    finally:
        checker.close()


def _calibration_identity(
    state: RunState, cache: ModelCache, work_dir: Path
) -> dict[str, Any] | None:
    """The calibration data's identity; None: unknown (the cache is not used)."""
    from trtserve_converter.cache.key import calibration_identity

    uri = state.config.calibration_source
    if not uri:
        return None
    try:
        return calibration_identity(uri, work_dir, state.config.max_source_bytes)
    except Exception as error:  # the calibration step reports the real problem
        cache.abandon(f"the calibration data's identity is unknown ({error})")
        return None


def _install_from_cache(
    state: RunState, cache: ModelCache, manifest: Manifest, checker: ModelCheck, *, fetched: bool
) -> str | None:
    """Download, verify, check (in the child), rename; None when the entry is not served."""
    from trtserve_converter import layout
    from trtserve_converter.cache import verify_files

    config = state.config
    output_base = Path(config.output_base)
    layout.remove_stale_staging(output_base, config.model_name)
    if fetched:  # the source is here: the number it gives, as for a miss
        version = served_version(config.model_version, state.version_in_source)
    else:  # a hit keyed by metadata: the number the publisher found in the same source
        version = served_version(config.model_version, manifest.source_version)
    state.model_version = version
    staging = layout.create_staging(output_base, config.model_name, version)
    final = layout.version_dir(output_base, config.model_name, version)
    try:
        digests = cache.download(manifest, staging)
        with cache.timed("verify"):
            verify_files(manifest, staging, digests)
        with cache.timed("check"):
            checked = checker.check(staging, config.signature_key)
        with state.step("save"):
            layout.publish(staging, final)
    except Exception as error:  # fail closed: the next candidate, else convert
        layout.discard(staging)
        cache.reject(manifest, error)
        return None
    except BaseException:  # the time-out: nothing half-written stays
        layout.discard(staging)
        raise
    cache.hit()
    stored = manifest.report
    for name, attribute in (
        ("trtEngineOps", "trt_engine_ops"),
        ("nativeOps", "native_ops"),
        ("enginesBuilt", "engines_built"),
    ):
        if isinstance(stored.get(name), int):
            setattr(state, attribute, stored[name])
    if isinstance(stored.get("accuracy"), dict):
        try:
            state.cached_accuracy = AccuracyReport.model_validate(stored["accuracy"])
        except ValueError:
            LOG.debug("cache: unreadable accuracy in the stored report", exc_info=True)
    text = (
        f"took {config.model_name} ({config.precision.value}) from the cache: entry "
        f"{manifest.entry[:8]} of key {manifest.key[:12]}"
    )
    if config.precision.uses_tensorrt:
        text += f" ({state.trt_engine_ops} TRTEngineOps, {state.engines_built} engines)"
    return f"{text}, {checked}; served as version {version} from {final}"


def _fetch(state: RunState, work_dir: Path) -> tuple[Path, int]:
    """Download the source and find its SavedModel; the version to serve it as."""
    from trtserve_converter.fetch import fetch_source
    from trtserve_converter.savedmodel import locate_versioned

    config = state.config
    with state.step("fetch"):
        fetched = fetch_source(config.source, work_dir, config.max_source_bytes)
        located = locate_versioned(fetched, config.source_version)
    state.version_in_source = located.version
    state.model_version = served_version(config.model_version, located.version)
    return located.path, state.model_version


def served_version(requested: int | None, in_source: int | None) -> int:
    """--model-version (or --source-version) if given, else the source's own version
    number (so a client asking for version 123 of a model exported as 00000123 finds it),
    else 1."""
    if requested is not None:
        return requested
    if in_source is not None:
        LOG.info("keeping the source's version number %d", in_source)
        return in_source
    return 1


def _native_op_count(function: Any) -> int | None:
    from trtserve_converter.tftrt import count_ops

    try:
        return count_ops(function.graph.as_graph_def()).native_ops
    except Exception:  # only informative
        LOG.debug("could not count ops", exc_info=True)
        return None


def _calibration(
    state: RunState, work_dir: Path, specs: dict[str, Any], build_shapes: list[Any]
) -> list[InputBatch] | None:
    """Calibration batches for INT8 (also reused as accuracy inputs when given)."""
    from trtserve_converter.calibration import (
        calibration_batches,
        load_calibration_arrays,
        synthetic_batches,
    )
    from trtserve_converter.fetch import fetch_file

    config = state.config
    if config.calibration_source:
        with state.step("calibrate"):
            try:
                path = fetch_file(config.calibration_source, work_dir, config.max_source_bytes)
            except SourceAuthFailed:
                raise
            except ConverterError as error:
                raise CalibrationFailed(f"calibration data: {error.message}") from error
            arrays = load_calibration_arrays(path, specs)
            return calibration_batches(
                arrays, config.calibration_batch_size, config.calibration_batches
            )
    if config.precision is Precision.INT8:
        return synthetic_batches(
            specs,
            build_shapes[0],
            config.calibration_batch_size,
            config.calibration_batches,
            config.seed,
        )
    return None


def _convert_trt(
    *,
    state: RunState,
    saved_model_dir: Path,
    staging: Path,
    specs: dict[str, Any],
    build_shapes: list[Any],
    calibration: list[InputBatch] | None,
) -> None:
    from trtserve_converter.inputs import with_batch_size
    from trtserve_converter.tftrt import convert_with_tftrt

    config = state.config
    shapes = list(build_shapes)
    int8_calibration = calibration if config.precision is Precision.INT8 else None
    if int8_calibration and config.dynamic_shapes:
        # Calibration runs on the engines' optimization profiles: cover its batch shape.
        rows = batch_rows(int8_calibration[0])
        extra = with_batch_size(shapes[0], rows)
        if extra not in shapes:
            LOG.info("adding the calibration batch shape %s to the build shapes", extra)
            shapes.append(extra)
    if not config.dynamic_shapes and len(shapes) > config.maximum_cached_engines:
        LOG.warning(
            "%d build shapes but --maximum-cached-engines=%d: without dynamic shapes each "
            "shape needs its own engine, the others will run natively",
            len(shapes),
            config.maximum_cached_engines,
        )
    result = convert_with_tftrt(
        config, saved_model_dir, staging, build_inputs(specs, shapes, config.seed), int8_calibration
    )
    for name, seconds in result.durations.items():
        state.durations[name] = round(state.durations.get(name, 0.0) + seconds, 3)
    state.trt_engine_ops = result.counts.trt_engine_ops
    state.native_ops = result.counts.native_ops
    state.engines_built = result.engines_built


def take_rows(batches: list[InputBatch], rows: int) -> list[InputBatch]:
    """The first batches that together hold at least `rows` rows."""
    taken: list[InputBatch] = []
    count = 0
    for batch in batches:
        if count >= rows:
            break
        taken.append(batch)
        count += batch_rows(batch)
    return taken


def _sample_inputs(
    state: RunState,
    specs: dict[str, Any],
    calibration: list[InputBatch] | None,
    build_shapes: list[Any],
) -> list[InputBatch]:
    """Inputs for the accuracy gate and warmup: calibration data, else seeded random
    inputs of the first build shape (so the converted model runs an engine that was
    built), else of the signature's shapes with unknown dimensions = 1.

    Empty when an input cannot be generated meaningfully (string inputs such as
    serialized tf.Examples, unknown ranks): accuracy and warmup are then skipped.
    """
    from trtserve_converter.savedmodel import default_shape

    config = state.config
    rows = max(config.accuracy_samples if config.accuracy_check else 0, config.warmup_records)
    if rows == 0:
        return []
    if calibration:
        return take_rows(calibration, rows)
    unusable = [s.name for s in specs.values() if s.is_string or s.shape is None]
    if unusable:
        note = (
            f"inputs {unusable} are strings or of unknown rank: no valid inputs can be "
            "generated, accuracy check and warmup records skipped"
        )
        LOG.warning(note)
        state.notes.append(note)
        return []
    import numpy as np

    rng = np.random.default_rng(config.seed)
    if build_shapes:
        shape = build_shapes[0]
    else:
        shape = {name: default_shape(spec) or () for name, spec in specs.items()}
    first = random_batch(specs, shape, rng)
    per_batch = max(batch_rows(first), 1)
    count = -(-rows // per_batch)  # ceil
    return [first] + [random_batch(specs, shape, rng) for _ in range(count - 1)]


def _write_warmup(state: RunState, staging: Path, samples: list[InputBatch]) -> None:
    from trtserve_converter.warmup import prediction_logs, write_warmup

    config = state.config
    if config.warmup_records == 0 or not samples:
        return
    records = prediction_logs(
        config.model_name, config.signature_key, samples[: config.warmup_records]
    )
    try:
        path = write_warmup(staging, records)
    except OSError as error:
        raise OutputWriteFailed(f"writing warmup records failed ({error})") from error
    LOG.info("wrote %d warmup records to %s", len(records), path.name)


def _accuracy_gate(
    state: RunState, original: Any, staging: Path, samples: list[InputBatch]
) -> None:
    from trtserve_converter.savedmodel import load_saved_model, signature_function

    config = state.config
    if not config.accuracy_check:
        return
    if not samples:
        LOG.warning("accuracy check skipped: no usable inputs")
        return
    with state.step("accuracy"):
        converted_model = load_saved_model(staging)
        converted = signature_function(converted_model, config.signature_key)
        try:
            result = evaluate(
                original=original,
                converted=converted,
                batches=take_rows(samples, config.accuracy_samples),
                rtol=config.accuracy_rtol,
                atol=config.accuracy_atol,
                min_top1=config.accuracy_min_top1,
            )
        except Exception as error:
            raise AccuracyGateFailed(
                f"running the models on the accuracy inputs failed ({summarize(error)}): "
                "give calibration data that matches the signature"
            ) from error
    state.accuracy = result
    if not result.passed:
        # Flags, not spec fields: the operator names its own fields in their place.
        if config.accuracy_min_top1 is not None:
            knobs = "or a lower --accuracy-min-top1"
        else:
            knobs = (
                "looser --accuracy-rtol/--accuracy-atol, or --accuracy-min-top1 for a classifier"
            )
        raise AccuracyGateFailed(
            f"converted model differs from the original: {'; '.join(result.problems[:3])} "
            f"({result.summary()}): use a higher precision, better calibration data, {knobs}"
        )


def _success_message(state: RunState, final: Path) -> str:
    config = state.config
    if config.precision.uses_tensorrt:
        text = (
            f"converted {config.model_name} to {config.precision.value}: "
            f"{state.trt_engine_ops} TRTEngineOps, {state.engines_built} engines"
        )
    else:
        text = f"re-saved {config.model_name} unchanged (NATIVE)"
    text += f"; served as version {state.model_version} from {final}"
    if state.accuracy is not None:
        text += f"; accuracy passed ({state.accuracy.summary()})"
    if state.notes:
        text += "; " + "; ".join(state.notes)
    return text
