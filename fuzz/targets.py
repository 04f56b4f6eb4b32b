"""Fuzz targets: one per reader and one per output, each with its seeds, its mutator and the
function that runs one case.

A case *escapes* when ``run`` raises anything but :class:`efihandoff.errors.EfiHandoffError`
(:class:`Rejected` marks an input the harness itself cannot stage, e.g. a byte-mutated tar for
the directory target: it is neither a pass nor an escape). Outputs are fed the machines the
readers make of mutated scenarios and logs, and their text is checked: the JSON document loads
back, the SVG and HTML parse as XML / carry no raw control characters.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import struct
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parent.parent
SEEDS = Path(__file__).resolve().parent / "seeds"


class Rejected(Exception):
    """The harness cannot stage this input (not a finding about efihandoff)."""


class BadOutput(Exception):
    """An output that is not what it claims to be (invalid JSON, malformed SVG): an escape."""


@dataclass(frozen=True)
class Target:
    name: str
    ext: str  # reproducer file suffix
    seeds: Callable[[], Sequence[bytes]]
    mutate: Callable[[random.Random, bytes, Sequence[bytes]], bytes]
    run: Callable[[bytes, Path], None]
    doc: str


# --------------------------------------------------------------------------------------------
# seeds


def _files(*patterns: str) -> list[bytes]:
    out = []
    for pattern in patterns:
        out += [p.read_bytes() for p in sorted(ROOT.glob(pattern)) if p.is_file()]
    return out


@cache
def scenario_seeds() -> tuple[bytes, ...]:
    return tuple(_files("examples/*.toml", "fuzz/seeds/*.toml"))


@cache
def log_seeds() -> tuple[bytes, ...]:
    return tuple(
        _files(
            "tests/fixtures/logs/*.log",
            "tests/fixtures/pair/*.log",
            "tests/fixtures/sysfs/*/dmesg.txt",
        )
    )


# Lines the log readers act on, numbers left as {n} for the mutator (written from the formats
# the readers document, not from kernel sources).
LOG_LINES: tuple[str, ...] = (
    "[    0.000000] efi: ACPI 2.0=0x{n} ESRT=0x{n} MEMATTR=0x{n} SMBIOS 3.0=0x{n} ",
    "[    0.000000] efi: ESRT=0x{n} TPMEventLog=0x{n} RNG=0x{n} MEMRESERVE=0x{n} ",
    "[    0.000000] efi: mem{n}: [Boot Data   |   |  |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC]"
    " range=[0x{n}-0x{n}] (0MB)",
    "[    0.000000] efi: mem{n}: [Runtime Data|RUN|  |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC]"
    " range=[0x{n}-0x{n}] ({n}MB)",
    "[    0.000000] BIOS-e820: [mem 0x{n}-0x{n}] usable",
    "[    0.000000] BIOS-e820: [mem 0x{n}-0x{n}] reserved",
    "[    0.000000] Xen: [mem 0x{n}-0x{n}] ACPI data",
    "[    0.004000] esrt: Reserving ESRT space from 0x{n} to 0x{n}.",
    "[    0.004000] esrt: ESRT does not fit on single memory map entry (size: {n} max: {n})",
    "[    0.004000] esrt: Unsupported ESRT version {n}.",
    "[    0.000000] Linux version {n}.{n}.{n} (x@example.org) #1 SMP",
    "[    0.000000] efi: EFI v{n}.{n} by EDK II",
    "(XEN) Xen version {n}.{n}.{n} (x@example.org) debug=n",
    "(XEN)  {n}-{n} type={n} attr={n}",
    "(XEN) EFI RAM map:",
    "[    0.000000] Hypervisor detected: Xen PV",
    "[    0.000000] efi: Remove mem{n}: MMIO range=[0x{n}-0x{n}] ({n}MB) from e820 map",
)


@cache
def _small_machine():  # the fuzz seed scenario, built once
    from efihandoff.sources.scenario import load_scenario

    return load_scenario(SEEDS / "small.toml")


@cache
def raw_dump_seeds() -> tuple[bytes, ...]:
    from efihandoff.sources.dump import write_raw_image

    m = _small_machine()
    out = []
    tmp = Path(_scratch()) / "seed.raw"
    for bp in (None, (0x9E1C0, m.memory_map, 0x9A000, m.system_table_address)):
        write_raw_image(m.memory, tmp, size=8 << 20, boot_params=bp)
        out.append(tmp.read_bytes())
    tmp.unlink()
    return tuple(out)


def elf_core(segments: Sequence[tuple[int, bytes]]) -> bytes:
    """An ELF64 little-endian core: header, one PT_LOAD per (physical address, bytes) segment,
    then the data (gABI layout, written from the spec)."""
    ehdr = struct.Struct("<16sHHIQQQIHHHHHH")
    phdr = struct.Struct("<IIQQQQQQ")
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    n = len(segments)
    pos = ehdr.size + n * phdr.size
    heads, body = [], bytearray()
    for phys, data in segments:
        heads.append(phdr.pack(1, 6, pos + len(body), 0, phys, len(data), len(data), 4096))
        body += data
    head = ehdr.pack(ident, 4, 62, 1, 0, ehdr.size, 0, 0, ehdr.size, phdr.size, n, 0, 0, 0)
    return head + b"".join(heads) + bytes(body)


@cache
def elf_dump_seeds() -> tuple[bytes, ...]:
    from efihandoff.sources.scenario import load_scenario

    out = []
    for m in (_small_machine(), load_scenario(ROOT / "examples" / "laptop.toml")):
        runs: list[tuple[int, bytearray]] = []
        for addr, data in sorted(m.memory.pages()):
            if runs and runs[-1][0] + len(runs[-1][1]) == addr:
                runs[-1][1].extend(data)
            else:
                runs.append((addr, bytearray(data)))
        out.append(elf_core([(a, bytes(b)) for a, b in runs]))
    return tuple(out)


@cache
def sysfs_dir_seeds() -> tuple[bytes, ...]:
    return tuple(
        pack_tree(p)
        for p in sorted((ROOT / "tests" / "fixtures" / "sysfs").iterdir())
        if p.is_dir()
    )


@cache
def sysfs_tar_seeds() -> tuple[bytes, ...]:
    out = []
    for raw in sysfs_dir_seeds():
        out.append(raw)
        out.append(_recompress(raw, "gz"))
        out.append(_recompress(raw, "xz"))
    return tuple(out)


@cache
def _scratch() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="efihandoff-fuzz-seeds-")


# --------------------------------------------------------------------------------------------
# trees as tar bytes (the directory target's input format)


def pack_tree(root: Path) -> bytes:
    """A directory as an uncompressed tar, members sorted, times and owners zeroed."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for p in sorted(root.rglob("*")):
            info = tf.gettarinfo(str(p), arcname=p.relative_to(root).as_posix())
            info.mtime = info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isreg():
                with p.open("rb") as f:
                    tf.addfile(info, f)
            else:
                tf.addfile(info)
    return buf.getvalue()


def _members(data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
            out = []
            for m in tf.getmembers():
                f = tf.extractfile(m) if m.isreg() else None
                out.append((m, f.read() if f else b""))
            return out
    except Exception as exc:  # the harness's own staging, not the reader under test
        raise Rejected(f"not a tar: {exc}") from None


def _repack(members: Sequence[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for info, data in members:
            info = _copy_info(info)
            if info.isreg():
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return buf.getvalue()


def _copy_info(info: tarfile.TarInfo) -> tarfile.TarInfo:
    new = tarfile.TarInfo(info.name)
    for attr in ("type", "mode", "linkname", "size"):
        setattr(new, attr, getattr(info, attr))
    return new


def _recompress(raw: bytes, how: str) -> bytes:
    import gzip
    import lzma

    if how == "gz":
        return gzip.compress(raw, mtime=0)
    if how == "xz":
        return lzma.compress(raw)
    return raw


def mutate_tree(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
    """Structured havoc on a sysfs copy: file contents, names, duplicated entries, symlinks."""
    from fuzz.mutate import HOSTILE_NUMBERS, mutate_text

    members = _members(data)
    for _ in range(rng.choice((1, 1, 2, 4))):
        if not members:
            break
        op = rng.randrange(7)
        i = rng.randrange(len(members))
        info, content = members[i]
        if op in (0, 1, 2) and info.isreg():
            if rng.random() < 0.5:
                content = rng.choice(HOSTILE_NUMBERS).encode() + b"\n"
            else:
                content = mutate_text(rng, content, rounds=1)
            members[i] = (info, content)
        elif op == 3:
            del members[i]
        elif op == 4:  # an entry directory repeated many times
            prefix = info.name.rsplit("/", 1)[0]
            copies = [
                (_renamed(m, prefix, f"{prefix}{k}"), c)
                for k in range(rng.choice((2, 50, 600)))
                for m, c in members
                if m.name.startswith(prefix + "/")
            ]
            members += copies[: max(0, 3000 - len(members))]  # staging stays cheap
        elif op == 5:
            link = tarfile.TarInfo(info.name.rsplit("/", 1)[0] + f"/l{rng.randrange(9)}")
            link.type = tarfile.SYMTYPE
            link.linkname = rng.choice((".", "..", "../..", "/etc/passwd", info.name, "l0", ""))
            members.append((link, b""))
        elif op == 6:
            members[i] = (
                _renamed(info, info.name, info.name + rng.choice(("\n", "\x1b", " ", "/."))),
                content,
            )
    return _repack(members)


def _renamed(info: tarfile.TarInfo, old: str, new: str) -> tarfile.TarInfo:
    c = _copy_info(info)
    c.name = new + info.name[len(old) :] if info.name.startswith(old) else info.name
    return c


def unpack_tree(data: bytes, dest: Path) -> Path:
    """Stage a directory input: regular files, directories and symlinks whose names stay
    inside ``dest`` (the harness refuses the rest as Rejected)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for info, content in _members(data):
        name = info.name.strip("/")
        parts = name.split("/")
        if not name or any(p in ("", ".", "..") for p in parts) or "\0" in name:
            continue
        p = dest.joinpath(*parts)
        try:
            if info.isdir():
                p.mkdir(parents=True, exist_ok=True)
            elif info.isreg():
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(content)
            elif info.issym():
                p.parent.mkdir(parents=True, exist_ok=True)
                p.symlink_to(info.linkname)
        except OSError:
            continue
    return dest


# --------------------------------------------------------------------------------------------
# runners


def _checked_error() -> type[BaseException]:
    from efihandoff.errors import EfiHandoffError

    return EfiHandoffError


def run_scenario(data: bytes, work: Path) -> None:
    from efihandoff.sources import read_source

    p = work / "case.toml"
    p.write_bytes(data)
    try:
        read_source(p)
    except _checked_error():
        pass


def run_log(data: bytes, work: Path) -> None:
    from efihandoff.sources import log_views

    try:
        log_views(data, "case.log", required=False)
    except _checked_error():
        pass


def run_dump(data: bytes, work: Path) -> None:
    from efihandoff.sources.dump import read_dump

    p = work / "case.dump"
    p.write_bytes(data)
    try:
        ev = read_dump(p)
        found = ev.boot_memory_map()
        ev.to_machine(found[0] if found else None)
    except _checked_error():
        pass


def run_sysfs_tar(data: bytes, work: Path) -> None:
    from efihandoff.sources.sysfs import read_sysfs

    suffix = (
        ".tar.gz" if data[:2] == b"\x1f\x8b" else ".tar.xz" if data[:6] == b"\xfd7zXZ\0" else ".tar"
    )
    p = work / ("case" + suffix)
    p.write_bytes(data)
    try:
        read_sysfs(p).to_machine(None)
    except _checked_error():
        pass


def run_sysfs_dir(data: bytes, work: Path) -> None:
    from efihandoff.sources.sysfs import read_sysfs

    d = unpack_tree(data, work / "tree")
    try:
        read_sysfs(d).to_machine(None)
    except _checked_error():
        pass


def _views(data: bytes, work: Path):
    from efihandoff.sources import read_source

    toml = b"[[region]]" in data or b"[region]" in data
    p = work / ("case.toml" if toml else "case.log")
    p.write_bytes(data)
    try:
        return read_source(p)
    except _checked_error():
        return None


def _document(data: bytes, work: Path, path_id: str | None = None):
    from efihandoff.explain import explain
    from efihandoff.outputs.json import explain_document
    from efihandoff.paths.presets import PRESETS

    views = _views(data, work)
    if not views:
        return None
    try:
        return explain_document(explain(views, list(PRESETS.values())))
    except _checked_error():
        return None


def run_text(data: bytes, work: Path) -> None:
    from rich.console import Console

    from efihandoff.outputs import text

    doc = _document(data, work)
    if doc is None:
        return
    out = io.StringIO()
    text.render_explain(doc, Console(file=out, width=160, highlight=False), full_map=True)


def run_json(data: bytes, work: Path) -> None:
    doc = _document(data, work)
    if doc is None:
        return
    s = json.dumps(doc, indent=2)
    if json.loads(s) != json.loads(json.dumps(doc)):
        raise BadOutput("JSON document does not load back")


def _check_markup(text: str, what: str) -> None:
    bad = next((c for c in text if ord(c) < 32 and c not in "\t\n\r"), None)
    if bad is not None:
        raise BadOutput(f"{what} holds a raw control character {bad!r}")


def run_html(data: bytes, work: Path) -> None:
    from efihandoff.outputs.html import explain_html

    doc = _document(data, work)
    if doc is None:
        return
    for pid in (None, "xen-4.16"):
        _check_markup(explain_html(doc, path_id=pid), "HTML")


def run_svg(data: bytes, work: Path) -> None:
    from efihandoff.outputs.svg import memmap_svg

    doc = _document(data, work)
    if doc is None:
        return
    for pid in (None, "xen-4.16", "relocate-known"):
        svg = memmap_svg(doc, path_id=pid)
        _check_markup(svg, "SVG")
        try:
            ElementTree.fromstring(svg)
        except ElementTree.ParseError as exc:
            raise BadOutput(f"SVG is not well-formed XML: {exc}") from None


def run_sysfs_out(data: bytes, work: Path) -> None:
    from efihandoff.outputs.sysfs import write_tree
    from efihandoff.paths.presets import PRESETS
    from efihandoff.paths.simulate import simulate

    views = _views(data, work)
    if not views:
        return
    out = work / "sysfs-out"
    for spec in PRESETS.values():
        try:
            result = simulate(views[0].machine, spec)
            tree = {"efi": None, "efi/efivars": None, **(result.sysfs or {})}
            write_tree(tree, out, force=True)
        except _checked_error():
            continue


# --------------------------------------------------------------------------------------------
# mutators


def _mut_scenario(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
    from fuzz.mutate import mutate_toml

    return mutate_toml(rng, data, others=others)


def _mut_log(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
    from fuzz.mutate import mutate_text

    return mutate_text(rng, data, others=others, extra_lines=LOG_LINES)


def _hot(data: bytes) -> list[int]:
    """Offsets of the non-zero 4 KiB blocks (where the tables and headers are)."""
    return [
        off
        for off in range(0, len(data), 4096)
        if data[off : off + 4096].count(0) != len(data[off : off + 4096])
    ][:4096]


_HOT: dict[int, list[int]] = {}


def _mut_dump(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
    from fuzz.mutate import mutate_bytes

    hot = _HOT.get(id(data)) if any(data is o for o in others) else None
    if hot is None:
        hot = _hot(data)
        if any(data is o for o in others):  # cache the seeds' only (ids of others get reused)
            _HOT[id(data)] = hot
    if data[:4] == b"\x7fELF" and rng.random() < 0.3:
        return _mut_elf_headers(rng, data)
    return mutate_bytes(rng, data, hot=hot, others=())


def _mut_elf_headers(rng: random.Random, data: bytes) -> bytes:
    """ELF program headers duplicated or made to alias (many PT_LOADs over the same bytes)."""
    if len(data) < 64:
        return data
    (phoff,) = struct.unpack_from("<Q", data, 32)
    (phnum,) = struct.unpack_from("<H", data, 56)
    if not 64 <= phoff <= len(data) - 56 * max(phnum, 1):
        return data  # an earlier mutation broke the header: nothing to repeat
    headers = [data[phoff + 56 * i : phoff + 56 * (i + 1)] for i in range(phnum)]
    body = data[phoff + 56 * phnum :]
    extra = rng.choice((2, 100, 5000, 60000))
    new = (headers * (extra // max(1, len(headers)) + 1))[:extra]
    n = len(new)
    if n > 0xFFFE:
        n = 0xFFFE
        new = new[:n]
    shift = (n - phnum) * 56
    fixed = []
    for h in new:
        f = list(struct.unpack("<IIQQQQQQ", h))
        f[2] += shift
        fixed.append(struct.pack("<IIQQQQQQ", *f))
    head = bytearray(data[:64])
    struct.pack_into("<H", head, 56, n)
    return bytes(head) + b"".join(fixed) + body


def _mut_sysfs_tar(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
    from fuzz.mutate import mutate_bytes

    r = rng.random()
    if r < 0.5:
        try:
            raw = mutate_tree(rng, data, others)
        except Rejected:
            raw = data
        return _recompress(raw, rng.choice(("", "gz", "xz")))
    return mutate_bytes(rng, data, hot=list(range(0, min(len(data), 1 << 16), 512)))


def _mut_sysfs_dir(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
    try:
        return mutate_tree(rng, data, others)
    except Rejected:
        return data


def _mut_output(rng: random.Random, data: bytes, others: Sequence[bytes]) -> bytes:
    if b"[[region]]" in data or b"[region]" in data:
        return _mut_scenario(rng, data, [o for o in others if b"[[region]]" in o])
    return _mut_log(rng, data, [o for o in others if b"[[region]]" not in o])


def _output_seeds() -> tuple[bytes, ...]:
    return scenario_seeds() + log_seeds()


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "scenario",
            "toml",
            scenario_seeds,
            _mut_scenario,
            run_scenario,
            "scenario TOML through read_source",
        ),
        Target(
            "kernellog",
            "log",
            log_seeds,
            _mut_log,
            run_log,
            "kernel log through the public log_views",
        ),
        Target(
            "dump-raw",
            "raw",
            raw_dump_seeds,
            _mut_dump,
            run_dump,
            "raw memory image through read_dump",
        ),
        Target(
            "dump-elf", "elf", elf_dump_seeds, _mut_dump, run_dump, "ELF core through read_dump"
        ),
        Target(
            "sysfs-tar",
            "tar",
            sysfs_tar_seeds,
            _mut_sysfs_tar,
            run_sysfs_tar,
            "/sys/firmware copy as .tar, .tar.gz, .tar.xz through read_sysfs",
        ),
        Target(
            "sysfs-dir",
            "tar",
            sysfs_dir_seeds,
            _mut_sysfs_dir,
            run_sysfs_dir,
            "/sys/firmware copy as a directory (staged from a tar) through read_sysfs",
        ),
        Target(
            "out-text",
            "in",
            _output_seeds,
            _mut_output,
            run_text,
            "explain's text output (full map) of a mutated scenario or log",
        ),
        Target(
            "out-json",
            "in",
            _output_seeds,
            _mut_output,
            run_json,
            "explain/1 JSON of a mutated scenario or log",
        ),
        Target(
            "out-html",
            "in",
            _output_seeds,
            _mut_output,
            run_html,
            "the HTML report of a mutated scenario or log",
        ),
        Target(
            "out-svg",
            "in",
            _output_seeds,
            _mut_output,
            run_svg,
            "the memory-map SVG of a mutated scenario or log",
        ),
        Target(
            "out-sysfs",
            "in",
            _output_seeds,
            _mut_output,
            run_sysfs_out,
            "the sysfs tree writer (--sysfs-out --force) on every preset",
        ),
    )
}


def make_case(target: Target, seed: int, index: int) -> bytes:
    """The input of case ``index`` of ``target`` under ``seed`` (deterministic)."""
    rng = random.Random(f"{seed}/{target.name}/{index}")
    seeds = target.seeds()
    data = rng.choice(seeds)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        try:
            data = target.mutate(rng, data, seeds)
        except Exception:  # a mutator that cannot handle an earlier round's output: skip it
            continue
    return data
