"""Run a reconciler call from a watch-event handler; retry transient API errors.

kopf does not retry ``on.event`` handlers (it logs the exception and waits for the next
event), so transient API errors are retried here with backoff, at most one pending retry
per TRTModel. Other API errors are logged: the status says what is wrong (a refused
child is ``Ready=False``), and the next change of the TRTModel or its children converges
again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

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
    key: tuple[str, str],
    work: Callable[[], Awaitable[None]],
    *,
    retry: Callable[[], Awaitable[None]],
) -> None:
    """``await work()``; on a transient error schedule ``retry`` (once per key)."""
    try:
        await work()
    except TransientError as error:
        logger.warning("Converging %s/%s failed, retrying later: %s", *key, error)
        retries.schedule(key, retry)
    except KubeError as error:
        logger.error("Converging %s/%s failed: %s", *key, error)
