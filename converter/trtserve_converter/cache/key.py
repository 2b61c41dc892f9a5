"""The converted-model cache's key: sha256 of a canonical JSON of what makes a result valid.

TF-TRT engines are only valid for the GPU product and TensorRT version they were built
with, and TF-TRT stores no such metadata with them, so the key covers everything that
can change the converted model (docs/converter.md, "Converted-model cache"):

- the source's content identity: for object stores the relative path, size and
  ETag/generation of every file of the selected version (from a listing, without
  downloading); for http(s) a strong ETag with Content-Length; otherwise (local
  directories, pvc, http without a strong ETag, object stores without tags) the sha256
  of the SavedModel's files;
- every setting of the run except those that cannot change the result (paths, logging,
  limits, the cache's own flags): signature, precision, TF-TRT parameters, build shapes,
  calibration batches, accuracy settings, warmup records and model name (the warmup
  records name the model), seed. New settings are in the key unless listed in
  NON_KEY_FIELDS: a forgotten field costs a miss, never a wrong hit;
- the calibration data's identity;
- the TensorFlow version, the TensorRT linked and loaded versions, the GPU product and
  compute capability;
- CACHE_FORMAT.
"""

# TensorFlow and the transports are imported lazily: --help, argument errors and a
# TF-less failure path must stay fast and never import TensorFlow.
# ruff: noqa: PLC0415

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from trtserve_converter.config import ConvertConfig
from trtserve_converter.fetch import local_path, scheme_of, with_retries

LOG = logging.getLogger(__name__)

CACHE_FORMAT = 2
"""Bump when the entry layout or what a converted model contains changes.
2: the manifest carries `sourceVersion` (the number a hit serves the model as)."""

NON_KEY_FIELDS = frozenset(
    {
        "source",  # replaced by its content identity
        "calibration_source",  # replaced by its content identity
        "output_base",
        "model_version",  # where the result is written, not what it is
        "timeout_seconds",
        "max_source_bytes",
        "report_path",
        "log_level",
        "log_format",
        "cache_uri",
        "cache_credentials_dir",
        "cache_publish",
        "cache_namespace",
        "cache_signing_key_file",
    }
)
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
MAX_WRAPPER_DEPTH = 3  # as savedmodel.locate_saved_model
IGNORED_ENTRIES = frozenset({"__MACOSX"})
HASH_CHUNK_BYTES = 8 << 20
OBJECT_STORE_SCHEMES = frozenset({"s3", "gs", "gcs"})
HTTP_SCHEMES = frozenset({"http", "https"})


def canonical_json(value: Any) -> str:
    """The one serialization the key is computed over: sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def key_of(inputs: Mapping[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of the key's inputs."""
    return hashlib.sha256(canonical_json(inputs).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Runtime:
    """What this process would build engines with."""

    tensorflow: str | None
    tensorrt_linked: str | None
    tensorrt_loaded: str | None
    gpu: str | None
    compute_capability: str | None


def compute_capability() -> str | None:
    """The first visible GPU's compute capability (`8.0`), None without a GPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
    if not capability:
        return None
    return ".".join(str(part) for part in capability)


def key_inputs(
    config: ConvertConfig,
    source: Mapping[str, Any],
    calibration: Mapping[str, Any] | None,
    runtime: Runtime,
) -> dict[str, Any]:
    """Everything the key covers, as stored (readable) in the entry's manifest."""
    settings = config.model_dump(mode="json", exclude=set(NON_KEY_FIELDS))
    gpu = None
    if runtime.gpu is not None or runtime.compute_capability is not None:
        gpu = {"product": runtime.gpu, "computeCapability": runtime.compute_capability}
    return {
        "format": CACHE_FORMAT,
        "source": dict(source),
        "calibration": dict(calibration) if calibration is not None else None,
        "settings": settings,
        "tensorflow": runtime.tensorflow,
        "tensorrt": (
            {"linked": runtime.tensorrt_linked, "loaded": runtime.tensorrt_loaded}
            if runtime.tensorrt_linked or runtime.tensorrt_loaded
            else None
        ),
        "gpu": gpu,
    }


# --- content identity: sha256 of local files -----------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def local_files(directory: Path) -> list[tuple[str, Path]]:
    """(relative POSIX path, path) of every regular file below `directory`, sorted.

    Links are followed, as layout.copy_tree does when it copies the model.
    """
    found = []
    for root, _dirs, files in os.walk(directory, followlinks=True):
        for name in files:
            path = Path(root) / name
            if path.is_file():
                found.append((path.relative_to(directory).as_posix(), path))
    return sorted(found)


def files_identity(directory: Path) -> dict[str, Any]:
    """Content identity of a SavedModel directory: path, size and sha256 of each file.

    A numbered version directory's name is part of it: the version is what is served.
    """
    files = [[rel, path.stat().st_size, sha256_file(path)] for rel, path in local_files(directory)]
    version = directory.name if directory.name.isdigit() else None
    return {"kind": "files", "version": version, "files": files}


def file_identity(path: Path) -> dict[str, Any]:
    """Content identity of one local file (calibration data)."""
    return {"kind": "file", "size": path.stat().st_size, "sha256": sha256_file(path)}


# --- metadata identity: listings and HEAD requests, no download -----------------------


def _tag(info: Mapping[str, Any]) -> str | None:
    """An object's version tag: S3 ETag, GCS generation."""
    for name in ("ETag", "etag", "generation"):
        value = info.get(name)
        if value not in (None, ""):
            return str(value)
    return None


def _location(uri: str) -> str:
    """The URI without query or fragment (presigned URLs change their query)."""
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme.lower(), parts.netloc, parts.path.rstrip("/"), "", ""))


def _visible_children(directories: set[str], parent: str) -> list[str]:
    prefix = f"{parent}/" if parent else ""
    children = set()
    for directory in directories:
        if directory.startswith(prefix) and directory != parent:
            name = directory[len(prefix) :].split("/", 1)[0]
            if name and not name.startswith(".") and name not in IGNORED_ENTRIES:
                children.add(f"{prefix}{name}")
    return sorted(children)


def select_model_prefix(paths: Iterable[str], source_version: int | None) -> str | None:
    """Where savedmodel.locate_saved_model would find the SavedModel in a listing.

    The same rules on relative file paths instead of a directory: the root itself, a
    numbered version directory (the highest, or `source_version`), below up to three
    single wrapper directories. None when it cannot tell (then the whole listing counts).
    """
    files = set(paths)
    directories = {""}
    for path in files:
        parts = PurePosixPath(path).parts[:-1]
        directories.update("/".join(parts[: index + 1]) for index in range(len(parts)))

    def has_model(directory: str) -> bool:
        prefix = f"{directory}/" if directory else ""
        return any(f"{prefix}{name}" in files for name in SAVED_MODEL_FILES)

    directory = ""
    for _ in range(MAX_WRAPPER_DEPTH + 1):
        if has_model(directory):
            return directory
        children = _visible_children(directories, directory)
        versions = {
            int(PurePosixPath(child).name): child
            for child in children
            if PurePosixPath(child).name.isdigit() and has_model(child)
        }
        if versions:
            chosen = max(versions) if source_version is None else source_version
            return versions.get(chosen)
        if len(children) != 1:
            return None
        directory = children[0]
    return None


def _listing_identity(uri: str, root: str, listing: Mapping[str, Any], version: int | None) -> Any:
    root_path = PurePosixPath(root.rstrip("/"))
    entries = {}
    for name, info in listing.items():
        if info.get("type", "file") != "file":
            continue
        relative = PurePosixPath(name).relative_to(root_path).as_posix()
        entries[relative] = info
    if list(entries) == ["."]:  # the URI is one object: an archive
        info = entries["."]
        tag = _tag(info)
        if tag is None:
            return None
        return {"kind": "object", "location": _location(uri), "size": info.get("size"), "tag": tag}
    prefix = select_model_prefix(entries, version)
    if prefix:
        entries = {
            rel[len(prefix) + 1 :]: info
            for rel, info in entries.items()
            if rel.startswith(f"{prefix}/")
        }
    files = []
    for rel in sorted(entries):
        tag = _tag(entries[rel])
        if tag is None:
            return None
        files.append([rel, int(entries[rel].get("size") or 0), tag])
    if not files:
        return None
    return {
        "kind": "objects",
        "location": _location(uri),
        "selected": prefix if prefix is not None else None,
        "sourceVersion": version if prefix is None else None,
        "files": files,
    }


def metadata_identity(uri: str, source_version: int | None = None) -> dict[str, Any] | None:
    """The source's identity from metadata only, or None when only the content can tell.

    Object stores: a listing (path, size, ETag/generation of every file of the selected
    version). http(s): a HEAD with a strong ETag and a Content-Length. Transport errors
    are the fetch's errors (same transport, credentials and retries as fetch.py).
    """
    scheme = scheme_of(uri)
    if local_path(uri) is not None or scheme not in OBJECT_STORE_SCHEMES | HTTP_SCHEMES:
        return None
    from trtserve_converter.fetch import open_filesystem

    fs, path = open_filesystem(uri, scheme)  # fetch's transport, credentials and retries
    if scheme in HTTP_SCHEMES:
        info = with_retries(lambda: fs.info(path), uri)
        etag = str(info.get("ETag") or "")
        size = info.get("size")
        if not etag or etag.startswith("W/") or not isinstance(size, int):
            LOG.info("cache: %s has no strong ETag and length: its content is hashed", uri)
            return None
        return {"kind": "http", "location": _location(uri), "etag": etag, "size": size}
    listing = with_retries(lambda: fs.find(path, detail=True), uri)
    identity = _listing_identity(uri, path, listing, source_version)
    if identity is None:
        LOG.info("cache: the listing of %s has no version tags: its content is hashed", uri)
    return identity  # type: ignore[no-any-return]


def calibration_identity(uri: str, work_dir: Path, max_bytes: int) -> dict[str, Any]:
    """The calibration data's identity: metadata when it tells, else the file's sha256
    (downloaded once more for that; calibration files are small)."""
    from trtserve_converter.fetch import fetch_file

    local = local_path(uri)
    if local is not None:
        return file_identity(local)
    identity = metadata_identity(uri)
    if identity is None:
        identity = file_identity(fetch_file(uri, work_dir / "cache-identity", max_bytes))
    return identity
