"""A school's own policies: a built-in policy with changes, stored in the database.

Issue 4 §4 asks for the built-in policies "plus custom ones": a school writes, say,
``year3-4`` based on ``ks2`` with games blocked and safe search forced, and assigns it
like any built-in (``esafety filter policy assign year3-4 --year "Year 3"``). A custom
policy keeps to its built-in: categories are added to or taken from the built-in's
blocked set when the engine is built, so a category the catalogue blocks for pupils later
is blocked by the custom policy too unless it allows it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, time
from types import MappingProxyType
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety import audit
from esafety.db import utcnow
from esafety.directory.service import actor_of, require
from esafety.errors import InvalidInput, NotFound
from esafety.filtering.categories import Category, category_of
from esafety.filtering.model import PolicyAssignment, SubnetMapping
from esafety.filtering.policy import (
    Action,
    Policy,
    SafeSearch,
    TimeRule,
    YouTubeMode,
    built_in_policies,
)
from esafety.filtering.requests_model import CustomPolicy
from esafety.security.roles import Permission

__all__ = [
    "PolicyView",
    "all_policies",
    "create_policy",
    "get_policy",
    "list_policies",
    "parse_time_rule",
    "policy_fingerprint",
    "policy_of",
    "remove_policy",
]

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,59}$")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_WORDS = {"weekdays": "mon-fri", "weekends": "sat-sun", "daily": "mon-sun"}


@dataclass(frozen=True)
class PolicyView:
    """A policy as a page or the command line shows it."""

    policy: Policy
    #: None for a built-in policy.
    row: CustomPolicy | None

    @property
    def custom(self) -> bool:
        return self.row is not None

    @property
    def based_on(self) -> str | None:
        return self.row.based_on if self.row is not None else None

    def as_dict(self) -> dict[str, Any]:
        policy = self.policy
        return {
            "id": policy.id,
            "name": policy.name,
            "custom": self.custom,
            "based_on": self.based_on,
            "blocked": sorted(c.value for c in policy.blocked),
            "allowed": sorted(c.value for c in policy.allowed),
            "safe_search": policy.safe_search.value,
            "youtube": policy.youtube.value,
            "block_bypass": policy.block_bypass,
            "default": policy.default.value,
            "pupils": policy.pupils,
            "times": [describe_time_rule(rule) for rule in policy.times],
        }


# -- reading ------------------------------------------------------------------------------


def _time_rule(data: Mapping[str, Any]) -> TimeRule:
    return TimeRule(
        categories=frozenset(Category(c) for c in data["categories"]),
        action=Action(data["action"]),
        start=time.fromisoformat(data["start"]),
        end=time.fromisoformat(data["end"]),
        days=frozenset(int(d) for d in data.get("days", range(5))),
        note=str(data.get("note", "")),
    )


def policy_of(row: CustomPolicy) -> Policy:
    """The :class:`Policy` a stored custom policy stands for, from its built-in."""
    base = built_in_policies()[row.based_on]
    block = frozenset(Category(c) for c in row.block)
    allow = frozenset(Category(c) for c in row.allow)
    return replace(
        base,
        id=row.policy_id,
        name=row.name,
        blocked=(base.blocked | block) - allow,
        allowed=(base.allowed | allow) - block,
        safe_search=SafeSearch(row.safe_search) if row.safe_search else base.safe_search,
        youtube=YouTubeMode(row.youtube) if row.youtube else base.youtube,
        block_bypass=base.block_bypass if row.block_bypass is None else row.block_bypass,
        default=Action(row.default) if row.default else base.default,
        times=tuple(_time_rule(t) for t in row.times or ()),
    )


def _rows(session: Session) -> list[CustomPolicy]:
    if session.info.get("school_id") is None:
        return []  # custom policies belong to a school
    return list(session.scalars(select(CustomPolicy).order_by(CustomPolicy.policy_id)))


def all_policies(session: Session) -> Mapping[str, Policy]:
    """The built-in policies and the session's school's own, by id (for the engine)."""
    policies = dict(built_in_policies())
    for row in _rows(session):
        policies[row.policy_id] = policy_of(row)
    return MappingProxyType(policies)


def policy_fingerprint(session: Session) -> tuple[tuple[str, datetime], ...]:
    """What changes when a custom policy does (the DNS filter builds its engine again)."""
    return tuple((row.policy_id, row.updated_at) for row in _rows(session))


def list_policies(session: Session) -> list[PolicyView]:
    require(session, Permission.VIEW_FILTERING, "see the filter policies")
    views = [PolicyView(policy, None) for policy in built_in_policies().values()]
    return views + [PolicyView(policy_of(row), row) for row in _rows(session)]


def get_policy(session: Session, policy_id: str) -> PolicyView:
    require(session, Permission.VIEW_FILTERING, "see the filter policies")
    wanted = policy_id.strip().lower()
    for view in list_policies(session):
        if view.policy.id == wanted:
            return view
    raise NotFound(f"no policy is called '{policy_id}': see 'esafety filter policy list'")


# -- times of day -------------------------------------------------------------------------


def _days(text: str) -> list[int]:
    days: set[int] = set()
    for part in _DAY_WORDS.get(text, text).split(","):
        first, _, last = part.strip().partition("-")
        try:
            start = _DAYS.index(first[:3])
            end = _DAYS.index(last[:3]) if last else start
        except ValueError:
            raise InvalidInput(
                f"days {text!r}: write them as mon-fri, sat-sun, mon,wed,fri or weekdays"
            ) from None
        if end < start:
            raise InvalidInput(f"days {part!r}: write the first day first, such as mon-fri")
        days.update(range(start, end + 1))
    return sorted(days)


def parse_time_rule(text: str) -> dict[str, Any]:
    """``"allow games,streaming 12:00-13:00 mon-fri"`` as stored (days optional: weekdays)."""
    words = text.strip().lower().split()
    if len(words) not in (3, 4) or words[0] not in ("allow", "block"):
        raise InvalidInput(
            f"time rule {text!r}: write it as 'allow games 12:00-13:00 mon-fri' "
            "(allow or block, categories with commas, from-to, days)"
        )
    categories = sorted({category_of(c).value for c in words[1].split(",") if c})
    start_text, _, end_text = words[2].partition("-")
    try:
        start, end = time.fromisoformat(start_text), time.fromisoformat(end_text)
    except ValueError:
        raise InvalidInput(
            f"time rule {text!r}: write the times as 12:00-13:00 (24-hour clock)"
        ) from None
    stored = {
        "action": words[0],
        "categories": categories,
        "start": start.strftime("%H:%M"),
        "end": end.strftime("%H:%M"),
        "days": _days(words[3]) if len(words) == 4 else list(range(5)),
    }
    _time_rule(stored)  # the same checks the engine makes (start before end...)
    return stored


def describe_time_rule(rule: TimeRule) -> str:
    """A time rule as ``parse_time_rule`` reads it."""
    days = sorted(rule.days)
    if days == list(range(days[0], days[-1] + 1)) and len(days) > 1:
        shown = f"{_DAYS[days[0]]}-{_DAYS[days[-1]]}"
    else:
        shown = ",".join(_DAYS[d] for d in days)
    categories = ",".join(sorted(c.value for c in rule.categories))
    return f"{rule.action.value} {categories} {rule.start:%H:%M}-{rule.end:%H:%M} {shown}"


# -- changing -----------------------------------------------------------------------------


def _reason(reason: str, what: str) -> str:
    cleaned = reason.strip()
    if not cleaned:
        raise InvalidInput(f"give a reason to {what}: the filter change log says why (002 §7.3)")
    return cleaned


def _categories(values: Iterable[str]) -> list[str]:
    return sorted({category_of(v).value for v in values if v.strip()})


def _choice(value: str | None, allowed: type[SafeSearch | YouTubeMode], what: str) -> str | None:
    if value is None or not value.strip():
        return None
    cleaned = value.strip().lower()
    choices = [m.value for m in allowed]
    if cleaned not in choices:
        raise InvalidInput(f"{what} {value!r}: use one of {', '.join(choices)}")
    return cleaned


def create_policy(
    session: Session,
    policy_id: str,
    *,
    based_on: str,
    reason: str,
    name: str | None = None,
    block: Iterable[str] = (),
    allow: Iterable[str] = (),
    safe_search: str | None = None,
    youtube: str | None = None,
    block_bypass: bool | None = None,
    default: str | None = None,
    times: Iterable[str] = (),
    replace_existing: bool = False,
) -> CustomPolicy:
    """Make (or, with ``replace_existing``, change) one of the school's own policies."""
    require(session, Permission.MANAGE_FILTER_LISTS, "make filter policies")
    if session.info.get("school_id") is None:
        raise InvalidInput("a policy belongs to a school: give --school SLUG")
    why = _reason(reason, "make a policy")
    wanted = policy_id.strip().lower()
    built_ins = built_in_policies()
    if not _ID.match(wanted):
        raise InvalidInput(
            f"policy id {policy_id!r}: use 1-60 lower-case letters, digits, '-' and '_' "
            "(such as year3-4)"
        )
    if wanted in built_ins:
        raise InvalidInput(f"'{wanted}' is a built-in policy: choose another id for yours")
    base = based_on.strip().lower()
    if base not in built_ins:
        raise InvalidInput(
            f"based on {based_on!r}: a policy is based on a built-in one: {', '.join(built_ins)}"
        )
    blocked, allowed = _categories(block), _categories(allow)
    both = sorted(set(blocked) & set(allowed))
    if both:
        raise InvalidInput(f"{', '.join(both)}: a category cannot be both blocked and allowed")
    if default is not None and default.strip().lower() not in ("", "allow", "block"):
        raise InvalidInput(f"default {default!r}: use allow or block")
    clean_name = (name or "").strip() or f"{built_ins[base].name} ({wanted})"
    if len(clean_name) > 120:
        raise InvalidInput(f"name is {len(clean_name)} characters long: use at most 120")
    values = {
        "name": clean_name,
        "based_on": base,
        "block": blocked,
        "allow": allowed,
        "safe_search": _choice(safe_search, SafeSearch, "safe search"),
        "youtube": _choice(youtube, YouTubeMode, "YouTube mode"),
        "block_bypass": block_bypass,
        "default": (default or "").strip().lower() or None,
        "times": [parse_time_rule(t) for t in times],
    }
    # Everything the engine will check, checked before anything is stored.
    policy_of(CustomPolicy(policy_id=wanted, **values))
    row = session.scalars(select(CustomPolicy).where(CustomPolicy.policy_id == wanted)).first()
    if row is not None and not replace_existing:
        raise InvalidInput(f"policy '{wanted}' exists: give --replace to change it")
    if row is None:
        actor = actor_of(session)
        row = CustomPolicy(policy_id=wanted, created_by=actor.name if actor else "system")
        session.add(row)
    audit.set_reason(session, why)
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    session.flush()
    _changed(session)
    return row


def remove_policy(session: Session, policy_id: str, reason: str) -> None:
    """Remove one of the school's own policies; refused while anyone is given it."""
    require(session, Permission.MANAGE_FILTER_LISTS, "remove filter policies")
    why = _reason(reason, "remove a policy")
    wanted = policy_id.strip().lower()
    row = session.scalars(select(CustomPolicy).where(CustomPolicy.policy_id == wanted)).first()
    if row is None:
        if wanted in built_in_policies():
            raise InvalidInput(f"'{wanted}' is a built-in policy and cannot be removed")
        raise NotFound(f"the school has no policy called '{policy_id}'")
    used = session.scalar(
        select(PolicyAssignment.id).where(PolicyAssignment.policy_id == wanted).limit(1)
    ) or session.scalar(select(SubnetMapping.id).where(SubnetMapping.policy_id == wanted).limit(1))
    if used:
        raise InvalidInput(
            f"policy '{wanted}' is still given to people or networks: remove those "
            "assignments first (see /filtering)"
        )
    audit.set_reason(session, why)
    session.delete(row)
    session.flush()
    _changed(session)


def _changed(session: Session) -> None:
    from esafety.filtering.changes import rules_changed

    rules_changed(session)
