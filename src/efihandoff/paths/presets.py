"""Paths through the handoff: parameters, the named presets of docs/design.md, and a parser for
``xen=4.17.0,boot=multiboot2,linux=6.3`` style combinations."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from efihandoff.errors import UsageError
from efihandoff.machine import Fill
from efihandoff.rules import linux as linux_rules
from efihandoff.rules import xen as xen_rules
from efihandoff.rules.version import Version, exact_version, format_version


class BootMode(StrEnum):
    """How Xen was started."""

    EFI = "efi"  # xen.efi as an EFI application (efi_start)
    MULTIBOOT2 = "multiboot2"  # GRUB multiboot2 into efi_multiboot2


class Policy(StrEnum):
    """Which table-preservation design the hypervisor follows."""

    RELEASED = "released"  # what the given Xen version really does
    RELOCATE_KNOWN = "relocate-known"  # proposal: Xen copies every table it can size
    RESERVE_HYPERCALL = "reserve-hypercall"  # proposal: dom0 reserves through a hypercall


@dataclass(frozen=True)
class PathSpec:
    """One way through the handoff."""

    id: str
    linux: Version = (6, 3)
    xen: Version | None = None  # None: bare metal
    boot: BootMode = BootMode.EFI
    mapbs: bool = False  # xen.efi -mapbs
    policy: Policy = Policy.RELEASED
    prerelease_rt_data: bool = False  # Xen dc7da0874b before d7669c1014: copy into RT data
    scrub: Fill = Fill.ZEROS  # what reclaimed memory holds when the consumer looks
    # 3ea44aa78c carried as a patch by a build whose version predates it (distributions
    # backport fixes): True forces the whole copy; None follows the version.
    size_fix: bool | None = None
    # [_text, _end) of the PV dom0 kernel in dom0's pseudo-physical space (Xen prints it as
    # "Dom0 kernel: ... paddr A -> B"); None: linux.DOM0_KERNEL_START/END by version.
    dom0_kernel: tuple[int, int] | None = None
    description: str = ""

    @property
    def native(self) -> bool:
        return self.xen is None

    # -- Xen features by version (facts 5.1) ------------------------------------------------

    @property
    def xen_knows_esrt(self) -> bool:
        """Xen 4.17.0 dc7da0874b: efi_tables() records the ESRT; 4.16 knows nothing of it."""
        return xen_rules.knows_esrt(self.xen)

    @property
    def xen_relocates_esrt(self) -> bool:
        """efi_relocate_esrt runs from efi_start (4.17.0) and from efi_multiboot2 (8d7acf3f7d:
        4.18.0, backported as 1dcc9b6dfe to 4.17.1)."""
        if not self.xen_knows_esrt or self.policy is Policy.RESERVE_HYPERCALL:
            return False
        assert self.xen is not None  # xen_knows_esrt
        return self.boot is BootMode.EFI or xen_rules.relocates_esrt_from_multiboot2(self.xen)

    @property
    def xen_esrt_size_fixed(self) -> bool:
        """3ea44aa78c (2026): 4.22.0, 4.21.1, 4.20.3, 4.19.5; never on 4.17 / 4.18 (unless
        the build carries it: ``size_fix``)."""
        if self.size_fix is not None:
            return self.size_fix
        return xen_rules.esrt_size_fixed(self.xen)

    @property
    def xen_runtime_attr_reserved(self) -> bool:
        """f324300c83 (4.17.0) / 54f8ed80c8 (4.16.3): RUNTIME-attributed RAM types become
        E820_RESERVED instead of RAM."""
        return xen_rules.runtime_attr_reserved(self.xen)

    # -- Linux features by version (facts 3, 4, 5.7) ----------------------------------------

    @property
    def linux_xen_esrt(self) -> bool:
        """Linux 6.3 (01de145dc7fb, c0fecaa44dc3, aca1d27ac38a): ESRT under EFI_PARAVIRT,
        the config-table allowlist, and memory lookup by hypercall."""
        return linux_rules.xen_esrt(self.linux)

    @property
    def linux_skips_bogus(self) -> bool:
        """Linux 6.3 ab03e91e60ce: __efi_mem_desc_lookup disregards bogus descriptors."""
        return linux_rules.skips_bogus(self.linux)

    def label(self) -> str:
        """A one-line description of the stack."""
        if self.xen is None:
            hv = "bare metal"
        else:
            fix = ", size fix backported" if self.size_fix else ""
            mapbs = ", -mapbs" if self.mapbs else ""
            hv = f"Xen {format_version(self.xen)} ({self.boot}{mapbs}{fix})"
        pol = "" if self.policy is Policy.RELEASED else f", {self.policy} proposal"
        return f"{hv}, Linux {format_version(self.linux)}{' dom0' if self.xen else ''}{pol}"


PRESETS: dict[str, PathSpec] = {
    p.id: p
    for p in (
        PathSpec(
            "native",
            linux=(6, 3),
            description="bare metal; efi_mem_reserve() keeps a BS-data ESRT",
        ),
        PathSpec(
            "xen-4.16",
            xen=(4, 16, 5),
            description="no relocation; BS memory reclaimed; allowlist refuses BS-data tables",
        ),
        PathSpec(
            "xen-4.17",
            xen=(4, 17, 1),
            description="ESRT copied to EfiACPIReclaimMemory, 16 bytes short",
        ),
        PathSpec(
            "xen-4.17-linux-6.1",
            xen=(4, 17, 1),
            linux=(6, 1),
            description="dom0 6.1 never parses the ESRT",
        ),
        PathSpec("xen-fixed", xen=(4, 22, 0), description="relocation with the size fix"),
        PathSpec(
            "keep-boot-services",
            xen=(4, 16, 5),
            mapbs=True,
            description="-mapbs, no relocation: BS memory never reclaimed (rejected upstream: "
            "memory cost)",
        ),
        PathSpec(
            "relocate-known",
            xen=(4, 22, 0),
            policy=Policy.RELOCATE_KNOWN,
            description="proposal: Xen relocates every table whose GUID it has a size rule for",
        ),
        PathSpec(
            "reserve-hypercall",
            xen=(4, 16, 5),
            policy=Policy.RESERVE_HYPERCALL,
            description="proposal: dom0 reserves by hypercall; Xen defers reclaiming BS memory",
        ),
    )
}


#: The words a ``--path`` may hold (a trailing ``=`` takes a value), for help and completion.
PATH_KEYS = (
    "base=", "xen=", "linux=", "boot=", "mapbs", "policy=", "prerelease", "scrub=", "dom0_kernel=",
)


def parse_path(text: str) -> PathSpec:
    """A preset id, or ``key=value`` pairs: ``xen=4.17.0``, ``boot=efi|multiboot2``,
    ``linux=6.1``, ``mapbs``, ``policy=...``, ``prerelease``, ``scrub=zeros|random|intact``,
    ``dom0_kernel=0x1000000-0x4a00000`` (the PV dom0 kernel's [_text, _end));
    ``base=PRESET`` starts from a preset."""
    text = text.strip()
    if text in PRESETS:
        return PRESETS[text]
    if "=" not in text and text not in ("mapbs", "prerelease"):
        raise UsageError(f"unknown path {text!r}; presets: {', '.join(PRESETS)}")
    spec = PathSpec(id=text)
    seen: set[str] = set()
    for part in text.split(","):
        key, _, value = part.strip().partition("=")
        if key in seen:
            raise UsageError(f"path parameter {key!r} given twice in {text!r}")
        seen.add(key)
        try:
            if key == "base":
                spec = replace(PRESETS[value], id=text)
            elif key == "xen":
                spec = replace(spec, xen=None if value in ("", "none") else exact_version(value, 3))
            elif key == "linux":
                spec = replace(spec, linux=exact_version(value, 2))
            elif key == "boot":
                spec = replace(spec, boot=BootMode(value))
            elif key == "mapbs":
                spec = replace(spec, mapbs=value in ("", "1", "yes", "true"))
            elif key == "policy":
                spec = replace(spec, policy=Policy(value))
            elif key == "prerelease":
                spec = replace(spec, prerelease_rt_data=value in ("", "1", "yes", "true"))
            elif key == "scrub":
                spec = replace(spec, scrub=Fill(value))
            elif key == "dom0_kernel":
                spec = replace(spec, dom0_kernel=_span(value))
            else:
                raise UsageError(f"unknown path parameter {key!r} in {text!r}")
        except (KeyError, ValueError) as exc:
            raise UsageError(f"bad path parameter {part!r}: {exc}") from None
    return spec


def _span(text: str) -> tuple[int, int]:
    """``0x1000000-0x4a00000``: a non-empty [start, end)."""
    a, _, b = text.partition("-")
    start, end = int(a, 0), int(b, 0)
    if not 0 <= start < end:
        raise ValueError(text)
    return start, end

