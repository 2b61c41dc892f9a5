"""trt-bench's command line against docs/bench.md: flags, environment, exit codes,
argument errors (which still write a summary), and a start-up that imports nothing heavy."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from trtserve_bench.cli import build_parser, env_name, main, parse_args
from trtserve_bench.errors import ALL_ERRORS, InvalidArguments, exit_codes

from .conftest import BenchRun

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC = (REPO_ROOT / "docs" / "bench.md").read_text(encoding="utf-8")
RunBench = Callable[..., BenchRun]


def _table(heading: str) -> list[list[str]]:
    section = DOC.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]


def test_exit_codes_are_the_documented_ones() -> None:
    documented = {row[1].strip("`"): int(row[0]) for row in _table("Exit codes and reasons")}
    assert documented == exit_codes()
    assert len({error.exit_code for error in ALL_ERRORS}) == len(ALL_ERRORS)


def test_every_flag_is_documented_and_has_an_env_variable() -> None:
    flags = {
        flag
        for action in build_parser()._actions
        for flag in action.option_strings
        if flag.startswith("--") and flag not in {"--help", "--version"}
    }
    documented = set(re.findall(r"`(--[a-z-]+)", " ".join(r[0] for r in _table("Command line"))))
    assert flags == documented
    help_text = build_parser().format_help()
    for flag in flags - {"--no-progress"}:
        assert env_name(flag) in help_text
    for reason, code in exit_codes().items():
        assert re.search(rf"\b{code}\s+{reason}\b", help_text)


def test_defaults() -> None:
    args = parse_args(["--endpoint", "svc:8500", "--model-name", "m"], {})
    assert args.concurrency == (1, 4, 16)
    assert (args.duration_seconds, args.rounds, args.warmup_seconds) == (20.0, 3, 10.0)
    assert (args.deadline_seconds, args.max_error_rate, args.wait_seconds) == (10.0, 0.01, 60.0)
    assert (args.protocol, args.signature_key, args.unknown_dim) == ("grpc", "serving_default", 1)
    assert args.report_path is None
    assert args.json is False


def test_environment_fills_in_and_the_command_line_wins() -> None:
    env = {
        "TRT_BENCH_ENDPOINT": "a:8500",
        "TRT_BENCH_MODEL_NAME": "m",
        "TRT_BENCH_CONCURRENCY": "2,8",
        "TRT_BENCH_JSON": "yes",
        "TRT_BENCH_SHAPE": "x=4x1",
        "TRT_BENCH_PROTOCOL": "REST",
    }
    args = parse_args(["--endpoint", "b:8501"], env)
    assert args.endpoint == "b:8501"
    assert args.model_name == "m"
    assert args.concurrency == (2, 8)
    assert args.json is True
    assert args.shape == {"x": (4, 1)}
    assert args.protocol == "rest"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model-name", "m"], "missing --endpoint (or TRT_BENCH_ENDPOINT)"),
        (["--endpoint", "svc"], "is not host:port"),
        (["--endpoint", "svc:8500", "--concurrency", "4,1"], "levels must be increasing"),
        (["--endpoint", "svc:8500", "--concurrency", "0"], "every level must be 1..4096"),
        (
            ["--endpoint", "svc:8500", "--concurrency", ",".join(map(str, range(1, 18)))],
            "at most 16",
        ),
        (["--endpoint", "svc:8500", "--duration-seconds", "0"], "must be > 0"),
        (["--endpoint", "svc:8500", "--max-error-rate", "2"], "must be >= 0 and <= 1"),
        (["--endpoint", "svc:8500", "--deadline-seconds", "nan"], "must be > 0"),
        (["--endpoint", "svc:8500", "--shape", "x=1xa"], "dimensions must be integers"),
        (
            ["--endpoint", "a:1", "--baseline", "b:1", "--rounds", "1"],
            "--baseline needs --rounds >= 2",
        ),
        (
            ["--endpoint", "a:1", "--baseline-model-name", "n"],
            "--baseline-model-name needs --baseline",
        ),
        (["--endpoint", "a:1", "--inputs", "/nonexistent.npz"], "no such file"),
        (["--endpoint", "a:1", "--protocol", "http"], "not one of grpc, rest"),
    ],
)
def test_argument_errors_exit_2_with_a_summary(
    run_bench: RunBench, args: list[str], message: str
) -> None:
    full = [*args, "--model-name", "m"] if "--model-name" not in args else args
    run = run_bench(*full)
    assert run.code == 2
    summary = run.summary
    assert (summary["result"], summary["reason"], summary["exitCode"]) == (
        "Failed",
        "InvalidArguments",
        2,
    )
    assert message in summary["message"]
    assert summary["target"]["levels"] == []
    assert summary["baseline"] is None


def test_a_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(InvalidArguments, match="TRT_BENCH_ROUNDS: 'many' is not an integer"):
        parse_args(["--endpoint", "a:1", "--model-name", "m"], {"TRT_BENCH_ROUNDS": "many"})
    with pytest.raises(InvalidArguments, match="TRT_BENCH_JSON='perhaps': expected true or false"):
        parse_args(["--endpoint", "a:1", "--model-name", "m"], {"TRT_BENCH_JSON": "perhaps"})


def test_help_is_instant_and_imports_neither_grpc_nor_tensorflow() -> None:
    script = (
        "import sys\n"
        "from trtserve_bench.cli import main\n"
        "assert main(['--help']) == 0\n"
        "assert main(['--model-name', 'm']) == 2\n"
        "heavy = ('grpc', 'tensorflow', 'tensorflow_serving', 'aiohttp')\n"
        "heavy = [name for name in heavy if name in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(REPO_ROOT / "converter"), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "exit codes:" in result.stdout
    assert "InvalidArguments: missing --endpoint" in result.stderr


def test_main_without_json_prints_no_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--model-name", "m", "--no-progress"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "missing --endpoint" in err
