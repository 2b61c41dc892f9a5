"""The NATIVE copy and the atomic publish, on plain directories."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from trtserve_converter.errors import OutputWriteFailed
from trtserve_converter.layout import copy_tree, create_staging, publish


def test_copy_tree_copies_contents_writable_and_follows_links(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "variables").mkdir(parents=True)
    (source / "saved_model.pb").write_bytes(b"pb")
    (source / "variables" / "v.index").write_bytes(b"idx")
    (source / "variables" / "v.index").chmod(stat.S_IRUSR)
    shared = tmp_path / "shared-assets"
    shared.mkdir()
    (shared / "vocab.txt").write_text("a\nb\n")
    os.symlink(shared, source / "assets")
    os.symlink(source, source / "assets" / "loop")  # a loop must not hang the copy
    target = tmp_path / "out"
    copied = copy_tree(source, target)
    assert (target / "saved_model.pb").read_bytes() == b"pb"
    assert (target / "assets" / "vocab.txt").read_text() == "a\nb\n"
    assert not (target / "assets").is_symlink()
    assert os.access(target / "variables" / "v.index", os.W_OK)
    assert copied >= len(b"pb") + len(b"idx") + len("a\nb\n")


def test_publish_is_a_rename_and_refuses_to_leave_half_models(tmp_path: Path) -> None:
    staging = create_staging(tmp_path, "m", 3)
    assert staging.parent == tmp_path / "m"
    assert staging.name.startswith(".")  # TF Serving ignores non-numeric directories
    staging.mkdir()
    (staging / "saved_model.pb").write_bytes(b"new")
    publish(staging, tmp_path / "m" / "3")
    assert (tmp_path / "m" / "3" / "saved_model.pb").read_bytes() == b"new"
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["3"]
    with pytest.raises(OutputWriteFailed):
        publish(tmp_path / "m" / ".missing", tmp_path / "m" / "4")
