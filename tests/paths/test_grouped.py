"""paths.grouped: a whole machine's words from its table groups equal the whole simulation's
(every table's verdict, costs, dom0 marks, ESRT reservation, sysfs files, fwupd devices) over
random maps, tables, ESRT headers and stacks; what it refuses to sum is simulated whole."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from efihandoff.machine import Fill, Machine, PhysicalMemory, free_gap
from efihandoff.paths import grouped, memo
from efihandoff.paths.presets import PRESETS, PathSpec, parse_path
from efihandoff.paths.simulate import PathResult, simulate
from efihandoff.uefi import tables as known_tables
from efihandoff.uefi.esrt import ESRT_GUID
from efihandoff.uefi.memmap import MemoryDescriptor, MemoryMap, MemoryType
from efihandoff.uefi.systab import ConfigurationTable

PAGE = 4096
MiB = 1 << 20
TYPES = [int(t) for t in MemoryType if int(t) <= 15]
GUIDS = [ESRT_GUID, *(g for g in known_tables.REGISTRY if g != ESRT_GUID)]
ATTRS = [0xF, 0x8000_0000_0000_000F, 0x1, 0x8000_0000_0000_0000, 0xF | 0x40000]
# Entry points by hand from their specs, so their size is known (ACPI 6.5 5.2.5.3 RSDP: revision
# at 15, Length at 20; SMBIOS 3.7 entry points: length at 5 (2.x) and 6 (3.x)).
HEADERS = {
    "ACPI 2.0": b"RSD PTR " + bytes(7) + b"\x02" + bytes(4) + (36).to_bytes(4, "little")
    + bytes(12),
    "SMBIOS": b"_SM_" + b"\x00" + b"\x1f" + bytes(25),
    "SMBIOS 3.0": b"_SM3_" + b"\x00" + b"\x18" + bytes(17),
}
SPECS = [
    *PRESETS.values(),
    parse_path("xen=4.16.5,linux=6.1"),
    parse_path("xen=4.17.0,linux=6.3,boot=multiboot2"),
    parse_path("xen=4.19.5,linux=6.8,mapbs"),
    parse_path("xen=4.17.1,linux=6.12,scrub=zeros"),
    parse_path("xen=4.22.0,linux=6.12,policy=reserve-hypercall"),
    parse_path("linux=6.1"),
]


def words(r: PathResult) -> tuple[object, ...]:
    return (
        tuple((g, tv.name, tv.verdict, tv.address, tv.candidates) for g, tv in r.tables.items()),
        r.booted,
        r.halt,
        r.unusable,
        r.esrt_reserving,
        r.esrt_sysfs,
        r.sysfs,
        None if r.fwupd_devices is None else [d.__dict__ for d in r.fwupd_devices],
        r.esrt_check,
        r.cost,
    )


@st.composite
def machines(draw: st.DrawFn) -> Machine:
    """A machine as a kernel log gives it: a sorted map with holes (low memory, the dom0
    image's range, the classes, above 4 GiB), tables in random descriptors (some sharing one),
    ESRT header bytes when the log implies them, memory otherwise unknown."""
    descs = []
    addr = draw(st.sampled_from([0, 0x9F000, 0x100000, 0x1000000, 0x4F00000, 0x4A00000]))
    for _ in range(draw(st.integers(3, 30))):
        t = draw(st.sampled_from([*TYPES, 7, 7, 3, 4]))
        pages = draw(st.sampled_from([1, 2, 16, 256, 4096, 8192]))
        descs.append(MemoryDescriptor(t, addr, pages, draw(st.sampled_from(ATTRS))))
        addr += pages * PAGE + draw(
            st.sampled_from([0, 0, PAGE, 64 * MiB, 0x2_0000_0000, 0x10_0000_0000])
        )
    if draw(st.integers(0, 3)):  # the free memory most machines have below 4 GiB
        free = MemoryDescriptor(7, 0xC000_0000, 64 * MiB // PAGE, 0xF)
        if all(d.end <= free.phys_addr or free.end <= d.phys_addr for d in descs):
            descs.append(free)
    memory = PhysicalMemory(background=Fill.UNKNOWN)
    tables = []
    guids = draw(st.lists(st.sampled_from(GUIDS), min_size=0, max_size=6, unique=True))
    if draw(st.integers(0, 3)) and ESRT_GUID not in guids:
        guids.insert(0, ESRT_GUID)
    bs_data = [d for d in descs if d.type == MemoryType.EfiBootServicesData]
    for guid in guids:
        d = draw(st.sampled_from(descs))
        if guid == ESRT_GUID and bs_data and draw(st.booleans()):
            d = draw(st.sampled_from(bs_data))  # where the UEFI spec puts it
        at = d.phys_addr + draw(st.integers(0, min(d.num_pages * PAGE, 3 * PAGE) - 1)) // 8 * 8
        tables.append(ConfigurationTable(guid, at))
        kt = known_tables.known(guid)
        if kt is not None and kt.name in HEADERS and draw(st.booleans()):
            memory.write(at, HEADERS[kt.name])  # a size the relocate-known proposal can copy
        if guid == ESRT_GUID and draw(st.integers(0, 3)):
            count = draw(st.sampled_from([0, 1, 2, 3, 128, 129, 300_000]))
            head = struct.pack("<IIQ", count, count, draw(st.sampled_from([1, 1, 2])))
            # the entries too, as a /sys/firmware copy beside the log gives them
            body = draw(st.binary(min_size=40 * count, max_size=40 * count)) if count <= 3 else b""
            memory.write(at, head + body)
    return Machine(
        memory_map=MemoryMap(tuple(sorted(descs, key=lambda d: d.phys_addr))),
        config_tables=tuple(tables) if tables or draw(st.booleans()) else None,
        memory=memory,
        firmware_vendor=draw(st.sampled_from([None, "EDK II"])),
    )


def _summed(plan: grouped.Plan, spec: PathSpec) -> PathResult | None:
    """The group sum as survey asks it (words only, the path cache answering groups)."""
    with memo.words_only():
        return grouped.combine(plan, spec, memo.simulate)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(machines(), st.sampled_from(SPECS))
def test_group_sum_equals_the_whole_simulation(m: Machine, spec) -> None:  # type: ignore[no-untyped-def]
    plan = grouped.plan(m)
    if plan is None:
        return
    got = _summed(plan, spec)
    if got is None:
        return
    assert words(got) == words(simulate(m, spec))


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(TYPES),
    st.sampled_from([0, 0x9F000, 0x100000, 0x1000000, 0x6000_0000, 0x2_0000_0000]),
    st.sampled_from([1, 2, 16, 4096]),
    st.sampled_from(ATTRS),
    st.sampled_from(SPECS),
)
def test_descriptor_cost_is_the_simulated_cost(
    mtype: int, addr: int, pages: int, attribute: int, spec  # type: ignore[no-untyped-def]
) -> None:
    """A group's descriptor without its tables, beside the free gap, costs what the
    simulation says (the empty half of a group is no longer simulated)."""
    d = MemoryDescriptor(mtype, addr, pages, attribute)
    gap = free_gap([(d.phys_addr, d.end)])
    m = Machine(
        memory_map=MemoryMap(tuple(sorted((d, gap), key=lambda x: x.phys_addr))),
        config_tables=(),
        memory=PhysicalMemory(background=Fill.UNKNOWN),
    )
    r = simulate(m, spec)
    assert grouped.descriptor_cost(d, spec) == r.cost


def test_descriptor_cost_by_hand() -> None:
    """Boot-services data no table touches: bare-metal Linux frees it (unless it meets the
    low reservations), -mapbs keeps it, the reserve-hypercall proposal holds it."""
    assert grouped.descriptor_cost(BS, PRESETS["native"]).reserved_bytes == 0
    assert grouped.descriptor_cost(LOW_BS, PRESETS["native"]).reserved_bytes == LOW_BS.size
    assert grouped.descriptor_cost(BS, PRESETS["keep-boot-services"]).reserved_bytes == BS.size
    held = grouped.descriptor_cost(BS, PRESETS["reserve-hypercall"]).held_during_boot_bytes
    assert held == BS.size
    assert grouped.descriptor_cost(RT, PRESETS["keep-boot-services"]).reserved_bytes == 0


def _machine(tables: list[ConfigurationTable], *descs: MemoryDescriptor) -> Machine:
    return Machine(
        memory_map=MemoryMap(descs),
        config_tables=tuple(tables),
        memory=PhysicalMemory(background=Fill.UNKNOWN),
    )


FREE = MemoryDescriptor(MemoryType.EfiConventionalMemory, 0x8000_0000, 64 * MiB // PAGE, 0xF)
RT = MemoryDescriptor(MemoryType.EfiRuntimeServicesData, 0x7000_0000, 16, 0x8000_0000_0000_000F)
BS = MemoryDescriptor(MemoryType.EfiBootServicesData, 0x6000_0000, 256, 0xF)
LOW_BS = MemoryDescriptor(MemoryType.EfiBootServicesData, 0x0, 16, 0xF)


def test_groups_and_map_costs() -> None:
    acpi = known_tables.by_name("ACPI 2.0")
    assert acpi is not None
    guid = acpi.guid
    m = _machine(
        [
            ConfigurationTable(ESRT_GUID, BS.phys_addr + 0x18),
            ConfigurationTable(guid, RT.phys_addr),
        ],
        LOW_BS,
        BS,
        RT,
        FREE,
    )
    plan = grouped.plan(m)
    assert plan is not None and len(plan.groups) == 2
    # Linux keeps boot-services regions touching [0, 64 KiB) (early_reserve_memory)
    assert plan.native_kept == LOW_BS.size
    assert plan.bs_bytes == LOW_BS.size + BS.size
    assert grouped.base_cost(plan, PRESETS["keep-boot-services"]).reserved_bytes == plan.bs_bytes


def test_what_is_simulated_whole() -> None:
    esrt = ConfigurationTable(ESRT_GUID, BS.phys_addr)
    assert grouped.plan(_machine([esrt], BS, FREE)) is None  # two descriptors: already small
    in_free = ConfigurationTable(ESRT_GUID, FREE.phys_addr)
    assert grouped.plan(_machine([in_free], LOW_BS, BS, FREE)) is None  # copies could land on it
    twice = [esrt, ConfigurationTable(ESRT_GUID, RT.phys_addr)]
    assert grouped.plan(_machine(twice, LOW_BS, BS, RT, FREE)) is None
    overlap = BS.replace(phys_addr=BS.phys_addr - PAGE)
    assert grouped.plan(_machine([esrt], LOW_BS, overlap, BS, FREE)) is None
    plan = grouped.plan(_machine([esrt], LOW_BS, BS, RT, FREE))
    assert plan is not None
    assert grouped.combine(plan, PRESETS["relocate-known"], simulate) is not None  # replayed
    no_free = grouped.plan(_machine([esrt], LOW_BS, BS, RT))
    assert no_free is not None
    assert grouped.combine(no_free, PRESETS["xen-4.17"], simulate) is None
    assert grouped.combine(no_free, PRESETS["native"], simulate) is not None


def _big(n: int, *, merging: bool) -> Machine:
    """``n`` one-page descriptors from 256 MiB (types alternating unless ``merging``: then
    neighbours of one E820 type merge into few rows), a free region, tables in three."""
    types = [MemoryType.EfiRuntimeServicesData, MemoryType.EfiBootServicesData]
    descs = [
        MemoryDescriptor(
            MemoryType.EfiACPIReclaimMemory if merging else types[i % 2],
            0x1000_0000 + i * PAGE,
            1,
            0x8000_0000_0000_000F if not merging and i % 2 == 0 else 0xF,
        )
        for i in range(n)
    ]
    descs.append(FREE)
    acpi = known_tables.by_name("ACPI 2.0")
    assert acpi is not None
    memory = PhysicalMemory(background=Fill.UNKNOWN)
    memory.write(descs[7].phys_addr + 0x18, struct.pack("<IIQ", 1, 1, 1) + bytes(40))
    tables = (
        ConfigurationTable(ESRT_GUID, descs[7].phys_addr + 0x18),
        ConfigurationTable(acpi.guid, descs[n // 2].phys_addr),
    )
    return Machine(memory_map=MemoryMap(tuple(descs)), config_tables=tables, memory=memory)


def test_maps_past_e820max() -> None:
    """Over E820MAX rows Xen drops descriptors (efi_arch_process_memory_map): Xen's paths are
    simulated whole; bare metal, and a long map whose rows merge under E820MAX, are summed,
    and equal the whole simulation."""
    rows = _big(1100, merging=False)
    plan = grouped.plan(rows)
    assert plan is not None
    for spec in (PRESETS["native"], PRESETS["xen-4.17"], PRESETS["keep-boot-services"]):
        got = _summed(plan, spec)
        if spec.id == "xen-4.17":  # RT data (reserved) and BS data (RAM) alternate: 1,101 rows
            assert got is None
        else:  # bare metal; -mapbs makes BS data reserved too: the rows merge
            assert got is not None and words(got) == words(simulate(rows, spec))
    merged = _big(1100, merging=True)
    plan = grouped.plan(merged)
    assert plan is not None
    for spec in (PRESETS["native"], PRESETS["xen-4.17"], PRESETS["relocate-known"]):
        got = _summed(plan, spec)
        assert got is not None and words(got) == words(simulate(merged, spec))
