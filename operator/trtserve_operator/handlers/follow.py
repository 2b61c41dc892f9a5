"""Run a service call for a change; retry transient API errors.

Nothing retries the informers' callbacks, so failed work is retried here with backoff,
at most one pending retry per key (a TRTModel's converge, its benchmark step), until it
succeeds (:mod:`.retries`): transient API errors from 1 s, refusals (a child the API
server refused: the status says ``Ready=False`` with its message meanwhile) on a slower
schedule, so a model refused by RBAC converges once the rights are granted, with no
restart and no spec change.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable

import kopf

from trtserve_operator.handlers.retries import Retries
from trtserve_operator.kube.errors import FencedError, KubeError, TransientError

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
    """``await work()``; when it fails, schedule ``retry`` (once per ``key``) with the
    backoff of the error. ``what`` names the work in the log ("Converging ns/name")."""
    try:
        await work()
    except FencedError as error:
        logger.debug("%s stopped: %s", what, error)  # the leader converges
    except TransientError as error:
        logger.warning("%s failed, retrying later: %s", what, error)
        retries.schedule(key, retry, error)
    except KubeError as error:
        logger.error("%s refused, retrying on the slower schedule: %s", what, error)
        retries.schedule(key, retry, error)
