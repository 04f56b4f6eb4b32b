"""Entry points: a kernel log from bytes, text, a stream or a file (plain or gzip), through
the fast path or line by line; and the sniff that tells a kernel log from other files."""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from os import PathLike
from typing import IO

from efihandoff.errors import ParseError
from efihandoff.sources.kernellog.bulk import BulkReader
from efihandoff.sources.kernellog.fast import Fast
from efihandoff.sources.kernellog.model import MAX_LINE, KernelLog
from efihandoff.sources.kernellog.reader import Reader

BLOCK = 65536  # bytes read from the stream at once
FAST_BLOCK = 1 << 20  # bytes gathered before the fast path looks at the lines in them
_SNIFF_BYTES = 65536


#: What the reader takes: a binary file, or gzip's reader over one (typeshed types it apart).
ByteStream = IO[bytes] | gzip.GzipFile


def _iter_lines(stream: ByteStream) -> Iterator[bytes]:
    """The lines of a binary stream, read in fixed-size blocks; a line is yielded with at most
    2 x MAX_LINE bytes (the reader keeps MAX_LINE), so memory does not depend on line length."""
    carry = b""  # the start of a line that continues in the next block, at most MAX_LINE bytes
    read = getattr(stream, "read1", stream.read)  # read1: a truncated .gz yields what it has
    while True:
        block = read(BLOCK)
        if not block:
            break
        pieces = block.split(b"\n")
        for piece in pieces[:-1]:
            if carry:
                piece = carry + piece[:MAX_LINE]
                carry = b""
            yield piece
        tail = pieces[-1]
        if len(pieces) > 1:
            carry = tail[:MAX_LINE]
        elif len(carry) < MAX_LINE:
            carry = (carry + tail[:MAX_LINE])[:MAX_LINE]
    if carry:
        yield carry


def _lines_of(data: bytes) -> Iterator[bytes]:
    """The lines of ``data`` found one at a time (a sniff stops at the first kernel line):
    their first MAX_LINE bytes, all the reader keeps, are what :func:`_iter_lines` yields
    from a stream holding ``data``."""
    pos, end = 0, len(data)
    while pos < end:
        nl = data.find(b"\n", pos)
        if nl < 0:
            yield data[pos:]
            return
        yield data[pos:nl]
        pos = nl + 1


def _run(reader: Reader, stream: ByteStream, name: str) -> None:
    ln = 0
    try:
        for raw in _iter_lines(stream):
            ln += 1
            reader.feed(ln, raw[:MAX_LINE].decode("utf-8", "replace").rstrip("\r"))
    except EOFError:
        return  # a truncated .gz: keep what was read
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise ParseError(
            f"{name}: corrupt gzip data: {exc}", line=ln + 1, what="kernel log"
        ) from None


def _run_fast(reader: BulkReader, stream: ByteStream, name: str) -> None:
    """:func:`_run` with the fast path: the same reads, the same lines."""
    fast = Fast(reader)
    read = getattr(stream, "read1", stream.read)
    pending: list[bytes] = [b"\n"]
    size = 0
    carry = b""  # the start of an unfinished line, at most MAX_LINE bytes kept
    try:
        while True:
            chunk = read(BLOCK)
            if not chunk:
                break
            cut = chunk.rfind(b"\n")
            if cut < 0:
                if len(carry) < MAX_LINE:
                    carry = (carry + chunk[:MAX_LINE])[:MAX_LINE]
                continue
            pending.append(carry + chunk[: cut + 1])
            size += cut + 1
            carry = chunk[cut + 1 : cut + 1 + MAX_LINE]
            if size >= FAST_BLOCK:
                fast.block(b"".join(pending))
                pending, size = [b"\n"], 0
    except EOFError:
        if size:
            fast.block(b"".join(pending))
        return  # a truncated .gz: keep what was read
    except (gzip.BadGzipFile, zlib.error) as exc:
        if size:
            fast.block(b"".join(pending))
        raise ParseError(
            f"{name}: corrupt gzip data: {exc}", line=fast.ln + 1, what="kernel log"
        ) from None
    if size:
        fast.block(b"".join(pending))
    if carry:
        fast.ln += 1
        reader.feed(fast.ln, carry.decode("utf-8", "replace").rstrip("\r"))


def _read(stream: ByteStream, name: str, fast: bool) -> Reader:
    """The stream read through the fast path (a :class:`BulkReader` behind it) or line by line
    (a plain :class:`Reader`)."""
    if fast:
        bulk = BulkReader()
        _run_fast(bulk, stream, name)
        return bulk
    reader = Reader()
    _run(reader, stream, name)
    return reader


def _result(reader: Reader, name: str, strict: bool) -> KernelLog:
    boots = reader.finish()
    if strict and not boots:
        raise ParseError(f"{name}: no kernel log line found", line=1, what="kernel log")
    return KernelLog(boots, reader.lines_read, reader.lines_used, name)


def _open_bytes(data: bytes | bytearray | memoryview) -> ByteStream:
    raw = io.BytesIO(bytes(data))
    if bytes(data[:2]) == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    return raw


def read_kernel_log(
    data: bytes | bytearray | memoryview | str,
    *,
    name: str = "<log>",
    strict: bool = False,
    fast: bool = True,
) -> KernelLog:
    """Read a kernel log from bytes (plain or gzip) or text.

    Never raises on content; with ``strict=True`` a log without a single kernel line is a
    :class:`ParseError` (without it, it reads as ``KernelLog(boots=())``). ``fast=False``
    reads bytes line by line (same result, slower).
    """
    if isinstance(data, str):
        reader = Reader()
        for ln, raw in enumerate(io.StringIO(data), 1):
            reader.feed(ln, raw[:MAX_LINE].rstrip("\r\n"))
    else:
        reader = _read(_open_bytes(data), name, fast)
    return _result(reader, name, strict)


def read_kernel_log_stream(
    stream: ByteStream, *, name: str = "<log>", strict: bool = False,
    fast: bool = True,
) -> KernelLog:
    """Read a kernel log from a binary file object (``fast=False``: line by line)."""
    return _result(_read(stream, name, fast), name, strict)


def read_kernel_log_file(
    path: str | PathLike[str], *, strict: bool = False, fast: bool = True
) -> KernelLog:
    """Read a kernel log file (``.gz`` recognised by its magic), streaming: memory does not grow
    with the file. An unreadable file raises ``OSError``; corrupt gzip data ``ParseError``."""
    name = str(path)
    with open(path, "rb") as f:
        magic = f.read(2)
        f.seek(0)
        if magic == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=f, mode="rb") as gz:
                return read_kernel_log_stream(gz, name=name, strict=strict, fast=fast)
        return read_kernel_log_stream(f, name=name, strict=strict, fast=fast)


def looks_like_kernel_log(head: bytes) -> bool:
    """Whether the first bytes of a file read as a kernel log (for source sniffing)."""
    if head[:2] == b"\x1f\x8b":
        # the head of a .gz is a truncated stream: keep what decompresses
        gz = gzip.GzipFile(fileobj=io.BytesIO(bytes(head)))
        out = bytearray()
        try:
            while len(out) < _SNIFF_BYTES:
                chunk = gz.read1(4096)
                if not chunk:
                    break
                out += chunk
        except (OSError, EOFError, zlib.error):
            pass
        head = bytes(out)
    reader = Reader()
    for ln, raw in enumerate(_lines_of(bytes(head[:_SNIFF_BYTES])), 1):
        reader.feed(ln, raw[:MAX_LINE].decode("utf-8", "replace").rstrip("\r"))
        if reader.kernel_lines or reader.lines_used:
            return True  # both only grow: the answer for the whole head
    return False
