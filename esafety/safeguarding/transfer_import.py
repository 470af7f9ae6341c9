"""Receiving a child-protection file that another esafety made (issue 5 §5).

The receiving DSL imports the file with the passphrase the sending DSL gave them. The
pupil is found by UPN (with the date of birth checked), or added from the file when the
DSL asks. Each concern is recorded here as it was there: its words, its people (the
school's own pupil linked; everyone else as described in the file), every note and
change, every step, every attachment (sealed again with this installation's key); the
names and times are the sending school's, marked with the school's name, and a note says
when and from whom it was received. The import is the receipt: it is kept
(:class:`TransferImport`), and its words are given to tell the sending school.

A file is imported once per school; a second import is refused, naming the first. The
whole file is checked before anything is written, and everything is written in the
caller's one transaction: a bad file leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety import audit
from esafety.db import utcnow
from esafety.directory.calendar import school_date
from esafety.directory.model import Person, PersonKind, PersonRole, Source
from esafety.directory.service import current_school, username_taken
from esafety.directory.usernames import unique_username
from esafety.directory.years import YearGroup
from esafety.errors import InvalidInput
from esafety.safeguarding.kinds import IncidentKind
from esafety.safeguarding.model import (
    Concern,
    ConcernAttachment,
    ConcernEntry,
    ConcernPerson,
    ConcernStatus,
    EntryKind,
    Location,
    Part,
    StepEntry,
)
from esafety.safeguarding.procedures import StepOutcome
from esafety.safeguarding.reading import current_actor
from esafety.safeguarding.transfer import handles_cp_files, require_cp_role, who
from esafety.safeguarding.transfer_bundle import Bundle, BundleRefused, open_bundle
from esafety.safeguarding.transfer_model import ImportedConcern, TransferImport
from esafety.sealing import SealedFiles
from esafety.security.roles import Role

__all__ = ["MAX_FILE_BYTES", "Received", "import_file", "imports"]

#: A file of many concerns with screenshots; far more is not a child-protection file.
MAX_FILE_BYTES = 500 * 1024 * 1024

E = TypeVar("E", bound=StrEnum)


@dataclass(frozen=True)
class Received:
    file: TransferImport
    pupil: Person
    #: What to tell the sending school's DSL, so they can record the receipt.
    receipt: str


def _unreadable(where: str, problem: str) -> BundleRefused:
    return BundleRefused(
        f"the records in this file are not as this esafety reads them ({where}: {problem}): "
        "nothing was imported. If the sending school runs a newer esafety, upgrade esafety "
        "here and import it again."
    )


class _Fields:
    """Typed reads of one object of the file's records, each refusal naming the place."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, dict):
            raise _unreadable(where, "not an object")
        self.data: dict[str, Any] = data
        self.where = where

    def _get(self, key: str, kind: type | tuple[type, ...], required: bool) -> Any:
        value = self.data.get(key)
        if value is None:
            if required:
                raise _unreadable(f"{self.where}.{key}", "missing")
            return None
        if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
            raise _unreadable(f"{self.where}.{key}", f"{type(value).__name__} is not expected")
        return value

    def text(self, key: str, *, required: bool = False, limit: int | None = None) -> str | None:
        value: str | None = self._get(key, str, required)
        if value is not None and limit is not None:
            value = value[:limit]
        return value

    def name(self, key: str, suffix: str) -> str:
        return f"{self.text(key, required=True)} ({suffix})"[:200]

    def integer(self, key: str, *, required: bool = True) -> int | None:
        value: int | None = self._get(key, int, required)
        return value

    def flag(self, key: str) -> bool:
        return bool(self._get(key, bool, False))

    def moment(self, key: str, *, required: bool = False) -> datetime | None:
        value = self.text(key, required=required)
        if value is None:
            return None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise _unreadable(f"{self.where}.{key}", f"{value!r} is not a time") from None
        if moment.tzinfo is None:
            raise _unreadable(f"{self.where}.{key}", f"{value!r} has no time zone")
        return moment

    def day(self, key: str) -> date | None:
        value = self.text(key)
        try:
            return date.fromisoformat(value) if value is not None else None
        except ValueError:
            raise _unreadable(f"{self.where}.{key}", f"{value!r} is not a date") from None

    def choice(self, key: str, cls: type[E], *, required: bool = True) -> E | None:
        value = self.text(key, required=required)
        if value is None:
            return None
        try:
            return cls(value)
        except ValueError:
            raise _unreadable(
                f"{self.where}.{key}", f"{value!r} is not one this esafety knows"
            ) from None

    def each(self, key: str) -> list[_Fields]:
        values = self._get(key, list, False) or []
        return [_Fields(item, f"{self.where}.{key}[{n}]") for n, item in enumerate(values)]

    def must_text(self, key: str, *, limit: int | None = None) -> str:
        value = self.text(key, required=True, limit=limit)
        if value is None:  # pragma: no cover - required above
            raise _unreadable(f"{self.where}.{key}", "missing")
        return value

    def must_choice(self, key: str, cls: type[E]) -> E:
        value = self.choice(key, cls)
        if value is None:  # pragma: no cover - required above
            raise _unreadable(f"{self.where}.{key}", "missing")
        return value

    def required_moment(self, key: str) -> datetime:
        moment = self.moment(key, required=True)
        if moment is None:  # pragma: no cover - required above
            raise _unreadable(f"{self.where}.{key}", "missing")
        return moment


# -- the pupil -------------------------------------------------------------------------


def _pupil_names(pupil: _Fields) -> str:
    first = pupil.text("preferred_first_name") or pupil.text("legal_first_name", required=True)
    last = pupil.text("preferred_last_name") or pupil.text("legal_last_name", required=True)
    return f"{first} {last}"


def _match_pupil(session: Session, pupil: _Fields, *, create: bool) -> tuple[Person, bool]:
    upn = (pupil.text("upn") or "").replace(" ", "").upper() or None
    born = pupil.day("date_of_birth")
    name = _pupil_names(pupil)
    described = f"{name}, born {born:%d %B %Y}" if born else name
    if upn is not None:
        found = session.scalars(select(Person).where(Person.upn == upn)).first()
        if found is not None:
            if found.kind is not PersonKind.PUPIL:
                raise InvalidInput(f"UPN {upn} belongs to {found.display_name}, who is not a pupil")
            if born is not None and found.date_of_birth is not None and born != found.date_of_birth:
                raise InvalidInput(
                    f"UPN {upn} is {found.display_name} here, born "
                    f"{found.date_of_birth:%d %B %Y}, but the file is for {described}: check "
                    "the pupil with the sending school; nothing was imported"
                )
            return found, False
    if not create:
        held = f"UPN {upn}" if upn else "no UPN"
        raise InvalidInput(
            f"no pupil of this school has {held}: the file is for {described}. Add the pupil "
            "(from the roster, or choose to add the pupil from the file) and import again; "
            "nothing was imported"
        )
    return _add_pupil(session, pupil, upn, born), True


def _add_pupil(session: Session, pupil: _Fields, upn: str | None, born: date | None) -> Person:
    first = pupil.text("legal_first_name", required=True, limit=100) or ""
    last = pupil.text("legal_last_name", required=True, limit=100) or ""
    year_text = pupil.text("year_group")
    year = None
    if year_text:
        try:
            year = YearGroup.parse(year_text)
        except ValueError:
            year = None
    school_id = int(session.info["school_id"])
    person = Person(
        school_id=school_id,
        kind=PersonKind.PUPIL,
        username=unique_username(first, last, lambda n: username_taken(session, n)),
        legal_first_name=first,
        legal_last_name=last,
        preferred_first_name=pupil.text("preferred_first_name", limit=100),
        preferred_last_name=pupil.text("preferred_last_name", limit=100),
        date_of_birth=born,
        upn=upn,
        year_group=year,
        source=Source.MANUAL,
        roles=[PersonRole(school_id=school_id, role=Role.PUPIL, source=Source.MANUAL)],
    )
    session.add(person)
    session.flush()
    return person


# -- checking the whole file first -----------------------------------------------------


def _check(bundle: Bundle) -> tuple[_Fields, _Fields, list[_Fields]]:
    """Read every field the import needs, so a bad one is refused before any write."""
    records = _Fields(bundle.records, "cp-file")
    school = _Fields(records.data.get("school"), "school")
    school.text("name", required=True)
    pupil = _Fields(records.data.get("pupil"), "pupil")
    _pupil_names(pupil)
    pupil.day("date_of_birth")
    concerns = records.each("concerns")
    for concern in concerns:
        concern.integer("id")
        concern.choice("kind", IncidentKind)
        concern.choice("status", ConcernStatus)
        concern.choice("location", Location, required=False)
        for key in ("happened_at", "noticed_at", "recorded_at"):
            concern.required_moment(key)
        concern.text("narrative", required=True)
        concern.text("raised_by", required=True)
        for person in concern.each("people"):
            person.integer("ref")
            person.choice("part", Part)
            person.required_moment("added_at")
        for entry in concern.each("entries"):
            entry.integer("ref")
            entry.choice("kind", EntryKind)
            entry.choice("new_kind", IncidentKind, required=False)
            entry.choice("old_kind", IncidentKind, required=False)
            entry.required_moment("made_at")
            entry.text("made_by", required=True)
        for step in concern.each("steps"):
            step.text("step_id", required=True)
            step.choice("outcome", StepOutcome)
            step.required_moment("done_at")
        for item in concern.each("attachments"):
            path = item.text("path", required=True)
            if path not in bundle.files:
                raise _unreadable(item.where, f"its file {path!r} is not in the file")
            item.text("content_type", required=True)
    return school, pupil, concerns


# -- writing ---------------------------------------------------------------------------


@dataclass
class _Writer:
    session: Session
    attachments: SealedFiles
    bundle: Bundle
    school: str
    pupil: Person
    imported: TransferImport
    put: list[str]
    now: datetime

    def concern(self, sent: _Fields) -> Concern:
        session, school = self.session, self.school
        concern = Concern(
            school_id=self.imported.school_id,
            kind=sent.must_choice("kind", IncidentKind),
            happened_at=sent.required_moment("happened_at"),
            noticed_at=sent.required_moment("noticed_at"),
            recorded_at=sent.required_moment("recorded_at"),
            raised_by_id=None,
            raised_by=sent.name("raised_by", school),
            location=sent.choice("location", Location, required=False),
            location_detail=sent.text("location_detail"),
            narrative=sent.must_text("narrative"),
            action_taken=sent.text("action_taken"),
            dsl_told_in_person=sent.flag("dsl_told_in_person"),
            status=sent.must_choice("status", ConcernStatus),
            outcome=sent.text("outcome"),
            closed_at=sent.moment("closed_at"),
            closed_by=f"{sent.text('closed_by')} ({school})"[:200]
            if sent.text("closed_by")
            else None,
        )
        session.add(concern)
        session.flush()
        people = {p.integer("ref"): self._person(concern, p) for p in sent.each("people")}
        entries: dict[int | None, int] = {}
        for entry in sent.each("entries"):
            entries[entry.integer("ref")] = self._entry(concern, entry, people, entries)
        for step in sent.each("steps"):
            self._step(concern, step)
        for item in sent.each("attachments"):
            self._attachment(concern, item)
        self._received_note(concern, sent)
        self.session.add(
            ImportedConcern(
                school_id=concern.school_id,
                import_id=self.imported.id,
                concern_id=concern.id,
                original_id=sent.integer("id") or 0,
                original_school=school,
            )
        )
        session.flush()
        return concern

    def _person(self, concern: Concern, sent: _Fields) -> int:
        ours = sent.flag("this_pupil")
        description = sent.text("description")
        link = ConcernPerson(
            school_id=concern.school_id,
            concern_id=concern.id,
            person_id=self.pupil.id if ours else None,
            part=sent.must_choice("part", Part),
            outside_name=None if ours else (sent.text("name") or None),
            outside_description=None if ours else description,
            outside_handle=None if ours else sent.text("handle"),
            added_at=sent.required_moment("added_at"),
            added_by=sent.name("added_by", self.school),
        )
        self.session.add(link)
        self.session.flush()
        return link.id

    def _entry(
        self,
        concern: Concern,
        sent: _Fields,
        people: dict[int | None, int],
        entries: dict[int | None, int],
    ) -> int:
        corrects = sent.integer("corrects", required=False)
        person = sent.integer("person", required=False)
        row = ConcernEntry(
            school_id=concern.school_id,
            concern_id=concern.id,
            kind=sent.must_choice("kind", EntryKind),
            text=sent.text("text"),
            reason=sent.text("reason"),
            corrects_entry_id=entries.get(corrects) if corrects is not None else None,
            field=sent.text("field", limit=40),
            new_kind=sent.choice("new_kind", IncidentKind, required=False),
            old_kind=sent.choice("old_kind", IncidentKind, required=False),
            new_happened_at=sent.moment("new_happened_at"),
            old_happened_at=sent.moment("old_happened_at"),
            concern_person_id=people.get(person) if person is not None else None,
            made_by_id=None,
            made_by=sent.name("made_by", self.school),
            made_at=sent.required_moment("made_at"),
        )
        self.session.add(row)
        self.session.flush()
        return row.id

    def _step(self, concern: Concern, sent: _Fields) -> None:
        self.session.add(
            StepEntry(
                school_id=concern.school_id,
                concern_id=concern.id,
                step_id=sent.must_text("step_id", limit=64),
                done_by=sent.name("done_by", self.school),
                done_at=sent.required_moment("done_at"),
                outcome=sent.must_choice("outcome", StepOutcome),
                choice=sent.text("choice", limit=64),
                rationale=sent.text("rationale"),
                note=sent.text("note"),
                reference=sent.text("reference"),
                corrects=sent.flag("corrects"),
                correction_reason=sent.text("correction_reason"),
                recorded_by_id=None,
                recorded_at=sent.moment("recorded_at") or sent.required_moment("done_at"),
            )
        )

    def _attachment(self, concern: Concern, sent: _Fields) -> None:
        content = self.bundle.files[sent.must_text("path")]
        file_id = self.attachments.put(content)  # sealed with this installation's key
        self.put.append(file_id)
        self.session.add(
            ConcernAttachment(
                school_id=concern.school_id,
                concern_id=concern.id,
                file_id=file_id,
                filename=sent.text("filename") or "attachment",
                content_type=sent.must_text("content_type", limit=100),
                size=len(content),
                added_by_id=None,
                added_by=sent.name("added_by", self.school),
                added_at=sent.moment("added_at") or self.now,
            )
        )

    def _received_note(self, concern: Concern, sent: _Fields) -> None:
        actor = current_actor(self.session)
        recorded = sent.required_moment("recorded_at")
        today = school_date(self.now, current_school(self.session).timezone)
        self.session.add(
            ConcernEntry(
                school_id=concern.school_id,
                concern_id=concern.id,
                kind=EntryKind.NOTE,
                text=(
                    f"Received from {self.school} on {today:%d %B %Y} in a child-protection "
                    f"file (esafety file {self.bundle.bundle_id[:8]}, made by "
                    f"{self.imported.made_by}). Recorded there as concern #{sent.integer('id')} "
                    f"on {recorded:%d %B %Y} by {sent.text('raised_by')}. Everything before "
                    f"this note is as {self.school} recorded it: the names and times are theirs."
                ),
                made_by_id=actor.person_id if actor else None,
                made_by=who(self.session),
                made_at=self.now,
            )
        )


def _refuse_twice(session: Session, bundle_id: str) -> None:
    earlier = session.scalars(
        select(TransferImport).where(TransferImport.bundle_id == bundle_id)
    ).first()
    if earlier is not None:
        ids = ", ".join(f"#{c.concern_id}" for c in earlier.concerns) or "none"
        raise InvalidInput(
            f"this file ({bundle_id[:8]}, from {earlier.from_school_name}) was imported on "
            f"{earlier.imported_at:%d %B %Y at %H:%M} by {earlier.imported_by} (concerns {ids}): "
            "nothing was imported again"
        )


def import_file(
    session: Session,
    attachments: SealedFiles,
    data: bytes,
    passphrase: str,
    *,
    create_pupil: bool = False,
    now: datetime | None = None,
) -> Received:
    """Import a child-protection file made by another esafety (see the module's words)."""
    require_cp_role(session, "import a child-protection file")
    now = now or utcnow()
    if not data:
        raise InvalidInput("the file is empty: choose the file the sending school's DSL sent")
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInput(
            f"the file is {len(data) // 1048576} MB: a child-protection file is at most "
            f"{MAX_FILE_BYTES // 1048576} MB; check it is the right file"
        )
    bundle = open_bundle(data, passphrase)
    school, pupil_fields, concerns = _check(bundle)
    _refuse_twice(session, bundle.bundle_id)
    pupil, created = _match_pupil(session, pupil_fields, create=create_pupil)
    records = _Fields(bundle.records, "cp-file")
    transfer = records.data.get("transfer")
    from_name = school.text("name", required=True, limit=200) or ""
    actor = current_actor(session)
    made_at = _Fields(bundle.manifest, "manifest").moment("made_at") or now
    imported = TransferImport(
        school_id=int(session.info["school_id"]),
        bundle_id=bundle.bundle_id,
        from_school_name=from_name,
        from_school_urn=school.text("urn", limit=12),
        sender_transfer_id=_Fields(transfer, "transfer").integer("id", required=False)
        if isinstance(transfer, dict)
        else None,
        made_at=made_at,
        made_by=(records.text("made_by") or "not named")[:200],
        pupil_id=pupil.id,
        pupil_created=created,
        imported_at=now,
        imported_by=who(session),
        imported_by_id=actor.person_id if actor else None,
        items=bundle.summary,
        attachment_count=len(bundle.files),
    )
    session.add(imported)
    session.flush()
    put: list[str] = []
    writer = _Writer(session, attachments, bundle, from_name, pupil, imported, put, now)
    try:
        made = [writer.concern(c) for c in concerns]
        audit.record(
            session,
            "import",
            "cp_transfer_import",
            imported.id,
            after={
                "bundle": bundle.bundle_id,
                "from": from_name,
                "pupil": pupil.id,
                "pupil_added": created,
                "concerns": [c.id for c in made],
            },
        )
        session.flush()
    except BaseException:
        for file_id in put:  # no sealed file without its row
            attachments.delete(file_id)
        raise
    return Received(imported, pupil, _receipt(session, imported, pupil, len(made)))


def _receipt(session: Session, imported: TransferImport, pupil: Person, count: int) -> str:
    here = current_school(session).name
    when = school_date(imported.imported_at, current_school(session).timezone)
    sender = (
        f" (their transfer #{imported.sender_transfer_id})" if imported.sender_transfer_id else ""
    )
    return (
        f"{here} received the child-protection file {imported.bundle_id[:8]} for "
        f"{pupil.display_name} from {imported.from_school_name}{sender}, made "
        f"{imported.made_at:%d %B %Y} by {imported.made_by}: {count} concern"
        f"{'' if count == 1 else 's'} and {imported.attachment_count} attachment"
        f"{'' if imported.attachment_count == 1 else 's'}. Imported on {when:%d %B %Y} by "
        f"{imported.imported_by}."
    )


def imports(session: Session) -> list[TransferImport]:
    """Files this school received, newest first (the DSL and deputies only)."""
    if not handles_cp_files(session):
        return []
    return list(
        session.scalars(
            select(TransferImport).order_by(
                TransferImport.imported_at.desc(), TransferImport.id.desc()
            )
        )
    )
