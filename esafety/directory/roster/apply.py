"""Writing a planned roster import in the caller's session (one transaction).

Rows are added in batches through the ORM, so the audit hook records each one (who, what,
which record) in the same transaction; nothing here commits. Ids of new classes and people
are known after their batch is flushed, and only then are roles, memberships and links
that refer to them written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import Any, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety.directory.events import PersonAdded, PersonLeft
from esafety.directory.model import (
    Group,
    GroupKind,
    GroupMembership,
    ParentLink,
    Person,
    PersonRole,
    Source,
)
from esafety.directory.roster.diff import NewGroup, Plan
from esafety.directory.roster.existing import Existing
from esafety.directory.years import key_stage_of
from esafety.events import publish_on_commit
from esafety.security.model import Account

__all__ = ["Progress", "write_plan"]

BATCH = 2000
T = TypeVar("T")


class Progress(Protocol):
    """Where an import reports how far it has got (the CLI draws a progress bar)."""

    def stage(self, description: str, total: int) -> None: ...

    def advance(self, amount: int = 1) -> None: ...


class _NoProgress:
    def stage(self, description: str, total: int) -> None:
        pass

    def advance(self, amount: int = 1) -> None:
        pass


def _batches(items: Sequence[T], size: int = BATCH) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Writer:
    def __init__(
        self,
        session: Session,
        plan: Plan,
        existing: Existing,
        today: date,
        progress: Progress,
    ) -> None:
        self.session, self.plan, self.existing = session, plan, existing
        self.today, self.progress = today, progress
        self.school_id = existing.school_id
        self.new_groups: dict[str, Group] = {}
        self.new_people: dict[str, Person] = {}

    def _add_all(self, rows: Iterable[Any]) -> None:
        for batch in _batches(list(rows)):
            self.session.add_all(batch)
            self.session.flush()
            self.progress.advance(len(batch))

    def _delete_all(self, rows: Sequence[Any]) -> None:
        for batch in _batches(rows):
            for row in batch:
                self.session.delete(row)
            self.session.flush()
            self.progress.advance(len(batch))

    def _change_all(self, changes: Sequence[tuple[Any, dict[str, Any]]]) -> None:
        for batch in _batches(changes):
            for row, values in batch:
                for key, value in values.items():
                    setattr(row, key, self._resolve(value))
            self.session.flush()
            self.progress.advance(len(batch))

    def _resolve(self, value: Any) -> Any:
        return self.new_groups[value.sourced_id].id if isinstance(value, NewGroup) else value

    def group_id(self, sourced_id: str) -> int:
        group = self.plan.groups.get(sourced_id) or self.existing.groups_by_sourced_id.get(
            sourced_id
        )
        return (group or self.new_groups[sourced_id]).id

    def person_id(self, sourced_id: str) -> int:
        person = self.plan.people.get(sourced_id) or self.existing.by_sourced_id.get(sourced_id)
        return (person or self.new_people[sourced_id]).id

    # -- in dependency order -----------------------------------------------------------

    def groups(self) -> None:
        for roster_group in self.plan.new_groups:
            self.new_groups[roster_group.sourced_id] = Group(
                school_id=self.school_id,
                kind=GroupKind(roster_group.kind.value),
                name=roster_group.name,
                sourced_id=roster_group.sourced_id,
                year_group=roster_group.year_group,
                key_stage=key_stage_of(roster_group.year_group)
                if roster_group.year_group
                else None,
                source=Source.ROSTER,
                archived_on=None,
            )
        self._add_all(self.new_groups.values())
        self._change_all(self.plan.group_changes)
        self._change_all([(g, {"archived_on": self.today}) for g in self.plan.archived_groups])

    def people(self) -> None:
        for roster_person, values in self.plan.new_people:
            fields = {k: self._resolve(v) for k, v in values.items()}
            self.new_people[roster_person.sourced_id] = Person(school_id=self.school_id, **fields)
        self._add_all(self.new_people.values())
        self._change_all(self.plan.person_changes)
        self._change_all([(p, {"left_on": self.today}) for p in self.plan.leavers])
        self._disable_accounts()
        for person in self.new_people.values():
            publish_on_commit(
                self.session, PersonAdded(self.school_id, person.id, person.kind.value)
            )
        for person in self.plan.leavers:
            publish_on_commit(self.session, PersonLeft(self.school_id, person.id, self.today))

    def _disable_accounts(self) -> None:
        """A leaver can no longer sign in (their account, if they have one, is disabled)."""
        ids = [p.id for p in self.plan.leavers]
        accounts: list[Account] = []
        for batch in _batches(ids, 500):
            accounts.extend(
                self.session.scalars(
                    select(Account).where(Account.person_id.in_(batch), Account.disabled.is_(False))
                )
            )
        self._change_all([(a, {"disabled": True}) for a in accounts])

    def roles(self) -> None:
        self._delete_all(self.plan.ended_roles)
        self._add_all(
            PersonRole(
                school_id=self.school_id,
                person_id=self.person_id(sid),
                role=role,
                source=Source.ROSTER,
            )
            for sid, role in self.plan.new_roles
        )

    def memberships(self) -> None:
        self._delete_all(self.plan.ended_memberships)
        self._change_all([(m, {"role": role}) for m, role in self.plan.membership_changes])
        self._add_all(
            GroupMembership(
                school_id=self.school_id,
                group_id=self.group_id(group_sid),
                person_id=self.person_id(person_sid),
                role=role,
                source=Source.ROSTER,
            )
            for group_sid, person_sid, role in self.plan.new_memberships
        )

    def links(self) -> None:
        self._delete_all(self.plan.ended_links)
        self._change_all(self.plan.link_changes)
        self._add_all(
            ParentLink(
                school_id=self.school_id,
                parent_id=self.person_id(link.parent_id),
                child_id=self.person_id(link.child_id),
                relationship_to_child=link.relationship,
                parental_responsibility=link.parental_responsibility,
                priority=link.priority,
                source=Source.ROSTER,
            )
            for link in self.plan.new_links
        )


def write_plan(
    session: Session,
    plan: Plan,
    existing: Existing,
    *,
    today: date,
    progress: Progress | None = None,
) -> None:
    """Write every change of ``plan``; the caller commits (or rolls back) the session."""
    progress = progress or _NoProgress()
    progress.stage("Writing", plan.writes)
    writer = _Writer(session, plan, existing, today, progress)
    writer.groups()
    writer.people()
    writer.roles()
    writer.memberships()
    writer.links()
