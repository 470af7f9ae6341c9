"""Making the child-protection file of a pupil who is leaving (issue 5 §5; KCSIE part 2).

The file holds every concern about the pupil (what was recorded, every note, correction
and change, every step of its procedure, every attachment's bytes), the pupil's names,
date of birth and UPN, and the sending school. Allegations about staff are not part of a
pupil's file (KCSIE part 4 keeps them apart). Each concern is read through
:func:`esafety.safeguarding.reading.open_concern`, so every read is in the audit trail;
if the person making the file cannot read one of them, no file is made (a file with a
concern left out would look complete).

The file is sealed with a new passphrase (:mod:`transfer_bundle`), which is returned once
and never stored; the sealed file is kept, sealed again with this installation's key, in
DATA/transfers/, so the DSL can download it and the school keeps what it sent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety import audit
from esafety.db import utcnow
from esafety.directory.model import Person
from esafety.directory.service import current_school
from esafety.errors import InvalidInput, NotFound
from esafety.safeguarding.attachments import read_attachment
from esafety.safeguarding.catalogue import kind as kind_info
from esafety.safeguarding.kinds import IncidentKind
from esafety.safeguarding.model import Concern, ConcernPerson
from esafety.safeguarding.reading import find_concern, open_concern
from esafety.safeguarding.transfer import (
    add_entry,
    ensure_open,
    find_transfer,
    require_cp_role,
    who,
)
from esafety.safeguarding.transfer_bundle import SUFFIX, Bundle, make_passphrase, seal_bundle
from esafety.safeguarding.transfer_model import PupilTransfer, TransferEntry, TransferEntryKind
from esafety.sealing import SealedFiles

if TYPE_CHECKING:
    from esafety.installation import Installation

__all__ = [
    "ExportedFile",
    "cp_file",
    "export_file",
    "exported_file",
    "file_name",
    "transfer_files",
]

#: Kinds that are never part of a pupil's file (KCSIE part 4: allegations about staff).
NOT_IN_CP_FILE = frozenset({IncidentKind.STAFF_ALLEGATION})


def transfer_files(inst: Installation) -> SealedFiles:
    """The files made for transfers, sealed again in DATA/transfers/."""
    return SealedFiles(inst.data_dir, "transfers", inst.keys)


@dataclass(frozen=True)
class ExportedFile:
    entry: TransferEntry
    #: Shown once to the sender, to give the receiving DSL by another channel.
    passphrase: str
    content: bytes
    filename: str


def file_name(row: PupilTransfer, bundle_id: str) -> str:
    # No name of the child in it: the file name travels in the clear with the e-mail.
    return f"cp-file-{row.id}-{bundle_id[:8]}{SUFFIX}"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _person(session: Session, link: ConcernPerson, pupil: Person, school: str) -> dict[str, Any]:
    base = {
        "ref": link.id,
        "part": link.part.value,
        "added_by": link.added_by,
        "added_at": _iso(link.added_at),
    }
    if link.person_id == pupil.id:
        return base | {"this_pupil": True, "name": pupil.display_name}
    if link.person_id is not None:
        other = session.get(Person, link.person_id)
        name = other.display_name if other is not None else "Name not known"
        year = f", {other.year_group.value}" if other is not None and other.year_group else ""
        kind = other.kind.value if other is not None else "person"
        return base | {
            "this_pupil": False,
            "name": name,
            "description": f"{kind} at {school}{year}",
        }
    return base | {
        "this_pupil": False,
        "name": link.outside_name,
        "description": link.outside_description,
        "handle": link.outside_handle,
    }


def _concern(
    session: Session,
    attachments: SealedFiles,
    concern: Concern,
    pupil: Person,
    school: str,
    files: dict[str, bytes],
) -> dict[str, Any]:
    kept = []
    for item in concern.attachments:
        path = f"attachments/{concern.id}-{item.id}"
        files[path] = read_attachment(session, attachments, concern.id, item.id).content
        kept.append(
            {
                "path": path,
                "filename": item.filename,
                "content_type": item.content_type,
                "size": item.size,
                "added_by": item.added_by,
                "added_at": _iso(item.added_at),
            }
        )
    return {
        "id": concern.id,
        "kind": concern.kind.value,
        "happened_at": _iso(concern.happened_at),
        "noticed_at": _iso(concern.noticed_at),
        "recorded_at": _iso(concern.recorded_at),
        "raised_by": concern.raised_by,
        "location": concern.location.value if concern.location else None,
        "location_detail": concern.location_detail,
        "narrative": concern.narrative,
        "action_taken": concern.action_taken,
        "dsl_told_in_person": concern.dsl_told_in_person,
        "status": concern.status.value,
        "outcome": concern.outcome,
        "closed_at": _iso(concern.closed_at),
        "closed_by": concern.closed_by,
        "people": [_person(session, p, pupil, school) for p in concern.people],
        "entries": [
            {
                "ref": e.id,
                "kind": e.kind.value,
                "text": e.text,
                "reason": e.reason,
                "corrects": e.corrects_entry_id,
                "field": e.field,
                "new_kind": e.new_kind.value if e.new_kind else None,
                "old_kind": e.old_kind.value if e.old_kind else None,
                "new_happened_at": _iso(e.new_happened_at),
                "old_happened_at": _iso(e.old_happened_at),
                "person": e.concern_person_id,
                "made_by": e.made_by,
                "made_at": _iso(e.made_at),
            }
            for e in concern.entries
        ],
        "steps": [
            {
                "step_id": s.step_id,
                "done_by": s.done_by,
                "done_at": _iso(s.done_at),
                "outcome": s.outcome.value,
                "choice": s.choice,
                "rationale": s.rationale,
                "note": s.note,
                "reference": s.reference,
                "corrects": s.corrects,
                "correction_reason": s.correction_reason,
                "recorded_at": _iso(s.recorded_at),
            }
            for s in concern.steps
        ],
        "attachments": kept,
    }


def _line(concern: Concern) -> str:
    """One line of what was sent: no narrative, no names but the raiser's."""
    count = len(concern.attachments)
    return (
        f"Concern #{concern.id}: {kind_info(concern.current_kind).title}, happened "
        f"{concern.current_happened_at:%d %b %Y}, recorded {concern.recorded_at:%d %b %Y} by "
        f"{concern.raised_by}; {len(concern.entries)} notes and changes, "
        f"{len(concern.steps)} step records, {count} attachment{'' if count == 1 else 's'}"
        + ("; closed" if not concern.is_open else "; open")
    )


def _concerns_about(session: Session, pupil: Person) -> list[Concern]:
    """Every concern the pupil is linked to now, allegations about staff aside."""
    ids = session.scalars(
        select(ConcernPerson.concern_id)
        .where(ConcernPerson.person_id == pupil.id)
        .distinct()
        .order_by(ConcernPerson.concern_id)
    ).all()
    found = []
    for concern_id in ids:
        concern = find_concern(session, concern_id)
        linked = {p.person_id for p in concern.linked}
        if pupil.id in linked and concern.current_kind not in NOT_IN_CP_FILE:
            found.append(concern)
    return found


def cp_file(
    session: Session,
    attachments: SealedFiles,
    pupil: Person,
    *,
    transfer: PupilTransfer | None = None,
) -> Bundle:
    """The pupil's child-protection file, opened (each concern's read is audited)."""
    require_cp_role(session, "make a child-protection file")
    school = current_school(session)
    files: dict[str, bytes] = {}
    concerns: list[dict[str, Any]] = []
    summary: list[str] = []
    for concern in _concerns_about(session, pupil):
        try:
            opened = open_concern(session, concern.id).concern
        except NotFound:
            raise InvalidInput(
                f"concern #{concern.id} about {pupil.display_name} is not one you can read "
                "(it may be about you): another DSL or deputy must make the file, so that "
                "nothing is left out of it"
            ) from None
        concerns.append(_concern(session, attachments, opened, pupil, school.name, files))
        summary.append(_line(opened))
    if not concerns:
        summary.append(f"No concerns are recorded about {pupil.display_name} in esafety")
    records = {
        "school": {"name": school.name, "urn": school.urn},
        "made_by": who(session),
        "transfer": None
        if transfer is None
        else {
            "id": transfer.id,
            "destination_name": transfer.current("destination_name"),
            "destination_urn": transfer.current("destination_urn"),
            "destination_dsl_name": transfer.current("destination_dsl_name"),
        },
        "pupil": {
            "legal_first_name": pupil.legal_first_name,
            "legal_last_name": pupil.legal_last_name,
            "preferred_first_name": pupil.preferred_first_name,
            "preferred_last_name": pupil.preferred_last_name,
            "date_of_birth": pupil.date_of_birth.isoformat() if pupil.date_of_birth else None,
            "upn": pupil.upn,
            "year_group": pupil.year_group.value if pupil.year_group else None,
            "left_on": pupil.left_on.isoformat() if pupil.left_on else None,
        },
        "concerns": concerns,
    }
    manifest = {
        "school": school.name,
        "pupil": f"{pupil.display_name}" + (f" (UPN {pupil.upn})" if pupil.upn else ""),
        "made_by": who(session),
        "concerns": len(concerns),
        "attachments": len(files),
        "summary": summary,
    }
    return Bundle(uuid.uuid4().hex, records, files, manifest)


def export_file(
    session: Session,
    attachments: SealedFiles,
    store: SealedFiles,
    transfer_id: int,
    *,
    now: datetime | None = None,
) -> ExportedFile:
    """Make the transfer's file: sealed with a new passphrase (returned once), kept
    sealed in ``store``, and recorded on the transfer with the list of what is in it."""
    # 404 first for anyone who may not see it, as for concerns.
    row = find_transfer(session, transfer_id)
    require_cp_role(session, "make a child-protection file")
    ensure_open(row)
    now = now or utcnow()
    pupil = session.get(Person, row.pupil_id)
    if pupil is None:
        raise NotFound(f"the pupil of transfer #{row.id} is no longer in the directory")
    bundle = cp_file(session, attachments, pupil, transfer=row)
    passphrase = make_passphrase()
    content = seal_bundle(bundle, passphrase, now)
    file_id = store.put(content)
    try:
        entry = add_entry(
            session,
            row,
            TransferEntryKind.EXPORTED,
            at=now,
            by_name=who(session),
            items=bundle.summary,
            bundle_id=bundle.bundle_id,
            file_id=file_id,
        )
        audit.record(
            session,
            "export",
            "cp_transfer",
            row.id,
            after={
                "bundle": bundle.bundle_id,
                "concerns": [c["id"] for c in bundle.records["concerns"]],
                "attachments": len(bundle.files),
            },
        )
    except BaseException:
        store.delete(file_id)  # no kept file without its record
        raise
    return ExportedFile(entry, passphrase, content, file_name(row, bundle.bundle_id))


def exported_file(session: Session, store: SealedFiles, transfer_id: int) -> tuple[str, bytes]:
    """The newest file made for the transfer (still sealed with its passphrase)."""
    # 404 first for anyone who may not see it, as for concerns.
    row = find_transfer(session, transfer_id)
    require_cp_role(session, "download a child-protection file")
    entry = row.latest(TransferEntryKind.EXPORTED)
    if entry is None or entry.file_id is None or entry.bundle_id is None:
        raise NotFound(f"transfer #{row.id} has no file made yet: make the file first")
    content = store.read(entry.file_id)
    audit.record(session, "download", "cp_transfer", row.id, after={"bundle": entry.bundle_id})
    return file_name(row, entry.bundle_id), content
