"""The Linux model against facts sections 3, 4 and 5.7 (expectations worked out by hand)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from efihandoff.e820 import E820Range, E820Type
from efihandoff.edk2 import BootServices
from efihandoff.machine import Machine
from efihandoff.paths import linux
from efihandoff.paths.presets import PRESETS, PathSpec, parse_path
from efihandoff.paths.simulate import simulate, stub_e820
from efihandoff.sources.scenario import build_machine, load_scenario
from efihandoff.uefi.esrt import Esrt, EsrtEntry
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import MemoryAttribute, MemoryDescriptor, MemoryMap, MemoryType

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RT = int(MemoryAttribute.RUNTIME)
T = MemoryType
FW = "ddc0ee61-e7f0-4e7d-acc5-c070a398838e"


def _load(name: str) -> Machine:
    return load_scenario(EXAMPLES / f"{name}.toml")


def _native(m: Machine, spec: PathSpec = PRESETS["native"]) -> linux.LinuxBoot:
    """What simulate does on bare metal, keeping the LinuxBoot to look inside."""
    bs = BootServices.from_machine(m)
    final = bs.exit_boot_services()
    assert bs.system_table is not None
    return linux.boot(
        spec,
        bs.memory,
        bs.config_tables(),
        bs.system_table.hdr,
        "EDK II",
        memmap=final,
        e820=stub_e820(final),
        xen=None,
    )


def _machine_with_esrt_in(mtype: str, attribute: str | None = None) -> Machine:
    """A small machine whose one region of ``mtype`` (at 0x4000000, 1 MiB) holds a 2-entry
    ESRT at 0x4000018."""
    region: dict[str, Any] = {"start": 0x4000000, "size": "1M", "type": mtype}
    if attribute is not None:
        region["attribute"] = attribute
    return build_machine(
        {
            "memory_fill": "zeros",
            "region": [
                {"start": 0x100000, "end": 0x3FFFFFF, "type": "EfiConventionalMemory"},
                region,
                {"start": 0x4100000, "end": 0x7FFFFFF, "type": "EfiConventionalMemory"},
            ],
            "table": [
                {
                    "name": "ESRT",
                    "address": 0x4000018,
                    "entry": [{"fw_class": FW}, {"fw_class": FW, "fw_type": 2}],
                }
            ],
        }
    )


# -- efi_esrt_init's types by version (F3.2 step 3) -------------------------------------------


@pytest.mark.parametrize(
    ("mtype", "attribute", "on_61", "on_63"),
    [
        ("EfiBootServicesData", None, True, True),
        ("EfiRuntimeServicesData", None, True, True),
        ("EfiACPIReclaimMemory", None, False, True),  # 01de145dc7fb (6.3)
        ("EfiACPIMemoryNVS", None, False, True),
        ("EfiBootServicesCode", None, False, False),
        ("EfiReservedMemoryType", None, False, False),
        ("EfiLoaderData", None, False, False),
        ("EfiConventionalMemory", None, False, False),
        ("EfiRuntimeServicesCode", None, True, True),  # the scenario gives it RUNTIME
        ("EfiReservedMemoryType", "WB|RUNTIME", True, True),  # RUNTIME is enough
    ],
)
def test_esrt_init_types(mtype: str, attribute: str | None, on_61: bool, on_63: bool) -> None:
    m = _machine_with_esrt_in(mtype, attribute)
    for spec, accepted in ((parse_path("linux=6.1"), on_61), (PRESETS["native"], on_63)):
        r = simulate(m, spec)
        lines = [x for x in r.log if x.startswith("esrt: ")]
        if accepted:
            assert lines == [
                "esrt: Reserving ESRT space from 0x0000000004000018 to 0x0000000004000078."
            ], spec.linux
            assert r.esrt_sysfs is True
        else:
            assert lines == ["esrt: ESRT header is not in the memory map."], spec.linux
            assert r.esrt.verdict.value == "refused"


# -- efi_mem_reserve on bare metal (F4.2-4.4) --------------------------------------------------


def test_efi_mem_reserve_carves_the_page_and_updates_e820() -> None:
    lb = _native(_load("esrt-bsdata-1"))
    assert lb.mem_reserved == [(0x41000018, 0x41000050)]
    assert lb.memmap is not None
    page = lb.memmap.lookup(0x41000018)
    # The page [0x41000000, 0x41001000) carries the descriptor's attribute | RUNTIME; the rest
    # of the 4 MiB BS-data descriptor had no reservation and was freed and dropped.
    assert page == MemoryDescriptor(T.EfiBootServicesData, 0x41000000, 1, page.attribute)
    assert page.attribute & RT
    assert lb.memmap.lookup(0x41001000) is None
    assert (0x41001000, 0x41400000) in lb.freed
    assert lb.e820 is not None
    around = [r for r in lb.e820 if r.start < 0x41002000 and r.end > 0x40FFF000]
    # The stub's E820 merges neighbours: conventional from 1 MiB, loader data, BS code and BS
    # data are one RAM range up to the ESRT's page; after it, the rest of BS data and the
    # conventional region up to the builder's RT-data pool page at 0x7efff000.
    assert around == [
        E820Range(0x100000, 0x41000000, E820Type.RAM),
        E820Range(0x41000000, 0x41001000, E820Type.RESERVED),
        E820Range(0x41001000, 0x7EFFF000, E820Type.RAM),
    ]
    assert "e820: update [mem 0x41000000-0x41000fff] usable ==> reserved" in lb.log


def test_no_reservation_for_runtime_data() -> None:
    lb = _native(_load("esrt-rtdata"))
    assert lb.mem_reserved == []
    assert not [x for x in lb.log if x.startswith("e820: ")]


def test_reserve_boot_services_keeps_regions_with_memblock_reservations() -> None:
    lb = _native(_load("memattr-tpm-bsdata"))
    # MEMATTR (112 bytes) and the TPM log (12 + 512) are memblock-reserved: their 4 MiB
    # BS-data descriptor gets RUNTIME and stays whole. Page 0 (BS code) overlaps
    # memblock_reserve(0, SZ_64K). The 8 MiB of BS code is freed.
    assert (0x41000018, 0x41000018 + 112) in lb.reserved
    assert (0x41001018, 0x41001018 + 524) in lb.reserved
    assert sorted(lb.kept_bs) == [(0x0, 0x1000), (0x41000000, 0x41400000)]
    assert lb.freed == [(0x40800000, 0x41000000)]
    assert lb.memmap is not None
    bs_left = [d for d in lb.memmap if d.type in (T.EfiBootServicesCode, T.EfiBootServicesData)]
    assert all(d.attribute & RT for d in bs_left) and len(bs_left) == 2


def test_free_boot_services_spares_memory_below_1mib() -> None:
    m = build_machine(
        {
            "memory_fill": "zeros",
            "region": [
                {"start": 0x10000, "size": "64K", "type": "EfiBootServicesData"},
                {"start": 0x100000, "end": 0x3FFFFFF, "type": "EfiConventionalMemory"},
            ],
        }
    )
    lb = _native(m)
    # [0x10000, 0x20000): above the 64 KiB memblock, all E820 RAM, so not tagged; but
    # efi_free_boot_services does not free memory under 1 MiB; it leaves the map anyway.
    assert lb.kept_bs == [] and lb.freed == []
    assert lb.memmap is not None and lb.memmap.lookup(0x10000) is None


def test_mokvar_in_bs_data_is_efi_mem_reserved_with_the_descriptor_limit() -> None:
    # No header: entries {char name[256]; u64 data_size; data[]} up to an empty sentinel,
    # bounded by the end of the descriptor (F2). One 4-byte variable, then the sentinel:
    # 264 + 4 + 264 = 532 bytes.
    entry = b"MokListRT".ljust(256, b"\0") + (4).to_bytes(8, "little") + b"\x01\x02\x03\x04"
    blob = entry + bytes(264)
    m = build_machine(
        {
            "memory_fill": "zeros",
            "region": [
                {"start": 0x100000, "end": 0x3FFFFFF, "type": "EfiConventionalMemory"},
                {"start": 0x4000000, "size": "1M", "type": "EfiBootServicesData"},
            ],
            "table": [
                {"name": "MOKvar", "address": 0x4000018, "hex": blob.hex()},
            ],
        }
    )
    lb = _native(m)
    assert lb.mem_reserved == [(0x4000018, 0x4000018 + 532)]
    assert "e820: update [mem 0x04000000-0x04000fff] usable ==> reserved" in lb.log
    assert simulate(m, PRESETS["native"]).tables[
        Guid.parse("c451ed2b-9694-45d3-baba-ed9f8988a389")
    ].verdict.value == "intact"


# -- Linux under Xen (F5.7) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mtype", "usable"),
    [
        ("EfiRuntimeServicesCode", True),
        ("EfiRuntimeServicesData", True),
        ("EfiACPIReclaimMemory", True),
        ("EfiACPIMemoryNVS", True),
        ("EfiReservedMemoryType", True),
        ("EfiBootServicesCode", False),
        ("EfiBootServicesData", False),
        ("EfiLoaderCode", False),
        ("EfiLoaderData", False),
        ("EfiConventionalMemory", False),
        ("EfiUnusableMemory", False),
        ("EfiMemoryMappedIO", False),
        ("EfiPalCode", False),
        ("EfiPersistentMemory", False),
    ],
)
def test_xen_allowlist(mtype: str, usable: bool) -> None:
    r = simulate(_machine_with_esrt_in(mtype), PRESETS["xen-4.16"])
    line = next(x for x in r.log if x.startswith("efi: ") and "ESRT" in x)
    assert line == ("efi: ESRT=0x4000018 " if usable else "efi: (ESRT=0x4000018 unusable) ")


def test_table_outside_xens_map_is_usable_but_not_in_the_memory_map() -> None:
    # MEM_INFO fails with -ESRCH; Linux's lookup warns and still returns a type-0 descriptor,
    # which the allowlist accepts (EFI_RESERVED_TYPE) and efi_esrt_init refuses (F5.7 [I]).
    m = _load("esrt-rtdata")
    assert m.memory_map is not None
    kept = tuple(d for d in m.memory_map if not d.contains(0x7F100018))
    m = m.with_(memory_map=MemoryMap(kept, m.memory_map.desc_size))
    r = simulate(m, PRESETS["xen-4.17"])
    warning = "Failed to lookup header 0x7f100000 in Xen memory map: error -3"
    # The warning interrupts the pr_cont line: "efi: " is flushed, the rest continues alone.
    assert [x for x in r.log if not x.startswith("(XEN)")] == [
        "efi: EFI v2.7 by EDK II",
        "efi: ",
        warning,
        "ESRT=0x7f100018 ",
        warning,
        "esrt: ESRT header is not in the memory map.",
    ]
    assert r.esrt.verdict.value == "refused"
    assert "not in the memory map" in r.esrt.reason
    assert r.esrt_sysfs is False


def test_linux61_dom0_records_bs_tables_without_an_allowlist() -> None:
    r = simulate(_load("esrt-bsdata-1"), PRESETS["xen-4.17-linux-6.1"])
    assert "efi: ESRT=0x7effd018 " in r.log
    assert "EFI_MEMMAP" in r.esrt.reason


def test_efi_mem_reserve_warns_under_xen() -> None:
    # Only reachable when the allowlist lets a BS-data ESRT through; under the released
    # Linux 6.3 it never does, so drive efi_mem_reserve directly.
    lb = linux.LinuxBoot(spec=PRESETS["xen-4.16"])
    lookup = linux._Lookup(PRESETS["xen-4.16"], lb, None)
    linux._efi_mem_reserve(lb, PRESETS["xen-4.16"], lookup, 0x1000, 16, paravirt=True)
    assert lb.log == ["WARNING: efi_mem_reserve() under Xen (drivers/firmware/efi/efi.c)"]
    assert lb.reserved == []


# -- sysfs (F3.3) -----------------------------------------------------------------------------


def _esrt_bytes(version: int, count: int, entries: int) -> bytes:
    e = EsrtEntry(Guid.parse(FW), 1, 2, 1, 0, 0, 0)
    return Esrt(count, count, version, (e,) * entries).build()


def test_tree_of_version_2_with_entries_is_removed() -> None:
    # register_entries fails on the first entry: esrt_sysfs_init removes the directory.
    assert linux.esrt_tree(_esrt_bytes(2, 1, 1)) is None


def test_tree_of_version_2_without_entries_keeps_the_top_files() -> None:
    tree = linux.esrt_tree(_esrt_bytes(2, 0, 0))
    assert tree is not None and tree["efi/esrt/fw_resource_version"] == "2\n"


def test_tree_zero_capsule_flags_print_as_0x0() -> None:
    tree = linux.esrt_tree(_esrt_bytes(1, 1, 1))
    assert tree is not None
    assert tree["efi/esrt/entries/entry0/capsule_flags"] == "0x0\n"  # "0x%x"
    assert tree["efi/esrt/entries/entry0/fw_class"] == FW + "\n"  # %pUl, lower case


# -- values the model cannot know (issue 13) --------------------------------------------------

# One entry, field by field (facts 1.7): count 1, max 1, version 1; fw_class, type 1, version
# 65586, lowest 65582, flags 0xfe, last attempt 18472960 / 1.
_ONE = bytes.fromhex(
    "01000000" "01000000" "0100000000000000"
    "61eec0ddf0e77d4eacc5c070a398838e"
    "01000000" "32000100" "2e000100" "fe000000" "00e01901" "01000000"
)


def test_esrt_tree_writes_unknown_files_and_lists_them() -> None:
    # 4-byte pieces at offsets 16+28 (capsule_flags) and 16+4 (inside fw_class) unknown.
    tree = linux.esrt_tree(_ONE, frozenset({44, 20}))
    assert tree is not None
    assert tree["efi/esrt/entries/entry0/capsule_flags"] == "0xfe\n"  # the file still exists
    assert tree[".unknown"] == (
        "efi/esrt/entries/entry0/fw_class\nefi/esrt/entries/entry0/capsule_flags\n"
    )
    # the header's version is a u64: either of its pieces makes it unknown
    assert linux.esrt_tree(_ONE, frozenset({12}))[".unknown"] == "efi/esrt/fw_resource_version\n"
    assert ".unknown" not in (linux.esrt_tree(_ONE) or {})


def _short_copy_machine(fill: str, build: str) -> Machine:
    # The ESRT (1 entry) in BS data, allocated; Xen 4.17 copies 40 bytes of it into ACPI-reclaim
    # pool, so Linux maps the POOL_TAIL as the entry's last 16 bytes (facts 5.3, 5.4).
    return build_machine(
        {
            "memory_fill": fill,
            "firmware_build": build,
            "region": [
                {"start": 0x100000, "end": 0x3FFFFFF, "type": "EfiConventionalMemory"},
                {"start": 0x4000000, "size": "1M", "type": "EfiBootServicesData"},
            ],
            "table": [{"name": "ESRT", "address": 0x4000018, "entry": [{"fw_class": FW}]}],
        }
    )


@pytest.mark.parametrize("fill", ["unknown", "random"])
def test_unknown_pool_tail_word_gives_a_tree_with_it_marked(fill: str) -> None:
    r = simulate(_short_copy_machine(fill, "release"), PRESETS["xen-4.17"])
    assert r.esrt_sysfs is True and r.sysfs is not None
    # 'ptal' and the pool size (24 + 40 + 16 = 80) are written by edk2; Reserved is not.
    e = "efi/esrt/entries/entry0/"
    assert r.sysfs[e + "lowest_supported_fw_version"] == "1818326128\n"
    assert r.sysfs[e + "last_attempt_version"] == "80\n"
    assert r.sysfs[".unknown"] == e + "capsule_flags\n"
    if fill == "unknown":
        assert r.sysfs[e + "capsule_flags"] == "0x0\n"  # a stand-in, listed as one
    (dev,) = r.fwupd_devices or []
    assert dev.flags is None and dev.lowest == 1818326128 and dev.version == 0


def test_zero_fill_and_debug_clear_are_known() -> None:
    for build, flags in (("release", "0x0\n"), ("debug", "0x0\n")):
        r = simulate(_short_copy_machine("zeros", build), PRESETS["xen-4.17"])
        assert r.sysfs is not None and ".unknown" not in r.sysfs
        assert r.sysfs["efi/esrt/entries/entry0/capsule_flags"] == flags
