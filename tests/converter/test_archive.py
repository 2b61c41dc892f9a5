"""Safe extraction: escaping entries are rejected before anything is written."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from trtserve_converter.archive import archive_kind, extract_archive
from trtserve_converter.errors import BadArchive, SourceTooLarge

LIMIT = 1 << 20


def make_tar(path: Path, entries: list[tarfile.TarInfo], data: bytes = b"data") -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for info in entries:
            if info.isreg():
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            else:
                archive.addfile(info)
    return path


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def test_good_tar_is_extracted_with_inner_links(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "ok.tar.gz",
        [
            entry("model/1", tarfile.DIRTYPE),
            entry("model/1/saved_model.pb"),
            entry("model/latest", tarfile.SYMTYPE, "1"),
            entry("model/1/copy.pb", tarfile.LNKTYPE, "model/1/saved_model.pb"),
        ],
    )
    target = extract_archive(archive, tmp_path / "out", LIMIT)
    assert (target / "model/1/saved_model.pb").read_bytes() == b"data"
    assert (target / "model/latest/saved_model.pb").read_bytes() == b"data"
    assert (target / "model/1/copy.pb").read_bytes() == b"data"


@pytest.mark.parametrize(
    ("entries", "fragment"),
    [
        ([entry("../evil.pb")], "'..'"),
        ([entry("model/../../evil.pb")], "'..'"),
        ([entry("/etc/evil.pb")], "absolute"),
        ([entry("model/link", tarfile.SYMTYPE, "../../outside")], "escapes"),
        ([entry("model/link", tarfile.SYMTYPE, "/etc/passwd")], "absolute"),
        ([entry("model/hard", tarfile.LNKTYPE, "../outside")], "escapes"),
        ([entry("model/dev", tarfile.CHRTYPE)], "device"),
        ([entry("model/fifo", tarfile.FIFOTYPE)], "FIFO"),
    ],
)
def test_escaping_tar_entries_are_rejected(
    tmp_path: Path, entries: list[tarfile.TarInfo], fragment: str
) -> None:
    archive = make_tar(tmp_path / "bad.tgz", [entry("model/saved_model.pb"), *entries])
    with pytest.raises(BadArchive, match=fragment):
        extract_archive(archive, tmp_path / "out", LIMIT)
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "evil.pb").exists()


def make_zip(path: Path, files: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


def test_good_zip_is_extracted(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "ok.zip",
        {"m/saved_model.pb": b"pb", "m/variables/v.index": b"i"},
        {"m/l": "variables"},
    )
    target = extract_archive(archive, tmp_path / "out", LIMIT)
    assert (target / "m/saved_model.pb").read_bytes() == b"pb"
    assert (target / "m/l/v.index").read_bytes() == b"i"


@pytest.mark.parametrize(
    ("files", "links", "fragment"),
    [
        ({"../evil.pb": b"x"}, None, "'..'"),
        ({"/abs.pb": b"x"}, None, "absolute"),
        ({"m/saved_model.pb": b"x"}, {"m/l": "../../etc"}, "escapes"),
        ({"m/saved_model.pb": b"x"}, {"m/l": "/etc"}, "absolute"),
    ],
)
def test_escaping_zip_entries_are_rejected(
    tmp_path: Path, files: dict[str, bytes], links: dict[str, str] | None, fragment: str
) -> None:
    archive = make_zip(tmp_path / "bad.zip", files, links)
    with pytest.raises(BadArchive, match=fragment):
        extract_archive(archive, tmp_path / "out", LIMIT)
    assert not (tmp_path / "out").exists()


def test_corrupt_archive_is_bad(tmp_path: Path) -> None:
    good = make_tar(tmp_path / "ok.tar.gz", [entry("m/saved_model.pb")], data=os.urandom(100_000))
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(BadArchive, match="corrupt"):
        extract_archive(truncated, tmp_path / "out", LIMIT)


def test_unpacked_size_is_capped(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "big.tar.gz", [entry("m/a"), entry("m/b")], data=b"0" * 600)
    with pytest.raises(SourceTooLarge, match="max-source-bytes"):
        extract_archive(archive, tmp_path / "out", 1000)
    zipped = make_zip(tmp_path / "big.zip", {"a": b"0" * 600, "b": b"0" * 600})
    with pytest.raises(SourceTooLarge):
        extract_archive(zipped, tmp_path / "out2", 1000)


def test_kind_is_detected_from_content_not_name(tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "model.bin", [entry("a")])
    zipped = make_zip(tmp_path / "model.tgz", {"a": b"x"})
    plain = tmp_path / "saved_model.pb"
    plain.write_bytes(b"\x08\x01" * 200)
    assert (archive_kind(tar), archive_kind(zipped), archive_kind(plain)) == ("tar", "zip", None)
