"""An entry's manifest: what it holds (files, sizes, sha256), the conversion report and
the key's inputs, optionally signed (HMAC-SHA256); checked completely before anything it
names is used, and the downloaded files checked against it."""

# ruff: noqa: PLC0415

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trtserve_converter.cache.key import CACHE_FORMAT, canonical_json, key_of, local_files
from trtserve_converter.cache.store import CacheStoreError, safe_relative

MANIFEST = "manifest.json"
SIGNATURE_ALGORITHM = "HMAC-SHA256"
ENTRY_ID = re.compile(r"^[0-9a-f]{32}$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


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
    from trtserve_converter.cache.key import sha256_file

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
