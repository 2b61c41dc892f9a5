"""`--log-format json` for everything on stderr, native (C++) lines included.

TensorFlow's C++ logging (and TensorRT's, absl's, gRPC's, a crash's last words) writes
straight to file descriptor 2, past Python's logging: with JSON logs those lines came out
as plain text. Redirecting fd 2 inside the process would lose the last lines of a crash
(the reader dies with the process). So the conversion runs as a *child* (supervisor.py)
whose stderr is a pipe, and the parent turns every line into one JSON object here: the
child's own JSON records pass through unchanged, TensorFlow/absl lines are parsed (level,
source file:line), any other line keeps the level of the line before it (continuations,
stack traces).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import IO

LOGGER = "native"
LEVELS = {"I": "INFO", "W": "WARNING", "E": "ERROR", "F": "CRITICAL"}
# TensorFlow/TSL: "2026-12-01 08:56:31.287958: I tensorflow/core/x.cc:210] message"
TF_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: ([IWEF]) (\S+:\d+)\] ?(.*)$")
# absl/glog (gRPC, newer TF): "W1201 09:07:39.139740   23245 file.cc:2563] message"
ABSL_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ (\S+:\d+)\] ?(.*)$")


def _now() -> str:
    return datetime.now(UTC).isoformat()


def record(level: str, message: str, source: str | None = None, logger: str = LOGGER) -> str:
    """One JSON log record, shaped like logsetup.JsonFormatter's."""
    entry = {"time": _now(), "level": level, "logger": logger, "message": message}
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
        return record(level, match.group(3), match.group(2)), level
    return record(previous_level, line), previous_level


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
