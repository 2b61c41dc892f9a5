"""The converter's JSON report (docs/contract.md), read from the termination message."""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from trtserve_operator.api.v1alpha1 import AccuracyResult, CacheStatus, ConversionStatus

EXIT_REASONS: dict[int, str] = {
    0: "Succeeded",
    2: "InvalidArguments",
    10: "SourceNotFound",
    11: "SourceAuthFailed",
    12: "FetchFailed",
    13: "BadArchive",
    14: "SourceTooLarge",
    20: "NotASavedModel",
    21: "SignatureNotFound",
    22: "InvalidBuildShape",
    30: "TensorRTUnavailable",
    31: "ConversionFailed",
    32: "CalibrationFailed",
    33: "EngineBuildFailed",
    40: "AccuracyGateFailed",
    50: "OutputWriteFailed",
    60: "Timeout",
    70: "InternalError",
}
"""Exit code -> reason, the contract's table (used when the report is missing)."""

_SIGNAL_REASONS = {137: "OOMKilledOrKilled", 143: "Terminated"}


class _ReportModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class ReportAccuracy(_ReportModel):
    passed: bool | None = None
    samples: int | None = None
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    top1_agreement: float | None = None


class ReportCache(_ReportModel):
    """The report's ``cache`` object (converter's cache.py)."""

    result: str | None = None
    key: str | None = None
    lookup: float | None = None
    wait: float | None = None
    download: float | None = None
    verify: float | None = None
    check: float | None = None
    publish: float | None = None
    warning: str | None = None

    def to_status(self) -> CacheStatus:
        steps = (self.lookup, self.wait, self.download, self.verify, self.check, self.publish)
        spent = [seconds for seconds in steps if seconds is not None]
        return CacheStatus(
            result=self.result,
            key=self.key,
            seconds=round(sum(spent), 3) if spent else None,
            warning=self.warning,
        )


class ConverterReport(_ReportModel):
    """The report's keys; unknown keys are ignored so newer converters stay readable."""

    v: int
    result: str
    reason: str
    exit_code: int
    message: str
    precision: str | None = None
    model_name: str | None = None
    model_version: int | None = None
    durations: dict[str, float] | None = None
    trt_engine_ops: Annotated[int | None, Field(ge=0)] = None
    native_ops: Annotated[int | None, Field(ge=0)] = None
    engines_built: Annotated[int | None, Field(ge=0)] = None
    accuracy: ReportAccuracy | None = None
    tensorflow_version: str | None = None
    tensorrt_linked: str | None = None
    tensorrt_loaded: str | None = None
    gpu: str | None = None
    cache: ReportCache | None = None

    def to_status(self) -> ConversionStatus:
        """The report as ``status.conversion``."""
        return ConversionStatus(
            result=self.result,
            reason=self.reason,
            message=self.message,
            exit_code=self.exit_code,
            precision=self.precision,
            duration_seconds=(self.durations or {}).get("total"),
            trt_engine_ops=self.trt_engine_ops,
            native_ops=self.native_ops,
            engines_built=self.engines_built,
            accuracy=(
                AccuracyResult.model_validate(self.accuracy.model_dump())
                if self.accuracy is not None
                else None
            ),
            tensorflow_version=self.tensorflow_version,
            tensorrt_version=self.tensorrt_loaded or self.tensorrt_linked,
            gpu=self.gpu,
            cache=self.cache.to_status() if self.cache is not None else None,
        )


def reason_for_exit_code(exit_code: int) -> str:
    if exit_code in EXIT_REASONS:
        return EXIT_REASONS[exit_code]
    return _SIGNAL_REASONS.get(exit_code, "ConverterExited")


def parse_termination_message(message: str | None, exit_code: int) -> ConversionStatus:
    """``status.conversion`` from a terminated ``convert`` container.

    The message is the converter's one-line JSON report; with
    ``FallbackToLogsOnError`` it is the log tail instead when the converter died before
    writing one (OOM kill, crash): then the reason comes from the exit code and the
    message is the last log line.
    """
    text = (message or "").strip()
    if text:
        try:
            return ConverterReport.model_validate(json.loads(text)).to_status()
        except (ValueError, ValidationError):
            pass
    last_line = text.splitlines()[-1].strip() if text else ""
    reason = reason_for_exit_code(exit_code)
    return ConversionStatus(
        result="Succeeded" if exit_code == 0 else "Failed",
        reason=reason,
        message=last_line[:1024] or f"converter exited with code {exit_code} and no report",
        exit_code=exit_code,
    )
