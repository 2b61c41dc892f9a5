"""The closed loop: N workers, each sending its next request when the last one answered.

Every request sent is awaited and counted, also those still in flight when the time is
up, so the server's and the client's counts agree exactly; the measured time runs from
the first request to the last answer.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from trtserve_bench.stats import Round
from trtserve_bench.transport import RequestError


@dataclass
class LiveCounts:
    """Counts of the running segment, read by the progress display."""

    ok: int = 0
    failed: int = 0
    started: float = 0.0


async def closed_loop(
    predict: Callable[[], Awaitable[None]],
    concurrency: int,
    seconds: float,
    live: LiveCounts | None = None,
) -> Round:
    """Run `concurrency` workers for `seconds` and measure every request."""
    live = live if live is not None else LiveCounts()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    clock = time.perf_counter
    cpu_start = time.thread_time()
    start = clock()
    stop = start + seconds
    live.ok, live.failed, live.started = 0, 0, start
    last_answer = start

    async def worker() -> None:
        nonlocal last_answer
        while (sent := clock()) < stop:
            try:
                await predict()
            except RequestError as failure:
                errors[failure.code] += 1
                live.failed += 1
            else:
                latencies.append(clock() - sent)
                live.ok += 1
            last_answer = max(last_answer, clock())

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Round(
        concurrency=concurrency,
        elapsed=max(last_answer - start, 1e-9),
        latencies=latencies,
        errors=errors,
        cpu_seconds=time.thread_time() - cpu_start,
    )
