"""The catalogue of incident kinds and procedures in ``data/procedures.toml``.

Read and validated once, on first use; a broken catalogue is a :class:`ConfigError`
naming the kind and step. ``parse_catalogue`` is pure (text in, values out) so tests can
feed it broken catalogues. Every procedure ends with the catalogue's closing steps
(``[[closing_step]]``: outcome, debrief, changes; 002 §8, 003 §10).
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from esafety.errors import ConfigError, InvalidInput
from esafety.safeguarding.kinds import (
    Choice,
    Condition,
    Decision,
    Due,
    DueUnit,
    IncidentKind,
    KindInfo,
    Step,
)
from esafety.security.roles import STAFF_ROLES, TWO_STEP_ROLES, Role

__all__ = ["catalogue", "kind", "kinds", "parse_catalogue"]

_ID = re.compile(r"[a-z][a-z0-9_]*\Z")

#: Roles that may read safeguarding records at all; `admin` reads none (issue 5 §3).
_READER_ROLES = (TWO_STEP_ROLES | STAFF_ROLES) - {Role.ADMIN}

_KIND_FIELDS: dict[str, tuple[type, bool]] = {  # name: (type, required)
    "id": (str, True),
    "title": (str, True),
    "description": (str, True),
    "grave": (bool, True),
    "readers": (list, True),
    "readers_when_about_headteacher": (list, False),
    "online_safety": (bool, True),
    "refuse_images": (str, False),
    "source": (str, True),
    "step": (list, True),
}
_STEP_FIELDS: dict[str, tuple[type, bool]] = {
    "id": (str, True),
    "title": (str, True),
    "required": (bool, True),
    "guidance": (str, True),
    "source": (str, True),
    "after": (list, False),
    "after_procedure": (bool, False),
    "when": (dict, False),
    "decision": (dict, False),
    "due": (dict, False),
    "referral": (str, False),
    "skippable": (bool, False),
}
_DECISION_FIELDS: dict[str, tuple[type, bool]] = {"question": (str, True), "choices": (list, True)}
_CHOICE_FIELDS: dict[str, tuple[type, bool]] = {
    "id": (str, True),
    "label": (str, True),
    "rationale": (bool, True),
}
_WHEN_FIELDS: dict[str, tuple[type, bool]] = {"step": (str, True), "choices": (list, True)}


def _fields(where: str, raw: Any, spec: dict[str, tuple[type, bool]]) -> dict[str, Any]:
    """Check a TOML table against ``spec``: no unknown fields, required ones present, types."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table, found {raw!r}")
    unknown = sorted(set(raw) - set(spec))
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(spec)}"
        )
    missing = [name for name, (_, needed) in spec.items() if needed and name not in raw]
    if missing:
        raise ConfigError(f"{where}: missing field(s) {', '.join(missing)}")
    for name, value in raw.items():
        kind = spec[name][0]
        if not isinstance(value, kind):
            raise ConfigError(f"{where}: field '{name}' must be a {kind.__name__}, found {value!r}")
        if isinstance(value, str) and not value.strip():
            raise ConfigError(f"{where}: field '{name}' is empty")
    return raw


def _strings(where: str, name: str, values: list[Any]) -> tuple[str, ...]:
    if not all(isinstance(v, str) and v for v in values):
        raise ConfigError(f"{where}: '{name}' must be a list of ids, found {values!r}")
    return tuple(values)


def _roles(where: str, name: str, values: list[Any]) -> tuple[Role, ...]:
    roles = []
    for value in _strings(where, name, values):
        try:
            role = Role(value)
        except ValueError:
            raise ConfigError(f"{where}: '{name}' names unknown role '{value}'") from None
        if role not in _READER_ROLES:
            raise ConfigError(
                f"{where}: '{name}' names '{value}', who reads no safeguarding record"
            )
        roles.append(role)
    return tuple(roles)


def _decision(where: str, raw: Any) -> Decision:
    table = _fields(f"{where} decision", raw, _DECISION_FIELDS)
    choices = []
    for index, item in enumerate(table["choices"], start=1):
        entry = _fields(f"{where} decision choice {index}", item, _CHOICE_FIELDS)
        if not _ID.match(entry["id"]):
            raise ConfigError(f"{where} decision: choice id '{entry['id']}' is not snake_case")
        choices.append(Choice(entry["id"], entry["label"], entry["rationale"]))
    ids = [choice.id for choice in choices]
    if len(ids) < 2 or len(set(ids)) != len(ids):
        raise ConfigError(f"{where} decision: needs two or more distinct choices, found {ids}")
    return Decision(table["question"], tuple(choices))


def _due(where: str, raw: dict[str, Any]) -> Due:
    units = [unit for unit in DueUnit if unit.value in raw]
    if len(raw) != 1 or len(units) != 1:
        raise ConfigError(
            f"{where}: 'due' must have exactly one of {', '.join(DueUnit)}, found {raw!r}"
        )
    amount = raw[units[0].value]
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
        raise ConfigError(f"{where}: 'due' must be a whole number of at least 1, found {amount!r}")
    return Due(amount, units[0])


def _step(where: str, raw: Any, earlier: Mapping[str, Step], closing: bool) -> Step:
    table = _fields(where, raw, _STEP_FIELDS)
    step_id = table["id"]
    where = f"{where} ('{step_id}')"
    if not _ID.match(step_id):
        raise ConfigError(f"{where}: id is not snake_case")
    if step_id in earlier:
        raise ConfigError(f"{where}: duplicate step id")
    after = _strings(where, "after", table.get("after", []))
    for other in after:
        if other not in earlier:
            # Only earlier steps: the order is then a valid order and there are no cycles.
            raise ConfigError(f"{where}: 'after' names '{other}', which is not an earlier step")
    if table.get("after_procedure", False):
        own = tuple(s.id for s in earlier.values() if s.required and not s.closing)
        after = own + tuple(a for a in after if a not in own)
    when = None
    if "when" in table:
        cond = _fields(f"{where} when", table["when"], _WHEN_FIELDS)
        gate = earlier.get(cond["step"])
        if gate is None or gate.decision is None:
            raise ConfigError(
                f"{where}: 'when' must name an earlier decision, not '{cond['step']}'"
            )
        choices = _strings(where, "when.choices", cond["choices"])
        wrong = [c for c in choices if c not in gate.decision.choice_ids]
        if wrong or not choices:
            raise ConfigError(
                f"{where}: 'when' choices {wrong or choices} are not among "
                f"'{gate.id}' choices {list(gate.decision.choice_ids)}"
            )
        when = Condition(gate.id, choices)
        if gate.id not in after:
            after = (*after, gate.id)
    decision = _decision(where, table["decision"]) if "decision" in table else None
    return Step(
        id=step_id,
        title=table["title"],
        required=table["required"],
        guidance=" ".join(table["guidance"].split()),
        source=table["source"],
        after=after,
        when=when,
        decision=decision,
        due=_due(where, table["due"]) if "due" in table else None,
        referral=table.get("referral"),
        # A decision is answered, not skipped: "no, because…" is how it does not apply.
        skippable=table.get("skippable", decision is None),
        closing=closing,
    )


def _kind(index: int, raw: Any, closing: list[Any]) -> KindInfo:
    where = f"procedures catalogue kind {index}"
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        where += f" ('{raw['id']}')"
    table = _fields(where, raw, _KIND_FIELDS)
    try:
        kind_id = IncidentKind(table["id"])
    except ValueError:
        raise ConfigError(f"{where}: unknown id; expected one of {_allowed()}") from None
    steps: dict[str, Step] = {}
    for number, item in enumerate(table["step"], start=1):
        step = _step(f"{where} step {number}", item, steps, closing=False)
        steps[step.id] = step
    if not any(step.required for step in steps.values()):
        raise ConfigError(f"{where}: has no required step")
    for number, item in enumerate(closing, start=1):
        step = _step(f"{where} closing step {number}", item, steps, closing=True)
        steps[step.id] = step
    return KindInfo(
        id=kind_id,
        title=table["title"],
        description=" ".join(table["description"].split()),
        grave=table["grave"],
        readers=_roles(where, "readers", table["readers"]),
        readers_when_about_headteacher=_roles(
            where,
            "readers_when_about_headteacher",
            table.get("readers_when_about_headteacher", []),
        ),
        online_safety=table["online_safety"],
        image_refusal=(
            " ".join(table["refuse_images"].split()) if "refuse_images" in table else None
        ),
        source=table["source"],
        steps=tuple(steps.values()),
    )


def parse_catalogue(text: str) -> Mapping[IncidentKind, KindInfo]:
    """Validate catalogue TOML: every IncidentKind exactly once, every step well formed."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"procedures catalogue is not valid TOML: {error}") from None
    unknown = sorted(set(document) - {"kind", "closing_step"})
    if unknown:
        raise ConfigError(f"procedures catalogue: unknown table(s) {', '.join(unknown)}")
    entries, closing = document.get("kind"), document.get("closing_step", [])
    if not isinstance(entries, list) or not isinstance(closing, list):
        raise ConfigError("procedures catalogue: expected [[kind]] and [[closing_step]] tables")
    found: dict[IncidentKind, KindInfo] = {}
    for index, raw in enumerate(entries, start=1):
        entry = _kind(index, raw, closing)
        if entry.id in found:
            raise ConfigError(f"procedures catalogue kind {index}: duplicate id '{entry.id}'")
        found[entry.id] = entry
    absent = [k.value for k in IncidentKind if k not in found]
    if absent:
        raise ConfigError(f"procedures catalogue: no entry for {', '.join(absent)}")
    return MappingProxyType({k: found[k] for k in IncidentKind})


@cache
def catalogue() -> Mapping[IncidentKind, KindInfo]:
    """The shipped catalogue, read and validated once."""
    path = resources.files("esafety.safeguarding").joinpath("data/procedures.toml")
    return parse_catalogue(path.read_text("utf-8"))


def kinds() -> tuple[KindInfo, ...]:
    """Every kind of incident, in catalogue (enum) order."""
    return tuple(catalogue().values())


def _allowed() -> str:
    return ", ".join(k.value for k in IncidentKind)


def kind(kind_id: str | IncidentKind) -> KindInfo:
    """The kind with this id, or InvalidInput listing the valid ids (and the nearest)."""
    cleaned = str(kind_id).strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return catalogue()[IncidentKind(cleaned)]
    except ValueError:
        pass
    close = difflib.get_close_matches(cleaned, [k.value for k in IncidentKind], n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise InvalidInput(f"unknown kind of incident '{kind_id}': {hint}expected one of: {_allowed()}")
