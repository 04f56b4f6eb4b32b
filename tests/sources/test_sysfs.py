"""sysfs copies: the hand-written fixtures read as directories and as archives in every layout,
values as Linux formats them, Xen dom0 detection, and hostile trees and archives."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from efihandoff.e820 import E820Range, E820Type
from efihandoff.errors import ParseError, SourceError
from efihandoff.paths.linux import esrt_tree as linux_esrt_tree
from efihandoff.sources import sysfs as sysfs_mod
from efihandoff.sources import sysfs_tree
from efihandoff.sources.sysfs import FirmwareMemmapEntry, looks_like_sysfs, read_sysfs
from efihandoff.uefi.esrt import ESRT_GUID
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import MemoryDescriptor

HOSTILE = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sysfs"
NATIVE = FIXTURES / "native-laptop"
DOM0 = FIXTURES / "xen-dom0"

# The native fixture's ESRT, composed field by field from the values in its files (UEFI 2.10
# section 23.4 layout: u32 count, u32 max, u64 version, then 40-byte entries; GUIDs mixed-endian).
ESRT_BYTES = bytes.fromhex(
    "02000000"
    "03000000"
    "0100000000000000"
    # entry0: ddc0ee61-e7f0-4e7d-acc5-c070a398838e, type 1, 65586, 65582, 0xfe, 18472960, 1
    "61eec0ddf0e77d4eacc5c070a398838e"
    "01000000"
    "32000100"
    "2e000100"
    "fe000000"
    "00e01901"
    "01000000"
    # entry1: 671d19d0-d43c-4852-98d9-1ce16f9967e4, type 2, 3090287969, 1, 0x8010, 0, 0
    "d0191d673cd4524898d91ce16f9967e4"
    "02000000"
    "610d32b8"
    "01000000"
    "10800000"
    "00000000"
    "00000000"
)
ACPI20 = Guid.parse("8868e871-e4f1-11d3-bc22-0080c73c8881")
ACPI = Guid.parse("eb9d2d30-2d88-11d3-9a16-0090273fc14d")
SMBIOS3 = Guid.parse("f2fd1544-9794-4a2c-992e-e5bbcf20e394")


def _tar(tmp: Path, src: Path, prefix: str, name: str = "copy.tar.gz") -> Path:
    """An archive of ``src`` with its contents under ``prefix``."""
    out = tmp / name
    mode = "w:gz" if name.endswith(".gz") else "w"
    with tarfile.open(out, mode) as tf:
        tf.add(src, arcname=prefix or ".")
    return out


def _tar_members(tmp: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    out = tmp / "hostile.tar"
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return out


def _file(name: str, data: bytes = b"1\n") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info, None


# --------------------------------------------------------------------------------------------
# the native fixture


def test_native_esrt_values_and_files():
    ev = read_sysfs(NATIVE)
    esrt = ev.esrt
    assert esrt is not None
    assert (esrt.fw_resource_count.value, esrt.fw_resource_count_max.value) == (2, 3)
    assert esrt.fw_resource_version.value == 1
    assert esrt.fw_resource_count.file == "efi/esrt/fw_resource_count"
    assert [e.name for e in esrt.entries] == ["entry0", "entry1"]
    e0 = esrt.entries[0]
    assert e0.fw_class.value == Guid.parse("ddc0ee61-e7f0-4e7d-acc5-c070a398838e")
    assert e0.capsule_flags.value == 0xFE and e0.capsule_flags.text == "0xfe\n"
    assert e0.capsule_flags.file == "efi/esrt/entries/entry0/capsule_flags"
    assert esrt.entries[1].fw_version.value == 3090287969
    assert esrt.to_esrt().build() == ESRT_BYTES


def test_native_esrt_tree_is_what_linux_writes():
    # The files as read must be exactly the tree Linux's esrt_sysfs_init makes from the bytes.
    assert read_sysfs(NATIVE).esrt_tree() == linux_esrt_tree(ESRT_BYTES)


def test_native_tables_runtime_map_and_memmap():
    ev = read_sysfs(NATIVE)
    assert ev.layout == "directory" and ev.efi
    assert ev.systab == {"ACPI20": 0x7A4FF000, "ACPI": 0x7A4FF000, "SMBIOS3": 0x7A3FF000}
    assert ev.config_table.value == 0x7A3FE018
    assert ev.fw_vendor.value == 0x7A3FD000 and ev.runtime.value == 0x7A3FC000
    assert ev.fw_platform_size.value == 64
    assert ev.runtime_map == (
        MemoryDescriptor(5, 0x7A000000, 0x200, 0x800000000000000F, 0xFFFFFFFEFFE00000),
        MemoryDescriptor(6, 0x7A200000, 0x200, 0x800000000000000F, 0xFFFFFFFEFFC00000),
        MemoryDescriptor(11, 0xFED00000, 1, 0x8000000000000001, 0xFFFFFFFEFFBFF000),
    )
    mm = ev.firmware_memmap
    assert len(mm) == 10
    assert mm[4] == FirmwareMemmapEntry(4, 0x7A400000, 0x7A4FFFFF, "ACPI Tables")
    assert mm[5].to_e820() == E820Range(0x7A500000, 0x7A800000, E820Type.NVS)
    assert mm[9].to_e820() == E820Range(0x100000000, 0x480000000, E820Type.RAM)
    assert ev.problems == ()
    assert not ev.is_xen_dom0
    assert "runtime-map" in ev.xen_dom0_evidence[1]


def test_native_to_machine_without_and_with_esrt_address():
    ev = read_sysfs(NATIVE)
    m = ev.to_machine()
    assert [(t.guid, t.table) for t in m.config_tables] == [
        (ACPI20, 0x7A4FF000),
        (ACPI, 0x7A4FF000),
        (SMBIOS3, 0x7A3FF000),
    ]
    assert m.table(ESRT_GUID) is None and m.memory is None
    assert m.config_table_address == 0x7A3FE018
    assert len(m.memory_map) == 3 and m.lookup(0x7A200010).type == 6
    assert any("runtime-map (RUNTIME regions only)" in n for n in m.notes)
    m2 = ev.to_machine(esrt_address=0x71FFF000)
    assert m2.table(ESRT_GUID).table == 0x71FFF000
    assert m2.read(0x71FFF000, len(ESRT_BYTES)) == ESRT_BYTES
    assert m2.read(0x71FFF000 + len(ESRT_BYTES), 1) is None  # the rest is unknown


def test_memmap_type_strings():
    # Linux arch/x86/kernel/e820.c e820_type_to_string.
    assert FirmwareMemmapEntry(0, 0, 0xFFF, "Persistent Memory (legacy)").e820_type == 12
    assert FirmwareMemmapEntry(0, 0, 0xFFF, "Persistent Memory").e820_type == 7
    assert FirmwareMemmapEntry(0, 0, 0xFFF, "Soft Reserved").e820_type == 0xEFFFFFFF
    assert FirmwareMemmapEntry(0, 0, 0xFFF, "Unknown E820 type").to_e820() is None


# --------------------------------------------------------------------------------------------
# the Xen dom0 fixture


@pytest.mark.parametrize("sub", ["", "sys/firmware"])
def test_dom0_fixture(sub):
    ev = read_sysfs(DOM0 / sub)
    assert ev.efi_files == ("config_table", "fw_platform_size", "systab")
    assert ev.runtime_map is None and ev.esrt is None
    assert ev.hypervisor_type == "xen" and ev.hypervisor_version == "4.17.3"
    assert ev.xen_capabilities == "control_d"
    assert ev.xen_dom0_evidence == (True, "proc/xen/capabilities contains control_d")
    assert ev.kernel_log.startswith(b"[    0.000000] Linux version 6.6.30")
    assert [m.type for m in ev.firmware_memmap] == ["System RAM", "System RAM", "ACPI Tables"]
    m = ev.to_machine()
    assert m.memory_map is None and m.memory is None
    assert {t.guid for t in m.config_tables} == {ACPI20, ACPI, SMBIOS3}


def test_dom0_heuristic_without_hypervisor_files(tmp_path):
    fw = tmp_path / "fw"
    shutil.copytree(DOM0 / "sys" / "firmware", fw)
    ev = read_sysfs(fw)
    assert ev.hypervisor_type is None and ev.xen_capabilities is None
    dom0, why = ev.xen_dom0_evidence
    assert dom0 and "heuristic" in why
    (fw / "efi" / "fw_vendor").write_text("0x7a3fd000\n")  # hidden under EFI_PARAVIRT
    assert not read_sysfs(fw).is_xen_dom0


def test_domu_and_other_hypervisor(tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(DOM0, root)
    (root / "proc/xen/capabilities").write_text("\n")
    assert read_sysfs(root).xen_dom0_evidence[0] is False
    (root / "proc/xen/capabilities").unlink()
    (root / "sys/hypervisor/type").write_text("kvm\n")
    assert read_sysfs(root).xen_dom0_evidence == (False, "sys/hypervisor/type is 'kvm'")


# --------------------------------------------------------------------------------------------
# archives and layouts


def _summary(ev):
    esrt = ev.esrt.to_esrt() if ev.esrt else None
    return (
        ev.systab,
        ev.config_table.value,
        ev.runtime_map,
        ev.firmware_memmap,
        esrt,
        ev.esrt_tree(),
        ev.is_xen_dom0,
        ev.hypervisor_version,
    )


@pytest.mark.parametrize("name", ["copy.tar", "copy.tar.gz"])
@pytest.mark.parametrize("prefix", ["sys/firmware", "firmware", "", "wrapper/sys/firmware"])
def test_native_archives_every_layout(tmp_path, name, prefix):
    ev = read_sysfs(_tar(tmp_path, NATIVE, prefix, name))
    assert ev.layout == "tar"
    assert _summary(ev) == _summary(read_sysfs(NATIVE))


def test_dom0_archive_keeps_hypervisor_proc_and_log(tmp_path):
    ev = read_sysfs(_tar(tmp_path, DOM0, ""))
    assert _summary(ev) == _summary(read_sysfs(DOM0))
    assert ev.kernel_log == (DOM0 / "dmesg.txt").read_bytes()


def test_gnu_tar_nul_padding_is_ignored(tmp_path):
    # GNU tar pads a sysfs file that shrank below its reported 4096 bytes with NULs.
    fw = tmp_path / "firmware"
    shutil.copytree(NATIVE, fw)
    (fw / "efi/esrt/fw_resource_count").write_bytes(b"2\n" + bytes(4094))
    ev = read_sysfs(_tar(tmp_path, fw, "sys/firmware"))
    assert ev.esrt.fw_resource_count.value == 2
    assert ev.esrt_tree()["efi/esrt/fw_resource_count"] == "2\n"


def test_fwupd_style_tree_with_symlinked_entry(tmp_path):
    # fwupd's uefi-capsule test tree: no top-level files, entry2 = zero GUID + links to entry1.
    fw = tmp_path / "fw"
    shutil.copytree(NATIVE / "efi/esrt/entries", fw / "efi/esrt/entries")
    e2 = fw / "efi/esrt/entries/entry2"
    e2.mkdir()
    (e2 / "fw_class").write_text("00000000-0000-0000-0000-000000000000\n")
    for f in (
        "fw_type",
        "fw_version",
        "lowest_supported_fw_version",
        "capsule_flags",
        "last_attempt_version",
        "last_attempt_status",
    ):
        os.symlink(f"../entry1/{f}", e2 / f)
    for src in (fw, _tar(tmp_path, fw, "")):
        ev = read_sysfs(src)
        assert ev.esrt.fw_resource_count.value is None
        assert ev.esrt.fw_resource_count.problem is None  # plainly missing
        assert ev.esrt.to_esrt() is None  # header unknown
        entry2 = ev.esrt.entries[2].to_entry()
        assert entry2.fw_class.is_zero and entry2.fw_version == 3090287969
        assert ev.esrt_tree()["efi/esrt/entries/entry2/fw_version"] == "3090287969\n"


def test_entries_sorted_numerically(tmp_path):
    fw = tmp_path / "fw"
    for i in (10, 2, 1):
        d = fw / f"efi/esrt/entries/entry{i}"
        d.mkdir(parents=True)
        (d / "fw_type").write_text(f"{i}\n")
    ev = read_sysfs(fw)
    assert [e.name for e in ev.esrt.entries] == ["entry1", "entry2", "entry10"]


# --------------------------------------------------------------------------------------------
# missing and bad values


def test_missing_and_unparsable_values(tmp_path):
    fw = tmp_path / "firmware"
    shutil.copytree(NATIVE, fw)
    (fw / "efi/esrt/entries/entry0/fw_version").unlink()
    (fw / "efi/esrt/entries/entry1/fw_type").write_text("two\n")
    (fw / "efi/esrt/entries/entry1/fw_class").write_text("not-a-guid\n")
    (fw / "efi/esrt/fw_resource_count").write_text("4294967296\n")  # does not fit %u
    (fw / "efi/systab").write_text("ACPI20=0x7a4ff000\ngarbage\nHCDP=0x1000\n")
    shutil.rmtree(fw / "efi/runtime-map/1")
    (fw / "efi/runtime-map/2/num_pages").unlink()
    (fw / "memmap/3/end").write_text("0x1\n")  # below its start
    ev = read_sysfs(fw)
    e0, e1 = ev.esrt.entries
    assert e0.fw_version.value is None and e0.fw_version.problem is None and not e0.complete
    assert e1.fw_type.value is None and e1.fw_type.text == "two\n" and e1.fw_type.problem
    assert e1.fw_class.value is None and "not a GUID" in e1.fw_class.problem
    assert ev.esrt.fw_resource_count.value is None
    assert ev.esrt.to_esrt() is None
    assert ev.systab == {"ACPI20": 0x7A4FF000, "HCDP": 0x1000}
    assert [d.type for d in ev.runtime_map] == [5]  # 1 removed, 2 incomplete
    assert [m.index for m in ev.firmware_memmap] == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    text = "\n".join(ev.problems)
    for needle in ("garbage", "HCDP", "runtime-map/2", "memmap/3", "fw_type", "32 bits"):
        assert needle in text
    # The ESRT cannot be placed when incomplete.
    m = ev.to_machine(esrt_address=0x1000)
    assert m.memory is None and m.table(ESRT_GUID).table == 0x1000


def test_efi_less_tree(tmp_path):
    fw = tmp_path / "firmware"
    shutil.copytree(NATIVE / "memmap", fw / "memmap")
    ev = read_sysfs(fw)
    assert not ev.efi and ev.esrt is None and ev.systab == {}
    assert len(ev.firmware_memmap) == 10
    assert ev.to_machine().config_tables is None
    assert ev.xen_dom0_evidence == (False, "no efi/ directory")


def test_looks_like_sysfs(tmp_path):
    assert looks_like_sysfs(NATIVE) and looks_like_sysfs(DOM0)
    assert looks_like_sysfs(_tar(tmp_path, NATIVE, "sys/firmware"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").write_bytes(b"IBI SYST" * 100)
    assert not looks_like_sysfs(tmp_path / "empty") and not looks_like_sysfs(tmp_path / "junk")


def test_not_a_copy(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(ParseError, match="no copy of /sys/firmware"):
        read_sysfs(tmp_path / "x")
    with pytest.raises(SourceError):
        read_sysfs(tmp_path / "missing.tar")


@HOSTILE
@given(
    content=st.binary(max_size=200),
    name=st.sampled_from(
        [
            "efi/esrt/fw_resource_count",
            "efi/systab",
            "efi/runtime-map/0/type",
            "memmap/0/type",
            "efi/esrt/entries/entry0/fw_class",
            "efi/config_table",
        ]
    ),
)
def test_any_file_content_reads(tmp_path, content, name):
    fw = tmp_path / "firmware"  # one tree for every example: only the file changes
    for d in ("efi/esrt/entries/entry0", "memmap/0", "efi/runtime-map/0"):
        (fw / d).mkdir(parents=True, exist_ok=True)
    (fw / name).write_bytes(content)
    read_sysfs(fw)  # a result, whatever the bytes


# --------------------------------------------------------------------------------------------
# hostile archives and trees


@HOSTILE
@given(data=st.binary(min_size=0, max_size=4096))
def test_random_bytes_as_archive(tmp_path, data):
    p = tmp_path / "x.tar.gz"
    p.write_bytes(data)
    with contextlib.suppress(ParseError):
        read_sysfs(p)


def test_random_bytes_refused(tmp_path):
    p = tmp_path / "junk.tar"
    p.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(ParseError, match="not a tar archive"):
        read_sysfs(p)


@pytest.mark.parametrize(
    ("member", "needle"),
    [
        (_file("sys/firmware/efi/../../../x"), "'sys/firmware/efi/../../../x' contains '..'"),
        (_file("/etc/passwd"), "'/etc/passwd' has an absolute path"),
        (_file("../x"), "'../x' contains '..'"),
        (_special("sys/firmware/efi/systab", tarfile.SYMTYPE, "/etc/passwd"), "absolute path"),
        (_special("sys/firmware/efi/systab", tarfile.SYMTYPE, "../../../../etc/x"), "outside"),
        (_special("sys/firmware/efi/systab", tarfile.LNKTYPE, "../etc/passwd"), "outside"),
        (_special("sys/firmware/efi/systab", tarfile.CHRTYPE), "device, FIFO"),
        (_special("sys/firmware/efi/systab", tarfile.BLKTYPE), "device, FIFO"),
        (_special("sys/firmware/efi/systab", tarfile.FIFOTYPE), "device, FIFO"),
    ],
)
def test_hostile_members_refused_by_name(tmp_path, member, needle):
    p = _tar_members(tmp_path, [_file("sys/firmware/efi/fw_platform_size", b"64\n"), member])
    with pytest.raises(ParseError) as exc:
        read_sysfs(p)
    assert needle in str(exc.value)


def test_huge_claimed_size(tmp_path):
    info = tarfile.TarInfo("sys/firmware/efi/systab")
    info.size = 1 << 40
    p = tmp_path / "huge.tar"
    p.write_bytes(info.tobuf(format=tarfile.GNU_FORMAT) + b"ACPI20=0x1\n")
    with pytest.raises(ParseError, match="claims 1099511627776 bytes"):
        read_sysfs(p)


def test_truncated_archive(tmp_path):
    plain = _tar(tmp_path, NATIVE, "sys/firmware", "copy.tar")
    with tarfile.open(plain) as tf:
        members = tf.getmembers()
    whole = plain.read_bytes()
    cut_in_data = tmp_path / "data.tar"
    cut_in_data.write_bytes(whole[: members[-1].offset_data + 1])
    with pytest.raises(ParseError, match="truncated"):
        read_sysfs(cut_in_data)
    # Cut at a header: tarfile would stop quietly; the missing end marker is reported.
    cut_at_header = tmp_path / "header.tar"
    cut_at_header.write_bytes(whole[: members[len(members) // 2].offset])
    ev = read_sysfs(cut_at_header)
    assert any("end-of-archive marker" in p for p in ev.problems)
    assert not any("end-of-archive" in p for p in read_sysfs(plain).problems)
    gz = _tar(tmp_path, NATIVE, "sys/firmware", "copy.tar.gz").read_bytes()
    for cut in (10, len(gz) // 3, len(gz) // 2):
        p = tmp_path / f"cut{cut}.tar.gz"
        p.write_bytes(gz[:cut])
        with pytest.raises(ParseError):
            read_sysfs(p)


def test_member_count_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(sysfs_tree, "MAX_MEMBERS", 5)
    with pytest.raises(ParseError, match="more than 5 archive members"):
        read_sysfs(_tar(tmp_path, NATIVE, "sys/firmware"))


def test_oversized_value_file_is_a_problem_not_a_crash(tmp_path):
    p = _tar_members(
        tmp_path,
        [
            _file("sys/firmware/efi/systab", b"A" * (sysfs_mod.MAX_VALUE_BYTES + 1)),
            _file("sys/firmware/efi/fw_platform_size", b"64\n"),
        ],
    )
    ev = read_sysfs(p)
    assert ev.systab == {} and ev.fw_platform_size.value == 64
    assert any("larger than" in x for x in ev.problems)


def test_archive_link_loop_is_bounded(tmp_path):
    p = _tar_members(
        tmp_path,
        [
            _file("sys/firmware/efi/fw_platform_size", b"64\n"),
            _special("sys/firmware/efi/a", tarfile.SYMTYPE, "b"),
            _special("sys/firmware/efi/b", tarfile.SYMTYPE, "a"),
            _special("sys/firmware/efi/systab", tarfile.SYMTYPE, "a"),
            _special("sys/firmware/efi/esrt", tarfile.SYMTYPE, "esrt"),
        ],
    )
    ev = read_sysfs(p)
    assert ev.systab == {} and ev.esrt is None
    assert any("loop" in x for x in ev.problems)


def test_directory_symlink_loops_are_bounded(tmp_path):
    fw = tmp_path / "copy" / "firmware"
    shutil.copytree(NATIVE, fw)
    esrt = fw / "efi/esrt"
    os.symlink("entry_loop", esrt / "entries/entry_loop")  # a link to itself
    os.symlink("b", esrt / "entries/a")
    os.symlink("a", esrt / "entries/b")
    (esrt / "fw_resource_version").unlink()
    os.symlink("fw_resource_version", esrt / "fw_resource_version")
    os.symlink(".", esrt / "entries/entry0/self")  # a directory cycle
    os.symlink("../../../../../../../../etc", fw / "efi/runtime-map/9")
    os.symlink("/etc/passwd", fw / "efi/systab.bak")
    (fw / "efi/systab").unlink()
    os.symlink("/etc/hostname", fw / "efi/systab")
    ev = read_sysfs(fw)
    assert ev.esrt.fw_resource_version.value is None
    assert "symlinks (a loop?)" in ev.esrt.fw_resource_version.problem
    assert [e.name for e in ev.esrt.entries] == ["entry0", "entry1"]  # links to nowhere skipped
    assert ev.esrt.entries[0].complete
    assert len(ev.runtime_map) == 3  # the escaping link is not followed
    assert ev.systab == {}
    assert any("points outside the copy" in x for x in ev.problems)


def test_fifo_in_directory_copy_does_not_block(tmp_path):
    fw = tmp_path / "firmware"
    shutil.copytree(NATIVE, fw)
    (fw / "efi/systab").unlink()
    os.mkfifo(fw / "efi/systab")
    ev = read_sysfs(fw)
    assert ev.systab == {}
    assert any("not a regular file" in x for x in ev.problems)


@pytest.mark.parametrize("how", ["xz", "bz2"])
def test_other_compressions_are_the_readers_own_error(tmp_path, how):
    # Issue 15: a corrupt xz-compressed tar escaped as LZMAError; a valid one was read though
    # README names .tar and .tar.gz only. Both are now the reader's ParseError at offset 0.
    import bz2
    import lzma

    plain = _tar(tmp_path, NATIVE, "", "copy.tar").read_bytes()
    packed = lzma.compress(plain) if how == "xz" else bz2.compress(plain)
    valid = tmp_path / f"copy.tar.{how}"
    valid.write_bytes(packed)
    corrupt = tmp_path / f"corrupt.tar.{how}"
    corrupt.write_bytes(packed[:40] + bytes(64) + packed[104:])
    for p in (valid, corrupt):
        with pytest.raises(ParseError, match=r"\.tar and \.tar\.gz") as info:
            read_sysfs(p)
        assert info.value.offset == 0
    assert looks_like_sysfs(corrupt) is False


def test_corrupt_gzip_tar_is_the_readers_own_error(tmp_path):
    import gzip

    packed = gzip.compress(_tar(tmp_path, NATIVE, "", "copy.tar").read_bytes())
    p = tmp_path / "corrupt.tar.gz"
    p.write_bytes(packed[:30] + b"\xff" * 40 + packed[70:])
    with pytest.raises(ParseError):
        read_sysfs(p)


def test_runtime_map_in_linux_top_down_order_is_not_a_firmware_finding(tmp_path: Path) -> None:
    # x86 efi_map_regions walks the map top-down (efi_map_next_entry_reverse): runtime-map/0 is
    # the highest region. That order is Linux's, not the firmware's: no memmap.unsorted.
    from efihandoff.audit import machine_findings

    root = tmp_path / "fw"
    shutil.copytree(Path(__file__).parent.parent / "fixtures" / "sysfs" / "native-laptop", root)
    rt = root / "efi" / "runtime-map"
    names = sorted((p.name for p in rt.iterdir()), key=int)
    for n in names:
        (rt / n).rename(rt / f"tmp{n}")
    for i, n in enumerate(reversed(names)):
        (rt / f"tmp{n}").rename(rt / str(i))
    machine = read_sysfs(root).to_machine()
    starts = [d.phys_addr for d in machine.memory_map]
    assert starts == sorted(starts) and len(starts) == len(names)
    assert "memmap.unsorted" not in {f.code for f in machine_findings(machine)}


def test_tables_outside_a_runtime_map_are_unknown_not_findings() -> None:
    # native-laptop's runtime-map holds RUNTIME regions only: ACPI (in ACPI reclaim, not
    # runtime) lies outside it. That proves nothing about the firmware: no table.outside-map,
    # and its verdict on every path is unknown, not whatever a missing descriptor would give.
    from efihandoff.explain import explain
    from efihandoff.sources import read_source

    ex = explain(read_source(Path(__file__).parent.parent / "fixtures" / "sysfs" / "native-laptop"))
    assert "table.outside-map" not in {f.code for f in ex.findings}
    acpi = {
        r.tables[g].verdict.value for r in ex.results.values() for g in r.tables
        if r.tables[g].name == "ACPI"
    }
    assert acpi == {"unknown"}
