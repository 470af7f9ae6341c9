"""What a chronology shows: the kinds, the types of entry and the range of dates chosen
(issue 5 §5 "filterable"), read from what a person typed or ticked."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from esafety.errors import InvalidInput
from esafety.safeguarding.catalogue import kind as kind_info
from esafety.safeguarding.chronology_entries import ENTRY_TYPE_LABELS, Entry, EntryType
from esafety.safeguarding.kinds import IncidentKind

__all__ = ["ChronologyFilter", "parse_filter"]


@dataclass(frozen=True)
class ChronologyFilter:
    """What to show; an empty set means every kind (or type)."""

    kinds: frozenset[IncidentKind] = frozenset()
    types: frozenset[EntryType] = frozenset()
    #: Inclusive, in the school's own dates.
    date_from: date | None = None
    date_to: date | None = None

    @property
    def active(self) -> bool:
        return bool(self.kinds or self.types or self.date_from or self.date_to)

    def keeps_kind(self, kind: IncidentKind) -> bool:
        return not self.kinds or kind in self.kinds

    def keeps(self, entry: Entry, zone: ZoneInfo) -> bool:
        if not self.keeps_kind(entry.kind):
            return False
        if self.types and entry.type not in self.types:
            return False
        day = entry.at.astimezone(zone).date()
        if self.date_from is not None and day < self.date_from:
            return False
        return self.date_to is None or day <= self.date_to

    def describe(self) -> str:
        """The filter in words, for the page and the printed record ("" when none)."""
        parts = []
        if self.kinds:
            parts.append("kinds: " + ", ".join(sorted(kind_info(k).title for k in self.kinds)))
        if self.types:
            order = list(EntryType)
            chosen = sorted(self.types, key=order.index)
            parts.append("entries: " + ", ".join(ENTRY_TYPE_LABELS[t] for t in chosen))
        if self.date_from or self.date_to:
            start = self.date_from.strftime("%d %b %Y") if self.date_from else "the start"
            end = self.date_to.strftime("%d %b %Y") if self.date_to else "today"
            parts.append(f"dates: {start} to {end}")
        return "; ".join(parts)

    def as_json(self) -> dict[str, object]:
        return {
            "kinds": sorted(k.value for k in self.kinds),
            "types": sorted(t.value for t in self.types),
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
        }


def _day(value: str | None, what: str) -> date | None:
    if value is None or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"{what} {value!r}: give a date such as 2025-03-12") from None


def parse_filter(
    kinds: Iterable[str] = (),
    types: Iterable[str] = (),
    date_from: str | None = None,
    date_to: str | None = None,
) -> ChronologyFilter:
    """A filter from what a person typed or ticked; InvalidInput says what to fix."""
    chosen_kinds = frozenset(kind_info(k).id for k in kinds if k.strip())
    chosen_types = set()
    for value in types:
        if not value.strip():
            continue
        try:
            chosen_types.add(EntryType(value.strip()))
        except ValueError:
            allowed_types = ", ".join(t.value for t in EntryType)
            raise InvalidInput(
                f"type of entry {value!r}: expected one of {allowed_types}"
            ) from None
    start, end = _day(date_from, "from"), _day(date_to, "to")
    if start and end and end < start:
        raise InvalidInput(
            f"the dates run backwards ({start.isoformat()} to {end.isoformat()}): "
            "give the earlier date first"
        )
    return ChronologyFilter(chosen_kinds, frozenset(chosen_types), start, end)
