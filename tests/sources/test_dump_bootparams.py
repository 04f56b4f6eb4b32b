"""The memory map an x86 EFI stub left in boot_params, found in a dump (DumpEvidence.
boot_memory_map): through the block reader with the file's data extents (memory bounded, holes
skipped), at any byte offset, the first of several copies, never a decoy, and in the file opened
even when another file has taken its path."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from efihandoff.sources import dump as dump_mod
from efihandoff.sources.dump import read_dump, write_raw_image
from efihandoff.sources.scenario import load_scenario

EXAMPLE = Path(__file__).parents[2] / "examples" / "laptop.toml"
SIZE = 0x480000000  # 18 GiB, sparse: the example's RAM reaches past 4 GiB
INFO = 0x9E1C0  # efi_info of a boot_params page at 0x9e000 (offset 0x1c0)
MAP_AT = 0x9A000


@pytest.fixture(scope="module")
def laptop():
    return load_scenario(EXAMPLE)


def _image(tmp_path: Path, machine, info: int = INFO) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "bp.raw"
    write_raw_image(
        machine.memory,
        path,
        size=SIZE,
        boot_params=(info, machine.memory_map, MAP_AT, machine.system_table_address),
    )
    return path


def _efi_info(path: Path, at: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(at)
        return f.read(32)


def test_found_through_the_block_reader(tmp_path, laptop, monkeypatch):
    # The search gets a file descriptor (data extents, block reads: memory bounded, holes of
    # the 18 GiB sparse image skipped), closed with the dump.
    calls = []
    real = dump_mod.find_all

    def spy(mm, fd, needle, start, end):  # type: ignore[no-untyped-def]
        calls.append(fd)
        return real(mm, fd, needle, start, end)

    monkeypatch.setattr(dump_mod, "find_all", spy)
    path = _image(tmp_path, laptop)
    with read_dump(path) as ev:
        found = ev.boot_memory_map()
    assert found is not None and found[1] == INFO
    assert found[0].descriptors == laptop.memory_map.descriptors
    assert calls and all(fd is not None for fd in calls)
    with pytest.raises(OSError):
        os.fstat(calls[0])  # closed again


@pytest.mark.parametrize("shift", [1, 2, 3, 5, 7])
def test_found_at_any_byte_offset(tmp_path, laptop, shift):
    # boot_params is __packed (arch/x86/include/uapi/asm/bootparam.h): no alignment is assumed.
    path = _image(tmp_path, laptop, INFO + shift)
    with read_dump(path) as ev:
        found = ev.boot_memory_map()
    assert found is not None and found[1] == INFO + shift


def test_first_copy_wins_and_decoys_are_skipped(tmp_path, laptop):
    # In a raw dump the first in the file is the lowest address.
    path = _image(tmp_path, laptop)
    info = _efi_info(path, INFO)
    assert info[:4] == b"EL64"
    bad = bytearray(info)
    struct.pack_into("<I", bad, 8, 7)  # efi_memdesc_size 7: not a map
    with open(path, "r+b") as f:
        f.seek(0x2000)
        f.write(bytes(bad))  # lower, but a decoy
        f.seek(0x5003)
        f.write(info)  # lower and valid
        f.seek(0x100000)
        f.write(info)  # higher
    with read_dump(path) as ev:
        found = ev.boot_memory_map()
    assert found is not None and found[1] == 0x5003


def test_searched_when_the_path_is_gone(tmp_path, laptop):
    # The file removed after read_dump: the dump's own descriptor still reads it.
    path = _image(tmp_path, laptop)
    with read_dump(path) as ev:
        path.unlink()
        found = ev.boot_memory_map()
    assert found is not None and found[1] == INFO


def test_a_file_replaced_since_is_not_read(tmp_path, laptop):
    # Another file of the same size now at the path (another inode): the dump's own descriptor
    # is searched, so its efi_info is found and the newcomer's (at another place) is not.
    path = _image(tmp_path, laptop)
    info = _efi_info(path, INFO)
    other = tmp_path / "other.raw"
    with open(other, "wb") as f:
        f.truncate(SIZE)
        f.seek(0x7000)
        f.write(info)
    with read_dump(path) as ev:
        os.replace(other, path)
        found = ev.boot_memory_map()
    assert found is not None and found[1] == INFO
