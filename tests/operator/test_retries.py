"""Watch-triggered work is retried with backoff on transient API errors, once per key."""

from __future__ import annotations

import asyncio

from trtserve_operator.handlers.retries import Retries
from trtserve_operator.kube.errors import RejectedError, TransientError


def test_transient_failures_are_retried_until_success() -> None:
    calls: list[int] = []

    async def work() -> None:
        calls.append(len(calls))
        if len(calls) < 3:
            raise TransientError("503")

    async def scenario() -> bool:
        retries = Retries(delays=(0.01,) * 5)
        retries.schedule("k", work)
        retries.schedule("k", work)  # already pending: not doubled
        await asyncio.sleep(0.2)
        return retries.pending("k")

    assert asyncio.run(scenario()) is False
    assert calls == [0, 1, 2]


def test_gives_up_after_the_last_delay() -> None:
    calls: list[int] = []

    async def work() -> None:
        calls.append(1)
        raise TransientError("503")

    async def scenario() -> None:
        retries = Retries(delays=(0.01, 0.01))
        retries.schedule("k", work)
        await asyncio.sleep(0.2)
        assert not retries.pending("k")

    asyncio.run(scenario())
    assert len(calls) == 2


def test_other_errors_end_the_retries() -> None:
    calls: list[int] = []

    async def work() -> None:
        calls.append(1)
        raise RejectedError("403")

    async def scenario() -> None:
        retries = Retries(delays=(0.01, 0.01, 0.01))
        retries.schedule("k", work)
        await asyncio.sleep(0.2)
        assert not retries.pending("k")

    asyncio.run(scenario())
    assert len(calls) == 1


def test_cancel_all_stops_pending_retries() -> None:
    calls: list[int] = []

    async def work() -> None:
        calls.append(1)

    async def scenario() -> None:
        retries = Retries(delays=(10,))
        retries.schedule("k", work)
        await asyncio.sleep(0)
        retries.cancel_all()
        assert not retries.pending("k")

    asyncio.run(scenario())
    assert calls == []
