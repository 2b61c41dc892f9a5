"""The conversion child's progress, told to its parent (supervisor.py) over a pipe.

The parent owns ``--timeout-seconds``: when it stops the child at the deadline, the report
it writes says which step the child was in and carries what the child knew so far (the
durations of the finished steps, the TensorFlow and TensorRT versions, the GPU, the cache
result). The child tells it here: one JSON object per line on the file descriptor named by
``TRTSERVE_CONVERTER_PROGRESS_FD``, each adding to or replacing keys of the last one.

Writing never fails the work: without the variable (trt-convert run in-process, e.g. by
the tests) nothing is sent, and a parent gone away switches the channel off.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from pydantic_core import to_jsonable_python

LOG = logging.getLogger(__name__)
PROGRESS_FD = "TRTSERVE_CONVERTER_PROGRESS_FD"


class ProgressChannel:
    """The write end of the progress pipe (or nothing)."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ProgressChannel:
        value = (os.environ if environ is None else environ).get(PROGRESS_FD, "")
        return cls(int(value) if value.isdigit() else None)

    @property
    def enabled(self) -> bool:
        return self._fd is not None

    def send(self, **message: Any) -> None:
        """Tell the parent `message` (JSON-able values, pydantic models included)."""
        if self._fd is None:
            return
        line = json.dumps(to_jsonable_python(message), separators=(",", ":")) + "\n"
        with self._lock:  # one line at a time; a line below PIPE_BUF is written whole
            try:
                os.write(self._fd, line.encode())
            except OSError as error:  # the parent is gone: keep converting, stop telling
                LOG.debug("progress channel closed (%s): no more progress sent", error)
                self._fd = None


_channel: ProgressChannel | None = None


def channel() -> ProgressChannel:
    """This process's channel, opened from the environment on first use."""
    global _channel  # noqa: PLW0603 - one pipe per process, opened once
    if _channel is None:
        _channel = ProgressChannel.from_environment()
    return _channel
