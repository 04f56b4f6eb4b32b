"""The ``explain --json`` document (keys are a contract of docs/design.md)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from efihandoff import fwupd
from efihandoff.descriptions import entry_names
from efihandoff.explain import OBSERVED, Explanation
from efihandoff.machine import Machine
from efihandoff.paths.simulate import PathResult
from efihandoff.uefi import tables as known_tables
from efihandoff.uefi.esrt import ESRT_GUID, Esrt
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.memmap import type_name

SCHEMA = "efihandoff/explain/1"


def explain_document(ex: Explanation) -> dict[str, Any]:
    """Everything explain knows, as plain JSON-able data."""
    machine = ex.machine
    return {
        "schema": SCHEMA,
        "sources": [{**v.source.to_json(), "role": str(v.role)} for v in ex.views],
        "machine": {
            "name": machine.name,
            "description": machine.description,
            "firmware_vendor": machine.firmware_vendor,
            "notes": machine.notes,
            "role": str(ex.who.role),
            "xen_version": ex.who.xen_text,
            "xen_boot": None if ex.who.xen_boot is None else str(ex.who.xen_boot),
            "linux_version": ex.who.linux_text,
        },
        "memory_map": memory_map_json(machine, ex.memory_map_evidence),
        "tables": tables_json(machine),
        "esrt": esrt_json(machine) or _sysfs_esrt_json(ex),
        "paths": {
            pid: path_json(r, ex.observed_label if pid == OBSERVED else None)
            for pid, r in ex.results.items()
        },
        "findings": [f.to_json() for f in ex.findings],
        "advice": ex.advice,
    }


def memory_map_json(machine: Machine, evidence: str) -> list[dict[str, Any]] | None:
    if machine.memory_map is None:
        return None
    return [
        {
            "type": d.type_name,
            "start": d.phys_addr,
            "pages": d.num_pages,
            "attribute": d.attribute,
            "evidence": evidence,
        }
        for d in machine.memory_map
    ]


def tables_json(machine: Machine) -> list[dict[str, Any]]:
    out = []
    for t in machine.config_tables or ():
        kt = known_tables.known(t.guid)
        md = machine.lookup(t.table)
        size = known_tables.table_size(
            t.guid, machine.read, t.table, md.end - t.table if md else None
        )
        types = machine.memory_type_candidates.get(t.table)
        if t.guid == ESRT_GUID and "fw_resource_count" in machine.esrt_stand_ins:
            size = replace(size, size=None)  # the header's count is a stand-in
        out.append(
            {
                "guid": str(t.guid),
                "name": kt.name if kt else str(t.guid),  # a GUID Linux does not know
                "known": kt is not None,
                "address": t.table,
                "size": size.size,
                "size_reason": size.reason,
                # several candidate types: none is a fact
                "memory_type": md.type_name if md and not types else None,
                "memory_type_candidates": [type_name(c) for c in types] if types else None,
                "memory_type_evidence": machine.memory_type_evidence.get(
                    t.table, "memory map" if md else None
                ),
            }
        )
    return out


def esrt_json(machine: Machine) -> dict[str, Any] | None:
    esrt = machine.read_esrt()
    if esrt is None:
        return None
    out: dict[str, Any] = {
        "address": esrt.address,
        "fw_resource_count": None,
        "fw_resource_count_max": None,
        "fw_resource_version": None,
        "entries": None,
    }
    hdr = esrt.header
    if hdr is None:
        return out
    out.update(
        {
            name: None if name in machine.esrt_stand_ins else getattr(hdr, name)
            for name in ("fw_resource_count", "fw_resource_count_max", "fw_resource_version")
        }
    )
    if machine.esrt_stand_ins:
        return out  # the bytes are stand-ins for checks, not the firmware's
    if esrt.table is not None:
        out["entries"] = _esrt_fields(esrt.table)["entries"]
    elif hdr.fw_resource_count <= _PARTIAL_MAX:
        out["entries"] = _partial_entries(machine, esrt.address + 16, hdr.fw_resource_count)
    if out["entries"] is not None:
        out["names"] = [entry_names(e) for e in out["entries"]]  # words beside the numbers
    return out


_PARTIAL_MAX = 128  # efi_esrt_init's cap: more entries than this are never read
_FIELD_AT = {  # EFI_SYSTEM_RESOURCE_ENTRY offsets of the u32 fields (facts 1.7)
    "fw_type": 16,
    "fw_version": 20,
    "lowest_supported_fw_version": 24,
    "capsule_flags": 28,
    "last_attempt_version": 32,
    "last_attempt_status": 36,
}


def _partial_entries(machine: Machine, base: int, count: int) -> list[dict[str, Any]] | None:
    """Entries field by field where only some of their bytes are known (e.g. the original of
    Xen's short copy: its last 16 bytes are not in the evidence): None where unknown; None for
    the whole list when no entry is known at all."""
    out: list[dict[str, Any]] = []
    for i in range(count):
        at = base + 40 * i
        raw = machine.read(at, 16)
        e: dict[str, Any] = {"fw_class": None if raw is None else str(Guid.from_bytes(raw))}
        for name, off in _FIELD_AT.items():
            v = machine.read(at + off, 4)
            e[name] = None if v is None else int.from_bytes(v, "little")
        out.append(e)
    if all(v is None for e in out for v in e.values()):
        return None
    return out


def _sysfs_esrt_json(ex: Explanation) -> dict[str, Any] | None:
    """The ESRT as a /sys/firmware copy showed it, when nothing says where it lives."""
    for v in ex.views:
        esrt = v.sysfs.esrt.to_esrt() if v.sysfs is not None and v.sysfs.esrt else None
        if esrt is not None:
            return {"address": None, "from": v.source.path, **_esrt_fields(esrt)}
    return None


def _esrt_fields(table: Esrt) -> dict[str, Any]:
    return {
        "fw_resource_count": table.fw_resource_count,
        "fw_resource_count_max": table.fw_resource_count_max,
        "fw_resource_version": table.fw_resource_version,
        "entries": [
            {
                "fw_class": str(e.fw_class),
                "fw_type": e.fw_type,
                "fw_version": e.fw_version,
                "lowest_supported_fw_version": e.lowest_supported_fw_version,
                "capsule_flags": e.capsule_flags,
                "last_attempt_version": e.last_attempt_version,
                "last_attempt_status": e.last_attempt_status,
            }
            for e in table.entries
        ],
    }


def path_json(r: PathResult, label: str | None = None) -> dict[str, Any]:
    return {
        "label": label or r.spec.label(),
        "description": r.spec.description,
        "tables": {str(g): tv.to_json() for g, tv in r.tables.items()},
        "esrt_sysfs": r.esrt_sysfs,
        "sysfs": r.sysfs,
        # sysfs files whose values the model cannot know (bytes nobody wrote): never numbers
        "unknown_values": sorted(fwupd.unknown_files(r.sysfs)),
        "log": r.log,
        "fwupd_devices": None
        if r.fwupd_devices is None
        else [d.to_json() for d in r.fwupd_devices],
        "cost": r.cost.to_json(),
        "kexec": {str(g): tv.to_json() for g, tv in r.kexec.items()},
        "esrt_differences": r.esrt_differences,
        "reclaimed": [[start, end] for start, end in r.reclaimed],
        # false when the stack never brings the OS up; halt: what the real software prints
        "booted": r.booted,
        "halt": r.halt.to_json() if r.halt is not None else None,
    }
