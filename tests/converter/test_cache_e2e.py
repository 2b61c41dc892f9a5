"""The converted-model cache end to end on CPU: NATIVE, and FP16/INT8 through the TF-TRT
double, against a local directory, a PVC-like path and S3 (moto server on 127.0.0.1,
conditional PUT included).

Each store must: miss then hit with the same outputs; miss on any change of the key's
inputs; never serve a tampered, truncated, unmanifested or wrongly signed entry (convert
instead); make one conversion when two converters start on one key; serve even when
publishing fails.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import numpy as np
import pytest
import tensorflow as tf

from trtserve_converter import layout, tensorrt_env
from trtserve_converter.cache import check as cache_check
from trtserve_converter.cache import model_cache as cache_module
from trtserve_converter.cache.key import sha256_file
from trtserve_converter.cli import main
from trtserve_converter.report import Report
from trtserve_converter.supervisor import CHILD_MARKER

from .test_trt_pipeline import FakeConverter, fake_trt

pytestmark = pytest.mark.tf

__all__ = ["fake_trt"]  # the fixture, imported for this module's tests

STORES = ["local", "pvc", pytest.param("s3", marks=pytest.mark.slow)]
SIGNING_KEY = b"0123456789abcdef-signing-key"


@dataclass
class Store:
    """A cache location, with raw access for tampering (not through the converter)."""

    kind: str
    uri: str
    root: Path | None = None
    bucket: str | None = None
    prefix: str = ""
    client: Any = None

    def files(self) -> dict[str, bytes]:
        """Relative path -> bytes of everything in the cache."""
        if self.root is not None:
            if not self.root.exists():
                return {}
            return {
                p.relative_to(self.root).as_posix(): p.read_bytes()
                for p in self.root.rglob("*")
                if p.is_file()
            }
        found = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + "/"
        ):
            for item in page.get("Contents", []):
                body = self.client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                found[item["Key"][len(self.prefix) + 1 :]] = body
        return found

    def put(self, rel: str, data: bytes) -> None:
        if self.root is not None:
            (self.root / rel).write_bytes(data)
        else:
            self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{rel}", Body=data)

    def delete(self, rel: str) -> None:
        if self.root is not None:
            (self.root / rel).unlink()
        else:
            self.client.delete_object(Bucket=self.bucket, Key=f"{self.prefix}/{rel}")

    def manifests(self) -> dict[str, dict[str, Any]]:
        return {
            rel: json.loads(data)
            for rel, data in self.files().items()
            if rel.endswith("/manifest.json")
        }


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


def upload_tree(client: Any, bucket: str, root: Path, prefix: str) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(root).as_posix()}")


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return make_store(request.param, tmp_path, request)


def make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Store:
    if kind == "local":
        return Store(kind, str(tmp_path / "cache"), root=tmp_path / "cache")
    if kind == "pvc":  # what the operator passes for pvc://claim/trt/cache: a mount path
        root = tmp_path / "mnt" / "cache" / "trt" / "cache"
        return Store(kind, f"file://{root}", root=root)
    endpoint = request.getfixturevalue("s3_env")
    client = s3_client(endpoint)
    bucket = f"cache-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return Store(kind, f"s3://{bucket}/trtserve", bucket=bucket, prefix="trtserve", client=client)


@pytest.fixture
def source_for(models: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """The classifier as the source that fits the store: S3 with S3, else a local copy."""

    def make(store: Store, model: Path | None = None) -> str:
        model = model or models.classifier
        if store.kind != "s3":
            local = tmp_path / f"source-{uuid.uuid4().hex[:6]}"
            shutil.copytree(model, local)
            return str(local)
        bucket = f"src-{uuid.uuid4().hex[:12]}"
        store.client.create_bucket(Bucket=bucket)
        upload_tree(store.client, bucket, model, "clf")
        return f"s3://{bucket}/clf"

    return make


@dataclass
class Run:
    code: int
    report: dict[str, Any]
    output: Path

    @property
    def cache(self) -> dict[str, Any]:
        return self.report["cache"]  # type: ignore[no-any-return]

    @property
    def version_dir(self) -> Path:
        return self.output / "clf" / "1"


class Converter:
    """`trt-convert` in-process with its own output base and report per run."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, *args: str) -> Run:
        with self._lock:
            self.count += 1
            number = self.count
        output = self.tmp_path / f"out-{number}"
        report_path = self.tmp_path / f"report-{number}.json"
        code = main([*args, "--output-base", str(output), "--report-path", str(report_path)])
        return Run(code, json.loads(report_path.read_text(encoding="utf-8")), output)


@pytest.fixture
def convert(tmp_path: Path, in_process: None) -> Converter:
    return Converter(tmp_path)


MODE_ARGS = {
    "NATIVE": ["--precision", "NATIVE", "--accuracy-check"],
    "FP16": ["--precision", "FP16", "--build-shape", "images=2x8x8x3"],
    "INT8": ["--precision", "INT8", "--synthetic-calibration", "--calibration-batches", "2"],
}


@pytest.fixture(params=["NATIVE", "FP16", "INT8"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def trt(mode: str, request: pytest.FixtureRequest) -> type[FakeConverter] | None:
    """The TF-TRT double for FP16/INT8 (conversions are counted by its instances)."""
    if mode == "NATIVE":
        return None
    return request.getfixturevalue("fake_trt")  # type: ignore[no-any-return]


def conversions(trt: type[FakeConverter] | None, runs: list[Run]) -> int:
    """Conversions done: TF-TRT double instances, or NATIVE runs that missed."""
    if trt is not None:
        return len(trt.instances)
    return sum(1 for run in runs if run.cache["result"] != "Hit")


def images(n: int = 2) -> dict[str, Any]:
    return {"images": np.random.default_rng(11).standard_normal((n, 8, 8, 3)).astype(np.float32)}


def outputs_of(model_dir: Path) -> dict[str, Any]:
    function = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    inputs = {k: tf.constant(v) for k, v in images().items()}
    return {name: value.numpy() for name, value in function(**inputs).items()}


def cache_args(store: Store, *extra: str) -> list[str]:
    return ["--cache-uri", store.uri, "--cache-namespace", "team-a", *extra]


def base_args(source: str, mode: str) -> list[str]:
    return ["--source", source, "--model-name", "clf", *MODE_ARGS[mode]]


# --- miss, then hit -----------------------------------------------------------------------


def test_miss_then_hit_serves_the_same_model(
    *,
    store: Store,
    mode: str,
    trt: type[FakeConverter] | None,
    source_for: Any,
    convert: Converter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    args = base_args(source_for(store), mode) + cache_args(store)
    first = convert(*args)
    assert first.code == 0, first.report
    assert first.cache["result"] == "Miss"
    key = first.cache["key"]
    assert len(key) == 64
    assert "publish" in first.cache

    manifests = store.manifests()
    assert list(manifests) == [f"team-a/{key}/manifest.json"]  # namespace-scoped
    manifest = manifests[f"team-a/{key}/manifest.json"]
    entry_files = {
        rel for rel in store.files() if rel.startswith(f"team-a/{key}/{manifest['entry']}/")
    }
    assert {f"team-a/{key}/{manifest['entry']}/{f['path']}" for f in manifest["files"]} == (
        entry_files
    )
    assert manifest["keyInputs"]["settings"]["precision"] == mode  # readable inputs
    assert manifest["report"]["result"] == "Succeeded"
    assert not [rel for rel in store.files() if "/lock." in rel]  # released after publish

    caplog.clear()
    second = convert(*args)
    assert second.code == 0, second.report
    assert second.cache["result"] == "Hit"
    assert second.cache["key"] == key
    assert {"lookup", "download", "verify", "check"} <= set(second.cache)
    assert "from the cache" in second.report["message"]
    assert conversions(trt, [first, second]) == 1
    if store.kind == "s3":  # keyed by the listing: the hit never downloads the source
        assert "fetching" not in caplog.text.replace("fetching files", "")
        assert "files, " not in caplog.text
    for name in ("trtEngineOps", "enginesBuilt", "precision"):
        assert second.report.get(name) == first.report.get(name)
    if mode != "NATIVE":
        assert second.report["accuracy"] == first.report["accuracy"]
    expected, got = outputs_of(first.version_dir), outputs_of(second.version_dir)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])
    # the hit's copy is byte for byte what was converted
    for path in first.version_dir.rglob("*"):
        if path.is_file():
            twin = second.version_dir / path.relative_to(first.version_dir)
            assert twin.read_bytes() == path.read_bytes()


def test_a_hit_serves_the_version_number_a_miss_would(
    *,
    store: Store,
    source_for: Any,
    convert: Converter,
    models: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A source exported as 00000123 is served as version 123 by a miss and by a hit, also
    by a hit keyed by S3 metadata that never downloads the source (the number comes from
    the manifest, not from the publisher's --model-version)."""
    base = tmp_path / "base"
    shutil.copytree(models.classifier, base / "00000123")
    source = source_for(store, base)
    args = base_args(source, "NATIVE") + cache_args(store)

    def served(run: Run, version: int) -> None:
        assert run.code == 0, run.report
        assert run.report["modelVersion"] == version
        assert (run.output / "clf" / str(version) / "saved_model.pb").is_file()
        assert [p.name for p in (run.output / "clf").iterdir()] == [str(version)]
        assert f"served as version {version} from" in run.report["message"]

    miss = convert(*args)
    served(miss, 123)
    assert miss.cache["result"] == "Miss"
    caplog.clear()
    hit = convert(*args)
    served(hit, 123)
    assert hit.cache["result"] == "Hit"
    if store.kind == "s3":  # keyed by the listing: no source download on the hit
        assert "files, " not in caplog.text
    served(convert(*args, "--model-version", "7"), 7)  # the override still wins

    # A publisher that overrode the number does not decide it for the pods after it.
    other = [*args, "--cache-namespace", "team-b"]
    published = convert(*other, "--model-version", "7")
    served(published, 7)
    assert published.cache["result"] == "Miss"
    later = convert(*other)
    served(later, 123)
    assert later.cache["result"] == "Hit"


# --- what changes the key ------------------------------------------------------------------


def test_every_change_of_the_key_inputs_is_a_miss(
    *,
    store: Store,
    fake_trt: type[FakeConverter],
    source_for: Any,
    convert: Converter,
    models: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = source_for(store)
    args = base_args(source, "FP16") + cache_args(store)
    keys = {convert(*args).cache["key"]}

    def miss(*run_args: str) -> None:
        run = convert(*run_args)
        assert run.code == 0, run.report
        assert run.cache["result"] == "Miss", run.cache
        assert run.cache["key"] not in keys
        keys.add(run.cache["key"])

    miss(*args, "--max-workspace-bytes", "4096")  # a TF-TRT parameter
    miss(*base_args(source, "FP16"), "--build-shape", "images=4x8x8x3", *cache_args(store))
    miss(*args, "--accuracy-rtol", "0.02")  # an accuracy setting

    if store.kind == "s3":  # a changed source file: new ETag in the listing
        bucket, prefix = source.removeprefix("s3://").split("/", 1)
        store.client.put_object(Bucket=bucket, Key=f"{prefix}/assets/extra.txt", Body=b"a new file")
    else:
        (Path(source) / "assets").mkdir(exist_ok=True)
        (Path(source) / "assets" / "extra.txt").write_bytes(b"a new file")
    miss(*args)

    def probe(*, tf_version: str = "2.17.1", loaded: str = "8.6.1", gpu: str = "Fake GPU") -> None:
        info = tensorrt_env.TensorRTInfo(
            tensorflow_version=tf_version, linked="8.6.1", loaded=loaded, gpu=gpu
        )
        monkeypatch.setattr(tensorrt_env, "probe_tensorrt", lambda: info)

    probe(loaded="8.6.2")  # the TensorRT loaded
    miss(*args)
    probe(gpu="NVIDIA A100-SXM4-80GB")  # the GPU product
    miss(*args)
    probe()
    monkeypatch.setattr(tf, "__version__", "2.17.2")  # the TensorFlow version
    miss(*args)
    monkeypatch.setattr(
        "trtserve_converter.cache.key.compute_capability", lambda: "9.0"
    )  # the compute capability
    miss(*args)
    assert len(fake_trt.instances) == len(keys)


# --- entries that must never be served -----------------------------------------------------


def _tamper_file(store: Store, manifest_rel: str, manifest: dict[str, Any]) -> None:
    """Same size, other bytes, in a file TF loads without checking (only sha256 can tell)."""
    rel = f"{manifest_rel.rsplit('/', 1)[0]}/{manifest['entry']}/fingerprint.pb"
    data = bytearray(store.files()[rel])
    data[-1] ^= 0x01
    store.put(rel, bytes(data))


def _truncate_entry(store: Store, manifest_rel: str, manifest: dict[str, Any]) -> None:
    rel = f"{manifest_rel.rsplit('/', 1)[0]}/{manifest['entry']}/saved_model.pb"
    store.delete(rel)


def _drop_manifest(store: Store, manifest_rel: str, manifest: dict[str, Any]) -> None:
    store.delete(manifest_rel)


def _forge_signature(store: Store, manifest_rel: str, manifest: dict[str, Any]) -> None:
    manifest["report"]["message"] = "forged"
    store.put(manifest_rel, json.dumps(manifest).encode())  # signature no longer matches


def _strip_signature(store: Store, manifest_rel: str, manifest: dict[str, Any]) -> None:
    manifest.pop("signature")
    store.put(manifest_rel, json.dumps(manifest).encode())


TAMPERING = {
    "tampered-file": _tamper_file,
    "truncated-entry": _truncate_entry,
    "missing-manifest": _drop_manifest,
    "wrong-signature": _forge_signature,
    "unsigned": _strip_signature,
}


# Every kind of bad entry in NATIVE; through the TF-TRT double the one only a hash can tell
# (how an entry is checked does not depend on the precision, and each run costs seconds).
BAD_ENTRIES = [
    *(pytest.param("NATIVE", tamper, id=f"NATIVE-{tamper}") for tamper in TAMPERING),
    pytest.param("FP16", "tampered-file", id="FP16-tampered-file"),
]


@pytest.mark.parametrize(("mode", "tamper"), BAD_ENTRIES, indirect=["mode"])
def test_a_bad_entry_is_never_served(
    *,
    store: Store,
    mode: str,
    trt: type[FakeConverter] | None,
    source_for: Any,
    convert: Converter,
    tmp_path: Path,
    tamper: str,
) -> None:
    key_file = tmp_path / "signing-key"
    key_file.write_bytes(SIGNING_KEY + b"\n")
    args = [
        *base_args(source_for(store), mode),
        *cache_args(store, "--cache-signing-key-file", str(key_file)),
    ]
    first = convert(*args)
    assert first.cache["result"] == "Miss"
    ((manifest_rel, manifest),) = store.manifests().items()
    assert manifest["signature"]["algorithm"] == "HMAC-SHA256"
    TAMPERING[tamper](store, manifest_rel, manifest)

    second = convert(*args)
    assert second.code == 0, second.report
    assert second.cache["result"] == "Miss"  # converted again instead
    if tamper != "missing-manifest":
        assert second.cache["warning"]
    assert conversions(trt, [first, second]) == 2
    expected, got = outputs_of(first.version_dir), outputs_of(second.version_dir)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])

    if tamper == "tampered-file":  # the second run replaced the bad entry (checked once)
        third = convert(*args)
        assert third.cache["result"] == "Hit", third.cache


def test_a_wrong_engine_that_fails_on_its_warmup_input_is_not_served(
    fake_trt: type[FakeConverter], source_for: Any, convert: Converter, tmp_path: Path
) -> None:
    """Sizes and hashes match (the manifest was rewritten too), but the model fails."""
    store = Store("local", str(tmp_path / "cache"), root=tmp_path / "cache")
    args = base_args(source_for(store), "FP16") + cache_args(store)
    assert convert(*args).cache["result"] == "Miss"
    ((manifest_rel, manifest),) = store.manifests().items()
    entry = store.root / manifest_rel.rsplit("/", 1)[0] / manifest["entry"]  # type: ignore[operator]
    warmup = entry / "assets.extra" / "tf_serving_warmup_requests"
    warmup.write_bytes(b"not a TFRecord")
    for item in manifest["files"]:
        if item["path"].endswith("tf_serving_warmup_requests"):
            item["size"], item["sha256"] = warmup.stat().st_size, sha256_file(warmup)
    store.put(manifest_rel, json.dumps(manifest).encode())
    second = convert(*args)
    assert second.code == 0
    assert second.cache["result"] == "Miss"
    assert "warmup input" in second.cache["warning"]
    assert len(fake_trt.instances) == 2


# Doubles of the check's child process (cache_check.check_command): what a TF-TRT engine
# built for another GPU or TensorRT does when it is deserialized, and other ways to fail.
CRASHING_CHECKS = {
    # the crash of issue 9: SIGABRT once the model is loaded
    "abort-on-load": ("import os, sys; sys.stdin.readline(); os.abort()", "crashed (SIGABRT)"),
    "segfault-on-load": (
        "import os, signal, sys; sys.stdin.readline(); os.kill(os.getpid(), signal.SIGSEGV)",
        "crashed (SIGSEGV)",
    ),
    "dies-before-the-request": ("import os; os.abort()", "crashed (SIGABRT)"),
    "exits-1": ("import sys; sys.stdin.readline(); sys.exit(1)", "exited with code 1"),
    "hangs": ("import sys, time; sys.stdin.readline(); time.sleep(600)", "did not finish"),
}


@pytest.mark.parametrize("crash", list(CRASHING_CHECKS))
@pytest.mark.parametrize("mode", ["NATIVE", "FP16"], indirect=True)
def test_a_check_that_crashes_is_a_miss_and_the_converter_converts(
    *,
    mode: str,
    trt: type[FakeConverter] | None,
    source_for: Any,
    convert: Converter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    crash: str,
) -> None:
    """The load check runs in a child: its crash is a warning and a miss, never the pod's
    crash; the converter converts, serves and writes a valid report."""
    if mode == "FP16" and crash not in ("abort-on-load", "hangs"):
        pytest.skip("one crash and the time-out are enough through the TF-TRT double")
    store = Store("local", str(tmp_path / "cache"), root=tmp_path / "cache")
    args = base_args(source_for(store), mode) + cache_args(store)
    first = convert(*args)
    assert first.cache["result"] == "Miss"

    script, reason = CRASHING_CHECKS[crash]
    real = (cache_check.check_command, cache_check.CHECK_TIMEOUT_SECONDS)
    monkeypatch.setattr(cache_check, "check_command", lambda: [sys.executable, "-c", script])
    monkeypatch.setattr(cache_check, "CHECK_TIMEOUT_SECONDS", 3.0)
    started = time.monotonic()
    second = convert(*args)
    assert time.monotonic() - started < 60
    assert second.code == 0, second.report
    Report.model_validate(second.report)  # a complete, valid success report
    assert second.report["result"] == "Succeeded"
    assert second.cache["result"] == "Miss"  # not served from the cache: converted
    assert reason in second.cache["warning"]
    assert conversions(trt, [first, second]) == 2
    expected, got = outputs_of(first.version_dir), outputs_of(second.version_dir)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])
    assert not list((second.output / "clf").glob(".*"))  # no staging left behind

    if crash == "abort-on-load":  # the real child and its time bound (checked once)
        monkeypatch.setattr(cache_check, "check_command", real[0])
        monkeypatch.setattr(cache_check, "CHECK_TIMEOUT_SECONDS", real[1])
        third = convert(*args)  # the real check accepts the entry the second run published
        assert third.cache["result"] == "Hit", third.cache


def test_the_check_child_loads_the_model_and_stops_when_not_needed(
    models: Any, tmp_path: Path
) -> None:
    """The real child: a good model passes, a directory that is no model is refused,
    and a child started for a hit that never came is stopped at once."""
    good = cache_check.ModelCheck(tmp_path)
    assert good.check(models.classifier, "serving_default").startswith("loaded")
    bad = cache_check.ModelCheck(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(cache_module.BadCacheEntryError, match="does not load"):
        bad.check(tmp_path / "empty", "serving_default")
    unused = cache_check.ModelCheck(tmp_path)
    unused.start()
    process = unused.process
    assert process is not None
    started = time.monotonic()
    unused.close()
    assert process.returncode is not None  # reaped, no orphan
    assert time.monotonic() - started < cache_check.STOP_SECONDS


def test_failed_conversions_and_gates_are_never_cached(
    fake_trt: type[FakeConverter],
    source_for: Any,
    convert: Converter,
    models: Any,
    tmp_path: Path,
) -> None:
    store = Store("local", str(tmp_path / "cache"), root=tmp_path / "cache")
    args = base_args(source_for(store), "FP16") + cache_args(store)
    fake_trt.save_from = models.classifier_other  # results changed: the gate fails
    gated = convert(*args)
    assert (gated.code, gated.report["reason"]) == (40, "AccuracyGateFailed")
    fake_trt.fail_in = "build"
    failed = convert(*args)
    assert (failed.code, failed.report["reason"]) == (33, "EngineBuildFailed")
    assert store.manifests() == {}
    locks = [json.loads(d) for rel, d in store.files().items() if "/lock." in rel]
    assert locks
    assert all(lock["state"] == "released" for lock in locks)  # nobody waits for them
    fake_trt.save_from, fake_trt.fail_in = models.classifier, None
    good = convert(*args)
    assert (good.code, good.cache["result"]) == (0, "Miss")
    assert len(store.manifests()) == 1


# --- one conversion per key -----------------------------------------------------------------


class _Waiting(logging.Handler):
    """Sets an event when a converter logs that it waits for another one."""

    def __init__(self) -> None:
        super().__init__()
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "converted elsewhere" in record.getMessage():
            self.event.set()


@pytest.fixture
def waiting() -> Iterator[threading.Event]:
    handler = _Waiting()
    logger = logging.getLogger(cache_module.__name__)
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    yield handler.event
    logger.removeHandler(handler)
    logger.setLevel(previous)


@pytest.mark.parametrize("mode", ["NATIVE", "FP16"], indirect=True)
def test_two_converters_on_one_key_make_one_conversion(
    *,
    store: Store,
    mode: str,
    trt: type[FakeConverter] | None,
    source_for: Any,
    convert: Converter,
    waiting: threading.Event,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cache_module, "POLL_SECONDS", 0.05)
    real_copy = layout.copy_tree

    def slow_copy(source: Path, target: Path) -> int:
        """The first conversion goes on only once the second one is waiting for it."""
        assert waiting.wait(60), "the second converter never waited"
        return real_copy(source, target)

    monkeypatch.setattr(layout, "copy_tree", slow_copy)  # NATIVE's and the double's save()
    if trt is not None:
        original_save = trt.save

        def save(self: FakeConverter, output_saved_model_dir: str) -> None:
            assert waiting.wait(60), "the second converter never waited"
            original_save(self, output_saved_model_dir)

        monkeypatch.setattr(trt, "save", save)
    args = base_args(source_for(store), mode) + cache_args(store)
    runs: list[Run] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            runs.append(convert(*args))
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    assert sorted(r.cache["result"] for r in runs) == ["Hit", "Miss"]
    assert all(r.code == 0 for r in runs)
    assert conversions(trt, runs) == 1
    assert len({r.cache["key"] for r in runs}) == 1
    hit = next(r for r in runs if r.cache["result"] == "Hit")
    assert hit.cache["wait"] > 0


def test_a_dead_lock_holder_is_taken_over(
    source_for: Any,
    convert: Converter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A lock nobody heartbeats any more (its pod died) is taken over after STALE."""
    store = Store("local", str(tmp_path / "cache"), root=tmp_path / "cache")
    args = base_args(source_for(store), "NATIVE") + cache_args(store)
    first = convert(*args)
    key = first.cache["key"]
    store.delete(f"team-a/{key}/manifest.json")
    (store.root / f"team-a/{key}/lock.0").write_text(  # type: ignore[operator]
        json.dumps({"owner": "dead-pod", "beat": 3, "state": "held"})
    )
    monkeypatch.setattr(cache_module, "POLL_SECONDS", 0.05)
    monkeypatch.setattr(cache_module, "STALE_SECONDS", 0.5)
    second = convert(*args)
    assert (second.code, second.cache["result"]) == (0, "Miss")
    assert "no heartbeat: taking it over" in second.cache["warning"]
    assert len(store.manifests()) == 1
    assert not (store.root / f"team-a/{key}/lock.1").exists()  # type: ignore[operator]


# A double loaded into the supervised child by PYTHONPATH: the model copy of NATIVE's
# `convert` step never returns (as a hung engine build would), so the child is stopped at
# --timeout-seconds while it holds the key's lock.
STALLED_COPY = """
import time
from trtserve_converter import layout
def copy_tree(source, target):
    time.sleep(3600)
layout.copy_tree = copy_tree
"""


@pytest.mark.slow
def test_a_lock_left_by_a_converter_stopped_at_its_deadline_is_taken_over(
    source_for: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store("local", str(tmp_path / "cache"), root=tmp_path / "cache")
    args = base_args(source_for(store), "NATIVE") + cache_args(store)
    double = tmp_path / "double"
    double.mkdir()
    (double / "sitecustomize.py").write_text(STALLED_COPY)
    monkeypatch.delenv(CHILD_MARKER, raising=False)
    monkeypatch.setenv("PYTHONPATH", str(double))
    stopped = Converter(tmp_path / "stopped")(*args, "--timeout-seconds", "20")
    assert (stopped.code, stopped.report["reason"]) == (60, "Timeout"), stopped.report
    assert "stopped in step convert" in stopped.report["message"]
    assert stopped.report["cache"]["result"] == "Miss"  # it had claimed the key
    [lock] = [path for path in store.root.rglob("lock.*")]  # type: ignore[union-attr]
    assert json.loads(lock.read_text())["state"] == "held"  # and left its lock behind
    assert not list(stopped.output.glob(".trt-convert-work-*"))  # the parent removed its work

    monkeypatch.delenv("PYTHONPATH")
    monkeypatch.setenv(CHILD_MARKER, "1")  # the next converter, in this process
    monkeypatch.setattr(cache_module, "POLL_SECONDS", 0.05)
    monkeypatch.setattr(cache_module, "STALE_SECONDS", 0.5)
    second = Converter(tmp_path / "second")(*args)
    assert (second.code, second.cache["result"]) == (0, "Miss"), second.report
    assert "no heartbeat: taking it over" in second.cache["warning"]
    assert len(store.manifests()) == 1


# --- publishing failures --------------------------------------------------------------------


def test_a_failed_publish_still_serves(
    *,
    mode: str,
    trt: type[FakeConverter] | None,
    source_for: Any,
    convert: Converter,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    unwritable = {
        "local": Store("local", str(tmp_path / "a-file" / "cache"), root=None),
        "pvc": Store("pvc", f"file://{tmp_path}/a-file/mnt", root=None),
    }
    s3 = make_store("s3", tmp_path, request)
    unwritable["s3"] = Store(
        "s3", f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/c", client=s3.client, bucket=s3.bucket
    )
    for kind, store in unwritable.items():
        source = source_for(s3 if kind == "s3" else store)
        run = convert(*base_args(source, mode), *cache_args(store))
        assert run.code == 0, (kind, run.report)
        assert run.cache["result"] == "PublishFailed", (kind, run.cache)
        assert "served anyway" in run.cache["warning"] or run.cache["warning"]
        assert (run.version_dir / "saved_model.pb").is_file()
        assert f"served as version 1 from {run.version_dir}" in run.report["message"]


def test_read_only_use_never_publishes(source_for: Any, convert: Converter, tmp_path: Path) -> None:
    store = Store("local", str(tmp_path / "cache"), root=tmp_path / "cache")
    source = source_for(store)
    read_only = convert(*base_args(source, "NATIVE"), *cache_args(store, "--no-cache-publish"))
    assert (read_only.code, read_only.cache["result"]) == (0, "Miss")
    assert store.files() == {}
    convert(*base_args(source, "NATIVE"), *cache_args(store))
    again = convert(*base_args(source, "NATIVE"), *cache_args(store, "--no-cache-publish"))
    assert again.cache["result"] == "Hit"


def test_namespaces_do_not_share_entries(
    source_for: Any, convert: Converter, tmp_path: Path
) -> None:
    store = Store("local", str(tmp_path / "cache"), root=tmp_path / "cache")
    args = [*base_args(source_for(store), "NATIVE"), "--cache-uri", store.uri]
    first = convert(*args, "--cache-namespace", "team-a")
    other = convert(*args, "--cache-namespace", "team-b")
    assert (first.cache["result"], other.cache["result"]) == ("Miss", "Miss")
    assert first.cache["key"] == other.cache["key"]
    assert sorted(store.manifests()) == [
        f"team-a/{first.cache['key']}/manifest.json",
        f"team-b/{first.cache['key']}/manifest.json",
    ]


def test_s3_cache_credentials_come_from_their_own_directory(
    models: Any,
    convert: Converter,
    tmp_path: Path,
    s3_env: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The source may be local (or use other keys): the cache's keys are files."""
    client = s3_client(s3_env)
    bucket = f"cache-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name)
    credentials = tmp_path / "cache-credentials"
    credentials.mkdir()
    (credentials / "AWS_ACCESS_KEY_ID").write_text("testing")
    (credentials / "AWS_SECRET_ACCESS_KEY").write_text("testing")
    (credentials / "AWS_ENDPOINT_URL").write_text(s3_env)
    monkeypatch.setenv("TRT_CONVERT_SECRET_DIR", str(tmp_path / "no-source-secret"))
    args = ["--source", str(models.classifier), "--model-name", "clf", "--precision", "NATIVE"]
    cache = ["--cache-uri", f"s3://{bucket}/c", "--cache-credentials-dir", str(credentials)]
    assert convert(*args, *cache).cache["result"] == "Miss"
    assert convert(*args, *cache).cache["result"] == "Hit"
    without = convert(*args, "--cache-uri", f"s3://{bucket}/c")  # no keys for the cache
    assert without.code == 0
    assert without.cache["result"] in {"Miss", "PublishFailed"}
    assert without.cache["warning"]


def test_without_a_cache_the_report_says_disabled(models: Any, convert: Converter) -> None:
    run = convert(
        "--source", str(models.classifier), "--model-name", "clf", "--precision", "NATIVE"
    )
    assert run.cache == {"result": "Disabled"}


@pytest.mark.slow
def test_an_s3_archive_source_is_keyed_by_its_etag(
    classifier_tarball: Path, convert: Converter, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = make_store("s3", tmp_path, request)
    bucket = f"src-{uuid.uuid4().hex[:12]}"
    store.client.create_bucket(Bucket=bucket)
    store.client.upload_file(str(classifier_tarball), bucket, "clf.tar.gz")
    args = [*base_args(f"s3://{bucket}/clf.tar.gz", "NATIVE"), *cache_args(store)]
    first = convert(*args, "--model-version", "1")
    assert (first.code, first.cache["result"]) == (0, "Miss"), first.report
    (manifest,) = store.manifests().values()
    assert manifest["keyInputs"]["source"]["kind"] == "object"
    assert manifest["keyInputs"]["source"]["tag"].strip('"')
    assert convert(*args, "--model-version", "1").cache["result"] == "Hit"
    store.client.put_object(Bucket=bucket, Key="clf.tar.gz", Body=classifier_tarball.read_bytes())
    same_bytes = convert(*args, "--model-version", "1")  # same content: same ETag
    assert same_bytes.cache["result"] == "Hit"


def test_changed_calibration_data_is_a_miss(
    fake_trt: type[FakeConverter], source_for: Any, convert: Converter, tmp_path: Path
) -> None:
    store = Store("local", str(tmp_path / "cache"), root=tmp_path / "cache")
    data = np.random.default_rng(0).standard_normal((8, 8, 8, 3)).astype(np.float32)
    np.savez(tmp_path / "cal.npz", images=data)
    args = [
        *["--source", source_for(store), "--model-name", "clf", "--precision", "INT8"],
        *["--calibration-source", str(tmp_path / "cal.npz"), "--calibration-batch-size", "4"],
        *cache_args(store),
    ]
    first = convert(*args)
    assert (first.code, first.cache["result"]) == (0, "Miss"), first.report
    (manifest,) = store.manifests().values()
    assert manifest["keyInputs"]["calibration"]["kind"] == "file"
    assert convert(*args).cache["result"] == "Hit"
    np.savez(tmp_path / "cal.npz", images=data + 1)
    changed = convert(*args)
    assert changed.cache["result"] == "Miss"
    assert changed.cache["key"] != first.cache["key"]
    assert len(fake_trt.instances) == 2


def test_unreadable_calibration_data_fails_as_without_a_cache(
    fake_trt: type[FakeConverter], source_for: Any, convert: Converter, tmp_path: Path
) -> None:
    store = Store("local", str(tmp_path / "cache"), root=tmp_path / "cache")
    run = convert(
        *["--source", source_for(store), "--model-name", "clf", "--precision", "INT8"],
        *["--calibration-source", str(tmp_path / "absent.npz")],
        *cache_args(store),
    )
    assert (run.code, run.report["reason"]) == (32, "CalibrationFailed")
    assert run.cache["result"] == "Miss"
    assert "identity is unknown" in run.cache["warning"]
    assert store.files() == {}
