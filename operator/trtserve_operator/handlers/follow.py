"""Run a service call for a change; retry transient API errors.

Nothing retries the informers' callbacks, so transient API errors are retried here with
backoff, at most one pending retry per key (a TRTModel's converge, its benchmark step).
Other API errors are logged: the status says what is wrong (a refused child is
``Ready=False``), and the next change of the TRTModel or its children converges again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable

import kopf

from trtserve_operator.handlers.retries import Retries
from trtserve_operator.kube.errors import KubeError, TransientError

logger = logging.getLogger(__name__)


def retries_of(memo: kopf.Memo) -> Retries:
    retries = memo.setdefault("retries", Retries())
    assert isinstance(retries, Retries)
    return retries


async def follow(
    retries: Retries,
    key: Hashable,
    work: Callable[[], Awaitable[None]],
    *,
    retry: Callable[[], Awaitable[None]],
    what: str,
) -> None:
    """``await work()``; on a transient error schedule ``retry`` (once per ``key``).
    ``what`` names the work in the log ("Converging ns/name")."""
    try:
        await work()
    except TransientError as error:
        logger.warning("%s failed, retrying later: %s", what, error)
        retries.schedule(key, retry)
    except KubeError as error:
        logger.error("%s failed: %s", what, error)
