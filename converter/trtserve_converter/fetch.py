"""Step 1: fetch the source (a SavedModel directory or an archive) to local disk.

fsspec does the transport: s3:// (s3fs), gs:// (gcsfs, see gcs.py), http(s)://, file://
and local paths. Credentials come from the environment (docs/contract.md). Downloads are
bounded: per-request timeouts, a few retries with backoff for transient errors, and a size
cap checked before and during the copy.

`with_retries` is the only retry loop: botocore's and s3fs's own retries are switched off
and gcsfs requests are made once each (gcs.py), so the time bounds in docs/converter.md
hold: a transient error costs FETCH_ATTEMPTS requests, not a product of three loops.
"""

# TensorFlow and the transports are imported lazily: --help, argument errors and a
# TF-less failure path must stay fast and never import TensorFlow.
# ruff: noqa: PLC0415

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, NoReturn
from urllib.parse import urlsplit

from trtserve_converter.archive import extract_archive, is_archive
from trtserve_converter.credentials import SecretSource, bearer_token, gcs_token, s3_options
from trtserve_converter.errors import (
    ConverterError,
    FetchFailed,
    InvalidArguments,
    NotASavedModel,
    SourceAuthFailed,
    SourceNotFound,
    SourceTooLarge,
)

LOG = logging.getLogger(__name__)

CHUNK_BYTES = 8 << 20
CONNECT_TIMEOUT_SECONDS = 10.0
READ_TIMEOUT_SECONDS = 60.0  # longest wait for the next bytes, not for the whole download
FETCH_ATTEMPTS = 3
RETRY_BACKOFF_SECONDS = 1.0
PROGRESS_EVERY_SECONDS = 10.0
REMOTE_SCHEMES = frozenset({"s3", "gs", "gcs", "http", "https"})
SUPPORTED_SCHEMES = REMOTE_SCHEMES | {"", "file"}
AUTH_ERROR_NAMES = frozenset(
    {
        "NoCredentialsError",
        "PartialCredentialsError",
        "CredentialRetrievalError",
        "DefaultCredentialsError",
        "RefreshError",
    }
)
HTTP_AUTH_STATUSES = frozenset({401, 403})
# Open http(s) sources as a stream (block_size=0: no Range requests needed). A given
# size skips fsspec's info() probe, which turns every HTTP error (401 too) into
# FileNotFoundError; the GET then raises with the real status.
HTTP_STREAM_OPEN: dict[str, Any] = {"block_size": 0, "size": -1}


def scheme_of(uri: str) -> str:
    """The URI scheme in lower case, '' for a plain local path."""
    scheme = urlsplit(uri).scheme.lower()
    return "" if len(scheme) <= 1 else scheme  # 'c:' style drive letters are paths


def local_path(uri: str) -> Path | None:
    """The local path of a file:// URI or plain path, None for a remote URI."""
    scheme = scheme_of(uri)
    if scheme == "":
        return Path(uri)
    if scheme == "file":
        return Path(urlsplit(uri).path)
    return None


def storage_options(scheme: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """fsspec options per scheme: endpoints, timeouts and credentials (credentials.py)."""
    secrets = SecretSource.from_environment(os.environ if environ is None else environ)
    if scheme == "s3":
        options = s3_options(secrets)
        options["config_kwargs"] = {
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "read_timeout": READ_TIMEOUT_SECONDS,
            # One attempt per request: with_retries is the retry loop.
            "retries": {"mode": "standard", "total_max_attempts": 1},
        }
        options["skip_instance_cache"] = True
        return options
    if scheme in {"gs", "gcs"}:
        token = gcs_token(secrets)
        return {"token": token} if token else {}
    if scheme in {"http", "https"}:
        import aiohttp

        headers = {}
        token = bearer_token(secrets)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return {
            "headers": headers,
            "client_kwargs": {
                "timeout": aiohttp.ClientTimeout(
                    total=None, connect=CONNECT_TIMEOUT_SECONDS, sock_read=READ_TIMEOUT_SECONDS
                )
            },
            "skip_instance_cache": True,
        }
    return {}


def translate_error(error: BaseException, uri: str) -> ConverterError:
    """Map a transport exception onto the contract's fetch errors."""
    if isinstance(error, ConverterError):
        return error
    if isinstance(error, FileNotFoundError):
        return SourceNotFound(f"nothing at {uri}: check --source (bucket, path and version)")
    if isinstance(error, PermissionError) or type(error).__name__ in AUTH_ERROR_NAMES:
        return SourceAuthFailed(
            f"access to {uri} was refused or no credentials were found "
            f"({type(error).__name__}: {error}): check spec.source.secretRef "
            "(AWS_*, GOOGLE_APPLICATION_CREDENTIALS, TRT_CONVERT_HTTP_BEARER_TOKEN)"
        )
    status = getattr(error, "status", None)
    if status is None:
        status = getattr(error, "code", None)  # gcsfs's HttpError
    if isinstance(status, int) and status in HTTP_AUTH_STATUSES:
        return SourceAuthFailed(
            f"{uri} answered HTTP {status}: set TRT_CONVERT_HTTP_BEARER_TOKEN via the secret"
        )
    if status == 404:
        return SourceNotFound(f"nothing at {uri} (HTTP 404): check --source")
    return FetchFailed(
        f"fetching {uri} failed after {FETCH_ATTEMPTS} attempts "
        f"({type(error).__name__}: {error}): check the network/endpoint and retry"
    )


def _is_permanent(error: BaseException) -> bool:
    translated = translate_error(error, "")
    return not isinstance(translated, FetchFailed)


def with_retries(
    action: Callable[[], Any], uri: str, sleep: Callable[[float], None] = time.sleep
) -> Any:
    """Run `action`; retry transient errors with exponential backoff, translate the rest."""
    for attempt in range(1, FETCH_ATTEMPTS + 1):
        try:
            return action()
        except (SourceTooLarge, KeyboardInterrupt):
            raise
        except Exception as error:
            if _is_permanent(error) or attempt == FETCH_ATTEMPTS:
                raise translate_error(error, uri) from error
            delay = RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1)
            LOG.warning(
                "fetch attempt %d of %s failed (%s); retrying in %.0fs", attempt, uri, error, delay
            )
            sleep(delay)
    raise AssertionError("unreachable")


class ByteBudget:
    """Counts copied bytes against --max-source-bytes and logs progress."""

    def __init__(self, limit: int, uri: str) -> None:
        self.limit = limit
        self.uri = uri
        self.copied = 0
        self.started = time.monotonic()
        self._last_log = self.started

    def take(self, count: int) -> None:
        self.copied += count
        if self.copied > self.limit:
            raise too_large(self.uri, self.copied, self.limit)
        now = time.monotonic()
        if now - self._last_log >= PROGRESS_EVERY_SECONDS:
            self._last_log = now
            rate = self.copied / max(now - self.started, 1e-6) / 1e6
            LOG.info("fetching %s: %.1f MB so far (%.1f MB/s)", self.uri, self.copied / 1e6, rate)


def too_large(uri: str, size: int, limit: int) -> SourceTooLarge:
    return SourceTooLarge(
        f"{uri} is over {size} bytes, more than --max-source-bytes={limit}: "
        "raise the limit or use a smaller model"
    )


def copy_stream(source: BinaryIO, target: Path, budget: ByteBudget, digest: Any = None) -> None:
    """Copy in chunks under `budget`; `digest` (a hashlib object) sees every chunk."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        while chunk := source.read(CHUNK_BYTES):
            budget.take(len(chunk))
            if digest is not None:
                digest.update(chunk)
            out.write(chunk)


def download_file(
    fs: Any,
    path: str,
    target: Path,
    budget: ByteBudget,
    *,
    sha256: bool = False,
    **open_kwargs: Any,
) -> str | None:
    """Copy one file of `fs` to `target` (retried by with_retries); with `sha256`, its
    digest (hex) computed from the bytes as they arrive, so nobody reads the file again."""
    start = budget.copied

    def attempt() -> str | None:
        budget.copied = start  # a retried file is counted once
        digest = hashlib.sha256() if sha256 else None
        with fs.open(path, "rb", **open_kwargs) as source:
            copy_stream(source, target, budget, digest)
        return None if digest is None else digest.hexdigest()

    return with_retries(attempt, budget.uri)  # type: ignore[no-any-return]


def _download_tree(fs: Any, root: str, target: Path, budget: ByteBudget) -> None:
    files = with_retries(lambda: fs.find(root, detail=True), budget.uri)
    total = sum(int(info.get("size") or 0) for info in files.values())
    if total > budget.limit:
        raise too_large(budget.uri, total, budget.limit)
    LOG.info("fetching %d files, %d bytes, from %s", len(files), total, budget.uri)
    root_path = PurePosixPath(root.rstrip("/"))
    for name in sorted(files):
        relative = PurePosixPath(name).relative_to(root_path)
        if ".." in relative.parts:
            raise FetchFailed(f"unexpected object name {name!r} under {root}")
        download_file(fs, name, target.joinpath(*relative.parts), budget)


def fetch_source(uri: str, work_dir: Path, max_bytes: int) -> Path:
    """Make the source available locally and return the directory holding the model.

    A local directory is used in place (read-only); archives are extracted into
    `work_dir`; remote directories are downloaded into `work_dir`.
    """
    started = time.monotonic()
    local = local_path(uri)
    if local is not None:
        result = _fetch_local(local, uri, work_dir, max_bytes)
    else:
        result = _fetch_remote(uri, work_dir, max_bytes)
    LOG.info("source %s ready at %s in %.1fs", uri, result, time.monotonic() - started)
    return result


def _fetch_local(path: Path, uri: str, work_dir: Path, max_bytes: int) -> Path:
    if path.is_dir():
        return path
    if not path.exists():
        raise SourceNotFound(f"nothing at {uri}: check --source (for pvc:// the mount path)")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise too_large(uri, size, max_bytes)
        archive = is_archive(path)
    except PermissionError as error:
        raise SourceAuthFailed(f"cannot read {uri}: {error}") from error
    if not archive:
        raise_not_archive(uri)
    return extract_archive(path, work_dir / "extracted", max_bytes)


def raise_not_archive(uri: str) -> NoReturn:
    raise NotASavedModel(
        f"{uri} is a file but not a .tar.gz/.tgz/.tar/.zip archive: "
        "point --source at a SavedModel directory or an archive of one"
    )


def open_filesystem(
    uri: str,
    scheme: str,
    environ: Mapping[str, str] | None = None,
    *,
    writable: bool = False,
    secret: str | None = None,
) -> tuple[Any, str]:
    """The fsspec filesystem for a remote URI and the path in it, with the libraries' own
    retries off (with_retries is the only loop) and credentials checked up front for gs://.

    The one place that opens S3, GCS and http(s) (fetch, the cache key's listings and the
    cache's store). `environ` replaces os.environ as the credentials' source (the cache's
    own secret files); `writable` asks GCS for read-write access; `secret` names where
    the credentials come from in error messages.
    """
    import fsspec

    if scheme in {"gs", "gcs"}:
        from trtserve_converter.gcs import SOURCE_SECRET, gcs_filesystem

        token = storage_options(scheme, environ).get("token")
        fs = with_retries(
            lambda: gcs_filesystem(
                token,
                CONNECT_TIMEOUT_SECONDS,
                READ_TIMEOUT_SECONDS,
                writable=writable,
                secret=secret or SOURCE_SECRET,
            ),
            uri,
        )
        return fs, fs._strip_protocol(uri)
    try:
        fs, path = fsspec.core.url_to_fs(uri, **storage_options(scheme, environ))
    except Exception as error:
        raise translate_error(error, uri) from error
    if scheme == "s3":
        fs.retries = 1  # s3fs's own retry loop (5 attempts by default), per instance
    return fs, path


def _fetch_remote(uri: str, work_dir: Path, max_bytes: int) -> Path:
    scheme = scheme_of(uri)
    if scheme not in REMOTE_SCHEMES:
        raise InvalidArguments(
            f"unsupported source scheme {scheme!r} in {uri}: use s3://, gs://, http(s)://, "
            "file:// or a local path"
        )
    fs, path = open_filesystem(uri, scheme)
    budget = ByteBudget(max_bytes, uri)
    if scheme in {"http", "https"}:
        # An http(s) source is always one archive; stream it (no Range requests needed).
        target = work_dir / "download" / (PurePosixPath(urlsplit(uri).path).name or "source")
        download_file(fs, path, target, budget, **HTTP_STREAM_OPEN)
    else:
        is_dir = with_retries(lambda: fs.isdir(path), uri)
        if is_dir:
            target = work_dir / "source"
            _download_tree(fs, path, target, budget)
            return target
        info = with_retries(lambda: fs.info(path), uri)
        size = int(info.get("size") or 0)
        if size > max_bytes:
            raise too_large(uri, size, max_bytes)
        target = work_dir / "download" / (PurePosixPath(path).name or "source")
        download_file(fs, path, target, budget)
    LOG.info("downloaded %d bytes from %s", budget.copied, uri)
    if not is_archive(target):
        raise_not_archive(uri)
    return extract_archive(target, work_dir / "extracted", max_bytes)


def fetch_file(uri: str, work_dir: Path, max_bytes: int) -> Path:
    """A single file (calibration data) available locally; not extracted."""
    local = local_path(uri)
    if local is not None:
        if not local.is_file():
            raise SourceNotFound(f"no file at {uri}")
        return local
    scheme = scheme_of(uri)
    fs, path = open_filesystem(uri, scheme)
    target = work_dir / "files" / (PurePosixPath(urlsplit(uri).path).name or "data")
    open_kwargs = HTTP_STREAM_OPEN if scheme in {"http", "https"} else {}
    download_file(fs, path, target, ByteBudget(max_bytes, uri), **open_kwargs)
    return target
