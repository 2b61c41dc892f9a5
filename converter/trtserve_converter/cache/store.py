"""The cache's storage: files under one root, on S3, GCS or a local (PVC) directory.

Remote stores are opened by fetch.open_filesystem, the one place that opens S3 and GCS:
the same storage options (time-outs, endpoints), botocore and s3fs at one attempt per
request, gcsfs's core filesystem with its retry decorator bypassed and credentials
resolved once up front (gcs.py), and fetch.with_retries as the only retry loop. Files
are copied with fetch.download_file, which hashes them as they arrive. The cache's
credentials are files in their own directory (`--cache-credentials-dir`), because the
source's may already be in the environment.

Exclusive creation (locks, manifests): an O_EXCL create locally (the manifest: a link
of a complete temporary file, so a reader never sees half of it), a conditional PUT
with `If-None-Match: *` on S3, `ifGenerationMatch=0` on GCS (fsspec's `mode="create"`
of s3fs and gcsfs). A store that cannot do it raises ExclusiveCreateError.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import shutil
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from trtserve_converter.credentials import SECRET_DIR_ENV
from trtserve_converter.errors import ConverterError, SourceTooLarge
from trtserve_converter.fetch import (
    ByteBudget,
    copy_stream,
    download_file,
    local_path,
    open_filesystem,
    scheme_of,
    with_retries,
)

LOG = logging.getLogger(__name__)

REMOTE_SCHEMES = frozenset({"s3", "gs", "gcs"})
TEMP_PREFIX = ".tmp-"


class CacheStoreError(Exception):
    """The store could not do what was asked (after the retries); the cache fails closed."""


class ExclusiveCreateError(CacheStoreError):
    """The store cannot create a file exclusively: concurrent misses each convert."""


def safe_relative(path: str) -> PurePosixPath:
    """A relative path with no '..', absolute or empty parts (names from a manifest)."""
    pure = PurePosixPath(path)
    if (
        not path
        or not pure.parts
        or pure.is_absolute()
        or any(part in ("", ".", "..") for part in pure.parts)
    ):
        raise CacheStoreError(f"unsafe path {path!r} in the cache")
    if "\\" in path or path != pure.as_posix():
        raise CacheStoreError(f"unsafe path {path!r} in the cache")
    return pure


class CacheStore:
    """Files under `root` of an fsspec file system (S3, GCS)."""

    def __init__(self, fs: Any, root: str, uri: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.uri = uri.rstrip("/")

    def describe(self, rel: str) -> str:
        return f"{self.uri}/{rel}"

    def _path(self, rel: str) -> str:
        return f"{self.root}/{safe_relative(rel)}"

    def _retry(self, action: Any, rel: str) -> Any:
        try:
            return with_retries(action, self.describe(rel))
        except ConverterError as error:
            raise CacheStoreError(error.message) from error

    def read(self, rel: str) -> bytes | None:
        """The file's bytes, None when it does not exist."""
        path = self._path(rel)

        def attempt() -> bytes | None:
            try:
                return bytes(self.fs.cat_file(path))
            except FileNotFoundError:
                return None

        return self._retry(attempt, rel)  # type: ignore[no-any-return]

    def write(self, rel: str, data: bytes) -> None:
        """Create or replace the file (one PUT: readers see the old or the new bytes)."""
        path = self._path(rel)
        self._retry(lambda: self.fs.pipe_file(path, data), rel)

    def create(self, rel: str, data: bytes) -> bool:
        """Create the file only if it does not exist; False when it does."""
        path = self._path(rel)

        def attempt() -> str:
            try:
                self.fs.pipe_file(path, data, mode="create")
            except FileExistsError:
                return "exists"
            except (NotImplementedError, TypeError):
                return "unsupported"
            except OSError as error:
                if error.errno == errno.ENOSYS:  # S3 501 NotImplemented: no If-None-Match
                    return "unsupported"
                raise
            return "created"

        outcome = self._retry(attempt, rel)
        if outcome == "unsupported":
            raise ExclusiveCreateError(
                f"{self.describe(rel)}: the store cannot create a file exclusively"
            )
        return bool(outcome == "created")

    def upload(self, local: Path, rel: str) -> None:
        path = self._path(rel)
        self._retry(lambda: self.fs.put_file(str(local), path), rel)

    def download(self, rel: str, local: Path, size: int) -> str:
        """Copy the file to `local` and return its sha256 (hashed while it arrives).

        CacheStoreError when it is missing (permanent for fetch's retry loop: no retries),
        cannot be read, or has more than the `size` bytes the manifest says.
        """
        path = self._path(rel)
        try:
            digest = download_file(
                self.fs, path, local, ByteBudget(size, self.describe(rel)), sha256=True
            )
        except SourceTooLarge as error:
            raise CacheStoreError(f"{self.describe(rel)} has more than {size} bytes") from error
        except ConverterError as error:
            raise CacheStoreError(error.message) from error
        assert digest is not None
        return digest

    def remove(self, rels: list[str]) -> None:
        """Delete files, best effort (clean-up only)."""
        for rel in rels:
            try:
                self.fs.rm_file(self._path(rel))
            except Exception as error:
                LOG.debug("cache: could not remove %s: %s", self.describe(rel), error)


class LocalStore(CacheStore):
    """Files under a local directory (a mounted PVC, or a plain directory)."""

    def __init__(self, root: Path, uri: str) -> None:
        super().__init__(None, str(root), uri)
        self.base = root

    def _local(self, rel: str) -> Path:
        return self.base.joinpath(*safe_relative(rel).parts)

    def read(self, rel: str) -> bytes | None:
        try:
            return self._local(rel).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise CacheStoreError(f"cannot read {self.describe(rel)}: {error}") from error

    def _temporary(self, target: Path, data: bytes) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f"{TEMP_PREFIX}{target.name}-{uuid.uuid4().hex[:8]}")
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return temporary

    def write(self, rel: str, data: bytes) -> None:
        target = self._local(rel)
        try:
            os.replace(self._temporary(target, data), target)
        except OSError as error:
            raise CacheStoreError(f"cannot write {self.describe(rel)}: {error}") from error

    def create(self, rel: str, data: bytes) -> bool:
        """A link of a complete temporary file (atomic and exclusive), else O_EXCL."""
        target = self._local(rel)
        try:
            temporary = self._temporary(target, data)
        except OSError as error:
            raise CacheStoreError(f"cannot write {self.describe(rel)}: {error}") from error
        try:
            os.link(temporary, target)
            return True
        except FileExistsError:
            return False
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise CacheStoreError(f"cannot create {self.describe(rel)}: {error}") from error
            return self._create_excl(target, data)  # no hard links on this file system
        finally:
            with contextlib.suppress(OSError):
                temporary.unlink()

    def _create_excl(self, target: Path, data: bytes) -> bool:
        try:
            descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as error:
            raise CacheStoreError(f"cannot create {target}: {error}") from error
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        return True

    def upload(self, local: Path, rel: str) -> None:
        target = self._local(rel)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, target)
        except OSError as error:
            raise CacheStoreError(f"cannot write {self.describe(rel)}: {error}") from error

    def download(self, rel: str, local: Path, size: int) -> str:
        source = self._local(rel)
        digest = hashlib.sha256()
        try:
            with source.open("rb") as handle:
                copy_stream(handle, local, ByteBudget(size, self.describe(rel)), digest)
        except SourceTooLarge as error:
            raise CacheStoreError(f"{self.describe(rel)} has more than {size} bytes") from error
        except FileNotFoundError as error:
            raise CacheStoreError(f"{self.describe(rel)} is missing") from error
        except OSError as error:
            raise CacheStoreError(f"cannot read {self.describe(rel)}: {error}") from error
        return digest.hexdigest()

    def remove(self, rels: list[str]) -> None:
        for rel in rels:
            with contextlib.suppress(OSError):
                self._local(rel).unlink()


CACHE_SECRET = "the cache's secret (spec.cache.secretRef or the chart's cache.secretName)"


def open_store(uri: str, credentials_dir: str | None, *, writable: bool = True) -> CacheStore:
    """The store of `--cache-uri`, with the cache's own credentials when given.

    Opened through fetch.open_filesystem (no second S3 or GCS client); for gs:// that
    resolves and refreshes the credentials once, here, so a refused key is a warning at
    the start, not a failure on the first entry.
    """
    local = local_path(uri)
    if local is not None:
        return LocalStore(local, uri)
    scheme = scheme_of(uri)
    if scheme not in REMOTE_SCHEMES:
        raise CacheStoreError(f"unsupported cache scheme {scheme!r} in {uri}")
    # Only files of the cache's secret count (the environment holds the source's keys);
    # without a directory, the pod's default credentials (IRSA, workload identity, env).
    environ = {SECRET_DIR_ENV: credentials_dir} if credentials_dir else None
    try:
        fs, root = open_filesystem(uri, scheme, environ, writable=writable, secret=CACHE_SECRET)
    except ConverterError as error:
        raise CacheStoreError(f"cannot open the cache {uri}: {error.message}") from error
    return CacheStore(fs, root, uri)
