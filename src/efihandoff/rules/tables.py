"""Known configuration tables with what each consumer does with them: the spec's entry
(``efihandoff.uefi.tables``: GUID, name, size rule) joined with Linux's and Xen's facts
(:mod:`efihandoff.rules.linux`, :mod:`efihandoff.rules.xen`).

Consumers that need to know who parses a table look it up here; ``table_size`` and the size
types are re-exported so one import serves them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from efihandoff.rules.linux import FORMER_LINUX_LABELS, LINUX_TABLES, LinuxTable, linux_table
from efihandoff.rules.xen import XEN_TABLES, XenTable, xen_table
from efihandoff.uefi import tables as spec_tables
from efihandoff.uefi.guid import Guid
from efihandoff.uefi.tables import (
    BYTES_NOT_AVAILABLE,
    Reader,
    SizeResult,
    SizeRule,
    TableSpec,
    table_size,
)

__all__ = [
    "BYTES_NOT_AVAILABLE",
    "FORMER_LINUX_LABELS",
    "REGISTRY",
    "KnownTable",
    "Reader",
    "SizeResult",
    "SizeRule",
    "by_any_linux_label",
    "by_linux_label",
    "by_name",
    "known",
    "linux_labels",
    "table_size",
]


@dataclass(frozen=True, slots=True)
class KnownTable:
    """One configuration-table GUID: the spec's entry and what Linux and Xen know of it.

    ``linux_parses`` is True when a Linux in the range this project models (6.1 and later) lists
    the GUID in ``common_tables[]`` or an architecture's ``arch_tables``; ``description`` says
    when a kernel version matters.
    """

    spec: TableSpec
    linux: LinuxTable
    xen: XenTable

    @property
    def guid(self) -> Guid:
        return self.spec.guid

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def macro(self) -> str:
        return self.spec.macro

    @property
    def size_rule(self) -> SizeRule | None:
        return self.spec.size_rule

    @property
    def description(self) -> str:
        return self.spec.description

    @property
    def linux_label(self) -> str | None:
        """What Linux prints for it in its ``efi:`` line."""
        return self.linux.label

    @property
    def linux_parses(self) -> bool:
        return self.linux.parses

    @property
    def linux_config(self) -> str | None:
        return self.linux.config

    @property
    def needs_efi_memmap(self) -> bool:
        return self.linux.needs_efi_memmap

    @property
    def xen_knows(self) -> bool:
        return self.xen.knows

    @property
    def xen_since(self) -> str | None:
        return self.xen.since


def _build() -> Mapping[Guid, KnownTable]:
    unknown = [n for n in (*LINUX_TABLES, *XEN_TABLES) if spec_tables.by_name(n) is None]
    if unknown:
        raise AssertionError(f"rules name tables the spec registry does not know: {unknown}")
    return MappingProxyType(
        {
            guid: KnownTable(spec, linux_table(spec.name), xen_table(spec.name))
            for guid, spec in spec_tables.REGISTRY.items()
        }
    )


REGISTRY: Mapping[Guid, KnownTable] = _build()
_BY_LABEL: Mapping[str, KnownTable] = MappingProxyType(
    {t.linux_label: t for t in REGISTRY.values() if t.linux_label is not None}
)
_BY_NAME: Mapping[str, KnownTable] = MappingProxyType({t.name: t for t in REGISTRY.values()})


def known(guid: Guid) -> KnownTable | None:
    """The registry entry for ``guid``, or None."""
    return REGISTRY.get(guid)


def by_name(name: str) -> KnownTable | None:
    """The table with our short ``name``."""
    return _BY_NAME.get(name)


def by_linux_label(label: str) -> KnownTable | None:
    """The table Linux prints as ``label`` in its ``efi: `` line (exact, case-sensitive)."""
    return _BY_LABEL.get(label)


def by_any_linux_label(label: str) -> KnownTable | None:
    """:func:`by_linux_label`, or the table a label of an older Linux (``MPS``) names."""
    table = _BY_LABEL.get(label)
    if table is None and label in FORMER_LINUX_LABELS:
        table = _BY_NAME.get(FORMER_LINUX_LABELS[label])
    return table


def linux_labels() -> list[str]:
    """Every Linux label, longest first, so ``SMBIOS 3.0`` is tried before ``SMBIOS``."""
    return sorted(_BY_LABEL, key=lambda label: (-len(label), label))
