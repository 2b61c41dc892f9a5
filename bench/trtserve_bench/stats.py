"""The numbers of docs/bench.md: per-level statistics and the target/baseline comparison.

Pure functions of measured rounds: no I/O, no clocks, unit-tested on their own.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class Round:
    """One endpoint's measurement at one level, in one round (seconds)."""

    concurrency: int
    elapsed: float
    latencies: Sequence[float]  # of the successful requests
    errors: Counter[str] = field(default_factory=Counter)  # status code name -> count
    cpu_seconds: float = 0.0  # the event loop thread's CPU time

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    @property
    def qps(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least p % of the values <= it."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def spread_percent(values: Sequence[float | None]) -> float | None:
    """(max - min) / mean x 100 of the rounds' values; None below 2 values or a mean of 0."""
    known = [value for value in values if value is not None]
    if len(known) < 2:
        return None
    mean = sum(known) / len(known)
    if mean <= 0:
        return None
    return (max(known) - min(known)) / mean * 100


@dataclass(frozen=True)
class LevelStats:
    """One endpoint's pooled result at one concurrency level (latencies in seconds)."""

    concurrency: int
    requests: int
    errors: int
    qps: float
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
    qps_spread_percent: float | None
    p50_spread_percent: float | None
    client_cpu_percent: float | None
    errors_by_code: dict[str, int]
    rounds: int

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def level_stats(rounds: Sequence[Round]) -> LevelStats:
    """Pool the rounds of one endpoint at one level."""
    if not rounds:
        raise ValueError("no rounds to pool")
    latencies = sorted(value for one in rounds for value in one.latencies)
    elapsed = sum(one.elapsed for one in rounds)
    errors: Counter[str] = Counter()
    for one in rounds:
        errors.update(one.errors)
    p50, p90, p99 = (percentile(latencies, p) for p in PERCENTILES)
    return LevelStats(
        concurrency=rounds[0].concurrency,
        requests=len(latencies) + sum(errors.values()),
        errors=sum(errors.values()),
        qps=len(latencies) / elapsed if elapsed > 0 else 0.0,
        p50=p50,
        p90=p90,
        p99=p99,
        max=latencies[-1] if latencies else None,
        qps_spread_percent=spread_percent([one.qps for one in rounds]),
        p50_spread_percent=spread_percent(
            [percentile(sorted(one.latencies), 50) for one in rounds]
        ),
        client_cpu_percent=sum(one.cpu_seconds for one in rounds) / elapsed * 100
        if elapsed > 0
        else None,
        errors_by_code=dict(errors.most_common()),
        rounds=len(rounds),
    )


def change_percent(target: float | None, baseline: float | None) -> float | None:
    """(target / baseline - 1) x 100, None when either is unknown or the baseline is 0."""
    if target is None or baseline is None or baseline <= 0:
        return None
    return (target / baseline - 1) * 100


def _noise(*spreads: float | None) -> float | None:
    known = [spread for spread in spreads if spread is not None]
    return max(known) if known else None


def _significant(change: float | None, noise: float | None) -> bool:
    return change is not None and noise is not None and abs(change) > noise


@dataclass(frozen=True)
class LevelComparison:
    """Target vs baseline at one concurrency level (docs/bench.md, `comparison`)."""

    concurrency: int
    qps_change_percent: float | None
    p50_change_percent: float | None
    p99_change_percent: float | None
    noise_percent: float | None
    significant: bool
    p50_noise_percent: float | None
    p50_significant: bool


def compare_level(target: LevelStats, baseline: LevelStats) -> LevelComparison:
    """The changes of one level and whether they exceed the run-to-run spread.

    noise = the larger of both endpoints' round-to-round spreads; a change is
    significant when its magnitude exceeds it (so never with a single round).
    """
    if target.concurrency != baseline.concurrency:
        raise ValueError("compare the same concurrency level")
    qps_change = change_percent(target.qps, baseline.qps)
    p50_change = change_percent(target.p50, baseline.p50)
    noise = _noise(target.qps_spread_percent, baseline.qps_spread_percent)
    p50_noise = _noise(target.p50_spread_percent, baseline.p50_spread_percent)
    return LevelComparison(
        concurrency=target.concurrency,
        qps_change_percent=qps_change,
        p50_change_percent=p50_change,
        p99_change_percent=change_percent(target.p99, baseline.p99),
        noise_percent=noise,
        significant=_significant(qps_change, noise),
        p50_noise_percent=p50_noise,
        p50_significant=_significant(p50_change, p50_noise),
    )


@dataclass(frozen=True)
class Comparison:
    levels: list[LevelComparison]
    speedup: float | None  # target qps / baseline qps at the highest level


def compare(target: Sequence[LevelStats], baseline: Sequence[LevelStats]) -> Comparison | None:
    """Compare the levels both endpoints completed; None when there is none."""
    by_concurrency = {level.concurrency: level for level in baseline}
    pairs = [(t, by_concurrency[t.concurrency]) for t in target if t.concurrency in by_concurrency]
    if not pairs:
        return None
    pairs.sort(key=lambda pair: pair[0].concurrency)
    top_target, top_baseline = pairs[-1]
    speedup = top_target.qps / top_baseline.qps if top_baseline.qps > 0 else None
    return Comparison([compare_level(t, b) for t, b in pairs], speedup)
