"""Delayed retries for work triggered by watch events.

kopf does not retry ``on.event`` handlers, and every handler of the operator is one: a
converge that failed on a transient API error would only be repeated by the next event.
This schedules it again with backoff, at most one pending retry per TRTModel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence

from trtserve_operator.kube.errors import KubeError, TransientError

logger = logging.getLogger(__name__)

DELAYS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 60, 120, 300)


class Retries:
    """At most one pending retry per key; transient failures back off along ``delays``."""

    def __init__(self, delays: Sequence[float] = DELAYS) -> None:
        self._delays = tuple(delays)
        self._pending: dict[Hashable, asyncio.Task[None]] = {}

    def pending(self, key: Hashable) -> bool:
        return key in self._pending

    def schedule(self, key: Hashable, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` later, again on transient errors, until it succeeds or gives up."""
        if key not in self._pending:
            self._pending[key] = asyncio.create_task(self._run(key, work))

    async def _run(self, key: Hashable, work: Callable[[], Awaitable[None]]) -> None:
        try:
            for attempt, delay in enumerate(self._delays, start=1):
                await asyncio.sleep(delay)
                try:
                    await work()
                except TransientError as error:
                    logger.warning("Retry %d for %s failed: %s", attempt, key, error)
                except KubeError as error:
                    logger.error("Retry %d for %s refused, giving up: %s", attempt, key, error)
                    return
                else:
                    return
            logger.error("Giving up on %s after %d retries", key, len(self._delays))
        finally:
            self._pending.pop(key, None)

    def cancel_all(self) -> None:
        for task in self._pending.values():
            task.cancel()
        self._pending.clear()
