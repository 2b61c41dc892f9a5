"""Give freed heap memory back to the operating system after bursts.

After a restart the operator lists and processes every watched object at once; CPython
frees those objects, but glibc keeps the freed heap pages, so the resident set stays at
the burst's peak. ``malloc_trim(0)`` returns them. It is a no-op elsewhere (musl, macOS).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import gc
import logging
from typing import Any

logger = logging.getLogger(__name__)


def trim_heap(*, collect: bool = False) -> bool:
    """Return free heap pages to the OS (after a full garbage collection when
    ``collect``); False when unsupported.

    The periodic trim does not collect: the operator makes next to no reference cycles,
    and a full collection walks every live object (the indexes of hundreds of models):
    profiled at 500 models it cost more CPU than the trimming itself.
    """
    if collect:
        gc.collect()
    trim = _malloc_trim()
    return trim is not None and bool(trim(0))


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, looked up once (``find_library`` runs ``ldconfig``)."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


async def trim_periodically(interval: float) -> None:
    """Trim the heap every ``interval`` seconds (cheap: milliseconds per call)."""
    while True:
        await asyncio.sleep(interval)
        trim_heap()
