"""When a concern is due for deletion (issue 5 §8; STANDARDS R8). Pure: no database, no clock.

- A concern about pupils is kept until each pupil's date of birth plus the school's
  ``pupil_years`` (25 by default: IRMS toolkit); about several pupils, until the last of
  them is due.
- An allegation about a member of staff (``staff_allegation``) is kept until the later of
  the day its subject reaches ``retirement_age`` (67 by default: the UK state pension age
  from 2028) and ``allegation_years`` (10) after it was closed (KCSIE part 4 counts from
  the allegation; counting from the closing keeps it at least as long). A pupil linked to
  it keeps it until they are due too.
- Nothing is deleted on a guess: a concern still open, one whose people have no date of
  birth, one with no one the rules apply to, or one on legal hold is kept, and reported
  with the reason.

Every person ever linked counts, those unlinked since included: their details are still
in the concern's history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

__all__ = [
    "DEFAULT_ALLEGATION_YEARS",
    "DEFAULT_PUPIL_YEARS",
    "DEFAULT_RETIREMENT_AGE",
    "Decision",
    "LinkedPerson",
    "RetentionFacts",
    "RetentionRules",
    "Verdict",
    "add_years",
    "decide",
]

#: IRMS Information Management Toolkit for Schools: a child-protection file is kept until
#: the pupil's date of birth plus 25 years.
DEFAULT_PUPIL_YEARS = 25
#: KCSIE part 4 (and IRMS): an allegation about a member of staff is kept until their
#: normal retirement age or for 10 years, whichever is longer. 67 is the UK state pension
#: age from 2028 (Pensions Act 2014; 66 until then): the later of the two, so that no
#: record goes early. A school sets its own.
DEFAULT_RETIREMENT_AGE = 67
DEFAULT_ALLEGATION_YEARS = 10

_ALLEGATION = "staff_allegation"
#: The part that makes a linked adult the subject of an allegation (model.Part).
_SUBJECT_PART = "harmed_others"


@dataclass(frozen=True, slots=True)
class RetentionRules:
    pupil_years: int = DEFAULT_PUPIL_YEARS
    retirement_age: int = DEFAULT_RETIREMENT_AGE
    allegation_years: int = DEFAULT_ALLEGATION_YEARS

    def describe(self) -> str:
        return (
            f"pupils: date of birth + {self.pupil_years} years; allegations about staff: "
            f"the later of age {self.retirement_age} and {self.allegation_years} years "
            "after closing"
        )


@dataclass(frozen=True, slots=True)
class LinkedPerson:
    """A person linked to a concern: ``kind`` is the directory's (pupil, staff, parent...)
    or None for someone outside the school."""

    person_id: int | None
    kind: str | None
    part: str
    date_of_birth: date | None


@dataclass(frozen=True, slots=True)
class RetentionFacts:
    concern_id: int
    #: The kind it has now (after any change of kind).
    kind: str
    #: The school's date it was closed; None while open.
    closed_on: date | None
    linked: tuple[LinkedPerson, ...]
    #: Why it must not be deleted (an active legal hold), or None.
    hold: str | None = None


class Verdict(StrEnum):
    DUE = "due"
    #: Kept: it becomes due later (``due_on``).
    KEPT = "kept"
    OPEN = "open"
    ON_HOLD = "on_hold"
    CANNOT_COMPUTE = "cannot_compute"


@dataclass(frozen=True, slots=True)
class Decision:
    concern_id: int
    verdict: Verdict
    #: The day it is (or was) due; None when it cannot be known yet.
    due_on: date | None
    #: The rule that applies, in words without names (kept in the record of deletion).
    rule: str
    #: Why it is kept, for the report ("cannot compute: no date of birth").
    why: str = ""

    @property
    def is_due(self) -> bool:
        return self.verdict is Verdict.DUE


def add_years(day: date, years: int) -> date:
    """``day`` plus whole years; 29 February becomes 1 March in a common year (the later
    of the two days it could mean: a record is never deleted a day early)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)


class _CannotCompute(Exception):
    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def _pupil_dates(linked: Iterable[LinkedPerson], rules: RetentionRules) -> list[date]:
    dates = []
    for person in linked:
        if person.kind != "pupil":
            continue
        if person.date_of_birth is None:
            raise _CannotCompute("cannot compute: no date of birth for a pupil linked to it")
        dates.append(add_years(person.date_of_birth, rules.pupil_years))
    return dates


def _allegation_dates(facts: RetentionFacts, rules: RetentionRules, closed: date) -> list[date]:
    subjects = [p for p in facts.linked if p.part == _SUBJECT_PART and p.kind != "pupil"]
    if not subjects:
        raise _CannotCompute(
            "cannot compute: no member of staff is linked as the one the allegation is about"
        )
    dates = []
    for subject in subjects:
        if subject.person_id is None or subject.date_of_birth is None:
            raise _CannotCompute(
                "cannot compute: no date of birth for the member of staff the allegation "
                "is about (add it to their record in the directory)"
            )
        dates.append(
            max(
                add_years(subject.date_of_birth, rules.retirement_age),
                add_years(closed, rules.allegation_years),
            )
        )
    return dates


def _rule(facts: RetentionFacts, rules: RetentionRules) -> str:
    if facts.kind == _ALLEGATION:
        return (
            f"allegation about staff: the later of retirement age ({rules.retirement_age}) "
            f"and {rules.allegation_years} years after closing"
        )
    pupils = sum(1 for p in facts.linked if p.kind == "pupil")
    last = "; the last pupil to be due" if pupils > 1 else ""
    return f"pupil's date of birth + {rules.pupil_years} years{last}"


def decide(facts: RetentionFacts, rules: RetentionRules, at: date) -> Decision:
    """Whether the concern is due for deletion on ``at`` (the school's date), and why."""
    rule = _rule(facts, rules)

    def kept(verdict: Verdict, due_on: date | None, why: str) -> Decision:
        if facts.hold is not None:
            return Decision(facts.concern_id, Verdict.ON_HOLD, due_on, rule, facts.hold)
        return Decision(facts.concern_id, verdict, due_on, rule, why)

    if facts.closed_on is None:
        return kept(Verdict.OPEN, None, "open: kept while it is open")
    try:
        dates = _pupil_dates(facts.linked, rules)
        if facts.kind == _ALLEGATION:
            dates += _allegation_dates(facts, rules, facts.closed_on)
    except _CannotCompute as problem:
        return kept(Verdict.CANNOT_COMPUTE, None, problem.why)
    if not dates:
        return kept(
            Verdict.CANNOT_COMPUTE,
            None,
            "cannot compute: no pupil is linked to it, so no retention period applies; "
            "review it by hand",
        )
    due_on = max(dates)
    if due_on > at:
        return kept(Verdict.KEPT, due_on, f"kept until {due_on.isoformat()}")
    if facts.hold is not None:
        return Decision(facts.concern_id, Verdict.ON_HOLD, due_on, rule, facts.hold)
    return Decision(facts.concern_id, Verdict.DUE, due_on, rule)
