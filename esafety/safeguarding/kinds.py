"""Kinds of incident and the shape of their procedures: plain values, no I/O.

The catalogue itself (every kind with its steps) is ``data/procedures.toml``, read and
validated by :mod:`esafety.safeguarding.catalogue`. A procedure is an ordered tuple of
:class:`Step`; a step may wait for earlier steps (``after``), apply only when an earlier
decision took a given choice (``when``), record a choice with its reason (``decision``),
be due within a time (``due``) and be a referral to an outside agency (``referral``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from esafety.errors import InvalidInput
from esafety.security.roles import Role

__all__ = [
    "Choice",
    "Condition",
    "Decision",
    "Due",
    "DueUnit",
    "IncidentKind",
    "KindInfo",
    "Step",
    "as_json",
    "reader_roles",
]


class IncidentKind(StrEnum):
    """Ids used in the CLI, the API and stored concerns (add, never rename)."""

    ILLEGAL_CONTENT = "illegal_content"
    INDECENT_IMAGES_OF_CHILDREN = "indecent_images_of_children"
    YOUTH_PRODUCED_SEXUAL_IMAGERY = "youth_produced_sexual_imagery"
    ONLINE_SEXUAL_ABUSE = "online_sexual_abuse"
    SEXUAL_VIOLENCE_HARASSMENT = "sexual_violence_harassment"
    RADICALISATION = "radicalisation"
    ONLINE_BULLYING = "online_bullying"
    ONLINE_HATE = "online_hate"
    FILTERING_BREACH = "filtering_breach"
    DATA_BREACH = "data_breach"
    STAFF_ALLEGATION = "staff_allegation"
    PARENT_CARER_CONCERN = "parent_carer_concern"
    TECHNOLOGY_MISUSE = "technology_misuse"
    PUPIL_WELFARE = "pupil_welfare"


class DueUnit(StrEnum):
    HOURS = "hours"
    #: Monday to Friday, less the holidays the caller names (KCSIE: LADO "within one working day").
    WORKING_DAYS = "working_days"


@dataclass(frozen=True, slots=True)
class Due:
    """How soon a step must be done, counted from when the school learned of the incident."""

    amount: int
    unit: DueUnit

    @property
    def text(self) -> str:
        noun = "hour" if self.unit is DueUnit.HOURS else "working day"
        return f"within {self.amount} {noun}{'' if self.amount == 1 else 's'}"


@dataclass(frozen=True, slots=True)
class Choice:
    id: str
    label: str
    #: Whether recording this choice needs a written reason ("decided not to refer because…").
    rationale_required: bool


@dataclass(frozen=True, slots=True)
class Decision:
    question: str
    choices: tuple[Choice, ...]

    @property
    def choice_ids(self) -> tuple[str, ...]:
        return tuple(choice.id for choice in self.choices)

    def choice(self, choice_id: str) -> Choice | None:
        return next((c for c in self.choices if c.id == choice_id), None)


@dataclass(frozen=True, slots=True)
class Condition:
    """The step applies only when decision ``step`` was answered with one of ``choices``."""

    step: str
    choices: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    title: str
    required: bool
    #: Plain English for the person doing it, citing the seed section it comes from.
    guidance: str
    #: The policy sections (seed files, KCSIE, UK GDPR) the step comes from.
    source: str
    #: Steps that must be done, not applicable or not needed before this one is recorded.
    after: tuple[str, ...] = ()
    when: Condition | None = None
    decision: Decision | None = None
    due: Due | None = None
    #: The outside agency this step refers to (a reference number may be recorded).
    referral: str | None = None
    #: Whether the DSL may record that the step does not apply (with the reason).
    skippable: bool = True
    #: One of the closing steps every procedure ends with (002 §8, 003 §10).
    closing: bool = False


@dataclass(frozen=True, slots=True)
class KindInfo:
    id: IncidentKind
    title: str
    description: str
    #: The DSL must see it at once: it shows on the DSL's desk without reloading and is e-mailed.
    grave: bool
    #: Roles that read concerns of this kind (before any school setting or break-glass).
    readers: tuple[Role, ...]
    #: Readers instead of ``readers`` when the concern is about the headteacher (KCSIE part 4).
    readers_when_about_headteacher: tuple[Role, ...]
    #: In the school's default set of online-safety kinds that the online safety lead reads.
    online_safety: bool
    #: Why image attachments are refused for this kind, or None when they are accepted.
    image_refusal: str | None
    source: str
    steps: tuple[Step, ...]

    @property
    def refuses_images(self) -> bool:
        return self.image_refusal is not None

    @property
    def step_ids(self) -> tuple[str, ...]:
        return tuple(step.id for step in self.steps)

    def step(self, step_id: str) -> Step:
        """The step with this id, or InvalidInput naming the steps this kind has."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise InvalidInput(
            f"unknown step '{step_id}' for a concern of kind '{self.id}': "
            f"expected one of: {', '.join(self.step_ids)}"
        )


def reader_roles(
    kind: KindInfo,
    *,
    about_headteacher: bool = False,
    online_safety_kinds: Collection[str] | None = None,
) -> frozenset[Role]:
    """Roles that read a concern of this kind by default (issue 5 §3).

    ``online_safety_kinds`` is the school's setting naming the kinds the online safety lead
    reads; None means the catalogue's default (``KindInfo.online_safety``). A concern about
    the headteacher goes to ``readers_when_about_headteacher`` alone, where the kind has one.
    """
    if about_headteacher and kind.readers_when_about_headteacher:
        return frozenset(kind.readers_when_about_headteacher)
    roles = set(kind.readers)
    osl = kind.online_safety if online_safety_kinds is None else kind.id in online_safety_kinds
    if osl:
        roles.add(Role.ONLINE_SAFETY_LEAD)
    return frozenset(roles)


def _step_json(step: Step) -> dict[str, Any]:
    return {
        "id": step.id,
        "title": step.title,
        "required": step.required,
        "guidance": step.guidance,
        "source": step.source,
        "after": list(step.after),
        "when": (
            None
            if step.when is None
            else {"step": step.when.step, "choices": list(step.when.choices)}
        ),
        "decision": (
            None
            if step.decision is None
            else {
                "question": step.decision.question,
                "choices": [
                    {"id": c.id, "label": c.label, "rationale_required": c.rationale_required}
                    for c in step.decision.choices
                ],
            }
        ),
        "due": (
            None
            if step.due is None
            else {"amount": step.due.amount, "unit": step.due.unit.value, "text": step.due.text}
        ),
        "referral": step.referral,
        "skippable": step.skippable,
        "closing": step.closing,
    }


def as_json(kind: KindInfo) -> dict[str, Any]:
    """The kind as JSON-ready values (``esafety safeguarding procedures --json``, the API)."""
    return {
        "kind": kind.id.value,
        "title": kind.title,
        "description": kind.description,
        "grave": kind.grave,
        "readers": [role.value for role in kind.readers],
        "readers_when_about_headteacher": [r.value for r in kind.readers_when_about_headteacher],
        "online_safety": kind.online_safety,
        "refuses_images": kind.refuses_images,
        "image_refusal": kind.image_refusal,
        "source": kind.source,
        "steps": [_step_json(step) for step in kind.steps],
    }
