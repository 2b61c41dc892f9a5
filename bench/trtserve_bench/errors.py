"""Typed `trt-bench` errors: one class per reason and exit code of docs/bench.md.

Every message is one line naming the cause and the fix; the same text goes into the JSON
summary, which the operator copies into `status.benchmark`.
"""

# The class names are the contract's reasons (docs/bench.md), hence no Error suffix.
# ruff: noqa: N818

from __future__ import annotations

from typing import ClassVar

SUCCEEDED_REASON = "Succeeded"
SUCCEEDED_EXIT_CODE = 0


class BenchError(Exception):
    """Base class: a failure with a contract reason and exit code."""

    reason: ClassVar[str] = "InternalError"
    exit_code: ClassVar[int] = 70

    def __init__(self, message: str) -> None:
        self.message = " ".join(message.split())
        super().__init__(self.message)


class InvalidArguments(BenchError):
    """A bad flag or value."""

    reason = "InvalidArguments"
    exit_code = 2


class EndpointUnavailable(BenchError):
    """The endpoint cannot be reached within --wait-seconds."""

    reason = "EndpointUnavailable"
    exit_code = 10


class ModelNotAvailable(BenchError):
    """The endpoint does not serve the model, or not AVAILABLE within --wait-seconds."""

    reason = "ModelNotAvailable"
    exit_code = 11


class SignatureNotFound(BenchError):
    """The signature key is not in the model's metadata."""

    reason = "SignatureNotFound"
    exit_code = 21


class InvalidInputs(BenchError):
    """--inputs/--shape contradict the signature, or the server rejects the request."""

    reason = "InvalidInputs"
    exit_code = 22


class ErrorRateExceeded(BenchError):
    """More than --max-error-rate of a level's requests failed."""

    reason = "ErrorRateExceeded"
    exit_code = 40


class InternalError(BenchError):
    """Anything else: a bug."""

    reason = "InternalError"
    exit_code = 70


ALL_ERRORS: tuple[type[BenchError], ...] = (
    InvalidArguments,
    EndpointUnavailable,
    ModelNotAvailable,
    SignatureNotFound,
    InvalidInputs,
    ErrorRateExceeded,
    InternalError,
)

EXIT_CODE_MEANINGS = {
    "Succeeded": "every level measured, error rate within --max-error-rate",
    "InvalidArguments": "bad flag or value",
    "EndpointUnavailable": "the endpoint cannot be reached within --wait-seconds",
    "ModelNotAvailable": "the model is not served, or not AVAILABLE within --wait-seconds",
    "SignatureNotFound": "the signature key is not in the model's metadata",
    "InvalidInputs": "--inputs/--shape contradict the signature, or the server rejects them",
    "ErrorRateExceeded": "more than --max-error-rate of a level's requests failed",
    "InternalError": "anything else (a bug: please report it)",
}


def exit_codes() -> dict[str, int]:
    """Reason -> exit code, including success (the table of docs/bench.md)."""
    table = {SUCCEEDED_REASON: SUCCEEDED_EXIT_CODE}
    table.update({error.reason: error.exit_code for error in ALL_ERRORS})
    return table
