"""Converge one child object: compare the desired manifest with what exists, then
create, patch or leave it alone; delete a child that is no longer wanted.

What exists may carry more than the operator rendered (API defaults, a Service's
clusterIP, other controllers' annotations), so the comparison asks whether every
rendered field is present with the rendered value; lists must match element by element
(same length), so a container added or removed by hand is also put back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from trtserve_operator.services.quantities import same_quantity

MANAGED_TOP_LEVEL = ("spec", "data")
MANAGED_METADATA = ("labels", "annotations", "ownerReferences")


class Action(Enum):
    CREATE = "create"
    PATCH = "patch"
    DELETE = "delete"
    NOOP = "noop"


@dataclass(frozen=True)
class Step:
    action: Action
    desired: Mapping[str, Any]
    patch: Mapping[str, Any] | None = None


QUANTITY_MAPS = frozenset({"requests", "limits"})
"""Keys whose values are resource quantities (compared by value, see quantities.py)."""


def contains(actual: Any, desired: Any, *, quantities: bool = False) -> bool:
    """Whether ``actual`` holds every field of ``desired`` with the same value.

    Runs for every child on every event of a model, so it is written for speed: equal
    subtrees (most of them) are settled by one C-level ``==``, dicts and lists from JSON
    are checked by type before the slower ABC checks.
    """
    if actual == desired:
        return True
    if isinstance(desired, dict) or isinstance(desired, Mapping):  # noqa: SIM101
        if not (isinstance(actual, dict) or isinstance(actual, Mapping)):  # noqa: SIM101
            return False
        for key, value in desired.items():
            if key not in actual:
                return False
            if not contains(actual[key], value, quantities=quantities or key in QUANTITY_MAPS):
                return False
        return True
    if isinstance(desired, list):
        if not isinstance(actual, list) or len(actual) != len(desired):
            return False
        return all(contains(a, d) for a, d in zip(actual, desired, strict=True))
    if quantities:
        return same_quantity(actual, desired)
    return False


def managed_fields(desired: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a manifest the operator owns (what a patch sets)."""
    metadata = desired.get("metadata", {})
    fields: dict[str, Any] = {
        "metadata": {key: metadata[key] for key in MANAGED_METADATA if key in metadata}
    }
    fields.update({key: desired[key] for key in MANAGED_TOP_LEVEL if key in desired})
    return fields


def plan(desired: Mapping[str, Any], actual: Mapping[str, Any] | None) -> Step:
    """What to do so that ``actual`` matches ``desired``."""
    if actual is None or actual.get("metadata", {}).get("deletionTimestamp"):
        return Step(Action.CREATE, desired)
    wanted = managed_fields(desired)
    if contains(actual, wanted):
        return Step(Action.NOOP, desired)
    # A JSON merge patch replaces lists as a whole, which is what re-asserts containers,
    # volumes and args exactly as rendered.
    return Step(Action.PATCH, desired, wanted)


def removal(unwanted: Mapping[str, Any], actual: Mapping[str, Any] | None, owner_uid: str) -> Step:
    """Delete ``actual`` (a child the spec no longer wants, e.g. a PodDisruptionBudget
    turned off) if it exists, is not already going away and is controlled by the model
    ``owner_uid``: an object of that name made by someone else is left alone.
    ``unwanted`` names it (kind, namespace, name)."""
    if actual is None:
        return Step(Action.NOOP, unwanted)
    metadata = actual.get("metadata", {})
    controlled = any(
        ref.get("uid") == owner_uid and ref.get("controller")
        for ref in metadata.get("ownerReferences") or []
    )
    if metadata.get("deletionTimestamp") or not controlled:
        return Step(Action.NOOP, unwanted)
    return Step(Action.DELETE, unwanted)
