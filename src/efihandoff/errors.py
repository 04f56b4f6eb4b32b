"""The project's one exception hierarchy."""

from __future__ import annotations


class EfiHandoffError(Exception):
    """Root of every error efihandoff raises on purpose."""


class ParseError(EfiHandoffError):
    """Bytes or text that are not what they claim to be.

    ``offset`` is the byte offset (binary input) and ``line`` the 1-based line number (text
    input) at fault, when known; ``what`` names the structure being parsed.
    """

    def __init__(
        self,
        message: str,
        *,
        offset: int | None = None,
        line: int | None = None,
        what: str | None = None,
    ) -> None:
        self.message = message
        self.offset = offset
        self.line = line
        self.what = what
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.what:
            where.append(self.what)
        if self.offset is not None:
            where.append(f"offset {self.offset:#x}")
        if self.line is not None:
            where.append(f"line {self.line}")
        return f"{self.message} ({', '.join(where)})" if where else self.message


class SourceError(EfiHandoffError):
    """A source could not be read, or is not what it claims to be (CLI exit 3)."""


class UsageError(EfiHandoffError):
    """The caller asked for something that makes no sense (CLI exit 2)."""


class OutputError(EfiHandoffError):
    """An output could not be written, or writing it was refused (e.g. under /sys)."""
