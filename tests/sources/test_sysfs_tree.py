"""sources.sysfs_tree: the read-only trees a /sys/firmware copy is read from, used directly
(tests/sources/test_sysfs.py reads whole copies through them)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from efihandoff.errors import ParseError
from efihandoff.sources.sysfs_tree import DirTree, TarTree, Unreadable, one_line, rel_join


def _tar(path: Path, members: list[tuple[str, bytes | None, str | None]]) -> Path:
    """A plain tar of (name, file bytes or None for a directory, symlink target)."""
    with tarfile.open(path, "w") as tf:
        for name, data, link in members:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tf.addfile(info)
            elif data is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def test_rel_join_and_one_line():
    assert rel_join("", "sys/firmware", "", "efi") == "sys/firmware/efi"
    assert one_line(ValueError("a\n  b")) == "a b"
    assert one_line(ValueError("")) == "ValueError"


def test_dir_tree_reads_files_lists_dirs_and_follows_links_inside(tmp_path):
    (tmp_path / "efi").mkdir()
    (tmp_path / "efi" / "systab").write_bytes(b"ACPI20=0x7f\n\0\0")
    os.symlink("efi", tmp_path / "alias")
    tree = DirTree(tmp_path)
    assert tree.read("alias/systab", 64) == b"ACPI20=0x7f\n\0\0"  # NUL padding is the reader's
    assert sorted(tree.listdir("") or []) == ["alias", "efi"]
    assert tree.is_dir("alias") and not tree.is_dir("efi/systab")
    assert tree.read("efi/missing", 64) is None


def test_dir_tree_refuses_what_it_must_not_read(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 65)
    (tmp_path / "d").mkdir()
    os.symlink("../../etc/passwd", tmp_path / "out")
    os.symlink("/etc/passwd", tmp_path / "abs")
    tree = DirTree(tmp_path)
    with pytest.raises(Unreadable, match="larger than 64 bytes"):
        tree.read("big", 64)
    with pytest.raises(Unreadable, match="is a directory"):
        tree.read("d", 64)
    with pytest.raises(Unreadable, match="outside the copy"):
        tree.read("out", 64)
    with pytest.raises(Unreadable, match="outside the copy"):
        tree.read("abs", 64)


def test_tar_tree_indexes_members_and_resolves_links(tmp_path):
    p = _tar(
        tmp_path / "c.tar",
        [
            ("fw/efi", None, None),
            ("fw/efi/systab", b"SMBIOS=0x1\n", None),
            ("fw/alias", None, "efi"),
        ],
    )
    tree = TarTree(p)
    assert tree.read("fw/alias/systab", 64) == b"SMBIOS=0x1\n"
    assert tree.listdir("fw") == ["alias", "efi"]
    assert tree.notes == ()
    with pytest.raises(Unreadable, match="is a directory"):
        tree.read("fw/efi", 64)


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([("../x", b"1", None)], "contains '..'"),
        ([("/x", b"1", None)], "absolute path"),
        ([("a/l", None, "../../x")], "links outside the archive"),
        ([("a/l", None, "/etc")], "links to absolute path"),
        ([], "empty archive"),
    ],
)
def test_tar_tree_refuses_a_hostile_archive_whole(tmp_path, members, message):
    with pytest.raises(ParseError, match=message):
        TarTree(_tar(tmp_path / "h.tar", members))


def test_tar_tree_notes_a_missing_end_marker(tmp_path):
    p = _tar(tmp_path / "t.tar", [("a", b"1\n", None)])
    raw = p.read_bytes()
    p.write_bytes(raw[: 512 + 512])  # header and one data block: no two zero blocks after
    tree = TarTree(p)
    assert tree.read("a", 64) == b"1\n"
    assert tree.notes and "end-of-archive marker" in tree.notes[0]
