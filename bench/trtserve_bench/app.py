"""One `trt-bench` run from validated arguments: transports, inputs, the run, the
summary on stdout/--report-path and the exit code."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trtserve_bench import display, protos
from trtserve_bench.errors import BenchError, InternalError
from trtserve_bench.inputs import (
    Arrays,
    InputSpec,
    Shape,
    load_npz,
    random_inputs,
    resolve_shapes,
)
from trtserve_bench.runner import EndpointRun, Plan, RunState, run_benchmark
from trtserve_bench.summary import bare_summary, build_summary, render, write
from trtserve_bench.transport import GrpcTransport, RestTransport, Transport

LOG = logging.getLogger(__name__)


def plan_from_args(args: argparse.Namespace) -> Plan:
    return Plan(
        levels=tuple(args.concurrency),
        duration_seconds=args.duration_seconds,
        rounds=args.rounds,
        warmup_seconds=args.warmup_seconds,
        wait_seconds=args.wait_seconds,
        max_error_rate=args.max_error_rate,
        signature_key=args.signature_key,
    )


def make_transport(
    args: argparse.Namespace, loaded: protos.Protos, address: str, model: str, role: str
) -> Transport:
    if args.protocol == "rest":
        return RestTransport(
            loaded,
            address,
            model,
            role,
            deadline_seconds=args.deadline_seconds,
            connections=max(args.concurrency),
        )
    return GrpcTransport(loaded, address, model, role, args.deadline_seconds)


def inputs_factory(args: argparse.Namespace) -> Any:
    def make(specs: Mapping[str, InputSpec]) -> tuple[Arrays, dict[str, Shape]]:
        if args.inputs:
            arrays = load_npz(Path(args.inputs), specs)
            return arrays, {name: tuple(array.shape) for name, array in arrays.items()}
        shapes = resolve_shapes(specs, args.shape or {}, args.unknown_dim)
        return random_inputs(specs, shapes, args.seed), shapes

    return make


async def run(args: argparse.Namespace) -> int:
    """Run, print and write the summary; return the exit code (never raises)."""
    plan = plan_from_args(args)
    error: BenchError | None = None
    state: RunState | None = None
    show_progress = sys.stderr.isatty() if args.progress is None else args.progress
    progress: display.BarProgress | display.NoProgress = display.NoProgress()
    try:
        loaded = protos.load()
        target = EndpointRun(
            "target", make_transport(args, loaded, args.endpoint, args.model_name, "target")
        )
        baseline = None
        if args.baseline:
            model = args.baseline_model_name or args.model_name
            baseline = EndpointRun(
                "baseline", make_transport(args, loaded, args.baseline, model, "baseline")
            )
        state = RunState(plan, target, baseline)
        if show_progress:
            progress = display.BarProgress(plan.total_seconds(len(state.endpoints)))
        try:
            await run_benchmark(state, inputs_factory(args), progress)
        finally:
            progress.close()
            for endpoint in state.endpoints:
                await endpoint.transport.close()
    except BenchError as failure:
        error = failure
    except Exception as failure:  # a bug: still a summary and a documented exit code
        LOG.exception("internal error")
        error = InternalError(f"{type(failure).__name__}: {failure}")
    if state is None:  # failed before any endpoint existed
        assert error is not None
        text = render(
            bare_summary(
                error,
                model=args.model_name,
                signature=args.signature_key,
                endpoint=args.endpoint,
                duration_seconds=args.duration_seconds,
            )
        )
    else:
        text = render(
            build_summary(
                state, protocol=args.protocol, deadline_seconds=args.deadline_seconds, error=error
            )
        )
    if error is not None:
        LOG.error("%s: %s", error.reason, error.message)
    if args.json:
        print(text, flush=True)
    else:
        if state is not None and state.target.levels:
            display.print_result(state)
        if error is not None:
            display.print_error(f"trt-bench: {error.reason}: {error.message}")
    if args.report_path:
        write(text, args.report_path)
    return error.exit_code if error else 0
