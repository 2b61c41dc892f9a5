"""The numbers of docs/bench.md, from constructed rounds (no servers, no clocks)."""

from __future__ import annotations

from collections import Counter

import pytest
from trtserve_bench.stats import (
    Round,
    change_percent,
    compare,
    compare_level,
    level_stats,
    percentile,
    spread_percent,
)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 90) == 90
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0
    assert percentile([1.0, 2.0], 99) == 2.0  # never interpolated below a real sample
    assert percentile([], 50) is None


def test_spread_is_range_over_mean() -> None:
    assert spread_percent([90.0, 100.0, 110.0]) == pytest.approx(20.0)
    assert spread_percent([100.0, 100.0]) == 0.0
    assert spread_percent([100.0]) is None  # one round: no spread known
    assert spread_percent([None, 5.0]) is None
    assert spread_percent([0.0, 0.0]) is None


def _round(concurrency: int, elapsed: float, latencies: list[float], **errors: int) -> Round:
    return Round(concurrency, elapsed, latencies, Counter(errors))


def test_level_pools_the_rounds() -> None:
    first = _round(4, 1.0, [0.010] * 90 + [0.050] * 10, INTERNAL=5)
    second = _round(4, 2.0, [0.020] * 200, UNAVAILABLE=1, INTERNAL=2)
    stats = level_stats([first, second])
    assert stats.concurrency == 4
    assert stats.requests == 300 + 8
    assert stats.errors == 8
    assert stats.errors_by_code == {"INTERNAL": 7, "UNAVAILABLE": 1}
    assert stats.qps == pytest.approx(300 / 3.0)  # successes over the measured time
    assert stats.p50 == 0.020  # pooled: 90 x 10 ms, 200 x 20 ms, 10 x 50 ms
    assert stats.p90 == 0.020
    assert stats.p99 == 0.050
    assert stats.max == 0.050
    assert stats.qps_spread_percent == pytest.approx((100 - 100) / 100 * 100)  # 100/s each
    assert stats.p50_spread_percent == pytest.approx((0.020 - 0.010) / 0.015 * 100)
    assert stats.error_rate == pytest.approx(8 / 308)


def test_level_without_successes_has_no_latencies() -> None:
    stats = level_stats([_round(1, 1.0, [], DEADLINE_EXCEEDED=3)])
    assert (stats.requests, stats.errors, stats.qps) == (3, 3, 0.0)
    assert stats.p50 is None
    assert stats.p99 is None
    assert stats.max is None


def test_change_percent() -> None:
    assert change_percent(162.0, 100.0) == pytest.approx(62.0)
    assert change_percent(0.55, 1.0) == pytest.approx(-45.0)
    assert change_percent(1.0, 0.0) is None
    assert change_percent(None, 1.0) is None


def _level(concurrency: int, qps_per_round: list[float], latency: float) -> list[Round]:
    return [_round(concurrency, 1.0, [latency] * int(qps)) for qps in qps_per_round]


def test_a_difference_beyond_the_noise_is_significant() -> None:
    target = level_stats(_level(8, [162, 160, 164], 0.011))
    baseline = level_stats(_level(8, [100, 99, 101], 0.020))
    result = compare_level(target, baseline)
    assert result.qps_change_percent == pytest.approx(62.0)
    assert result.p50_change_percent == pytest.approx(-45.0)
    assert result.p99_change_percent == pytest.approx(-45.0)
    # noise: the larger spread of the two endpoints (target: 4/162, baseline: 2/100)
    assert result.noise_percent == pytest.approx(4 / 162 * 100)
    assert result.significant is True


def test_a_difference_within_the_noise_is_not_significant() -> None:
    target = level_stats(_level(8, [105, 95, 110], 0.010))
    baseline = level_stats(_level(8, [100, 90, 104], 0.010))
    result = compare_level(target, baseline)
    assert result.qps_change_percent == pytest.approx((310 / 294 - 1) * 100)  # +5.4 %
    assert result.noise_percent == pytest.approx(15 / (310 / 3) * 100)  # target spread 14.5 %
    assert result.significant is False


def test_one_round_never_claims_significance() -> None:
    target = level_stats(_level(1, [200], 0.005))
    baseline = level_stats(_level(1, [100], 0.010))
    result = compare_level(target, baseline)
    assert result.qps_change_percent == pytest.approx(100.0)
    assert result.noise_percent is None
    assert result.significant is False


def test_speedup_is_taken_at_the_highest_common_level() -> None:
    target = [
        level_stats(_level(1, [100, 100], 0.01)),
        level_stats(_level(16, [320, 320], 0.05)),
    ]
    baseline = [
        level_stats(_level(1, [90, 90], 0.011)),
        level_stats(_level(16, [100, 100], 0.16)),
    ]
    result = compare(target, baseline)
    assert result is not None
    assert [level.concurrency for level in result.levels] == [1, 16]
    assert result.speedup == pytest.approx(3.2)
    # a run that failed after level 1 at the baseline compares what both measured
    partial = compare(target, baseline[:1])
    assert partial is not None
    assert partial.speedup == pytest.approx(100 / 90)
    assert compare(target, []) is None


def test_speedup_against_a_baseline_without_throughput_is_unknown() -> None:
    target = [level_stats(_level(1, [100, 100], 0.01))]
    baseline = [level_stats([_round(1, 1.0, [], INTERNAL=5)] * 2)]
    result = compare(target, baseline)
    assert result is not None
    assert result.speedup is None
    assert result.levels[0].qps_change_percent is None
