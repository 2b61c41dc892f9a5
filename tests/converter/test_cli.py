"""The CLI against docs/contract.md: flags, environment, exit codes, reports (no TF)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from trtserve_converter.cli import build_parser, env_name, main, parse_config
from trtserve_converter.config import DEFAULT_TOLERANCES, Precision, ProfileStrategy, Tolerances
from trtserve_converter.errors import ALL_ERRORS, InvalidArguments, exit_codes
from trtserve_converter.flags import FLAG_GROUPS

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "contract.md"


def _section(title: str) -> str:
    text = CONTRACT.read_text(encoding="utf-8")
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def contract_flags() -> set[str]:
    flags = set()
    for line in _section("Arguments").splitlines():
        if line.startswith("| `--"):
            first_cell = line.split("|")[1]
            flags.update(re.findall(r"`?(--[a-z0-9-]+)", first_cell))
    return flags


def contract_exit_codes() -> dict[str, int]:
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \|", _section("Exit codes and reasons"), re.M)
    return {reason: int(code) for code, reason in rows}


def parser_flags() -> set[str]:
    return {flag for action in build_parser()._actions for flag in action.option_strings}


def test_every_contract_flag_exists_and_is_documented() -> None:
    flags = contract_flags()
    assert len(flags) >= 30  # the table was parsed
    assert flags <= parser_flags()
    help_text = build_parser().format_help()
    for flag in flags:
        assert flag in help_text
    for action in build_parser()._actions:
        assert action.help, f"{action.option_strings} has no help"
        if action.option_strings[0].startswith("--") and action.dest not in {"help", "version"}:
            assert env_name(action.option_strings[0]) in action.help


def test_exit_codes_match_the_contract_and_are_distinct() -> None:
    assert exit_codes() == contract_exit_codes()
    codes = [error.exit_code for error in ALL_ERRORS]
    assert len(set(codes)) == len(codes)
    epilog = build_parser().epilog or ""
    for reason, code in contract_exit_codes().items():
        assert re.search(rf"\b{code}\s+{reason}\b", epilog), reason


def test_choices_match_the_contract() -> None:
    text = _section("Arguments")
    assert "`FP32`, `FP16`, `INT8`, `NATIVE`" in text
    assert [p.value for p in Precision] == ["FP32", "FP16", "INT8", "NATIVE"]
    for strategy in ProfileStrategy:
        assert f"`{strategy.value}`" in text


def test_defaults_follow_the_contract() -> None:
    config = parse_config(["--source", "s3://b/m", "--model-name", "m"], {})
    assert config.output_base == "/models"
    assert config.model_version is None  # the source's own version number, else 1
    assert config.signature_key == "serving_default"
    assert config.precision is Precision.FP16
    assert config.max_workspace_bytes == 1073741824
    assert config.minimum_segment_size == 3
    assert config.maximum_cached_engines == 1
    assert config.dynamic_shapes is True
    assert config.profile_strategy is ProfileStrategy.RANGE
    assert config.build_shapes == ()
    assert (config.calibration_batches, config.calibration_batch_size) == (10, 8)
    assert config.synthetic_calibration is False
    assert config.accuracy_check is True  # on for FP16
    assert config.accuracy_samples == 32
    assert (config.accuracy_rtol, config.accuracy_atol) == (0.05, 0.05)  # FP16's
    assert config.accuracy_min_top1 is None
    assert config.warmup_records == 1
    assert config.timeout_seconds == 3600
    assert config.max_source_bytes == 20 * 2**30
    assert (config.log_level, config.log_format) == ("INFO", "text")


@pytest.mark.parametrize(
    ("precision", "expected"), [("FP16", True), ("INT8", True), ("FP32", False), ("NATIVE", False)]
)
def test_accuracy_check_default_depends_on_precision(precision: str, expected: bool) -> None:
    argv = ["--source", "x", "--model-name", "m", "--precision", precision]
    assert parse_config(argv, {}).accuracy_check is expected
    assert parse_config([*argv, "--no-accuracy-check"], {}).accuracy_check is False
    assert parse_config([*argv, "--accuracy-check"], {}).accuracy_check is True


@pytest.mark.parametrize(
    ("precision", "rtol", "atol"),
    [("FP32", 1e-3, 1e-3), ("FP16", 0.05, 0.05), ("INT8", 0.1, 0.5), ("NATIVE", 1e-5, 1e-5)],
)
def test_tolerance_defaults_depend_on_precision(precision: str, rtol: float, atol: float) -> None:
    """FP16/INT8 engines do not reproduce FP32 to rtol 0.01 on every element (docs/api.md)."""
    argv = ["--source", "x", "--model-name", "m", "--precision", precision]
    config = parse_config(argv, {})
    assert (config.accuracy_rtol, config.accuracy_atol) == (rtol, atol)
    assert DEFAULT_TOLERANCES[Precision(precision)] == Tolerances(rtol=rtol, atol=atol)
    given = parse_config([*argv, "--accuracy-rtol", "0.2"], {"TRT_CONVERT_ACCURACY_ATOL": "0"})
    assert (given.accuracy_rtol, given.accuracy_atol) == (0.2, 0.0)


def test_tolerance_defaults_are_the_ones_documented() -> None:
    """docs/api.md's table of default tolerances is the converter's."""
    text = (CONTRACT.parent / "api.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(FP32|FP16|INT8|NATIVE)` \| ([0-9.e-]+) \| ([0-9.e-]+) \|", text, re.M)
    documented = {Precision(p): Tolerances(rtol=float(r), atol=float(a)) for p, r, a in rows}
    assert documented == DEFAULT_TOLERANCES
    assert "per precision" in _section("Arguments")


def test_model_version_defaults_to_source_version() -> None:
    argv = ["--source", "x", "--model-name", "m", "--source-version", "5"]
    assert parse_config(argv, {}).model_version == 5
    assert parse_config([*argv, "--model-version", "9"], {}).model_version == 9


def test_environment_fallback_for_every_flag_kind() -> None:
    env = {
        "TRT_CONVERT_SOURCE": "gs://b/m",
        "TRT_CONVERT_MODEL_NAME": "resnet",
        "TRT_CONVERT_PRECISION": "int8",
        "TRT_CONVERT_DYNAMIC_SHAPES": "false",
        "TRT_CONVERT_SYNTHETIC_CALIBRATION": "true",
        "TRT_CONVERT_BUILD_SHAPE": "x=1x3; x=8x3",
        "TRT_CONVERT_ACCURACY_RTOL": "0.5",
        "TRT_CONVERT_PROFILE_STRATEGY": "range+optimal",
        "TRT_CONVERT_MAX_SOURCE_BYTES": "1000",
    }
    config = parse_config([], env)
    assert config.source == "gs://b/m"
    assert config.model_name == "resnet"
    assert config.precision is Precision.INT8
    assert config.dynamic_shapes is False
    assert config.synthetic_calibration is True
    assert config.build_shapes == ({"x": (1, 3)}, {"x": (8, 3)})
    assert config.accuracy_rtol == 0.5
    assert config.profile_strategy is ProfileStrategy.RANGE_OPTIMAL
    assert config.max_source_bytes == 1000


def test_command_line_wins_over_environment() -> None:
    env = {"TRT_CONVERT_SOURCE": "gs://b/m", "TRT_CONVERT_MODEL_NAME": "a"}
    config = parse_config(["--model-name", "b", "--no-dynamic-shapes"], env)
    assert (config.source, config.model_name, config.dynamic_shapes) == ("gs://b/m", "b", False)
    env["TRT_CONVERT_DYNAMIC_SHAPES"] = "false"
    assert parse_config(["--dynamic-shapes"], env).dynamic_shapes is True


def test_env_names_follow_the_rule() -> None:
    assert env_name("--max-workspace-bytes") == "TRT_CONVERT_MAX_WORKSPACE_BYTES"
    assert env_name("--source") == "TRT_CONVERT_SOURCE"


@pytest.mark.parametrize(
    ("argv", "env", "fragment"),
    [
        (["--model-name", "m"], {}, "--source"),
        (["--source", "x"], {}, "--model-name"),
        (["--source", "x", "--model-name", "m", "--precision", "FP8"], {}, "FP8"),
        (["--source", "x", "--model-name", "m", "--build-shape", "x=1xq"], {}, "integers"),
        (["--source", "x", "--model-name", "m", "--build-shape", "x=0x3"], {}, ">= 1"),
        (["--source", "x", "--model-name", "../etc"], {}, "--model-name"),
        (["--source", "x", "--model-name", "m", "--minimum-segment-size", "0"], {}, "-1"),
        (["--source", "x", "--model-name", "m", "--accuracy-min-top1", "2"], {}, "between"),
        (["--source", "x", "--model-name", "m", "--bogus"], {}, "--bogus"),
        (["--source", "x", "--model-name", "m", "--warmup-records", "1001"], {}, "1000"),
        (["--source", "ftp://h/m.tgz", "--model-name", "m"], {}, "unsupported scheme 'ftp'"),
        (
            ["--source", "x", "--model-name", "m", "--calibration-source", "hdfs://c.npz"],
            {},
            "unsupported scheme 'hdfs'",
        ),
        (
            [
                "--source",
                "x",
                "--model-name",
                "m",
                "--calibration-source",
                "c.npz",
                "--synthetic-calibration",
            ],
            {},
            "exclude",
        ),
        (
            ["--source", "x", "--model-name", "m"],
            {"TRT_CONVERT_DYNAMIC_SHAPES": "maybe"},
            "true or false",
        ),
        (["--source", "x", "--model-name", "m"], {"TRT_CONVERT_ACCURACY_SAMPLES": "0"}, ">= 1"),
    ],
)
def test_invalid_arguments(argv: list[str], env: dict[str, str], fragment: str) -> None:
    with pytest.raises(InvalidArguments, match=re.escape(fragment)):
        parse_config(argv, env)


def test_invalid_arguments_exit_2_with_a_report(tmp_path: Path) -> None:
    report = tmp_path / "sub" / "report.json"
    code = main(["--model-name", "m", "--precision", "FP8", "--report-path", str(report)])
    assert code == 2
    data = json.loads(report.read_text())
    assert data["result"] == "Failed"
    assert (data["reason"], data["exitCode"]) == ("InvalidArguments", 2)
    assert "FP8" in data["message"]


def test_report_path_from_environment_is_used_for_argument_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = tmp_path / "report.json"
    monkeypatch.setenv("TRT_CONVERT_REPORT_PATH", str(report))
    assert main(["--source", "x"]) == 2
    assert json.loads(report.read_text())["reason"] == "InvalidArguments"


def test_int8_without_calibration_is_rejected_before_any_work(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    code = main(
        [
            "--source", str(tmp_path / "does-not-matter"),
            "--model-name", "m",
            "--precision", "INT8",
            "--output-base", str(tmp_path / "models"),
            "--report-path", str(report),
        ]
    )  # fmt: skip
    assert code == 32
    data = json.loads(report.read_text())
    assert data["reason"] == "CalibrationFailed"
    assert "--calibration-source" in data["message"]
    assert "--synthetic-calibration" in data["message"]
    assert not (tmp_path / "models").exists()


def test_help_and_argument_errors_do_not_import_tensorflow(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from trtserve_converter.cli import main\n"
        "assert main(['--help']) == 0\n"
        f"assert main(['--report-path', {str(tmp_path / 'r.json')!r}]) == 2\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "--max-workspace-bytes" in result.stdout
    assert "exit codes:" in result.stdout


@pytest.fixture
def no_termination_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Outside a pod: the termination log does not exist (and must not be created)."""
    path = tmp_path / "dev" / "termination-log"
    monkeypatch.setattr("trtserve_converter.cli.TERMINATION_LOG", str(path))
    monkeypatch.delenv("TRT_CONVERT_REPORT_PATH", raising=False)
    return path


def test_report_goes_to_stdout_outside_a_pod(
    no_termination_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--model-name", "m"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert (report["reason"], report["exitCode"]) == ("InvalidArguments", 2)
    assert not no_termination_log.exists()
    assert not no_termination_log.parent.exists()
    config = parse_config(["--source", "x", "--model-name", "m"], {})
    assert config.report_path == "-"


def test_report_goes_to_the_termination_log_in_a_pod(
    no_termination_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    no_termination_log.parent.mkdir()
    no_termination_log.write_text("")  # the kubelet creates it in every container
    assert main(["--model-name", "m"]) == 2
    assert json.loads(no_termination_log.read_text())["reason"] == "InvalidArguments"
    assert capsys.readouterr().out == ""
    config = parse_config(["--source", "x", "--model-name", "m"], {})
    assert config.report_path == str(no_termination_log)


def test_report_path_dash_means_stdout_and_a_named_file_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--model-name", "m", "--report-path", "-"]) == 2
    assert json.loads(capsys.readouterr().out)["reason"] == "InvalidArguments"
    named = tmp_path / "out" / "report.json"
    assert main(["--model-name", "m", "--report-path", str(named)]) == 2
    assert json.loads(named.read_text())["reason"] == "InvalidArguments"


def test_every_flag_is_declared_once_with_its_group_and_environment_variable() -> None:
    """flags.py is the one place that knows each flag (name, type, default, help, group);
    the parser, the environment variables and --help all come from it."""
    declared = [flag for group in FLAG_GROUPS for flag in group.flags]
    names = [flag.name for flag in declared]
    assert len(names) == len(set(names))
    assert set(names) | {"-h", "--help", "--version"} == parser_flags() - {
        f"--no-{name[2:]}" for name in names
    }
    assert len({flag.env for flag in declared}) == len(declared)
    help_text = build_parser().format_help()
    for group in FLAG_GROUPS:
        assert f"{group.title}:" in help_text
        for flag in group.flags:
            assert flag.env == env_name(flag.name)
            assert f"[env {flag.env}]" in " ".join(help_text.split())
