"""Firmware and configuration findings for a whole Machine."""

from __future__ import annotations

from efihandoff.findings import Finding, error, info, warning
from efihandoff.machine import Machine
from efihandoff.rules.esrt import esrt_findings, header_findings
from efihandoff.uefi import tables as known_tables
from efihandoff.uefi.esrt import ESRT_GUID
from efihandoff.uefi.memmap import MemoryType, type_name

_REUSABLE = frozenset(
    {
        MemoryType.EfiBootServicesData,
        MemoryType.EfiBootServicesCode,
        MemoryType.EfiLoaderData,
        MemoryType.EfiLoaderCode,
    }
)


def machine_findings(machine: Machine) -> list[Finding]:
    """Everything wrong or notable in what the firmware hands over."""
    out: list[Finding] = []
    if machine.memory_map is not None:
        out += machine.memory_map.validate()
    if machine.system_table is not None and machine.system_table_address is not None:
        raw = machine.read(machine.system_table_address, machine.system_table.hdr.header_size)
        out += machine.system_table.validate(raw)
    seen: set = set()
    for t in machine.config_tables or ():
        kt = known_tables.known(t.guid)
        name = kt.name if kt else str(t.guid)
        if t.guid in seen:
            out.append(
                warning(
                    "table.duplicate",
                    f"{name} appears more than once in the configuration array; "
                    "Linux uses the last",
                )
            )
        seen.add(t.guid)
        if machine.memory_map is None:
            continue
        md = machine.memory_map.lookup(t.table)
        if md is None and not machine.memory_map_complete:
            continue  # a partial map (RUNTIME regions only) not reaching it proves nothing
        if md is None:
            out.append(
                warning(
                    "table.outside-map", f"{name} at {t.table:#x} is in no memory-map descriptor"
                )
            )
            continue
        res = known_tables.table_size(t.guid, machine.read, t.table, md.end - t.table)
        # table_size caps its answer at the descriptor; the table's own claim is in ``claimed``
        claim = res.claimed if res.claimed is not None else res.size
        if claim is not None and t.table + claim > md.end:
            out.append(
                error(
                    "table.straddles",
                    f"{name} at {t.table:#x} ({claim} bytes) runs past the end of its "
                    f"{md.type_name} descriptor at {md.end:#x}",
                )
            )
        guessed = machine.memory_type_candidates.get(t.table)
        if t.guid != ESRT_GUID and guessed:
            reusable = [c for c in guessed if c in _REUSABLE]
            if reusable:
                out.append(
                    info(
                        "table.reclaimable",
                        f"{name} may be in {' / '.join(type_name(c) for c in reusable)} (the "
                        "evidence leaves its type open), memory a hypervisor may reuse",
                    )
                )
        elif md.type in _REUSABLE and t.guid != ESRT_GUID:
            out.append(
                info(
                    "table.reclaimable",
                    f"{name} is in {md.type_name}, memory a hypervisor may reuse",
                )
            )
    return out + _esrt_findings(machine)


def _esrt_findings(machine: Machine) -> list[Finding]:
    if machine.esrt_stand_ins:
        return []  # the header bytes stand in for what the log's messages imply
    esrt = machine.read_esrt()
    if esrt is None or esrt.header is None:
        return []
    addr, table = esrt.address, esrt.table
    # A type the evidence only guesses is no fact to judge the table's placement by.
    md = None if addr in machine.memory_type_candidates else machine.lookup(addr)
    room = md.end - addr if md else None
    if table is None:
        return header_findings(
            esrt.header,
            room=room,
            memory_type=md.type if md else None,
            memory_attribute=md.attribute if md else None,
        )
    return esrt_findings(
        table,
        room=room,
        memory_type=md.type if md else None,
        memory_attribute=md.attribute if md else None,
    )
