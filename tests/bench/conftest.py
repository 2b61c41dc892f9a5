"""Fixtures of the trt-bench tests: the TF Serving double over a real SavedModel, and a
runner of `trt-bench` in-process (main([...]))."""

# TensorFlow is imported inside the fixtures that need it, so collecting stays fast.
# ruff: noqa: PLC0415

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .testdata import HALF_PLUS_TWO, MODEL_NAME, MODEL_VERSION

# Short runs: the whole module must stay fast on 2 cores.
FAST = ("--warmup-seconds", "0.2", "--duration-seconds", "0.6", "--rounds", "2")


@pytest.fixture(scope="session")
def served_model() -> Any:
    """half_plus_two (TF Serving's own test model) loaded once; y = x / 2 + 2."""
    if not (HALF_PLUS_TWO / "saved_model.pb").is_file():
        pytest.skip(f"TF Serving test data not found at {HALF_PLUS_TWO}")
    from .servers import ServedModel

    return ServedModel(HALF_PLUS_TWO, MODEL_NAME, MODEL_VERSION)


@dataclass
class Served:
    core: Any
    address: str


@pytest.fixture
def call_log() -> Any:
    from .servers import CallLog

    return CallLog()


@pytest.fixture
def serve(served_model: Any, call_log: Any) -> Iterator[Callable[..., Served]]:
    """Start a TF Serving double: serve(name, rest=False, **behaviour) -> Served."""
    from .servers import Behaviour, Core, GrpcServer, RestServer

    servers: list[Any] = []

    def start(name: str = "target", *, rest: bool = False, **behaviour: Any) -> Served:
        core = Core(served_model, name, Behaviour(**behaviour), call_log)
        server = RestServer(core) if rest else GrpcServer(core)
        servers.append(server)
        return Served(core, server.address)

    yield start
    for server in servers:
        server.stop()


@dataclass
class BenchRun:
    code: int
    summary: dict[str, Any]
    text: str
    stdout: str


@pytest.fixture
def run_bench(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., BenchRun]:
    """Run trt-bench in-process with --json and --report-path; both must agree."""
    from trtserve_bench.cli import main

    def run(*args: str) -> BenchRun:
        report = tmp_path / f"summary-{len(list(tmp_path.glob('summary-*')))}.json"
        capsys.readouterr()
        code = main([*args, "--json", "--report-path", str(report), "--no-progress"])
        stdout = capsys.readouterr().out
        text = report.read_text(encoding="utf-8")
        assert stdout.strip() == text, "--json and --report-path must write the same object"
        assert len(text.encode("utf-8")) <= 4096
        assert "\n" not in text
        return BenchRun(code, json.loads(text), text, stdout)

    return run
