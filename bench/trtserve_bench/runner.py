"""One benchmark run: wait for both endpoints, build the inputs, probe, warm up, then
each concurrency level in interleaved rounds (docs/bench.md).

Interleaving: each level's `--duration-seconds` per endpoint is split into `--rounds`
rounds, and the endpoints alternate in ABBA order (target first in even rounds, the
baseline first in odd ones), so a drift of the cluster (a noisy neighbour, clocks,
caches) hits both endpoints alike, and the spread between rounds measures the noise.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from trtserve_bench.errors import EndpointUnavailable, ErrorRateExceeded, InvalidInputs
from trtserve_bench.inputs import Arrays, InputSpec, Shape, check_compatible
from trtserve_bench.load import LiveCounts, closed_loop
from trtserve_bench.stats import LevelStats, Round, level_stats
from trtserve_bench.transport import UNREACHABLE_CODES, RequestError, Transport

LOG = logging.getLogger(__name__)

# Codes that mean the request itself is wrong (the same request will never succeed).
REJECTED_CODES = frozenset({"INVALID_ARGUMENT", "FAILED_PRECONDITION", "NOT_FOUND"})


@dataclass(frozen=True)
class Plan:
    """What to run (validated by the CLI)."""

    levels: tuple[int, ...]
    duration_seconds: float
    rounds: int
    warmup_seconds: float
    wait_seconds: float
    max_error_rate: float
    signature_key: str

    @property
    def segment_seconds(self) -> float:
        return self.duration_seconds / self.rounds

    def total_seconds(self, endpoints: int) -> float:
        """Planned run time (without waiting for the endpoints)."""
        return endpoints * (self.warmup_seconds + len(self.levels) * self.duration_seconds)


@dataclass
class EndpointRun:
    """One endpoint and what was measured at it so far."""

    role: str  # "target" or "baseline"
    transport: Transport
    model_version: int | None = None
    warmup_requests: int = 0
    levels: list[LevelStats] = field(default_factory=list)


@dataclass
class RunState:
    """Everything a summary needs; filled as the run goes (also when it fails)."""

    plan: Plan
    target: EndpointRun
    baseline: EndpointRun | None
    input_shapes: dict[str, Shape] = field(default_factory=dict)

    @property
    def endpoints(self) -> list[EndpointRun]:
        return [self.target] if self.baseline is None else [self.target, self.baseline]


class Progress(Protocol):
    """Where the run reports its segments (a progress bar, or nothing)."""

    def segment(
        self, label: str, seconds: float, live: LiveCounts
    ) -> AbstractAsyncContextManager[None]: ...


InputsFactory = Callable[[Mapping[str, InputSpec]], tuple[Arrays, dict[str, Shape]]]


async def prepare(state: RunState, make_inputs: InputsFactory) -> None:
    """Wait until every endpoint serves the model, read the signature, build the request."""
    plan = state.plan
    for run in state.endpoints:
        run.model_version = await run.transport.wait_available(plan.wait_seconds)
        LOG.info(
            "%s %s serves %s version %s",
            run.role,
            run.transport.address,
            run.transport.model_name,
            run.model_version,
        )
    specs = await state.target.transport.signature(plan.signature_key)
    LOG.info(
        "signature %s: %s", plan.signature_key, "; ".join(s.describe() for s in specs.values())
    )
    arrays, shapes = make_inputs(specs)
    state.input_shapes = shapes
    state.target.transport.prepare(arrays, specs, plan.signature_key)
    if state.baseline is not None:
        baseline_specs = await state.baseline.transport.signature(plan.signature_key)
        check_compatible(specs, baseline_specs, shapes)
        state.baseline.transport.prepare(arrays, baseline_specs, plan.signature_key)


async def probe(run: EndpointRun) -> RequestError | None:
    """One request first: inputs the server refuses fail at once, with its reason."""
    try:
        await run.transport.predict()
    except RequestError as failure:
        if failure.code in REJECTED_CODES:
            raise run.transport.rejected(failure) from None
        LOG.warning("%s: the first request failed: %s", run.role, failure)
        return failure
    return None


def _check_warmup(run: EndpointRun, warmup: Round, first_failure: RequestError | None) -> None:
    if warmup.ok or (first_failure is None and not warmup.failed):
        return
    codes: Counter[str] = Counter(warmup.errors)
    if first_failure is not None:
        codes[first_failure.code] += 1
    code = codes.most_common(1)[0][0]
    detail = f"every request failed: {', '.join(f'{c} x{n}' for c, n in codes.most_common())}"
    if code in UNREACHABLE_CODES:
        raise EndpointUnavailable(
            f"the {run.role} endpoint {run.transport.address} answers no request ({detail}): "
            "check the endpoint and raise --deadline-seconds if the model is slow"
        )
    raise InvalidInputs(
        f"the {run.role} endpoint {run.transport.address} fails every request ({detail}): "
        "check the server's log, the inputs (--shape/--inputs) and --model-name"
    )


async def warm_up(state: RunState, progress: Progress) -> None:
    """Probe, then closed-loop load at the highest level for --warmup-seconds (discarded)."""
    plan = state.plan
    concurrency = max(plan.levels)
    for run in state.endpoints:
        first_failure = await probe(run)
        live = LiveCounts()
        async with progress.segment(
            f"warm-up {run.role} c={concurrency}", plan.warmup_seconds, live
        ):
            warmup = await closed_loop(
                run.transport.predict, concurrency, plan.warmup_seconds, live
            )
        run.warmup_requests = warmup.ok + warmup.failed + 1
        _check_warmup(run, warmup, first_failure)


def round_order(state: RunState, round_index: int) -> list[EndpointRun]:
    """ABBA: the target first in even rounds, the baseline first in odd ones."""
    runs = state.endpoints
    return runs if round_index % 2 == 0 else list(reversed(runs))


async def measure(state: RunState, progress: Progress) -> None:
    """Every level, interleaved rounds; stop at the first level over --max-error-rate."""
    plan = state.plan
    for concurrency in plan.levels:
        rounds: dict[str, list[Round]] = {run.role: [] for run in state.endpoints}
        for index in range(plan.rounds):
            for run in round_order(state, index):
                live = LiveCounts()
                label = f"c={concurrency} {run.role} round {index + 1}/{plan.rounds}"
                async with progress.segment(label, plan.segment_seconds, live):
                    measured = await closed_loop(
                        run.transport.predict, concurrency, plan.segment_seconds, live
                    )
                rounds[run.role].append(measured)
        for run in state.endpoints:
            stats = level_stats(rounds[run.role])
            run.levels.append(stats)
            _log_level(run, stats)
        for run in state.endpoints:
            stats = run.levels[-1]
            if stats.error_rate > plan.max_error_rate:
                codes = ", ".join(f"{c} x{n}" for c, n in stats.errors_by_code.items())
                raise ErrorRateExceeded(
                    f"{stats.errors} of {stats.requests} requests ({stats.error_rate:.1%}) "
                    f"failed at the {run.role} endpoint {run.transport.address} at concurrency "
                    f"{concurrency} ({codes}), over --max-error-rate={plan.max_error_rate:g}: "
                    "check the server's log, lower the concurrency or raise --deadline-seconds"
                )


def _log_level(run: EndpointRun, stats: LevelStats) -> None:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.2f}"

    LOG.info(
        "%s c=%d: %d requests, %d errors, %.1f QPS, p50 %s ms, p99 %s ms",
        run.role,
        stats.concurrency,
        stats.requests,
        stats.errors,
        stats.qps,
        ms(stats.p50),
        ms(stats.p99),
    )
    if stats.client_cpu_percent is not None and stats.client_cpu_percent > 90:
        LOG.warning(
            "%s c=%d: trt-bench's event loop was busy %.0f %% of the time: the numbers may "
            "measure this client, not the server (give the Job more CPU or fewer workers)",
            run.role,
            stats.concurrency,
            stats.client_cpu_percent,
        )


async def run_benchmark(state: RunState, make_inputs: InputsFactory, progress: Progress) -> None:
    """The whole run; raises a BenchError on failure (state keeps what was measured)."""
    await prepare(state, make_inputs)
    await warm_up(state, progress)
    await measure(state, progress)


def describe_inputs(shapes: Mapping[str, Shape]) -> dict[str, Any]:
    return {name: list(shape) for name, shape in shapes.items()}
