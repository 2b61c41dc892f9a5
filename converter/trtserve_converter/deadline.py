"""--timeout-seconds: a process-wide alarm that raises ConversionTimeout.

SIGALRM interrupts Python code between bytecodes; a long native call (e.g. a TensorRT
engine build) is interrupted when it returns to Python. The alarm only works in the main
thread; elsewhere (embedded use) the limit is logged and not enforced.

An exception raised by a signal handler can leave a lock held for good: Python runs the
handler right after a call returns, so the alarm could land in ``logging.Handler.handle``
between taking the handler's lock and the ``try`` that releases it, and every other thread
logging through that handler then waited forever. So once the alarm's exception is caught,
any logging lock the main thread still holds is released: at that point the main thread
is in no logging call, so such a lock can only have been abandoned by the interrupted one.
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


def release_abandoned_logging_locks() -> int:
    """Release the logging locks (every handler's and the module's) held by this thread;
    how many were."""
    handlers = (ref() for ref in list(logging._handlerList))  # type: ignore[attr-defined]
    locks = [getattr(handler, "lock", None) for handler in handlers]
    locks.append(getattr(logging, "_lock", None))
    released = 0
    for lock in locks:
        is_owned = getattr(lock, "_is_owned", None)
        if is_owned is None:
            continue
        if is_owned():
            released += 1
        while is_owned():
            lock.release()  # type: ignore[union-attr]
    return released


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
        if released := release_abandoned_logging_locks():
            LOG.debug("the alarm interrupted logging: released %d abandoned lock(s)", released)
        raise ConversionTimeout(
            f"the conversion took longer than --timeout-seconds={seconds:g}: raise "
            "spec.conversion.timeoutSeconds or reduce the build shapes/calibration batches"
        ) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
