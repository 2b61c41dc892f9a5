"""``trtserve-operator run`` fails fast, in one line, without a Kubernetes configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from trtserve_operator.cli import main


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
