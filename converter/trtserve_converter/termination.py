"""Compact JSON for a Kubernetes termination message, which is capped at 4096 bytes.

`trt-convert`'s report and `trt-bench`'s summary both end up there (the operator reads
them from the pod's status); both shorten their `message` the same way when the whole
document would not fit.
"""

from __future__ import annotations

import json
from typing import Any

MAX_TERMINATION_MESSAGE_BYTES = 4096
ELLIPSIS = "…"


def encode(data: dict[str, Any]) -> str:
    """One line of compact JSON; NaN and infinities are refused (not JSON)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def size(data: dict[str, Any]) -> int:
    """Bytes of :func:`encode` in UTF-8."""
    return len(encode(data).encode("utf-8"))


def shorten_message(data: dict[str, Any], floor: int, limit: int) -> None:
    """Cut ``data["message"]`` (keeping at least ``floor`` characters, then an ellipsis)
    until ``data`` fits in ``limit`` bytes; unchanged when it already fits."""
    message: str = data["message"]
    if size(data) <= limit or len(message) <= floor:
        return
    low, high, best = floor, len(message) - 1, floor
    while low <= high:  # longest prefix that fits, by bisection (JSON escaping varies)
        middle = (low + high) // 2
        data["message"] = message[:middle] + ELLIPSIS
        if size(data) <= limit:
            best, low = middle, middle + 1
        else:
            high = middle - 1
    data["message"] = message[:best] + ELLIPSIS
