"""Firmware and configuration findings: stable code, severity, message; returned, never printed."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    """How bad a finding is."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem worth reporting. ``code`` is stable (e.g. ``esrt.count-zero``)."""

    code: str
    severity: Severity
    message: str

    def to_json(self) -> dict[str, str]:
        """The docs/design.md JSON form."""
        return {"code": self.code, "severity": str(self.severity), "message": self.message}


def error(code: str, message: str) -> Finding:
    """An error-level finding."""
    return Finding(code, Severity.ERROR, message)


def warning(code: str, message: str) -> Finding:
    """A warning-level finding."""
    return Finding(code, Severity.WARNING, message)


def info(code: str, message: str) -> Finding:
    """An info-level finding."""
    return Finding(code, Severity.INFO, message)
