"""Step 5: the TF Serving layout `<base>/<model>/<version>/`, written atomically.

The model is written into a hidden staging directory next to the version directory
(same parent, so the same file system) and renamed into place only when complete.
TF Serving only loads numeric directories, so a crash leaves nothing it would load.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path

from trtserve_converter.errors import OutputWriteFailed

LOG = logging.getLogger(__name__)

STAGING_PREFIX = ".trt-convert-staging-"
REPLACED_PREFIX = ".trt-convert-replaced-"


def model_dir(output_base: Path, model_name: str) -> Path:
    return output_base / model_name


def version_dir(output_base: Path, model_name: str, version: int) -> Path:
    return model_dir(output_base, model_name) / str(version)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def remove_stale_staging(output_base: Path, model_name: str) -> None:
    """Remove staging leftovers of a crashed earlier run (e.g. a restarted initContainer)."""
    parent = model_dir(output_base, model_name)
    if not parent.is_dir():
        return
    for child in parent.iterdir():
        if child.name.startswith((STAGING_PREFIX, REPLACED_PREFIX)):
            LOG.warning("removing leftover %s of an interrupted run", child)
            _remove(child)


def create_staging(output_base: Path, model_name: str, version: int) -> Path:
    """A fresh, not yet existing staging path next to the version directory."""
    parent = model_dir(output_base, model_name)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputWriteFailed(
            f"cannot create {parent} ({error}): check the output volume and its permissions"
        ) from error
    return parent / f"{STAGING_PREFIX}{version}-{uuid.uuid4().hex[:8]}"


def discard(staging: Path) -> None:
    """Drop a staging directory after a failure (best effort)."""
    try:
        _remove(staging)
    except OSError as error:
        LOG.warning("could not remove %s: %s", staging, error)


def publish(staging: Path, final: Path) -> None:
    """Rename the complete staging directory to the version directory.

    An existing version directory (a re-run) is moved aside first and removed after.
    """
    replaced = None
    try:
        if final.exists():
            replaced = final.with_name(f"{REPLACED_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}")
            LOG.warning("version directory %s exists: replacing it", final)
            os.rename(final, replaced)
        os.rename(staging, final)
    except OSError as error:
        raise OutputWriteFailed(f"cannot move the model into {final} ({error})") from error
    if replaced is not None:
        discard(replaced)


def copy_tree(source: Path, target: Path) -> int:
    """Copy a SavedModel directory's contents; returns the bytes copied.

    Contents only (no permission bits): read-only sources give writable copies. Links
    are followed (the output never points outside itself); a directory reached twice
    through links is copied once, so link loops end.
    """
    copied = 0
    target.mkdir(parents=True)
    visited: set[str] = set()
    for root, dirs, files in os.walk(source, followlinks=True):
        real = os.path.realpath(root)
        if real in visited:
            dirs[:] = []
            continue
        visited.add(real)
        relative = Path(root).relative_to(source)
        for name in dirs:
            (target / relative / name).mkdir(exist_ok=True)
        for name in files:
            shutil.copyfile(Path(root) / name, target / relative / name)
            copied += (target / relative / name).stat().st_size
    return copied
