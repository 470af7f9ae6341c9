"""Subject access: everything esafety holds about one person (issue 5 §8; UK GDPR Art. 15;
STANDARDS R13).

:func:`export` gathers, for a pupil, a member of staff or a parent: their directory record
(names, date of birth, roles, groups, parents or children, flags, restrictions, access
grants), their account without its secrets (no password hash, no two-step secret, no
token or recovery-code hash: dates and counts only), the safeguarding concerns they are
linked to with every entry, step and note, the concerns they raised or wrote in (their
number and kind), their break-glass reads, the filter's sign-ins and logged decisions for
them, the audit trail about them and of what they did, and the rows any other table keeps
about them. With ``redact_third_parties`` every other person becomes "[third party N]"
(:mod:`esafety.safeguarding.redaction`), and the list of what was redacted is kept apart
for the data protection officer to check.

Concerns are read through :func:`reading.open_concern` as the session's actor, so each read
is in the audit trail and the access rules hold: a DSL's export leaves out allegations
about staff, which only the headteacher reads, and says so whether or not there are any.
The export itself is audited (``subject_access_export``).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from esafety import audit
from esafety.audit import Actor, AuditEntry
from esafety.db import Base, Database, utcnow
from esafety.directory.model import (
    AccessGrant,
    Group,
    GroupMembership,
    ParentLink,
    Person,
    PersonKind,
    PupilFlag,
    School,
    TechnologyRestriction,
)
from esafety.directory.service import require
from esafety.errors import InvalidInput, NotFound
from esafety.filtering.model import ClientSignIn
from esafety.safeguarding import subject_access_summary
from esafety.safeguarding.catalogue import kind as kind_info
from esafety.safeguarding.model import (
    BreakGlassRead,
    Concern,
    ConcernAttachment,
    ConcernEntry,
    ConcernPerson,
    StepEntry,
)
from esafety.safeguarding.reading import actor_name, concern_access, current_actor, open_concern
from esafety.safeguarding.redaction import Redactor, ThirdParty
from esafety.sealing import Sealed
from esafety.sealing.keyring import replace_private_file
from esafety.security.model import Account, ApiToken, PasswordHistory, RecoveryCode, WebSession
from esafety.security.roles import Permission

__all__ = ["DECISIONS_LIMIT", "SubjectAccessExport", "Written", "actor_for", "export"]

#: Logged filter decisions included (the newest); the export says when there were more.
DECISIONS_LIMIT = 50_000
ARCHIVE_JSON = "subject-access.json"
ARCHIVE_HTML = "subject-access.html"
#: Tables read here by name, or never exported row by row (their secrets, or their
#: sealed safeguarding content, which only the reading rules may open).
_HANDLED = frozenset(
    {
        "person", "person_role", "group_membership", "parent_link", "pupil_flag",
        "technology_restriction", "access_grant", "account", "password_history",
        "recovery_code", "api_token", "web_session", "client_sign_in", "audit_entry",
    }
)  # fmt: skip
_SECRET_WORDS = ("hash", "secret", "token", "csrf", "password")
_KIND_WORDS = {
    PersonKind.PUPIL: "pupil",
    PersonKind.STAFF: "member of staff",
    PersonKind.GOVERNOR: "governor",
    PersonKind.VOLUNTEER: "volunteer",
    PersonKind.VISITOR: "visitor",
    PersonKind.PARENT: "parent or carer",
}


@dataclass(frozen=True)
class Written:
    archive: Path
    #: The list of redactions for the data protection officer (None when not redacted).
    review: Path | None


@dataclass
class SubjectAccessExport:
    username: str
    document: dict[str, Any]
    review: dict[str, Any] | None

    def write(self, to: Path) -> Written:
        """The zip (JSON and a readable HTML page) at ``to`` (mode 0600), and beside it the
        list of redactions for the data protection officer; an existing file is kept."""
        target = to.expanduser()
        review_path = target.with_name(f"{target.stem}-redactions-for-review.json")
        for path in (target, review_path) if self.review is not None else (target,):
            if path.exists():
                raise InvalidInput(f"{path} already exists: choose another file name")
        if not target.parent.is_dir():
            raise InvalidInput(f"folder {target.parent} does not exist: create it first")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(ARCHIVE_JSON, subject_access_summary.as_json(self.document))
            archive.writestr(ARCHIVE_HTML, subject_access_summary.as_html(self.document))
        replace_private_file(target, buffer.getvalue())
        if self.review is None:
            return Written(target, None)
        replace_private_file(review_path, subject_access_summary.as_json(self.review).encode())
        return Written(target, review_path)


# -- who acts -----------------------------------------------------------------------


def actor_for(db: Database, username: str, by: str | None) -> Actor:
    """The actor for an export from the command line: the member of staff ``by`` (with the
    roles they hold) or the server's own authority, in the subject's school."""
    with db.session(Actor.system("cli")) as session:
        subject = _by_username(session, username)
        if by is None:
            return Actor.system("cli", school_id=subject.school_id)
        maker = _by_username(session, by)
        if maker.school_id != subject.school_id:
            raise NotFound(f"no member of staff {by!r} at {username}'s school")
        return Actor(
            maker.username, maker.id, maker.school_id, frozenset(str(r) for r in maker.role_ids)
        )


def _by_username(session: Session, username: str) -> Person:
    person = session.scalars(select(Person).where(Person.username == username.strip())).first()
    if person is None:
        raise NotFound(f"no one with username {username!r} (see: esafety users list)")
    return person


# -- the export ---------------------------------------------------------------------


def export(
    session: Session,
    username: str,
    *,
    redact_third_parties: bool = False,
    data_dir: Path | None = None,
    now: datetime | None = None,
) -> SubjectAccessExport:
    """Everything held about ``username`` (of the session's school), as the session's actor."""
    require(
        session,
        Permission.EXPORT_SUBJECT_ACCESS,
        "export everything held about a person (subject access)",
    )
    subject = _by_username(session, username)
    if session.info.get("school_id") not in (None, subject.school_id):
        raise NotFound(f"no one with username {username!r} at this school")
    concerns = _safeguarding(session, subject)
    document: dict[str, Any] = {
        "person": _directory(session, subject),
        "account": _account(session, subject),
        "safeguarding": concerns,
        "filtering": _filtering(session, subject, data_dir),
        "audit_trail": _audit_trail(session, subject),
        "other_records": _other_records(session, subject),
    }
    about = _about_export(session, subject, now or utcnow(), redact_third_parties)
    review = None
    if redact_third_parties:
        redactor = _redactor(session, subject, concerns, _former_names(document))
        document = redactor.document(document)
        about["made_by"] = redactor.text(about["made_by"], "export.made_by")
        review = redactor.review()
    document = {"export": about} | document
    audit.record(
        session,
        "subject_access_export",
        "person",
        subject.id,
        after={
            "redacted": redact_third_parties,
            "concerns": [c["id"] for c in concerns["concerns"]],
        },
    )
    return SubjectAccessExport(subject.username, document, review)


def _about_export(
    session: Session, subject: Person, made: datetime, redacted: bool
) -> dict[str, Any]:
    actor = current_actor(session)
    school = session.get(School, subject.school_id)
    as_person = actor is not None and actor.person_id is not None
    scope = (
        "It holds the safeguarding records that its maker may read: allegations about "
        "members of staff are read only by the headteacher (or the chair of governors when "
        "about the headteacher), so an export made by anyone else never includes them, "
        "whether or not there are any."
        if as_person
        else "It was made on the server's own authority and holds every safeguarding record."
    )
    return {
        "subject": subject.username,
        "name": subject.display_name,
        "school": school.name if school is not None else None,
        "made_at": made.isoformat(timespec="seconds"),
        "made_by": actor_name(session),
        "third_parties_redacted": redacted,
        "for_review": (
            "For the data protection officer to review before it is released: exemptions "
            "in the Data Protection Act 2018 (for example Schedule 3 Part 5, child abuse "
            "data, and information that would identify others) may apply. " + scope
        ),
        "not_included": [
            "attachments to concerns (screenshots, documents) are listed, not included: "
            "review them separately, they cannot be redacted automatically",
            "password hashes, two-step secrets, API token and recovery-code hashes: "
            "security data, not information about the person; they never leave esafety",
        ],
    }


def _when(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


# -- the directory and the account --------------------------------------------------


def _who(person: Person | None) -> dict[str, Any]:
    if person is None:
        return {"name": "(no longer in the directory)"}
    return {"name": person.display_name, "username": person.username}


def _directory(session: Session, subject: Person) -> dict[str, Any]:
    group_rows = session.execute(
        select(Group, GroupMembership.role)
        .join(GroupMembership, GroupMembership.group_id == Group.id)
        .where(GroupMembership.person_id == subject.id)
        .order_by(Group.kind, Group.name)
    ).all()
    parents = session.execute(
        select(ParentLink, Person)
        .join(Person, Person.id == ParentLink.parent_id)
        .where(ParentLink.child_id == subject.id)
        .order_by(ParentLink.priority)
    ).all()
    children = session.execute(
        select(ParentLink, Person)
        .join(Person, Person.id == ParentLink.child_id)
        .where(ParentLink.parent_id == subject.id)
        .order_by(Person.legal_last_name)
    ).all()

    def link(row: ParentLink, other: Person) -> dict[str, Any]:
        return _who(other) | {
            "relationship": row.relationship_to_child,
            "parental_responsibility": row.parental_responsibility,
            "contact_order": row.priority,
        }

    return {
        "kind": subject.kind.value,
        "username": subject.username,
        "legal_first_name": subject.legal_first_name,
        "legal_last_name": subject.legal_last_name,
        "preferred_first_name": subject.preferred_first_name,
        "preferred_last_name": subject.preferred_last_name,
        "date_of_birth": subject.date_of_birth.isoformat() if subject.date_of_birth else None,
        "upn": subject.upn,
        "year_group": subject.year_group.value if subject.year_group else None,
        "registration_group": subject.registration_group.name
        if subject.registration_group
        else None,
        "job_title": subject.job_title,
        "email": subject.email,
        "phone": subject.phone,
        "left_on": subject.left_on.isoformat() if subject.left_on else None,
        "roster_id": subject.sourced_id,
        "source": subject.source.value,
        "roles": [
            {"role": r.role.label, "source": r.source.value, "since": _when(r.granted_at)}
            for r in sorted(subject.roles, key=lambda r: r.role.value)
        ],
        "groups": [{"name": g.name, "kind": g.kind.value, "as": role} for g, role in group_rows],
        "parents_and_carers": [link(row, other) for row, other in parents],
        "children": [link(row, other) for row, other in children],
        # Loaded through the ORM: each flag read is in the audit trail (PupilFlag).
        "vulnerability_flags": [
            {
                "flag": f.flag.label,
                "note": f.note,
                "set_at": _when(f.set_at),
                "removed_at": _when(f.removed_at),
            }
            for f in session.scalars(
                select(PupilFlag).where(PupilFlag.person_id == subject.id).order_by(PupilFlag.id)
            )
        ],
        "technology_restrictions": [
            {
                "reason": t.reason,
                "review_on": t.review_on.isoformat(),
                "recorded_at": _when(t.recorded_at),
                "ended_on": t.ended_on.isoformat() if t.ended_on else None,
            }
            for t in session.scalars(
                select(TechnologyRestriction)
                .where(TechnologyRestriction.person_id == subject.id)
                .order_by(TechnologyRestriction.id)
            )
        ],
        "access_granted": [
            {
                "system": a.system,
                "granted_on": a.granted_on.isoformat(),
                "revoked_on": a.revoked_on.isoformat() if a.revoked_on else None,
                "note": a.note,
            }
            for a in session.scalars(
                select(AccessGrant)
                .where(AccessGrant.person_id == subject.id)
                .order_by(AccessGrant.id)
            )
        ],
    }


def _account(session: Session, subject: Person) -> dict[str, Any]:
    # Columns only: the secrets are never loaded, so they cannot slip into the export.
    row = session.execute(
        select(
            Account.password_hash.is_not(None).label("password_set"),
            Account.password_changed_at,
            Account.must_change_password,
            Account.totp_enrolled_at,
            Account.failed_attempts,
            Account.locked_until,
            Account.disabled,
            Account.last_sign_in_at,
        ).where(Account.person_id == subject.id)
    ).first()
    if row is None:
        return {"has_account": False}
    codes = session.execute(
        select(RecoveryCode.used_at).where(RecoveryCode.person_id == subject.id)
    ).all()
    return {
        "has_account": True,
        "password_set": bool(row.password_set),
        "password_changed_at": _when(row.password_changed_at),
        "must_change_password": row.must_change_password,
        "two_step_enrolled_at": _when(row.totp_enrolled_at),
        "failed_sign_in_attempts": row.failed_attempts,
        "locked_until": _when(row.locked_until),
        "disabled": row.disabled,
        "last_sign_in_at": _when(row.last_sign_in_at),
        "password_changes": [
            _when(at)
            for at in session.scalars(
                select(PasswordHistory.set_at)
                .where(PasswordHistory.person_id == subject.id)
                .order_by(PasswordHistory.set_at)
            )
        ],
        "recovery_codes": {
            "issued": len(codes),
            "used": sum(1 for c in codes if c.used_at is not None),
        },
        "api_tokens": [
            {
                "name": t.name,
                "created_at": _when(t.created_at),
                "last_used_at": _when(t.last_used_at),
                "revoked_at": _when(t.revoked_at),
            }
            for t in session.execute(
                select(
                    ApiToken.name, ApiToken.created_at, ApiToken.last_used_at, ApiToken.revoked_at
                )
                .where(ApiToken.person_id == subject.id)
                .order_by(ApiToken.created_at)
            )
        ],
        "sign_in_sessions": [
            {
                "started_at": _when(s.created_at),
                "last_seen_at": _when(s.last_seen_at),
                "ended_at": _when(s.ended_at),
                "address": s.address,
            }
            for s in session.execute(
                select(
                    WebSession.created_at,
                    WebSession.last_seen_at,
                    WebSession.ended_at,
                    WebSession.address,
                )
                .where(WebSession.person_id == subject.id)
                .order_by(WebSession.created_at)
            )
        ],
    }


# -- safeguarding -------------------------------------------------------------------


def _linked_ids(session: Session, subject: Person) -> list[int]:
    return sorted(
        set(
            session.scalars(
                select(ConcernPerson.concern_id).where(ConcernPerson.person_id == subject.id)
            )
        )
    )


def _safeguarding(session: Session, subject: Person) -> dict[str, Any]:
    linked = _linked_ids(session, subject)
    exported = []
    for concern_id in linked:
        concern = session.get(Concern, concern_id)
        # Only what the actor may read, and each read audited; the rest is not mentioned,
        # so the export does not reveal that a concern the maker cannot read exists.
        if concern is None or not concern_access(session, concern).can_read:
            continue
        exported.append(_concern(session, open_concern(session, concern_id).concern, subject))
    wrote = set(
        session.scalars(select(Concern.id).where(Concern.raised_by_id == subject.id))
    ) | set(
        session.scalars(
            select(ConcernEntry.concern_id).where(ConcernEntry.made_by_id == subject.id)
        )
    )
    wrote |= set(
        session.scalars(select(StepEntry.concern_id).where(StepEntry.recorded_by_id == subject.id))
    )
    wrote |= set(
        session.scalars(
            select(ConcernAttachment.concern_id).where(ConcernAttachment.added_by_id == subject.id)
        )
    )
    recorded = []
    for concern_id in sorted(wrote - set(linked)):
        concern = session.get(Concern, concern_id)
        if concern is None or not concern_access(session, concern).can_read:
            continue
        recorded.append(
            {
                "id": concern.id,
                "kind": kind_info(concern.current_kind).title,
                "recorded_at": _when(concern.recorded_at),
                "raised_it": concern.raised_by_id == subject.id,
            }
        )
    glass = []
    for row in session.scalars(
        select(BreakGlassRead)
        .where(BreakGlassRead.person_id == subject.id)
        .order_by(BreakGlassRead.at)
    ):
        concern = session.get(Concern, row.concern_id)
        if concern is not None and concern_access(session, concern).can_read:
            glass.append({"concern": row.concern_id, "at": _when(row.at), "reason": row.reason})
    return {
        "concerns": exported,
        "concerns_recorded_or_written_in": recorded,
        "break_glass_reads": glass,
    }


def _concern(session: Session, concern: Concern, subject: Person) -> dict[str, Any]:
    info = kind_info(concern.current_kind)
    people = {p.id: p for p in concern.people}
    persons = {
        p.id: p
        for p in session.scalars(
            select(Person).where(
                Person.id.in_([c.person_id for c in concern.people if c.person_id])
            )
        )
    }
    current = {p.id for p in concern.linked}

    def who(row: ConcernPerson) -> dict[str, Any]:
        if row.person_id is None:
            found: dict[str, Any] = {
                "name": row.outside_name,
                "description": row.outside_description,
                "online_handle": row.outside_handle,
            }
        else:
            found = _who(persons.get(row.person_id))
            if row.person_id == subject.id:
                found["is_the_subject"] = True
        return found | {"part": row.part.value}

    def title(step_id: str) -> str:
        return next((s.title for s in info.steps if s.id == step_id), step_id)

    return {
        "id": concern.id,
        "kind": info.title,
        "kind_as_recorded": kind_info(concern.kind).title,
        "happened_at": _when(concern.current_happened_at),
        "noticed_at": _when(concern.noticed_at),
        "recorded_at": _when(concern.recorded_at),
        "raised_by": concern.raised_by,
        "location": concern.location.value if concern.location else None,
        "location_detail": concern.location_detail,
        "narrative": concern.narrative,
        "action_taken": concern.action_taken,
        "dsl_told_in_person": concern.dsl_told_in_person,
        "status": concern.status.value,
        "outcome": concern.outcome,
        "closed_at": _when(concern.closed_at),
        "closed_by": concern.closed_by,
        "people": [who(p) | {"still_linked": p.id in current} for p in concern.people],
        "entries": [
            {
                "what": e.kind.value,
                "at": _when(e.made_at),
                "by": e.made_by,
                "text": e.text,
                "reason": e.reason,
                "corrects": e.field
                or (f"entry {e.corrects_entry_id}" if e.corrects_entry_id else None),
                "kind_from": kind_info(e.old_kind).title if e.old_kind else None,
                "kind_to": kind_info(e.new_kind).title if e.new_kind else None,
                "happened_at_from": _when(e.old_happened_at),
                "happened_at_to": _when(e.new_happened_at),
                "person": who(people[e.concern_person_id])
                if e.concern_person_id in people
                else None,
            }
            for e in concern.entries
        ],
        "steps": [
            {
                "step": title(s.step_id),
                "done_by": s.done_by,
                "done_at": _when(s.done_at),
                "outcome": s.outcome.value,
                "choice": s.choice,
                "rationale": s.rationale,
                "note": s.note,
                "reference": s.reference,
                "correction": s.correction_reason if s.corrects else None,
            }
            for s in concern.steps
        ],
        "attachments": [
            {
                "file_name": a.filename,
                "type": a.content_type,
                "size": a.size,
                "added_by": a.added_by,
                "added_at": _when(a.added_at),
            }
            for a in concern.attachments
        ],
    }


# -- filtering, the audit trail, other tables ---------------------------------------


def _filtering(session: Session, subject: Person, data_dir: Path | None) -> dict[str, Any]:
    sign_ins = [
        {
            "address": s.client,
            "source": s.source.value,
            "signed_in_at": _when(s.signed_in_at),
            "expires_at": _when(s.expires_at),
        }
        for s in session.scalars(
            select(ClientSignIn)
            .where(ClientSignIn.person_id == subject.id)
            .order_by(ClientSignIn.signed_in_at)
        )
    ]
    found: dict[str, Any] = {"sign_ins": sign_ins}
    if data_dir is None:
        found["decisions"] = None
        return found
    from esafety.filtering import log as decision_log

    decisions = decision_log.query(data_dir, person=subject.username, limit=DECISIONS_LIMIT)
    found["decisions"] = [d.as_dict() for d in decisions]
    if len(decisions) >= DECISIONS_LIMIT:
        found["decisions_note"] = (
            f"the newest {DECISIONS_LIMIT} decisions: ask for the rest with "
            "esafety filter log --person"
        )
    return found


def _row_ids(session: Session, subject: Person) -> dict[str, list[str]]:
    """Audit object ids of the person's own rows, by table."""
    tables: dict[str, Any] = {
        "pupil_flag": PupilFlag.id,
        "technology_restriction": TechnologyRestriction.id,
        "access_grant": AccessGrant.id,
        "api_token": ApiToken.id,
        "password_history": PasswordHistory.id,
        "recovery_code": RecoveryCode.id,
        "client_sign_in": ClientSignIn.id,
    }
    found = {}
    for name, column in tables.items():
        owner = column.class_.person_id
        ids = [str(i) for i in session.execute(select(column).where(owner == subject.id)).scalars()]
        if ids:
            found[name] = ids
    return found


def _audit_trail(session: Session, subject: Person) -> dict[str, Any]:
    me = str(subject.id)
    about = [
        and_(AuditEntry.object_type.in_(("person", "account")), AuditEntry.object_id == me),
        and_(AuditEntry.object_type == "person_role", AuditEntry.object_id.like(f"{me}:%")),
        and_(AuditEntry.object_type == "group_membership", AuditEntry.object_id.like(f"%:{me}")),
        and_(
            AuditEntry.object_type == "parent_link",
            or_(AuditEntry.object_id.like(f"{me}:%"), AuditEntry.object_id.like(f"%:{me}")),
        ),
    ]
    about += [
        and_(AuditEntry.object_type == table, AuditEntry.object_id.in_(ids))
        for table, ids in _row_ids(session, subject).items()
    ]
    return {
        "about_them": [
            {
                "at": _when(e.at),
                "by": e.actor,
                "action": e.action,
                "record": e.object_type,
                "before": _without_secrets(e.before),
                "after": _without_secrets(e.after),
                "reason": e.reason,
            }
            for e in session.scalars(select(AuditEntry).where(or_(*about)).order_by(AuditEntry.seq))
        ],
        # What they did: which record, not its content (that is other people's).
        "by_them": [
            {
                "at": _when(e.at),
                "action": e.action,
                "record": e.object_type,
                "record_id": e.object_id,
                "address": e.address,
            }
            for e in session.scalars(
                select(AuditEntry).where(AuditEntry.actor_id == subject.id).order_by(AuditEntry.seq)
            )
        ],
    }


def _other_records(session: Session, subject: Person) -> dict[str, Any]:
    """Rows other slices keep about the person (any table with a foreign key to them that
    is not read above). A table with sealed columns holds safeguarding content only the
    reading rules may open: it is named with its count, for the DSL to review by hand."""
    person_table = Person.__table__
    found: dict[str, Any] = {}
    for table in Base.metadata.sorted_tables:
        if table.name in _HANDLED or table.name.startswith("concern"):
            continue
        columns = [fk.parent for fk in table.foreign_keys if fk.column.table is person_table]
        if not columns:
            continue
        where = or_(*(c == subject.id for c in columns))
        if any(isinstance(c.type, Sealed) for c in table.columns):
            rows = session.execute(select(*table.primary_key.columns).where(where)).all()
            if rows:
                found[table.name] = {
                    "rows": len(rows),
                    "note": "sealed safeguarding records: not exported here, review by hand",
                }
            continue
        kept = [c for c in table.columns if not _secret(c.name)]
        rows = session.execute(select(*kept).where(where)).all()
        if rows:
            found[table.name] = [
                {c.name: audit.plain(v) for c, v in zip(kept, row, strict=True)} for row in rows
            ]
    return found


def _without_secrets(values: dict[str, Any] | None) -> dict[str, Any] | None:
    # The trail records a secret only as changed; even the column's name is left out here.
    if values is None:
        return None
    return {k: v for k, v in values.items() if not _secret(k) and v != audit.SECRET_MARK}


def _secret(name: str) -> bool:
    return any(word in name.lower() for word in _SECRET_WORDS)


# -- redaction ----------------------------------------------------------------------


_NAME_FIELDS = (
    "legal_first_name",
    "legal_last_name",
    "preferred_first_name",
    "preferred_last_name",
)


def _former_names(document: dict[str, Any]) -> list[str]:
    """The subject's names as the audit trail remembers them (a surname before a change)."""
    found = []
    for entry in document["audit_trail"]["about_them"]:
        if entry["record"] != "person":
            continue
        for values in (entry["before"], entry["after"]):
            found += [str(values[k]) for k in _NAME_FIELDS if values and values.get(k)]
    return found


def _redactor(
    session: Session, subject: Person, concerns: dict[str, Any], former: list[str]
) -> Redactor:
    own = [str(getattr(subject, k) or "") for k in _NAME_FIELDS] + former
    redactor = Redactor(own)
    close: set[int] = set()
    for concern in concerns["concerns"]:
        for row in session.scalars(
            select(ConcernPerson).where(ConcernPerson.concern_id == concern["id"])
        ):
            if row.person_id is not None:
                close.add(row.person_id)
            elif row.outside_name or row.outside_handle or row.outside_description:
                name = row.outside_name or ""
                redactor.add(
                    ThirdParty(
                        f"outside:{row.id}",
                        "someone outside the school",
                        names=(name,) if name else (),
                        words=tuple(name.split()[:1] + name.split()[1:][-1:]) if name else (),
                        ids=tuple(x for x in (row.outside_handle, row.outside_description) if x),
                    )
                )
    close |= set(
        session.scalars(select(ParentLink.parent_id).where(ParentLink.child_id == subject.id))
    )
    close |= set(
        session.scalars(select(ParentLink.child_id).where(ParentLink.parent_id == subject.id))
    )
    # Everyone of the school: the linked and the staff by their names alone too, the rest
    # by full name (a first name alone is too common a word to take from every pupil).
    for person in session.scalars(select(Person).order_by(Person.id)):
        if person.id == subject.id:
            continue
        adult = person.kind not in (PersonKind.PUPIL, PersonKind.PARENT)
        names = {person.display_name, f"{person.legal_first_name} {person.legal_last_name}"}
        words = {
            person.first_name,
            person.last_name,
            person.legal_first_name,
            person.legal_last_name,
        }
        redactor.add(
            ThirdParty(
                f"person:{person.id}",
                _KIND_WORDS.get(person.kind, person.kind.value),
                names=tuple(sorted(names)),
                words=tuple(sorted(words)) if adult or person.id in close else (),
                ids=tuple(x for x in (person.username, person.upn, person.email) if x),
            )
        )
    return redactor
