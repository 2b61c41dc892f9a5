"""--timeout-seconds: a process-wide alarm that raises ConversionTimeout.

SIGALRM interrupts Python code between bytecodes; a long native call (e.g. a TensorRT
engine build) is interrupted when it returns to Python. The alarm only works in the main
thread; elsewhere (embedded use) the limit is logged and not enforced.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from trtserve_converter.errors import ConversionTimeout

LOG = logging.getLogger(__name__)


class DeadlineExceeded(BaseException):
    """Raised by the alarm. A BaseException, so the `except Exception` wrappers that
    translate step errors (and TF's own handlers) cannot turn it into another reason;
    `deadline` converts it to ConversionTimeout at the top."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise ConversionTimeout inside the block once `seconds` have passed."""
    if threading.current_thread() is not threading.main_thread():
        LOG.warning("not in the main thread: --timeout-seconds is not enforced")
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise DeadlineExceeded

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except DeadlineExceeded:
        raise ConversionTimeout(
            f"the conversion took longer than --timeout-seconds={seconds:g}: raise "
            "spec.conversion.timeoutSeconds or reduce the build shapes/calibration batches"
        ) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
