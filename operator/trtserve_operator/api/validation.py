"""Turn pydantic validation errors into one-line, field-naming messages.

The operator reports an invalid TRTModel with a single line (a ``kopf.PermanentError``, an
event, a condition message), so a :class:`pydantic.ValidationError` is rendered as
``<camelCase path>: <message>`` items joined by ``"; "``, e.g.::

    spec.conversion.calibration: INT8 requires calibration.uri or calibration.synthetic: true

Cross-field rules live in model validators, whose errors pydantic attaches to the model
itself. They raise :func:`rule_error`, which carries the field the rule is about (the same
``fieldPath`` as the CRD's CEL rule), so the path names the field and not only its parent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

RULE_ERROR_TYPE = "trtserve_rule"
"""pydantic error type of a violated cross-field rule (see :func:`rule_error`)."""

_MAX_LINE = 1024
"""Longest message returned: enough for several errors, short enough for a condition."""

_FRIENDLY = {
    "extra_forbidden": "unknown field",
    "missing": "required field",
}


def rule_error(field_path: str, message: str) -> PydanticCustomError:
    """Error for a cross-field rule of a model, about ``field_path`` below that model.

    ``field_path`` is the camelCase path relative to the model whose validator raises it,
    written like the CEL rule's ``fieldPath`` (``".calibration"``, ``".serving.gpus"``); the
    leading dot is optional and ``""`` means the model itself.
    """
    return PydanticCustomError(
        RULE_ERROR_TYPE,
        "{rule_message}",
        {"rule_message": message, "field_path": field_path.lstrip(".")},
    )


def format_loc(loc: Iterable[int | str], root: str = "") -> str:
    """``("conversion", "buildShapes", 0, "input_1")`` -> ``conversion.buildShapes[0].input_1``."""
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else part
    return path


def error_path(error: ErrorDetails, root: str = "") -> str:
    """camelCase path of the field one pydantic error is about, prefixed by ``root``."""
    path = format_loc(error["loc"], root)
    ctx = error.get("ctx") or {}
    if error["type"] == RULE_ERROR_TYPE and ctx.get("field_path"):
        suffix = str(ctx["field_path"])
        path = f"{path}.{suffix}" if path else suffix
    return path


def error_message(error: ErrorDetails) -> str:
    """The message of one pydantic error, without pydantic's ``Value error,`` prefix."""
    if error["type"] == RULE_ERROR_TYPE:
        return str((error.get("ctx") or {})["rule_message"])
    if error["type"] in _FRIENDLY:
        return _FRIENDLY[error["type"]]
    message = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def error_lines(errors: Sequence[ErrorDetails], root: str = "") -> list[str]:
    """One ``path: message`` string per error, in pydantic's order, duplicates removed."""
    lines: list[str] = []
    for error in errors:
        path = error_path(error, root)
        line = f"{path}: {error_message(error)}" if path else error_message(error)
        if line not in lines:
            lines.append(line)
    return lines


def describe_validation_error(error: ValidationError, root: str = "") -> str:
    """One line naming every invalid field by its camelCase path.

    ``root`` prefixes every path, e.g. ``"spec"`` when only the spec was validated.
    The line is cut at ~1 KiB (with ``…``) so it fits a condition message or an event.
    """
    line = "; ".join(error_lines(error.errors(include_url=False), root))
    line = " ".join(line.split())
    if len(line) > _MAX_LINE:
        line = line[: _MAX_LINE - 1] + "…"
    return line
