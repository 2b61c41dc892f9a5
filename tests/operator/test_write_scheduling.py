"""Coalesced status updates and the prioritised write limiter (pure asyncio, no API)."""

from __future__ import annotations

import asyncio

from trtserve_operator.kube.errors import RejectedError, TransientError
from trtserve_operator.services.coalesce import Coalescer
from trtserve_operator.services.limits import Priority, WriteLimiter


def test_requests_within_an_interval_run_once_and_runs_are_an_interval_apart() -> None:
    runs: list[float] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        async def work(key: str) -> None:
            runs.append(loop.time())

        coalescer = Coalescer(work, interval=0.2)
        start = loop.time()
        for _ in range(20):  # 20 changes within 0.1 s
            coalescer.request("m")
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.25)
        coalescer.request("m")  # right after the first run: waits for the interval
        await asyncio.sleep(0.3)
        assert runs[0] - start >= 0.19
        await coalescer.close()

    asyncio.run(scenario())
    assert len(runs) == 2
    assert runs[1] - runs[0] >= 0.19


def test_keys_are_independent() -> None:
    runs: list[str] = []

    async def scenario() -> None:
        async def work(key: str) -> None:
            runs.append(key)

        coalescer = Coalescer(work, interval=0.01)
        for key in ("a", "b", "a", "c", "b"):
            coalescer.request(key)
        await asyncio.sleep(0.05)

    asyncio.run(scenario())
    assert sorted(runs) == ["a", "b", "c"]


def test_transient_failures_are_retried_with_backoff_and_refusals_are_not() -> None:
    calls: dict[str, int] = {"flaky": 0, "refused": 0}

    async def scenario() -> None:
        async def work(key: str) -> None:
            calls[key] += 1
            if key == "flaky" and calls[key] < 3:
                raise TransientError("503")
            if key == "refused":
                raise RejectedError("422", code=422)

        coalescer = Coalescer(work, interval=0.01, retry_delays=(0.01, 0.02))
        coalescer.request("flaky")
        coalescer.request("refused")
        await asyncio.sleep(0.2)
        assert not coalescer.pending("flaky")

    asyncio.run(scenario())
    assert calls == {"flaky": 3, "refused": 1}


def test_forget_cancels_a_scheduled_run() -> None:
    runs: list[str] = []

    async def scenario() -> None:
        async def work(key: str) -> None:
            runs.append(key)

        coalescer = Coalescer(work, interval=0.05)
        coalescer.request("gone")
        coalescer.forget("gone")
        await asyncio.sleep(0.1)

    asyncio.run(scenario())
    assert runs == []


def test_limiter_bounds_concurrency_and_serves_children_before_status() -> None:
    order: list[str] = []
    in_flight = {"now": 0, "max": 0}

    async def scenario() -> None:
        limiter = WriteLimiter(2)

        async def write(name: str, priority: Priority) -> None:
            async with limiter.slot(priority):
                in_flight["now"] += 1
                in_flight["max"] = max(in_flight["max"], in_flight["now"])
                order.append(name)
                await asyncio.sleep(0.01)
                in_flight["now"] -= 1

        jobs = [write(f"status-{i}", Priority.STATUS) for i in range(3)]
        jobs += [write(f"child-{i}", Priority.CHILD) for i in range(3)]
        await asyncio.gather(*jobs)

    asyncio.run(scenario())
    assert in_flight["max"] == 2
    # The first two status writes got the free slots; every queued child write then goes
    # before the queued status write.
    assert order == ["status-0", "status-1", "child-0", "child-1", "child-2", "status-2"]


def test_a_cancelled_waiter_does_not_leak_a_slot() -> None:
    async def scenario() -> bool:
        limiter = WriteLimiter(1)
        async with limiter.slot(Priority.CHILD):
            waiter = asyncio.create_task(limiter._acquire(Priority.STATUS))
            await asyncio.sleep(0)
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
        acquired = asyncio.create_task(limiter._acquire(Priority.CHILD))
        await asyncio.sleep(0.01)
        return acquired.done()

    assert asyncio.run(scenario())
