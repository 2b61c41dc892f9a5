"""Delayed retries for work triggered by watch events: for as long as it keeps failing.

kopf does not retry ``on.event`` handlers, and every handler of the operator is one: a
converge that failed would only be repeated by the next event. This schedules it again,
at most one pending retry per key, **until it succeeds** (the work itself returns at once
when its TRTModel is gone), as client-go's rate-limited work queues do for a controller:

- transient errors (timeouts, 5xx, 429, connection errors) back off from 1 s, doubling,
  up to a cap of 5 minutes;
- refusals (403 from RBAC or an admission policy, a 4xx from a webhook) on a slower
  schedule, from 30 s up to the same cap: they need someone to change something, and
  500 refused models must not become a write storm.

Every delay gets up to 20 % of jitter off, so models refused together do not retry in
lockstep. The concurrency of the retried work is the reconciler's (reconcile slots and the
write limiter), not this module's.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

from trtserve_operator.kube.errors import FencedError, KubeError, TransientError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff: ``first * 2**n``, at most ``cap`` seconds."""

    first: float
    cap: float

    def delay(self, failures: int) -> float:
        """The delay before the attempt that follows ``failures`` failures (>= 1)."""
        return float(min(self.cap, self.first * 2 ** min(failures - 1, 32)))


TRANSIENT = Backoff(first=1.0, cap=300.0)
REFUSED = Backoff(first=30.0, cap=300.0)
JITTER = 0.2


def jittered(delay: float, rng: random.Random) -> float:
    """``delay`` minus up to ``JITTER`` of it: never later than the cap."""
    return delay * (1 - JITTER * rng.random())


Observer = Callable[[str, int], None]
"""Told ``(reason, pending retries)`` after each failure and each end of a retry loop;
``reason`` is the error's class name (or ``""`` when a loop ends)."""


class Retries:
    """At most one pending retry per key; failures back off along ``TRANSIENT`` or
    ``REFUSED`` until the work succeeds."""

    def __init__(
        self,
        transient: Backoff = TRANSIENT,
        refused: Backoff = REFUSED,
        *,
        observer: Observer | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._transient = transient
        self._refused = refused
        self._observer = observer
        self._rng = rng or random.Random()
        self._pending: dict[Hashable, asyncio.Task[None]] = {}

    def observe(self, observer: Observer) -> None:
        """Report failures and pending retries to ``observer`` (the metrics)."""
        self._observer = observer

    def pending(self, key: Hashable) -> bool:
        return key in self._pending

    def schedule(
        self, key: Hashable, work: Callable[[], Awaitable[None]], error: KubeError | None = None
    ) -> None:
        """Run ``work`` later, and again after each failure, until it succeeds. ``error``:
        the failure that asks for it (its kind picks the first delay)."""
        if key not in self._pending:
            self._pending[key] = asyncio.create_task(self._run(key, work, error))
            self._tell(type(error).__name__ if error else "")

    def _backoff(self, error: KubeError | None) -> Backoff:
        if error is None or isinstance(error, TransientError):
            return self._transient
        return self._refused

    async def _run(
        self, key: Hashable, work: Callable[[], Awaitable[None]], error: KubeError | None
    ) -> None:
        failures = 1
        try:
            while True:
                delay = jittered(self._backoff(error).delay(failures), self._rng)
                await asyncio.sleep(delay)
                try:
                    await work()
                except FencedError:
                    return  # not leading (any more): the leader converges
                except KubeError as failed:
                    kind = "transient" if isinstance(failed, TransientError) else "refused"
                    error, failures = failed, failures + 1
                    next_delay = self._backoff(error).delay(failures)
                    logger.warning(
                        "Retry %d for %s failed (%s: %s); next attempt in about %.0fs",
                        failures - 1,
                        key,
                        kind,
                        failed,
                        next_delay,
                    )
                    self._tell(type(failed).__name__)
                else:
                    if failures > 1:
                        logger.info("Retry %d for %s succeeded", failures, key)
                    return
        finally:
            self._pending.pop(key, None)
            self._tell("")

    def _tell(self, reason: str) -> None:
        if self._observer is not None:
            self._observer(reason, len(self._pending))

    def cancel_all(self) -> None:
        for task in self._pending.values():
            task.cancel()
        self._pending.clear()
