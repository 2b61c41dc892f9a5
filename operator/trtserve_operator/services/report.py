"""The converter's JSON report (docs/contract.md), read from the termination message."""

from __future__ import annotations

import json
import re
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


REPORT_INVALID = "ConverterReportInvalid"
"""Reason of a report that cannot be read, or that contradicts the exit code."""
OOM_KILLED = "OOMKilled"
# Converter flags a message may name, and the TRTModel field a kubectl user sets instead.
FLAG_FIELDS: tuple[tuple[str, str], ...] = (
    ("--accuracy-min-top1", "spec.conversion.accuracy.minTop1Agreement"),
    ("--accuracy-rtol", "spec.conversion.accuracy.rtol"),
    ("--accuracy-atol", "spec.conversion.accuracy.atol"),
    ("--accuracy-samples", "spec.conversion.accuracy.samples"),
    ("--calibration-batch-size", "spec.conversion.calibration.batchSize"),
    ("--calibration-batches", "spec.conversion.calibration.batches"),
    ("--calibration-source", "spec.conversion.calibration.uri"),
    ("--build-shape", "spec.conversion.buildShapes"),
    ("--max-workspace-bytes", "spec.conversion.maxWorkspaceBytes"),
    ("--timeout-seconds", "spec.conversion.timeoutSeconds"),
    ("--warmup-records", "spec.conversion.warmupRecords"),
)


def reason_for_exit_code(exit_code: int) -> str:
    if exit_code in EXIT_REASONS:
        return EXIT_REASONS[exit_code]
    return _SIGNAL_REASONS.get(exit_code, "ConverterExited")


def one_line(text: str) -> str:
    """Whitespace (newlines included) collapsed: status messages are one line."""
    return " ".join(text.split())


def with_spec_fields(message: str) -> str:
    """The converter's message with each flag it names replaced by the TRTModel field the
    operator renders that flag from, e.g. ``--accuracy-min-top1`` ->
    ``spec.conversion.accuracy.minTop1Agreement`` (a kubectl user never sets flags)."""
    for flag, field in FLAG_FIELDS:
        message = re.sub(rf"{re.escape(flag)}(?![\w-])", field, message)
    return message


def _failed_without_report(
    exit_code: int, message: str, reason: str | None = None
) -> ConversionStatus:
    return ConversionStatus(
        result="Succeeded" if exit_code == 0 else "Failed",
        reason=reason or reason_for_exit_code(exit_code),
        message=message[:1024],
        exit_code=exit_code,
    )


def parse_termination_message(
    message: str | None, exit_code: int, kubelet_reason: str | None = None
) -> ConversionStatus:
    """``status.conversion`` from a terminated ``convert`` container. The exit code decides
    success or failure; the report (the converter's one-line JSON) says the rest:

    - the kubelet says ``OOMKilled``: reason ``OOMKilled``, and which limit to raise;
    - a report that agrees with the exit code: the report, flags named as spec fields;
    - a report that does not parse (cut short, garbage) or contradicts the exit code
      (another exit code, or Succeeded with a non-zero exit and the other way round):
      ``ConverterReportInvalid``, with the exit code and what the report said;
    - no report (with ``FallbackToLogsOnError`` the message is then the log tail: the
      converter died before writing one): the reason of the exit code and the last log
      line.
    """
    text = (message or "").strip()
    if kubelet_reason == OOM_KILLED:
        return _failed_without_report(
            exit_code,
            f"the converter ran out of memory (killed by the kubelet, exit code {exit_code}): "
            "raise spec.serving.resources.limits.memory, which the converter shares, or "
            "lower spec.conversion.calibration.batchSize",
            OOM_KILLED,
        )
    if not text:
        return _failed_without_report(
            exit_code, f"converter exited with code {exit_code} and no report"
        )
    if text.startswith("{"):
        return _from_report(text, exit_code)
    last_line = one_line(text.splitlines()[-1])
    return _failed_without_report(
        exit_code, last_line or f"converter exited with code {exit_code} and no report"
    )


def _from_report(text: str, exit_code: int) -> ConversionStatus:
    exit_reason = reason_for_exit_code(exit_code)
    try:
        report = ConverterReport.model_validate(json.loads(text))
    except (ValueError, ValidationError):
        return _failed_without_report(
            exit_code,
            f"the converter exited with code {exit_code} ({exit_reason}) and its report "
            "cannot be read: kubectl logs -c convert says what happened",
            REPORT_INVALID,
        )
    succeeded = report.result == "Succeeded"
    if report.exit_code != exit_code or succeeded != (exit_code == 0):
        said = one_line(with_spec_fields(report.message))[:512]
        return _failed_without_report(
            exit_code,
            f"the converter exited with code {exit_code} ({exit_reason}) but its report says "
            f"{report.result} {report.reason} (exit code {report.exit_code}): {said}",
            REPORT_INVALID,
        )
    status = report.to_status()
    status.message = one_line(with_spec_fields(status.message or ""))
    return status
