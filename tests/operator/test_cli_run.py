"""``trtserve-operator run`` fails fast, in one line, without a Kubernetes configuration."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from trtserve_operator.cli import configure_logging, main
from trtserve_operator.settings import Settings


def test_run_without_configuration_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    monkeypatch.setenv("KUBECONFIG", str(missing))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)

    assert main(["run"]) == 2

    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith("error: no Kubernetes configuration")
    assert str(missing) in err
    assert "set KUBECONFIG" in err


def test_text_logs_show_whole_logger_names(capsys: pytest.CaptureFixture[str]) -> None:
    """kopf's FULL format cuts names to 20 characters (``trtserve_operator.ha``)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        configure_logging(Settings(log_format="text"))
        logging.getLogger("trtserve_operator.handlers.trtmodels").warning("hello")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    line = capsys.readouterr().err.strip()
    assert " trtserve_operator.handlers.trtmodels [WARNING" in line
    assert line.endswith("] hello")
