"""Which policy a person gets: the one assigned to their most specific group (issue 4 §4).

Pure: no database. The order is the person themself, then their groups (registration class
first, then other classes and custom groups), year group, key stage, and role. So 003
§7.1 "Swiggle up to Year 4, safe search from Year 5" is two year-group assignments, and
one child's own assignment beats their class's. With no assignment at all, pupils get the
built-in policy of their key stage (``eyfs`` if their year is not known), staff ``staff`` and everyone else ``guests``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Assignment", "PersonGroups", "default_policy", "policy_for"]

_LEVELS = ("person", "group", "year", "key_stage", "role")
_PUPIL_KEY_STAGE_POLICY = {"eyfs": "eyfs", "ks1": "ks1", "ks2": "ks2"}


@dataclass(frozen=True, slots=True)
class Assignment:
    """``policy_id`` for the ``target`` of ``kind`` (``person``, ``group``, ``year``,
    ``key_stage`` or ``role``); ids are written as text."""

    kind: str
    target: str
    policy_id: str


@dataclass(frozen=True, slots=True)
class PersonGroups:
    """What a person belongs to, most specific first within each level."""

    person_id: int
    group_ids: tuple[int, ...] = ()
    year: str | None = None
    key_stage: str | None = None
    roles: tuple[str, ...] = ()
    pupil: bool = False
    staff: bool = False

    def targets(self) -> Iterable[tuple[str, str]]:
        yield "person", str(self.person_id)
        for group_id in self.group_ids:
            yield "group", str(group_id)
        if self.year is not None:
            yield "year", self.year
        if self.key_stage is not None:
            yield "key_stage", self.key_stage
        for role in self.roles:
            yield "role", role


def policy_for(person: PersonGroups, assignments: Iterable[Assignment]) -> Assignment | None:
    """The assignment that gives ``person`` their policy, or None if none names them."""
    by_target = {(a.kind, a.target): a for a in assignments if a.kind in _LEVELS}
    for target in person.targets():
        found = by_target.get(target)
        if found is not None:
            return found
    return None


def default_policy(person: PersonGroups) -> str:
    """The built-in policy when nothing is assigned.

    Pupils past KS2 get ``ks2``, the least strict built-in pupil policy (the built-ins are
    written for primary schools; a secondary school assigns its own).
    """
    if person.pupil:
        if person.key_stage is None:  # year not known: the strictest built-in pupil policy
            return "eyfs"
        return _PUPIL_KEY_STAGE_POLICY.get(person.key_stage, "ks2")
    if person.staff:
        return "staff"
    return "guests"
