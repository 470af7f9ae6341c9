"""Who is asking: policy assignments, the school's own entries, subnets and sign-ins.

A client address becomes a person by the latest unexpired sign-in (posted by a proxy, a
device agent or MDM, or from Wi-Fi RADIUS accounting), else by the most specific subnet
mapping (the KS1 iPad network), else it is an unknown device (issue 4 §6). A person's
policy is the one assigned to their most specific group (:mod:`esafety.filtering.assignment`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety.db import utcnow
from esafety.directory.groups import groups_of
from esafety.directory.model import Group, Person, PersonKind
from esafety.directory.service import actor_of, require
from esafety.directory.years import KeyStage, YearGroup
from esafety.errors import InvalidInput, NotFound
from esafety.events import publish_on_commit
from esafety.filtering.assignment import Assignment, PersonGroups, default_policy, policy_for
from esafety.filtering.custom_policies import all_policies
from esafety.filtering.decision import Asker
from esafety.filtering.hostnames import normalise_host
from esafety.filtering.model import (
    ClientSignIn,
    EntryAction,
    PolicyAssignment,
    SchoolFilterEntry,
    SignInSource,
    SubnetMapping,
    TargetKind,
)
from esafety.filtering.policy import Action, SchoolEntry
from esafety.filtering.sign_ins import SignInRecorded
from esafety.filtering.urls import parse_url, url_key
from esafety.security.roles import STAFF_ROLES, Permission, Role

__all__ = [
    "MAX_SIGN_IN_TTL",
    "WhoIsAsking",
    "add_school_entry",
    "add_subnet",
    "asker_for_person",
    "asker_for_username",
    "assign_policy",
    "record_sign_in",
    "remove_assignment",
    "remove_school_entry",
    "remove_subnet",
    "school_entries",
    "who_is_at",
]

#: A sign-in lasts at most a school day and a night; devices post again when they renew.
MAX_SIGN_IN_TTL = timedelta(hours=24)


def _school_id(session: Session) -> int:
    value = session.info.get("school_id")
    if value is None:
        raise InvalidInput("this needs a school: give --school SLUG")
    return int(value)


def _policy(policy_id: str, session: Session) -> str:
    """A built-in policy's id or one of the school's own (custom_policies)."""
    cleaned = policy_id.strip().lower()
    known = all_policies(session)
    if cleaned not in known:
        raise InvalidInput(f"unknown policy '{policy_id}': use one of {', '.join(known)}")
    return cleaned


def _person(session: Session, username: str) -> Person:
    person = session.scalars(select(Person).where(Person.username == username.strip())).first()
    if person is None:
        raise NotFound(f"no person has the username '{username}': check the spelling")
    return person


# -- policy assignments -------------------------------------------------------------------


def assign_policy(
    session: Session, policy_id: str, kind: TargetKind | str, target: str
) -> PolicyAssignment:
    """Give ``policy_id`` to a person (username), group (name), year, key stage or role;
    a second assignment to the same target replaces the first."""
    require(session, Permission.MANAGE_FILTER_LISTS, "assign filter policies")
    school_id = _school_id(session)
    chosen = _policy(policy_id, session)
    kind = TargetKind(kind)
    key = _target_key(session, kind, target)
    row = session.scalars(
        select(PolicyAssignment).where(
            PolicyAssignment.target_kind == kind, PolicyAssignment.target == key
        )
    ).first()
    if row is None:
        row = PolicyAssignment(school_id=school_id, target_kind=kind, target=key)
        session.add(row)
    row.policy_id = chosen
    row.assigned_at = utcnow()
    session.flush()
    return row


def _target_key(session: Session, kind: TargetKind, target: str) -> str:
    text = target.strip()
    if kind is TargetKind.PERSON:
        return str(_person(session, text).id)
    if kind is TargetKind.GROUP:
        group = session.scalars(
            select(Group).where(Group.name == text, Group.archived_on.is_(None))
        ).first()
        if group is None:
            raise NotFound(f"no group is named '{text}' in this school: see its groups")
        return str(group.id)
    try:
        if kind is TargetKind.YEAR:
            return YearGroup.parse(text).value
        if kind is TargetKind.KEY_STAGE:
            return KeyStage(text.lower().replace(" ", "")).value
        return Role(text.lower()).value
    except ValueError:
        choices = {
            TargetKind.YEAR: "a year such as 'Year 4', 'R' or 'N'",
            TargetKind.KEY_STAGE: ", ".join(k.value for k in KeyStage),
            TargetKind.ROLE: ", ".join(r.value for r in Role),
        }[kind]
        raise InvalidInput(
            f"unknown {kind.value.replace('_', ' ')} '{text}': use {choices}"
        ) from None


def assignments(session: Session) -> list[Assignment]:
    return [
        Assignment(row.target_kind.value, row.target, row.policy_id)
        for row in session.scalars(select(PolicyAssignment))
    ]


def person_groups(session: Session, person: Person) -> PersonGroups:
    found = groups_of(session, person)
    groups = [g.id for g in (found.registration, *found.classes, *found.custom) if g is not None]
    roles = tuple(r.value for r in Role if r in person.role_ids)
    return PersonGroups(
        person_id=person.id,
        group_ids=tuple(groups),
        year=found.year.value if found.year else None,
        key_stage=found.key_stage.value if found.key_stage else None,
        roles=roles,
        pupil=person.kind is PersonKind.PUPIL,
        staff=person.kind is PersonKind.STAFF or bool(person.role_ids & STAFF_ROLES),
    )


def asker_for_person(session: Session, person: Person) -> tuple[Asker, str]:
    """The person as the filter sees them, and how their policy was chosen."""
    belongs = person_groups(session, person)
    chosen = policy_for(belongs, assignments(session))
    found = groups_of(session, person)
    names = {*found.labels(), *belongs.roles, *(v for v in (belongs.year, belongs.key_stage) if v)}
    if chosen is None:
        policy_id = default_policy(belongs)
        return Asker(policy_id, frozenset(names)), f"{person.username}: built-in {policy_id}"
    shown = {"person": "their own", "group": "a group", "year": "their year"}.get(
        chosen.kind, f"their {chosen.kind.replace('_', ' ')}"
    )
    why = (
        f"{person.username}: {chosen.policy_id} assigned to {shown} ({chosen.kind} {chosen.target})"
    )
    return Asker(chosen.policy_id, frozenset(names)), why


def asker_for_username(session: Session, username: str) -> tuple[Asker, str]:
    return asker_for_person(session, _person(session, username))


# -- the school's own entries -------------------------------------------------------------


def _entry_target(text: str) -> str:
    cleaned = text.strip()
    if "/" in cleaned or "\\" in cleaned:
        return url_key(parse_url(cleaned))
    return normalise_host(cleaned)


def add_school_entry(
    session: Session, target: str, action: EntryAction | str, reason: str
) -> SchoolFilterEntry:
    """Block or allow a host (and its subdomains) or a URL prefix for the whole school."""
    require(session, Permission.MANAGE_FILTER_LISTS, "block or allow sites for the school")
    school_id = _school_id(session)
    if not reason.strip():
        raise InvalidInput("give a reason: the filter change log says why (002 §7.3)")
    actor = actor_of(session)
    row = SchoolFilterEntry(
        school_id=school_id,
        target=_entry_target(target),
        action=EntryAction(action),
        reason=reason.strip(),
        created_by_id=actor.person_id if actor else None,
        created_by=actor.name if actor else "system",
    )
    session.add(row)
    session.flush()
    return row


def school_entries(session: Session) -> tuple[SchoolEntry, ...]:
    return tuple(
        SchoolEntry(row.id, row.target, Action(row.action.value), note=row.reason)
        for row in session.scalars(select(SchoolFilterEntry).order_by(SchoolFilterEntry.id))
    )


# -- subnets and sign-ins -----------------------------------------------------------------


def _address(text: str) -> str:
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        raise InvalidInput(f"client address '{text}' is not an IP address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def add_subnet(
    session: Session,
    network: str,
    *,
    group: str | None = None,
    policy_id: str | None = None,
    note: str = "",
) -> SubnetMapping:
    """Devices on ``network`` count as members of ``group`` or get ``policy_id``."""
    require(session, Permission.MANAGE_FILTER_LISTS, "map networks to groups")
    school_id = _school_id(session)
    if (group is None) == (policy_id is None):
        raise InvalidInput("give a group or a policy for the network, one of them")
    try:
        cidr = ipaddress.ip_network(network.strip(), strict=True)
    except ValueError as error:
        raise InvalidInput(f"network '{network}': {error}; write it as 10.1.2.0/24") from None
    row = SubnetMapping(school_id=school_id, network=str(cidr), note=note)
    if group is not None:
        row.group_id = int(_target_key(session, TargetKind.GROUP, group))
    else:
        row.policy_id = _policy(str(policy_id), session)
    session.add(row)
    session.flush()
    return row


def record_sign_in(
    session: Session,
    client: str,
    username: str,
    source: SignInSource | str,
    ttl: timedelta,
    *,
    now: datetime | None = None,
) -> ClientSignIn:
    """``username`` is using ``client`` for ``ttl`` (at most :data:`MAX_SIGN_IN_TTL`)."""
    require(session, Permission.RECORD_SIGN_INS, "tell the filter who uses a device")
    school_id = _school_id(session)
    try:
        kind = SignInSource(source)
    except ValueError:
        allowed = ", ".join(s.value for s in SignInSource)
        raise InvalidInput(f"unknown sign-in source '{source}': use one of {allowed}") from None
    if not timedelta(seconds=1) <= ttl <= MAX_SIGN_IN_TTL:
        raise InvalidInput(
            f"sign-in lasting {int(ttl.total_seconds())} s: give 1 s to "
            f"{int(MAX_SIGN_IN_TTL.total_seconds())} s"
        )
    at = now or utcnow()
    row = ClientSignIn(
        school_id=school_id,
        client=_address(client),
        person_id=_person(session, username).id,
        source=kind,
        signed_in_at=at,
        expires_at=at + ttl,
    )
    session.add(row)
    session.flush()
    # The DNS filter reads who is where again as soon as this commits (sign_ins.py).
    publish_on_commit(
        session,
        SignInRecorded(school_id, row.client, row.person_id, kind.value, row.expires_at),
    )
    return row


@dataclass(frozen=True)
class WhoIsAsking:
    asker: Asker
    person: Person | None
    #: ``sign-in``, ``subnet 10.1.2.0/24`` or ``unknown device``.
    how: str


def who_is_at(session: Session, client: str, *, now: datetime | None = None) -> WhoIsAsking:
    """The person using ``client`` now, else its subnet's group or policy, else unknown."""
    address = _address(client)
    at = now or utcnow()
    signed_in = session.scalars(
        select(ClientSignIn)
        .where(ClientSignIn.client == address, ClientSignIn.expires_at > at)
        .where(ClientSignIn.signed_in_at <= at)
        .order_by(ClientSignIn.signed_in_at.desc(), ClientSignIn.id.desc())
    ).first()
    if signed_in is not None:
        person = session.get(Person, signed_in.person_id)
        if person is not None and person.left_on is None:
            asker, _why = asker_for_person(session, person)
            return WhoIsAsking(asker, person, f"sign-in ({signed_in.source.value})")
    mapping = _subnet(session, address)
    if mapping is not None:
        return WhoIsAsking(_subnet_asker(session, mapping), None, f"subnet {mapping.network}")
    return WhoIsAsking(Asker(None), None, "unknown device")


def _subnet(session: Session, address: str) -> SubnetMapping | None:
    ip = ipaddress.ip_address(address)
    best: SubnetMapping | None = None
    best_length = -1
    for row in session.scalars(select(SubnetMapping)):
        network = ipaddress.ip_network(row.network)
        if network.version == ip.version and ip in network and network.prefixlen > best_length:
            best, best_length = row, network.prefixlen
    return best


def _subnet_asker(session: Session, mapping: SubnetMapping) -> Asker:
    if mapping.policy_id is not None:
        return Asker(mapping.policy_id)
    group = session.get(Group, mapping.group_id)
    chosen = policy_for(
        PersonGroups(person_id=-1, group_ids=(int(mapping.group_id or 0),)),
        assignments(session),
    )
    names = frozenset({group.name} if group is not None else ())
    return Asker(chosen.policy_id if chosen is not None else None, names)


# -- removing what the school set ---------------------------------------------------------


def _removal_reason(reason: str) -> str:
    cleaned = reason.strip()
    if not cleaned:
        raise InvalidInput(
            "give a reason for the removal: the filter change log says why (002 §7.3)"
        )
    return cleaned


def _remove(session: Session, row: object, what: str, object_id: int, reason: str) -> None:
    from esafety import audit

    session.delete(row)
    # The row's deletion is audited by the hook; this entry carries the why beside it.
    audit.record(session, f"filtering.{what}.removed", what, object_id, reason=reason)
    session.flush()


def remove_school_entry(session: Session, entry_id: int, reason: str) -> None:
    """Take one of the school's own block or allow entries away."""
    require(session, Permission.MANAGE_FILTER_LISTS, "remove the school's filter entries")
    why = _removal_reason(reason)
    row = session.scalars(select(SchoolFilterEntry).where(SchoolFilterEntry.id == entry_id)).first()
    if row is None:
        raise NotFound(f"no filter entry #{entry_id} in this school")
    _remove(session, row, "school_filter_entry", entry_id, why)


def remove_assignment(session: Session, assignment_id: int, reason: str) -> None:
    """Take a policy assignment away; the target falls back to a less specific one."""
    require(session, Permission.MANAGE_FILTER_LISTS, "remove policy assignments")
    why = _removal_reason(reason)
    row = session.scalars(
        select(PolicyAssignment).where(PolicyAssignment.id == assignment_id)
    ).first()
    if row is None:
        raise NotFound(f"no policy assignment #{assignment_id} in this school")
    _remove(session, row, "policy_assignment", assignment_id, why)


def remove_subnet(session: Session, subnet_id: int, reason: str) -> None:
    """Stop treating a network's devices as a group; they become unknown devices."""
    require(session, Permission.MANAGE_FILTER_LISTS, "remove network mappings")
    why = _removal_reason(reason)
    row = session.scalars(select(SubnetMapping).where(SubnetMapping.id == subnet_id)).first()
    if row is None:
        raise NotFound(f"no network mapping #{subnet_id} in this school")
    _remove(session, row, "subnet_mapping", subnet_id, why)
