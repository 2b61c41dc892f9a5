"""trt-convert's parent process: runs the conversion in a child and owns --timeout-seconds.

The deadline is enforced where no work runs. An exception raised asynchronously into the
work (the SIGALRM of before) lands wherever the main thread is: inside a logging handler,
a lock, fsspec, TensorFlow's Python or a C extension. No amount of cleaning up afterwards
makes that safe (it left locks held and hung the process). So the work runs in a child
process group; this process, which imports nothing heavy and runs no library code, waits
for it and at the deadline stops the whole group: SIGTERM, a short grace, then SIGKILL.
It then writes the ``Timeout`` report itself, with what the child last told it over the
progress pipe (progress.py): the step it was in, the durations of the steps before it,
the versions, the GPU, the cache result. Stopping the child stops everything that must
stop with it (the cache lock's heartbeat thread, the load-check grandchild); a cache
lock left behind is taken over by the next converter once its heartbeat is stale, as for
a crashed pod.

It also turns the child's stderr into JSON lines with ``--log-format json``
(native_logs.py), passes SIGTERM/SIGINT on to the child's group (the kubelet signals PID
1 only), and reports a child killed by a signal (a crash in native code) as
``InternalError``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from trtserve_converter.errors import ConversionTimeout, ConverterError, InternalError
from trtserve_converter.native_logs import pump, record
from trtserve_converter.progress import PROGRESS_FD
from trtserve_converter.report import STDOUT, Report, write_report

LOG = logging.getLogger(__name__)
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
STOP_GRACE_SECONDS = 10.0
"""Between SIGTERM and SIGKILL at the deadline: enough for the child's native code to
unwind on SIGTERM where it can, short beside any --timeout-seconds worth setting."""
DRAIN_SECONDS = 5.0
"""How long the stderr and progress readers may take to finish once the group is gone."""
CHILD_MARKER = "TRTSERVE_CONVERTER_CHILD"
"""Set in the child's environment: it runs the conversion itself instead of a child."""


def child_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the conversion child: ours, marked so it does not fork again."""
    return {**(os.environ if base is None else base), CHILD_MARKER: "1"}


@dataclass
class Progress:
    """What the child last said (progress.py), and when each step began by our clock."""

    started: float = field(default_factory=time.monotonic)
    step: str | None = None
    step_started: float | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    work_dir: str | None = None
    served: str | None = None  # the success message, once the model is in place
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self, source: IO[bytes]) -> None:
        """Apply every message of the pipe until end of file (a reader thread)."""
        for raw in source:
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            if isinstance(message, dict):
                self.apply(message)

    def apply(self, message: dict[str, Any]) -> None:
        with self._lock:
            if isinstance(message.get("step"), str):
                self.step, self.step_started = message["step"], time.monotonic()
            if isinstance(message.get("fields"), dict):
                self.fields = message["fields"]
            if isinstance(message.get("work_dir"), str):
                self.work_dir = message["work_dir"]
            if isinstance(message.get("served"), str):
                self.served = message["served"]

    def report_fields(self) -> dict[str, Any]:
        """The child's last report fields, durations completed up to now."""
        with self._lock:
            fields = dict(self.fields)
            durations = dict(fields.get("durations") or {})
            now = time.monotonic()
            if self.step is not None and self.step_started is not None:
                so_far = durations.get(self.step, 0.0) + now - self.step_started
                durations[self.step] = round(so_far, 3)
            durations["total"] = round(now - self.started, 3)
            fields["durations"] = durations
            return fields


@dataclass(frozen=True)
class Outcome:
    """How the child ended: its exit code (negative: the signal), whether we stopped it."""

    code: int
    timed_out: bool


def supervise(
    command: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    report_path: str | None = None,
    timeout_seconds: float | None = None,
    json_stderr: bool = True,
    out: IO[str] | None = None,
    grace_seconds: float = STOP_GRACE_SECONDS,
) -> int:
    """Run `command` as the conversion child; return the exit code of the run.

    `json_stderr`: the child's stderr becomes JSON lines on `out` (default stderr), else it
    is inherited. At `timeout_seconds` the child's process group is stopped and a
    ``Timeout`` report is written to `report_path` (stdout for ``-`` or None); a child
    killed by a signal gives ``InternalError``'s, with a report written unless the child
    left one there.
    """
    target = sys.stderr if out is None else out
    before = _report_stamp(report_path)
    progress = Progress()
    progress_read, progress_write = os.pipe()
    try:
        child = subprocess.Popen(
            list(command),
            env={**(os.environ if env is None else env), PROGRESS_FD: str(progress_write)},
            stderr=subprocess.PIPE if json_stderr else None,
            pass_fds=(progress_write,),
            process_group=0,  # its own group: stopped, or signalled, as a whole
        )
    finally:
        os.close(progress_write)
    readers = [_start(progress.read, os.fdopen(progress_read, "rb"), "progress")]
    if child.stderr is not None:
        readers.append(_start(lambda source: pump(source, target), child.stderr, "stderr"))
    with _forwarding_signals(child):
        outcome = _wait(child, timeout_seconds, grace_seconds)
    _signal_group(child, signal.SIGKILL)  # anything the child left running
    for reader in readers:
        reader.join(DRAIN_SECONDS)

    if outcome.timed_out:
        assert timeout_seconds is not None
        return _report_timeout(progress, timeout_seconds, report_path, target, json_stderr)
    if outcome.code >= 0:
        return outcome.code
    error = InternalError(
        f"the converter process died from {_signal_name(-outcome.code)} (a crash in native "
        "code, e.g. TensorFlow or TensorRT; the log lines before this one say where): "
        "please report it with the log"
    )
    _say(error, target, json_stderr)
    if report_path and report_path != STDOUT and _report_stamp(report_path) == before:
        write_report(Report.failed(error), report_path)
    return error.exit_code


def _start(function: Any, source: IO[bytes], name: str) -> threading.Thread:
    def run() -> None:
        with source:
            function(source)

    thread = threading.Thread(target=run, name=f"child-{name}", daemon=True)
    thread.start()
    return thread


def _wait(child: subprocess.Popen[bytes], timeout: float | None, grace: float) -> Outcome:
    """Wait for the child; at `timeout`, SIGTERM its group, then SIGKILL after `grace`."""
    try:
        return Outcome(child.wait(timeout=timeout), timed_out=False)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(child, signal.SIGTERM)
    try:
        code = child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        LOG.info("deadline: the conversion ignored SIGTERM for %gs: SIGKILL", grace)
        _signal_group(child, signal.SIGKILL)
        return Outcome(child.wait(), timed_out=True)
    LOG.info("deadline: the conversion ended on SIGTERM")
    return Outcome(code, timed_out=True)


def _signal_group(child: subprocess.Popen[bytes], number: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(child.pid, number)


class _forwarding_signals:  # noqa: N801 - used as a context manager, reads as one
    """Pass SIGTERM/SIGINT on to the child's group while it runs (main thread only)."""

    def __init__(self, child: subprocess.Popen[bytes]) -> None:
        self.child = child
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> None:
        def forward(number: int, _frame: FrameType | None) -> None:
            _signal_group(self.child, number)

        for number in FORWARDED_SIGNALS:
            try:
                self.previous[number] = signal.signal(number, forward)
            except ValueError:  # not the main thread: nothing to forward
                break

    def __exit__(self, *_: object) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)


def _report_timeout(
    progress: Progress, seconds: float, report_path: str | None, target: IO[str], json_: bool
) -> int:
    if progress.work_dir:
        shutil.rmtree(progress.work_dir, ignore_errors=True)
    if progress.served is not None:
        return _report_served(progress, seconds, report_path)
    where = f"in step {progress.step}" if progress.step else "before its first step"
    error = ConversionTimeout(
        f"the conversion took longer than --timeout-seconds={seconds:g} and was stopped "
        f"{where}: raise spec.conversion.timeoutSeconds or reduce the build "
        "shapes/calibration batches"
    )
    try:
        report = Report.failed(error, **progress.report_fields())
    except ValueError:  # fields from a child of another version: the essentials only
        report = Report.failed(error)
    _say(error, target, json_)
    write_report(report, report_path or STDOUT)
    return error.exit_code


def _report_served(progress: Progress, seconds: float, report_path: str | None) -> int:
    """The deadline stopped the cache publish of a model already in place: it is served,
    as when a publish fails (the cache is best effort), so the run succeeded."""
    assert progress.served is not None
    warning = f"publishing was stopped at --timeout-seconds={seconds:g}; the model is served"
    LOG.warning("cache: %s", warning)
    fields = progress.report_fields()
    cache = dict(fields.get("cache") or {})
    fields["cache"] = {**cache, "result": "PublishFailed", "warning": warning}
    try:
        report = Report.succeeded(progress.served, **fields)
    except ValueError:
        report = Report.succeeded(progress.served)
    write_report(report, report_path or STDOUT)
    return report.exit_code


def _say(error: ConverterError, target: IO[str], json_: bool) -> None:
    """Our one line about how the child ended, in the log format of the run."""
    if json_:
        level = "CRITICAL" if error.exit_code == InternalError.exit_code else "ERROR"
        target.write(record(level, f"{error.reason}: {error.message}", logger=__name__))
        target.write("\n")
        target.flush()
    else:
        LOG.error("%s: %s", error.reason, error.message)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _report_stamp(path: str | None) -> tuple[int, int] | None:
    """Size and mtime of an existing report file, to tell whether the child wrote one."""
    if not path or path == STDOUT:
        return None
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns)
