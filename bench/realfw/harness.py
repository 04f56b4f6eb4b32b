"""Real-firmware bench: boot OVMF + (Xen 4.17 +) Linux 6.1/6.12 under QEMU with an injected ESRT
and record what the real software does with it.

Importable from ``bench/realfw`` (``import harness``). Standard library plus efihandoff only.

One :class:`Case` = (ESRT placement memory type, ESRT content, stack). For each case the harness
builds an ESP directory (the injector as ``\\EFI\\BOOT\\BOOTX64.EFI``, ``\\efihandoff\\inject.bin``
with the table, ``\\efihandoff\\next.txt`` naming the next stage, the kernel, Xen and a busybox
initramfs), boots it under QEMU (TCG, q35, OVMF, ``-cpu qemu64``) with the serial port in a file,
and parses the log into a :class:`RealOutcome`-shaped dict. Results are cached by a hash of
everything that goes into the boot, so a rerun costs nothing.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import fnmatch
import glob
import gzip
import hashlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = HERE / "cache"
OUT = HERE / "out"
KERNELS = CACHE / "kernels"
INJECTOR_DIR = HERE / "injector"

if str(REPO / "src") not in sys.path:  # running from a checkout without installing
    sys.path.insert(0, str(REPO / "src"))

if str(HERE) not in sys.path:  # imported from elsewhere (tests): the bench's own modules
    sys.path.insert(0, str(HERE))

import realfw_live  # noqa: E402

from efihandoff.uefi.guid import Guid  # noqa: E402

# Bump when the way a case is booted or parsed changes, to invalidate cached results.
HARNESS_VERSION = "1"

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
XEN_EFI = Path("/boot/xen-4.17-amd64.efi")
# The same Xen as a multiboot2 image, as GRUB loads it (xen-hypervisor-4.17-amd64 ships both).
XEN_GZ = Path("/boot/xen-4.17-amd64.gz")
GRUB_MKSTANDALONE = "grub-mkstandalone"
GRUB_MODULES_DIR = Path("/usr/lib/grub/x86_64-efi")
BUSYBOX = Path("/bin/busybox")
QEMU = "qemu-system-x86_64"
FWUPDTOOL = "fwupdtool"
GNU_EFI_LDS = Path("/usr/lib/elf_x86_64_efi.lds")

ESRT_GUID = Guid.parse("b122a263-3661-4f68-9929-78f8b0d62180")

# Xen 4.17.7 in three ways: xen.efi chain-loaded from the injector (``xen-4.17``), the same
# xen.efi with ``-mapbs`` in its load options (``xen-4.17-mapbs``), and xen.gz loaded by GRUB 2
# with multiboot2 (``xen-4.17-multiboot2``: how most distributions, Qubes 4.2 among them, boot it).
BASE_STACKS = ("linux-6.1", "linux-6.12", "xen-4.17+linux-6.1", "xen-4.17+linux-6.12")
MULTIBOOT2_STACKS = ("xen-4.17-multiboot2+linux-6.1", "xen-4.17-multiboot2+linux-6.12")
MAPBS_STACKS = ("xen-4.17-mapbs+linux-6.1", "xen-4.17-mapbs+linux-6.12")
# Debian's xen 4.17 source with the ESRT size fix (build_fixed_xen), as xen.efi.
FIXED_STACKS = ("xen-4.17-fixed+linux-6.1", "xen-4.17-fixed+linux-6.12")
# The live reader (realfw_live): a Debian root with the project's wheel runs `efihandoff
# explain --json` and `efihandoff collect` inside the guest, natively and as a dom0.
LIVE_STACKS = ("live+linux-6.12", "xen-4.17-live+linux-6.12")
STACKS = (*BASE_STACKS, *MULTIBOOT2_STACKS, *MAPBS_STACKS, *FIXED_STACKS, *LIVE_STACKS)
CONTENTS = ("valid2", "valid5", "version2", "count0")
# Short placement names -> EFI_MEMORY_TYPE (UEFI 2.10 table 7.5).
PLACEMENTS = {
    "reserved": 0,  # EfiReservedMemoryType
    "loaderdata": 2,  # EfiLoaderData
    "bscode": 3,  # EfiBootServicesCode
    "bsdata": 4,  # EfiBootServicesData
    "rtdata": 6,  # EfiRuntimeServicesData
    "conventional": 7,  # EfiConventionalMemory: edk2 AllocatePool refuses it
    "unusable": 8,  # EfiUnusableMemory
    "acpireclaim": 9,  # EfiACPIReclaimMemory
    "acpinvs": 10,  # EfiACPIMemoryNVS
}
# The issue's matrix: BS data, RT data, ACPI reclaim, reserved, and a type Linux refuses.
MATRIX_PLACEMENTS = ("bsdata", "rtdata", "acpireclaim", "reserved", "bscode")
# The live stacks test the reader, not the ESRT's fate: one content, the placements whose ESRT
# reaches a 6.12 dom0 in three different ways (copied short, kept, kept in ACPI reclaim).
LIVE_MATRIX = (("bsdata", "valid2"), ("rtdata", "valid2"), ("acpireclaim", "valid5"))
# The model's path (efihandoff.paths.presets.parse_path) for each stack: the real versions; xen.efi
# chain-loaded from the injector is boot mode efi (efi_start), with or without -mapbs; GRUB's
# multiboot2 is boot=multiboot2 (efi_multiboot2).
PATH_FOR_STACK = {
    "linux-6.1": "linux=6.1",
    "linux-6.12": "linux=6.12",
    "xen-4.17+linux-6.1": "xen=4.17.7,boot=efi,linux=6.1",
    "xen-4.17+linux-6.12": "xen=4.17.7,boot=efi,linux=6.12",
    "xen-4.17-multiboot2+linux-6.1": "xen=4.17.7,boot=multiboot2,linux=6.1",
    "xen-4.17-multiboot2+linux-6.12": "xen=4.17.7,boot=multiboot2,linux=6.12",
    "xen-4.17-mapbs+linux-6.1": "xen=4.17.7,boot=efi,mapbs,linux=6.1",
    "xen-4.17-mapbs+linux-6.12": "xen=4.17.7,boot=efi,mapbs,linux=6.12",
    # a 4.17 with 3ea44aa78c's size fix behaves as the releases that have it: the xen-fixed preset
    "xen-4.17-fixed+linux-6.1": "base=xen-fixed,linux=6.1",
    "xen-4.17-fixed+linux-6.12": "base=xen-fixed,linux=6.12",
    "live+linux-6.12": "linux=6.12",
    "xen-4.17-live+linux-6.12": "xen=4.17.7,boot=efi,linux=6.12",
}
# The machine as the model sees it (regions and OVMF's own tables); scenario_for adds the case's.
SCENARIO = HERE / "ovmf-q35.toml"

DEFAULT_TIMEOUT = 150.0

XEN_OPTIONS = (
    "console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all dom0_mem=512M,max:512M"
)
# quiet: the console gets warnings only (faster under TCG); /init dumps the full dmesg.
LINUX_ARGS = "efi=debug panic=-1 quiet"


@dataclass(frozen=True, slots=True)
class Case:
    """One boot: ESRT in memory type ``placement`` with ``content``, booted by ``stack``."""

    id: str
    placement: str
    content: str
    stack: str

    @classmethod
    def make(cls, placement: str, content: str, stack: str) -> Case:
        """A case with the canonical id ``placement-content-stack``."""
        if placement not in PLACEMENTS:
            raise ValueError(f"unknown placement {placement!r}")
        if content not in CONTENTS:
            raise ValueError(f"unknown content {content!r}")
        if stack not in STACKS:
            raise ValueError(f"unknown stack {stack!r}")
        return cls(f"{placement}-{content}-{stack}", placement, content, stack)

    @property
    def memory_type(self) -> int:
        """The EFI memory type the injector allocates the ESRT in."""
        return PLACEMENTS[self.placement]

    @property
    def xen(self) -> bool:
        """True when the stack boots Xen 4.17 with a dom0."""
        return self.stack.startswith("xen-")

    @property
    def kernel(self) -> str:
        """The kernel slot under cache/kernels (``linux-6.1`` or ``linux-6.12``)."""
        return self.stack.split("+")[-1]

    @property
    def boot(self) -> str | None:
        """How Xen is started: ``efi`` (xen.efi from the injector), ``multiboot2`` (xen.gz from
        GRUB 2); None natively."""
        if not self.xen:
            return None
        return "multiboot2" if "-multiboot2+" in self.stack else "efi"

    @property
    def mapbs(self) -> bool:
        """True when xen.efi gets ``-mapbs`` in its load options."""
        return "-mapbs+" in self.stack

    @property
    def fixed(self) -> bool:
        """True when Xen is the bench's build with the ESRT size fix (build_fixed_xen)."""
        return "-fixed+" in self.stack

    @property
    def live(self) -> bool:
        """True when the guest is the live-reader root (realfw_live), not the busybox one."""
        return "live" in self.stack.split("+")[0].split("-")


def matrix(placements: Iterable[str] = MATRIX_PLACEMENTS,
           stacks: Iterable[str] = STACKS) -> list[Case]:
    """The full matrix: placements x contents x stacks."""
    stacks = tuple(stacks)
    placements = tuple(placements)
    out = [Case.make(p, c, s) for p in placements for c in CONTENTS for s in stacks
           if s not in LIVE_STACKS]
    return out + [Case.make(p, c, s) for s in stacks if s in LIVE_STACKS
                  for p, c in LIVE_MATRIX if p in placements]


SMOKE = (
    ("bsdata", "valid2", "linux-6.1"),
    ("bsdata", "valid2", "linux-6.12"),
    ("bsdata", "valid2", "xen-4.17+linux-6.1"),
    ("bsdata", "valid2", "xen-4.17+linux-6.12"),
    ("rtdata", "valid2", "linux-6.1"),
    ("rtdata", "valid5", "xen-4.17+linux-6.12"),
    ("acpireclaim", "valid5", "linux-6.12"),
    ("reserved", "valid2", "xen-4.17+linux-6.12"),
    ("bscode", "valid2", "linux-6.12"),
    ("bsdata", "count0", "xen-4.17+linux-6.12"),
    # the stacks added for issue 13 point 5: the most telling placement on each
    ("bsdata", "valid2", "xen-4.17-multiboot2+linux-6.12"),
    ("bsdata", "valid2", "xen-4.17-multiboot2+linux-6.1"),
    ("bsdata", "valid2", "xen-4.17-mapbs+linux-6.12"),
    ("bsdata", "valid2", "xen-4.17-mapbs+linux-6.1"),
    ("bsdata", "valid2", "xen-4.17-fixed+linux-6.12"),
    ("bsdata", "valid5", "xen-4.17-fixed+linux-6.1"),
    ("bsdata", "valid2", "live+linux-6.12"),
    ("bsdata", "valid2", "xen-4.17-live+linux-6.12"),
)


def smoke() -> list[Case]:
    """At least one case of every stack (bsdata-valid2 on each added one)."""
    return [Case.make(*t) for t in SMOKE]


# ---------------------------------------------------------------------------------------------
# ESRT contents


def _entries() -> list[Any]:
    from efihandoff.uefi.esrt import EsrtEntry

    # entry0/entry1: fwupd plugins/uefi-capsule/tests/efi/esrt values (facts 6.3); the rest are
    # ours, chosen so every field differs from entry to entry.
    return [
        EsrtEntry(Guid.parse("ddc0ee61-e7f0-4e7d-acc5-c070a398838e"), 1, 65586, 65582, 0xFE,
                  18472960, 1),
        EsrtEntry(Guid.parse("671d19d0-d43c-4852-98d9-1ce16f9967e4"), 2, 3090287969, 1, 0x8010,
                  0, 0),
        EsrtEntry(Guid.parse("3b8c8162-188c-46a4-aec9-be43f1d65697"), 2, 0x10203, 0x10000,
                  0x50000, 0x10202, 0),
        EsrtEntry(Guid.parse("5d2e7a51-8f1c-4b0e-9a37-c4f2e6d10a11"), 3, 7, 7, 0x20001, 7, 3),
        EsrtEntry(Guid.parse("a0b1c2d3-e4f5-4607-8819-2a3b4c5d6e7f"), 1, 0x01000200, 0x01000100,
                  0, 0x01000300, 0x1001),
    ]


def esrt_bytes(content: str) -> bytes:
    """The ESRT bytes for a content name, built with ``efihandoff.uefi.esrt``."""
    from efihandoff.uefi.esrt import Esrt

    e = _entries()
    if content == "valid2":
        return Esrt(2, 2, 1, tuple(e[:2])).build()
    if content == "valid5":
        # fw_resource_count_max above the count, as edk2 CreateFmpBasedEsrt may leave it.
        return Esrt(5, 8, 1, tuple(e)).build()
    if content == "version2":
        return Esrt(2, 2, 2, tuple(e[:2])).build()
    if content == "count0":
        # Header says 0 entries; the allocation still holds two (capacity, as in edk2).
        return Esrt(0, 2, 1, tuple(e[:2])).build()
    raise ValueError(f"unknown content {content!r}")


# ---------------------------------------------------------------------------------------------
# The injector's input file

INJECT_MAGIC = b"EHINJ001"
_INJ_HEAD = struct.Struct("<8sI")
_INJ_REC = struct.Struct("<16sIIQ")
FLAG_CONFIG_TABLE = 1


@dataclass(frozen=True, slots=True)
class Record:
    """One allocation the injector makes: ``data`` in ``memory_type`` (as a config table)."""

    guid: Guid
    memory_type: int
    data: bytes
    config_table: bool = True


def encode_inject(records: Sequence[Record]) -> bytes:
    """The bytes of ``\\efihandoff\\inject.bin``."""
    out = [_INJ_HEAD.pack(INJECT_MAGIC, len(records))]
    for r in records:
        flags = FLAG_CONFIG_TABLE if r.config_table else 0
        out.append(_INJ_REC.pack(r.guid.to_bytes(), r.memory_type, flags, len(r.data)))
        out.append(r.data)
    return b"".join(out)


def decode_inject(data: bytes) -> list[Record]:
    """Inverse of :func:`encode_inject` (ValueError on bad input)."""
    if len(data) < _INJ_HEAD.size:
        raise ValueError("inject.bin too short")
    magic, count = _INJ_HEAD.unpack_from(data, 0)
    if magic != INJECT_MAGIC:
        raise ValueError("bad inject.bin magic")
    off = _INJ_HEAD.size
    out = []
    for _ in range(count):
        if len(data) - off < _INJ_REC.size:
            raise ValueError("truncated record")
        raw, mtype, flags, length = _INJ_REC.unpack_from(data, off)
        off += _INJ_REC.size
        if length > len(data) - off:
            raise ValueError("truncated record data")
        out.append(Record(Guid.from_bytes(raw), mtype, data[off : off + length],
                          bool(flags & FLAG_CONFIG_TABLE)))
        off += length
    return out


def records_for(case: Case) -> list[Record]:
    """What the injector installs for a case: the ESRT alone."""
    return [Record(ESRT_GUID, case.memory_type, esrt_bytes(case.content))]


# ---------------------------------------------------------------------------------------------
# Build steps: injector, initramfs


def build_injector(out_dir: Path | None = None) -> Path:
    """Build ``inject.efi`` with gnu-efi (cached by the source's hash); return its path."""
    digest = _hash_files([INJECTOR_DIR / "inject.c", INJECTOR_DIR / "Makefile"])[:16]
    out_dir = out_dir or CACHE / "injector" / digest
    efi = out_dir / "inject.efi"
    if efi.exists():
        return efi
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["make", "-s", "-C", str(INJECTOR_DIR), f"OUT={out_dir}"], check=True,
                   stdout=subprocess.DEVNULL)
    return efi


# GRUB 2 as the distributions boot Xen: one standalone EFI image (grub-mkstandalone, every
# module in its memdisk) whose embedded grub.cfg finds the ESP by a file only the bench's ESP has
# and runs the case's \efihandoff\grub.cfg from there (grub_cfg), so one image serves every case.
GRUB_EMBEDDED_CFG = """\
search --no-floppy --set=root --file /efihandoff/grub.cfg
configfile /efihandoff/grub.cfg
"""
# Loaded into the core image: what the embedded grub.cfg needs before it can read the ESP.
GRUB_PRELOAD = ("part_msdos", "part_gpt", "fat", "search", "search_fs_file", "configfile",
                "normal", "multiboot2", "gzio", "echo")


def grub_version() -> str | None:
    """The installed grub-efi-amd64-bin's version (None when it is not installed)."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "grub-efi-amd64-bin"],
                             capture_output=True, text=True, check=False).stdout.strip()
    except FileNotFoundError:
        return None
    return out or None


def build_grub(out_dir: Path | None = None) -> Path:
    """Build ``grubx64.efi`` with ``grub-mkstandalone -O x86_64-efi`` and
    :data:`GRUB_EMBEDDED_CFG` as its ``/boot/grub/grub.cfg`` (cached by the GRUB version, the
    embedded cfg and the preloaded modules); return its path."""
    key = json.dumps([grub_version(), GRUB_EMBEDDED_CFG, GRUB_PRELOAD])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    out_dir = out_dir or CACHE / "grub" / digest
    efi = out_dir / "grubx64.efi"
    if efi.exists():
        return efi
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = out_dir / "embedded.cfg"
    cfg.write_text(GRUB_EMBEDDED_CFG)
    tmp = out_dir / "grubx64.efi.tmp"
    subprocess.run([GRUB_MKSTANDALONE, "-O", "x86_64-efi", "--locales=", "--themes=",
                    "--fonts=", "--modules=" + " ".join(GRUB_PRELOAD), "-o", str(tmp),
                    f"boot/grub/grub.cfg={cfg}"], check=True, stdout=subprocess.DEVNULL)
    tmp.replace(efi)
    return efi


def grub_cfg(case: Case, dump: bool = False) -> str:
    """The case's ``\\efihandoff\\grub.cfg``: Xen with multiboot2, the dom0 kernel and initrd as
    module2, as Debian's /etc/grub.d/20_linux_xen writes an entry (without its ``placeholder``
    words: Xen's cmdline_cook strips no image name when the loader is GRUB 2)."""
    extra = " ehdump" if dump else ""
    return (
        "insmod gzio\n"
        "insmod multiboot2\n"
        "echo 'efihandoff-grub: multiboot2 /EFI/xen/xen.gz'\n"
        f"multiboot2 /EFI/xen/xen.gz {XEN_OPTIONS}\n"
        f"module2 /EFI/xen/vmlinuz console=hvc0 earlyprintk=xen {LINUX_ARGS}{extra}\n"
        "module2 --nounzip /EFI/xen/initrd.gz\n"
        "boot\n"
    )


# The fixed Xen: Debian's xen 4.17 source package (install-deps downloads it into
# cache/xen-src: the installed hypervisor's version when the archive serves it), with this patch
# (written for the bench from the facts: get_esrt_size must count the 16-byte ESRT header as
# well as the 40-byte entries, as 3ea44aa78c does upstream), the hypervisor alone built with its
# default configuration. About 4-5 minutes on two cores; cached by the source, patch and recipe.
XEN_SRC = CACHE / "xen-src"
XEN_ESRT_SIZE_PATCH = """\
Description: ESRT relocation copies the header too (efihandoff bench)
 get_esrt_size() returned only FwResourceCount * 40, so efi_relocate_esrt() copied the ESRT
 16 bytes short: the header (count, max, version) is 16 bytes before the entries.
--- a/xen/common/efi/boot.c
+++ b/xen/common/efi/boot.c
@@ -622,5 +622,6 @@
     if ( esrt_ptr->FwResourceCount > available_len / sizeof(esrt_ptr->Entries[0]) )
         return 0;
\x20
-    return esrt_ptr->FwResourceCount * sizeof(esrt_ptr->Entries[0]);
+    return offsetof(EFI_SYSTEM_RESOURCE_TABLE, Entries) +
+           esrt_ptr->FwResourceCount * sizeof(esrt_ptr->Entries[0]);
 }
"""
XEN_BUILD = ("make -s XEN_TARGET_ARCH=x86_64 defconfig",
             "make -s -j2 XEN_TARGET_ARCH=x86_64 build")


def xen_source_version() -> str | None:
    """The Debian version of the xen source in cache/xen-src (None: not downloaded)."""
    v = XEN_SRC / "VERSION"
    return v.read_text().strip() if v.exists() else None


def fixed_xen_version() -> str | None:
    """What the fixed Xen calls itself (``4.17.5`` for source 4.17.5+72-g01140da4e8-1)."""
    v = xen_source_version()
    m = re.match(r"(?:\d+:)?(\d+\.\d+\.\d+)", v or "")
    return m[1] if m else None


def build_fixed_xen(out_dir: Path | None = None) -> Path:
    """Build the fixed xen.efi (cached); return its path. RuntimeError when the source is not
    in cache/xen-src (run install-deps) or the patch does not apply."""
    version = xen_source_version()
    dsc = next(iter(sorted(XEN_SRC.glob("xen_*.dsc"))), None) if version else None
    if version is None or dsc is None:
        raise RuntimeError("no xen source in cache/xen-src: run bench/realfw/install-deps")
    key = json.dumps([version, XEN_ESRT_SIZE_PATCH, XEN_BUILD])
    out_dir = out_dir or CACHE / "xen-fixed" / hashlib.sha256(key.encode()).hexdigest()[:16]
    efi = out_dir / "xen.efi"
    if efi.exists():
        return efi
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="realfw-xen-", dir=_workroot()) as tmp:
        src = Path(tmp) / "xen"
        subprocess.run(["dpkg-source", "--no-check", "-x", str(dsc), str(src)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proc = subprocess.run(["patch", "-p1", "--forward"], input=XEN_ESRT_SIZE_PATCH,
                              cwd=src, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"the ESRT size patch does not apply to xen {version}: "
                               f"{proc.stdout[-500:]}")
        log = out_dir / "build.log"
        with log.open("w") as f:
            start = time.monotonic()
            for cmd in XEN_BUILD:
                subprocess.run(cmd.split(), cwd=src / "xen", check=True, stdout=f,
                               stderr=subprocess.STDOUT)
            f.write(f"built in {time.monotonic() - start:.0f} s\n")
        shutil.copyfile(src / "xen" / "xen.efi", out_dir / "xen.efi.tmp")
        (out_dir / "xen.efi.tmp").replace(efi)
    return efi


# xen.efi's load options under -mapbs (efi_start: a plain UCS-2 command line whose first word
# is the image's name, then its options).
MAPBS_LOAD_OPTIONS = "xen.efi -mapbs"


_INIT_V3 = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
dmesg -n 1
echo "EHMARK begin"
echo "EHCMDLINE $(cat /proc/cmdline)"
echo "EHLS $(ls /sys/firmware/efi 2>&1 | tr '\n' ' ')"
if [ -d /sys/firmware/efi/esrt ]; then
  echo "EHESRT present"
  cd /sys/firmware/efi/esrt
  for f in $(find . -type f | sort); do
    echo "EHSYSX ${f#./} $(od -An -tx1 -v "$f" 2>/dev/null | tr -d ' \n')"
  done
  cd /
else
  echo "EHESRT absent"
fi
dmesg | sed "s/^/EHDMESG /"
echo "EHMARK end"
if grep -q ehdump /proc/cmdline; then
  for d in /sys/firmware/efi/runtime-map/*; do
    [ -d "$d" ] && echo "EHRTMAP $(cat $d/type) $(cat $d/phys_addr) $(cat $d/virt_addr)" \
      "$(cat $d/num_pages) $(cat $d/attribute)"
  done
  echo "EHMARK wait-dump"; sleep 120
fi
poweroff -f
"""

# The files beside the ESRT that ``efihandoff collect`` archives (sources/collect.py), printed
# hex-encoded as ``EHFILEX <path under /sys> <hex>`` so the bench can rebuild a copy of the
# boot's /sys/firmware (and /sys/hypervisor) for ``efihandoff explain``: the top-level efi/ files,
# the runtime map and firmware memmap, and a Xen dom0's hypervisor type and version.
_EHFILEX = r"""for f in /sys/firmware/efi/systab /sys/firmware/efi/config_table \
    /sys/firmware/efi/fw_platform_size /sys/firmware/efi/fw_vendor /sys/firmware/efi/runtime \
    $(find /sys/firmware/efi/runtime-map /sys/firmware/memmap -type f 2>/dev/null | sort) \
    /sys/hypervisor/type /sys/hypervisor/version/major /sys/hypervisor/version/minor \
    /sys/hypervisor/version/extra; do
  [ -f "$f" ] && echo "EHFILEX ${f#/sys/} $(od -An -tx1 -v "$f" 2>/dev/null | tr -d ' \n')"
done
"""
INIT_SCRIPT = _INIT_V3.replace('dmesg | sed "s/^/EHDMESG /"',
                               _EHFILEX + 'dmesg | sed "s/^/EHDMESG /"', 1)

# Earlier /init scripts and kernel arguments whose boots parse to the same outcome, so their
# cached results are reused (cached_outcome): they differ only in how dmesg was piped out
# (``while read`` loop, then sed), in the console log level (loglevel=7, then quiet: the outcome
# comes from the dmesg dump either way), in dump mode only, in the runtime-map lines, and in the
# EHFILEX lines (an outcome without them has ``files`` empty: explain gets the ESRT tree only).
_INIT_V1 = _INIT_V3.split('echo "EHMARK end"')[0].replace(
    'dmesg | sed "s/^/EHDMESG /"',
    'dmesg | while IFS= read -r l; do echo "EHDMESG $l"; done') + (
    'echo "EHMARK end"\n'
    'if grep -q ehdump /proc/cmdline; then echo "EHMARK wait-dump"; sleep 120; fi\n'
    'poweroff -f\n')
_INIT_V2 = _INIT_V1.replace(
    'dmesg | while IFS= read -r l; do echo "EHDMESG $l"; done', 'dmesg | sed "s/^/EHDMESG /"')
EQUIVALENT_BOOTS = (  # newest first
    (_INIT_V3, "efi=debug panic=-1 quiet"),
    (_INIT_V2, "efi=debug panic=-1 quiet"),
    (_INIT_V1, "efi=debug panic=-1 loglevel=7"),
)


def _cpio_newc(entries: list[tuple[str, int, bytes, int, int]]) -> bytes:
    """A newc cpio archive of (name, mode, data, rdevmajor, rdevminor), with the trailer."""
    out = bytearray()
    ino = 1
    for name, mode, data, rmaj, rmin in [*entries, ("TRAILER!!!", 0, b"", 0, 0)]:
        nb = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, rmaj, rmin, len(nb), 0]
        out += b"070701" + "".join(f"{v:08x}" for v in fields).encode() + nb
        out += b"\0" * (-len(out) % 4)
        out += data
        out += b"\0" * (-len(out) % 4)
        ino += 1
    return bytes(out)


def build_initrd(out: Path | None = None) -> Path:
    """A gzip'd busybox initramfs whose /init prints what the kernel exposes, then powers off."""
    busybox = BUSYBOX.read_bytes()
    digest = hashlib.sha256(busybox + INIT_SCRIPT.encode()).hexdigest()[:16]
    out = out or CACHE / f"initrd-{digest}.cpio.gz"
    if out.exists():
        return out
    d, f, c = 0o040755, 0o100755, 0o020600
    entries = [(n, d, b"", 0, 0) for n in ("bin", "dev", "proc", "sys", "sbin", "usr",
                                           "usr/bin", "usr/sbin")]
    entries += [("dev/console", c, b"", 5, 1), ("bin/busybox", f, busybox, 0, 0),
                ("init", f, INIT_SCRIPT.encode(), 0, 0)]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(gzip.compress(_cpio_newc(entries), mtime=0))
    tmp.replace(out)
    return out


# ---------------------------------------------------------------------------------------------
# Versions and cache keys


def _hash_files(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


# Packages only the multiboot2 stacks boot with: in their cache keys only (case_key).
GRUB_PACKAGES = ("grub-efi-amd64-bin",)


def package_versions() -> dict[str, str]:
    """Versions of what a boot runs on: Debian packages and the cached kernels."""
    pkgs = ["qemu-system-x86", "ovmf", "xen-hypervisor-4.17-amd64", "busybox-static", "gnu-efi",
            "fwupd", *GRUB_PACKAGES]
    out = {}
    try:
        text = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Version}\\n", *pkgs],
                              capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        text = ""
    for line in text.splitlines():
        name, _, ver = line.partition(" ")
        if ver:
            out[name] = ver
    for slot in ("linux-6.1", "linux-6.12"):
        v = KERNELS / slot / "VERSION"
        if v.exists():
            out[slot] = v.read_text().strip()
    return out


def missing_deps(fwupd: bool = False) -> list[str]:
    """What booting cases needs and is not installed (with ``fwupd``: fwupdtool too)."""
    need = [OVMF_CODE, OVMF_VARS, XEN_EFI, XEN_GZ, BUSYBOX, GNU_EFI_LDS, GRUB_MODULES_DIR,
            KERNELS / "linux-6.1" / "vmlinuz", KERNELS / "linux-6.12" / "vmlinuz"]
    out = [str(p) for p in need if not p.exists()]
    for tool in (QEMU, "gcc", "ld", "objcopy", "make", GRUB_MKSTANDALONE,
                 *([FWUPDTOOL] if fwupd else [])):
        if shutil.which(tool) is None:
            out.append(tool)
    return out


# ---------------------------------------------------------------------------------------------
# ESP and boot


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def esp_inputs(case: Case, dump: bool = False) -> dict[str, bytes | Path]:
    """ESP-relative path -> bytes or a file to place there, for one case."""
    files: dict[str, bytes | Path] = {
        "EFI/BOOT/BOOTX64.EFI": build_injector(),
        "efihandoff/inject.bin": encode_inject(records_for(case)),
    }
    kernel = KERNELS / case.kernel / "vmlinuz"
    initrd = (realfw_live.build_initrd(INIT_SCRIPT, BUSYBOX, _cpio_newc) if case.live
              else build_initrd())
    extra = " ehdump" if dump else ""
    if case.boot == "multiboot2":
        # The xen.efi stacks' layout (four files in \EFI\xen, the cfg in \efihandoff), so the
        # firmware's file-system work before the injector runs is the same.
        files["EFI/xen/grubx64.efi"] = build_grub()
        files["EFI/xen/xen.gz"] = XEN_GZ
        files["EFI/xen/vmlinuz"] = kernel
        files["EFI/xen/initrd.gz"] = initrd
        files["efihandoff/grub.cfg"] = grub_cfg(case, dump).encode()
        files["efihandoff/next.txt"] = b"\\EFI\\xen\\grubx64.efi\n\n"
    elif case.xen:
        files["EFI/xen/xen.efi"] = build_fixed_xen() if case.fixed else XEN_EFI
        files["EFI/xen/vmlinuz"] = kernel
        files["EFI/xen/initrd.gz"] = initrd
        # Xen 4.17 xen/common/efi/boot.c efi_start: reads <image name>.cfg beside the image.
        files["EFI/xen/xen.cfg"] = (
            "[global]\ndefault=efihandoff\n\n[efihandoff]\n"
            f"options={XEN_OPTIONS}\n"
            f"kernel=vmlinuz console=hvc0 earlyprintk=xen {LINUX_ARGS}{extra}\n"
            "ramdisk=initrd.gz\n"
        ).encode()
        options = MAPBS_LOAD_OPTIONS if case.mapbs else ""
        files["efihandoff/next.txt"] = f"\\EFI\\xen\\xen.efi\n{options}\n".encode()
    else:
        files["vmlinuz"] = kernel
        files["initrd.gz"] = initrd
        cmdline = f"console=ttyS0,115200 {LINUX_ARGS} initrd=\\initrd.gz{extra}"
        files["efihandoff/next.txt"] = f"\\vmlinuz\n{cmdline}\n".encode()
    return files


def case_key(case: Case, dump: bool = False, init: str | None = None,
             linux_args: str | None = None) -> str:
    """Hash of everything that decides the boot's outcome (``init`` and ``linux_args`` default
    to the current /init script and kernel arguments)."""
    h = hashlib.sha256()
    versions = {k: v for k, v in _versions_cached().items() if k not in GRUB_PACKAGES}
    h.update(json.dumps([HARNESS_VERSION, dataclasses.astuple(case), dump,
                         versions], sort_keys=True).encode())
    # What only the added stacks boot with (nothing for the first four stacks, whose keys stay
    # as they were): GRUB's version, its embedded and per-case cfg; xen.efi's load options.
    if case.boot == "multiboot2":
        h.update(json.dumps([_versions_cached().get("grub-efi-amd64-bin"), GRUB_EMBEDDED_CFG,
                             GRUB_PRELOAD, grub_cfg(case, dump)]).encode())
    if case.mapbs:
        h.update(MAPBS_LOAD_OPTIONS.encode())
    if case.fixed:
        h.update(json.dumps([xen_source_version(), XEN_ESRT_SIZE_PATCH, XEN_BUILD]).encode())
    if case.live:  # the root's recipe, the checkout the wheel is built from, the live /init
        h.update(json.dumps([realfw_live.root_key(), realfw_live.source_hash(),
                             realfw_live.LIVE_PART]).encode())
    h.update(_hash_files([INJECTOR_DIR / "inject.c", INJECTOR_DIR / "Makefile"]).encode())
    h.update((INIT_SCRIPT if init is None else init).encode())
    h.update(XEN_OPTIONS.encode() + (LINUX_ARGS if linux_args is None else linux_args).encode())
    h.update(encode_inject(records_for(case)))
    return h.hexdigest()[:20]


_VERSIONS: dict[str, str] | None = None


def _versions_cached() -> dict[str, str]:
    """package_versions(), asked once per process (dpkg-query costs ~50 ms a call)."""
    global _VERSIONS
    if _VERSIONS is None:
        _VERSIONS = package_versions()
    return _VERSIONS


def build_esp(case: Case, esp: Path, dump: bool = False) -> None:
    """Write the case's ESP directory."""
    if esp.exists():
        shutil.rmtree(esp)
    for rel, content in esp_inputs(case, dump).items():
        dst = esp / rel
        if isinstance(content, Path):
            _place(content, dst)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(content)


def qemu_command(esp: Path, vars_file: Path, serial: Path, qmp: Path) -> list[str]:
    """The QEMU command line for one boot."""
    return [
        QEMU, "-machine", "q35", "-m", "1G", "-nographic", "-vga", "none", "-cpu", "qemu64",
        "-no-reboot", "-net", "none", "-parallel", "none", "-monitor", "none",
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
        "-drive", f"if=pflash,format=raw,unit=1,file={vars_file}",
        # q35 puts a plain -drive on AHCI, which refuses a read-only node ("Block node is
        # read-only"); virtio-blk takes the read-only vvfat directory and OVMF boots from it.
        "-drive", f"if=virtio,file=fat:{esp},format=raw,readonly=on",
        "-serial", f"file:{serial}",
        "-qmp", f"unix:{qmp},server=on,wait=off",
    ]


class Qmp:
    """A minimal QMP client over a unix socket."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buf = b""
        self._read()  # greeting
        self.command("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("QMP closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)

    def command(self, name: str, **args: Any) -> dict[str, Any]:
        """Run one command; return its reply (events are skipped)."""
        msg: dict[str, Any] = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read()
            if "return" in reply or "error" in reply:
                return reply

    def close(self) -> None:
        self.sock.close()


def _wait_for(path: Path, needle: bytes, proc: subprocess.Popen[bytes], deadline: float) -> bool:
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(FileNotFoundError):
            if needle in path.read_bytes():
                return True
        time.sleep(0.25)
    return False


# Xen's console when the dom0 died (xen/common/shutdown.c hwdom_shutdown): Xen then spins with
# the machine halted (no reboot, so QEMU never exits); the boot stops there instead of at its
# timeout.
DOM0_DIED = (b"(XEN) Hardware Dom0 halted", b"(XEN) Hardware Dom0 crashed",
             b"(XEN) Hardware Dom0 shutdown")


def _watch(path: Path, proc: subprocess.Popen[bytes], deadline: float,
           stop: Sequence[bytes]) -> bool:
    """Wait until QEMU exits, the deadline passes or the serial log shows one of ``stop``
    (then True, QEMU still running)."""
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(FileNotFoundError):
            data = path.read_bytes()
            if any(s in data for s in stop):
                return True
        time.sleep(0.5)
    return False


def boot(case: Case, workdir: Path, timeout: float = DEFAULT_TIMEOUT,
         dump: bool = False) -> dict[str, Any]:
    """Boot one case in ``workdir``; return {serial_log, seconds, timed_out, exit, dump}."""
    workdir.mkdir(parents=True, exist_ok=True)
    esp = workdir / "esp"
    build_esp(case, esp, dump)
    vars_file = workdir / "OVMF_VARS.fd"
    shutil.copyfile(OVMF_VARS, vars_file)
    serial = workdir / "serial.log"
    serial.unlink(missing_ok=True)
    # a unix socket path must stay under 108 bytes: the long case ids of the added stacks in a
    # deep checkout do not, so the socket lives in a short temp dir of its own
    qmp_dir = Path(tempfile.mkdtemp(prefix="realfw-qmp-"))
    qmp_path = qmp_dir / "qmp.sock"
    dump_file = workdir / "memory.elf"
    start = time.monotonic()
    proc = subprocess.Popen(qemu_command(esp, vars_file, serial, qmp_path),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    deadline = start + timeout
    dumped = None
    try:
        if dump and _wait_for(serial, b"EHMARK wait-dump", proc, deadline):
            qmp = Qmp(qmp_path, timeout=max(5.0, deadline - time.monotonic()))
            try:
                reply = qmp.command("dump-guest-memory", paging=False,
                                    protocol=f"file:{dump_file}")
                if "return" in reply:
                    dumped = str(dump_file)
                qmp.command("quit")
            finally:
                qmp.close()
        if not dump and _watch(serial, proc, deadline, DOM0_DIED):
            time.sleep(1.0)  # the rest of Xen's lines
            proc.kill()
        out, _ = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
        timed_out = False
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        timed_out = True
    except BaseException:  # QMP trouble, Ctrl-C: never leave a QEMU behind
        proc.kill()
        proc.communicate()
        raise
    finally:
        shutil.rmtree(qmp_dir, ignore_errors=True)
    return {
        "serial_log": str(serial),
        "seconds": round(time.monotonic() - start, 2),
        "timed_out": timed_out,
        "exit": proc.returncode,
        "qemu_output": out.decode(errors="replace")[-2000:],
        "dump": dumped,
    }


# ---------------------------------------------------------------------------------------------
# Parsing the serial log

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1bc")
_STAMP = re.compile(r"^(?:<\d+>)?\[\s*\d+\.\d+\]\s?")
_INJECTED = re.compile(
    r"efihandoff-inject: ([0-9a-f-]{36}) type=(\d+) at 0x([0-9a-fA-F]+) len=(\d+)$")
_INJECT_FAIL = re.compile(
    r"efihandoff-inject: ([0-9a-f-]{36}) type=(\d+) len=(\d+) status=0x([0-9a-fA-F]+)")
_UNUSABLE = re.compile(r"\(([^()=]+)=0x[0-9a-fA-F]+ unusable\)")


def serial_lines(text: str) -> list[str]:
    """The log's lines without CR, ANSI escapes and NULs."""
    text = _ANSI.sub("", text.replace("\0", ""))
    return [line.rstrip("\r") for line in text.replace("\r\n", "\n").split("\n")]


def _kernel_lines(lines: list[str]) -> list[str]:
    """Kernel log lines without timestamps: the dmesg dump if /init ran, else the console."""
    dm = [line[len("EHDMESG "):] for line in lines if line.startswith("EHDMESG ")]
    src = dm if dm else [line for line in lines if _STAMP.match(line)]
    return [_STAMP.sub("", line) for line in src]


def parse_serial(text: str) -> dict[str, Any]:
    """A RealOutcome (without ``case``/``serial_log``) from a serial log."""
    lines = serial_lines(text)
    kern = _kernel_lines(lines)
    sysfs: dict[str, str] = {}
    present = False
    for line in lines:
        if line.startswith("EHESRT "):
            present = line.split()[1] == "present"
        elif line.startswith("EHSYSX "):
            parts = line.split(" ", 2)
            if len(parts) >= 2:
                raw = parts[2].strip() if len(parts) == 3 else ""
                try:
                    sysfs[parts[1]] = bytes.fromhex(raw).decode("latin-1")
                except ValueError:
                    sysfs[parts[1]] = f"<unreadable {raw!r}>"
    efi_lines = [line[len("efi: "):] for line in kern if line.startswith("efi: ")]
    esrt_lines = [line[len("esrt: "):] for line in kern if line.startswith("esrt: ")]
    unusable: list[str] = []
    for line in efi_lines:
        for name in _UNUSABLE.findall(line):
            if name not in unusable:
                unusable.append(name)
    injected = []
    for line in lines:
        m = _INJECTED.search(line)
        if m:
            injected.append({"guid": m[1], "type": int(m[2]), "address": int(m[3], 16),
                             "length": int(m[4])})
            continue
        m = _INJECT_FAIL.search(line)
        if m:
            injected.append({"guid": m[1], "type": int(m[2]), "address": None,
                             "length": int(m[3]), "status": int(m[4], 16)})
    rtmap = []
    for line in lines:
        if line.startswith("EHRTMAP "):
            try:
                t, phys, virt, pages, attr = (int(x, 16) for x in line.split()[1:6])
            except ValueError:
                continue
            rtmap.append({"type": t, "phys_addr": phys, "virt_addr": virt, "num_pages": pages,
                          "attribute": attr})
    files: dict[str, str] = {}
    for line in lines:
        if line.startswith("EHFILEX "):
            parts = line.split(" ", 2)
            raw = parts[2].strip() if len(parts) == 3 else ""
            try:
                files[parts[1]] = bytes.fromhex(raw).decode("latin-1")
            except ValueError:
                continue
    ls = next((line[len("EHLS "):].split() for line in lines if line.startswith("EHLS ")), None)
    cmdline = next((line[len("EHCMDLINE "):] for line in lines
                    if line.startswith("EHCMDLINE ")), None)
    died = next((i for i, line in enumerate(lines)
                 if any(line.startswith(m.decode()) for m in DOM0_DIED)), None)
    dom0_died = None
    if died is not None and not any(line == "EHMARK end" for line in lines):
        # the dom0's last words: its console line just before Xen's (a raw early-boot write)
        last = [line.strip() for line in lines[:died] if line.strip()
                and not line.startswith("(XEN)")]
        dom0_died = last[-1] if last else lines[died]
    return {
        # the boot ran to its end: /init printed everything, or Xen reported the dom0's death
        "booted": dom0_died is not None or any(line == "EHMARK end" for line in lines),
        # the dom0 died before /init ran (its last console line): no sysfs, no dmesg dump
        "dom0_died": dom0_died,
        "sysfs_present": present,
        "sysfs": dict(sorted(sysfs.items(), key=lambda kv: _sysfs_order(kv[0]))),
        "efi_lines": efi_lines,
        "esrt_lines": esrt_lines,
        "unusable": unusable,
        "xen_lines": [line for line in lines if line.startswith("(XEN)")],
        "injected": injected,
        "efi_dir": ls,
        "cmdline": cmdline,
        # dump mode: /sys/firmware/efi/runtime-map (native only), to translate virtual pointers
        "runtime_map": rtmap or None,
        # EHFILEX: paths under /sys (firmware/efi/systab, hypervisor/type, ...) -> content
        "files": files,
        # live stacks: what came back of the guest's explain/collect (None: not a live boot)
        "live": _live_summary(lines),
    }


def _live_summary(lines: Sequence[str]) -> dict[str, Any] | None:
    """The live part of a boot: exit codes, files (name -> bytes, gunzipped), the names whose
    checksum failed, whether the part ended; None when the guest ran no live part."""
    if "EHMARK live-begin" not in lines:
        return None
    live = realfw_live.parse_live(lines)
    return {"rc": live["rc"], "bad": live["bad"], "ended": live["ended"],
            "sizes": {k: len(v) for k, v in sorted(live["files"].items())}}


def _sysfs_order(path: str) -> tuple[int, int, str]:
    m = re.match(r"entries/entry(\d+)/(.*)", path)
    return (1, int(m[1]), m[2]) if m else (0, 0, path)


# ---------------------------------------------------------------------------------------------
# Running cases (cached, in parallel)


# --cached-only: a live case's key holds the checkout's source hash (the wheel the guest ran);
# a report rebuilt from the cache takes the newest live boot of any checkout.
LIVE_ANY_CHECKOUT = False


def cached_outcome(case: Case, dump: bool = False) -> dict[str, Any] | None:
    """The cached RealOutcome of a case, or None when it has not been booted as it is now
    (or in an :data:`EQUIVALENT_BOOTS` way). With ``dump``, only a result whose dump file is
    still there counts."""
    keys = [case_key(case, dump)] + [case_key(case, dump, i, a) for i, a in EQUIVALENT_BOOTS]
    files = [CACHE / "results" / f"{case.id}.{key}.json" for key in keys]
    if case.live and LIVE_ANY_CHECKOUT:  # the newest boot of an earlier checkout's wheel
        files += sorted((CACHE / "results").glob(f"{glob.escape(case.id)}.*.json"),
                        key=lambda p: p.stat().st_mtime, reverse=True)
    for result_file in files:
        if not result_file.exists():
            continue
        outcome = json.loads(result_file.read_text())
        if dump and not (outcome.get("dump") and Path(outcome["dump"]).exists()):
            continue
        outcome["cached"] = True
        outcome.setdefault("runtime_map", None)
        log = Path(outcome.get("serial_log") or "")
        if not outcome.get("booted") and log.is_file():  # cached before the dom0_died field
            outcome["dom0_died"] = parse_serial(
                log.read_bytes().decode("utf-8", errors="replace"))["dom0_died"]
            outcome["booted"] = outcome["dom0_died"] is not None
        outcome.setdefault("dom0_died", None)
        return outcome
    return None


def run_case(case: Case, timeout: float = DEFAULT_TIMEOUT, dump: bool = False,
             use_cache: bool = True) -> dict[str, Any]:
    """The RealOutcome of one case, from the cache when possible."""
    key = case_key(case, dump)
    results = CACHE / "results"
    result_file = results / f"{case.id}.{key}.json"
    if use_cache and (cached := cached_outcome(case, dump)) is not None:
        return cached
    with tempfile.TemporaryDirectory(prefix=f"realfw-{case.id}-", dir=_workroot()) as tmp:
        work = Path(tmp)
        if case.live:
            timeout = max(timeout, realfw_live.LIVE_TIMEOUT)
        info = boot(case, work, timeout=timeout, dump=dump)
        serial = Path(info["serial_log"])
        if not serial.exists():  # QEMU never started the machine: nothing to cache
            return {"case": case.id, **parse_serial(""), "serial_log": None,
                    "seconds": info["seconds"], "timed_out": info["timed_out"],
                    "qemu_exit": info["exit"], "qemu_output": info["qemu_output"],
                    "dump": None, "cached": False}
        text = serial.read_bytes().decode("utf-8", errors="replace")
        results.mkdir(parents=True, exist_ok=True)
        log = results / f"{case.id}.{key}.serial.log"
        shutil.copyfile(serial, log)
        dump_path = None
        if info["dump"]:
            dump_path = results / f"{case.id}.{key}.memory.elf"
            shutil.move(info["dump"], dump_path)
    outcome = {"case": case.id, **parse_serial(text), "serial_log": str(log),
               "seconds": info["seconds"], "timed_out": info["timed_out"],
               "qemu_exit": info["exit"], "dump": str(dump_path) if dump_path else None}
    if not outcome["booted"]:
        outcome["qemu_output"] = info["qemu_output"]
    tmpf = result_file.with_suffix(".tmp")
    tmpf.write_text(json.dumps(outcome, indent=1))
    tmpf.replace(result_file)
    outcome["cached"] = False
    return outcome


def _workroot() -> Path:
    root = CACHE / "work"
    root.mkdir(parents=True, exist_ok=True)
    return root


def run_cases(cases: Sequence[Case], jobs: int = 2, timeout: float = DEFAULT_TIMEOUT,
              dump: bool = False, use_cache: bool = True,
              progress: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run cases, ``jobs`` QEMUs at a time; outcomes in the order of ``cases``."""
    # what the boots need, built once before the parallel boots; nothing for cached cases
    # (a --cached-only report builds no Xen, root or initramfs)
    boots = [c for c in cases if not (use_cache and cached_outcome(c, dump) is not None)]
    if boots:
        build_injector()
        build_initrd()
    if any(c.boot == "multiboot2" for c in boots):
        build_grub()
    if any(c.fixed for c in boots):
        build_fixed_xen()
    if any(c.live for c in boots):
        realfw_live.build_initrd(INIT_SCRIPT, BUSYBOX, _cpio_newc)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(run_case, c, timeout, dump, use_cache): i
                   for i, c in enumerate(cases)}
        results: list[dict[str, Any] | None] = [None] * len(cases)
        for fut in concurrent.futures.as_completed(futures):
            outcome = fut.result()
            results[futures[fut]] = outcome
            if progress:
                progress(outcome)
    return [r for r in results if r is not None]


def select(cases: Sequence[Case], pattern: str | None) -> list[Case]:
    """Cases whose id matches a shell pattern (comma-separated alternatives)."""
    if not pattern:
        return list(cases)
    pats = [p.strip() for p in pattern.split(",") if p.strip()]
    return [c for c in cases if any(fnmatch.fnmatchcase(c.id, p) for p in pats)]


# ---------------------------------------------------------------------------------------------
# Prediction and comparison


class NoPrediction(NotImplementedError):
    """The model cannot predict this case."""


# Linux 6.x drivers/firmware/efi/libstub/efi-stub-helper.c efi_load_initrd: on bare metal the
# stub installs struct linux_efi_initrd {u64 base; u64 size} (LINUX_EFI_INITRD_MEDIA_GUID) in
# EfiLoaderData pool once the initrd is loaded, after every firmware table (the real "efi:" line
# ends with INITRD=). Xen loads the dom0 kernel itself: no stub runs, no INITRD table. The base
# and size are those of the real boots' loader-data region; no rule compared here reads them.
_INITRD_TABLE = struct.pack("<QQ", 0x3DD98000, 0xFC000)


def case_tables(case: Case) -> list[dict[str, Any]]:
    """The scenario tables the case adds to the base machine, in installation order: the
    injector's ESRT (the case's bytes in the case's memory type), then the stub's INITRD on
    bare metal."""
    out: list[dict[str, Any]] = [
        {"name": "ESRT", "memory_type": case.memory_type, "hex": esrt_bytes(case.content).hex()}
    ]
    if not case.xen:
        out.append({"name": "INITRD", "memory_type": "EfiLoaderData",
                    "hex": _INITRD_TABLE.hex()})
    return out


def scenario_for(case: Case, seed: int | None = None) -> dict[str, Any]:
    """The scenario mapping (efihandoff.sources.scenario format) of a case: the base machine of
    ``ovmf-q35.toml`` plus :func:`case_tables`."""
    import tomllib

    data = tomllib.loads(SCENARIO.read_text())
    data["name"] = case.id
    data["table"] = [*data.get("table", []), *case_tables(case)]
    if seed is not None:
        data["seed"] = seed
    return data


def scenario_toml(case: Case) -> str:
    """The same scenario as TOML text (for ``efihandoff boot``): ``ovmf-q35.toml`` with the
    case's tables appended."""
    out = [SCENARIO.read_text().replace('name = "ovmf-q35"', f'name = "{case.id}"', 1)]
    for t in case_tables(case):
        out.append("\n[[table]]")
        for k, v in t.items():
            out.append(f"{k} = {v}" if isinstance(v, int) else f'{k} = "{v}"')
    return "\n".join(out) + "\n"


# Two seeds of the "random" fill: a sysfs value that differs between them comes from memory
# nobody wrote (e.g. the edk2 POOL_TAIL's Reserved word after Xen 4.17's short ESRT copy), so
# the model cannot know it and predicts None.
_SEEDS = (0, 1)
_FWUPD_FROM_SYSFS = {"guid": "fw_class", "kind": "fw_type", "version": "fw_version",
                     "lowest": "lowest_supported_fw_version", "flags": "capsule_flags",
                     "update_state": "last_attempt_status"}


def predict(case: Case) -> dict[str, Any]:
    """efihandoff's prediction for a case, keyed like a RealOutcome: {sysfs_present, sysfs,
    efi_lines, esrt_lines, unusable, injected, fwupd, verdict}.

    ``efihandoff.paths.simulate`` over :func:`scenario_for` on ``PATH_FOR_STACK[case.stack]``.
    A sysfs value of None means "bytes the model cannot know" (the key must still exist); a
    ``fwupd`` device value of None means the same for what fwupd derives from such a file.
    """
    from efihandoff.paths.presets import parse_path
    from efihandoff.paths.simulate import simulate
    from efihandoff.sources.scenario import build_machine
    from efihandoff.uefi.esrt import ESRT_GUID as MODEL_ESRT

    spec = parse_path(PATH_FOR_STACK[case.stack])
    runs = [simulate(build_machine(scenario_for(case, seed)), spec) for seed in _SEEDS]
    res = runs[0]
    if not res.booted and res.halt is not None:  # the model's dom0 never starts
        return {"case": case.id, "path": spec.id, "booted": False,
                "halt": res.halt.message, "halt_source": res.halt.source,
                "sysfs_present": False, "sysfs": {}, "efi_lines": [], "esrt_lines": [],
                "unusable": [], "injected": [], "fwupd": None,
                "verdict": f"{res.esrt.verdict}: {res.esrt.reason}"}
    trees = [{k[len("efi/esrt/"):]: v for k, v in (r.sysfs or {}).items()
              if k.startswith("efi/esrt/") and v is not None} for r in runs]
    sysfs: dict[str, str | None] = {
        k: (v if all(t.get(k) == v for t in trees[1:]) else None) for k, v in trees[0].items()
    }
    present = res.esrt_sysfs
    if present is None:
        raise NoPrediction(f"the model cannot say whether the ESRT reaches sysfs: "
                           f"{res.esrt.reason}")
    efi_lines = [line[len("efi: "):] for line in res.log if line.startswith("efi: ")]
    unusable: list[str] = []
    for line in efi_lines:
        for name in _UNUSABLE.findall(line):
            if name not in unusable:
                unusable.append(name)
    fw = None
    if res.fwupd_devices is not None:
        fw = []
        for d in res.fwupd_devices:
            j = d.to_json()
            dev = {k: j[k] for k in ("guid", "kind", "version", "lowest", "flags",
                                     "update_state", "entry")}
            for key, name in _FWUPD_FROM_SYSFS.items():
                f = f"entries/{d.entry}/{name}"
                if f in sysfs and sysfs[f] is None:
                    dev[key] = None
            fw.append(dev)
    verdict = res.esrt
    return {
        "case": case.id,
        "path": spec.id,
        "sysfs_present": bool(present),
        "sysfs": dict(sorted(sysfs.items(), key=lambda kv: _sysfs_order(kv[0]))),
        "efi_lines": efi_lines,
        "esrt_lines": [line[len("esrt: "):] for line in res.log if line.startswith("esrt: ")],
        "unusable": unusable,
        # where the model's firmware put the ESRT, for compare()'s "did it move" check
        "injected": [{"guid": str(MODEL_ESRT), "type": case.memory_type,
                      "address": verdict.address, "length": len(esrt_bytes(case.content))}],
        "fwupd": fw,
        "verdict": f"{verdict.verdict}: {verdict.reason}",
    }


_HEX_ADDR = re.compile(r"0x[0-9a-fA-F]{8,16}")


def normalise_addresses(line: str) -> str:
    """Replace addresses (8 to 16 hex digits) by ``A`` and ``A+0x...`` relative to the first one,
    so lines compare by sizes and offsets, not by where firmware or Xen put things."""
    base: list[int] = []

    def sub(m: re.Match[str]) -> str:
        value = int(m[0], 16)
        if not base:
            base.append(value)
            return "A"
        delta = value - base[0]
        return f"A+{delta:#x}" if delta >= 0 else f"A-{-delta:#x}"

    return _HEX_ADDR.sub(sub, line)


def compare(real: dict[str, Any], predicted: dict[str, Any],
            exact_addresses: bool = False) -> list[str]:
    """Differences between a real outcome and a prediction (empty when they agree).

    Compares ``sysfs_present``, every sysfs value (a predicted None accepts any value but
    requires the file), the ``esrt:`` message texts (addresses relative to the line's first
    address unless ``exact_addresses``) and the ``unusable`` marks.
    """
    diffs: list[str] = []
    halt = predicted.get("halt")
    if real.get("dom0_died") or halt:
        # paths.<id>.booted/halt: the model's dom0 dies with the line the real dom0 printed
        if real.get("dom0_died") == halt:
            return []
        if not halt:
            return [f"dom0 died before /init ({real['dom0_died']}); the model's dom0 runs "
                    f"(ESRT {str(predicted.get('verdict', '?')).split(':')[0]})"]
        return [f"model: dom0 halts ({halt}); real: "
                + (f"dom0 died ({real['dom0_died']})" if real.get("dom0_died") else "dom0 ran")]
    if bool(real.get("sysfs_present")) != bool(predicted.get("sysfs_present")):
        diffs.append(f"sysfs_present: real {real.get('sysfs_present')} "
                     f"predicted {predicted.get('sysfs_present')}")
    rs: dict[str, str] = real.get("sysfs") or {}
    ps: dict[str, str | None] = predicted.get("sysfs") or {}
    for name in sorted(set(rs) | set(ps), key=_sysfs_order):
        if name not in rs:
            diffs.append(f"sysfs {name}: missing in real, predicted {ps[name]!r}")
        elif name not in ps:
            diffs.append(f"sysfs {name}: real {rs[name]!r}, not predicted")
        elif ps[name] is not None and rs[name] != ps[name]:
            diffs.append(f"sysfs {name}: real {rs[name]!r} predicted {ps[name]!r}")
    norm = (lambda x: x) if exact_addresses else normalise_addresses
    r_esrt = [norm(line) for line in real.get("esrt_lines") or []]
    p_esrt = [norm(line) for line in predicted.get("esrt_lines") or []]
    if r_esrt != p_esrt:
        diffs.append(f"esrt lines: real {r_esrt} predicted {p_esrt}")
    r_un = sorted(real.get("unusable") or [])
    p_un = sorted(predicted.get("unusable") or [])
    if r_un != p_un:
        diffs.append(f"unusable: real {r_un} predicted {p_un}")
    if "efi_lines" in real and "efi_lines" in predicted:
        diffs += _compare_efi(real, predicted)
    return diffs


_CT_LINE = re.compile(r"(?:\s*\(?[A-Za-z][\w .]*?=0x[0-9a-fA-F]+(?: unusable\))?)+\s*")
_CT_TOKEN = re.compile(r"(\()?([A-Za-z][\w .]*?)=0x([0-9a-fA-F]+)( unusable\))?")


def config_tokens(efi_lines: Sequence[str]) -> list[tuple[str, int, bool]]:
    """(label, address, unusable) of every table the kernel named in its ``efi:`` lines
    (drivers/firmware/efi/efi.c efi_config_parse_tables: ``NAME=0x%lx `` or, in a Xen dom0 from
    6.3, ``(NAME=0x%lx unusable) ``)."""
    out = []
    for line in efi_lines:
        if _CT_LINE.fullmatch(line):
            for m in _CT_TOKEN.finditer(line):
                out.append((m[2].strip(), int(m[3], 16), bool(m[1] and m[4])))
    return out


def _esrt_moved(o: dict[str, Any]) -> bool | None:
    """Does the ESRT the kernel names sit elsewhere than where the firmware put it?"""
    inj = next((r for r in o.get("injected") or [] if r.get("guid") == str(ESRT_GUID)), None)
    named = [a for label, a, _ in config_tokens(o.get("efi_lines") or []) if label == "ESRT"]
    if inj is None or inj.get("address") is None or not named:
        return None
    return named[-1] != inj["address"]


def _compare_efi(real: dict[str, Any], predicted: dict[str, Any]) -> list[str]:
    """The ``efi:`` header line exactly, the named tables in order with their unusable marks
    (addresses aside: the model lays memory out its own way), and whether the ESRT moved."""
    diffs = []
    rh = [line for line in real["efi_lines"] if line.startswith("EFI v")]
    ph = [line for line in predicted["efi_lines"] if line.startswith("EFI v")]
    if rh != ph:
        diffs.append(f"efi header: real {rh} predicted {ph}")

    def names(o: dict[str, Any]) -> list[str]:
        return [f"({n} unusable)" if u else n for n, _, u in config_tokens(o["efi_lines"])]

    if names(real) != names(predicted):
        diffs.append(f"efi tables: real {names(real)} predicted {names(predicted)}")
    rm, pm = _esrt_moved(real), _esrt_moved(predicted)
    if rm != pm:
        diffs.append(f"esrt moved: real {rm} predicted {pm}")
    return diffs


# Disagreements that are understood: (case glob, regex over one difference, explanation naming
# the test that pins the real behaviour). A case whose every difference matches counts as
# explained; anything else is unexplained and fails the run.
EXPLAINED: tuple[tuple[str, str, str], ...] = (
    # Empty: the -mapbs dom0 deaths (OVMF's BS data 0x900000-0x14fffff E820-reserved under
    # -mapbs, over the PV dom0 kernel's load range from 0x1000000) are predicted since the
    # model's booted/halt rule (paths.linux.xen_dom0_memory_setup); compare() checks the line.
)


def explain(case_id: str, diffs: Sequence[str]) -> list[str] | None:
    """The explanations covering every difference of a case, or None if one is unexplained."""
    found: list[str] = []
    for d in diffs:
        hit = [why for pat, rx, why in EXPLAINED
               if fnmatch.fnmatchcase(case_id, pat) and re.search(rx, d)]
        if not hit:
            return None
        found += [w for w in hit if w not in found]
    return found


# ---------------------------------------------------------------------------------------------
# fwupd: the real fwupdtool over a /sys/firmware tree

# fwupd libfwupd/fwupd-enums.h FwupdUpdateState.
_UPDATE_STATES = {0: "unknown", 1: "pending", 2: "success", 3: "failed", 4: "needs-reboot",
                  5: "failed-transient"}


def write_sysfs_tree(sysfs: dict[str, str], root: Path) -> Path:
    """Write an ESRT sysfs dict (keys relative to ``efi/esrt``, as in a RealOutcome) under
    ``root``, which stands for /sys/firmware; return ``root``."""
    esrt = root / "efi" / "esrt"
    (root / "efi" / "efivars").mkdir(parents=True, exist_ok=True)
    esrt.mkdir(parents=True, exist_ok=True)
    for rel, value in sysfs.items():
        dst = esrt / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise ValueError(f"bad sysfs path {rel!r}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(value)
    if any(k.startswith("entries/") for k in sysfs):
        (esrt / "entries").mkdir(exist_ok=True)
    return root


def _fwupd_blocks(text: str) -> dict[str, dict[str, str]]:
    """Device dumps (``ADDED:`` blocks of ``fwupdtool -vv``) by DeviceId: field -> value."""
    out: dict[str, dict[str, str]] = {}
    cur: dict[str, str] | None = None
    for line in text.splitlines():
        if re.match(r"^Fu\w+Device:$", line):
            cur = {}
            continue
        if cur is not None:
            m = re.match(r"^  (\w[\w\[\],]*):\s+(.*)$", line)
            if not m:
                if cur.get("DeviceId"):
                    out[cur["DeviceId"]] = cur
                cur = None
                continue
            cur.setdefault(m[1], m[2])
    if cur and cur.get("DeviceId"):
        out[cur["DeviceId"]] = cur
    return out


def fwupd_devices(root: Path, timeout: float = 60.0) -> list[dict[str, Any]] | None:
    """The devices the real ``fwupdtool get-devices --plugins uefi_capsule`` lists from the
    tree ``root`` (standing for /sys/firmware), each as {guid, kind, version, lowest, flags,
    update_state, entry, updatable, update_error}; None when fwupd finds no devices (no
    ``efi/esrt/entries``)."""
    with tempfile.TemporaryDirectory(prefix="realfw-fwupd-") as tmp:
        t = Path(tmp)
        for d in ("esp", "dmi", "state", "lock"):
            (t / d).mkdir()
        (t / "dmi" / "bios_vendor").write_text("efihandoff\n")
        (t / "dmi" / "sys_vendor").write_text("efihandoff\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FWUPD_")}
        env.update({
            "FWUPD_SYSFSFWDIR": str(root),
            "FWUPD_UEFI_TEST": "1",  # skip the efivars mount-point check
            "FWUPD_UEFI_ESP_PATH": str(t / "esp"),
            "FWUPD_SYSFSDMIDIR": str(t / "dmi"),
            "FWUPD_LOCALSTATEDIR": str(t / "state"),
            # else every fwupdtool shares /run/lock/fwupdtool and a concurrent one fails with
            # "Failed to lock: another instance has locked /run/lock/fwupdtool"
            "FWUPD_LOCKDIR": str(t / "lock"),
            "LANG": "C.UTF-8",
        })
        proc = subprocess.run([FWUPDTOOL, "get-devices", "--plugins", "uefi_capsule", "--json",
                               "--verbose", "--verbose"],
                              capture_output=True, text=True, env=env, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"fwupdtool printed no JSON (exit {proc.returncode}): "
                           f"{proc.stderr[-500:]}") from exc
    if "Error" in doc:
        if doc["Error"].get("Message") == "No detected devices":
            return None
        raise RuntimeError(f"fwupdtool: {doc['Error']}")
    blocks = _fwupd_blocks(proc.stderr)
    out = []
    for dev in doc.get("Devices", []):
        if dev.get("Plugin") != "uefi_capsule":
            continue
        b = blocks.get(dev.get("DeviceId", ""), {})
        out.append({
            "guid": (dev.get("Guid") or [b.get("FwClass", "")])[0].lower(),
            "kind": b.get("Kind"),
            "version": int(dev.get("VersionRaw", 0)),
            "lowest": int(dev.get("VersionLowestRaw", 0)),
            "flags": int(b["CapsuleFlags"], 16) if "CapsuleFlags" in b else None,
            "update_state": _UPDATE_STATES.get(dev.get("UpdateState", 0), "unknown"),
            "entry": Path(b.get("BackendId", "")).name or None,
            # not compared with the model: fwupd's own device flags and update error
            "updatable": "updatable" in dev.get("Flags", []),
            "update_error": dev.get("UpdateError"),
        })
    return sorted(out, key=lambda d: _sysfs_order(f"entries/{d['entry']}/")
                  if d["entry"] else (9, 0, d["guid"]))


def fwupd_for_outcome(outcome: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The real fwupdtool's devices on the tree rebuilt from a real boot's EHSYS lines."""
    with tempfile.TemporaryDirectory(prefix="realfw-tree-") as tmp:
        root = Path(tmp) / "firmware"
        if outcome.get("sysfs_present"):
            write_sysfs_tree(outcome.get("sysfs") or {}, root)
        else:
            (root / "efi" / "efivars").mkdir(parents=True)
        return fwupd_devices(root)


def fwupd_model(sysfs: dict[str, str] | None, present: bool) -> list[dict[str, Any]] | None:
    """efihandoff.fwupd's devices for the same tree, normalised like :func:`fwupd_devices`."""
    from efihandoff import fwupd

    tree: dict[str, str | None] = {}
    if present:
        tree["efi/esrt"] = None
        if any(k.startswith("entries/") for k in sysfs or {}):
            tree["efi/esrt/entries"] = None
        for k, v in (sysfs or {}).items():
            tree[f"efi/esrt/{k}"] = v
    devs = fwupd.devices(tree if present else None)
    if devs is None:
        return None
    keys = ("guid", "kind", "version", "lowest", "flags", "update_state", "entry")
    return [{k: d.to_json()[k] for k in keys} for d in devs]


def fwupd_diff(real: list[dict[str, Any]] | None,
               model: list[dict[str, Any]] | None) -> list[str]:
    """Differences between two normalised device lists. No list and an empty list are the
    same: fwupdtool prints "No detected devices" for both (an ESRT without entries/, and an
    empty entries/)."""
    if not real or not model:
        return [] if not real and not model else [f"fwupd: real {real} model {model}"]
    out = []
    if len(real) != len(model):
        out.append(f"fwupd: {len(real)} real devices, {len(model)} in the model")
    for r, m in zip(real, model, strict=False):
        for k in ("guid", "kind", "version", "lowest", "flags", "update_state"):
            if k in m and m[k] is None:
                continue  # predict(): derived from bytes the model cannot know
            if r.get(k) != m.get(k):
                out.append(f"fwupd {r.get('entry')} {k}: real {r.get(k)!r} model {m.get(k)!r}")
    return out


def model_tree(case: Case, root: Path) -> Path:
    """The /sys/firmware tree the model writes for a case: ``efihandoff boot SCENARIO --path ID
    --sysfs-out ROOT`` (the CLI, as a user runs it) on :func:`scenario_toml`; returns ROOT."""
    scenario = root.parent / f"{case.id}.toml"
    scenario.write_text(scenario_toml(case))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, "-m", "efihandoff", "boot", str(scenario), "--path",
                           PATH_FOR_STACK[case.stack], "--sysfs-out", str(root), "--force"],
                          capture_output=True, text=True, env=env, check=False, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"efihandoff boot failed ({proc.returncode}): {proc.stderr[-500:]}")
    return root


def fwupd_both_ways(case: Case, real: dict[str, Any],
                    predicted: dict[str, Any] | None) -> list[str]:
    """Issue 5 item 4: the real fwupdtool on the tree the real kernel exposed and on the tree
    the model writes, and efihandoff's own fwupd model; every pair must agree (values the model
    cannot know aside). Returns the differences, each prefixed by the pair it concerns."""
    if real.get("dom0_died"):
        return []  # no dom0, no tree, nothing to list: the death is compare()'s difference
    r_tool = fwupd_for_outcome(real)
    out = [f"real tree, fwupdtool vs efihandoff.fwupd: {d}"
           for d in fwupd_diff(r_tool, fwupd_model(real.get("sysfs"), real["sysfs_present"]))]
    if predicted is None:
        return out
    with tempfile.TemporaryDirectory(prefix="realfw-model-") as tmp:
        m_tool = fwupd_devices(model_tree(case, Path(tmp) / "firmware"))
    model = predicted.get("fwupd")
    out += [f"model tree, fwupdtool vs predicted: {d}" for d in fwupd_diff(m_tool, model)]
    out += [f"fwupdtool, real tree vs predicted: {d}" for d in fwupd_diff(r_tool, model)]
    return out


# ---------------------------------------------------------------------------------------------
# explain on what each real boot left behind (issue 9, point 10)

# Evidence sets, by their label in the report, and the files (written by write_evidence) each
# hands to ``efihandoff explain``: what a user holds after such a boot.
EXPLAIN_SETS: dict[str, tuple[str, ...]] = {
    "d": ("dmesg.txt",),  # the dom0's (or bare-metal) dmesg
    "xl+d": ("dmesg.txt", "xl-dmesg.txt"),
    "xl": ("xl-dmesg.txt",),  # xl dmesg alone: Xen's console ring
    "ex": ("excerpt.txt",),  # the efi:/esrt:/(XEN) lines people paste
    "t": ("tree",),  # a /sys/firmware copy as collect archives it, without its dmesg.txt
    "t+d": ("tree", "dmesg.txt"),
    "tgz": ("collect.tar.gz",),  # tree, dmesg.txt (+ xl-dmesg.txt) in one archive, as collect
}
# When explain's JSON has no ``paths.observed`` (the stack that printed the evidence), the ESRT
# verdict is read from the preset the case's stack corresponds to, and the report says so. Linux
# 6.1 on bare metal has no preset of its own: ``native`` models 6.3+ (6.1 refuses an ACPI-reclaim
# ESRT that 6.3+ takes).
FALLBACK_PRESET = {
    "linux-6.1": "native",
    "linux-6.12": "native",
    "xen-4.17+linux-6.1": "xen-4.17-linux-6.1",
    "xen-4.17+linux-6.12": "xen-4.17",
    "xen-4.17-multiboot2+linux-6.1": "xen-4.17-linux-6.1",
    "xen-4.17-multiboot2+linux-6.12": "xen-4.17",
    "xen-4.17-mapbs+linux-6.1": "xen-4.17-linux-6.1",
    "xen-4.17-mapbs+linux-6.12": "xen-4.17",
    "xen-4.17-fixed+linux-6.1": "xen-4.17-linux-6.1",
    "xen-4.17-fixed+linux-6.12": "xen-fixed",
    "live+linux-6.12": "native",
    "xen-4.17-live+linux-6.12": "xen-4.17",
}
# Disagreements of explain known today: (case glob, evidence set, the wrong verdict (the
# report's cell code) explain gives, why). A disagreement matching one is reported
# as known and does not fail ``run``; any other fails it. A known one that now agrees is listed
# so its line can go. Keep it as short as the facts allow: remove lines as explain gets fixed.
KNOWN_EXPLAIN_WRONG: tuple[tuple[str, str, str, str], ...] = ()


def _stripped_kernel_log(lines: Sequence[str]) -> list[str]:
    """The EHDMESG dump as ``dmesg`` prints it (timestamps kept)."""
    return [line[len("EHDMESG "):] for line in lines if line.startswith("EHDMESG ")]


def _safe_rel(rel: str) -> Path:
    p = Path(rel)
    if not rel or p.is_absolute() or ".." in p.parts:
        raise ValueError(f"bad sysfs path {rel!r}")
    return p


def write_evidence(text: str, root: Path) -> dict[str, Path]:
    """Write, under ``root``, the evidence a user has after the boot whose serial log is
    ``text``; return name -> path for those that exist:

    - ``dmesg.txt``: the kernel log /init dumped (EHDMESG), with its timestamps, as ``dmesg``
      prints it (in a dom0: the dom0's log);
    - ``xl-dmesg.txt``: the ``(XEN)`` lines of the serial log, as ``xl dmesg`` prints Xen's
      console ring (Xen boots only);
    - ``excerpt.txt``: the ``(XEN)`` lines, then the kernel lines holding ``efi:`` or ``esrt:``;
    - ``tree``: a directory laid out like ``efihandoff collect``'s archive (``sys/firmware/efi``
      with the top-level files, ``esrt/**``, ``runtime-map/**``, ``sys/firmware/memmap/**``,
      ``sys/hypervisor/{type,version/*}``), without ``dmesg.txt``. The real kernel always
      creates ``esrt/entries/``, so it is there (empty for a count-0 ESRT) whenever ``esrt/`` is;
    - ``collect.tar.gz``: that tree with ``dmesg.txt`` (and, from a dom0, ``xl-dmesg.txt``)
      beside ``sys/``, in one archive, as ``efihandoff collect`` writes it.
    """
    lines = serial_lines(text)
    real = parse_serial(text)
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    kern = _stripped_kernel_log(lines)
    xen = [line for line in lines if line.startswith("(XEN)")]
    if kern:
        out["dmesg.txt"] = root / "dmesg.txt"
        out["dmesg.txt"].write_text("\n".join(kern) + "\n")
    if xen:
        out["xl-dmesg.txt"] = root / "xl-dmesg.txt"
        out["xl-dmesg.txt"].write_text("\n".join(xen) + "\n")
    excerpt = xen + [line for line in kern if "efi:" in line or "esrt:" in line]
    if excerpt:
        out["excerpt.txt"] = root / "excerpt.txt"
        out["excerpt.txt"].write_text("\n".join(excerpt) + "\n")
    files: dict[str, str] = real.get("files") or {}
    if real.get("efi_dir") is not None or real.get("sysfs_present") or files:
        tree = root / "tree"
        efi = tree / "sys" / "firmware" / "efi"
        efi.mkdir(parents=True, exist_ok=True)
        items = [(Path("firmware/efi/esrt") / _safe_rel(k), v)
                 for k, v in (real.get("sysfs") or {}).items()] if real.get("sysfs_present") else []
        items += [(_safe_rel(k), v) for k, v in files.items()]
        if real.get("sysfs_present"):
            (efi / "esrt" / "entries").mkdir(parents=True, exist_ok=True)
        for rel, value in items:
            dst = tree / "sys" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(value.encode("latin-1"))
        out["tree"] = tree
        out["collect.tar.gz"] = root / "collect.tar.gz"
        with tarfile.open(out["collect.tar.gz"], "w:gz") as tf:
            tf.add(tree / "sys", arcname="sys")
            for name in ("dmesg.txt", "xl-dmesg.txt"):
                if name in out:
                    tf.add(out[name], arcname=name)
    return out


def expected_esrt_sysfs(data: bytes) -> dict[str, str]:
    """The files (relative to /sys/firmware/efi/esrt) a kernel exposing the ESRT ``data``
    unchanged writes, worked out by hand from the layout (UEFI 2.10 23.4: u32 count, u32 max,
    u64 version, then 40-byte entries: GUID, u32 type, version, lowest, flags, last attempt
    version, status) and Linux esrt.c's formats (``%u``, ``%llu`` for the version, ``%pUl``
    for fw_class, ``0x%x`` for capsule_flags)."""
    count, count_max, version = struct.unpack_from("<IIQ", data, 0)
    out = {"fw_resource_count": f"{count}\n", "fw_resource_count_max": f"{count_max}\n",
           "fw_resource_version": f"{version}\n"}
    for i in range(count):
        off = 16 + 40 * i
        d1, d2, d3 = struct.unpack_from("<IHH", data, off)
        d4 = data[off + 8 : off + 16]
        kind, ver, low, flags, lav, las = struct.unpack_from("<6I", data, off + 16)
        e = f"entries/entry{i}/"
        out.update({
            e + "fw_class": f"{d1:08x}-{d2:04x}-{d3:04x}-{d4[:2].hex()}-{d4[2:].hex()}\n",
            e + "fw_type": f"{kind}\n", e + "fw_version": f"{ver}\n",
            e + "lowest_supported_fw_version": f"{low}\n", e + "capsule_flags": f"{flags:#x}\n",
            e + "last_attempt_version": f"{lav}\n", e + "last_attempt_status": f"{las}\n",
        })
    return out


def esrt_truth(content: str, real: dict[str, Any]) -> tuple[str, str] | None:
    """What really happened to the injected ESRT (verdict word, why), from the real outcome and
    the injected bytes; None when the case did not boot. No sysfs tree: ``refused`` (the
    firmware did install it); a tree with every value the injected bytes give: ``intact`` if the
    kernel's ESRT address (its ``efi:`` line) is where the firmware put it, else ``relocated``;
    a tree with some other value: ``corrupt``."""
    if not real.get("booted") or real.get("dom0_died"):
        return None
    inj = next((r for r in real.get("injected") or [] if r.get("guid") == str(ESRT_GUID)), None)
    if inj is None or inj.get("address") is None:
        return "absent", "the injector installed no ESRT"
    if not real.get("sysfs_present"):
        return "refused", "no /sys/firmware/efi/esrt although the firmware installed an ESRT"
    want = expected_esrt_sysfs(esrt_bytes(content))
    got: dict[str, str] = real.get("sysfs") or {}
    differ = [k for k in sorted(set(want) | set(got), key=_sysfs_order)
              if want.get(k) != got.get(k)]
    if differ:
        return "corrupt", (f"{len(differ)} sysfs value(s) differ from the injected bytes: "
                           + ", ".join(differ[:4]) + (", ..." if len(differ) > 4 else ""))
    named = [a for label, a, _ in config_tokens(real.get("efi_lines") or []) if label == "ESRT"]
    if named and named[-1] == inj["address"]:
        return "intact", f"the kernel reads the firmware's bytes at {inj['address']:#x}"
    where = f"{named[-1]:#x}" if named else "an address it does not print"
    return "relocated", (f"the kernel reads an exact copy at {where}; the firmware put it at "
                         f"{inj['address']:#x}")


def observed_esrt(doc: dict[str, Any], stack: str) -> dict[str, Any]:
    """The ESRT verdict explain gives for the stack that printed the evidence: ``paths.observed``
    when the JSON has it, else the stack's preset (:data:`FALLBACK_PRESET`; ``from`` says
    which). {verdict, reason, candidates (verdict words, or None), from, role, xen_version,
    linux_version}. A path whose tables lack the ESRT reads as ``absent`` (explain then says the
    firmware installed none), or as verdict None when the document still shows an ESRT (a
    /sys/firmware copy alone: contents without an address)."""
    paths = doc.get("paths") or {}
    entry = paths.get("observed")
    source = "observed"
    if not isinstance(entry, dict):
        source = f"preset {FALLBACK_PRESET[stack]}"
        entry = paths.get(FALLBACK_PRESET[stack]) or {}
    table = (entry.get("tables") or {}).get(str(ESRT_GUID))
    machine = doc.get("machine") or {}
    out: dict[str, Any] = {"from": source, "role": machine.get("role"),
                           "xen_version": machine.get("xen_version"),
                           "xen_boot": machine.get("xen_boot"),
                           "linux_version": machine.get("linux_version"),
                           "label": entry.get("label") if source == "observed" else None}
    if table is None:
        if doc.get("esrt") is not None:  # shown (e.g. from a sysfs copy), but not judged
            return {**out, "verdict": None, "candidates": None,
                    "reason": f"the ESRT is shown but {source} gives it no verdict"}
        return {**out, "verdict": "absent", "reason": f"no ESRT in {source}'s tables",
                "candidates": None}
    cands = table.get("candidates")
    words = sorted({str(c.get("verdict")) for c in cands if isinstance(c, dict)}) if cands else None
    return {**out, "verdict": table.get("verdict"), "reason": table.get("reason"),
            "candidates": words or None}


def judge_observed(truth: str, observed: dict[str, Any]) -> tuple[str, str]:
    """(status, cell code) of one observed verdict against the truth. Status ``ok`` (the right
    definite verdict), ``unknown`` (unknown, the truth among its candidates), ``weak``
    (unknown without candidates, or no verdict at all for an ESRT explain shows), ``disagree``
    (a wrong definite verdict, ``absent`` included, or an unknown whose candidates miss the
    truth)."""
    v = observed.get("verdict")
    if v is None:
        return "weak", "none"
    if v == "unknown":
        cands = observed.get("candidates")
        if not cands:
            return "weak", "unk?"
        if truth in cands:
            return "unknown", "unk"
        return "disagree", "unk[" + "/".join(cands) + "]"
    if v == truth:
        return "ok", "ok"
    return "disagree", str(v)


def run_explain(sources: Sequence[Path]) -> dict[str, Any]:
    """What ``efihandoff explain SOURCE... --json`` prints (the library, as the CLI calls it,
    every preset), or {"error": one line} when it exits non-zero."""
    from efihandoff.errors import EfiHandoffError
    from efihandoff.explain import explain as explain_views
    from efihandoff.outputs.json import explain_document
    from efihandoff.paths.presets import PRESETS
    from efihandoff.sources import read_sources

    try:
        doc = explain_document(explain_views(read_sources([str(s) for s in sources]),
                                             list(PRESETS.values())))
        return json.loads(json.dumps(doc))  # exactly what --json prints
    except EfiHandoffError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    except Exception as exc:  # the CLI's "internal error" (exit 1)
        return {"error": f"internal error: {type(exc).__name__}: {exc}"}


def _known_wrong(case_id: str, label: str, verdict: str) -> str | None:
    return next((why for pat, lab, wrong, why in KNOWN_EXPLAIN_WRONG
                 if fnmatch.fnmatchcase(case_id, pat) and lab == label and wrong == verdict),
                None)


XEN_VERSION = "4.17.7"  # what Debian's xen-hypervisor-4.17-amd64 4.17.7+13 calls itself


def machine_mismatch(case: Case, label: str, obs: dict[str, Any]) -> str | None:
    """The report cell for a wrong ``machine`` entry in explain's JSON, or None when it is
    right or left open (None or ``unknown``): the role (``xen-hypervisor`` for ``xl dmesg``
    alone, ``xen-dom0`` for any other set of a Xen boot, ``bare-metal`` natively), the Xen
    version (4.17.7 under Xen, none natively), Xen's boot mode (``machine.xen_boot`` and the
    observed label's ``(efi`` / ``(multiboot2``) and the Linux version's major.minor."""
    role = obs.get("role")
    want = ("xen-hypervisor" if label == "xl" else "xen-dom0") if case.xen else "bare-metal"
    if role not in (None, "unknown", want):
        return f"role:{role}"
    xen = obs.get("xen_version")
    want_xen = fixed_xen_version() if case.fixed else XEN_VERSION
    if xen is not None and (not case.xen or xen != want_xen):
        return f"xen:{xen}"
    # how Xen was started: machine.xen_boot and the observed stack's label ("Xen 4.17.7 (efi),
    # ...", "(multiboot2)") must name the stack's boot mode (efi for xen.efi, -mapbs or not)
    boot = obs.get("xen_boot")
    if boot not in (None, "unknown") and boot != case.boot:
        return f"boot:{boot}"
    said = re.search(r"\((efi|multiboot2)\b", obs.get("label") or "")
    if said and said[1] != case.boot:
        return f"label:{said[1]}"
    linux = obs.get("linux_version")
    if linux is not None and linux.split(".")[:2] != case.kernel.split("-")[1].split("."):
        return f"linux:{linux}"
    return None


SHORT_COPY_FINDING = "esrt.xen-short-copy"
POOL_TAIL_SIGNATURE = struct.unpack("<I", b"ptal")[0]  # edk2 POOL_TAIL "ptal" as a u32


def pool_tail_in_tree(real: dict[str, Any]) -> bool:
    """Whether the kernel's ESRT tree ends in edk2's POOL_TAIL (Xen 4.17's 16-byte-short copy):
    the last entry's lowest_supported_fw_version is the signature "ptal" and its
    last_attempt_version the pool's size, 24 (POOL_HEAD) + 40 x entries + 16 (POOL_TAIL)."""
    sysfs: dict[str, str] = real.get("sysfs") or {}
    if not real.get("sysfs_present"):
        return False
    n = len({k.split("/")[1] for k in sysfs if k.startswith("entries/")})
    last = f"entries/entry{n - 1}/"
    return n > 0 and (sysfs.get(last + "lowest_supported_fw_version") == f"{POOL_TAIL_SIGNATURE}\n"
                      and sysfs.get(last + "last_attempt_version") == f"{24 + 40 * n + 16}\n")


def explain_checks(case: Case, text: str) -> dict[str, Any] | None:
    """Issue 9 point 10 for one boot (its serial log ``text``): every evidence set of
    :data:`EXPLAIN_SETS` the boot leaves (``xl`` ones under Xen only) through explain, each
    observed ESRT verdict judged against :func:`esrt_truth`. A set holding the /sys/firmware
    copy must also carry the finding ``esrt.xen-short-copy`` exactly when the copy's ESRT ends
    in the pool tail (:func:`pool_tail_in_tree`): else it disagrees (cell ``-short-copy``,
    missing, or ``+short-copy``, wrongly there); so does a wrong ``machine`` role or version
    (:func:`machine_mismatch`). None when the case did not boot.
    {truth, why, short_copy, sets: [{set, status, cell, verdict, reason, candidates, from, role,
    xen_version, linux_version, findings, known, error}]}; a boot whose dom0 died has truth
    ``dom0 died`` and no sets."""
    real = parse_serial(text)
    if real["dom0_died"]:  # no dom0 ever looked at the ESRT: nothing to judge explain against
        return {"truth": "dom0 died", "why": real["dom0_died"], "short_copy": False, "sets": []}
    truth = esrt_truth(case.content, real)
    if truth is None:
        return None
    short_copy = pool_tail_in_tree(real)
    sets: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix=f"realfw-explain-{case.id}-") as tmp:
        files = write_evidence(text, Path(tmp))
        for label, names in EXPLAIN_SETS.items():
            if not all(n in files for n in names):
                continue
            doc = run_explain([files[n] for n in names])
            if "error" in doc:
                sets.append({"set": label, "status": "error", "cell": "err",
                             "error": doc["error"], "known": None})
                continue
            obs = observed_esrt(doc, case.stack)
            status, cell = judge_observed(truth[0], obs)
            codes = [f.get("code") for f in doc.get("findings") or [] if isinstance(f, dict)]
            if names[0] in ("tree", "collect.tar.gz"):
                flagged = SHORT_COPY_FINDING in codes
                if flagged != short_copy and status != "disagree":
                    status = "disagree"
                    cell = ("-" if short_copy else "+") + "short-copy"
                    obs["reason"] = (f"finding {SHORT_COPY_FINDING} "
                                     + ("missing" if short_copy else "without a pool tail")
                                     + f"; verdict {obs.get('verdict')}: {obs.get('reason')}")
            wrong_machine = machine_mismatch(case, label, obs)
            if wrong_machine is not None and status != "disagree":
                status, cell = "disagree", wrong_machine
                obs["reason"] = (f"machine {wrong_machine}; verdict {obs.get('verdict')}: "
                                 f"{obs.get('reason')}")
            known = _known_wrong(case.id, label, cell) if status == "disagree" else None
            sets.append({"set": label, "status": status, "cell": cell, **obs,
                         "findings": codes, "known": known})
        if case.live:
            sets += live_sets(case, serial_lines(text), truth[0], Path(tmp))
    return {"truth": truth[0], "why": truth[1], "short_copy": short_copy, "sets": sets}


def live_sets(case: Case, lines: list[str], truth: str, tmp: Path) -> list[dict[str, Any]]:
    """The live stacks' two evidence sets: ``live`` (the JSON `efihandoff explain --json`
    printed inside the guest, on the live machine) and ``live-tgz`` (explain here on the
    archive `efihandoff collect` wrote inside the guest), judged as the other sets (verdict
    against the truth, machine role and versions). A file that did not come back whole, or a
    command that failed, is an error."""
    live = realfw_live.parse_live(lines)
    out: list[dict[str, Any]] = []
    for label, name, cmd in (("live", "explain.json", "explain"),
                             ("live-tgz", "collect.tar.gz", "collect")):
        data = live["files"].get(name)
        err = live["files"].get(name.split(".")[0] + ".err", b"").decode(errors="replace")
        problem = None
        if live["rc"].get(cmd) != 0:
            problem = f"efihandoff {cmd} exited {live['rc'].get(cmd)}: {err.strip()[-300:]}"
        elif data is None:
            problem = f"{name} did not come back" + (" whole" if name in live["bad"] else "")
        if problem is None and data is not None:
            try:
                if label == "live":
                    doc = json.loads(data)
                else:
                    doc = run_explain([realfw_live.save_archive(data, tmp / "live")])
            except ValueError as exc:
                problem = f"{name}: {exc}"
        if problem is not None:
            out.append({"set": label, "status": "error", "cell": "err", "error": problem,
                        "known": None})
            continue
        if "error" in doc:
            out.append({"set": label, "status": "error", "cell": "err", "error": doc["error"],
                        "known": None})
            continue
        obs = observed_esrt(doc, case.stack)
        status, cell = judge_observed(truth, obs)
        wrong_machine = machine_mismatch(case, label, obs)
        if wrong_machine is not None and status != "disagree":
            status, cell = "disagree", wrong_machine
            obs["reason"] = (f"machine {wrong_machine}; verdict {obs.get('verdict')}: "
                             f"{obs.get('reason')}")
        codes = [f.get("code") for f in doc.get("findings") or [] if isinstance(f, dict)]
        known = _known_wrong(case.id, label, cell) if status == "disagree" else None
        out.append({"set": label, "status": status, "cell": cell, **obs, "findings": codes,
                    "known": known})
    return out


def explain_cell(result: dict[str, Any] | None) -> str:
    """The report's explain cell: ``d:ok xl+d:ok xl:unk ...``; a wrong verdict in bold (known
    ones in italics), then the truth; ``(preset ID for SETS)`` for the sets whose JSON had no
    ``paths.observed``."""
    if result is None:
        return "-"
    parts = []
    for s in result["sets"]:
        code = s["cell"]
        if s["status"] == "disagree" or s["status"] == "error":
            code = f"*{code}*" if s.get("known") else f"**{code}**"
        parts.append(f"{s['set']}:{code}")
    by_preset: dict[str, list[str]] = {}
    for s in result["sets"]:
        if str(s.get("from", "")).startswith("preset"):
            by_preset.setdefault(s["from"], []).append(s["set"])
    tail = "".join(f" ({p} for {','.join(sets)})" for p, sets in sorted(by_preset.items()))
    return " ".join(parts) + f" = {result['truth']}{tail}"


def explain_totals(results: Iterable[dict[str, Any] | None]) -> dict[str, int]:
    """Counts over every judged evidence set: checks, ok, unknown, weak, disagree (known
    included), known, error."""
    tot = {"checks": 0, "ok": 0, "unknown": 0, "weak": 0, "disagree": 0, "known": 0, "error": 0}
    for r in results:
        for s in (r or {}).get("sets", []):
            tot["checks"] += 1
            tot[s["status"]] += 1
            if s.get("known"):
                tot["known"] += 1
    return tot


# ---------------------------------------------------------------------------------------------
# Report


def summarize_real(o: dict[str, Any]) -> str:
    """One table cell describing a real outcome."""
    if o.get("dom0_died"):
        return f"dom0 died: `{_short(o['dom0_died'])}`"
    if not o.get("booted"):
        return "did not boot" + (" (timeout)" if o.get("timed_out") else "")
    parts = []
    if o.get("sysfs_present"):
        n = (o.get("sysfs") or {}).get("fw_resource_count", "?").strip()
        ent = len({k.split("/")[1] for k in o.get("sysfs") or {} if k.startswith("entries/")})
        parts.append(f"sysfs count={n} entries={ent}")
    else:
        parts.append("no sysfs")
    if _esrt_moved(o):
        parts.append("ESRT moved")
    if o.get("unusable"):
        parts.append("unusable " + ",".join(o["unusable"]))
    parts += [f"`esrt: {_short(line)}`" for line in o.get("esrt_lines") or []]
    return "; ".join(parts)


def summarize_predicted(p: dict[str, Any] | None) -> str:
    """One table cell describing a prediction: as a real outcome, plus how many sysfs values
    the model cannot know and its ESRT verdict word."""
    if p is None:
        return "no prediction"
    if p.get("halt"):  # paths.<id>.booted false: the model's dom0 never starts
        return f"dom0 halts: `{_short(p['halt'])}` [{str(p.get('verdict')).split(':')[0]}]"
    cell = summarize_real({"booted": True, **p})
    unknown = sum(1 for v in (p.get("sysfs") or {}).values() if v is None)
    if unknown:
        cell += f"; {unknown} value{'s' if unknown > 1 else ''} unknowable"
    if p.get("verdict"):
        cell += f" [{p['verdict'].split(':')[0]}]"
    return cell


def _short(line: str, n: int = 60) -> str:
    line = normalise_addresses(line).replace("|", "\\|")
    return line if len(line) <= n else line[: n - 1] + "…"


@dataclass
class Row:
    """One report row: the real outcome, the prediction (None: none), differences and their
    explanations (None: some difference is unexplained)."""

    real: dict[str, Any]
    predicted: dict[str, Any] | None = None
    diffs: list[str] = dataclasses.field(default_factory=list)
    explained: list[str] | None = None
    fwupd: list[str] | None = None  # None: not compared
    explain_result: dict[str, Any] | None = None  # explain_checks(); None: not run

    @property
    def verdict(self) -> str:
        if not self.real.get("booted"):
            return "did not boot"
        if self.predicted is None:
            return "no prediction"
        if not self.diffs:
            return "yes"
        return "explained" if self.explained is not None else "**no**"


def final_line(rows: Sequence[Row]) -> str:
    """``realfw: N cases, A agree, D disagree`` (explained disagreements count as disagree),
    then, when explain was checked, ``; explain: C checks, O ok, U unknown, W weak, X disagree
    (K known)`` (and ``, E error`` when explain failed on some evidence)."""
    agree = sum(1 for r in rows if r.verdict == "yes")
    disagree = sum(1 for r in rows if r.verdict in ("explained", "**no**"))
    line = f"realfw: {len(rows)} cases, {agree} agree, {disagree} disagree"
    if any(r.explain_result is not None for r in rows):
        t = explain_totals(r.explain_result for r in rows)
        line += (f"; explain: {t['checks']} checks, {t['ok']} ok, {t['unknown']} unknown, "
                 f"{t['weak']} weak, {t['disagree']} disagree ({t['known']} known)")
        if t["error"]:
            line += f", {t['error']} error"
    return line


def explain_failures(rows: Sequence[Row]) -> list[str]:
    """Explain checks that fail the run: a disagreement or error not in
    :data:`KNOWN_EXPLAIN_WRONG`, one line each."""
    out = []
    for r in rows:
        for st in (r.explain_result or {}).get("sets", []):
            if st["status"] in ("disagree", "error") and not st.get("known"):
                truth = (r.explain_result or {}).get("truth")
                out.append(f"{r.real['case']} {st['set']}: {st['cell']}, truly "
                           f"{truth} ({st.get('reason') or st.get('error')})")
    return out


def known_gone(rows: Sequence[Row]) -> list[tuple[str, str, str, str]]:
    """Lines of :data:`KNOWN_EXPLAIN_WRONG` that matched a checked case and evidence set but no
    disagreement any more: explain got better, the line can go."""
    checked = [(r.real["case"], st["set"], st["cell"]) for r in rows
               for st in (r.explain_result or {}).get("sets", [])]
    return [k for k in KNOWN_EXPLAIN_WRONG
            if any(fnmatch.fnmatchcase(c, k[0]) and lab == k[1] for c, lab, _ in checked)
            and not any(fnmatch.fnmatchcase(c, k[0]) and lab == k[1] and cell == k[2]
                        for c, lab, cell in checked)]


def stack_table(rows: Sequence[Row]) -> list[str]:
    """The report's per-stack counts (markdown lines, from ``## By stack``): cases, agree,
    explained, disagree, did not boot, and explain's ok / unknown / weak / disagree checks."""
    by: dict[str, dict[str, int]] = {}
    for r in rows:
        parts = str(r.real.get("case", "")).split("-", 2)
        stack = parts[2] if len(parts) == 3 else "?"
        c = by.setdefault(stack, {k: 0 for k in ("cases", "yes", "explained", "**no**",
                                                  "did not boot", "ok", "unknown", "weak",
                                                  "disagree")})
        c["cases"] += 1
        if r.verdict in c:
            c[r.verdict] += 1
        for st in (r.explain_result or {}).get("sets", []):
            if st["status"] in c:
                c[st["status"]] += 1
    if not by:
        return []
    out = ["", "## By stack", "",
           "| stack | model path | cases | agree | explained | disagree | did not boot | "
           "explain ok | unknown | weak | disagree |", "|---" * 11 + "|"]
    for stack in sorted(by, key=lambda s: (STACKS.index(s) if s in STACKS else 99, s)):
        c = by[stack]
        out.append(f"| {stack} | `{PATH_FOR_STACK.get(stack, '?')}` | {c['cases']} | "
                   f"{c['yes']} | "
                   f"{c['explained']} | {c['**no**']} | {c['did not boot']} | {c['ok']} | "
                   f"{c['unknown']} | {c['weak']} | {c['disagree']} |")
    return out


def write_report(rows: Sequence[Row], path: Path | None = None,
                 versions: dict[str, str] | None = None, seconds: float | None = None,
                 command: str | None = None) -> str:
    """Write the markdown report (case, real, predicted, agree); return the final line."""
    path = path or OUT / "report.md"
    final = final_line(rows)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    head = [
        "# Real-firmware bench report", "",
        f"Run on {time.strftime('%Y-%m-%d')}"
        + (f" in {seconds:.0f} s" if seconds is not None else "") + ". Versions: "
        + ", ".join(f"{k} {v}" for k, v in sorted((versions or {}).items())) + ".", "",
        *([f"Command: `{command}` (boots from the cache where they were taken before; the "
            "boot times are in `out/outcomes.json`)", ""] if command else []),
        "Real: what the real kernel exposed and printed. Predicted: efihandoff's model of the "
        "same machine (`bench/realfw/ovmf-q35.toml` + the case's ESRT) on the same path, its "
        "ESRT verdict in brackets; an *unknowable* value is bytes the model cannot know (any "
        "real value is accepted, the file must exist). Agree compares sysfs presence and every "
        "value, the `esrt:` lines, the `efi:` header, the tables named in the `efi:` line with "
        "their `unusable` marks, and whether the ESRT moved. fwupd is *same* when the real "
        "`fwupdtool` on the real tree, the real `fwupdtool` on the tree `efihandoff boot "
        "--sysfs-out` writes, and `efihandoff.fwupd` list the same devices.", "",
        "Addresses in `esrt:` lines are shown relative to the line's first address (A).", "",
        *(["Explain: `efihandoff explain --json` on what the boot left a user, each set judged "
           "by the ESRT verdict of `paths.observed` (or, when the JSON lacks it, of the stack's "
           "preset, named in brackets) against what really happened (after `=`: no sysfs tree "
           "is *refused*; a tree with the injected values is *intact* at the firmware's "
           "address, else *relocated*; other values, *corrupt*). Sets: `d` the kernel's dmesg, "
           "`xl+d` dmesg and `xl dmesg` (Xen's `(XEN)` lines), `xl` alone, `ex` only the "
           "`efi:`/`esrt:`/`(XEN)` lines, `t` the /sys/firmware copy (collect's layout) alone, "
           "`t+d` with the dmesg, `tgz` the copy and the logs in one archive as `efihandoff "
           "collect` writes it; on the `live` stacks also `live`, `efihandoff explain --json` "
           "run inside the guest on the live machine, and `live-tgz`, explain here on the "
           "archive `efihandoff collect` wrote inside the guest. `ok` the right verdict; "
           "`unk` unknown with the truth among "
           "its candidates; `unk?` unknown without candidates and `none` no verdict for an "
           "ESRT it shows (weak, not counted as wrong); otherwise the wrong verdict in bold "
           "(in italics when listed as known in `KNOWN_EXPLAIN_WRONG`). A set holding the copy "
           "must also carry the finding `esrt.xen-short-copy` exactly when the copy's last "
           "entry is edk2's pool tail (else `-short-copy` / `+short-copy`), and the JSON's "
           "`machine` role, Xen and Linux versions must fit the stack (else e.g. "
           "`role:bare-metal`).", ""]
          if any(r.explain_result is not None for r in rows) else []),
        "| case | real | predicted | agree | fwupd |"
        + (" explain |" if any(r.explain_result is not None for r in rows) else ""),
        "|---|---|---|---|---|" + ("---|" if any(r.explain_result is not None for r in rows)
                                   else ""),
    ]
    body = []
    for r in rows:
        fw = "-" if r.fwupd is None else ("same" if not r.fwupd else "**differs**")
        ex = (f" {explain_cell(r.explain_result)} |"
              if any(x.explain_result is not None for x in rows) else "")
        body.append(f"| {r.real['case']} | {summarize_real(r.real)} | "
                    f"{summarize_predicted(r.predicted)} | {r.verdict} | {fw} |{ex}")
    tail = []
    detail = [r for r in rows if r.diffs or r.fwupd]
    if detail:
        tail += ["", "## Differences", ""]
        for r in detail:
            tail.append(f"- {r.real['case']}:")
            tail += [f"  - {d}" for d in [*r.diffs, *(r.fwupd or [])]]
            tail += [f"  - explained: {w}" for w in r.explained or []]
    tail += stack_table(rows)
    by_set: dict[str, dict[str, int]] = {}
    for r in rows:
        for st in (r.explain_result or {}).get("sets", []):
            counts_of = by_set.setdefault(st["set"], {k: 0 for k in (
                "ok", "unknown", "weak", "disagree", "error")})
            counts_of[st["status"]] += 1
    if by_set:
        tail += ["", "## Explain by evidence set", "",
                 "| set | ok | unknown | weak | disagree | error |", "|---|---|---|---|---|---|"]
        tail += [f"| {k} | {v['ok']} | {v['unknown']} | {v['weak']} | {v['disagree']} | "
                 f"{v['error']} |" for k, v in sorted(
                     by_set.items(), key=lambda kv: [*EXPLAIN_SETS, kv[0]].index(kv[0]))]
    wrong = [(r, st) for r in rows for st in (r.explain_result or {}).get("sets", [])
             if st["status"] in ("disagree", "error")]
    if wrong:
        tail += ["", "## Explain disagreements", "",
                 "| case | evidence | explain says | truly | from | reason |",
                 "|---|---|---|---|---|---|"]
        for r, st in wrong:
            why = (st.get("reason") or st.get("error") or "").replace("|", "\\|")
            known = f" (known: {st['known']})" if st.get("known") else ""
            truth = (r.explain_result or {}).get("truth")
            tail.append(f"| {r.real['case']} | {st['set']} | {st['cell']}{known} | "
                        f"{truth} | {st.get('from', '-')} | {why} |")
    tail += ["", ", ".join(f"{v} {k}" for k, v in sorted(counts.items())), "", final, ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(head + body + tail))
    tmp.replace(path)
    return final


def judge(case: Case, real: dict[str, Any], compare_model: bool = True,
          fwupd: bool = True, explain_evidence: bool = True) -> Row:
    """One report row: the prediction, the differences and their explanations, the fwupd
    checks (with ``compare_model`` False: the fwupd column only, not judged) and, with
    ``explain_evidence``, :func:`explain_checks` on the boot's serial log."""
    row = Row(real)
    if not real.get("booted"):
        return row
    log = Path(real["serial_log"]) if real.get("serial_log") else None
    if explain_evidence and log is not None and log.exists():
        row.explain_result = explain_checks(
            case, log.read_bytes().decode("utf-8", errors="replace"))
    if compare_model:
        try:
            row.predicted = predict(case)
        except NotImplementedError:
            row.predicted = None
        if row.predicted is not None:
            row.diffs = compare(real, row.predicted)
            row.explained = explain(case.id, row.diffs) if row.diffs else []
    if fwupd and real.get("dom0_died"):
        pass  # no dom0, no tree: nothing for fwupd to list, nothing to compare
    elif fwupd:
        if compare_model:
            row.fwupd = fwupd_both_ways(case, real, row.predicted)
        else:
            row.fwupd = fwupd_diff(fwupd_for_outcome(real),
                                   fwupd_model(real.get("sysfs"), real["sysfs_present"]))
    return row


# ---------------------------------------------------------------------------------------------
# Command line (bench/realfw/run)


def main(argv: Sequence[str] | None = None) -> int:
    """``run [--smoke] [--jobs 2] [--cases PATTERN] [--no-compare] ...``; returns the exit code."""
    import argparse

    ap = argparse.ArgumentParser(prog="bench/realfw/run", description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="the smoke subset (every stack)")
    ap.add_argument("--jobs", type=int, default=2, help="QEMUs at a time (default 2)")
    ap.add_argument("--cases", help="shell pattern(s) over case ids, comma-separated")
    ap.add_argument("--stacks", default=",".join(STACKS),
                    help=f"stacks of the full matrix (known: {','.join(STACKS)})")
    ap.add_argument("--placements", default=",".join(MATRIX_PLACEMENTS),
                    help=f"placements of the full matrix (known: {','.join(PLACEMENTS)})")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per boot")
    ap.add_argument("--dump", action="store_true", help="also take a QMP memory dump per case")
    ap.add_argument("--no-cache", action="store_true", help="boot even when a result is cached")
    ap.add_argument("--cached-only", action="store_true",
                    help="only the selected cases booted before (no boot; e.g. to rebuild the "
                    "report of a partly booted matrix)")
    ap.add_argument("--no-compare", action="store_true",
                    help="do not judge the model: exit 0 when every case booted (the report "
                    "still shows the fwupd column)")
    ap.add_argument("--no-fwupd", action="store_true", help="skip the real fwupdtool check")
    ap.add_argument("--no-explain", action="store_true",
                    help="skip running efihandoff explain on each boot's dmesg, xl dmesg, "
                    "excerpt and /sys/firmware copy")
    ap.add_argument("--no-install", action="store_true", help="do not run install-deps")
    ap.add_argument("--list", action="store_true", help="list the selected cases and exit")
    ap.add_argument("--out", type=Path, default=OUT, help="output directory")
    args = ap.parse_args(argv)

    stacks = [s.strip() for s in args.stacks.split(",") if s.strip()]
    if unknown := [s for s in stacks if s not in STACKS]:
        ap.error(f"unknown stack {unknown[0]!r} (known: {', '.join(STACKS)})")
    base = smoke() if args.smoke else matrix(
        (p.strip() for p in args.placements.split(",")), stacks)
    base = [c for c in base if c.stack in stacks]
    cases = select(base, args.cases)
    if args.cached_only:
        global LIVE_ANY_CHECKOUT
        LIVE_ANY_CHECKOUT = True
        cases = [c for c in cases if cached_outcome(c, args.dump) is not None]
    if args.list:
        print("\n".join(c.id for c in cases))
        return 0
    if not cases:
        print("realfw: no case matches", file=sys.stderr)
        return 2
    want_fwupd = not args.no_fwupd
    if missing_deps(want_fwupd):
        if args.no_install:
            print("realfw: missing " + ", ".join(missing_deps(want_fwupd)), file=sys.stderr)
            return 3
        subprocess.run([str(HERE / "install-deps")], check=True)
        global _VERSIONS
        _VERSIONS = None  # what install-deps installed belongs in the cache keys
        if missing_deps(want_fwupd):
            print("realfw: still missing " + ", ".join(missing_deps(want_fwupd)),
                  file=sys.stderr)
            return 3

    start = time.monotonic()

    def progress(o: dict[str, Any]) -> None:
        state = "cached" if o.get("cached") else f"{o.get('seconds', 0):.1f} s"
        ok = (" dom0 died" if o.get("dom0_died") else
              "" if o.get("booted") else " DID NOT BOOT")
        print(f"realfw: {o['case']}: {state}{ok}", file=sys.stderr, flush=True)

    outcomes = run_cases(cases, jobs=args.jobs, timeout=args.timeout, dump=args.dump,
                         use_cache=not args.no_cache, progress=progress)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = list(pool.map(lambda cr: judge(cr[0], cr[1], compare_model=not args.no_compare,
                                              fwupd=want_fwupd,
                                              explain_evidence=not args.no_explain),
                             zip(cases, outcomes, strict=True)))
    seconds = time.monotonic() - start
    shown: list[str] = []
    skip = False
    for a in argv if argv is not None else sys.argv[1:]:  # the command, less --out DIR
        if skip or a.startswith("--out="):
            skip = False
            continue
        skip = a == "--out"
        if not skip:
            shown.append(a)
    versions = package_versions()
    if any(c.fixed for c in cases) and xen_source_version():
        versions["xen source (fixed Xen)"] = str(xen_source_version())
    final = write_report(rows, args.out / "report.md", versions, seconds,
                         " ".join(["bench/realfw/run", *shown]))
    for o, r in zip(outcomes, rows, strict=True):
        o["explain"] = r.explain_result
    (args.out / "outcomes.json").write_text(json.dumps(
        {"final": final, "explain_totals": None if args.no_explain else
         explain_totals(r.explain_result for r in rows), "outcomes": outcomes}, indent=1))
    # --no-compare: the model is not judged at all (neither predict() nor efihandoff.fwupd)
    bad = [r for r in rows if r.verdict in ("did not boot", "**no**")
           or (r.fwupd and not args.no_compare)]
    nopred = [r for r in rows if r.verdict == "no prediction"]
    print(f"realfw: report {args.out / 'report.md'} ({seconds:.0f} s)", file=sys.stderr)
    wrong = explain_failures(rows)
    for line in wrong:
        print(f"realfw: explain wrong: {line}", file=sys.stderr)
    for pat, label, cell, _ in known_gone(rows):
        print(f"realfw: explain now right on {pat} {label} (was {cell}): drop it from "
              "KNOWN_EXPLAIN_WRONG", file=sys.stderr)
    print(final)
    if bad or (wrong and not args.no_compare):
        return 1
    if nopred and not args.no_compare:
        print(f"realfw: {len(nopred)} cases have no prediction (use --no-compare)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
