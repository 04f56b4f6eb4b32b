"""Verdict words (a contract of docs/design.md) and their precedence."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from efihandoff.uefi.guid import Guid


class Verdict(StrEnum):
    """What a table's consumer gets on a path."""

    INTACT = "intact"
    RELOCATED = "relocated"
    CORRUPT = "corrupt"
    REFUSED = "refused"
    CLOBBERED = "clobbered"
    ABSENT = "absent"
    UNKNOWN = "unknown"


# When several words fit, the first the consumer meets wins (docs/design.md "Verdicts").
PRECEDENCE = (
    Verdict.ABSENT,
    Verdict.REFUSED,
    Verdict.CORRUPT,
    Verdict.CLOBBERED,
    Verdict.RELOCATED,
    Verdict.INTACT,
)


@dataclass(frozen=True)
class TableVerdict:
    """One table on one path."""

    guid: Guid
    name: str
    verdict: Verdict
    reason: str
    address: int | None = None  # where firmware put it
    final_address: int | None = None  # what the consumer is pointed at
    # When the evidence leaves several placements open: (placement, verdict) for each.
    candidates: tuple[tuple[str, Verdict], ...] = ()

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "verdict": str(self.verdict),
            "reason": self.reason,
            "name": self.name,
            "address": self.address,
            "final_address": self.final_address,
        }
        if self.candidates:
            out["candidates"] = [
                {"placement": label, "verdict": str(v)} for label, v in self.candidates
            ]
        return out
