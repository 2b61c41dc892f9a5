"""Coalesce per-key work: many requests within an interval become one run.

A new model's Deployment, ReplicaSet and pods change many times within a second (created,
scheduled, unschedulable, image pulling...). Writing the TRTModel's status on each would
cost a write per change; instead every change *requests* a status update and the update
runs once, ``interval`` seconds after the first request, computed from the cache as it is
then. Runs of one key are at least ``interval`` apart, so a model's status is written at
most once per interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

from trtserve_operator.kube.errors import FencedError, KubeError, TransientError

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

RETRY_DELAYS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 60, 120, 300)


class Coalescer(Generic[K]):
    """Runs ``work(key)`` at most once per ``interval`` per key, after a request.

    A transient API error runs it again after a backoff (``retry_delays``, the last one
    repeated); another API error is logged and waits for the next request.
    """

    def __init__(
        self,
        work: Callable[[K], Awaitable[None]],
        interval: float,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self._work = work
        self._interval = interval
        self._retry_delays = tuple(retry_delays)
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._running: dict[K, asyncio.Task[None]] = {}
        self._last_start: dict[K, float] = {}
        self._failures: dict[K, int] = {}

    def pending(self, key: K) -> bool:
        return key in self._timers or key in self._running

    def request(self, key: K, *, delay: float | None = None) -> None:
        """Run ``work(key)`` soon: ``interval`` (or ``delay``) from now, at the earliest
        ``interval`` after its last run started. A request while one is scheduled joins
        it; a request while one runs schedules the next."""
        if key in self._timers:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        at = now + (self._interval if delay is None else delay)
        last = self._last_start.get(key)
        if last is not None:
            at = max(at, last + self._interval)
        self._timers[key] = loop.call_at(at, self._start, key)

    def _start(self, key: K) -> None:
        self._timers.pop(key, None)
        if key in self._running:  # still running: run again right after it
            self._timers[key] = asyncio.get_running_loop().call_later(
                self._interval, self._start, key
            )
            return
        self._last_start[key] = asyncio.get_running_loop().time()
        self._running[key] = asyncio.create_task(self._run(key))

    async def _run(self, key: K) -> None:
        try:
            await self._work(key)
        except TransientError as error:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
            delay = self._retry_delays[min(failures, len(self._retry_delays) - 1)]
            logger.warning("%s failed, retrying in %s s: %s", key, delay, error)
            self._running.pop(key, None)
            self.request(key, delay=delay)
            return
        except FencedError:
            logger.debug("%s not written: not leading", key)
        except KubeError as error:
            logger.error("%s failed: %s", key, error)
        except Exception:
            logger.exception("%s failed unexpectedly", key)
        else:
            self._failures.pop(key, None)
        self._running.pop(key, None)

    def forget(self, key: K) -> None:
        """Cancel what is scheduled for ``key`` and drop its history."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._last_start.pop(key, None)
        self._failures.pop(key, None)

    def cancel_all(self) -> list[asyncio.Task[None]]:
        """Cancel everything scheduled and running, forget every key's history; the
        cancelled tasks, to wait for."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        self._running.clear()
        self._last_start.clear()
        self._failures.clear()
        return tasks

    async def close(self) -> None:
        """Cancel everything scheduled and wait for what runs."""
        await asyncio.gather(*self.cancel_all(), return_exceptions=True)
