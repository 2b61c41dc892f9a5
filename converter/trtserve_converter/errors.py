"""Typed converter errors: one class per reason and exit code of docs/contract.md.

Every message is one line naming the cause and the fix; the same text goes into the
report, which the operator copies into the TRTModel status.
"""

# The class names are the contract's reasons (docs/contract.md), hence no Error suffix.
# ruff: noqa: N818

from __future__ import annotations

from typing import ClassVar

SUCCEEDED_REASON = "Succeeded"
SUCCEEDED_EXIT_CODE = 0


class ConverterError(Exception):
    """Base class: a failure with a contract reason and exit code."""

    reason: ClassVar[str] = "InternalError"
    exit_code: ClassVar[int] = 70

    def __init__(self, message: str) -> None:
        # One line: newlines would break `kubectl get` columns and log parsing.
        self.message = " ".join(message.split())
        super().__init__(self.message)


class InvalidArguments(ConverterError):
    """A bad flag or value."""

    reason = "InvalidArguments"
    exit_code = 2


class SourceNotFound(ConverterError):
    """Nothing at the source URI."""

    reason = "SourceNotFound"
    exit_code = 10


class SourceAuthFailed(ConverterError):
    """Credentials missing or refused."""

    reason = "SourceAuthFailed"
    exit_code = 11


class FetchFailed(ConverterError):
    """Network error or timeout after retries."""

    reason = "FetchFailed"
    exit_code = 12


class BadArchive(ConverterError):
    """Corrupt archive, or an entry escaping the target (absolute path, `..`, link)."""

    reason = "BadArchive"
    exit_code = 13


class SourceTooLarge(ConverterError):
    """Download (or extracted archive) over --max-source-bytes."""

    reason = "SourceTooLarge"
    exit_code = 14


class NotASavedModel(ConverterError):
    """No saved_model.pb found, or it does not load."""

    reason = "NotASavedModel"
    exit_code = 20


class SignatureNotFound(ConverterError):
    """Signature key missing; the message lists the existing ones."""

    reason = "SignatureNotFound"
    exit_code = 21


class InvalidBuildShape(ConverterError):
    """A build shape contradicts the signature."""

    reason = "InvalidBuildShape"
    exit_code = 22


class TensorRTUnavailable(ConverterError):
    """This TensorFlow has no TensorRT, TensorRT cannot be loaded, or no GPU is visible."""

    reason = "TensorRTUnavailable"
    exit_code = 30


class ConversionFailed(ConverterError):
    """TF-TRT conversion failed."""

    reason = "ConversionFailed"
    exit_code = 31


class CalibrationFailed(ConverterError):
    """INT8 calibration data missing, unreadable or failing."""

    reason = "CalibrationFailed"
    exit_code = 32


class EngineBuildFailed(ConverterError):
    """Building engines for the build shapes failed."""

    reason = "EngineBuildFailed"
    exit_code = 33


class AccuracyGateFailed(ConverterError):
    """Converted outputs differ from the original beyond tolerance."""

    reason = "AccuracyGateFailed"
    exit_code = 40


class OutputWriteFailed(ConverterError):
    """The model could not be written."""

    reason = "OutputWriteFailed"
    exit_code = 50


class ConversionTimeout(ConverterError):
    """--timeout-seconds exceeded (named so it does not shadow the builtin TimeoutError)."""

    reason = "Timeout"
    exit_code = 60


class InternalError(ConverterError):
    """Anything else: a bug."""

    reason = "InternalError"
    exit_code = 70


ALL_ERRORS: tuple[type[ConverterError], ...] = (
    InvalidArguments,
    SourceNotFound,
    SourceAuthFailed,
    FetchFailed,
    BadArchive,
    SourceTooLarge,
    NotASavedModel,
    SignatureNotFound,
    InvalidBuildShape,
    TensorRTUnavailable,
    ConversionFailed,
    CalibrationFailed,
    EngineBuildFailed,
    AccuracyGateFailed,
    OutputWriteFailed,
    ConversionTimeout,
    InternalError,
)


TF_NOISE_PREFIXES = ("Graph execution error", "Detected at node", "[[")


def summarize(error: BaseException, limit: int = 400) -> str:
    """`Type: message` on one line, without TensorFlow's Python stack dump.

    TF op errors embed "Detected at node ... defined at (most recent call last):" and an
    indented stack before the actual cause; only the unindented lines carry the cause.
    """
    text = str(error)
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line[0].isspace() and not line.startswith(TF_NOISE_PREFIXES)
    ]
    message = " ".join(" ".join(lines).split()) or " ".join(text.split())
    if len(message) > limit:
        message = message[: limit - 1] + "…"
    return f"{type(error).__name__}: {message}"


def exit_codes() -> dict[str, int]:
    """Reason -> exit code, including success (the table of docs/contract.md)."""
    table = {SUCCEEDED_REASON: SUCCEEDED_EXIT_CODE}
    table.update({error.reason: error.exit_code for error in ALL_ERRORS})
    return table
