"""Seeded mutators of valid inputs: bytes, text lines, numbers, TOML structure.

Every mutator takes a ``random.Random`` and the input, and returns new bytes; the same seed gives
the same output, so a case is reproduced from its (target, seed, index) alone.
"""

from __future__ import annotations

import random
import re
import struct
from collections.abc import Callable, Mapping, Sequence

from efihandoff.sources.scenario import SCHEMA, Key
from efihandoff.uefi.esrt import ENTRY_FIELDS

# Values that break code which trusts a field: sign, width and wrap boundaries.
INTERESTING_INTS: tuple[int, ...] = (
    0,
    1,
    2,
    7,
    8,
    15,
    16,
    39,
    40,
    41,
    47,
    48,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0xFFF,
    0x1000,
    0x7FFF,
    0xFFFF,
    0x10000,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFF,
    0x100000000,
    0xFFFFFFFFFFFFF000,
    0x7FFFFFFFFFFFFFFF,
    0x8000000000000000,
    0xFFFFFFFFFFFFFFFF,
)
# Text spellings of hostile numbers, for logs and TOML values.
HOSTILE_NUMBERS: tuple[str, ...] = (
    "0",
    "-1",
    "-0x1",
    "1e308",
    "inf",
    "-inf",
    "nan",
    "18446744073709551616",
    "0xffffffffffffffff",
    "0x10000000000000000",
    "340282366920938463463374607431768211456",
    "0xfffffffffffff000",
    "4294967296",
    "99999999999999999999999999",
    "0x",
    "0x-1",
    "1_0",
    "00000000000000000000000000000000000000000000000000000000001",
)
CONTROL = (
    "\x00",
    "\x1b[2J",
    "\r",
    "\t",
    "\x7f",
    "\u2028",
    "\ud800",
    "\x85",
    "\n\n",
    "[/b]",
    "[red]",
    "[link=file:///etc/passwd]",
    "<script>",
    "&amp;",
    "]]>",  # markup of outputs
)
_NUMBER = re.compile(rb"0x[0-9a-fA-F]+|\b\d+\b")


def pick_offset(rng: random.Random, data: bytes | bytearray, hot: Sequence[int] = ()) -> int:
    """A random offset, near one of the ``hot`` offsets (non-zero regions) most of the time."""
    if not data:
        return 0
    if hot and rng.random() < 0.85:
        return min(len(data) - 1, max(0, rng.choice(hot) + rng.randrange(-64, 4096)))
    return rng.randrange(len(data))


def mutate_bytes(
    rng: random.Random,
    data: bytes,
    *,
    hot: Sequence[int] = (),
    others: Sequence[bytes] = (),
    rounds: int | None = None,
) -> bytes:
    """Byte-level havoc: flips, interesting integers of every width, inserts, deletes,
    duplicated chunks (count blow-ups), splices with another seed."""
    buf = bytearray(data)
    for _ in range(rounds or rng.choice((1, 1, 2, 3, 5, 8))):
        op = rng.randrange(9)
        off = pick_offset(rng, buf, hot)
        if op == 0 and buf:
            buf[off] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[off] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        elif op in (2, 3):
            width, fmt = rng.choice(((2, "H"), (4, "I"), (8, "Q")))
            value = rng.choice(INTERESTING_INTS) & ((1 << (8 * width)) - 1)
            if rng.random() < 0.3:
                value = (value + rng.randrange(-2, 3)) % (1 << (8 * width))
            end = rng.choice("<>")
            if off + width <= len(buf):
                buf[off : off + width] = struct.pack(end + fmt, value)
        elif op == 4:
            buf[off:off] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 32)))
        elif op == 5 and buf:
            del buf[off : off + rng.choice((1, 4, 16, 256, 4096))]
        elif op == 6 and buf:
            chunk = bytes(buf[off : off + rng.choice((4, 16, 40, 64, 512))])
            buf[off:off] = chunk * rng.choice((2, 8, 64, 1000))
        elif op == 7 and others:
            other = rng.choice(others)
            if other:
                s = rng.randrange(len(other))
                buf[off:off] = other[s : s + rng.randrange(1, 4096)]
        elif op == 8 and buf:
            del buf[off:]  # truncation
    return bytes(buf)


def mutate_text(
    rng: random.Random,
    data: bytes,
    *,
    others: Sequence[bytes] = (),
    extra_lines: Sequence[str] = (),
    rounds: int | None = None,
) -> bytes:
    """Line-level havoc for logs and TOML: numbers swapped for hostile ones, lines duplicated,
    repeated, dropped, spliced from other seeds, control characters, then sometimes bytes."""
    lines = data.split(b"\n")
    for _ in range(rounds or rng.choice((1, 1, 2, 3, 4, 8))):
        op = rng.randrange(10)
        i = rng.randrange(len(lines)) if lines else 0
        if op in (0, 1, 2) and lines:
            nums = list(_NUMBER.finditer(lines[i]))
            if nums:
                m = rng.choice(nums)
                new = rng.choice((*HOSTILE_NUMBERS, hex(rng.choice(INTERESTING_INTS))))
                lines[i] = lines[i][: m.start()] + new.encode() + lines[i][m.end() :]
        elif op == 3 and lines:
            lines[i:i] = [lines[i]] * rng.choice((1, 2, 50, 1000, 5000))
        elif op == 4 and lines:
            del lines[i : i + rng.choice((1, 1, 5, 50))]
        elif op == 5 and others:
            other = rng.choice(others).split(b"\n")
            s = rng.randrange(len(other))
            lines[i:i] = other[s : s + rng.randrange(1, 40)]
        elif op == 6 and extra_lines:
            line = rng.choice(extra_lines)
            line = _fill_numbers(rng, line)
            lines[i:i] = [line.encode("utf-8", "surrogatepass")] * rng.choice((1, 1, 3, 400))
        elif op == 7 and lines:
            pos = rng.randrange(len(lines[i]) + 1)
            c = rng.choice(CONTROL).encode("utf-8", "surrogatepass")
            lines[i] = lines[i][:pos] + c + lines[i][pos:]
        elif op == 8 and lines:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == 9:
            out = b"\n".join(lines)
            return mutate_bytes(rng, out, others=others, rounds=rng.choice((1, 2)))
    return b"\n".join(lines)


def _fill_numbers(rng: random.Random, template: str) -> str:
    """``{n}`` placeholders in a template line replaced by hostile or ordinary numbers."""
    while "{n}" in template:
        value = rng.choice(
            (
                hex(rng.choice(INTERESTING_INTS)),
                rng.choice(HOSTILE_NUMBERS),
                hex(rng.getrandbits(32)),
            )
        )
        template = template.replace("{n}", value.removeprefix("0x"), 1)
    return template


# --------------------------------------------------------------------------------------------
# TOML: keys the scenario reader knows, hostile values, structure breakage

def _schema_keys(keys: Mapping[str, Key]) -> list[str]:
    out: list[str] = []
    for name, key in keys.items():
        out.append(name)
        out += _schema_keys(key.keys)
    return out


# Every key the scenario schema names (stated once, in sources/scenario.py), and one it does not.
SCENARIO_KEYS: tuple[str, ...] = (
    *dict.fromkeys([*_schema_keys(SCHEMA), *ENTRY_FIELDS]),  # ESRT entries: uefi.esrt's fields
    "bogus_key",
)
TOML_VALUES: tuple[str, ...] = (
    "0",
    "-1",
    "1",
    "256",
    "65536",
    "4294967296",
    "18446744073709551616",
    "0xffffffffffffffff",
    "inf",
    "-inf",
    "nan",
    "1.5",
    "true",
    "false",
    '""',
    '"x"',
    '"2G"',
    '"1T"',
    '"infT"',
    '"nanM"',
    '"-4K"',
    '"1e30G"',
    '"0x"',
    '"EfiBootServicesData"',
    '"Boot Data"',
    '"99"',
    '"UC|WB|0x1ffffffffffffffff"',
    '"RUNTIME|RO|XP"',
    "[1]",
    "[]",
    "{}",
    "[[1]]",
    "{a = 1}",
    '"ddc0ee61-e7f0-4e7d-acc5-c070a398838e"',
    '"not-a-guid"',
    '"ESRT"',
    '"MEMATTR"',
    '"TPMEventLog"',
    '"SMBIOS 3.0"',
    '"ACPI 2.0"',
    '"ACPI"',
    '"SMBIOS"',
    '"RTPROP"',
    '"2.70"',
    '"9999999999999999999.1"',
    '"zz"',
    "1979-05-27T07:32:00Z",
    '"\\u0000"',
)


def mutate_toml(rng: random.Random, data: bytes, *, others: Sequence[bytes] = ()) -> bytes:
    """TOML-aware havoc: values swapped for hostile ones of every type, known keys inserted,
    array-of-tables made plain tables, deep nesting; then sometimes line-level havoc."""
    lines = data.decode("utf-8", "replace").split("\n")
    for _ in range(rng.choice((1, 1, 2, 3))):
        op = rng.randrange(8)
        i = rng.randrange(len(lines)) if lines else 0
        if op in (0, 1, 2) and lines and "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            lines[i] = f"{key}= {rng.choice(TOML_VALUES)}"
        elif op in (3, 4):
            key = rng.choice(SCENARIO_KEYS)
            heads = [j for j, s in enumerate(lines) if s.startswith("[")]
            at = rng.choice(heads) + 1 if heads and rng.random() < 0.7 else 0
            lines.insert(at, f"{key} = {rng.choice(TOML_VALUES)}")
        elif op == 5:
            heads = [j for j, s in enumerate(lines) if s.startswith("[[")]
            if heads:
                j = rng.choice(heads)
                lines[j] = lines[j].replace("[[", "[", 1).replace("]]", "]", 1)
        elif op == 6:
            depth = rng.choice((10, 100, 600, 1200, 5000))
            key = rng.choice(SCENARIO_KEYS)
            if rng.random() < 0.5:
                lines.insert(0, f"{key} = " + "[" * depth + "]" * depth)
            else:
                lines.insert(0, f"{key} = " + "{a = " * depth + "1" + "}" * depth)
        elif op == 7:
            heads = [j for j, s in enumerate(lines) if s.startswith("[[table")]
            if heads:
                j = rng.choice(heads)
                end = next(
                    (k for k in range(j + 1, len(lines)) if lines[k].startswith("[[")), len(lines)
                )
                block = lines[j:end]
                lines[end:end] = block * rng.choice((1, 5, 200))
    out = "\n".join(lines).encode("utf-8", "surrogatepass")
    if rng.random() < 0.25:
        out = mutate_text(rng, out, others=others, rounds=1)
    return out


Mutator = Callable[[random.Random, bytes], bytes]
