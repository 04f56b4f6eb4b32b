"""One declaration per structure: a frozen dataclass whose fields carry their C types.

The ``struct`` format, the field names and offsets, the size, unpacking (to the dataclass) and
packing all come from that one declaration, as dissect.cstruct derives everything from a C
declaration (without the dependency)::

    @dataclass(frozen=True, slots=True)
    class EsrtHeader:
        fw_resource_count: Annotated[int, U32]
        fw_resource_count_max: Annotated[int, U32]
        fw_resource_version: Annotated[int, U64]

    HEADER = Layout(EsrtHeader)        # "<IIQ", 16 bytes
    HEADER.unpack_from(data, offset)   # -> EsrtHeader
    HEADER.pack(header)                # -> bytes

Fields are laid out in declaration order with C's natural alignment (each field at a multiple
of its own alignment, the size rounded up to the largest), unless ``packed``. ``UINTN`` fields
(pointers, UINTN) are 8 or 4 bytes by the layout's ``width``, so one declaration serves the 64-
and the 32-bit layout. A field whose annotation carries no C type (e.g. ``bits`` of a system
table) is not part of the layout and must have a default. A struct whose C order differs from
its constructor's gives ``order``. Errors: ``unpack_from`` raises ``struct.error`` when the
bytes are short (callers check sizes first and raise ParseError with their offset); ``pack``
raises ``struct.error`` when a value does not fit.
"""

from __future__ import annotations

import itertools
import operator
import struct
import typing
from collections.abc import Callable, Sequence
from dataclasses import MISSING, Field, fields, is_dataclass
from typing import Any, Generic, TypeVar

from efihandoff.uefi.guid import Guid

T = TypeVar("T")


class CType:
    """A field's C type: its ``struct`` code, size and alignment, and the conversions between
    the raw ``struct`` value and the field's Python value (identity for integers)."""

    __slots__ = ("align", "code", "decode", "encode", "name", "size")

    def __init__(
        self,
        name: str,
        code: str,
        *,
        align: int | None = None,
        decode: Callable[[Any], Any] | None = None,
        encode: Callable[[Any], Any] | None = None,
    ) -> None:
        self.name = name
        self.code = code
        self.size = struct.calcsize("<" + code)
        self.align = self.size if align is None else align
        self.decode = decode
        self.encode = encode

    def __repr__(self) -> str:
        return self.name


U8 = CType("UINT8", "B")
U16 = CType("UINT16", "H")
U32 = CType("UINT32", "I")
U64 = CType("UINT64", "Q")
S32 = CType("INT32", "i")
BE32 = CType("UINT32 (big-endian)", "I")  # only in a layout with endian=">"
# EFI_GUID: {UINT32, UINT16, UINT16, UINT8[8]}, 4-byte aligned; the value is a Guid.
GUID = CType("EFI_GUID", "16s", align=4, decode=Guid.from_bytes, encode=Guid.to_bytes)
# UINTN and pointers: 8 or 4 bytes by the layout's width.
UINTN = CType("UINTN", "Q")
_UINTN32 = CType("UINTN", "I")


def chars(n: int) -> CType:
    """``CHAR8[n]`` (a signature or anchor): the raw bytes."""
    return CType(f"CHAR8[{n}]", f"{n}s", align=1)


class Embed:
    """Annotation marker for a field that is itself a declared structure (laid out inline)."""

    __slots__ = ("layout",)

    def __init__(self, layout: Layout[Any]) -> None:
        self.layout = layout


class Layout(Generic[T]):
    """The C layout of dataclass ``cls``, from its annotations."""

    __slots__ = (
        "_conv",
        "_encoders",
        "_fields",
        "_get",
        "_make",
        "_single",
        "align",
        "cls",
        "names",
        "nvalues",
        "offsets",
        "size",
        "struct",
        "width",
    )
    cls: type[T]
    width: int
    names: tuple[str, ...]
    offsets: dict[str, int]
    struct: struct.Struct
    nvalues: int
    align: int
    size: int

    def __init__(
        self,
        cls: type[T],
        *,
        width: int = 64,
        packed: bool = False,
        order: Sequence[str] | None = None,
        endian: str = "<",
    ) -> None:
        if width not in (32, 64):
            raise ValueError(f"width must be 32 or 64, not {width!r}")
        self.cls = cls
        self.width = width
        hints = typing.get_type_hints(cls, include_extras=True)
        declared: list[tuple[str, CType | Embed]] = []
        dc_fields = _dataclass_fields(cls)
        for f in dc_fields:
            ctype = _ctype_of(hints[f.name])
            if ctype is None:
                if f.default is MISSING and f.default_factory is MISSING:
                    raise TypeError(f"{cls.__name__}.{f.name} has no C type and no default")
                continue
            declared.append((f.name, ctype))
        by_name = dict(declared)
        if order is not None:
            if sorted(order) != sorted(by_name):
                raise TypeError(f"order {order} does not name {cls.__name__}'s C fields")
            declared = [(n, by_name[n]) for n in order]
        self.names = tuple(n for n, _ in declared)
        codes: list[str] = []
        offsets: dict[str, int] = {}
        single: dict[str, tuple[struct.Struct, int, Callable[[Any], Any] | None]] = {}
        conv: list[tuple[int, int, Callable[[Any], Any] | Layout[Any] | None]] = []
        pos = 0
        index = 0  # position in the unpacked tuple
        biggest = 1
        for name, ctype in declared:
            if isinstance(ctype, Embed):
                inner = ctype.layout
                size, align, count = inner.size, inner.align, inner.nvalues
                code = inner.struct.format.lstrip("<>=!@")
                if inner.size > inner.struct.size:  # the inner struct's tail padding
                    code += f"{inner.size - inner.struct.size}x"
                decoder: Callable[[Any], Any] | Layout[Any] | None = inner
            else:
                if ctype is UINTN and width == 32:
                    ctype = _UINTN32
                size, align, code, count = ctype.size, ctype.align, ctype.code, 1
                decoder = ctype.decode
            if not packed:
                pad = -pos % align
                if pad:
                    codes.append(f"{pad}x")
                    pos += pad
                biggest = max(biggest, align)
            offsets[name] = pos
            if not isinstance(decoder, Layout):  # one struct per scalar field, for values()
                single[name] = (struct.Struct(endian + code), pos, decoder)
            codes.append(code)
            conv.append((index, count, decoder))
            pos += size
            index += count
        self.struct = struct.Struct(endian + "".join(codes))
        self.offsets = offsets
        self.nvalues = index
        self.align = 1 if packed else biggest
        self.size = pos + (-pos % self.align)
        self._conv = conv
        self._fields = [(n, by_name[n]) for n in self.names]
        self._single = single
        # The constructor takes the fields in dataclass order: positional when C's is the same.
        ctor = [f.name for f in dc_fields if f.name in by_name]
        flat = all(count == 1 for _, count, _ in conv)  # no embedded struct
        decoders = [
            (ctor.index(n), dec)
            for n, (_, _, dec) in zip(self.names, conv, strict=True)
            if dec is not None and not isinstance(dec, Layout)
        ]
        if not flat:
            self._make: Callable[[tuple[Any, ...]], T] = self._general
        elif list(self.names) == ctor and not decoders:
            self._make = lambda vals: cls(*vals)
        else:
            perm = [self.names.index(n) for n in ctor]
            self._make = lambda vals: cls(*_decoded([vals[i] for i in perm], decoders))
        # pack: the attributes in C order, encoded where the C type says so.
        self._encoders = [
            (i, ctype.encode)
            for i, (_, ctype) in enumerate(self._fields)
            if isinstance(ctype, CType) and ctype.encode is not None
        ]
        self._get = operator.attrgetter(*self.names) if flat and len(self.names) > 1 else None

    @property
    def format(self) -> str:
        """The ``struct`` format string."""
        return self.struct.format

    def _values(self, vals: tuple[Any, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, (i, count, dec) in zip(self.names, self._conv, strict=True):
            if isinstance(dec, Layout):
                out[name] = dec._make(vals[i : i + count])
            elif dec is not None:
                out[name] = dec(vals[i])
            else:
                out[name] = vals[i]
        return out

    def _general(self, vals: tuple[Any, ...]) -> T:
        return self.cls(**self._values(vals))

    def unpack_from(self, data: Any, offset: int = 0, **extra: Any) -> T:
        """The structure at ``offset`` (``extra``: fields outside the layout, e.g. ``bits``)."""
        vals = self.struct.unpack_from(data, offset)
        if extra:
            return self.cls(**self._values(vals), **extra)
        return self._make(vals)

    def iter_unpack(self, data: Any, offset: int, count: int, stride: int | None = None) -> list[T]:
        """``count`` structures from ``offset``, ``stride`` bytes apart (default: the size)."""
        step = self.size if stride is None else stride
        unpack, make = self.struct.unpack_from, self._make
        return [make(unpack(data, offset + i * step)) for i in range(count)]

    def end_of(self, name: str) -> int:
        """Offset just past field ``name``: the bytes to read to reach it."""
        st, off, _ = self._single[name]
        return off + st.size

    def values(self, data: Any, *names: str, offset: int = 0) -> tuple[Any, ...]:
        """The named fields of the structure at ``offset``, each read at its own offset, so
        ``data`` need only reach the last of them (``end_of``)."""
        out = []
        for name in names:
            st, off, dec = self._single[name]
            (value,) = st.unpack_from(data, offset + off)
            out.append(value if dec is None else dec(value))
        return tuple(out)

    def raw(self, obj: T) -> tuple[Any, ...]:
        """The ``struct`` values of ``obj``, in C order."""
        if self._get is not None:
            values = self._get(obj)
            if not self._encoders:
                return values
            return tuple(_decoded(list(values), self._encoders))
        out: list[Any] = []
        for name, ctype in self._fields:
            value = getattr(obj, name)
            if isinstance(ctype, Embed):
                out.extend(ctype.layout.raw(value))
            elif ctype.encode is not None:
                out.append(ctype.encode(value))
            else:
                out.append(value)
        return tuple(out)

    def pack_many(self, objs: Sequence[T], stride: int | None = None) -> bytes:
        """The structures one after another, ``stride`` bytes apart (default: the size; the
        bytes between are zero)."""
        step = self.size if stride is None else stride
        pad = bytes(step - self.struct.size)
        pack = self.struct.pack
        if self._get is not None and not self._encoders:
            get = self._get
            return b"".join([pack(*get(o)) + pad for o in objs])
        return b"".join([pack(*self.raw(o)) + pad for o in objs])

    def pack(self, obj: T) -> bytes:
        """The structure's bytes (``size`` of them: tail padding is zero)."""
        raw = self.struct.pack(*self.raw(obj))
        return raw + bytes(self.size - len(raw))


def _ctype_of(hint: Any) -> CType | Embed | None:
    for meta in getattr(hint, "__metadata__", ()):
        if isinstance(meta, CType | Embed):
            return meta
    return None


def _dataclass_fields(cls: type) -> tuple[Field[Any], ...]:
    if is_dataclass(cls):
        return fields(cls)
    raise TypeError(f"{cls.__name__} is not a dataclass")


def _decoded(values: list[Any], convert: list[tuple[int, Callable[[Any], Any]]]) -> list[Any]:
    for i, fn in convert:
        values[i] = fn(values[i])
    return values


_COLUMN_SETTERS: dict[type, tuple[tuple[Callable[[Any, Any], None], Any], ...]] = {}


def from_columns(cls: type[T], *columns: Sequence[Any]) -> list[T]:
    """``[cls(*row) for row in zip(*columns)]``, built a column at a time: each field's slot
    is set over every new instance at once, ``__init__`` is not called (about 2.5x faster for
    a frozen dataclass, whose ``__init__`` sets each field through ``object.__setattr__``).
    Fields past the columns take their defaults. For a ``slots=True`` dataclass whose
    ``__init__`` only stores its fields (no ``__post_init__``, every field positional, no
    default factory), else ``TypeError``; columns of unequal length: ``ValueError``."""
    setters = _COLUMN_SETTERS.get(cls)
    if setters is None:
        setters = _COLUMN_SETTERS[cls] = _setters(cls)
    if len(columns) > len(setters):
        raise TypeError(f"{cls.__name__} has {len(setters)} fields, not {len(columns)}")
    if any(default is MISSING for _, default in setters[len(columns) :]):
        raise TypeError(f"{cls.__name__}: a field without a default has no column")
    n = len(columns[0]) if columns else 0
    if any(len(c) != n for c in columns):
        raise ValueError("columns of unequal length")
    new = object.__new__
    objs: list[T] = list(map(new, itertools.repeat(cls, n)))
    for (setter, default), column in itertools.zip_longest(setters, columns):
        # every setter returns None: any() runs the map to its end in C
        any(map(setter, objs, itertools.repeat(default, n) if column is None else column))
    return objs


def _setters(cls: type) -> tuple[tuple[Callable[[Any, Any], None], Any], ...]:
    if "__slots__" not in vars(cls) or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} is not a slots dataclass without __post_init__")
    out = []
    for f in _dataclass_fields(cls):
        if not f.init or f.kw_only or f.default_factory is not MISSING:
            raise TypeError(f"{cls.__name__}.{f.name} is not a plain positional field")
        out.append((getattr(cls, f.name).__set__, f.default))
    return tuple(out)
