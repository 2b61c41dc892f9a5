"""Shared fixtures of the converter tests: tiny SavedModels, servers, CLI runner.

Everything expensive (TensorFlow models, servers) is session-scoped and read-only;
tests that write get their own tmp_path.
"""

# TensorFlow and moto are imported inside the fixtures that need them, so the tests
# without TensorFlow (`-m "not tf"`) stay fast.
# ruff: noqa: PLC0415

from __future__ import annotations

import http.server
import json
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HALF_PLUS_TWO = (
    REPO_ROOT.parent / "shared/fixtures/tensorflow-serving-testdata/saved_model_half_plus_two_cpu"
)
BEARER_TOKEN = "s3cr3t-token"
SLOW_SECONDS = 8


@dataclass
class CliRun:
    code: int
    report: dict[str, Any]
    report_text: str
    output_base: Path


def cli_runner(tmp_path: Path) -> Any:
    from trtserve_converter.cli import main

    def run(*args: str, output_base: Path | None = None) -> CliRun:
        base = output_base or tmp_path / "models"
        report_path = tmp_path / f"report-{len(list(tmp_path.glob('report-*')))}.json"
        code = main([*args, "--output-base", str(base), "--report-path", str(report_path)])
        text = report_path.read_text(encoding="utf-8")
        return CliRun(code=code, report=json.loads(text), report_text=text, output_base=base)

    return run


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """main() converts in this process, as the supervised child does (supervisor.py), so
    a test's doubles and monkeypatches apply; --timeout-seconds is the parent's and is
    not enforced here."""
    from trtserve_converter.supervisor import CHILD_MARKER

    monkeypatch.setenv(CHILD_MARKER, "1")


@pytest.fixture
def run_cli(tmp_path: Path, in_process: None) -> Any:
    """Run `trt-convert` in-process via main([...]) and return exit code and report."""
    return cli_runner(tmp_path)


@pytest.fixture
def run_supervised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run `trt-convert` as in a pod: main([...]) here is the parent, the conversion a
    child process (no double or monkeypatch of this process reaches it)."""
    from trtserve_converter.supervisor import CHILD_MARKER

    monkeypatch.delenv(CHILD_MARKER, raising=False)
    return cli_runner(tmp_path)


# --- tiny SavedModels -------------------------------------------------------------


def _save(module: Any, path: Path, signatures: dict[str, Any]) -> Path:
    import tensorflow as tf

    tf.saved_model.save(module, str(path), signatures=signatures)
    return path


def make_classifier(path: Path, seed: int) -> Path:
    """A conv classifier: images [N,8,8,3] -> probabilities [N,4] (serving_default)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    module = tf.Module()
    module.kernel = tf.Variable(rng.standard_normal((3, 3, 3, 6)).astype(np.float32))
    module.dense = tf.Variable(rng.standard_normal((6, 4)).astype(np.float32))

    @tf.function(  # type: ignore[untyped-decorator]
        input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32, name="images")]
    )
    def serve(images: Any) -> dict[str, Any]:
        features = tf.nn.relu(tf.nn.conv2d(images, module.kernel, 1, "SAME"))
        pooled = tf.reduce_mean(features, axis=[1, 2])
        return {"probabilities": tf.nn.softmax(tf.matmul(pooled, module.dense))}

    module.serve = serve
    return _save(module, path, {"serving_default": serve})


def make_two_input(path: Path) -> Path:
    """Two inputs a [N,4] float, b [N] int64 -> scaled [N,4] float, count [N] int64."""
    import tensorflow as tf

    module = tf.Module()
    module.scale = tf.Variable(np.arange(4, dtype=np.float32) + 1)

    @tf.function(  # type: ignore[untyped-decorator]
        input_signature=[
            tf.TensorSpec([None, 4], tf.float32, name="a"),
            tf.TensorSpec([None], tf.int64, name="b"),
        ]
    )
    def serve(a: Any, b: Any) -> dict[str, Any]:
        return {"scaled": a * module.scale, "count": b + 1}

    module.serve = serve
    return _save(module, path, {"serving_default": serve})


def make_without_default(path: Path) -> Path:
    """Only `predict` and `embed` signatures, no serving_default."""
    import tensorflow as tf

    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])  # type: ignore[untyped-decorator]
    def predict(x: Any) -> dict[str, Any]:
        return {"y": x * 2.0}

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])  # type: ignore[untyped-decorator]
    def embed(x: Any) -> dict[str, Any]:
        return {"e": x + 1.0}

    module.predict, module.embed = predict, embed
    return _save(module, path, {"predict": predict, "embed": embed})


@dataclass(frozen=True)
class Models:
    classifier: Path
    classifier_other: Path
    two_input: Path
    without_default: Path
    root: Path


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    """The tiny SavedModels, made once per session (read them, never write them)."""
    root = tmp_path_factory.mktemp("models")
    return Models(
        classifier=make_classifier(root / "classifier", seed=1),
        classifier_other=make_classifier(root / "classifier_other", seed=2),
        two_input=make_two_input(root / "two_input"),
        without_default=make_without_default(root / "without_default"),
        root=root,
    )


@pytest.fixture(scope="session")
def classifier_tarball(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The classifier as a TF Serving model base (version 7) in a .tar.gz."""
    path = tmp_path_factory.mktemp("archives") / "classifier.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        archive.add(models.classifier, arcname="classifier/7")
    return path


@pytest.fixture(scope="session")
def half_plus_two() -> Path:
    if not (HALF_PLUS_TWO / "00000123" / "saved_model.pb").is_file():
        pytest.skip(f"TF Serving test data not found at {HALF_PLUS_TWO}")
    return HALF_PLUS_TWO


# --- servers ----------------------------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the directory; /private/ needs the bearer token; /slow/ stalls."""

    def do_GET(self) -> None:
        if self.path.startswith("/slow/"):
            time.sleep(SLOW_SECONDS)  # a stalled server, for the timeout test
            self.send_error(504, "too slow")
            return
        if self.path.startswith("/private/"):
            if self.headers.get("Authorization") != f"Bearer {BEARER_TOKEN}":
                self.send_error(401, "unauthorized")
                return
            self.path = self.path[len("/private") :]
        super().do_GET()

    def do_HEAD(self) -> None:
        if self.path.startswith("/private/"):
            if self.headers.get("Authorization") != f"Bearer {BEARER_TOKEN}":
                self.send_error(401, "unauthorized")
                return
            self.path = self.path[len("/private") :]
        super().do_HEAD()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="session")
def bearer_token() -> str:
    """The token the http server wants under /private/."""
    return BEARER_TOKEN


@pytest.fixture(scope="session")
def http_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("http")


@pytest.fixture(scope="session")
def http_server(http_root: Path) -> Iterator[str]:
    """Base URL of an HTTP server on 127.0.0.1 serving `http_root`."""

    def handler(*args: Any, **kwargs: Any) -> _Handler:
        return _Handler(*args, directory=str(http_root), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """An S3 endpoint (moto server) on 127.0.0.1."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Environment of a pod whose secret points at the moto endpoint."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    return moto_endpoint
