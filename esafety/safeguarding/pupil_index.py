"""Finding a pupil's chronology: the pupils linked to concerns the reader may read, and a
search by name, username or UPN (issue 5 §5).

The list comes from :func:`esafety.safeguarding.reading.list_concerns` (access-checked,
audited), so a member of staff finds only the pupils of the concerns they raised. Those
who act on concerns (the DSL and deputies) may also search every pupil of the school:
a pupil with no concern they can read shows with none, which is no more than the
directory tells them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety.directory.model import Person, PersonKind
from esafety.safeguarding.reading import current_actor, list_concerns
from esafety.security.roles import Permission, allowed

__all__ = ["PupilRow", "pupil_index"]

#: The most pupils a search shows (a search should narrow, not list the school).
SEARCH_LIMIT = 50


@dataclass(frozen=True)
class PupilRow:
    id: int
    name: str
    username: str
    year_group: str | None
    #: Concerns linking the pupil that the reader may read, and how many are open.
    concerns: int
    open: int
    #: When the newest of them happened.
    latest: datetime | None


def _matches(person: Person, words: list[str]) -> bool:
    haystack = " ".join(
        filter(
            None,
            [
                person.legal_first_name,
                person.legal_last_name,
                person.preferred_first_name,
                person.preferred_last_name,
                person.username,
                person.upn,
            ],
        )
    ).lower()
    return all(word in haystack for word in words)


def pupil_index(session: Session, search: str = "") -> list[PupilRow]:
    """Pupils with concerns the reader may read (newest first), or those matching
    ``search`` (by name; every pupil of the school for those who act on concerns)."""
    counts: dict[int, list[tuple[datetime, bool]]] = {}
    for opened in list_concerns(session):
        concern = opened.concern
        for link in concern.linked:
            if link.person_id is not None:
                counts.setdefault(link.person_id, []).append(
                    (concern.current_happened_at, concern.is_open)
                )
    words = search.lower().split()
    actor = current_actor(session)
    acts = (
        actor is None or actor.person_id is None or allowed(actor.roles, Permission.ACT_ON_CONCERNS)
    )
    query = select(Person).where(Person.kind == PersonKind.PUPIL)
    if not (words and acts):
        query = query.where(Person.id.in_(list(counts)))
    # Names are plain columns, but a search by part of any of them is simplest in Python
    # over one school's pupils (hundreds), and matches preferred names too.
    people = [p for p in session.scalars(query) if not words or _matches(p, words)]
    rows = []
    for person in people:
        seen = counts.get(person.id, [])
        rows.append(
            PupilRow(
                id=person.id,
                name=person.display_name,
                username=person.username,
                year_group=person.year_group.label if person.year_group else None,
                concerns=len(seen),
                open=sum(1 for _, is_open in seen if is_open),
                latest=max((when for when, _ in seen), default=None),
            )
        )
    if words:
        rows.sort(key=lambda r: (r.name.lower(), r.id))
        return rows[:SEARCH_LIMIT]
    rows.sort(key=lambda r: (r.latest is None, -(r.latest.timestamp() if r.latest else 0)))
    return rows
