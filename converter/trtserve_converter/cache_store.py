"""The cache's storage: files under one root, on S3, GCS or a local (PVC) directory.

Remote stores use fetch.py's transport (fsspec with the same storage options: time-outs,
endpoints, credentials) and its retry loop, so there is one S3 and one GCS client and
one retry policy. The cache's credentials are files in their own directory
(`--cache-credentials-dir`), because the source's may already be in the environment.

Exclusive creation (locks, manifests): an O_EXCL create locally (the manifest: a link
of a complete temporary file, so a reader never sees half of it), a conditional PUT
with `If-None-Match: *` on S3, `ifGenerationMatch=0` on GCS (fsspec's `mode="create"`
of s3fs and gcsfs). A store that cannot do it raises ExclusiveCreateError.
"""

# TensorFlow and the transports are imported lazily: --help, argument errors and a
# TF-less failure path must stay fast and never import TensorFlow.
# ruff: noqa: PLC0415

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from trtserve_converter.credentials import SECRET_DIR_ENV
from trtserve_converter.fetch import local_path, scheme_of, storage_options, with_retries

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
        from trtserve_converter.errors import ConverterError

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

    def download(self, rel: str, local: Path) -> None:
        """Copy the file to `local`; CacheStoreError (incl. missing) otherwise."""
        path = self._path(rel)
        local.parent.mkdir(parents=True, exist_ok=True)

        # A missing file is permanent for fetch's retry loop: no retries.
        self._retry(lambda: self.fs.get_file(path, str(local)), rel)

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

    def download(self, rel: str, local: Path) -> None:
        source = self._local(rel)
        try:
            local.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, local)
        except FileNotFoundError as error:
            raise CacheStoreError(f"{self.describe(rel)} is missing") from error
        except OSError as error:
            raise CacheStoreError(f"cannot read {self.describe(rel)}: {error}") from error

    def remove(self, rels: list[str]) -> None:
        for rel in rels:
            with contextlib.suppress(OSError):
                self._local(rel).unlink()


def open_store(uri: str, credentials_dir: str | None) -> CacheStore:
    """The store of `--cache-uri`, with the cache's own credentials when given."""
    local = local_path(uri)
    if local is not None:
        return LocalStore(local, uri)
    scheme = scheme_of(uri)
    if scheme not in REMOTE_SCHEMES:
        raise CacheStoreError(f"unsupported cache scheme {scheme!r} in {uri}")
    import fsspec

    # Only files of the cache's secret count (the environment holds the source's keys);
    # without a directory, the pod's default credentials (IRSA, workload identity, env).
    environ = {SECRET_DIR_ENV: credentials_dir} if credentials_dir else None
    try:
        fs, root = fsspec.core.url_to_fs(uri, **storage_options(scheme, environ))
    except Exception as error:
        raise CacheStoreError(f"cannot open the cache {uri}: {error}") from error
    return CacheStore(fs, root, uri)
