"""Incident procedures as state machines: which steps are open, blocked, done; can it close.

Pure: the caller passes the kind and the step records already stored (in the order they
were recorded); nothing here reads a database or a clock.

- :func:`validate` checks one new record against the kind and the records before it and
  returns it cleaned (text stripped, blanks as None), or raises InvalidInput saying what to
  fix: unknown step, a decision without a choice or without a required reason, "does not
  apply" without a reason, a step whose earlier steps are not settled, a step recorded twice.
- :func:`state` tells, for each step, whether it is done, not applicable, not needed (a
  decision went the other way), open, or blocked (and by what); which required steps remain;
  whether the concern can close and, if not, why; which steps are overdue.

Records are never edited (STANDARDS R2). A correction is a new record for the same step
with ``corrects=True`` and a ``correction_reason``; the newest record of a step is the one
that counts, and the earlier ones stay in its ``history``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum

from esafety.errors import InvalidInput
from esafety.safeguarding.catalogue import kind, kinds
from esafety.safeguarding.deadlines import due_at
from esafety.safeguarding.kinds import IncidentKind, KindInfo, Step

__all__ = [
    "ProcedureState",
    "StepOutcome",
    "StepRecord",
    "StepState",
    "StepStatus",
    "ensure_closable",
    "kind",
    "kinds",
    "state",
    "validate",
]


class StepOutcome(StrEnum):
    DONE = "done"
    #: The step does not apply to this concern; the record says why.
    NOT_APPLICABLE = "not_applicable"


class StepStatus(StrEnum):
    DONE = "done"
    NOT_APPLICABLE = "not_applicable"
    #: A decision it depends on went the other way (e.g. no LADO referral: harm test not met).
    NOT_NEEDED = "not_needed"
    #: Can be recorded now.
    OPEN = "open"
    #: Waits for earlier steps (``StepState.waiting_for``).
    BLOCKED = "blocked"


#: Statuses that let later steps go ahead and the concern close.
SETTLED = frozenset({StepStatus.DONE, StepStatus.NOT_APPLICABLE, StepStatus.NOT_NEEDED})


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One person's record of one step of one concern's procedure."""

    step_id: str
    #: Who did it (a username, or a system actor's name).
    done_by: str
    #: When it was done (aware; may be earlier than when it was recorded).
    done_at: datetime
    outcome: StepOutcome = StepOutcome.DONE
    #: The decision's choice id, for decision steps.
    choice: str | None = None
    #: Why: the reason for a choice, or why the step does not apply.
    rationale: str | None = None
    #: What was done, in a sentence (kept in the chronology).
    note: str | None = None
    #: The outside agency's reference number, for referral steps.
    reference: str | None = None
    #: This record replaces the step's earlier record (which stays in the history).
    corrects: bool = False
    correction_reason: str | None = None


@dataclass(frozen=True, slots=True)
class StepState:
    step: Step
    status: StepStatus
    #: The record that counts (the newest), or None.
    record: StepRecord | None
    #: Every record of this step, oldest first (corrections after what they correct).
    history: tuple[StepRecord, ...]
    #: Earlier steps it waits for (ids), when blocked.
    waiting_for: tuple[str, ...]
    due_at: datetime | None
    overdue: bool
    #: Set when a correction of an earlier step has since put this step's record in doubt.
    conflict: str | None

    @property
    def settled(self) -> bool:
        return self.status in SETTLED


@dataclass(frozen=True, slots=True)
class ProcedureState:
    kind: KindInfo
    steps: tuple[StepState, ...]
    #: Records naming steps this kind does not have (e.g. kept from before a change of kind).
    unknown: tuple[StepRecord, ...]

    def step(self, step_id: str) -> StepState:
        self.kind.step(step_id)  # InvalidInput naming the kind's steps
        return next(s for s in self.steps if s.step.id == step_id)

    def _ids(self, status: StepStatus) -> tuple[str, ...]:
        return tuple(s.step.id for s in self.steps if s.status is status)

    @property
    def open(self) -> tuple[str, ...]:
        return self._ids(StepStatus.OPEN)

    @property
    def blocked(self) -> tuple[str, ...]:
        return self._ids(StepStatus.BLOCKED)

    @property
    def remaining_required(self) -> tuple[str, ...]:
        return tuple(s.step.id for s in self.steps if s.step.required and not s.settled)

    @property
    def overdue(self) -> tuple[str, ...]:
        return tuple(s.step.id for s in self.steps if s.overdue)

    @property
    def can_close(self) -> bool:
        return not self.remaining_required

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why the concern cannot close yet, one line per required step still open."""
        lines = []
        for s in self.steps:
            if not s.step.required or s.settled:
                continue
            if s.status is StepStatus.BLOCKED:
                lines.append(f"'{s.step.title}' ({s.step.id}) waits for {', '.join(s.waiting_for)}")
            else:
                lines.append(f"'{s.step.title}' ({s.step.id}) is still to do")
        return tuple(lines)


def _resolve(which: KindInfo | IncidentKind | str) -> KindInfo:
    return which if isinstance(which, KindInfo) else kind(which)


def _condition(step: Step, done: dict[str, StepState]) -> bool | None:
    """Whether the step's ``when`` holds: True, False, or None while the decision is open."""
    if step.when is None:
        return True
    gate = done[step.when.step]
    if gate.status is StepStatus.DONE and gate.record is not None:
        return gate.record.choice in step.when.choices
    return False if gate.settled else None


def _one_step(
    step: Step,
    history: tuple[StepRecord, ...],
    done: dict[str, StepState],
    deadline: datetime | None,
    now: datetime | None,
) -> StepState:
    record = history[-1] if history else None
    waiting = tuple(a for a in step.after if not done[a].settled)
    holds = _condition(step, done)
    conflict = None
    if record is not None:
        status = StepStatus(record.outcome.value)
        if holds is False and step.when is not None:
            gate = done[step.when.step].record
            answer = gate.choice if gate is not None else "not answered"
            conflict = f"recorded, but '{step.when.step}' is now '{answer}'"
        elif waiting:
            conflict = f"recorded, but {', '.join(waiting)} no longer settled"
    elif holds is False:
        status = StepStatus.NOT_NEEDED
    elif waiting:
        status = StepStatus.BLOCKED
    else:
        status = StepStatus.OPEN
    if status is StepStatus.NOT_NEEDED:
        deadline = None
    overdue = deadline is not None and now is not None and status not in SETTLED and now >= deadline
    return StepState(step, status, record, history, waiting, deadline, overdue, conflict)


def state(
    which: KindInfo | IncidentKind | str,
    records: Iterable[StepRecord],
    *,
    aware_at: datetime | None = None,
    now: datetime | None = None,
    holidays: Collection[date] = (),
) -> ProcedureState:
    """Where a concern's procedure stands, given its records in the order they were made.

    ``aware_at`` (when the school learned of the incident) gives steps their due times;
    with ``now`` too, unsettled steps past their due time are ``overdue``.
    """
    info = _resolve(which)
    ids = set(info.step_ids)
    by_step: dict[str, list[StepRecord]] = {}
    unknown = []
    for record in records:
        if record.step_id in ids:
            by_step.setdefault(record.step_id, []).append(record)
        else:
            unknown.append(record)
    done: dict[str, StepState] = {}
    for step in info.steps:  # a step's prerequisites come before it (checked at load)
        deadline = None
        if step.due is not None and aware_at is not None:
            deadline = due_at(step.due, aware_at, holidays)
        history = tuple(by_step.get(step.id, ()))
        done[step.id] = _one_step(step, history, done, deadline, now)
    return ProcedureState(info, tuple(done.values()), tuple(unknown))


def ensure_closable(current: ProcedureState) -> None:
    """Raise InvalidInput listing the required steps still open, if any."""
    if not current.can_close:
        raise InvalidInput(
            f"this {current.kind.title.lower()} concern cannot be closed yet: "
            + "; ".join(current.reasons)
            + ". Record each step, or record why it does not apply."
        )


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _clean(record: StepRecord) -> StepRecord:
    return replace(
        record,
        step_id=record.step_id.strip(),
        done_by=record.done_by.strip(),
        choice=_text(record.choice),
        rationale=_text(record.rationale),
        note=_text(record.note),
        reference=_text(record.reference),
        correction_reason=_text(record.correction_reason),
    )


def _check_content(step: Step, record: StepRecord) -> None:
    """The record's own fields, against its step."""
    name = f"step '{step.id}' ({step.title})"
    if not record.done_by:
        raise InvalidInput(f"{name}: say who did it")
    if record.done_at.tzinfo is None:
        raise InvalidInput(
            f"{name}: the time it was done ({record.done_at.isoformat()}) has no zone: "
            "give it in the school's zone"
        )
    if record.reference is not None and step.referral is None:
        raise InvalidInput(f"{name} is not a referral: a reference number belongs to one")
    if record.outcome is StepOutcome.NOT_APPLICABLE:
        if not step.skippable:
            what = "answer the decision" if step.decision else "record it as done"
            raise InvalidInput(f"{name} always applies: {what}")
        if record.rationale is None:
            raise InvalidInput(f"{name}: say why it does not apply")
        if record.choice is not None:
            raise InvalidInput(f"{name}: a step that does not apply has no choice")
        return
    decision = step.decision
    if decision is None:
        if record.choice is not None:
            raise InvalidInput(f"{name} is not a decision: it takes no choice")
        return
    allowed = ", ".join(decision.choice_ids)
    if record.choice is None:
        raise InvalidInput(f"{name}: choose an answer to '{decision.question}' ({allowed})")
    choice = decision.choice(record.choice)
    if choice is None:
        raise InvalidInput(f"{name}: unknown choice '{record.choice}': expected one of: {allowed}")
    if choice.rationale_required and record.rationale is None:
        raise InvalidInput(f"{name}: '{choice.label}' needs the reason (\"… because …\")")


def _check_order(step: Step, record: StepRecord, current: ProcedureState) -> None:
    """A new (not correcting) record: not twice, not out of turn, not before its prerequisites."""
    name = f"step '{step.id}' ({step.title})"
    now = current.step(step.id)
    if now.record is not None:
        raise InvalidInput(
            f"{name} was already recorded by {now.record.done_by} at "
            f"{now.record.done_at.isoformat(timespec='minutes')}: to change it, record a "
            "correction with the reason"
        )
    if now.status is StepStatus.NOT_NEEDED and step.when is not None:
        gate = current.step(step.when.step)
        answer = gate.record.choice if gate.record is not None else gate.status.value
        raise InvalidInput(f"{name} is not needed: '{step.when.step}' was answered '{answer}'")
    if now.status is StepStatus.BLOCKED:
        titles = [f"'{current.step(w).step.title}' ({w})" for w in now.waiting_for]
        raise InvalidInput(f"{name} cannot be recorded yet: first record {', '.join(titles)}")
    for earlier in step.after:
        before = current.step(earlier).record
        if before is not None and record.done_at < before.done_at:
            raise InvalidInput(
                f"{name} cannot have been done at {record.done_at.isoformat(timespec='minutes')}"
                f", before '{earlier}' ({before.done_at.isoformat(timespec='minutes')})"
            )


def validate(
    which: KindInfo | IncidentKind | str,
    record: StepRecord,
    previous: Sequence[StepRecord],
    *,
    now: datetime | None = None,
) -> StepRecord:
    """Check a new record against the kind's procedure and the records before it.

    Returns the record cleaned (text stripped, blank text as None); raises InvalidInput
    saying what to fix. With ``now``, a step done in the future is refused. A correction (``corrects=True``) needs an earlier record of the
    same step and a ``correction_reason``; it is not held to the order of steps, so that a
    mistake can always be put right.
    """
    info = _resolve(which)
    record = _clean(record)
    step = info.step(record.step_id)
    _check_content(step, record)
    if now is not None and record.done_at > now:
        raise InvalidInput(
            f"step '{step.id}' ({step.title}): the time it was done "
            f"({record.done_at.isoformat(timespec='minutes')}) is in the future"
        )
    current = state(info, previous)
    if record.corrects:
        if current.step(step.id).record is None:
            raise InvalidInput(
                f"step '{step.id}' ({step.title}) has no record to correct: record it instead"
            )
        if record.correction_reason is None:
            raise InvalidInput(f"step '{step.id}' ({step.title}): say why it is being corrected")
    else:
        if record.correction_reason is not None:
            raise InvalidInput(
                f"step '{step.id}' ({step.title}): a correction reason belongs to a correction"
            )
        _check_order(step, record, current)
    return record
