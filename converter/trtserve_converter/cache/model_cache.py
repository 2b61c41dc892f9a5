"""One run's use of the converted-model cache (:class:`ModelCache`): the key, the
lookup, the wait for another converter or the claim of the key's lock, the download and
the publish. pipeline.py orders the steps; this module does them. Everything here fails
closed: an unreadable, unsigned (when signing is on), inconsistent or failing entry is a
miss, and a cache that cannot be reached or written never fails the pod."""

# TensorFlow and the transports are imported lazily: --help, argument errors and a
# TF-less failure path must stay fast and never import TensorFlow.
# ruff: noqa: PLC0415

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trtserve_converter.cache.key import key_of, local_files
from trtserve_converter.cache.lock import (
    HEARTBEAT_SECONDS,
    LOCK_PREFIX,
    POLL_SECONDS,
    STALE_SECONDS,
    HeldLock,
    KeyLocks,
    lock_owner,
)
from trtserve_converter.cache.manifest import (
    MANIFEST,
    BadCacheEntryError,
    Manifest,
    build_manifest,
    parse_manifest,
)
from trtserve_converter.cache.store import (
    CacheStore,
    CacheStoreError,
    ExclusiveCreateError,
    open_store,
    safe_relative,
)
from trtserve_converter.config import ConvertConfig
from trtserve_converter.report import CacheReport

LOG = logging.getLogger(__name__)

WAIT_FRACTION = 0.5
"""At most this share of --timeout-seconds is spent waiting for another converter."""


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

    def _locks(self) -> KeyLocks:
        assert self.store is not None
        return KeyLocks(self.store, self._rel, self.owner, self.heartbeat_seconds)

    def _try_lock(self, index: int) -> bool:
        self.lock = self._locks().claim(index)
        return self.lock is not None

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
                    current = self._locks().current()
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
                    _, state = lock_owner(current[1]) if current else (None, None)
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
        if lock is not None and self.store is not None:
            self._locks().release(lock, published=published)

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
                from trtserve_converter.cache.key import sha256_file

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
