"""What a person sees: a rich progress bar on stderr (only on a terminal) and the result
table on stdout.

rich, not tqdm: it is already in the converter image (Keras 3, which TensorFlow 2.17
depends on, requires it), it renders the result table and the comparison as well as the
bar, and its live display refreshes from its own thread, so the event loop only updates
a few numbers four times a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from trtserve_bench.load import LiveCounts
from trtserve_bench.runner import RunState
from trtserve_bench.stats import Comparison, LevelStats
from trtserve_bench.summary import comparison_of, comparison_phrase

TICK_SECONDS = 0.25
TABLE_WIDTH = 120


class NoProgress:
    """No display (not a terminal, or --no-progress)."""

    def segment(
        self, label: str, seconds: float, live: LiveCounts
    ) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    def close(self) -> None:
        return


class BarProgress:
    """One bar over the planned run time; the label names the running segment."""

    def __init__(self, total_seconds: float, stream: IO[str] | None = None) -> None:
        console = Console(file=stream, stderr=stream is None)
        self._progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[status]}"),
            TimeRemainingColumn(),
            console=console,
        )
        self._task = self._progress.add_task("starting", total=max(total_seconds, 1e-9), status="")
        self._done = 0.0
        self._progress.start()

    @asynccontextmanager
    async def segment(self, label: str, seconds: float, live: LiveCounts) -> AsyncIterator[None]:
        async def tick() -> None:
            while True:
                elapsed = min(max(time.perf_counter() - live.started, 0.0), seconds)
                qps = live.ok / elapsed if elapsed > 0 and live.started else 0.0
                self._progress.update(
                    self._task,
                    description=label,
                    completed=self._done + elapsed,
                    status=f"{qps:8.1f} QPS {live.failed:6d} errors",
                )
                await asyncio.sleep(TICK_SECONDS)

        ticker = asyncio.create_task(tick())
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            self._done += seconds
            self._progress.update(self._task, completed=self._done)

    def close(self) -> None:
        self._progress.stop()


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.2f}"


def _row(role: str, stats: LevelStats) -> list[str]:
    return [
        str(stats.concurrency),
        role,
        str(stats.requests),
        str(stats.errors),
        f"{stats.qps:.1f}",
        _ms(stats.p50),
        _ms(stats.p90),
        _ms(stats.p99),
        _ms(stats.max),
        "-" if stats.qps_spread_percent is None else f"±{stats.qps_spread_percent:.1f}%",
    ]


def print_result(state: RunState, stream: IO[str] | None = None) -> None:
    """The result table and, with a baseline, the comparison per level."""
    console = Console(file=stream, highlight=False)
    if not console.is_terminal:  # a log or a pipe: no reason to squeeze into 80 columns
        console.width = TABLE_WIDTH
    endpoints = ", ".join(f"{run.role} {run.transport.address}" for run in state.endpoints)
    table = Table(
        title=f"{state.target.transport.model_name} ({state.plan.signature_key}): {endpoints}",
        caption="latencies in ms; spread: QPS between rounds",
    )
    for column in ("conc.", "", "requests", "errors", "QPS", "p50", "p90", "p99", "max"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("spread", justify="right", no_wrap=True)
    baseline = {s.concurrency: s for s in state.baseline.levels} if state.baseline else {}
    for stats in state.target.levels:
        table.add_row(*_row("target", stats))
        if stats.concurrency in baseline:
            table.add_row(*_row("baseline", baseline[stats.concurrency]))
    console.print(table)
    comparison: Comparison | None = comparison_of(state)
    if comparison is None:
        return
    for level in comparison.levels:
        console.print(
            f"concurrency {level.concurrency}: {comparison_phrase(level)}", soft_wrap=True
        )
    if comparison.speedup is not None:
        console.print(f"speedup (QPS at the highest concurrency): {comparison.speedup:.2f}x")


def print_error(message: str, stream: Any = None) -> None:
    Console(file=stream, stderr=stream is None, highlight=False).print(message, markup=False)
