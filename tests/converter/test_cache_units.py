"""The cache's pieces without TensorFlow: key, listing selection, manifests, locks, report."""

from __future__ import annotations

import errno
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trtserve_converter.cache import BadCacheEntryError, ModelCache
from trtserve_converter.cache.key import (
    NON_KEY_FIELDS,
    Runtime,
    key_inputs,
    key_of,
    metadata_identity,
    select_model_prefix,
)
from trtserve_converter.cache.lock import STALE_SECONDS, HeldLock, lock_body
from trtserve_converter.cache.manifest import build_manifest, parse_manifest
from trtserve_converter.cache.model_cache import WAIT_FRACTION
from trtserve_converter.cache.store import CacheStore, CacheStoreError, LocalStore, safe_relative
from trtserve_converter.cli import parse_config
from trtserve_converter.config import ConvertConfig, Precision
from trtserve_converter.errors import InvalidArguments
from trtserve_converter.report import CacheReport, Report, render_report
from trtserve_converter.savedmodel import locate_saved_model

RUNTIME = Runtime("2.17.1", "8.6.1", "8.6.1", "NVIDIA A10", "8.6")
SOURCE = {"kind": "files", "version": None, "files": [["saved_model.pb", 3, "ab" * 32]]}


def config(**changes: Any) -> ConvertConfig:
    return ConvertConfig(**({"source": "/m", "model_name": "m"} | changes))


# --- key ----------------------------------------------------------------------------------


def test_key_is_the_sha256_of_canonical_json_and_ignores_key_order() -> None:
    inputs = key_inputs(config(), SOURCE, None, RUNTIME)
    reordered = json.loads(json.dumps(inputs, sort_keys=True)[::1])
    assert key_of(inputs) == key_of(dict(reversed(list(reordered.items()))))
    assert len(key_of(inputs)) == 64


KEY_CHANGES: dict[str, Any] = {
    "source_version": 3,
    "model_name": "other",
    "signature_key": "sig",
    "precision": Precision.INT8,
    "max_workspace_bytes": 1 << 20,
    "minimum_segment_size": 5,
    "maximum_cached_engines": 2,
    "dynamic_shapes": False,
    "profile_strategy": "Optimal",
    "build_shapes": ({"x": (1, 2)},),
    "calibration_batches": 3,
    "calibration_batch_size": 2,
    "synthetic_calibration": True,
    "accuracy_check": False,
    "accuracy_samples": 7,
    "accuracy_rtol": 0.5,
    "accuracy_atol": 0.5,
    "accuracy_min_top1": 0.9,
    "warmup_records": 3,
    "seed": 4,
}
NON_KEY_CHANGES: dict[str, Any] = {
    "source": "/elsewhere",
    "calibration_source": "/cal.npz",
    "output_base": "/out",
    "model_version": 9,
    "timeout_seconds": 99,
    "max_source_bytes": 5,
    "report_path": "/r",
    "log_level": "DEBUG",
    "log_format": "json",
    "cache_uri": "s3://b/c",
    "cache_credentials_dir": "/c",
    "cache_publish": False,
    "cache_namespace": "ns",
    "cache_signing_key_file": "/k",
}


def test_every_setting_is_in_the_key_unless_listed() -> None:
    fields = set(ConvertConfig.model_fields)
    assert set(KEY_CHANGES) | set(NON_KEY_CHANGES) == fields  # a new field needs a decision
    assert set(NON_KEY_CHANGES) == NON_KEY_FIELDS
    base = key_of(key_inputs(config(), SOURCE, None, RUNTIME))
    for name, value in KEY_CHANGES.items():
        assert key_of(key_inputs(config(**{name: value}), SOURCE, None, RUNTIME)) != base, name
    for name, value in NON_KEY_CHANGES.items():
        assert key_of(key_inputs(config(**{name: value}), SOURCE, None, RUNTIME)) == base, name


@pytest.mark.parametrize(
    "runtime",
    [
        Runtime("2.17.0", "8.6.1", "8.6.1", "NVIDIA A10", "8.6"),
        Runtime("2.17.1", "8.6.0", "8.6.1", "NVIDIA A10", "8.6"),
        Runtime("2.17.1", "8.6.1", "8.6.2", "NVIDIA A10", "8.6"),
        Runtime("2.17.1", "8.6.1", "8.6.1", "NVIDIA L4", "8.6"),
        Runtime("2.17.1", "8.6.1", "8.6.1", "NVIDIA A10", "8.9"),
        Runtime("2.17.1", None, None, None, None),
    ],
)
def test_runtime_changes_the_key(runtime: Runtime) -> None:
    base = key_of(key_inputs(config(), SOURCE, None, RUNTIME))
    assert key_of(key_inputs(config(), SOURCE, None, runtime)) != base


def test_source_and_calibration_identity_change_the_key() -> None:
    base = key_of(key_inputs(config(), SOURCE, None, RUNTIME))
    other = {**SOURCE, "files": [["saved_model.pb", 3, "cd" * 32]]}
    assert key_of(key_inputs(config(), other, None, RUNTIME)) != base
    calibration = {"kind": "file", "size": 1, "sha256": "ef" * 32}
    assert key_of(key_inputs(config(), SOURCE, calibration, RUNTIME)) != base


TREES = {
    "root": ["saved_model.pb", "variables/variables.index"],
    "versions": ["1/saved_model.pb", "12/saved_model.pb", "12/variables/v", "3/saved_model.pb"],
    "wrapped": ["model/00000123/saved_model.pb", "model/00000123/variables/v"],
    "ignored": ["__MACOSX/x", ".hidden/y", "m/saved_model.pb"],
    "ambiguous": ["a/saved_model.pb", "b/saved_model.pb"],
}


@pytest.mark.parametrize("tree", list(TREES))
@pytest.mark.parametrize("version", [None, 1, 3])
def test_listing_selection_agrees_with_locate_saved_model(
    tree: str, version: int | None, tmp_path: Path
) -> None:
    for rel in TREES[tree]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    try:
        located: str | None = locate_saved_model(tmp_path, version).relative_to(tmp_path).as_posix()
    except Exception:
        located = None
    selected = select_model_prefix(TREES[tree], version)
    assert (selected if selected != "" else ".") == located or (
        selected is None and located is None
    )


# --- manifests ------------------------------------------------------------------------------


def manifest_bytes(key_material: bytes | None = None, **changes: Any) -> tuple[str, bytes]:
    inputs = key_inputs(config(), SOURCE, None, RUNTIME)
    key = key_of(inputs)
    data = build_manifest(
        key=key,
        namespace="ns",
        entry="a" * 32,
        files=[("saved_model.pb", 3, "ab" * 32)],
        report={"result": "Succeeded"},
        inputs=inputs,
        signing_key=key_material,
    )
    data.update(changes)
    return key, json.dumps(data).encode()


def test_a_good_manifest_parses_signed_and_unsigned() -> None:
    key, raw = manifest_bytes()
    assert parse_manifest(raw, key=key, namespace="ns", signing_key=None).entry == "a" * 32
    key, raw = manifest_bytes(b"k")
    assert parse_manifest(raw, key=key, namespace="ns", signing_key=b"k").files[0][1] == 3


@pytest.mark.parametrize(
    ("changes", "signing", "reason"),
    [
        ({"namespace": "other"}, None, "another key or namespace"),
        ({"format": 99}, None, "cache format"),
        ({"keyInputs": {"forged": True}}, None, "do not hash"),
        ({"entry": "../x"}, None, "bad entry id"),
        ({"files": [{"path": "../etc/passwd", "size": 1, "sha256": "ab" * 32}]}, None, "unsafe"),
        ({"files": [{"path": "/abs", "size": 1, "sha256": "ab" * 32}]}, None, "unsafe"),
        ({"files": [{"path": "a//b", "size": 1, "sha256": "ab" * 32}]}, None, "unsafe"),
        ({"files": [{"path": "a", "size": -1, "sha256": "ab" * 32}]}, None, "bad file"),
        ({"files": [{"path": "a", "size": 1, "sha256": "xyz"}]}, None, "bad file"),
        ({"files": []}, None, "no files"),
        ({"sourceVersion": "123"}, None, "bad sourceVersion"),
        ({"sourceVersion": -1}, None, "bad sourceVersion"),
        ({"sourceVersion": True}, None, "bad sourceVersion"),
        ({}, b"key", "not signed"),
    ],
)
def test_bad_manifests_are_rejected(
    changes: dict[str, Any], signing: bytes | None, reason: str
) -> None:
    key, raw = manifest_bytes(**changes)
    with pytest.raises(BadCacheEntryError, match=reason):
        parse_manifest(raw, key=key, namespace="ns", signing_key=signing)


def test_a_signature_with_another_key_is_rejected() -> None:
    key, raw = manifest_bytes(b"theirs")
    with pytest.raises(BadCacheEntryError, match="signature is wrong"):
        parse_manifest(raw, key=key, namespace="ns", signing_key=b"ours")
    with pytest.raises(BadCacheEntryError, match="not JSON"):
        parse_manifest(b"{", key=key, namespace="ns", signing_key=None)


@pytest.mark.parametrize("path", ["", ".", "..", "a/../b", "/a", "a\\b", "a/./b", "a/"])
def test_unsafe_relative_paths(path: str) -> None:
    with pytest.raises(CacheStoreError):
        safe_relative(path)


# --- local store --------------------------------------------------------------------------


def test_local_create_is_exclusive_and_complete(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "c", str(tmp_path / "c"))
    assert store.create("ns/k/lock.0", b"one") is True
    assert store.create("ns/k/lock.0", b"two") is False
    assert store.read("ns/k/lock.0") == b"one"
    assert sorted(p.name for p in (tmp_path / "c/ns/k").iterdir()) == ["lock.0"]  # no temp left
    store.write("ns/k/lock.0", b"three")
    assert store.read("ns/k/lock.0") == b"three"
    assert store.read("ns/k/absent") is None


# --- locks ----------------------------------------------------------------------------------


class FakeTime:
    """A clock that only moves when the cache sleeps; `on_sleep` acts as other pods."""

    def __init__(self) -> None:
        self.now = 0.0
        self.on_sleep: list[Any] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        for action in self.on_sleep:
            action(self.now)


@pytest.fixture
def local_cache(tmp_path: Path) -> Iterator[tuple[ModelCache, LocalStore, FakeTime]]:
    store = LocalStore(tmp_path / "c", str(tmp_path / "c"))
    run = ModelCache(config(cache_uri=str(tmp_path / "c"), timeout_seconds=1000), store, None)
    run.set_key({"format": 1})
    fake = FakeTime()
    run.clock, run.sleep = fake.clock, fake.sleep
    run.heartbeat_seconds = 3600  # no heartbeat thread writes during these tests
    yield run, store, fake
    run.close()


def lock_rel(run: ModelCache, index: int) -> str:
    return f"default/{run.key}/lock.{index}"


def test_a_free_key_is_claimed_at_once(local_cache: Any) -> None:
    run, store, fake = local_cache
    assert run.wait_or_claim(set()) is None
    assert run.lock is not None
    assert json.loads(store.read(lock_rel(run, 0)))["owner"] == run.owner
    assert fake.now == 0


def test_a_live_lock_is_waited_for_until_the_budget(local_cache: Any) -> None:
    run, store, fake = local_cache
    store.create(lock_rel(run, 0), lock_body("other", 0, "held"))
    beats = iter(range(1, 10_000))
    fake.on_sleep.append(  # the holder heartbeats: never stale
        lambda now: store.write(lock_rel(run, 0), lock_body("other", next(beats), "held"))
    )
    assert run.wait_or_claim(set()) is None
    assert run.lock is None  # converts without the lock after waiting
    assert fake.now >= 1000 * WAIT_FRACTION
    assert "waited" in (run.warning or "")


def test_a_stale_lock_is_taken_over_with_the_next_number(local_cache: Any) -> None:
    run, store, fake = local_cache
    store.create(lock_rel(run, 0), lock_body("dead", 5, "held"))
    assert run.wait_or_claim(set()) is None
    assert run.lock is not None
    assert run.lock.index == 1
    assert STALE_SECONDS <= fake.now < STALE_SECONDS + 5
    assert json.loads(store.read(lock_rel(run, 1)))["owner"] == run.owner


def test_a_released_lock_is_claimed_at_once(local_cache: Any) -> None:
    run, store, fake = local_cache
    store.create(lock_rel(run, 0), lock_body("failed", 2, "released"))
    assert run.wait_or_claim(set()) is None
    assert (run.lock.index, fake.now) == (1, 0)  # type: ignore[union-attr]


def test_the_manifest_published_while_waiting_is_returned(local_cache: Any, tmp_path: Path) -> None:
    run, store, fake = local_cache
    store.create(lock_rel(run, 0), lock_body("other", 0, "held"))
    inputs = {"format": 1}
    manifest = build_manifest(
        key=run.key,
        namespace="default",
        entry="b" * 32,
        files=[("f", 1, "ab" * 32)],
        report={},
        inputs=inputs,
        signing_key=None,
    )
    fake.on_sleep.append(
        lambda now: (
            now > 5
            and store.write(f"default/{run.key}/manifest.json", json.dumps(manifest).encode())
        )
    )
    found = run.wait_or_claim(set())
    assert found is not None
    assert found.entry == "b" * 32
    assert run.lock is None


def test_read_only_never_creates_a_lock(local_cache: Any) -> None:
    run, store, _ = local_cache
    run.publish_enabled = False
    assert run.wait_or_claim(set()) is None
    assert store.read(lock_rel(run, 0)) is None


def test_the_heartbeat_rewrites_the_lock_and_notices_a_takeover(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, str(tmp_path))
    store.create("k/lock.0", lock_body("me", 0, "held"))
    lock = HeldLock(store, "k/lock.0", "me", 0)
    lock.start(0.02)
    try:
        deadline = threading.Event()
        for _ in range(200):
            if json.loads(store.read("k/lock.0"))["beat"] >= 2:
                break
            deadline.wait(0.02)
        assert json.loads(store.read("k/lock.0"))["beat"] >= 2
        store.create("k/lock.1", lock_body("taker", 0, "held"))
        for _ in range(200):
            if lock.lost:
                break
            deadline.wait(0.02)
        assert lock.lost
    finally:
        lock.stop()


def test_release_removes_locks_after_publishing(local_cache: Any) -> None:
    run, store, _ = local_cache
    assert run.wait_or_claim(set()) is None
    run.release(published=True)
    assert store.read(lock_rel(run, 0)) is None


# --- report and flags -------------------------------------------------------------------------


def test_the_report_with_a_cache_object_stays_within_4096_bytes() -> None:
    report = Report.succeeded(
        "é" * 5000,
        precision="FP16",
        durations={f"step{i}": 1.0 for i in range(50)},
        cache=CacheReport(result="Hit", key="a" * 64, lookup=0.1, warning="w" * 1000),
    )
    text = render_report(report)
    assert len(text.encode()) <= 4096
    data = json.loads(text)
    assert data["cache"]["result"] == "Hit"
    assert len(data["cache"]["warning"]) <= 200


def test_cache_flags_and_environment() -> None:
    parsed = parse_config(
        ["--source", "/m", "--model-name", "m", "--no-cache-publish"],
        {
            "TRT_CONVERT_CACHE_URI": "s3://bucket/prefix",
            "TRT_CONVERT_CACHE_CREDENTIALS_DIR": "/var/run/secrets/trtserve/cache",
            "TRT_CONVERT_CACHE_NAMESPACE": "team-a",
            "TRT_CONVERT_CACHE_SIGNING_KEY_FILE": "/k/key",
        },
    )
    assert parsed.cache_uri == "s3://bucket/prefix"
    assert parsed.cache_credentials_dir == "/var/run/secrets/trtserve/cache"
    assert parsed.cache_publish is False
    assert parsed.cache_namespace == "team-a"
    assert parsed.cache_signing_key_file == "/k/key"
    assert parse_config(["--source", "/m", "--model-name", "m"], {}).cache_uri is None
    env = {"TRT_CONVERT_CACHE_PUBLISH": "false"}
    assert parse_config(["--source", "/m", "--model-name", "m"], env).cache_publish is False


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--cache-uri", "https://x/y"], "--cache-uri"),
        (["--cache-uri", "/c", "--cache-namespace", "Not_A_Namespace"], "--cache-namespace"),
    ],
)
def test_bad_cache_flags(argv: list[str], fragment: str) -> None:
    with pytest.raises(InvalidArguments, match=fragment):
        parse_config(["--source", "/m", "--model-name", "m", *argv], {})


# --- http(s) identity from a HEAD -----------------------------------------------------------


class _EtagHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.do_HEAD()

    def do_HEAD(self) -> None:
        self.send_response(200)
        path = self.path.split("?", 1)[0]
        etag = {"/strong.tar.gz": '"v1-abc"', "/weak.tar.gz": 'W/"v1"'}.get(path)
        if etag:
            self.send_header("ETag", etag)
        self.send_header("Content-Length", "1234")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def etag_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EtagHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_identity_needs_a_strong_etag(etag_server: str) -> None:
    identity = metadata_identity(f"{etag_server}/strong.tar.gz?X-Amz-Signature=abc")
    assert identity == {
        "kind": "http",
        "location": f"{etag_server}/strong.tar.gz",  # a presigned query is not identity
        "etag": '"v1-abc"',
        "size": 1234,
    }
    assert metadata_identity(f"{etag_server}/weak.tar.gz") is None  # hashed instead
    assert metadata_identity(f"{etag_server}/none.tar.gz") is None
    assert metadata_identity("/local/dir") is None


class _NoConditionalFs:
    """An fsspec-like store that ignores nothing but cannot create exclusively (501)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def cat_file(self, path: str) -> bytes:
        if path not in self.files:
            raise FileNotFoundError(path)
        return self.files[path]

    def pipe_file(self, path: str, data: bytes, mode: str = "overwrite") -> None:
        if mode == "create":
            raise OSError(errno.ENOSYS, "NotImplemented: If-None-Match")
        self.files[path] = data


def test_a_store_without_exclusive_create_converts_without_a_lock(tmp_path: Path) -> None:
    store = CacheStore(_NoConditionalFs(), "bucket/c", "s3://bucket/c")
    run = ModelCache(config(cache_uri="s3://bucket/c"), store, None)
    run.set_key({"format": 1})
    assert run.wait_or_claim(set()) is None
    assert run.lock is None
    assert "concurrent misses each convert" in (run.warning or "")
