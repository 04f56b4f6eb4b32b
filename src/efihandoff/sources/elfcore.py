"""ELF cores (QEMU ``dump-guest-memory`` without paging, ``/proc/vmcore``, kdump): the PT_LOAD
program headers as dump segments. ``p_paddr`` is the physical address, ``p_offset`` the file
offset, ``p_filesz`` the bytes present and ``p_memsz`` the bytes described. Sources: System V
ABI (gABI) "ELF Header", "Program Header" and "Sections" (``PN_XNUM``: the real count in
section header 0's ``sh_info``); QEMU dump/dump.c ``write_elf64_load``."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from efihandoff.errors import ParseError
from efihandoff.sources.dumpmemory import U64_MAX, DumpSegment, FileBytes

ELF_MAGIC = b"\x7fELF"
ET_CORE = 4
PT_LOAD = 1
PN_XNUM = 0xFFFF
MAX_SEGMENTS = 1 << 18  # our bound on PT_LOAD headers kept

@dataclass(frozen=True)
class ElfLayout:
    """Where an ELF class keeps the header fields read here (gABI "ELF Header", "Program
    Header", "Sections"): sizes and offsets in bytes, struct codes for the address-sized ones."""

    ehdr: int  # ELF header size
    phoff: tuple[int, str]  # e_phoff: offset, struct code
    shoff: tuple[int, str]  # e_shoff
    phentsize: int  # offset of e_phentsize
    phnum: int  # offset of e_phnum
    shentsize: int  # offset of e_shentsize
    phdr: int  # program header size
    sh_info: int  # offset of sh_info in a section header
    shdr: int  # section header size


_ELF64 = ElfLayout(64, (32, "Q"), (40, "Q"), 54, 56, 58, 56, 44, 64)
_ELF32 = ElfLayout(52, (28, "I"), (32, "I"), 42, 44, 46, 32, 28, 40)
# Elf64_Phdr: p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align.
# Elf32_Phdr: p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, p_align.
_PHDR64 = "IIQQQQQQ"
_PHDR32 = "IIIIIIII"


def elf_segments(mm: FileBytes, size: int, problems: list[str]) -> tuple[str, list[DumpSegment]]:
    ident = mm[:16]
    if len(ident) < 16:
        raise ParseError("truncated ELF identification", offset=len(ident), what="ELF header")
    klass, data = ident[4], ident[5]
    if klass not in (1, 2):
        raise ParseError(f"unknown ELF class {klass}", offset=4, what="ELF header")
    if data not in (1, 2):
        raise ParseError(f"unknown ELF data encoding {data}", offset=5, what="ELF header")
    lay = _ELF64 if klass == 2 else _ELF32
    end = "<" if data == 1 else ">"
    if size < lay.ehdr:
        raise ParseError(
            f"truncated ELF header: {size} of {lay.ehdr} bytes", offset=size, what="ELF header"
        )
    head = mm[: lay.ehdr]
    (e_type,) = struct.unpack_from(end + "H", head, 16)
    if e_type != ET_CORE:
        raise ParseError(f"ELF type {e_type} is not a core file (4)", offset=16, what="ELF header")
    (phoff,) = struct.unpack_from(end + lay.phoff[1], head, lay.phoff[0])
    (shoff,) = struct.unpack_from(end + lay.shoff[1], head, lay.shoff[0])
    (phentsize,) = struct.unpack_from(end + "H", head, lay.phentsize)
    (phnum,) = struct.unpack_from(end + "H", head, lay.phnum)
    if phnum == PN_XNUM:
        # gABI: with more than 0xfffe headers the count is section header 0's sh_info.
        (shentsize,) = struct.unpack_from(end + "H", head, lay.shentsize)
        if shoff == 0 or shentsize < lay.shdr or shoff + lay.shdr > size:
            raise ParseError(
                "e_phnum is PN_XNUM but section header 0 is missing", offset=shoff, what="ELF"
            )
        (phnum,) = struct.unpack_from(end + "I", mm[shoff : shoff + lay.shdr], lay.sh_info)
    if phnum == 0:
        raise ParseError("ELF core without program headers", offset=lay.phnum, what="ELF")
    if phentsize < lay.phdr:
        raise ParseError(
            f"e_phentsize {phentsize} is below {lay.phdr}", offset=lay.phentsize, what="ELF"
        )
    if phnum > MAX_SEGMENTS:
        raise ParseError(f"{phnum} program headers, more than {MAX_SEGMENTS}", offset=0, what="ELF")
    table_end = phoff + phnum * phentsize
    if phoff < lay.ehdr or table_end > size:
        raise ParseError(
            f"program headers [{phoff:#x}, {table_end:#x}) run past the end of the file "
            f"({size:#x})",
            offset=phoff,
            what="ELF program headers",
        )
    fmt = end + (_PHDR64 if klass == 2 else _PHDR32)
    loads = []
    for i in range(phnum):
        off = phoff + i * phentsize
        fields = struct.unpack_from(fmt, mm[off : off + lay.phdr])
        if klass == 2:
            p_type, _fl, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, _al = fields
        else:
            p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, _fl, _al = fields
        if p_type == PT_LOAD:
            loads.append((off, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz))
    if not loads:
        raise ParseError("ELF core without PT_LOAD segments", offset=phoff, what="ELF")
    use_vaddr = len(loads) > 1 and all(ld[3] == 0 for ld in loads) and any(ld[2] for ld in loads)
    if use_vaddr:
        problems.append("every PT_LOAD has p_paddr 0: p_vaddr taken as the physical address")
    segments = []
    for hoff, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz in loads:
        phys = p_vaddr if use_vaddr else p_paddr
        memsz = max(p_memsz, p_filesz)
        if memsz == 0:
            continue
        if phys + memsz > U64_MAX + 1:
            problems.append(f"PT_LOAD at header {hoff:#x}: range wraps past 2^64, ignored")
            continue
        avail = p_filesz
        if p_filesz and p_offset + p_filesz > size:
            avail = max(0, size - p_offset)
            problems.append(
                f"PT_LOAD at header {hoff:#x} (phys {phys:#x}): {p_filesz:#x} bytes claimed at "
                f"file offset {p_offset:#x}, only {avail:#x} in the file; the rest is unknown"
            )
        segments.append(DumpSegment(phys, memsz, p_offset, avail, p_filesz, hoff))
    return ("elf64" if klass == 2 else "elf32"), segments



def looks_like_elf_core(head: bytes) -> bool:
    """Whether ``head`` starts an ELF core file (for source sniffing)."""
    return len(head) >= 18 and head[:4] == ELF_MAGIC and head[16:18] in (b"\x04\x00", b"\x00\x04")



__all__ = ["ELF_MAGIC", "MAX_SEGMENTS", "elf_segments", "looks_like_elf_core"]
