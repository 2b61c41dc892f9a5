"""Watch-triggered work is retried with capped backoff and jitter, once per key, until it
succeeds (issue 15: it used to give up after 9 transient failures, and at once on a
refusal, leaving the model unmanaged until it was edited)."""

from __future__ import annotations

import asyncio
import itertools
import random

from trtserve_operator.handlers.retries import REFUSED, TRANSIENT, Backoff, Retries, jittered
from trtserve_operator.kube.errors import RejectedError, TransientError

FAST = Backoff(first=0.001, cap=0.004)
SLOWER = Backoff(first=0.01, cap=0.02)


def test_transient_failures_are_retried_until_success_once_per_key() -> None:
    calls: list[int] = []

    async def work() -> None:
        calls.append(len(calls))
        if len(calls) < 3:
            raise TransientError("503")

    async def scenario() -> bool:
        retries = Retries(FAST, SLOWER)
        retries.schedule("k", work)
        retries.schedule("k", work)  # already pending: not doubled
        await asyncio.sleep(0.2)
        return retries.pending("k")

    assert asyncio.run(scenario()) is False
    assert calls == [0, 1, 2]


def test_there_is_no_last_retry() -> None:
    """50 transient failures (a control-plane outage), then success: still converged."""
    calls: list[int] = []

    async def work() -> None:
        calls.append(1)
        if len(calls) <= 50:
            raise TransientError("connection refused")

    async def scenario() -> None:
        retries = Retries(FAST, SLOWER)
        retries.schedule("k", work, TransientError("503"))
        for _ in range(500):
            await asyncio.sleep(0.005)
            if not retries.pending("k"):
                break
        assert not retries.pending("k")

    asyncio.run(scenario())
    assert len(calls) == 51


def test_a_refusal_is_retried_on_the_slower_schedule_until_it_is_lifted() -> None:
    """A 403 (RBAC not granted yet) is retried, not abandoned: once the rights exist the
    work succeeds with no new event."""
    calls: list[float] = []
    granted = False

    async def work() -> None:
        calls.append(asyncio.get_running_loop().time())
        if not granted:
            raise RejectedError("403 Forbidden")

    async def scenario() -> None:
        nonlocal granted
        retries = Retries(FAST, SLOWER)
        retries.schedule("k", work, RejectedError("403 Forbidden"))
        await asyncio.sleep(0.1)
        assert retries.pending("k")
        granted = True
        await asyncio.sleep(0.1)
        assert not retries.pending("k")

    asyncio.run(scenario())
    assert len(calls) >= 3
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert min(gaps) >= SLOWER.first * 0.8 * 0.9  # the refusal schedule, jitter included


def test_backoff_doubles_up_to_its_cap_and_jitter_only_shortens() -> None:
    assert [TRANSIENT.delay(n) for n in range(1, 12)] == [
        1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300,
    ]  # fmt: skip
    assert REFUSED.delay(1) == 30
    assert REFUSED.delay(100) == 300
    rng = random.Random(1)
    samples = [jittered(300, rng) for _ in range(1000)]
    assert max(samples) <= 300
    assert min(samples) >= 240
    assert len({round(s) for s in samples}) > 30  # spread: no lockstep


def test_failures_and_pending_retries_are_reported() -> None:
    seen: list[tuple[str, int]] = []
    calls: list[int] = []

    async def work() -> None:
        calls.append(1)
        if len(calls) < 2:
            raise RejectedError("403")

    async def scenario() -> None:
        retries = Retries(FAST, SLOWER, observer=lambda reason, n: seen.append((reason, n)))
        retries.schedule("k", work, TransientError("503"))
        await asyncio.sleep(0.2)

    asyncio.run(scenario())
    assert seen == [("TransientError", 1), ("RejectedError", 1), ("", 0)]


def test_cancel_all_stops_pending_retries() -> None:
    calls: list[int] = []

    async def work() -> None:
        calls.append(1)

    async def scenario() -> None:
        retries = Retries(Backoff(10, 10), Backoff(10, 10))
        retries.schedule("k", work)
        await asyncio.sleep(0)
        retries.cancel_all()
        assert not retries.pending("k")

    asyncio.run(scenario())
    assert calls == []
