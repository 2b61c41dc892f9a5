"""gs:// key and lock logic through gcsfs, against a fake of the GCS JSON API (fake_gcs.py).

Covered: the source identity from a gcsfs listing (generations), exclusive creation with
`ifGenerationMatch=0` (gcsfs mode="create" -> 412 -> FileExistsError), and a NATIVE
miss, hit and two concurrent converters with a gs:// source and a gs:// cache.

Not covered (no real GCS here): authentication (service-account keys, workload
identity), resumable uploads of files over 5 MiB, gcsfs's retries on 429/5xx, GCS's own
consistency and precondition semantics beyond what the fake implements, and gcsfs's
experimental zonal/HNS file system (disabled here; the converter should disable it too).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trtserve_converter import cache as cache_module
from trtserve_converter import layout
from trtserve_converter.cache_key import metadata_identity
from trtserve_converter.cache_store import open_store

from .fake_gcs import FakeGcs, fake_gcs_server
from .test_cache_e2e import Converter, Run, base_args, waiting

pytestmark = pytest.mark.tf

REGISTRY = importlib.import_module("fsspec.registry")._registry  # fsspec.registry is a view

__all__ = ["waiting"]  # the fixture, imported for this module's tests


@pytest.fixture
def gcs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeGcs]:
    monkeypatch.setenv("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    import gcsfs.core  # noqa: PLC0415 - after the variable above

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
        for protocol in ("gs", "gcs"):  # the core file system: the fake speaks no gRPC
            monkeypatch.setitem(REGISTRY, protocol, gcsfs.core.GCSFileSystem)
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
