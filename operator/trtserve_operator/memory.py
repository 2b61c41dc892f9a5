"""Give freed heap memory back to the operating system after bursts.

After a restart the operator lists and processes every watched object at once; CPython
frees those objects, but glibc keeps the freed heap pages, so the resident set stays at
the burst's peak. ``malloc_trim(0)`` returns them. It is a no-op elsewhere (musl, macOS).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging

logger = logging.getLogger(__name__)


def trim_heap() -> bool:
    """Collect garbage and return free heap pages to the OS; False when unsupported."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))


async def trim_periodically(interval: float) -> None:
    """Trim the heap every ``interval`` seconds (cheap: milliseconds per call)."""
    while True:
        await asyncio.sleep(interval)
        trim_heap()
