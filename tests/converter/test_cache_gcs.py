"""gs:// key and lock logic through gcsfs, against a fake of the GCS JSON API (fake_gcs.py).

Covered: the source identity from a gcsfs listing (generations), exclusive creation with
`ifGenerationMatch=0` (gcsfs mode="create" -> 412 -> FileExistsError), and a NATIVE
miss, hit and two concurrent converters with a gs:// source and a gs:// cache.

Everything goes through fetch.open_filesystem and gcs.py, as in production: gcsfs's core
filesystem with its retry decorator bypassed, credentials resolved once from a service
account key whose token endpoint is the fake, fetch.with_retries as the only retry loop.

Not covered (no real GCS here): real authentication (workload identity, Google's token
service), resumable uploads of files over 5 MiB, GCS's own consistency and precondition
semantics beyond what the fake implements.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trtserve_converter import layout
from trtserve_converter.cache import model_cache as cache_module
from trtserve_converter.cache.key import metadata_identity
from trtserve_converter.cache.store import CacheStoreError, open_store
from trtserve_converter.fetch import FETCH_ATTEMPTS
from trtserve_converter.gcs import READ_WRITE_SCOPE, SingleAttemptGCSFileSystem

from .fake_gcs import FakeGcs, fake_gcs_server
from .test_cache_e2e import Converter, Run, base_args, waiting

pytestmark = pytest.mark.tf

__all__ = ["waiting"]  # the fixture, imported for this module's tests


@pytest.fixture
def gcs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeGcs]:
    with fake_gcs_server() as (endpoint, state):
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
        # fetch resolves Google credentials before any storage request (gcs.py): a key
        # whose token endpoint is the fake; no metadata server, no gcloud defaults.
        key = state.key_file(tmp_path / "google" / "key.json")
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
        host = endpoint.removeprefix("http://")
        monkeypatch.setenv("GCE_METADATA_HOST", host)
        monkeypatch.setenv("GCE_METADATA_IP", host)
        monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
        monkeypatch.setenv("TRT_CONVERT_SECRET_DIR", str(tmp_path / "no-secret"))
        monkeypatch.setattr("trtserve_converter.fetch.RETRY_BACKOFF_SECONDS", 0.0)
        yield state


def upload(gcs: FakeGcs, root: Path, bucket: str, prefix: str) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            name = f"{prefix}/{path.relative_to(root).as_posix()}"
            gcs.objects[(bucket, name)] = (path.read_bytes(), next(gcs.generations))


def downloads_of(gcs: FakeGcs, bucket: str) -> int:
    return sum(count for (b, _), count in gcs.downloads.items() if b == bucket)


def test_the_source_identity_comes_from_generations_without_downloads(
    gcs: FakeGcs, models: Any
) -> None:
    upload(gcs, models.classifier, "src", "clf")
    identity = metadata_identity("gs://src/clf")
    assert identity is not None
    assert identity["kind"] == "objects"
    assert identity["location"] == "gs://src/clf"
    names = [name for name, _, _ in identity["files"]]
    assert "saved_model.pb" in names
    assert all(tag.isdigit() for _, _, tag in identity["files"])  # generations
    assert downloads_of(gcs, "src") == 0
    data, _ = gcs.objects[("src", "clf/saved_model.pb")]
    gcs.objects[("src", "clf/saved_model.pb")] = (data, next(gcs.generations))  # re-upload
    assert metadata_identity("gs://src/clf") != identity


def test_exclusive_creation_uses_if_generation_match_0(gcs: FakeGcs) -> None:
    store = open_store("gs://cache/trtserve", None)
    assert store.create("ns/k/lock.0", b"first") is True
    assert store.create("ns/k/lock.0", b"second") is False
    assert gcs.conditional_creates == 2
    assert store.read("ns/k/lock.0") == b"first"
    store.write("ns/k/lock.0", b"beat")
    assert store.read("ns/k/lock.0") == b"beat"
    assert store.read("ns/k/absent") is None


def test_the_cache_store_is_fetchs_single_attempt_filesystem(gcs: FakeGcs, tmp_path: Path) -> None:
    """No second GCS client: gcs.py's filesystem, read-write, credentials resolved once
    from the cache's own secret directory (not the source's environment)."""
    secret = tmp_path / "cache-secret"
    gcs.key_file(secret / "key.json")
    before = gcs.tokens
    store = open_store("gs://cache/trtserve", str(secret))
    assert type(store.fs) is SingleAttemptGCSFileSystem
    assert store.fs.credentials.access == "read_write"
    assert store.fs.credentials.credentials.scopes == [READ_WRITE_SCOPE]
    assert store.fs.credentials.credentials.service_account_email.startswith("converter@")
    assert gcs.tokens == before + 1  # refreshed once, up front
    store.write("ns/k/lock.0", b"x")
    assert store.read("ns/k/lock.0") == b"x"
    assert gcs.tokens == before + 1  # and reused
    read_only = open_store("gs://cache/trtserve", str(secret), writable=False)
    assert read_only.fs.credentials.access == "read_only"


def test_a_failing_gs_cache_request_is_tried_fetch_attempts_times(gcs: FakeGcs) -> None:
    """gcsfs retries each request 6 times itself; under fetch's loop that would stack."""
    store = open_store("gs://cache/trtserve", None)
    gcs.unavailable.add(("cache", "trtserve/ns/k/manifest.json"))
    with pytest.raises(CacheStoreError):
        store.read("ns/k/manifest.json")
    assert gcs.requests[("GET", "cache", "trtserve/ns/k/manifest.json")] == FETCH_ATTEMPTS


def test_a_gs_download_is_hashed_as_it_arrives(gcs: FakeGcs, tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000
    gcs.objects[("cache", "trtserve/ns/k/e/f.bin")] = (data, next(gcs.generations))
    store = open_store("gs://cache/trtserve", None)
    target = tmp_path / "f.bin"
    assert store.download("ns/k/e/f.bin", target, len(data)) == hashlib.sha256(data).hexdigest()
    assert target.read_bytes() == data
    with pytest.raises(CacheStoreError, match="more than 10 bytes"):
        store.download("ns/k/e/f.bin", tmp_path / "g.bin", 10)


@pytest.mark.usefixtures("in_process")
def test_gs_miss_then_hit_never_downloads_the_source(
    gcs: FakeGcs, models: Any, tmp_path: Path
) -> None:
    upload(gcs, models.classifier, "src", "clf")
    convert = Converter(tmp_path)
    args = [*base_args("gs://src/clf", "NATIVE"), "--cache-uri", "gs://cache/trtserve"]
    first = convert(*args)
    assert (first.code, first.cache["result"]) == (0, "Miss"), first.report
    assert any(name.endswith("/manifest.json") for _, name in gcs.objects)
    before = downloads_of(gcs, "src")
    second = convert(*args)
    assert (second.code, second.cache["result"]) == (0, "Hit"), second.report
    assert downloads_of(gcs, "src") == before  # keyed by the listing
    assert (second.version_dir / "saved_model.pb").read_bytes() == (
        first.version_dir / "saved_model.pb"
    ).read_bytes()


@pytest.mark.usefixtures("in_process")
def test_two_gs_converters_make_one_conversion(
    gcs: FakeGcs,
    models: Any,
    tmp_path: Path,
    waiting: threading.Event,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    upload(gcs, models.classifier, "src", "clf")
    monkeypatch.setattr(cache_module, "POLL_SECONDS", 0.05)
    real_copy = layout.copy_tree

    def slow_copy(source: Path, target: Path) -> int:
        assert waiting.wait(60), "the second converter never waited"
        return real_copy(source, target)

    monkeypatch.setattr(layout, "copy_tree", slow_copy)
    convert = Converter(tmp_path)
    args = [*base_args("gs://src/clf", "NATIVE"), "--cache-uri", "gs://cache/trtserve"]
    runs: list[Run] = []
    threads = [threading.Thread(target=lambda: runs.append(convert(*args))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(run.cache["result"] for run in runs) == ["Hit", "Miss"]
    assert all(run.code == 0 for run in runs)
