"""The Xen model against facts section 5, piece by piece (expectations worked out by hand)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from efihandoff.e820 import E820Range, E820Type
from efihandoff.edk2 import BootServices
from efihandoff.machine import Fill, Machine, PhysicalMemory
from efihandoff.paths import xen
from efihandoff.paths.presets import PRESETS, PathSpec, parse_path
from efihandoff.paths.simulate import simulate
from efihandoff.sources.scenario import build_machine, load_scenario
from efihandoff.uefi.memmap import MemoryAttribute, MemoryDescriptor, MemoryMap, MemoryType
from efihandoff.uefi.tables import by_name

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
U64_MAX = (1 << 64) - 1
WB = int(MemoryAttribute.WB)
RT = int(MemoryAttribute.RUNTIME)
T = MemoryType
BUGGY = PathSpec("buggy", xen=(4, 17, 1))
FIXED = PathSpec("fixed", xen=(4, 22, 0))


def _header(count: int, version: int = 1, count_max: int | None = None) -> bytes:
    # F1.7: u32 FwResourceCount, u32 FwResourceCountMax, u64 FwResourceVersion.
    return struct.pack("<IIQ", count, count if count_max is None else count_max, version)


def _mem(addr: int, data: bytes) -> PhysicalMemory:
    m = PhysicalMemory(Fill.ZEROS)
    m.write(addr, data)
    return m


# -- get_esrt_size (F5.3) --------------------------------------------------------------------

BSD = MemoryDescriptor(T.EfiBootServicesData, 0x10000, 1, WB)  # [0x10000, 0x11000)


def test_get_esrt_size_without_an_esrt() -> None:
    assert xen.get_esrt_size(BUGGY, _mem(0x10000, _header(1)), None, BSD) == 0


@pytest.mark.parametrize(
    ("esrt", "expected"),
    [
        (0x0FFF8, 0),  # before the descriptor
        (0x10000, 40),  # at its start
        (0x11000, 0),  # at its (exclusive) end
        (0x20000, 0),  # far after
    ],
)
def test_get_esrt_size_needs_the_esrt_inside(esrt: int, expected: int) -> None:
    assert xen.get_esrt_size(BUGGY, _mem(esrt, _header(1)), esrt, BSD) == expected


@pytest.mark.parametrize(
    ("mtype", "accepted"),
    [
        (T.EfiBootServicesData, True),
        (T.EfiRuntimeServicesData, True),
        (T.EfiACPIReclaimMemory, True),  # 11560248ff: "contain the tables after kexec"
        (T.EfiBootServicesCode, False),
        (T.EfiRuntimeServicesCode, False),
        (T.EfiLoaderData, False),
        (T.EfiConventionalMemory, False),
        (T.EfiACPIMemoryNVS, False),
        (T.EfiReservedMemoryType, False),
    ],
)
def test_get_esrt_size_types(mtype: int, accepted: bool) -> None:
    d = MemoryDescriptor(mtype, 0x10000, 1, WB)
    got = xen.get_esrt_size(BUGGY, _mem(0x10018, _header(2)), 0x10018, d)
    assert got == (80 if accepted else 0)


def test_get_esrt_size_needs_more_than_the_header_before_the_end() -> None:
    # "the bytes from esrt to the descriptor end are <= 16": exactly 16 left is refused.
    assert xen.get_esrt_size(BUGGY, _mem(0x10FF0, _header(1)), 0x10FF0, BSD) == 0
    # 16 + 40 left: one entry fits exactly.
    assert xen.get_esrt_size(BUGGY, _mem(0x10FC8, _header(1)), 0x10FC8, BSD) == 40
    # 16 + 39 left: the one entry does not fit (1 > 39 // 40).
    assert xen.get_esrt_size(BUGGY, _mem(0x10FC9, _header(1)), 0x10FC9, BSD) == 0


@pytest.mark.parametrize(("version", "count"), [(2, 1), (0, 1), (1, 0)])
def test_get_esrt_size_version_and_count(version: int, count: int) -> None:
    assert xen.get_esrt_size(BUGGY, _mem(0x10018, _header(count, version)), 0x10018, BSD) == 0


def test_get_esrt_size_count_against_the_room() -> None:
    # 0x1000 - 0x18 - 16 = 4056 bytes for entries: 101 fit, 102 do not.
    assert xen.get_esrt_size(BUGGY, _mem(0x10018, _header(101)), 0x10018, BSD) == 4040
    assert xen.get_esrt_size(BUGGY, _mem(0x10018, _header(102)), 0x10018, BSD) == 0


def test_get_esrt_size_ignores_count_max() -> None:
    mem = _mem(0x10018, _header(3, count_max=1))
    assert xen.get_esrt_size(BUGGY, mem, 0x10018, BSD) == 120


def test_get_esrt_size_unknown_bytes() -> None:
    assert xen.get_esrt_size(BUGGY, PhysicalMemory(Fill.UNKNOWN), 0x10018, BSD) == 0


@pytest.mark.parametrize(
    ("version", "fixed"),
    [
        ((4, 17, 1), False),
        ((4, 18, 6), False),  # never fixed on stable-4.18
        ((4, 19, 4), False),
        ((4, 19, 5), True),  # 68044518e0
        ((4, 20, 2), False),
        ((4, 20, 3), True),  # f894478032
        ((4, 21, 0), False),
        ((4, 21, 1), True),  # 99bd17462d
        ((4, 22, 0), True),  # 3ea44aa78c
    ],
)
def test_get_esrt_size_by_version(version: tuple[int, int, int], fixed: bool) -> None:
    spec = PathSpec("v", xen=version)
    got = xen.get_esrt_size(spec, _mem(0x10018, _header(2)), 0x10018, BSD)
    assert got == (16 + 80 if fixed else 80)


# -- XEN_FW_EFI_INFO (F5.7) --------------------------------------------------------------------


def _xenboot(descs: list[MemoryDescriptor], vendor: str | None = "EDK II") -> xen.XenBoot:
    return xen.XenBoot(
        spec=BUGGY,
        efi_memmap=MemoryMap(tuple(descs)),
        e820=[],
        config_table_address=0x7F000000,
        nr_tables=3,
        revision=0x00020046,
        vendor=vendor,
        esrt=None,
    )


MAP = [
    MemoryDescriptor(T.EfiRuntimeServicesData, 0x10000, 4, WB | RT),  # [0x10000, 0x14000)
    MemoryDescriptor(T.EfiBootServicesData, 0x12000, 4, WB),  # overlaps: second in order
    MemoryDescriptor(T.EfiACPIReclaimMemory, 0x20000, 0, WB),  # zero pages: never matches
    MemoryDescriptor(T.EfiLoaderData, 0x30800, 1, WB),  # unaligned: Xen does not skip it
]


def test_mem_info_first_match_address_unchanged_size_clipped() -> None:
    xb = _xenboot(MAP)
    rc, info = xb.mem_info(0x12345, U64_MAX - 0x12345)
    assert rc == 0 and info is not None
    # The first descriptor in map order wins, even though the BS one also covers it.
    assert (info.type, info.attr) == (T.EfiRuntimeServicesData, WB | RT)
    assert info.addr == 0x12345  # the queried address, not the descriptor start
    assert info.size == 0x14000 - 0x12345  # clipped to the descriptor end


def test_mem_info_size_left_alone_when_it_fits() -> None:
    rc, info = _xenboot(MAP).mem_info(0x10000, 0x100)
    assert rc == 0 and info is not None and info.size == 0x100


def test_mem_info_size_that_wraps_is_clipped() -> None:
    # addr + size overflows u64: clipped to the descriptor end.
    rc, info = _xenboot(MAP).mem_info(0x11000, U64_MAX)
    assert rc == 0 and info is not None and info.size == 0x3000


def test_mem_info_second_descriptor_past_the_first() -> None:
    rc, info = _xenboot(MAP).mem_info(0x15000, 1)
    assert rc == 0 and info is not None and info.type == T.EfiBootServicesData


def test_mem_info_esrch() -> None:
    xb = _xenboot(MAP)
    assert xb.mem_info(0x20000, 1) == (-xen.ESRCH, None)  # zero-page descriptor
    assert xb.mem_info(0x40000, 1) == (-xen.ESRCH, None)  # in no descriptor


def test_mem_info_unaligned_descriptor_matches() -> None:
    rc, info = _xenboot(MAP).mem_info(0x30900, 1)
    assert rc == 0 and info is not None and info.type == T.EfiLoaderData


def test_firmware_info_sub_commands() -> None:
    xb = _xenboot(MAP)
    assert xb.firmware_info(xen.XenFwEfiInfo.VERSION) == (0, 0x00020046)
    assert xb.firmware_info(xen.XenFwEfiInfo.CONFIG_TABLE) == (0, (0x7F000000, 3))
    assert xb.firmware_info(xen.XenFwEfiInfo.VENDOR) == (0, "EDK II")
    assert _xenboot(MAP, None).firmware_info(xen.XenFwEfiInfo.VENDOR)[0] == -xen.EOPNOTSUPP
    assert xb.firmware_info(99)[0] == -xen.EINVAL


# -- E820 (F5.6) ---------------------------------------------------------------------------

X416_2 = PathSpec("a", xen=(4, 16, 2))
X416_3 = PathSpec("b", xen=(4, 16, 3))
X417 = PathSpec("c", xen=(4, 17, 0))
MAPBS = PathSpec("d", xen=(4, 16, 5), mapbs=True)
RAM, RES, ACPI, NVS, UNU = (
    E820Type.RAM,
    E820Type.RESERVED,
    E820Type.ACPI,
    E820Type.NVS,
    E820Type.UNUSABLE,
)


@pytest.mark.parametrize(
    ("mtype", "attr", "spec", "expected"),
    [
        (T.EfiBootServicesCode, WB, X417, RAM),  # reclaimed like conventional memory
        (T.EfiBootServicesData, WB, X417, RAM),
        (T.EfiBootServicesData, WB, MAPBS, RES),  # -mapbs
        (T.EfiBootServicesCode, WB | RT, MAPBS, RES),
        (T.EfiBootServicesData, 0x1, X417, UNU),  # UC only: no WB
        (T.EfiBootServicesData, WB | RT, X417, RES),  # f324300c83
        (T.EfiBootServicesData, WB | RT, X416_3, RES),  # 54f8ed80c8
        (T.EfiBootServicesData, WB | RT, X416_2, RAM),  # before the backport
        (T.EfiConventionalMemory, WB, MAPBS, RAM),  # -mapbs touches BS types only
        (T.EfiConventionalMemory, 0x1, X417, UNU),
        (T.EfiConventionalMemory, WB | RT, X417, RES),
        (T.EfiLoaderCode, WB, X417, RAM),
        (T.EfiLoaderData, WB | RT, X416_2, RAM),
        (T.EfiLoaderData, WB | RT, X417, RES),
        (T.EfiUnusableMemory, WB, X417, UNU),
        (T.EfiACPIReclaimMemory, WB, X417, ACPI),
        (T.EfiACPIMemoryNVS, WB, X417, NVS),
        (T.EfiReservedMemoryType, WB, X417, RES),
        (T.EfiRuntimeServicesCode, WB | RT, X417, RES),
        (T.EfiRuntimeServicesData, WB | RT, X417, RES),
        (T.EfiMemoryMappedIO, 0x1 | RT, X417, RES),
        (T.EfiMemoryMappedIOPortSpace, 0x1, X417, RES),
        (T.EfiPalCode, WB, X417, RES),
        (T.EfiPersistentMemory, WB, X417, RES),
        (T.EfiUnacceptedMemoryType, WB, X417, RES),
        (0x70000001, WB, X417, RES),  # an OEM type: "default"
    ],
)
def test_e820_type(mtype: int, attr: int, spec: PathSpec, expected: E820Type) -> None:
    assert xen.e820_type(MemoryDescriptor(mtype, 0x100000, 1, attr), spec) == expected


def test_e820_merges_with_the_previous_entry_in_map_order_only() -> None:
    mm = MemoryMap(
        (
            MemoryDescriptor(T.EfiConventionalMemory, 0x100000, 16, WB),
            MemoryDescriptor(T.EfiBootServicesData, 0x110000, 16, WB),  # RAM, adjacent: merges
            MemoryDescriptor(T.EfiACPIReclaimMemory, 0x200000, 1, WB),
            MemoryDescriptor(T.EfiLoaderData, 0x120000, 16, WB),  # RAM, but after the ACPI one
            MemoryDescriptor(T.EfiLoaderData, 0x300000, 0, WB),  # zero length: dropped
        )
    )
    e820, included = xen.build_e820(mm, X417)
    assert e820 == [
        E820Range(0x100000, 0x120000, RAM),
        E820Range(0x200000, 0x201000, ACPI),
        E820Range(0x120000, 0x130000, RAM),
    ]
    assert included == [True, True, True, True, False]


def test_e820_stops_at_e820max() -> None:
    # 1030 separate RAM ranges: the first 1024 fit in e820_raw, the rest are dropped.
    descs = tuple(
        MemoryDescriptor(T.EfiBootServicesData, 0x100000 + 0x2000 * i, 1, WB) for i in range(1030)
    )
    e820, included = xen.build_e820(MemoryMap(descs), X417)
    assert len(e820) == 1024 and included == [True] * 1024 + [False] * 6
    assert xen.process_memory_map(MemoryMap(descs), X417) == e820


def test_e820_row_count_by_hand() -> None:
    # the merge test's map: three rows; the E820MAX map: 1024
    mm = MemoryMap(
        (
            MemoryDescriptor(T.EfiConventionalMemory, 0x100000, 16, WB),
            MemoryDescriptor(T.EfiBootServicesData, 0x110000, 16, WB),
            MemoryDescriptor(T.EfiLoaderData, 0x120000, 0, WB),  # no length: no row, no break
            MemoryDescriptor(T.EfiLoaderData, 0x120000, 16, WB),  # still joins the first row
            MemoryDescriptor(T.EfiConventionalMemory, 0x130000, 16, 0),  # no WB: unusable
            MemoryDescriptor(T.EfiConventionalMemory, 0x150000, 16, WB),  # a hole before it
        )
    )
    assert xen.e820_row_count(mm, X417) == 3
    assert xen.e820_row_count(MemoryMap(()), X417) == 0
    descs = tuple(
        MemoryDescriptor(T.EfiBootServicesData, 0x100000 + 0x2000 * i, 1, WB) for i in range(1030)
    )
    assert xen.e820_row_count(MemoryMap(descs), X417) == 1024


_ROW_TYPES = st.sampled_from([int(t) for t in T] + [15, 0x7000_0000, 0x8000_0000])
_ROW_ATTRS = st.sampled_from(
    [0, int(WB), int(WB | MemoryAttribute.RUNTIME), int(MemoryAttribute.RUNTIME)]
)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.tuples(_ROW_TYPES, _ROW_ATTRS, st.integers(0, 3), st.sampled_from([0, 1, 2, 1 << 52])),
        max_size=40,
    ),
    spec=st.sampled_from([X416_2, X417, PathSpec("m", xen=(4, 17, 0), mapbs=True)]),
)
def test_e820_row_count_is_build_e820s(
    rows: list[tuple[int, int, int, int]], spec: PathSpec
) -> None:
    # random types, attributes, gaps (0: contiguous) and lengths (0 and a wrapping one)
    descs, at = [], 0x100000
    for mtype, attr, gap, pages in rows:
        at += gap << 12
        descs.append(MemoryDescriptor(mtype, at, pages, attr))
        at += (pages & 0xFF) << 12
    mm = MemoryMap(tuple(descs))
    assert xen.e820_row_count(mm, spec) == len(xen.build_e820(mm, spec)[0])


# -- boot: relocation by version and boot mode (F5.1, F5.4, F5.8) --------------------------


def _bsdata1() -> Machine:
    return load_scenario(EXAMPLES / "esrt-bsdata-1.toml")


@pytest.mark.parametrize(
    ("path", "relocated"),
    [
        ("xen=4.16.5,linux=6.3", False),  # no ESRT handling at all
        ("xen=4.17.0,boot=multiboot2,linux=6.3", False),  # relocation only in efi_start
        ("xen=4.17.0,boot=efi,linux=6.3", True),
        ("xen=4.17.1,boot=multiboot2,linux=6.3", True),  # 1dcc9b6dfe
        ("xen=4.18.0,boot=multiboot2,linux=6.3", True),  # 8d7acf3f7d
    ],
)
def test_relocation_by_version_and_boot_mode(path: str, relocated: bool) -> None:
    r = simulate(_bsdata1(), parse_path(path))
    if relocated:
        assert r.esrt.final_address == 0x7EFFD018
        assert r.esrt.verdict.value == "corrupt"  # all of these copy 16 bytes short
    else:
        assert r.esrt.final_address == 0x41000018
        assert r.esrt.verdict.value == "refused"
        assert "efi: (ESRT=0x41000018 unusable) " in r.log


def test_relocated_copy_is_acpi_reclaim_and_prerelease_is_runtime_data() -> None:
    m = _bsdata1()
    bs = BootServices.from_machine(m)
    xb = xen.boot(bs, PathSpec("x", xen=(4, 22, 0)))
    (reloc,) = xb.relocations
    assert (reloc.old, reloc.new, reloc.copied, reloc.size) == (0x41000018, 0x7EFFD018, 56, 56)
    assert reloc.memory_type == T.EfiACPIReclaimMemory
    assert xb.mem_info(0x7EFFD018, 1)[1].type == T.EfiACPIReclaimMemory  # type: ignore[union-attr]
    # dc7da0874b before d7669c1014/11560248ff: the copy went to EfiRuntimeServicesData.
    bs = BootServices.from_machine(m)
    xb = xen.boot(bs, parse_path("xen=4.22.0,prerelease"))
    assert xb.relocations[0].memory_type == T.EfiRuntimeServicesData
    rc, info = xb.mem_info(xb.relocations[0].new, 1)
    assert rc == 0 and info is not None
    # efi_init_memory gives RT data the RUNTIME attribute if it lacks it; the pool page took
    # RUNTIME from edk2's allocation already.
    assert info.type == T.EfiRuntimeServicesData and info.attr & RT
    r = simulate(m, parse_path("xen=4.22.0,prerelease"))
    assert r.esrt.verdict.value == "relocated"


def test_rt_data_and_acpi_reclaim_esrt_left_in_place() -> None:
    for name in ("esrt-rtdata", "esrt-acpi-reclaim"):
        bs = BootServices.from_machine(load_scenario(EXAMPLES / f"{name}.toml"))
        assert xen.boot(bs, PRESETS["xen-4.17"]).relocations == []


def test_efi_tables_takes_the_last_esrt_entry() -> None:
    data = {
        "memory_fill": "zeros",
        "region": [
            {"start": 0x100000, "end": 0x3FFFFFF, "type": "EfiConventionalMemory"},
            {"start": 0x4000000, "size": "1M", "type": "EfiRuntimeServicesData"},
        ],
        "table": [
            {"name": "ESRT", "memory_type": "EfiRuntimeServicesData", "address": 0x4000018,
             "entry": [{"fw_class": "ddc0ee61-e7f0-4e7d-acc5-c070a398838e"}]},
            {"guid": "b122a263-3661-4f68-9929-78f8b0d62180", "hex": "00" * 16,
             "memory_type": "EfiRuntimeServicesData", "address": 0x4001018},
        ],
    }
    # edk2 replaces an installed GUID in place (F1.8), so install the second by hand.
    m = build_machine(data)
    bs = BootServices.from_machine(m)
    assert [t.table for t in bs.config_tables()] == [0x4001018]  # replaced in place
    assert xen.boot(bs, PRESETS["xen-4.17"]).esrt == 0x4001018


def test_reclaimed_and_scrubbed_before_dom0() -> None:
    m = load_scenario(EXAMPLES / "vendor-table-bsdata.toml")
    firmware = m.read(0x41000018, 64)
    assert firmware == b"\xa5" * 64
    for fill, check in (
        ("zeros", lambda b: b == bytes(64)),
        ("random", lambda b: b not in (bytes(64), firmware)),
        ("intact", lambda b: b == firmware),
    ):
        bs = BootServices.from_machine(m)
        xb = xen.boot(bs, parse_path(f"xen=4.16.5,scrub={fill}"))
        assert (0x41000000, 0x41400000) in xb.reclaimed
        assert check(bs.memory.read(0x41000018, 64)), fill
        r = simulate(m, parse_path(f"xen=4.16.5,scrub={fill}"))
        # Whatever the bytes, the memory was reused: never intact (DESIGN verdicts).
        vendor = next(tv for tv in r.tables.values() if tv.name.startswith("3d0e6f2a"))
        assert vendor.verdict.value == "clobbered"


def test_intact_fill_tpm_log_read_unchanged_is_still_clobbered() -> None:
    # Xen 4.16 + a 6.1 dom0 (no allowlist) records the TPM log in BS data; with the
    # "intact" fill its bytes read unchanged, yet Xen reused the memory.
    m = load_scenario(EXAMPLES / "memattr-tpm-bsdata.toml")
    verdicts = {}
    for fill in ("intact", "zeros"):
        r = simulate(m, parse_path(f"xen=4.16.5,linux=6.1,scrub={fill}"))
        verdicts[fill] = next(tv for tv in r.tables.values() if tv.name == "TPMEventLog").verdict
    assert verdicts == {"intact": "clobbered", "zeros": "corrupt"}


def test_reserve_hypercall_defers_then_releases_what_dom0_did_not_reserve() -> None:
    m = _bsdata1()
    bs = BootServices.from_machine(m)
    xb = xen.boot(bs, PRESETS["reserve-hypercall"])
    assert (0x41000000, 0x41400000) in xb.deferred
    assert (0x41000000, 0x41400000) not in xb.reclaimed
    xen.release_deferred(xb, [(0x41000018, 0x41000050)])
    assert xb.deferred == []
    # The reserved bytes' page stays; the rest of the region goes to the heap.
    assert (0x41001000, 0x41400000) in xb.reclaimed
    assert not any(s <= 0x41000018 < e for s, e in xb.reclaimed)


@pytest.mark.parametrize("claim", [855_000_000, 4 << 20])
def test_relocate_known_copies_no_claim_beyond_the_tables_descriptor(claim: int) -> None:
    # Issue 15: an 11-byte TPMEventLog whose header claims 855 MB made relocate-known copy the
    # claim (1.7 GB RSS). A claim past the table's descriptor is not copied, and says so.
    m = build_machine(
        {
            "memory_fill": "zeros",
            "region": [
                {"start": 0x100000, "end": 0x3FFFFFF, "type": "EfiConventionalMemory"},
                {"start": 0x4000000, "size": "1M", "type": "EfiBootServicesData"},
            ],
            "table": [
                {
                    "guid": str(by_name("TPMEventLog").guid),
                    "address": 0x4000000,
                    "hex": struct.pack("<IIB", claim, 0, 2).hex() + "0000",
                }
            ],
        }
    )
    bs = BootServices.from_machine(m)
    xb = xen.boot(bs, PRESETS["relocate-known"])
    assert xb.relocations == []
    assert any(f"claims {claim + 12} bytes" in line for line in xb.log)
