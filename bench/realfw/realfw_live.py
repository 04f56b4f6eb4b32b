"""The live-reader stacks of the real bench (issue 13 point 5): a minimal Debian root with
python3 and the project's wheel, booted natively and as a Xen dom0, runs ``efihandoff explain
--json`` (no source: the live machine) and ``efihandoff collect`` inside the guest.

The root comes from ``mmdebstrap`` (variant ``essential`` plus python3, python3-click and
python3-rich from Debian's archive, through this machine's own apt source entries), cached as
``cache/live/root-<hash>.tar``; the wheel from ``pip wheel`` on the checkout
(``cache/live/wheel-<hash>/``); both go into one gzip'd initramfs
(``cache/live/initrd-<hash>.cpio.gz``) with busybox and the bench's /init, which after the
usual EH lines runs both commands and prints their output between markers on the console:
``EHLIVE <name> <base64 of gzip>`` lines, then ``EHLIVESUM <name> <sha256 of gzip>`` and
``EHLIVERC <command> <exit code>``. :func:`parse_live` takes them back out of a serial log.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LIVE_CACHE = HERE / "cache" / "live"
SUITE = "bookworm"
VARIANT = "essential"
PACKAGES = ("python3", "python3-click", "python3-rich")
# dpkg path excludes: what nobody reads in a boot that lives for a minute
EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*")
# this machine's own apt source entries (deb822 or one-line), passed to mmdebstrap as mirrors
APT_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
LIVE_TIMEOUT = 600.0  # seconds: 160-250 s seen (a 53 MB initramfs, python under TCG, 2 QEMUs)

# The commands the guest runs, and the files it prints (name -> path in the guest).
LIVE_PART = r"""echo "EHMARK live-begin"
export PATH=/usr/local/bin:/usr/bin:/usr/sbin HOME=/root LANG=C.UTF-8 TERM=dumb
cd /tmp
efihandoff explain --json > /tmp/explain.json 2> /tmp/explain.err
echo "EHLIVERC explain $?"
efihandoff collect /tmp/collect.tar.gz > /tmp/collect.out 2> /tmp/collect.err
echo "EHLIVERC collect $?"
for n in explain.json explain.err collect.tar.gz collect.err; do
  [ -f "/tmp/$n" ] || continue
  gzip -9 -n -c "/tmp/$n" > "/tmp/$n.z"
  base64 -w 96 "/tmp/$n.z" | sed "s/^/EHLIVE $n /"
  echo "EHLIVESUM $n $(sha256sum "/tmp/$n.z" | cut -d' ' -f1)"
done
echo "EHMARK live-end"
"""


def _apt_sources() -> list[str]:
    return [str(p) for p in APT_SOURCES if p.is_file()]


def root_key() -> str:
    """What decides the root's contents (not the archive's state on the day)."""
    return hashlib.sha256(repr((SUITE, VARIANT, PACKAGES, EXCLUDES)).encode()).hexdigest()[:16]


def build_root(out_dir: Path | None = None) -> Path:
    """The Debian root as a tar (mmdebstrap, as root: no fakeroot needed), built once."""
    out_dir = out_dir or LIVE_CACHE
    out = out_dir / f"root-{root_key()}.tar"
    if out.exists():
        return out
    if shutil.which("mmdebstrap") is None:
        raise RuntimeError("mmdebstrap missing: bench/realfw/install-deps installs it")
    sources = _apt_sources()
    if not sources:
        raise RuntimeError("no apt source entries on this machine for mmdebstrap")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.tar")
    cmd = ["mmdebstrap", f"--variant={VARIANT}", f"--include={','.join(PACKAGES)}",
           *(f"--dpkgopt=path-exclude={e}" for e in EXCLUDES), SUITE, str(tmp), *sources]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"mmdebstrap failed ({proc.returncode}): {proc.stderr[-2000:]}")
    tmp.replace(out)
    return out


@functools.cache
def source_hash() -> str:
    """The checkout's package sources and build config: the wheel's identity. Taken once per
    process: a run boots the checkout as it was when the run began, whatever is edited
    meanwhile."""
    h = hashlib.sha256()
    files = [*sorted(p for p in (REPO / "src").rglob("*")
                     if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"),
             REPO / "pyproject.toml"]
    for p in files:
        h.update(str(p.relative_to(REPO)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build_wheel(out_dir: Path | None = None) -> Path:
    """The project's wheel from this checkout (``pip wheel --no-deps``), cached by source;
    older wheels are removed."""
    base = out_dir or LIVE_CACHE
    d = base / f"wheel-{source_hash()}"
    found = sorted(d.glob("efihandoff-*.whl")) if d.is_dir() else []
    if found:
        return found[-1]
    for old in base.glob("wheel-*"):
        shutil.rmtree(old, ignore_errors=True)
    d.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                           str(d), str(REPO)], capture_output=True, text=True, check=False)
    found = sorted(d.glob("efihandoff-*.whl"))
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"pip wheel failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return found[-1]


_DIR, _FILE, _LINK, _CHR = 0o040000, 0o100000, 0o120000, 0o020000


def _root_entries(root_tar: Path) -> list[tuple[str, int, bytes, int, int]]:
    """The root's members as cpio entries (hard links become copies; devices are skipped:
    devtmpfs provides them)."""
    out: list[tuple[str, int, bytes, int, int]] = []
    data: dict[str, bytes] = {}
    with tarfile.open(root_tar) as tf:
        for m in tf.getmembers():
            name = m.name.lstrip("./").rstrip("/")
            if not name or name.startswith(("dev/", "var/cache/", "var/lib/apt/lists/")):
                continue
            perm = m.mode & 0o7777
            if m.isdir():
                out.append((name, _DIR | perm, b"", 0, 0))
            elif m.issym():
                out.append((name, _LINK | 0o777, m.linkname.encode(), 0, 0))
            elif m.islnk():
                target = m.linkname.lstrip("./")
                out.append((name, _FILE | perm, data.get(target, b""), 0, 0))
            elif m.isfile():
                f = tf.extractfile(m)
                blob = f.read() if f is not None else b""
                data[name] = blob
                out.append((name, _FILE | perm, blob, 0, 0))
    return out


def _wheel_entries(wheel: Path) -> list[tuple[str, int, bytes, int, int]]:
    """The wheel unpacked into Debian's python3 path, plus the console script."""
    site = "usr/lib/python3/dist-packages"
    out: list[tuple[str, int, bytes, int, int]] = []
    dirs: set[str] = set()
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            path = f"{site}/{info.filename}"
            parts = path.split("/")
            dirs.update("/".join(parts[:i]) for i in range(4, len(parts)))
            out.append((path, _FILE | 0o644, zf.read(info), 0, 0))
    script = (b"#!/usr/bin/python3\nimport sys\nfrom efihandoff.cli import main\n"
              b"sys.exit(main())\n")
    dir_entries = [(d, _DIR | 0o755, b"", 0, 0) for d in sorted(dirs)]
    return [*dir_entries, *out, ("usr/local/bin/efihandoff", _FILE | 0o755, script, 0, 0)]


def live_init(init_script: str) -> str:
    """The bench's /init with the live part before it powers off."""
    head, sep, tail = init_script.rpartition("poweroff -f")
    if not sep:
        raise ValueError("the /init script has no poweroff")
    return head + LIVE_PART + sep + tail


_LOCK = threading.Lock()


def build_initrd(init_script: str, busybox: Path, cpio_newc: Any,
                 out_dir: Path | None = None) -> Path:
    """root + wheel + busybox + /init as one gzip'd newc initramfs, cached by all four (one
    build at a time: the bench's boot threads all ask for it)."""
    with _LOCK:
        return _build_initrd(init_script, busybox, cpio_newc, out_dir)


def _build_initrd(init_script: str, busybox: Path, cpio_newc: Any,
                  out_dir: Path | None) -> Path:
    out_dir = out_dir or LIVE_CACHE
    root = build_root(out_dir)
    wheel = build_wheel(out_dir)
    init = live_init(init_script)
    bb = busybox.read_bytes()
    h = hashlib.sha256()
    for part in (root.name.encode(), wheel.read_bytes(), bb, init.encode()):
        h.update(hashlib.sha256(part).digest())
    out = out_dir / f"initrd-{h.hexdigest()[:16]}.cpio.gz"
    if out.exists():
        return out
    entries = _root_entries(root)
    names = {e[0] for e in entries}
    extra = [(d, _DIR | 0o755, b"", 0, 0) for d in ("dev", "proc", "sys", "tmp", "run")
             if d not in names]
    entries += extra + _wheel_entries(wheel)
    entries += [("dev/console", _CHR | 0o600, b"", 5, 1),
                ("usr/bin/busybox", _FILE | 0o755, bb, 0, 0),
                ("init", _FILE | 0o755, init.encode(), 0, 0)]
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", compresslevel=6,
                                              mtime=0) as gz:
        gz.write(cpio_newc(entries))
    tmp.replace(out)
    for old in out_dir.glob("initrd-*.cpio.gz"):  # one initramfs of ~100 MB is enough
        if old != out:
            old.unlink(missing_ok=True)
    return out


def parse_live(lines: Iterable[str]) -> dict[str, Any]:
    """The guest's files and exit codes from serial lines: {files: name -> bytes (gunzipped),
    bad: [names whose sha256 or base64 did not check out], rc: command -> int, ended: bool}."""
    chunks: dict[str, list[str]] = {}
    sums: dict[str, str] = {}
    rc: dict[str, int] = {}
    ended = False
    for line in lines:
        if line.startswith("EHLIVE "):
            parts = line.split(" ", 2)
            if len(parts) == 3:
                chunks.setdefault(parts[1], []).append(parts[2].strip())
        elif line.startswith("EHLIVESUM "):
            parts = line.split()
            if len(parts) == 3:
                sums[parts[1]] = parts[2]
        elif line.startswith("EHLIVERC "):
            parts = line.split()
            if len(parts) == 3 and parts[2].lstrip("-").isdigit():
                rc[parts[1]] = int(parts[2])
        elif line == "EHMARK live-end":
            ended = True
    files: dict[str, bytes] = {}
    bad: list[str] = []
    for name, got in chunks.items():
        try:
            raw = base64.b64decode("".join(got), validate=True)
        except ValueError:
            bad.append(name)
            continue
        if sums.get(name) != hashlib.sha256(raw).hexdigest():
            bad.append(name)
            continue
        files[name] = gzip.decompress(raw)
    return {"files": files, "bad": sorted(bad), "rc": rc, "ended": ended}


def collect_members(archive: bytes) -> list[str]:
    """The member names of the guest's collect archive."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tf:
        return sorted(m.name for m in tf.getmembers())


def save_archive(archive: bytes, root: Path) -> Path:
    """Write the guest's archive under ``root`` for explain to read."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "live-collect.tar.gz"
    path.write_bytes(archive)
    os.chmod(path, 0o644)
    return path
