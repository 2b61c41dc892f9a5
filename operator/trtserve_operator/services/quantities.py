"""Kubernetes resource quantities, compared by value.

The API server stores quantities in canonical form ("0.5" comes back as "500m", "1024Mi"
as "1Gi"), so comparing the rendered text with what exists would find a difference that
is none, and patch again after every event and every restart.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[numkMGTPE])?$")


def parse_quantity(text: str) -> Decimal | None:
    """The value of a quantity string, or ``None`` when it is not one."""
    match = _QUANTITY.match(text.strip())
    if not match:
        return None
    try:
        number = Decimal(match[1])
    except InvalidOperation:
        return None
    suffix = match[2] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix[:1] in ("e", "E") and len(suffix) > 1:
        return number * Decimal(10) ** int(suffix[1:])
    return number * _DECIMAL[suffix]


def same_quantity(actual: object, desired: object) -> bool:
    """Whether two quantities (strings or numbers) have the same value."""
    if actual == desired:
        return True
    left = parse_quantity(str(actual))
    right = parse_quantity(str(desired))
    return left is not None and left == right
