"""Safe extraction of .tar.gz/.tgz/.tar/.zip sources.

Every entry is checked before anything is written: absolute names, `..` components,
links whose target leaves the extraction directory, devices and FIFOs are rejected with
BadArchive, and the total unpacked size is held to --max-source-bytes. Tar extraction
additionally uses Python's `data` filter as a second line of defence.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import stat
import tarfile
import time
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from trtserve_converter.errors import BadArchive, SourceTooLarge

LOG = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
TAR_MAGIC_OFFSET = 257
TAR_MAGIC = b"ustar"
SYMLINK_MODE = 0o120000


def archive_kind(path: Path) -> str | None:
    """'zip', 'tar' or None, from the file's leading bytes (not its name)."""
    with path.open("rb") as handle:
        head = handle.read(TAR_MAGIC_OFFSET + len(TAR_MAGIC))
    if head.startswith(ZIP_MAGICS):
        return "zip"
    if head.startswith((GZIP_MAGIC, BZIP2_MAGIC, XZ_MAGIC)):
        return "tar"
    if head[TAR_MAGIC_OFFSET:].startswith(TAR_MAGIC):
        return "tar"
    return None


def is_archive(path: Path) -> bool:
    return archive_kind(path) is not None


def check_entry_name(name: str) -> PurePosixPath:
    """The entry's relative path, or BadArchive when it is absolute or climbs with `..`."""
    if not name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise BadArchive(
            f"archive entry {name!r} has an absolute path: rebuild the archive with relative paths"
        )
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        raise BadArchive(f"archive entry {name!r} contains '..': rebuild the archive without it")
    return PurePosixPath(*[part for part in parts if part not in ("", ".")] or ["."])


def check_link_target(entry: PurePosixPath, target: str, *, hard: bool) -> None:
    """Reject a link whose target is absolute or resolves outside the archive root.

    Symlink targets are relative to the link's directory, hard link targets to the root.
    """
    if not target or target.startswith("/") or (len(target) > 1 and target[1] == ":"):
        raise BadArchive(f"archive link {entry} -> {target!r} is absolute: links must stay inside")
    base = "" if hard else str(entry.parent)
    resolved = posixpath.normpath(posixpath.join(base, target))
    if resolved == ".." or resolved.startswith("../"):
        raise BadArchive(
            f"archive link {entry} -> {target!r} escapes the extraction directory: remove it"
        )


def extract_archive(path: Path, target: Path, max_bytes: int) -> Path:
    """Extract `path` into the new directory `target` after checking every entry."""
    started = time.monotonic()
    kind = archive_kind(path)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    try:
        if kind == "zip":
            _extract_zip(path, target, max_bytes)
        elif kind == "tar":
            _extract_tar(path, target, max_bytes)
        else:
            raise BadArchive(f"{path.name} is not a tar or zip archive")
    except (BadArchive, SourceTooLarge):
        shutil.rmtree(target, ignore_errors=True)
        raise
    except (
        tarfile.TarError,
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        OSError,
        ValueError,
    ) as error:
        shutil.rmtree(target, ignore_errors=True)
        raise BadArchive(
            f"{path.name} is corrupt or truncated ({type(error).__name__}: {error}): "
            "re-upload the archive"
        ) from error
    LOG.info("extracted %s in %.1fs", path.name, time.monotonic() - started)
    return target


def _too_large(path: Path, total: int, max_bytes: int) -> SourceTooLarge:
    return SourceTooLarge(
        f"{path.name} unpacks to {total} bytes, more than --max-source-bytes={max_bytes}: "
        "raise the limit or use a smaller model"
    )


def _extract_tar(path: Path, target: Path, max_bytes: int) -> None:
    with tarfile.open(path, "r:*") as archive:
        members = archive.getmembers()
        total = 0
        for member in members:
            entry = check_entry_name(member.name)
            if member.issym():
                check_link_target(entry, member.linkname, hard=False)
            elif member.islnk():
                check_link_target(entry, member.linkname, hard=True)
            elif not (member.isreg() or member.isdir()):
                raise BadArchive(
                    f"archive entry {member.name!r} is a device, FIFO or other special file: "
                    "only files, directories and inner links are allowed"
                )
            total += max(member.size, 0)
            if total > max_bytes:
                raise _too_large(path, total, max_bytes)
        try:
            archive.extractall(target, members=members, filter="data")
        except tarfile.FilterError as error:
            raise BadArchive(f"archive entry rejected: {error}") from error


def _extract_zip(path: Path, target: Path, max_bytes: int) -> None:
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        total = sum(info.file_size for info in infos)
        if total > max_bytes:
            raise _too_large(path, total, max_bytes)
        links: list[tuple[PurePosixPath, str]] = []
        for info in infos:
            entry = check_entry_name(info.filename)
            mode = info.external_attr >> 16
            if stat.S_IFMT(mode) == SYMLINK_MODE:
                link_target = archive.read(info).decode("utf-8", errors="replace")
                check_link_target(entry, link_target, hard=False)
                links.append((entry, link_target))
            elif mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise BadArchive(f"archive entry {info.filename!r} is a special file")
        link_names = {entry for entry, _ in links}
        for info in infos:
            entry = check_entry_name(info.filename)
            if entry in link_names:
                continue
            destination = target.joinpath(*entry.parts)
            if info.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, destination.open("wb") as out:
                shutil.copyfileobj(source, out)  # CRC is verified while reading
        for entry, link_target in links:
            destination = target.joinpath(*entry.parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(link_target, destination)
