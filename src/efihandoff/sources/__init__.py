"""Readers, one per source kind: kernel logs, sysfs copies, memory dumps, scenarios, the live machine."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from efihandoff.errors import ParseError, SourceError
from efihandoff.machine import Machine


class SourceKind(StrEnum):
    """The ``kind`` of a source in ``explain --json`` (a contract of DESIGN.md)."""

    DMESG = "dmesg"
    SYSFS = "sysfs"
    DUMP = "dump"
    SCENARIO = "scenario"
    LIVE = "live"
    EXAMPLE = "example"


@dataclass(frozen=True)
class Source:
    """Where a Machine came from."""

    path: str
    kind: SourceKind

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "kind": str(self.kind)}


def example_path() -> Path:
    """The bundled example machine (in the wheel, or beside the source tree)."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "examples" / "laptop.toml", here.parents[1] / "examples" / "laptop.toml"):
        if candidate.is_file():
            return candidate
    raise SourceError("the bundled example examples/laptop.toml is missing from this installation")


def read_source(path: str | Path) -> tuple[Machine, Source]:
    """Read any source, telling its kind from its content."""
    p = Path(path)
    if not p.exists():
        raise SourceError(f"{p}: no such file or directory")
    try:
        if p.suffix == ".toml":
            from efihandoff.sources.scenario import load_scenario

            return load_scenario(p), Source(str(p), SourceKind.SCENARIO)
        if p.is_dir():
            raise SourceError(f"{p}: a directory is not a source this version reads")
        with p.open("rb") as f:
            head = f.read(4096)
    except OSError as exc:
        raise SourceError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    except ParseError as exc:
        raise SourceError(f"{p}: {exc}") from exc
    raise SourceError(f"{p}: not a source efihandoff knows ({_describe(head)})")


def _describe(head: bytes) -> str:
    if not head:
        return "empty file"
    if head.startswith(b"\x7fELF"):
        return "an ELF file"
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head)
    return "text" if printable > 0.9 * len(head) else "binary data"
