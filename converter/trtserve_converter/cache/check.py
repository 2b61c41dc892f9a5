"""A cache hit's load check (load the model, run its warmup input) in a child process.

TF-TRT stores no GPU or TensorRT metadata with its engines, and deserializing a
mismatched engine crashes the process that does it (tensorflow/tensorrt#206, #215). Run
in the converter's own process, such a crash would kill the init container instead of
counting as a miss. So the check runs in a child: `python -m trtserve_converter.cache.check`
(a fresh interpreter started with fork+exec, never a fork of this process after TensorFlow
and CUDA are initialized). A child that dies by a signal, exits with an unexpected code,
writes no result or takes longer than the bound is a warning and a miss; the converter
then converts.

The child imports TensorFlow as soon as it starts, before it is given a directory, so
the parent starts it when a hit begins and the import runs while the entry downloads.
Protocol: one JSON line on the child's stdin (`directory`, `signatureKey`, `result`),
the outcome as JSON in the `result` file, exit code 0 (checked) or BAD_ENTRY_EXIT (the
model is wrong, e.g. fails on its warmup input). End of input without a request: exit 0,
nothing checked. Its stderr is the converter's (with --log-format json the logs are
turned into JSON by native_logs.py like every other line).
"""

# TensorFlow is imported lazily: only the child process imports this module's check.
# ruff: noqa: PLC0415

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from trtserve_converter.cache.manifest import BadCacheEntryError
from trtserve_converter.logsetup import setup_logging

LOG = logging.getLogger(__name__)

BAD_ENTRY_EXIT = 3
CHECK_TIMEOUT_SECONDS = 600.0
"""Longest load + warmup run of a cached model (the child's TensorFlow import included,
when it has not finished by the time the entry is downloaded)."""
STOP_SECONDS = 5.0  # wait for a killed child to be reaped
LOG_LEVEL_ENV = "TRT_CONVERT_CHECK_LOG_LEVEL"
LOG_FORMAT_ENV = "TRT_CONVERT_CHECK_LOG_FORMAT"


def check_command() -> list[str]:
    """The child's command line (tests replace it with doubles that crash or hang)."""
    return [sys.executable, "-m", "trtserve_converter.cache.check"]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class ModelCheck:
    """One child process that checks one directory.

    `start()` early (the child imports TensorFlow meanwhile), then `check()` once the
    files are verified; `close()` stops a child that was not used. Not reusable: after
    `check()` the next one starts a new child.
    """

    def __init__(self, work_dir: Path, log_level: str = "INFO", log_format: str = "text") -> None:
        self.work_dir = work_dir  # where the child writes its result
        self.log_level = log_level
        self.log_format = log_format
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.timings: dict[str, float] = {}
        """Of the last check: the child's TensorFlow import, how much of it ran before the
        directory was handed over (hidden behind the download), and the load + warmup."""

    def start(self) -> None:
        if self.process is not None:
            return
        env = {**os.environ, LOG_LEVEL_ENV: self.log_level, LOG_FORMAT_ENV: self.log_format}
        # stdout is not ours to share: the report may go there (--report-path -).
        self.process = subprocess.Popen(
            check_command(), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env
        )
        self.started_at = time.monotonic()
        LOG.debug("cache: load check process %d started", self.process.pid)

    def check(self, directory: Path, signature_key: str, timeout: float | None = None) -> str:
        """What was checked; BadCacheEntryError (the entry is not served) otherwise."""
        timeout = CHECK_TIMEOUT_SECONDS if timeout is None else timeout
        self.start()
        process, self.process = self.process, None
        assert process is not None
        assert process.stdin is not None
        result = self.work_dir / f"cache-check-{process.pid}.json"
        result.unlink(missing_ok=True)
        handed_over = time.monotonic() - self.started_at
        request = {
            "directory": str(directory),
            "signatureKey": signature_key,
            "result": str(result),
        }
        with contextlib.suppress(BrokenPipeError, OSError):  # a child that died already
            process.stdin.write(json.dumps(request).encode() + b"\n")
            process.stdin.close()
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            _stop(process)
            raise BadCacheEntryError(
                f"the load check did not finish within {timeout:g}s (child killed)"
            ) from None
        except BaseException:  # the deadline: no child outlives the run
            _stop(process)
            raise
        outcome = _read_result(result)
        if code < 0:
            raise BadCacheEntryError(
                f"the load check crashed ({_signal_name(-code)}): the cached model cannot be "
                "loaded on this node (an engine built for another GPU or TensorRT?)"
            )
        if code == BAD_ENTRY_EXIT and outcome is not None and outcome.get("error"):
            raise BadCacheEntryError(str(outcome["error"]))
        if code != 0 or outcome is None or not outcome.get("checked"):
            raise BadCacheEntryError(f"the load check exited with code {code} and no result")
        imported = float(outcome.get("importSeconds") or 0.0)
        self.timings = {
            "import": imported,
            "hidden": min(imported, handed_over),
            "load": float(outcome.get("checkSeconds") or 0.0),
        }
        LOG.info(
            "cache: load check in a child: TensorFlow import %.2fs (%.2fs of it during the "
            "download), load + warmup %.2fs",
            self.timings["import"],
            self.timings["hidden"],
            self.timings["load"],
        )
        return str(outcome["checked"])

    def close(self) -> None:
        """Stop a child that was never given a directory, at once: it holds nothing (it
        may still be importing TensorFlow) and the converter now converts."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            assert process.stdin is not None
            process.stdin.close()
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(STOP_SECONDS)


def _read_result(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --- the child ------------------------------------------------------------------------


def check_model(directory: Path, signature_key: str) -> str:
    """Load the model and run its first warmup request on this device (fail closed).

    Returns what was checked. A model that does not load, lacks the signature, fails on
    the warmup input or returns non-finite numbers raises BadCacheEntryError.
    """
    import numpy as np
    import tensorflow as tf

    from trtserve_converter.savedmodel import load_saved_model, signature_function
    from trtserve_converter.warmup import WARMUP_DIR, WARMUP_FILE

    try:
        model = load_saved_model(directory)
        function = signature_function(model, signature_key)
    except Exception as error:
        raise BadCacheEntryError(f"the cached model does not load: {error}") from error
    warmup = directory / WARMUP_DIR / WARMUP_FILE
    if not warmup.is_file():
        return "loaded (no warmup input to run)"
    from tensorflow_serving.apis import prediction_log_pb2

    try:
        record = next(iter(tf.data.TFRecordDataset(str(warmup)).take(1)))
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        inputs = {
            name: tf.constant(tf.make_ndarray(proto))
            for name, proto in log.predict_log.request.inputs.items()
        }
        outputs = function(**inputs)
    except Exception as error:
        raise BadCacheEntryError(f"the cached model fails on its warmup input: {error}") from error
    for name, value in outputs.items():
        array = np.asarray(value)
        if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
            raise BadCacheEntryError(f"the cached model returns non-finite values in {name!r}")
    return "loaded and ran its warmup input"


def _prepare() -> None:
    """What takes long, done before the request arrives: TensorFlow and the protos."""
    import tensorflow  # noqa: F401
    from tensorflow_serving.apis import prediction_log_pb2  # noqa: F401

    from trtserve_converter.tensorrt_env import enable_memory_growth

    enable_memory_growth()  # as the parent: never take the whole GPU


def child_main(stdin: IO[bytes]) -> int:
    started = time.monotonic()
    setup_logging(os.environ.get(LOG_LEVEL_ENV, "INFO"), os.environ.get(LOG_FORMAT_ENV, "text"))
    _prepare()
    imported = time.monotonic() - started
    line = stdin.readline()
    if not line.strip():
        return 0  # the parent needs no check after all
    request = json.loads(line)
    result = Path(request["result"])
    started = time.monotonic()
    try:
        checked = check_model(Path(request["directory"]), str(request["signatureKey"]))
    except BadCacheEntryError as error:
        result.write_text(json.dumps({"error": str(error)}), encoding="utf-8")
        return BAD_ENTRY_EXIT
    outcome = {
        "checked": checked,
        "importSeconds": round(imported, 3),
        "checkSeconds": round(time.monotonic() - started, 3),
    }
    result.write_text(json.dumps(outcome), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.stdin.buffer))
