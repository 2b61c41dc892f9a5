"""The converted-model cache: a new replica downloads what another one converted.

Layout under `--cache-uri` (docs/converter.md, "Converted-model cache"):

    <cache>/<namespace>/<key>/<entry-id>/...     the converted model's files
    <cache>/<namespace>/<key>/manifest.json      written last: files (size, sha256),
                                                 the conversion report, the key's inputs,
                                                 optionally an HMAC-SHA256 signature
    <cache>/<namespace>/<key>/lock.<n>           one conversion per key at a time

A reader that sees a manifest sees a complete entry; a crash mid-publish leaves files
no manifest names. Everything here fails closed: an unreadable, unsigned (when signing is
on), inconsistent or failing entry is a miss, and a cache that cannot be reached or
written never fails the pod. pipeline.py orders the steps; this module does them.
"""

# TensorFlow and the transports are imported lazily: --help, argument errors and a
# TF-less failure path must stay fast and never import TensorFlow.
# ruff: noqa: PLC0415

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trtserve_converter.cache_key import CACHE_FORMAT, canonical_json, key_of, local_files
from trtserve_converter.cache_store import (
    CacheStore,
    CacheStoreError,
    ExclusiveCreateError,
    open_store,
    safe_relative,
)
from trtserve_converter.config import ConvertConfig
from trtserve_converter.report import CacheReport

LOG = logging.getLogger(__name__)

MANIFEST = "manifest.json"
LOCK_PREFIX = "lock."
MAX_LOCKS = 100
SIGNATURE_ALGORITHM = "HMAC-SHA256"
ENTRY_ID = re.compile(r"^[0-9a-f]{32}$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
HEARTBEAT_SECONDS = 10.0
"""How often the converter holding a key's lock rewrites it."""
STALE_SECONDS = 60.0
"""A lock unchanged for this long (on the waiter's own clock) is taken over."""
POLL_SECONDS = 2.0
WAIT_FRACTION = 0.5
"""At most this share of --timeout-seconds is spent waiting for another converter."""


class BadCacheEntryError(Exception):
    """An entry that must not be served (its message says why)."""


@dataclass(frozen=True)
class Manifest:
    """A manifest that passed every check of `parse_manifest`."""

    key: str
    entry: str
    files: list[tuple[str, int, str]]
    report: dict[str, Any]
    data: dict[str, Any]
    source_version: int | None = None
    """The version number the source gave the model (00000123 -> 123), None: none."""

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size, _ in self.files)


def sign(manifest: Mapping[str, Any], key: bytes) -> str:
    """HMAC-SHA256 (hex) of the manifest's canonical JSON without its signature."""
    body = {name: value for name, value in manifest.items() if name != "signature"}
    return hmac.new(key, canonical_json(body).encode("utf-8"), hashlib.sha256).hexdigest()


def build_manifest(
    *,
    key: str,
    namespace: str,
    entry: str,
    files: list[tuple[str, int, str]],
    report: Mapping[str, Any],
    inputs: Mapping[str, Any],
    signing_key: bytes | None,
    source_version: int | None = None,
) -> dict[str, Any]:
    """The manifest of an entry. `source_version` is the version number the source gave
    the model: a hit keyed by metadata (no fetch) serves that number, as a miss would."""
    manifest: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "key": key,
        "namespace": namespace,
        "entry": entry,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "createdBy": socket.gethostname(),
        "files": [{"path": path, "size": size, "sha256": digest} for path, size, digest in files],
        "report": dict(report),
        "keyInputs": dict(inputs),
        "sourceVersion": source_version,
    }
    if signing_key is not None:
        manifest["signature"] = {
            "algorithm": SIGNATURE_ALGORITHM,
            "value": sign(manifest, signing_key),
        }
    return manifest


def parse_manifest(raw: bytes, *, key: str, namespace: str, signing_key: bytes | None) -> Manifest:
    """Check a manifest completely before anything it names is used."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise BadCacheEntryError(f"the manifest is not JSON ({error})") from error
    if not isinstance(data, dict):
        raise BadCacheEntryError("the manifest is not a JSON object")
    if signing_key is not None:
        signature = data.get("signature")
        if not isinstance(signature, dict) or signature.get("algorithm") != SIGNATURE_ALGORITHM:
            raise BadCacheEntryError("the manifest is not signed (signing is on)")
        if not hmac.compare_digest(str(signature.get("value", "")), sign(data, signing_key)):
            raise BadCacheEntryError("the manifest's signature is wrong")
    if data.get("format") != CACHE_FORMAT:
        raise BadCacheEntryError(f"cache format {data.get('format')!r}, expected {CACHE_FORMAT}")
    if data.get("key") != key or data.get("namespace") != namespace:
        raise BadCacheEntryError("the manifest belongs to another key or namespace")
    inputs = data.get("keyInputs")
    if not isinstance(inputs, dict) or key_of(inputs) != key:
        raise BadCacheEntryError("the manifest's key inputs do not hash to its key")
    entry = data.get("entry")
    if not isinstance(entry, str) or not ENTRY_ID.match(entry):
        raise BadCacheEntryError(f"bad entry id {entry!r}")
    files = []
    for item in data.get("files") or []:
        if not isinstance(item, dict):
            raise BadCacheEntryError("bad file list")
        path, size, digest = item.get("path"), item.get("size"), item.get("sha256")
        if (
            not isinstance(path, str)
            or not isinstance(size, int)
            or size < 0
            or not isinstance(digest, str)
            or not SHA256_HEX.match(digest)
        ):
            raise BadCacheEntryError(f"bad file entry {item!r}"[:200])
        try:
            safe_relative(path)
        except CacheStoreError as error:
            raise BadCacheEntryError(str(error)) from error
        files.append((path, size, digest))
    if not files:
        raise BadCacheEntryError("the manifest lists no files")
    source_version = data.get("sourceVersion")
    if source_version is not None and (
        not isinstance(source_version, int)
        or isinstance(source_version, bool)
        or source_version < 0
    ):
        raise BadCacheEntryError(f"bad sourceVersion {source_version!r}"[:200])
    report = data.get("report")
    return Manifest(
        key=key,
        entry=entry,
        files=files,
        report=report if isinstance(report, dict) else {},
        data=data,
        source_version=source_version,
    )


def verify_files(
    manifest: Manifest, directory: Path, digests: Mapping[str, str] | None = None
) -> None:
    """Every listed file has its size and sha256, and nothing else is there.

    `digests`: the sha256 of each file as computed while it was downloaded (no second
    read); files missing from it are hashed here.
    """
    from trtserve_converter.cache_key import sha256_file

    listed = {path for path, _, _ in manifest.files}
    present = {rel for rel, _ in local_files(directory)}
    if present != listed:
        raise BadCacheEntryError(f"files differ from the manifest: {sorted(present ^ listed)[:5]}")
    for path, size, digest in manifest.files:
        local = directory.joinpath(*safe_relative(path).parts)
        if local.stat().st_size != size:
            raise BadCacheEntryError(f"{path}: {local.stat().st_size} bytes, manifest says {size}")
        actual = (digests or {}).get(path) or sha256_file(local)
        if actual != digest:
            raise BadCacheEntryError(f"{path}: sha256 differs from the manifest")


@dataclass
class HeldLock:
    """A key's lock held by this converter, rewritten by a heartbeat thread."""

    store: CacheStore
    rel: str
    owner: str
    index: int
    beats: int = 0
    lost: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def body(self, state: str = "held") -> bytes:
        return lock_body(self.owner, self.beats, state)

    def start(self, interval: float) -> None:
        self._thread = threading.Thread(
            target=self._beat, args=(interval,), name="cache-lock-heartbeat", daemon=True
        )
        self._thread.start()

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            if self.lost:
                return
            try:
                successor = f"{self.rel.rsplit('.', 1)[0]}.{self.index + 1}"
                if self.store.read(successor) is not None:
                    LOG.warning("cache: lock %s was taken over by another converter", self.rel)
                    self.lost = True
                    return
                self.beats += 1
                self.store.write(self.rel, self.body())
            except Exception as error:  # a missed beat is not fatal
                LOG.warning("cache: lock heartbeat failed: %s", error)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def lock_body(owner: str, beats: int, state: str) -> bytes:
    return json.dumps(
        {
            "owner": owner,
            "host": socket.gethostname(),
            "beat": beats,
            "state": state,
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    ).encode()


def _lock_owner(raw: bytes | None) -> tuple[str | None, str | None]:
    """(owner, state) of a lock's bytes; (None, None) while unreadable (being written)."""
    try:
        data = json.loads((raw or b"").decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    return data.get("owner"), data.get("state")


class ModelCache:
    """One run's use of the cache; `report()` says what it did.

    Every method catches the store's errors: a cache problem is a warning and a miss.
    """

    def __init__(
        self,
        config: ConvertConfig,
        store: CacheStore | None,
        signing_key: bytes | None,
        *,
        problem: str | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.signing_key = signing_key
        self.publish_enabled = config.cache_publish and store is not None and problem is None
        self.namespace = config.cache_namespace
        self.owner = uuid.uuid4().hex
        self.key: str | None = None
        self.inputs: dict[str, Any] | None = None
        self.result = "Miss"
        self.seconds: dict[str, float] = {}
        self.warning = problem
        self.lock: HeldLock | None = None
        self.replace_manifest = False
        self.abandoned = False
        self.heartbeat_seconds = HEARTBEAT_SECONDS
        self.stale_seconds = STALE_SECONDS
        self.poll_seconds = POLL_SECONDS
        self.sleep: Callable[[float], None] = time.sleep
        self.clock: Callable[[], float] = time.monotonic

    @property
    def enabled(self) -> bool:
        return self.store is not None and not self.abandoned

    def abandon(self, reason: str) -> None:
        """Not used for the rest of this run (no lookup, no publish)."""
        self.warn(f"{reason}: cache not used")
        self.abandoned = True

    # --- reporting ----------------------------------------------------------------

    def warn(self, text: str) -> None:
        LOG.warning("cache: %s", text)
        if self.warning is None:
            self.warning = text

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.monotonic() - started, 3)

    def report(self) -> CacheReport:
        return CacheReport(result=self.result, key=self.key, warning=self.warning, **self.seconds)

    # --- key and lookup ---------------------------------------------------------------

    def _rel(self, *parts: str) -> str:
        assert self.key is not None
        return "/".join((self.namespace, self.key, *parts))

    def set_key(self, inputs: dict[str, Any]) -> str:
        self.inputs = inputs
        self.key = key_of(inputs)
        LOG.info("cache: key %s", self.key)
        return self.key

    def lookup(self, rejected: set[str] | None = None) -> Manifest | None:
        """The key's manifest if there is a usable one (signature and consistency checked)."""
        assert self.store is not None
        assert self.key is not None
        with self.timed("lookup"):
            try:
                raw = self.store.read(self._rel(MANIFEST))
            except CacheStoreError as error:
                self.warn(f"lookup failed ({error}): converting")
                return None
            if raw is None:
                return None
            try:
                manifest = parse_manifest(
                    raw, key=self.key, namespace=self.namespace, signing_key=self.signing_key
                )
            except BadCacheEntryError as error:
                self.warn(f"ignoring the entry of {self.key[:12]}: {error}")
                self.replace_manifest = True
                return None
        if rejected and manifest.entry in rejected:
            return None
        return manifest

    def download(self, manifest: Manifest, target: Path) -> dict[str, str]:
        """The entry's files into `target`; the sha256 of each, computed as it arrived.

        BadCacheEntryError when one cannot be read or is larger than the manifest says.
        """
        assert self.store is not None
        if manifest.total_bytes > self.config.max_source_bytes:
            raise BadCacheEntryError(
                f"the entry has {manifest.total_bytes} bytes, over --max-source-bytes"
            )
        target.mkdir(parents=True, exist_ok=True)
        digests = {}
        with self.timed("download"):
            for path, size, _digest in manifest.files:
                local = target.joinpath(*safe_relative(path).parts)
                try:
                    digests[path] = self.store.download(
                        self._rel(manifest.entry, path), local, size
                    )
                except CacheStoreError as error:
                    raise BadCacheEntryError(str(error)) from error
        return digests

    def reject(self, manifest: Manifest, error: BaseException) -> None:
        self.warn(f"not serving entry {manifest.entry[:8]} of {manifest.key[:12]}: {error}")
        self.replace_manifest = True

    def hit(self) -> None:
        self.result = "Hit"

    # --- one conversion per key ----------------------------------------------------------

    def _current_lock(self) -> tuple[int, bytes] | None:
        assert self.store is not None
        current = None
        for index in range(MAX_LOCKS):
            raw = self.store.read(self._rel(f"{LOCK_PREFIX}{index}"))
            if raw is None:
                break
            current = (index, raw)
        return current

    def _try_lock(self, index: int) -> bool:
        assert self.store is not None
        rel = self._rel(f"{LOCK_PREFIX}{index}")
        if not self.store.create(rel, lock_body(self.owner, 0, "held")):
            return False
        # A store that ignores If-None-Match lets a second PUT overwrite the first.
        owner, _ = _lock_owner(self.store.read(rel))
        if owner != self.owner:
            return False
        self.lock = HeldLock(self.store, rel, self.owner, index)
        self.lock.start(self.heartbeat_seconds)
        LOG.info("cache: holding %s while converting", rel)
        return True

    def wait_or_claim(self, rejected: set[str]) -> Manifest | None:
        """Wait while another converter holds the key; take the lock when nobody does.

        Returns a manifest that appeared meanwhile, or None: convert (holding the lock
        when the store allows it). Bounded by WAIT_FRACTION of --timeout-seconds.
        """
        if self.store is None or self.key is None:
            return None
        started = self.clock()
        budget = self.config.timeout_seconds * WAIT_FRACTION
        seen: tuple[int, bytes] | None = None
        seen_at = started
        try:
            with self.timed("wait"):
                while True:
                    manifest = self.lookup(rejected)
                    if manifest is not None:
                        return manifest
                    current = self._current_lock()
                    now = self.clock()
                    if current != seen:
                        if seen is None and current is not None:
                            LOG.info(
                                "cache: %s is converted elsewhere (%s%d): waiting up to %.0fs",
                                self.key[:12],
                                LOCK_PREFIX,
                                current[0],
                                budget,
                            )
                        seen, seen_at = current, now
                    _, state = _lock_owner(current[1]) if current else (None, None)
                    free = current is None or state == "released"
                    stale = current is not None and now - seen_at >= self.stale_seconds
                    if free or stale:
                        if stale and not free:
                            self.warn(f"lock {current[0]} has no heartbeat: taking it over")  # type: ignore[index]
                        if not self.publish_enabled:
                            return None  # read-only: nobody converts for us
                        if self._try_lock(0 if current is None else current[0] + 1):
                            manifest = self.lookup(rejected)  # published meanwhile?
                            if manifest is not None:
                                self.release(published=True)  # nothing left to guard
                            return manifest
                        continue  # another converter was faster: look again
                    if now - started >= budget:
                        self.warn(f"waited {now - started:.0f}s for another converter: converting")
                        return None
                    self.sleep(self.poll_seconds)
        except ExclusiveCreateError as error:
            self.warn(f"{error}: concurrent misses each convert")
            return None
        except CacheStoreError as error:
            self.warn(f"locking failed ({error}): converting without a lock")
            return None

    def release(self, *, published: bool) -> None:
        """Stop the heartbeat; remove the locks once published, else mark ours released."""
        lock, self.lock = self.lock, None
        if lock is None or self.store is None:
            return
        lock.stop()
        try:
            if lock.lost:
                return
            if published:
                self.store.remove([self._rel(f"{LOCK_PREFIX}{i}") for i in range(lock.index + 1)])
            else:
                self.store.write(lock.rel, lock.body("released"))
        except CacheStoreError as error:
            LOG.warning("cache: could not release %s: %s", lock.rel, error)

    # --- publish -------------------------------------------------------------------------

    def publish(
        self, model_dir: Path, report: Mapping[str, Any], source_version: int | None
    ) -> None:
        """Upload the served model, then its manifest; a failure is PublishFailed.

        `source_version`: the version number the source gave the model (not the one it was
        served as, which --model-version may have changed)."""
        if not self.enabled or self.store is None or self.key is None or self.inputs is None:
            return
        if not self.publish_enabled:
            LOG.info("cache: --no-cache-publish: not publishing")
            return
        entry = uuid.uuid4().hex
        uploaded: list[str] = []
        try:
            with self.timed("publish"):
                files = []
                from trtserve_converter.cache_key import sha256_file

                for rel, path in local_files(model_dir):
                    files.append((rel, path.stat().st_size, sha256_file(path)))
                    self.store.upload(path, self._rel(entry, rel))
                    uploaded.append(self._rel(entry, rel))
                manifest = build_manifest(
                    key=self.key,
                    namespace=self.namespace,
                    entry=entry,
                    files=files,
                    report=report,
                    inputs=self.inputs,
                    signing_key=self.signing_key,
                    source_version=source_version,
                )
                body = json.dumps(manifest, indent=1, sort_keys=True).encode()
                if self.replace_manifest:
                    self.store.write(self._rel(MANIFEST), body)
                elif not self.store.create(self._rel(MANIFEST), body):
                    LOG.info("cache: another converter published %s first", self.key[:12])
                    self.store.remove(uploaded)
                    self.release(published=True)
                    return
            LOG.info("cache: published %s (%d files) as entry %s", self.key, len(files), entry)
            self.release(published=True)
        except Exception as error:  # the model is served: never fail
            self.result = "PublishFailed"
            self.warn(f"publishing failed ({error}); the model is served anyway")
            self.store.remove(uploaded)
            self.release(published=False)

    def close(self) -> None:
        """Release a lock still held (the run failed or was interrupted)."""
        self.release(published=False)


def open_cache(config: ConvertConfig) -> ModelCache | None:
    """The run's cache, None when --cache-uri is not given.

    A signing key that cannot be read disables the cache (fail closed).
    """
    if not config.cache_uri:
        return None
    signing_key = None
    problem = None
    if config.cache_signing_key_file:
        try:
            signing_key = Path(config.cache_signing_key_file).read_bytes().strip()
        except OSError as error:
            problem = f"cannot read --cache-signing-key-file ({error}): cache not used"
        else:
            if not signing_key:
                problem = "--cache-signing-key-file is empty: cache not used"
    try:
        store = (
            None
            if problem
            else open_store(
                config.cache_uri, config.cache_credentials_dir, writable=config.cache_publish
            )
        )
    except CacheStoreError as error:
        problem = f"{error}: cache not used"
        store = None
    cache = ModelCache(config, store, signing_key, problem=problem)
    if problem:
        LOG.warning("cache: %s", problem)
    return cache
