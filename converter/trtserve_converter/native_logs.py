"""`--log-format json` for everything on stderr, native (C++) lines included.

TensorFlow's C++ logging (and TensorRT's, absl's, gRPC's, a crash's last words) writes
straight to file descriptor 2, past Python's logging: with JSON logs those lines came out
as plain text. Redirecting fd 2 inside the process would lose the last lines of a crash
(the reader dies with the process) and, the converter being PID 1 of its container, a
helper process would be killed with it. So the converter runs as a *child* whose stderr
is a pipe, and this process, which imports nothing heavy, turns every line into one JSON
object: the child's own JSON records pass through unchanged, TensorFlow/absl lines are
parsed (level, source file:line), any other line keeps the level of the line before it
(continuations, stack traces). The child's exit code is returned; if it was killed by a
signal (an abort in native code), the report it could not write is written here.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any

from trtserve_converter.errors import InternalError
from trtserve_converter.report import STDOUT, Report, write_report

LOGGER = "native"
LEVELS = {"I": "INFO", "W": "WARNING", "E": "ERROR", "F": "CRITICAL"}
# TensorFlow/TSL: "2026-12-01 08:56:31.287958: I tensorflow/core/x.cc:210] message"
TF_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: ([IWEF]) (\S+:\d+)\] ?(.*)$")
# absl/glog (gRPC, newer TF): "W1201 09:07:39.139740   23245 file.cc:2563] message"
ABSL_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ (\S+:\d+)\] ?(.*)$")
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _record(level: str, message: str, source: str | None = None) -> str:
    entry = {"time": _now(), "level": level, "logger": LOGGER, "message": message}
    if source:
        entry["source"] = source
    return json.dumps(entry, separators=(",", ":"), ensure_ascii=False)


def format_line(line: str, previous_level: str) -> tuple[str, str]:
    """One stderr line as one JSON object, and the level a following line inherits."""
    if line.startswith("{"):
        try:
            json.loads(line)
        except ValueError:
            pass
        else:
            return line, previous_level  # already one of our JSON records
    match = TF_LINE.match(line) or ABSL_LINE.match(line)
    if match:
        level = LEVELS[match.group(1)]
        return _record(level, match.group(3), match.group(2)), level
    return _record(previous_level, line), previous_level


def pump(source: IO[bytes], out: IO[str]) -> None:
    """Copy `source` to `out` line by line as JSON until end of file."""
    level = "INFO"
    for raw in source:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line.strip():
            continue
        entry, level = format_line(line, level)
        out.write(entry + "\n")
        out.flush()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def run_with_json_stderr(
    command: Sequence[str],
    env: dict[str, str] | None = None,
    out: IO[str] | None = None,
    report_path: str | None = None,
) -> int:
    """Run `command` with its stderr turned into JSON lines on `out` (default stderr).

    SIGTERM/SIGINT are passed on to the child. Returns the child's exit code; a child
    killed by a signal gives InternalError's, with a report written to `report_path`
    (when given, not stdout, and the child left none there).
    """
    target = sys.stderr if out is None else out
    before = _report_stamp(report_path)
    child = subprocess.Popen(list(command), env=env, stderr=subprocess.PIPE)
    previous: dict[int, Any] = {}

    def forward(number: int, _frame: FrameType | None) -> None:
        child.send_signal(number)

    for number in FORWARDED_SIGNALS:
        try:
            previous[number] = signal.signal(number, forward)
        except ValueError:  # not the main thread: nothing to forward
            break
    try:
        assert child.stderr is not None
        pump(child.stderr, target)
        code = child.wait()
    finally:
        for forwarded, handler in previous.items():
            signal.signal(forwarded, handler)
    if code >= 0:
        return code
    error = InternalError(
        f"the converter process died from {_signal_name(-code)} (a crash in native code, "
        "e.g. TensorFlow or TensorRT; the log lines before this one say where): please "
        "report it with the log"
    )
    target.write(_record("CRITICAL", error.message) + "\n")
    target.flush()
    if report_path and report_path != STDOUT and _report_stamp(report_path) == before:
        write_report(Report.failed(error), report_path)
    return error.exit_code


def _report_stamp(path: str | None) -> tuple[int, int] | None:
    """Size and mtime of an existing report file, to tell whether the child wrote one."""
    if not path or path == STDOUT:
        return None
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns)


def child_environment() -> dict[str, str]:
    """The environment of the converter child: ours, marked so it does not fork again."""
    return {**os.environ, CHILD_MARKER: "1"}


CHILD_MARKER = "TRTSERVE_CONVERTER_JSON_CHILD"
