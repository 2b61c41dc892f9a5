"""Bounded write concurrency, children before status.

The operator sends at most ``limit`` write requests at a time, with no client-side rate
limit: each waits for the API server's answer, so the server sets the pace (and API
Priority and Fairness can push back with 429, which is retried with backoff). After a
restart with hundreds of models, the writes that create or repair children go first; the
status writes and Events (what people read) wait until no child write is queued, so the
children of every model exist as early as the API server allows.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import IntEnum


class Priority(IntEnum):
    CHILD = 0
    STATUS = 1


class WriteLimiter:
    """A semaphore of ``limit`` slots whose waiters are served by priority, then FIFO."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._free = limit
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @asynccontextmanager
    async def slot(self, priority: Priority) -> AsyncIterator[None]:
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: Priority) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (int(priority), next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # the slot was handed over just before the cancellation
            raise

    def _release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)  # the slot passes straight to the waiter
                return
        self._free += 1
