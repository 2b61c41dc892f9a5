"""Adapter errors -> kopf's retry semantics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import kopf

from trtserve_operator.kube.errors import RejectedError, TransientError

MAX_BACKOFF_SECONDS = 300


def backoff(retry: int) -> float:
    """1, 2, 4 ... seconds, capped at five minutes."""
    return float(min(2**retry, MAX_BACKOFF_SECONDS))


@asynccontextmanager
async def kopf_errors(retry: int) -> AsyncIterator[None]:
    """Transient API failures are retried with backoff; refusals are permanent."""
    try:
        yield
    except TransientError as error:
        raise kopf.TemporaryError(str(error), delay=backoff(retry)) from error
    except RejectedError as error:
        raise kopf.PermanentError(str(error)) from error
