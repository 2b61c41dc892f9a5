"""Fetch: error translation, bounded retries, storage options, size caps."""

from __future__ import annotations

import socket
import zipfile
from pathlib import Path
from typing import Any

import pytest

from trtserve_converter.errors import (
    FetchFailed,
    NotASavedModel,
    SourceAuthFailed,
    SourceNotFound,
    SourceTooLarge,
)
from trtserve_converter.fetch import (
    FETCH_ATTEMPTS,
    fetch_source,
    local_path,
    storage_options,
    translate_error,
    with_retries,
)


class NoCredentialsError(Exception):
    """Same class name as botocore's: errors are recognised by name, not import."""


class HttpError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (FileNotFoundError("x"), SourceNotFound),
        (PermissionError("denied"), SourceAuthFailed),
        (NoCredentialsError("Unable to locate credentials"), SourceAuthFailed),
        (HttpError(401), SourceAuthFailed),
        (HttpError(403), SourceAuthFailed),
        (HttpError(404), SourceNotFound),
        (HttpError(503), FetchFailed),
        (ConnectionResetError("reset"), FetchFailed),
        (TimeoutError("read timeout"), FetchFailed),
    ],
)
def test_translate_error(error: Exception, expected: type[Exception]) -> None:
    translated = translate_error(error, "s3://b/m")
    assert type(translated) is expected
    assert "\n" not in translated.message


def test_transient_errors_are_retried_with_backoff() -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < FETCH_ATTEMPTS:
            raise ConnectionResetError("reset by peer")
        return "ok"

    assert with_retries(flaky, "http://x", sleep=sleeps.append) == "ok"
    assert len(calls) == FETCH_ATTEMPTS
    assert sleeps == [1.0, 2.0]


def test_retries_are_bounded() -> None:
    calls: list[int] = []

    def down() -> None:
        calls.append(1)
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(FetchFailed, match=f"after {FETCH_ATTEMPTS} attempts"):
        with_retries(down, "http://x", sleep=lambda _: None)
    assert len(calls) == FETCH_ATTEMPTS


def test_permanent_errors_are_not_retried() -> None:
    calls: list[int] = []

    def missing() -> None:
        calls.append(1)
        raise FileNotFoundError("nope")

    with pytest.raises(SourceNotFound):
        with_retries(missing, "s3://b/m", sleep=lambda _: None)
    assert calls == [1]


def test_storage_options_from_environment(tmp_path: Path) -> None:
    def env(**values: str) -> dict[str, str]:
        return {"TRT_CONVERT_SECRET_DIR": str(tmp_path), **values}  # empty secret dir

    s3 = storage_options("s3", env(AWS_ENDPOINT_URL="http://minio:9000", AWS_REGION="eu-1"))
    assert s3["client_kwargs"] == {"endpoint_url": "http://minio:9000", "region_name": "eu-1"}
    assert s3["config_kwargs"]["retries"] == {"mode": "standard", "total_max_attempts": 1}
    assert "key" not in s3
    specific = storage_options(
        "s3", env(AWS_ENDPOINT_URL="http://a", AWS_ENDPOINT_URL_S3="http://s3-only")
    )
    assert specific["client_kwargs"]["endpoint_url"] == "http://s3-only"
    key = tmp_path / "k.json"
    key.write_text('{"type": "service_account"}')
    assert storage_options("gs", env(GOOGLE_APPLICATION_CREDENTIALS=str(key))) == {
        "token": str(key)
    }
    assert storage_options("gs", env()) == {}
    http = storage_options("https", env(TRT_CONVERT_HTTP_BEARER_TOKEN="t0k"))
    assert http["headers"] == {"Authorization": "Bearer t0k"}
    assert storage_options("http", env())["headers"] == {}


def test_local_paths() -> None:
    assert local_path("/mnt/source/model") == Path("/mnt/source/model")
    assert local_path("file:///mnt/source/m.tgz") == Path("/mnt/source/m.tgz")
    assert local_path("relative/dir") == Path("relative/dir")
    assert local_path("s3://b/k") is None


def test_local_sources(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    assert fetch_source(str(model), tmp_path / "work", 10) == model  # used in place
    with pytest.raises(SourceNotFound):
        fetch_source(str(tmp_path / "absent"), tmp_path / "work", 10)
    plain = tmp_path / "saved_model.pb"
    plain.write_bytes(b"\x08" * 100)
    with pytest.raises(NotASavedModel, match=r"not a \.tar\.gz"):
        fetch_source(str(plain), tmp_path / "work", 1000)
    with pytest.raises(SourceTooLarge):
        fetch_source(str(plain), tmp_path / "work", 10)
    archive = tmp_path / "m.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("m/1/saved_model.pb", b"pb")
    extracted = fetch_source(f"file://{archive}", tmp_path / "work", 1000)
    assert (extracted / "m" / "1" / "saved_model.pb").read_bytes() == b"pb"


def test_s3_without_credentials_is_an_auth_failure(
    s3_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(SourceAuthFailed, match="secretRef"):
        fetch_source("s3://models/anything", tmp_path / "work", 1000)


def test_unreachable_endpoint_is_fetch_failed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, unused_port: Any
) -> None:
    monkeypatch.setattr("trtserve_converter.fetch.RETRY_BACKOFF_SECONDS", 0.0)
    with pytest.raises(FetchFailed, match="attempts"):
        fetch_source(f"http://127.0.0.1:{unused_port}/m.tar.gz", tmp_path / "work", 1000)


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
