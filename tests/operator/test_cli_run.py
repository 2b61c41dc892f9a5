"""``trtserve-operator run`` fails fast, in one line, without a Kubernetes configuration."""

from __future__ import annotations

import http.server
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import kopf
import pytest
import yaml
from builder_inputs import REPO

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
        logging.getLogger("trtserve_operator.handlers.changes").warning("hello")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    line = capsys.readouterr().err.strip()
    assert " trtserve_operator.handlers.changes [WARNING" in line
    assert line.endswith("] hello")


def write_kubeconfig(path: Path, server: str, context: str = "dev") -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
                "current-context": context,
            }
        )
    )
    return path


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the block ends


@pytest.fixture
def no_kopf(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(**_: object) -> None:
        raise AssertionError("kopf.run must not start when the API server is unreachable")

    monkeypatch.setattr(kopf, "run", fail)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)


@pytest.mark.usefixtures("no_kopf")
@pytest.mark.parametrize("command", ["run", "check"])
def test_closed_port_fails_fast_in_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    port = closed_port()
    kubeconfig = write_kubeconfig(tmp_path / "config", f"https://127.0.0.1:{port}")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))

    assert main([command]) == 2

    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "\n" not in err, err
    assert err.startswith("error: cannot reach the Kubernetes API server")
    assert f"127.0.0.1:{port}" in err
    assert "context dev" in err
    assert str(kubeconfig) in err
    assert "kubectl config use-context" in err


class _FakeApiServer(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        body = json.dumps({"gitVersion": "v1.36.0"}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def fake_api_server() -> Iterator[tuple[str, type[_FakeApiServer]]]:
    handler = type("Handler", (_FakeApiServer,), {"status": 200})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.usefixtures("no_kopf")
def test_check_names_the_server_it_reached(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fake_api_server: tuple[str, type[_FakeApiServer]],
) -> None:
    url, _ = fake_api_server
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "config", url)))
    assert main(["check"]) == 0
    out = capsys.readouterr().out.strip()
    assert out == f"Kubernetes v1.36.0 at {url} (context dev of {tmp_path / 'config'})"


@pytest.mark.usefixtures("no_kopf")
def test_refused_credentials_are_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fake_api_server: tuple[str, type[_FakeApiServer]],
) -> None:
    url, handler = fake_api_server
    handler.status = 401
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "config", url)))
    assert main(["check"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith(f"error: the Kubernetes API server {url} refused the credentials")
    assert "context dev" in err


@pytest.mark.usefixtures("no_kopf")
def test_health_port_in_use_is_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fake_api_server: tuple[str, type[_FakeApiServer]],
) -> None:
    url, _ = fake_api_server
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "config", url)))
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        monkeypatch.setenv("TRTSERVE_HEALTH_PORT", str(busy.getsockname()[1]))
        assert main(["run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "health port" in err
    assert "TRTSERVE_HEALTH_PORT" in err


def test_default_health_port_is_uncommon() -> None:
    """8080 collides with common local servers when the operator runs on a laptop."""
    assert Settings().health_port not in {80, 443, 3000, 5000, 8000, 8080, 8443, 8888, 9090}


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_without_cluster_shows_our_line_not_kubectls(tmp_path: Path) -> None:
    """`make run` checks the API server before kubectl applies the CRD."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / ".installed").touch()
    cli = venv / "bin" / "trtserve-operator"
    cli.write_text(f'#!/bin/sh\nexec {sys.executable} -m trtserve_operator.cli "$@"\n')
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    kubectl = fake_bin / "kubectl"
    kubectl.write_text(f"#!/bin/sh\ntouch {tmp_path / 'kubectl-ran'}\nexit 1\n")
    for script in (cli, kubectl):
        script.chmod(0o755)
    kubeconfig = write_kubeconfig(tmp_path / "config", f"https://127.0.0.1:{closed_port()}")
    env = {
        **os.environ,
        "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}",
        "KUBECONFIG": str(kubeconfig),
        "PYTHONPATH": os.pathsep.join([str(REPO / "operator"), str(REPO / "converter")]),
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), "run", f"OPERATOR_VENV={venv}"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode != 0
    assert not (tmp_path / "kubectl-ran").exists()
    ours = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(ours) == 1, result.stderr
    assert "cannot reach the Kubernetes API server" in ours[0]
    assert "openapi" not in result.stdout + result.stderr


def test_run_gives_kopf_uvloops_event_loop_when_installed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake_api_server: tuple[str, type[_FakeApiServer]],
) -> None:
    """uvloop (in the operator extra) is about a sixth of the operator's CPU per model at
    500 models (docs/operator.md); without it asyncio's loop is used."""
    uvloop = pytest.importorskip("uvloop")
    url, _ = fake_api_server
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "config", url)))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        monkeypatch.setenv("TRTSERVE_HEALTH_PORT", str(probe.getsockname()[1]))
    loops: list[object] = []
    monkeypatch.setattr(kopf, "run", lambda loop, **_: loops.append(loop))
    assert main(["run"]) == 0
    (loop,) = loops
    assert isinstance(loop, uvloop.Loop)

    monkeypatch.setitem(sys.modules, "uvloop", None)  # not installed
    assert main(["run"]) == 0
    assert not isinstance(loops[1], uvloop.Loop)
