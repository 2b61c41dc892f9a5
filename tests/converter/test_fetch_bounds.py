"""Fetch time bounds: our retry loop is the only one, and missing or refused credentials
on s3:// and gs:// fail fast with SourceAuthFailed (issue 8, item 2).

Everything runs against servers on 127.0.0.1 (moto, and a fake of Google's token, metadata
and storage endpoints); a guard refuses any other connection, so nothing here can reach
the internet or a real metadata server. The assertions count requests; elapsed times are
only checked loosely (far below the 158 s and 19 s the issue measured).
"""

# ruff: noqa: PLC0415, N815

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import tarfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from trtserve_converter.errors import FetchFailed, SourceAuthFailed
from trtserve_converter.fetch import FETCH_ATTEMPTS, fetch_source

from .fake_gcs import service_account_key

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
FAST_SECONDS = 20.0  # loose: the issue measured 158 s (gs) and 19 s (s3)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse name lookups and connections to anything but 127.0.0.1."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in LOOPBACK:
            raise socket.gaierror(socket.EAI_NONAME, f"test guard: no lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(sock: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and address[0] not in LOOPBACK:
            raise ConnectionRefusedError(f"test guard: no connection to {address[0]}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr("trtserve_converter.fetch.RETRY_BACKOFF_SECONDS", 0.0)


@dataclass
class FakeGoogle:
    """Google's OAuth token endpoint, metadata server and storage API on one local port."""

    url: str
    requests: Counter[str] = field(default_factory=Counter)
    storage_requests: Counter[str] = field(default_factory=Counter)  # by method and path
    objects: dict[str, bytes] = field(default_factory=dict)  # "bucket/name" -> content
    token_status: int = 200
    storage_status: int = 503

    def key_file(self, directory: Path) -> Path:
        """A service account key whose token endpoint is this server."""
        path = directory / "key.json"
        path.write_text(json.dumps(service_account_key(f"{self.url}/token")), encoding="utf-8")
        return path


def _handler(fake: FakeGoogle) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if self.path.startswith("/token"):
                fake.requests["token"] += 1
                if fake.token_status == 200:
                    self._answer(200, {"access_token": "t0k", "expires_in": 3600})
                else:
                    self._answer(fake.token_status, {"error": "invalid_grant"})
            elif self.path.startswith(("/storage/", "/download/")):
                fake.requests["storage"] += 1
                fake.storage_requests[f"{self.command} {self.path}"] += 1
                if fake.objects:
                    self._serve_object()
                    return
                message = {403: "Forbidden", 503: "Service Unavailable"}.get(
                    fake.storage_status, "error"
                )
                self._answer(
                    fake.storage_status,
                    {"error": {"code": fake.storage_status, "message": message}},
                )
            else:  # the metadata server's ping: answers, but not as Google's metadata server
                fake.requests["metadata"] += 1
                self._answer(200, {})

        def _serve_object(self) -> None:
            """Just enough of the JSON API for gcsfs to read one object."""
            url = urlsplit(self.path)
            bucket, _, name = url.path.split("/b/", 1)[1].partition("/o")
            name = unquote(name.lstrip("/"))
            content = fake.objects.get(f"{bucket}/{name}")
            if not name:  # a listing: no "directories" here
                self._answer(200, {"kind": "storage#objects", "items": [], "prefixes": []})
            elif content is None:
                self._answer(404, {"error": {"code": 404, "message": "Not Found"}})
            elif parse_qs(url.query).get("alt") == ["media"]:
                first, _, last = (
                    self.headers.get("Range", "bytes=0-").removeprefix("bytes=").partition("-")
                )
                chunk = content[int(first) : int(last) + 1 if last else None]
                self.send_response(206 if self.headers.get("Range") else 200)
                self.send_header("Content-Length", str(len(chunk)))
                self.end_headers()
                self.wfile.write(chunk)
            else:
                self._answer(
                    200,
                    {
                        "kind": "storage#object",
                        "bucket": bucket,
                        "name": name,
                        "size": str(len(content)),
                        "generation": "1",
                        "updated": "2026-01-01T00:00:00.000Z",
                        "timeCreated": "2026-01-01T00:00:00.000Z",
                        "contentType": "application/gzip",
                    },
                )

        def _route_quietly(self) -> None:
            # The client may stop reading (gcsfs reads ahead, then closes the connection).
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._route()

        do_GET = do_POST = _route_quietly

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@pytest.fixture
def fake_google(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeGoogle]:
    """A fake Google and an environment with no Google credentials anywhere."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    fake = FakeGoogle(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(fake)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host = fake.url.removeprefix("http://")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake.url)
    monkeypatch.setenv("GCE_METADATA_IP", host)
    monkeypatch.setenv("GCE_METADATA_HOST", host)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no gcloud ADC file
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TRT_CONVERT_SECRET_DIR", str(tmp_path / "no-secret"))
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "NO_GCE_CHECK", "GCE_METADATA_ROOT"):
        monkeypatch.delenv(name, raising=False)
    yield fake
    server.shutdown()
    thread.join()


def _timed_failure(uri: str, work: Path) -> tuple[BaseException, float]:
    started = time.monotonic()
    with pytest.raises((SourceAuthFailed, FetchFailed)) as caught:
        fetch_source(uri, work, 1 << 20)
    return caught.value, time.monotonic() - started


# --- gs:// ------------------------------------------------------------------------


def test_gs_without_credentials_is_an_auth_failure_without_a_storage_request(
    fake_google: FakeGoogle, tmp_path: Path
) -> None:
    error, seconds = _timed_failure("gs://nonexistent-bucket/x", tmp_path / "work")
    assert isinstance(error, SourceAuthFailed), error
    assert "credentials" in error.message
    assert "GOOGLE_APPLICATION_CREDENTIALS" in error.message
    assert fake_google.requests["storage"] == 0  # never anonymous
    assert fake_google.requests["metadata"] <= 3  # google-auth's bounded metadata probe
    assert seconds < FAST_SECONDS


def test_gs_refused_credentials_fail_at_the_first_token_request(
    fake_google: FakeGoogle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_google.token_status = 400
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(fake_google.key_file(tmp_path)))
    error, seconds = _timed_failure("gs://bucket/model", tmp_path / "work")
    assert isinstance(error, SourceAuthFailed), error
    assert fake_google.requests["token"] == 1
    assert fake_google.requests["storage"] == 0
    assert seconds < FAST_SECONDS


def test_gs_forbidden_is_an_auth_failure_after_one_request(
    fake_google: FakeGoogle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_google.storage_status = 403
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(fake_google.key_file(tmp_path)))
    error, _ = _timed_failure("gs://bucket/model", tmp_path / "work")
    assert isinstance(error, SourceAuthFailed), error
    # isdir() and info() each ask for the object and its listings once; nothing retries
    # a 403 (before: gcsfs's loop and ours, up to 18 times each).
    assert fake_google.storage_requests
    assert max(fake_google.storage_requests.values()) <= 2


def test_gs_transient_errors_are_retried_by_our_loop_only(
    fake_google: FakeGoogle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gcsfs retries each request 6 times itself; under our loop that stacked to 18."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(fake_google.key_file(tmp_path)))
    error, seconds = _timed_failure("gs://bucket/model", tmp_path / "work")
    assert isinstance(error, FetchFailed), error
    assert max(fake_google.storage_requests.values()) == FETCH_ATTEMPTS
    assert fake_google.requests["token"] == 1  # credentials resolved once, then reused
    assert seconds < FAST_SECONDS


def test_gs_archive_is_downloaded_with_a_service_account_key(
    fake_google: FakeGoogle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The single-attempt filesystem still reads: one token, each request once."""
    archive = tmp_path / "m.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        payload = tmp_path / "saved_model.pb"
        payload.write_bytes(b"pb" * 1000)
        tar.add(payload, arcname="m/1/saved_model.pb")
    fake_google.objects["bucket/models/m.tar.gz"] = archive.read_bytes()
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(fake_google.key_file(tmp_path)))
    extracted = fetch_source("gs://bucket/models/m.tar.gz", tmp_path / "work", 1 << 20)
    assert (extracted / "m" / "1" / "saved_model.pb").read_bytes() == b"pb" * 1000
    assert fake_google.requests["token"] == 1
    assert fake_google.requests["metadata"] == 0


@pytest.mark.filterwarnings("ignore:You are using a Python version:FutureWarning")
def test_gs_uses_gcsfs_core_filesystem_whatever_gcsfs_defaults_to(
    fake_google: FakeGoogle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gcsfs 2026.10 made its experimental ExtendedGcsFileSystem (HNS/zonal buckets, with
    its own Storage Control retries) the default; the converter stays on the core one."""
    from gcsfs.core import GCSFileSystem

    from trtserve_converter.gcs import gcs_filesystem

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(fake_google.key_file(tmp_path)))
    monkeypatch.setenv("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "true")
    fs = gcs_filesystem(str(fake_google.key_file(tmp_path)))
    assert isinstance(fs, GCSFileSystem)
    try:
        from gcsfs.extended_gcsfs import ExtendedGcsFileSystem
    except ImportError:  # older gcsfs: nothing to exclude
        return
    assert not isinstance(fs, ExtendedGcsFileSystem)


# --- s3:// ------------------------------------------------------------------------


@pytest.fixture
def unavailable_server() -> Iterator[tuple[str, Counter[str]]]:
    """An endpoint that answers every request with 503 and counts them."""
    seen: Counter[str] = Counter()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _unavailable(self) -> None:
            seen[f"{self.command} {self.path}"] += 1
            body = b"<Error><Code>ServiceUnavailable</Code><Message>down</Message></Error>"
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_HEAD = do_PUT = do_POST = _unavailable

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    thread.join()


def test_s3_transient_errors_are_retried_by_our_loop_only(
    unavailable_server: tuple[str, Counter[str]],
    s3_env: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """botocore (and s3fs) retried each request inside ours: 3 x 4 requests before."""
    endpoint, seen = unavailable_server
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    error, seconds = _timed_failure("s3://models/m", tmp_path / "work")
    assert isinstance(error, FetchFailed), error
    assert max(seen.values()) == FETCH_ATTEMPTS
    assert seconds < FAST_SECONDS


def test_the_s3_cache_store_is_retried_by_our_loop_only(
    unavailable_server: tuple[str, Counter[str]], s3_env: str, tmp_path: Path
) -> None:
    """The cache's store is opened by fetch.open_filesystem (no second S3 client): one
    attempt per botocore/s3fs request under fetch's loop, with the cache's own endpoint."""
    from trtserve_converter.cache.store import CacheStoreError, open_store

    endpoint, seen = unavailable_server
    secret = tmp_path / "cache-secret"
    secret.mkdir()
    (secret / "AWS_ENDPOINT_URL").write_text(endpoint)
    store = open_store("s3://cache/trtserve", str(secret))
    assert store.fs.retries == 1
    started = time.monotonic()
    with pytest.raises(CacheStoreError, match="after 3 attempts"):
        store.read("ns/k/manifest.json")
    assert list(seen.values()) == [FETCH_ATTEMPTS]  # one request, made 3 times
    assert all(path.endswith(" /cache/trtserve/ns/k/manifest.json") for path in seen)
    assert time.monotonic() - started < FAST_SECONDS


def test_s3_wrong_keys_fail_fast_with_auth_failed(
    s3_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """moto checks signatures once told to: unknown keys get 403 InvalidAccessKeyId."""
    import moto.settings

    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    error, seconds = _timed_failure("s3://models/m", tmp_path / "work")
    assert isinstance(error, SourceAuthFailed), error
    assert "secretRef" in error.message
    assert seconds < FAST_SECONDS


def test_s3_without_credentials_fails_fast(
    s3_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    error, seconds = _timed_failure("s3://models/m", tmp_path / "work")
    assert isinstance(error, SourceAuthFailed), error
    assert seconds < FAST_SECONDS


def test_the_transports_tested_here_are_the_pinned_ones() -> None:
    """The bounds above rely on these libraries' internals: the pins say which releases."""
    import tomllib
    from importlib import metadata

    from packaging.requirements import Requirement

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    extra = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]["converter"]
    pins = {req.name: req for req in map(Requirement, extra)}
    for name in ("fsspec", "s3fs", "gcsfs"):
        assert pins[name].specifier, f"{name} is not pinned"
        assert pins[name].specifier.contains(metadata.version(name)), name
