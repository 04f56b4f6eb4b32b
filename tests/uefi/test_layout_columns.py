"""uefi.layout.from_columns builds what the constructor builds, row by row."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from efihandoff.sources.kernellog.model import E820Entry, LoggedDescriptor
from efihandoff.uefi.layout import from_columns
from efihandoff.uefi.memmap import MemoryDescriptor

_u64 = st.integers(0, (1 << 64) - 1)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), _u64, _u64, _u64), max_size=20))
def test_memory_descriptors_equal_the_constructors(rows: list[tuple[int, int, int, int]]) -> None:
    cols = [list(c) for c in zip(*rows, strict=True)] or [[], [], [], []]
    built = from_columns(MemoryDescriptor, *cols)
    assert built == [MemoryDescriptor(*r) for r in rows]
    assert [repr(d) for d in built] == [repr(MemoryDescriptor(*r)) for r in rows]
    assert all(d.virt_addr == 0 for d in built)  # the default of the field past the columns


def test_other_records_and_frozen() -> None:
    assert from_columns(LoggedDescriptor, [7], [0x1000], [2], [None], [12]) == [
        LoggedDescriptor(7, 0x1000, 2, None, 12)
    ]
    (e,) = from_columns(E820Entry, [0], [0x9F000], ["usable"], [1], [3])
    assert e == E820Entry(0, 0x9F000, "usable", 1, 3)
    assert hash(e) == hash(E820Entry(0, 0x9F000, "usable", 1, 3))
    with pytest.raises(AttributeError):
        e.start = 5  # type: ignore[misc]  # frozen: assigning must fail


@dataclass(frozen=True)
class _NoSlots:
    a: int


@dataclass(frozen=True, slots=True)
class _Checked:
    a: int

    def __post_init__(self) -> None:
        if self.a < 0:
            raise ValueError("negative")


@dataclass(frozen=True, slots=True)
class _Factory:
    a: int
    b: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Two:
    a: int
    b: int


def test_refuses_what_it_cannot_build_as_init_would() -> None:
    for cls in (_NoSlots, _Checked, _Factory):
        with pytest.raises(TypeError):
            from_columns(cls, [1])
    with pytest.raises(TypeError):
        from_columns(_Two, [1])  # b has no default and no column
    with pytest.raises(TypeError):
        from_columns(_Two, [1], [2], [3])
    with pytest.raises(ValueError):
        from_columns(_Two, [1, 2], [3])
    assert from_columns(_Two, [1, 2], [3, 4]) == [_Two(1, 3), _Two(2, 4)]
    assert from_columns(_Two, [], []) == []
