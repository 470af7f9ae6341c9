"""The filter change log: who changed what in the filter, when and why (002 §7.3 "all
changes to the school filtering policy will be logged and recorded", 003 §7.3.1).

It is a view over the audit trail, not a table of its own: the audit hook records every
insert, update and delete of the filtering tables in the same transaction as the change,
so no change can be missing from it, whichever code path made it (a page, the API, the
command line, a scheduled job). The "why" is the reason the change was made with
(:func:`esafety.audit.set_reason`), or the reason a row carries (an entry's reason, a
network's note, a request's educational reason and risk assessment).

Governors, the headteacher, the DSL and deputies, the online safety lead and the
technician read it (``Permission.VIEW_FILTER_CHANGES``); installation-wide lists (shared by
every school) appear in every school's log.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from esafety.audit import AuditEntry
from esafety.directory.model import Group, Person, School
from esafety.directory.service import require
from esafety.directory.years import KeyStage, YearGroup
from esafety.errors import InvalidInput
from esafety.events import Event, publish_on_commit
from esafety.filtering.model import FilterList, SchoolFilterList
from esafety.filtering.requests_model import UnblockRequest
from esafety.security.roles import Permission, Role

__all__ = [
    "Change",
    "ChangeKind",
    "FilterRulesChanged",
    "change_log",
    "changes_csv",
    "rules_changed",
]


@dataclass(frozen=True)
class FilterRulesChanged(Event):
    """The school's rules (exceptions, policies) changed: filters build their engine again."""

    subject = "filtering.rules.changed"
    school_id: int | None


def rules_changed(session: Session) -> None:
    """Tell the filters, once the session commits, that the school's rules changed."""
    school_id = session.info.get("school_id")
    publish_on_commit(session, FilterRulesChanged(int(school_id) if school_id else None))


class ChangeKind(StrEnum):
    LIST = "list"
    POLICY = "policy"
    ASSIGNMENT = "assignment"
    ENTRY = "entry"
    NETWORK = "network"
    EXCEPTION = "exception"
    SETTINGS = "settings"

    @property
    def label(self) -> str:
        return {
            "list": "Lists",
            "policy": "Policies",
            "assignment": "Who gets which policy",
            "entry": "The school's own entries",
            "network": "Networks",
            "exception": "Unblock requests",
            "settings": "Filter settings",
        }[self.value]


#: Every table whose changes are changes to the filter, and the kind each is.
TABLES: Mapping[str, ChangeKind] = {
    "filter_list": ChangeKind.LIST,
    "school_filter_list": ChangeKind.LIST,
    "custom_policy": ChangeKind.POLICY,
    "policy_assignment": ChangeKind.ASSIGNMENT,
    "school_filter_entry": ChangeKind.ENTRY,
    "subnet_mapping": ChangeKind.NETWORK,
    "unblock_request": ChangeKind.EXCEPTION,
    "school_filter_settings": ChangeKind.SETTINGS,
}

#: Columns that change with every change and say nothing themselves.
_BOOKKEEPING = frozenset({"updated_at", "assigned_at", "updated_by"})


@dataclass(frozen=True)
class Change:
    seq: int
    at: datetime
    who: str
    kind: ChangeKind
    what: str
    why: str
    #: A page about the changed thing, when there is one.
    link: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "who": self.who,
            "kind": self.kind.value,
            "what": self.what,
            "why": self.why,
        }


def change_log(
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    kinds: Iterable[ChangeKind | str] = (),
    limit: int = 500,
) -> list[Change]:
    """The filter's changes, newest first, for the session's school (and the lists every
    school shares)."""
    require(session, Permission.VIEW_FILTER_CHANGES, "read the filter change log")
    chosen = {_kind(k) for k in kinds}
    if since is not None and until is not None and until <= since:
        raise InvalidInput("the end of the period is not after its start: swap them")
    if limit < 1:
        raise InvalidInput(f"limit {limit}: give at least 1")
    tables = [t for t, k in TABLES.items() if not chosen or k in chosen]
    query = select(AuditEntry).where(
        AuditEntry.object_type.in_(tables), AuditEntry.action != "read"
    )
    school_id = session.info.get("school_id")
    if school_id is not None:
        # The audit trail is not a school-owned table: choose the school's entries here.
        query = query.where(
            or_(AuditEntry.school_id == int(school_id), AuditEntry.school_id.is_(None))
        )
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    # Room for the removal notes that are folded into their deletions.
    entries = list(session.scalars(query.order_by(AuditEntry.seq.desc()).limit(limit * 2)))
    return _Describer(session, entries).changes()[:limit]


def _kind(value: ChangeKind | str) -> ChangeKind:
    try:
        return ChangeKind(str(value).strip().lower())
    except ValueError:
        allowed = ", ".join(k.value for k in ChangeKind)
        raise InvalidInput(f"kind of change {value!r}: use one of {allowed}") from None


def changes_csv(changes: Iterable[Change]) -> str:
    """The change log as CSV (UTF-8, a header row), for governors' records."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["when (UTC)", "who", "kind", "what", "why"])
    for change in changes:
        writer.writerow(
            [
                change.at.strftime("%Y-%m-%d %H:%M:%S"),
                _safe_cell(change.who),
                change.kind.label,
                _safe_cell(change.what),
                _safe_cell(change.why),
            ]
        )
    return out.getvalue()


def _safe_cell(text: str) -> str:
    # A cell starting with = + - @ is a formula to a spreadsheet (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# -- turning audit entries into sentences ---------------------------------------------------


def _when(text: object, zone: ZoneInfo) -> str:
    """A stored time as the school reads it."""
    if not isinstance(text, str):
        return "?"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).strftime("%a %d %b %Y %H:%M")


def _groups(groups: object) -> str:
    if not isinstance(groups, list) or not groups:
        return "nobody"
    return ", ".join(str(g.get("label") or g.get("target")) for g in groups if isinstance(g, dict))


class _Describer:
    """Reads the audit entries of one page of the log, with the rows they name."""

    def __init__(self, session: Session, entries: list[AuditEntry]) -> None:
        self.session = session
        self.entries = entries
        school = session.get(School, session.info.get("school_id") or 0)
        self.zone = ZoneInfo(school.timezone if school is not None else "Europe/London")
        self.removal_reasons: dict[tuple[str, str | None], str] = {}
        for entry in entries:
            if entry.action.startswith("filtering.") and entry.reason:
                self.removal_reasons[(entry.object_type, entry.object_id)] = entry.reason
        # An import writes its row, then its entry count once the file is read: one change.
        self.filled: dict[tuple[str, str | None], AuditEntry] = {
            (e.object_type, e.object_id): e
            for e in entries
            if TABLES.get(e.object_type) is ChangeKind.LIST
            and e.action == "update"
            and "sha256" in (e.after or {})
            and (e.before or {}).get("sha256", "") is None
        }
        people = {e.actor_id for e in entries if e.actor_id is not None}
        self.people: dict[int, str] = {}
        if people:
            self.people = {
                p.id: f"{p.display_name} ({p.username})"
                for p in session.scalars(select(Person).where(Person.id.in_(people)))
            }
        self._names: dict[tuple[str, str], str] = {}
        self._requests: dict[str, UnblockRequest] = {}

    def changes(self) -> list[Change]:
        found = []
        for entry in self.entries:
            if entry.action not in ("create", "update", "delete"):
                continue  # a removal's reason, folded into its deletion
            if self.filled.get((entry.object_type, entry.object_id)) is entry:
                continue  # folded into the import that made the list
            described = self.describe(entry)
            if described is None:
                continue
            what, why, link = described
            found.append(
                Change(
                    seq=entry.seq,
                    at=entry.at,
                    who=self.who(entry),
                    kind=TABLES[entry.object_type],
                    what=what,
                    why=why or "(no reason was given)",
                    link=link,
                )
            )
        return found

    def who(self, entry: AuditEntry) -> str:
        if entry.actor_id is not None:
            return self.people.get(entry.actor_id, entry.actor)
        if entry.actor.startswith("system:job:"):
            return "esafety, on time (scheduled)"
        if entry.actor == "system:cli":
            return "the command line on the server"
        return entry.actor.removeprefix("system:") if entry.actor else "esafety"

    def describe(self, entry: AuditEntry) -> tuple[str, str, str | None] | None:
        before, after = entry.before or {}, entry.after or {}
        if entry.action == "update":
            changed = set(after) - _BOOKKEEPING
            if not changed:
                return None  # a re-assignment of the same policy: nothing changed
        values = after if entry.action == "create" else {**before, **after}
        why = entry.reason or ""
        if entry.action == "delete" and not why:
            why = self.removal_reasons.get((entry.object_type, entry.object_id), "")
        method = getattr(self, f"_{entry.object_type}")
        result: tuple[str, str, str | None] = method(entry, values, before, after, why)
        return result

    # One method per table: (what, why, link).

    def _list_name(self, entry: AuditEntry, values: Mapping[str, Any]) -> str:
        if values.get("name"):
            return str(values["name"])
        key = (entry.object_type, entry.object_id or "")
        if key not in self._names:
            number = int(entry.object_id or 0)
            name = (
                self.session.scalar(select(FilterList.name).where(FilterList.id == number))
                if entry.object_type == "filter_list"
                else self.session.scalar(
                    select(SchoolFilterList.name).where(SchoolFilterList.id == number)
                )
            )
            self._names[key] = name or f"#{entry.object_id}"
        return self._names[key]

    def _filter_list(
        self,
        entry: AuditEntry,
        values: Mapping[str, Any],
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        why: str,
    ) -> tuple[str, str, str | None]:
        name = self._list_name(entry, values)
        whose = "the school's" if entry.object_type == "school_filter_list" else "a shared"
        illegal = ", illegal content" if values.get("illegal") else ""
        if entry.action == "create":
            filled = self.filled.get((entry.object_type, entry.object_id))
            values = {**values, **((filled.after or {}) if filled is not None else {})}
            what = (
                f"Imported {whose} list '{name}' ({values.get('category')}{illegal}): "
                f"{int(values.get('entry_count') or 0):,} entries"
            )
            return what, why or f"from {values.get('source') or 'a file'}", None
        if entry.action == "delete":
            return f"Removed {whose} list '{name}'", why, None
        if "sha256" in after or "entry_count" in after:
            count = int(values.get("entry_count") or 0)
            was = before.get("entry_count")
            what = f"Updated list '{name}': {count:,} entries" + (
                f" (was {int(was):,})" if was is not None and was != count else ""
            )
            return (
                what,
                why or f"from {values.get('source') or values.get('url') or 'a file'}",
                None,
            )
        if after.get("last_error"):
            what = f"Could not update list '{name}'; the last good copy is kept"
            return what, why or str(after["last_error"]), None
        return f"Changed list '{name}': {_fields(before, after)}", why, None

    _school_filter_list = _filter_list

    def _target(self, kind: object, target: object) -> str:
        text = str(target)
        try:
            if kind == "person":
                person = self.session.scalars(select(Person).where(Person.id == int(text))).first()
                return person.display_name if person else f"person #{text}"
            if kind == "group":
                group = self.session.scalars(select(Group).where(Group.id == int(text))).first()
                return f"class or group {group.name}" if group else f"group #{text}"
            if kind == "year":
                return YearGroup(text).label
            if kind == "key_stage":
                return KeyStage(text).label
            if kind == "role":
                return f"everyone with the role {Role(text).label}"
        except ValueError:
            pass
        return f"{kind} {text}"

    def _policy_assignment(
        self,
        entry: AuditEntry,
        values: Mapping[str, Any],
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        why: str,
    ) -> tuple[str, str, str | None]:
        who = self._target(values.get("target_kind"), values.get("target"))
        if entry.action == "create":
            return f"Gave policy {values.get('policy_id')} to {who}", why, None
        if entry.action == "delete":
            return f"Took policy {values.get('policy_id')} away from {who}", why, None
        what = f"Changed the policy of {who} from {before.get('policy_id')} to {after.get('policy_id')}"
        return what, why, None

    def _school_filter_entry(
        self,
        entry: AuditEntry,
        values: Mapping[str, Any],
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        why: str,
    ) -> tuple[str, str, str | None]:
        action, target = values.get("action"), values.get("target")
        if entry.action == "create":
            verb = "Blocked" if action == "block" else "Allowed"
            return f"{verb} {target} for everyone", why or str(values.get("reason") or ""), None
        if entry.action == "delete":
            return f"Removed the school's {action} entry for {target}", why, None
        return f"Changed the entry for {target}: {_fields(before, after)}", why, None

    def _subnet_mapping(
        self,
        entry: AuditEntry,
        values: Mapping[str, Any],
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        why: str,
    ) -> tuple[str, str, str | None]:
        network = values.get("network")
        if values.get("group_id") is not None:
            counts_as = f"members of {self._target('group', values['group_id'])}"
        else:
            counts_as = f"policy {values.get('policy_id')}"
        if entry.action == "create":
            what = f"Devices on network {network} now count as {counts_as}"
            return what, why or str(values.get("note") or ""), None
        if entry.action == "delete":
            return f"Removed the mapping of network {network} ({counts_as})", why, None
        return f"Changed network {network}: {_fields(before, after)}", why, None

    def _custom_policy(
        self,
        entry: AuditEntry,
        values: Mapping[str, Any],
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        why: str,
    ) -> tuple[str, str, str | None]:
        policy_id = values.get("policy_id")
        link = f"/filtering/policies/{policy_id}" if entry.action != "delete" else None
        if entry.action == "create":
            parts = [
                f"Made policy {policy_id} ({values.get('name')}) based on {values.get('based_on')}"
            ]
            if values.get("block"):
                parts.append(f"also blocking {', '.join(values['block'])}")
            if values.get("allow"):
                parts.append(f"allowing {', '.join(values['allow'])}")
            return "; ".join(parts), why, link
        if entry.action == "delete":
            return f"Removed policy {policy_id} ({values.get('name')})", why, None
        return f"Changed policy {policy_id}: {_fields(before, after)}", why, link

    def _request(self, entry: AuditEntry) -> UnblockRequest | None:
        key = entry.object_id or ""
        if key not in self._requests:
            row = self.session.scalars(
                select(UnblockRequest).where(UnblockRequest.id == int(key or 0))
            ).first()
            if row is None:
                return None
            self._requests[key] = row
        return self._requests[key]

    def _unblock_request(
        self,
        entry: AuditEntry,
        values: Mapping[str, Any],
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        why: str,
    ) -> tuple[str, str, str | None]:
        number = entry.object_id
        link = f"/filtering/requests/{number}"
        row = self._request(entry)
        target = values.get("target") or (row.target if row else "?")
        groups = _groups(values.get("groups") or (row.groups if row else []))
        if entry.action == "create":
            what = (
                f"{values.get('requested_by')} asked to unblock {target} for {groups}, "
                f"{_when(values.get('starts_at'), self.zone)} to {_when(values.get('ends_at'), self.zone)} "
                f"(request #{number})"
            )
            return what, why or str(values.get("reason") or ""), link
        state = after.get("state")
        if state == "approved":
            what = (
                f"Approved exception #{number}: {target} for {groups}, "
                f"{_when(row.starts_at.isoformat() if row else None, self.zone)} to "
                f"{_when(row.ends_at.isoformat() if row else None, self.zone)}"
            )
            risk = str(after.get("risk_assessment") or "")
            note = str(after.get("decision_note") or "")
            return (
                what,
                why or f"Risk assessment: {risk}" + (f" Note: {note}" if note else ""),
                link,
            )
        if state == "refused":
            what = f"Refused request #{number} to unblock {target}"
            risk = str(after.get("risk_assessment") or "")
            return (
                what,
                why or f"{after.get('decision_note') or ''} (risk assessment: {risk})",
                link,
            )
        if state == "active":
            return (
                f"Exception #{number} for {target} began ({groups})",
                why or "its approved time began",
                link,
            )
        if state == "lapsed":
            what = f"Exception #{number} for {target} ended on time ({groups})"
            return what, why or "its approved time ended: back to the normal filter (000 §5)", link
        if state == "revoked":
            return (
                f"Exception #{number} for {target} was revoked early",
                why or str(after.get("end_reason") or ""),
                link,
            )
        if state == "withdrawn":
            return (
                f"Request #{number} for {target} was withdrawn",
                why or str(after.get("end_reason") or ""),
                link,
            )
        if "warned_at" in after:
            what = f"Pre-warning sent for exception #{number} ({target}, {groups})"
            return what, why or "000 §5: filtering is removed with pre-warning only", link
        return f"Changed request #{number}: {_fields(before, after)}", why, link

    def _school_filter_settings(
        self,
        entry: AuditEntry,
        values: Mapping[str, Any],
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        why: str,
    ) -> tuple[str, str, str | None]:
        parts = []
        if "approver_role" in after:
            try:
                role = Role(str(after["approver_role"])).label
            except ValueError:
                role = str(after["approver_role"])
            parts.append(f"unblock requests are approved by the {role}")
        if "warn_minutes" in after:
            parts.append(f"pre-warning {after['warn_minutes']} minutes before an exception")
        if "max_days" in after:
            parts.append(f"exceptions last at most {after['max_days']} days")
        what = "Filter settings: " + ("; ".join(parts) or _fields(before, after))
        return what, why, "/filtering/unblock-settings"


def _fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    shown = [
        f"{name.replace('_', ' ')} {before.get(name)!s} → {after.get(name)!s}"
        for name in sorted(set(after) - _BOOKKEEPING)
    ]
    return "; ".join(shown) or "no visible change"
