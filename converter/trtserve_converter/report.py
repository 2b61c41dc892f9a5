"""The converter's JSON report (docs/contract.md, "Report").

The report is read back by the operator from the container's termination message, which
Kubernetes caps at 4096 bytes: `render_report` guarantees the cap by shortening the
message first (ending it with `…`) and then dropping optional keys.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trtserve_converter.errors import SUCCEEDED_EXIT_CODE, SUCCEEDED_REASON, ConverterError
from trtserve_converter.termination import (
    ELLIPSIS,
    MAX_TERMINATION_MESSAGE_BYTES,
    encode,
    shorten_message,
    size,
)

LOG = logging.getLogger(__name__)

MAX_REPORT_BYTES = MAX_TERMINATION_MESSAGE_BYTES
STDOUT = "-"  # --report-path value meaning "print the report on stdout"
REPORT_SCHEMA_VERSION = 1
# The message is never cut below this many characters while optional keys remain:
# the operator shows it in `kubectl get trtmodels`, it is the most useful field.
MIN_MESSAGE_CHARS = 512
# Optional keys in the order they are dropped when the report is still too large.
DROP_ORDER = (
    "durations",
    "accuracy",
    "cache",
    "gpu",
    "tensorrtLoaded",
    "tensorrtLinked",
    "tensorflowVersion",
    "nativeOps",
    "trtEngineOps",
    "enginesBuilt",
    "modelName",
    "modelVersion",
    "precision",
)

Result = Literal["Succeeded", "Failed"]


def _finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN/Infinity: a non-finite number becomes null."""
    if value is None or not math.isfinite(value):
        return None
    return value


class AccuracyReport(BaseModel):
    """Outcome of the accuracy gate."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    passed: bool
    samples: int
    max_abs_error: float | None = Field(default=None, alias="maxAbsError")
    max_rel_error: float | None = Field(default=None, alias="maxRelError")
    top1_agreement: float | None = Field(default=None, alias="top1Agreement")

    @field_validator("max_abs_error", "max_rel_error", "top1_agreement")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        return _finite_or_none(value)


CacheResult = Literal["Hit", "Miss", "Disabled", "PublishFailed"]
MAX_CACHE_WARNING_CHARS = 200


class CacheReport(BaseModel):
    """What the converted-model cache did (cache.py): result, key and seconds per step."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    result: CacheResult
    key: str | None = None
    lookup: float | None = None
    wait: float | None = None
    download: float | None = None
    verify: float | None = None
    check: float | None = None
    publish: float | None = None
    warning: str | None = Field(default=None, max_length=MAX_CACHE_WARNING_CHARS)

    @field_validator("warning", mode="before")
    @classmethod
    def _short_line(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = " ".join(str(value).split())
        if len(text) > MAX_CACHE_WARNING_CHARS:
            text = text[: MAX_CACHE_WARNING_CHARS - 1] + ELLIPSIS
        return text


class Report(BaseModel):
    """One converter run's outcome; serialized with the contract's camelCase keys."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    v: int = REPORT_SCHEMA_VERSION
    result: Result
    reason: str
    exit_code: int = Field(alias="exitCode")
    message: str
    precision: str | None = None
    model_name: str | None = Field(default=None, alias="modelName")
    model_version: int | None = Field(default=None, alias="modelVersion")
    durations: dict[str, float] | None = None
    trt_engine_ops: int | None = Field(default=None, alias="trtEngineOps")
    native_ops: int | None = Field(default=None, alias="nativeOps")
    engines_built: int | None = Field(default=None, alias="enginesBuilt")
    accuracy: AccuracyReport | None = None
    tensorflow_version: str | None = Field(default=None, alias="tensorflowVersion")
    tensorrt_linked: str | None = Field(default=None, alias="tensorrtLinked")
    tensorrt_loaded: str | None = Field(default=None, alias="tensorrtLoaded")
    gpu: str | None = None
    cache: CacheReport | None = None

    @field_validator("message")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return " ".join(value.split())

    @classmethod
    def succeeded(cls, message: str, **fields: Any) -> Report:
        """A success report (exit code 0)."""
        return cls(
            result="Succeeded",
            reason=SUCCEEDED_REASON,
            exit_code=SUCCEEDED_EXIT_CODE,
            message=message,
            **fields,
        )

    @classmethod
    def failed(cls, error: ConverterError, **fields: Any) -> Report:
        """A failure report carrying the error's reason, exit code and message."""
        return cls(
            result="Failed",
            reason=error.reason,
            exit_code=error.exit_code,
            message=error.message,
            **fields,
        )


def render_report(report: Report, limit: int = MAX_REPORT_BYTES) -> str:
    """Compact one-line JSON of `report`, at most `limit` bytes in UTF-8."""
    data = report.model_dump(by_alias=True, exclude_none=True)
    shorten_message(data, MIN_MESSAGE_CHARS, limit)
    for key in DROP_ORDER:
        if size(data) <= limit:
            break
        data.pop(key, None)
    shorten_message(data, 0, limit)
    return encode(data)


def report_json(
    *,
    result: Result,
    reason: str,
    exit_code: int,
    message: str,
    limit: int = MAX_REPORT_BYTES,
    **optional: Any,
) -> str:
    """Build and render a report from contract keys (camelCase or snake_case).

    For other parties' contract tests: `report_json(result="Failed", reason="Timeout",
    exit_code=60, message="...", precision="FP16")`.
    """
    report = Report.model_validate(
        {"result": result, "reason": reason, "exitCode": exit_code, "message": message} | optional
    )
    return render_report(report, limit)


def write_report(report: Report, path: str | os.PathLike[str]) -> str:
    """Write the rendered report to `path` (e.g. /dev/termination-log; "-": stdout, one
    line) and return it.

    A report that cannot be written is logged, never raised: the exit code still tells.
    """
    text = render_report(report)
    if str(path) == STDOUT:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return text
    try:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as error:
        LOG.error("could not write the report to %s: %s", path, error)
    return text
