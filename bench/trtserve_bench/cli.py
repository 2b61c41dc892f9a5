"""`trt-bench`: the load generator's command line (docs/bench.md).

Every flag can also be given as `TRT_BENCH_<FLAG>`; a flag on the command line wins.
The transports and TF Serving's protos are imported only once the arguments are valid,
so `--help` and argument errors are instant; TensorFlow's runtime is never started
(see protos.py).
"""

# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from trtserve_bench.errors import (
    EXIT_CODE_MEANINGS,
    BenchError,
    InvalidArguments,
    exit_codes,
)
from trtserve_converter import __version__
from trtserve_converter.envflags import TRUE_WORDS, EnvFlags, choice
from trtserve_converter.logsetup import setup_logging
from trtserve_converter.shapes import parse_build_shape

LOG = logging.getLogger("trtserve_bench")

ENV_PREFIX = "TRT_BENCH_"
MAX_LEVELS = 16
MAX_CONCURRENCY = 4096
MAX_ENDPOINT_CHARS = 300


class BenchArgumentParser(argparse.ArgumentParser):
    """Errors raise InvalidArguments (so a summary is still written) instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise InvalidArguments(f"{message} (see trt-bench --help)")


ENV = EnvFlags(ENV_PREFIX, InvalidArguments, ignore_empty=True)


def env_name(flag: str) -> str:
    """`--duration-seconds` -> `TRT_BENCH_DURATION_SECONDS`."""
    return ENV.name(flag)


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be >= {minimum}")
        return value

    convert.__name__ = "integer"
    return convert


def _float_in(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (low < value <= high if low_open else low <= value <= high):  # NaN fails
            bound = ">" if low_open else ">="
            raise argparse.ArgumentTypeError(f"{text!r} must be {bound} {low:g} and <= {high:g}")
        return value

    convert.__name__ = "number"
    return convert


def _levels(text: str) -> tuple[int, ...]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        levels = tuple(int(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers (e.g. 1,4,16)"
        ) from None
    if not levels or any(not 1 <= level <= MAX_CONCURRENCY for level in levels):
        raise argparse.ArgumentTypeError(f"{text!r}: every level must be 1..{MAX_CONCURRENCY}")
    if list(levels) != sorted(set(levels)):
        raise argparse.ArgumentTypeError(f"{text!r}: levels must be increasing, without repeats")
    if len(levels) > MAX_LEVELS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: at most {MAX_LEVELS} levels (the summary must fit 4096 bytes)"
        )
    return levels


def _endpoint(text: str) -> str:
    value = text.strip()
    host, sep, port = value.rpartition(":")
    if "://" in value:
        host, sep, port = value.split("://", 1)[1].rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit() or len(value) > MAX_ENDPOINT_CHARS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not host:port (e.g. resnet50-fp16.models.svc:8500)"
        )
    return value


def _shapes(text: str) -> dict[str, tuple[int, ...]]:
    try:
        return parse_build_shape(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _epilog() -> str:
    lines = ["exit codes:"]
    lines += [
        f"  {code:>3}  {reason:<20} {EXIT_CODE_MEANINGS[reason]}"
        for reason, code in exit_codes().items()
    ]
    lines += [
        "",
        f"Every flag can also be set as an environment variable {ENV_PREFIX}<FLAG>",
        "(upper case, '-' -> '_', e.g. TRT_BENCH_ENDPOINT); the command line wins.",
        "Boolean flags in the environment: true/false, 1/0, yes/no, on/off.",
        "The JSON summary (<= 4096 bytes, docs/bench.md) goes to stdout with --json and",
        "to --report-path, on success and on failure.",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every flag in docs/bench.md (no environment applied here)."""
    parser = BenchArgumentParser(
        prog="trt-bench",
        description=textwrap.fill(
            "Closed-loop load against TensorFlow Serving (gRPC PredictionService, or REST): "
            "warm up, run each concurrency level for a fixed time, report requests, errors, "
            "QPS and latency percentiles; with --baseline, run the same load interleaved "
            "against a second endpoint and compare, against the run-to-run noise.",
            width=79,
        ),
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"trt-bench {__version__}")
    ends = parser.add_argument_group("endpoints")
    ends.add_argument(
        "--endpoint", metavar="HOST:PORT", type=_endpoint, help="the target server (required)"
    )
    ends.add_argument("--model-name", metavar="NAME", help="the target's model (required)")
    ends.add_argument(
        "--baseline",
        metavar="HOST:PORT",
        type=_endpoint,
        help="a second server to compare with, under the same load, interleaved",
    )
    ends.add_argument(
        "--baseline-model-name",
        metavar="NAME",
        help="the baseline's model (default: --model-name)",
    )
    ends.add_argument(
        "--protocol",
        metavar="P",
        type=choice(["grpc", "rest"]),
        default="grpc",
        help="grpc (PredictionService, port 8500) or rest (/v1/models, port 8501; "
        "HOST:PORT or http(s)://HOST:PORT) (default: grpc)",
    )
    ends.add_argument(
        "--signature-key",
        metavar="KEY",
        default="serving_default",
        help="signature called (default: serving_default)",
    )
    ins = parser.add_argument_group("inputs")
    ins.add_argument(
        "--inputs",
        metavar="FILE.npz",
        help="the request's inputs, one array per input name (default: seeded random "
        "values of the signature's dtypes and shapes)",
    )
    ins.add_argument(
        "--shape",
        metavar="SPEC",
        type=_shapes,
        help="shapes of generated inputs, name=1x224x224x3[,name2=1x10]; must agree with "
        "the signature's known dims (default: the signature's, unknown dims = --unknown-dim)",
    )
    ins.add_argument(
        "--unknown-dim",
        metavar="N",
        type=_int_at_least(1),
        default=1,
        help="value of every unknown dimension of a generated input, e.g. the batch "
        "size (default: 1)",
    )
    ins.add_argument(
        "--seed", metavar="N", type=_int_at_least(0), default=0, help="seed (default: 0)"
    )
    load = parser.add_argument_group("load")
    load.add_argument(
        "--concurrency",
        metavar="LIST",
        type=_levels,
        default=(1, 4, 16),
        help="concurrency levels, increasing, e.g. 1,4,16 (default: 1,4,16)",
    )
    load.add_argument(
        "--duration-seconds",
        metavar="X",
        type=_float_in(0, 86400, low_open=True),
        default=20.0,
        help="measured time per level per endpoint, split into --rounds rounds (default: 20)",
    )
    load.add_argument(
        "--rounds",
        metavar="N",
        type=_int_at_least(1),
        default=3,
        help="rounds per level; with --baseline the endpoints alternate (ABBA) each "
        "round, and the spread between rounds is the noise (default: 3)",
    )
    load.add_argument(
        "--warmup-seconds",
        metavar="X",
        type=_float_in(0, 86400),
        default=10.0,
        help="load at the highest level before measuring, per endpoint, discarded (default: 10)",
    )
    load.add_argument(
        "--deadline-seconds",
        metavar="X",
        type=_float_in(0, 3600, low_open=True),
        default=10.0,
        help="per-request deadline; a later answer counts as a DEADLINE_EXCEEDED error "
        "(default: 10)",
    )
    load.add_argument(
        "--max-error-rate",
        metavar="X",
        type=_float_in(0, 1),
        default=0.01,
        help="fail (exit 40) when more than this fraction of a level's requests fail "
        "(default: 0.01)",
    )
    load.add_argument(
        "--wait-seconds",
        metavar="X",
        type=_float_in(0, 86400),
        default=60.0,
        help="how long to wait for each endpoint to serve the model (default: 60)",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--json",
        action="store_true",
        default=False,
        help="print the JSON summary on stdout instead of the table",
    )
    out.add_argument(
        "--report-path",
        metavar="PATH",
        help="also write the JSON summary here, e.g. /dev/termination-log (default: none)",
    )
    out.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: only when stderr is a terminal)",
    )
    out.add_argument(
        "--log-level",
        metavar="L",
        type=choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
        default="WARNING",
        help="DEBUG, INFO, WARNING or ERROR (default: WARNING)",
    )
    out.add_argument(
        "--log-format",
        metavar="F",
        type=choice(["text", "json"]),
        default="text",
        help="text or json (one JSON object per line) (default: text)",
    )
    ENV.document(parser)
    return parser


def apply_environment(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    """Environment values become defaults, so the command line still wins."""
    ENV.apply(parser, environ)


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> argparse.Namespace:
    """Parse flags and environment, or raise InvalidArguments."""
    parser = build_parser()
    apply_environment(parser, environ)
    args = parser.parse_args(argv)
    missing = [
        flag
        for flag in ("--endpoint", "--model-name")
        if not getattr(args, flag[2:].replace("-", "_"))
    ]
    if missing:
        raise InvalidArguments(
            f"missing {' and '.join(missing)} (or {', '.join(env_name(m) for m in missing)})"
        )
    if args.inputs and args.shape:
        raise InvalidArguments("--inputs and --shape exclude each other: give one")
    if args.inputs and not Path(args.inputs).is_file():
        raise InvalidArguments(f"--inputs {args.inputs!r}: no such file")
    if args.baseline is None and args.baseline_model_name:
        raise InvalidArguments("--baseline-model-name needs --baseline")
    if args.baseline is not None and args.rounds < 2:
        raise InvalidArguments(
            "--baseline needs --rounds >= 2: the spread between rounds is the noise the "
            "difference is compared with"
        )
    return args


def _fallback(argv: Sequence[str], environ: Mapping[str, str], flag: str) -> str | None:
    for index, arg in enumerate(argv):
        if arg.startswith(f"{flag}="):
            return arg.split("=", 1)[1]
        if arg == flag and index + 1 < len(argv):
            return argv[index + 1]
    return environ.get(env_name(flag)) or None


def failure_summary(error: BenchError, argv: Sequence[str], environ: Mapping[str, str]) -> str:
    """The summary of a run that never started (bad arguments)."""
    from trtserve_bench.summary import bare_summary, render

    return render(
        bare_summary(
            error,
            model=_fallback(argv, environ, "--model-name"),
            signature=_fallback(argv, environ, "--signature-key") or "serving_default",
            endpoint=_fallback(argv, environ, "--endpoint"),
            duration_seconds=None,
        )
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of `trt-bench`: returns the documented exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ
    try:
        args = parse_args(args_list, environ)
    except SystemExit as done:  # --help / --version
        return done.code if isinstance(done.code, int) else 0
    except BenchError as error:
        setup_logging(environ.get(env_name("--log-level"), "WARNING"), "text")
        LOG.error("%s: %s", error.reason, error.message)
        text = failure_summary(error, args_list, environ)
        _emit(text, args_list, environ)
        return error.exit_code
    setup_logging(args.log_level, args.log_format)
    from trtserve_bench.app import run

    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        LOG.error("interrupted")
        return 130


def _emit(text: str, argv: Sequence[str], environ: Mapping[str, str]) -> None:
    """Print/write a summary of a run whose arguments were invalid."""
    from trtserve_bench.summary import write

    if "--json" in argv or environ.get(env_name("--json"), "").lower() in TRUE_WORDS:
        print(text)
    path = _fallback(argv, environ, "--report-path")
    if path:
        write(text, path)
