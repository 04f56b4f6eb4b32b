"""Invariants of every path on random valid machines (scenario dicts through build_machine)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from efihandoff import fwupd
from efihandoff.edk2 import BootServices
from efihandoff.machine import Machine
from efihandoff.paths import xen
from efihandoff.paths.presets import PRESETS, PathSpec, Policy, parse_path
from efihandoff.paths.simulate import PathResult, simulate
from efihandoff.paths.verdict import Verdict
from efihandoff.sources.scenario import build_machine
from efihandoff.uefi.esrt import ESRT_GUID, EsrtEntry
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import MemoryAttribute, MemoryMap, MemoryType

RT = int(MemoryAttribute.RUNTIME)
BS = (MemoryType.EfiBootServicesCode, MemoryType.EfiBootServicesData)
TYPES = [
    "EfiBootServicesData",
    "EfiBootServicesData",
    "EfiBootServicesCode",
    "EfiRuntimeServicesData",
    "EfiRuntimeServicesCode",
    "EfiACPIReclaimMemory",
    "EfiACPIMemoryNVS",
    "EfiLoaderData",
    "EfiConventionalMemory",
    "EfiReservedMemoryType",
]
ALLOC_TYPES = [
    "EfiBootServicesData",
    "EfiRuntimeServicesData",
    "EfiACPIReclaimMemory",
    "EfiLoaderData",
    "EfiBootServicesCode",
]
SPECS: list[PathSpec] = [
    *PRESETS.values(),
    parse_path("base=xen-4.16,linux=6.1,scrub=intact"),
    parse_path("base=xen-4.17,scrub=random"),
    parse_path("xen=4.17.0,boot=multiboot2"),
    parse_path("xen=4.19.5,prerelease"),
    parse_path("linux=6.1"),
]
FIXED = [PRESETS["xen-fixed"], PRESETS["relocate-known"], parse_path("xen=4.19.5,prerelease")]

_u32 = st.integers(0, 0xFFFFFFFF)
_guid = st.one_of(
    st.just("00000000-0000-0000-0000-000000000000"),
    st.binary(min_size=16, max_size=16).map(lambda b: str(Guid.from_bytes(b))),
)
_entry = st.fixed_dictionaries(
    {
        "fw_class": _guid,
        "fw_type": st.integers(0, 6),
        "fw_version": _u32,
        "lowest_supported_fw_version": _u32,
        "capsule_flags": _u32,
        "last_attempt_version": _u32,
        "last_attempt_status": _u32,
    }
)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    addr = 0x100000
    regions = []
    for _ in range(draw(st.integers(1, 9))):
        addr += draw(st.sampled_from([0, 0, 0x1000, 0x10000]))
        pages = draw(st.integers(1, 24))
        regions.append({"start": addr, "pages": pages, "type": draw(st.sampled_from(TYPES))})
        addr += pages << 12
    # The top region: where the builder's and Xen's pools come from.
    top = {"start": addr + 0x1000, "pages": 64, "type": "EfiConventionalMemory"}
    tables: list[dict[str, Any]] = []
    if draw(st.booleans()):
        entries = draw(st.lists(_entry, max_size=5))
        esrt: dict[str, Any] = {"name": "ESRT", "entry": entries}
        if draw(st.integers(0, 4)) == 0:
            esrt["fw_resource_version"] = 2
        if draw(st.integers(0, 4)) == 0:
            esrt["fw_resource_count_max"] = draw(st.integers(0, 8))
        tables.append(esrt)
    if draw(st.booleans()):
        tables.append({"guid": "3d0e6f2a-9c41-4b7e-8f52-1a6c0de4b7a9", "size": 96, "fill": 0xA5})
    if draw(st.booleans()):
        tables.append({"name": "TPMEventLog", "log_size": draw(st.integers(0, 300))})
    if draw(st.booleans()):
        tables.append({"name": "MEMATTR", "version": 2})
    for t in tables:
        if draw(st.booleans()):
            t["memory_type"] = draw(st.sampled_from(ALLOC_TYPES))
        else:
            r = draw(st.sampled_from(regions))
            size = r["pages"] << 12
            # Anywhere in the region, the last bytes included (tables that straddle its end).
            near_end = st.integers(max(size - 96, 0), size - 8)
            off = draw(st.one_of(st.integers(0, size - 8), near_end))
            t["address"] = r["start"] + (off & ~7)
    return {
        "memory_fill": draw(st.sampled_from(["zeros", "random"])),
        "seed": draw(st.integers(0, 3)),
        "region": [*regions, top],
        "table": tables,
    }


def _bytes_of(mm: MemoryMap | None, types: tuple[int, ...], attr: int = 0) -> int:
    assert mm is not None
    return sum(d.size for d in mm if d.type in types and d.attribute & attr == attr)


def _check_never_intact_over_reuse(m: Machine, r: PathResult) -> None:
    for tv in r.tables.values():
        if tv.verdict not in (Verdict.INTACT, Verdict.RELOCATED):
            continue
        assert tv.final_address is not None
        assert not any(s <= tv.final_address < e for s, e in r.reclaimed), (r.spec.id, tv)
        if tv.guid == ESRT_GUID and r.esrt_bytes is not None:
            assert m.read(tv.address or 0, len(r.esrt_bytes)) == r.esrt_bytes, r.spec.id


def _check_costs(m: Machine, r: PathResult) -> None:
    spec, cost = r.spec, r.cost
    if spec.native:
        # Linux keeps exactly the BS regions carrying RUNTIME in its final map.
        assert cost.reserved_bytes == _bytes_of(r.memmap, BS, RT)
        assert cost.held_during_boot_bytes == 0
    elif spec.mapbs:
        assert cost.reserved_bytes == _bytes_of(r.memmap, BS)
    elif spec.policy is Policy.RESERVE_HYPERCALL:
        assert cost.held_during_boot_bytes == _bytes_of(r.memmap, BS)
    else:
        # What Xen keeps for good: the pool pages of its copies, i.e. the growth of the
        # types it copies into between the firmware's map and its own.
        kept = (MemoryType.EfiACPIReclaimMemory, MemoryType.EfiRuntimeServicesData)
        grown = _bytes_of(r.memmap, kept) - _bytes_of(m.memory_map, kept)
        assert cost.reserved_bytes == grown


def _check_sysfs_parses_back(r: PathResult) -> None:
    if r.sysfs is None:
        return
    raw = r.esrt_bytes
    assert raw is not None
    tree = r.sysfs
    count = int(tree["efi/esrt/fw_resource_count"] or "")
    assert raw[:4] == count.to_bytes(4, "little")
    expected: dict[str, tuple[str, int, int]] = {}  # fwupd: one device per fw_class
    for i in range(count):
        base = f"efi/esrt/entries/entry{i}/"
        v = {k: tree[base + k] for k in ("fw_class", "fw_type", "capsule_flags")}
        assert all(x is not None and x.endswith("\n") for x in v.values())
        parsed = EsrtEntry(
            Guid.parse((v["fw_class"] or "").strip()),
            int(tree[base + "fw_type"] or ""),
            int(tree[base + "fw_version"] or ""),
            int(tree[base + "lowest_supported_fw_version"] or ""),
            int(tree[base + "capsule_flags"] or "", 16),
            int(tree[base + "last_attempt_version"] or ""),
            int(tree[base + "last_attempt_status"] or ""),
        )
        mapped = EsrtEntry.unpack(raw, 16 + 40 * i)
        assert parsed == mapped
        if mapped.fw_class != Guid.from_bytes(bytes(16)):  # fwupd drops the all-zero GUID
            expected[str(mapped.fw_class)] = (
                f"entry{i}",
                mapped.fw_version,
                mapped.lowest_supported_fw_version,
            )
    devices = fwupd.devices(tree) or []
    assert {d.guid: (d.entry, d.version, d.lowest) for d in devices} == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_invariants_on_every_path(data: dict[str, Any]) -> None:
    m = build_machine(data)
    for spec in SPECS:
        r = simulate(m, spec)
        _check_never_intact_over_reuse(m, r)
        _check_costs(m, r)
        _check_sysfs_parses_back(r)
        assert r.esrt_sysfs is (r.sysfs is not None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_relocation_copies_every_byte_on_fixed_versions(data: dict[str, Any]) -> None:
    m = build_machine(data)
    for spec in FIXED:
        bs = BootServices.from_machine(m)
        original = bs.memory.copy()
        xb = xen.boot(bs, spec)
        for reloc in xb.relocations:
            assert reloc.copied == reloc.size
            assert bs.memory.read(reloc.new, reloc.size) == original.read(reloc.old, reloc.size)
        assert simulate(m, spec).esrt.verdict is not Verdict.CORRUPT
