"""Child-protection files of pupils who move school (issue 5 §5): the due date on the
school's calendar, the reminders, and the file sent from one esafety to another (its own
database and keyring), with the wrong passphrase, a changed file and a second import."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from esafety.audit import Actor, AuditEntry
from esafety.directory import terms
from esafety.directory.model import Person
from esafety.errors import InvalidInput, PermissionDenied
from esafety.installation import Installation
from esafety.notices import Notice
from esafety.safeguarding import concerns, transfer, transfer_days
from esafety.safeguarding.attachments import add_attachment
from esafety.safeguarding.concerns import About
from esafety.safeguarding.model import Concern, ConcernAttachment, ConcernEntry, EntryKind
from esafety.safeguarding.transfer_bundle import open_bundle
from esafety.safeguarding.transfer_export import export_file, transfer_files
from esafety.safeguarding.transfer_import import import_file
from esafety.safeguarding.transfer_model import ImportedConcern, TransferEntryKind
from esafety.scheduler import run_due
from esafety.security.roles import Role
from tests.conftest import make_settings
from tests.safeguarding.concern_people import MARKER, ConcernSchool, concern_school, record

PDF = b"%PDF-1.4\n" + MARKER.encode() + b" the screenshot's words\n%%EOF\n"


@pytest.fixture
def cs(inst: Installation) -> ConcernSchool:
    return concern_school(inst)


@pytest.fixture
def receiver(
    request: pytest.FixtureRequest,
    settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Installation]:
    """A second esafety: its own data directory (so its own keyring) and database."""
    data = tmp_path_factory.mktemp("receiver")
    url = None
    if settings.database_url is None:
        shutil.copy(request.getfixturevalue("sqlite_template"), data / "esafety.db")
    else:
        server = request.getfixturevalue("pg_server")
        template = request.getfixturevalue("pg_template")
        name = f"receiver_{data.name}".replace("-", "_")
        _admin(server.url(), f'CREATE DATABASE "{name}" TEMPLATE {template}')
        url = server.url(name)
    other = Installation(make_settings(data, url))
    yield other
    other.close()
    if url is not None:
        _admin(request.getfixturevalue("pg_server").url(), f'DROP DATABASE "{name}" WITH (FORCE)')


def _admin(url: str, statement: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def _born(cs: ConcernSchool, day: date) -> None:
    with cs.inst.db.session(Actor.system("test", school_id=cs.id)) as session:
        pupil = session.get(Person, cs[Role.PUPIL].id)
        assert pupil is not None
        pupil.date_of_birth = day


def _start(cs: ConcernSchool, *, learned_on: date, now: datetime | None = None) -> int:
    with cs.session(Role.DSL) as session:
        row = transfer.start_transfer(
            session,
            cs[Role.PUPIL].username,
            destination_name="Elm Academy",
            destination_urn="123456",
            dsl_name="Erin Elm",
            dsl_email="dsl@elm.example",
            learned_on=learned_on,
            now=now,
        )
        return row.id


# -- the due date -----------------------------------------------------------------------


def test_the_due_date_counts_school_days_past_a_half_term(cs: ConcernSchool) -> None:
    with cs.inst.db.session(Actor.system("test", school_id=cs.id)) as session:
        terms.add_term(session, "Autumn", date(2025, 9, 3), date(2025, 12, 19))
        terms.add_closure(session, date(2025, 10, 27), date(2025, 10, 31), "Half term")
    # Thursday before half term: Friday is day 1, then Monday 3 November onwards.
    transfer_id = _start(cs, learned_on=date(2025, 10, 23))
    with cs.session(Role.DSL) as session:
        row = transfer.find_transfer(session, transfer_id)
        assert row.due_on == date(2025, 11, 6)
        assert row.due_basis == "school days on the school calendar"


def test_without_terms_it_counts_weekdays_less_bank_holidays_and_says_so(
    cs: ConcernSchool,
) -> None:
    # Thursday 1 May 2025; Monday 5 May is the early May bank holiday.
    transfer_id = _start(cs, learned_on=date(2025, 5, 1))
    with cs.session(Role.DSL) as session:
        row = transfer.find_transfer(session, transfer_id)
        assert row.due_on == date(2025, 5, 9)
        assert "bank holidays in England" in row.due_basis
        assert "no terms" in row.due_basis


def test_only_the_dsl_and_deputies_handle_transfers(cs: ConcernSchool) -> None:
    transfer_id = _start(cs, learned_on=date(2025, 5, 1))
    with cs.session(Role.HEADTEACHER) as session:
        assert transfer.transfers(session) == []
        with pytest.raises(Exception, match="no transfer"):
            transfer.find_transfer(session, transfer_id)
        with pytest.raises(PermissionDenied, match="DSL and deputies"):
            transfer.start_transfer(session, cs.pupil2.username, destination_name="Elm Academy")
    with cs.session(Role.TEACHER) as session, pytest.raises(PermissionDenied):
        transfer.start_transfer(session, cs.pupil2.username, destination_name="Elm Academy")
    with cs.session(Role.DEPUTY_DSL) as session:
        assert [r.id for r in transfer.transfers(session)] == [transfer_id]
        with pytest.raises(InvalidInput, match="already has transfer"):
            transfer.start_transfer(session, cs[Role.PUPIL].username, destination_name="Ash")


# -- reminders ----------------------------------------------------------------------------


def _notices(cs: ConcernSchool) -> list[Notice]:
    with cs.inst.db.session() as session:
        return list(session.scalars(select(Notice).order_by(Notice.id)))


def _at(day: int, hour: int = 10) -> datetime:
    return datetime(2025, 3, day, hour, tzinfo=UTC)


def test_the_reminder_job_chases_a_late_file_and_then_a_missing_receipt(
    cs: ConcernSchool,
) -> None:
    # Learned Monday 3 March: due Monday 10 March (five weekdays; no terms here).
    transfer_id = _start(cs, learned_on=date(2025, 3, 3), now=_at(3))
    leads = {cs[Role.DSL].id, cs[Role.DEPUTY_DSL].id}
    run_due(cs.inst, _at(10, 9))
    run_due(cs.inst, _at(10, 15))
    assert _notices(cs) == []  # due today, not late
    run_due(cs.inst, _at(11, 9))
    run_due(cs.inst, _at(11, 11))  # the job runs hourly; the notice goes once a day
    late = _notices(cs)
    assert {n.person_id for n in late} == leads and len(late) == 2
    assert "was due to be sent by Monday 10 March 2025" in late[0].text
    assert late[0].link == f"/safeguarding/transfers/{transfer_id}"
    run_due(cs.inst, _at(12, 9))
    assert len(_notices(cs)) == 4  # the next day, again

    with cs.session(Role.DSL) as session:
        transfer.record_sending(
            session,
            transfer_id,
            method="secure_email",
            sent_at=_at(12, 11),
            items=["The paper child-protection file, 14 pages"],
            now=_at(12, 12),
        )
    # Sent Wednesday 12th; a receipt is expected within 3 school days (Monday 17th).
    run_due(cs.inst, _at(13, 9))
    run_due(cs.inst, _at(17, 16))
    assert len(_notices(cs)) == 4
    run_due(cs.inst, _at(18, 9))
    chased = _notices(cs)[4:]
    assert len(chased) == 2 and "No receipt is recorded" in chased[0].text
    with cs.session(Role.DSL) as session:
        state = transfer.transfer_state(
            session, transfer.find_transfer(session, transfer_id), _at(18)
        )
        assert state.status is transfer.TransferStatus.RECEIPT_OVERDUE
        transfer.record_receipt(
            session,
            transfer_id,
            acknowledged_by="Erin Elm",
            acknowledged_at=_at(18, 11),
            now=_at(18, 12),
        )
    run_due(cs.inst, _at(19, 9))
    assert len(_notices(cs)) == 6


def test_the_receipt_days_are_a_school_setting(cs: ConcernSchool) -> None:
    transfer_id = _start(cs, learned_on=date(2025, 3, 3), now=_at(3))
    with cs.session(Role.DSL) as session:
        transfer.record_sending(
            session, transfer_id, method="by_hand", sent_at=_at(4), items=["Folder"], now=_at(4, 12)
        )
        transfer_days.set_receipt_days(session, 1)
        row = transfer.find_transfer(session, transfer_id)
        assert transfer.transfer_state(session, row, _at(5)).status is transfer.TransferStatus.SENT
        assert transfer.transfer_state(session, row, _at(6)).status.needs_action
        with pytest.raises(InvalidInput, match="1 to 20"):
            transfer_days.set_receipt_days(session, 0)


def test_records_are_corrected_by_new_entries_never_edited(cs: ConcernSchool) -> None:
    transfer_id = _start(cs, learned_on=date(2025, 3, 3), now=_at(3))
    with cs.session(Role.DSL) as session:
        transfer.record_sending(
            session, transfer_id, method="by_hand", sent_at=_at(4), items=["Folder"], now=_at(4, 12)
        )
        with pytest.raises(InvalidInput, match="say why"):
            transfer.record_sending(session, transfer_id, method="by_hand", items=["Folder"])
        transfer.record_sending(
            session,
            transfer_id,
            method="recorded_delivery",
            sent_at=_at(4),
            items=["Folder"],
            reason="It went by recorded delivery, not by hand",
            now=_at(4, 13),
        )
        transfer.correct_details(session, transfer_id, "They moved to Ash", destination_name="Ash")
        row = transfer.find_transfer(session, transfer_id)
        sent = [e for e in row.entries if e.kind is TransferEntryKind.SENT]
        assert len(sent) == 2 and sent[1].corrects_entry_id == sent[0].id
        assert row.destination_name == "Elm Academy" and row.current("destination_name") == "Ash"
        row.destination_name = "Edited"
        with pytest.raises(PermissionDenied, match="never edited"):
            session.flush()
        session.rollback()


# -- from one esafety to another -------------------------------------------------------------


def _sender_records(cs: ConcernSchool) -> int:
    """A concern about the pupil with a note, a correction, a step and an attachment; an
    allegation about staff naming the pupil; a concern about another pupil."""
    concern_id = record(cs, Role.TEACHER)
    with cs.session(Role.TEACHER) as session:
        add_attachment(session, cs.inst.attachments, concern_id, "screenshot.pdf", PDF)
        concerns.add_note(session, concern_id, "He said it has happened for a week.")
        note = concerns.add_note(session, concern_id, "Seen on Tuesday.")
        concerns.correct(
            session, concern_id, "Seen on Wednesday.", "I wrote the wrong day", entry_id=note.id
        )
    with cs.session(Role.DSL) as session:
        concerns.record_step(session, concern_id, "keep_evidence", note="Screenshots kept.")
    record(
        cs,
        Role.TEACHER,
        kind="staff_allegation",
        about=[
            About(person=cs[Role.TEACHER].username, part="harmed_others"),
            cs[Role.PUPIL].username,
        ],
        narrative="A teacher messaged the pupil privately.",
    )
    record(cs, Role.TEACHER, about=[cs.pupil2.username], narrative="About someone else.")
    return concern_id


def _count(inst: Installation, model: type) -> int:
    with inst.db.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_a_file_goes_from_one_esafety_to_another(cs: ConcernSchool, receiver: Installation) -> None:
    concern_id = _sender_records(cs)
    _born(cs, date(2014, 6, 2))
    transfer_id = _start(cs, learned_on=date.today())
    with cs.session(Role.DSL) as session:
        made = export_file(session, cs.inst.attachments, transfer_files(cs.inst), transfer_id)
        passphrase, content = made.passphrase, made.content
    assert MARKER.encode() not in content and b"Tester" not in content  # never plaintext
    kept = list((cs.inst.data_dir / "transfers").iterdir())
    assert len(kept) == 1 and MARKER.encode() not in kept[0].read_bytes()
    assert made.filename.endswith(".escp") and "Tester" not in made.filename
    assert [line.split(":")[0] for line in made.entry.items or []] == [f"Concern #{concern_id}"]
    with cs.inst.db.session() as session:  # the export read the concern through open_concern
        reads = session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "read",
                AuditEntry.object_type == "concern",
                AuditEntry.object_id == str(concern_id),
            )
        ).all()
        assert reads

    elm = concern_school(receiver, "elm")
    _born(elm, date(2014, 6, 2))
    with elm.session(Role.DSL) as session:
        received = import_file(session, receiver.attachments, content, passphrase)
        assert (
            "Oak Primary School" in received.receipt
            and (made.entry.bundle_id or "")[:8] in received.receipt
        )
    with elm.session(Role.DSL) as session:
        (link,) = session.scalars(select(ImportedConcern)).all()
        assert link.original_id == concern_id and link.original_school == "Oak Primary School"
        concern = session.get(Concern, link.concern_id)
        assert concern is not None
        assert MARKER in concern.narrative
        assert concern.raised_by == "teacher.oak (Oak Primary School)"
        assert [p.person_id for p in concern.linked] == [elm[Role.PUPIL].id]
        texts = [(e.kind, e.text) for e in concern.entries]
        assert (EntryKind.CORRECTION, "Seen on Wednesday.") in texts
        correction = next(e for e in concern.entries if e.kind is EntryKind.CORRECTION)
        corrected = next(e for e in concern.entries if e.id == correction.corrects_entry_id)
        assert corrected.text == "Seen on Tuesday."
        assert "Received from Oak Primary School" in (concern.entries[-1].text or "")
        assert [(s.step_id, s.done_by) for s in concern.steps] == [
            ("keep_evidence", "dsl.oak (Oak Primary School)")
        ]
        (attached,) = concern.attachments
        assert receiver.attachments.read(attached.file_id) == PDF
    sealed = receiver.data_dir / "attachments" / f"{attached.file_id}.sealed"
    assert PDF not in sealed.read_bytes()
    with pytest.raises(Exception, match="which is not in the key file"):
        cs.inst.keys.open(sealed.read_bytes(), f"file:attachments/{attached.file_id}")

    with elm.session(Role.DSL) as session, pytest.raises(InvalidInput, match="was imported on"):
        import_file(session, receiver.attachments, content, passphrase)
    assert _count(receiver, Concern) == 1

    with cs.session(Role.DSL) as session:
        transfer.record_sending(session, transfer_id, method="esafety_file")
        transfer.record_receipt(session, transfer_id, acknowledged_by="Erin Elm")
        row = transfer.find_transfer(session, transfer_id)
        state = transfer.transfer_state(session, row, datetime.now(UTC))
        assert state.status is transfer.TransferStatus.RECEIVED
        assert state.sent is not None and state.sent.bundle_id == made.entry.bundle_id


def test_a_bad_file_or_passphrase_is_refused_and_nothing_is_written(
    cs: ConcernSchool, receiver: Installation
) -> None:
    record(cs, Role.TEACHER)
    transfer_id = _start(cs, learned_on=date.today())
    with cs.session(Role.DSL) as session:
        made = export_file(session, cs.inst.attachments, transfer_files(cs.inst), transfer_id)
    elm = concern_school(receiver, "elm")
    before = _count(receiver, ConcernEntry), _count(receiver, Concern)

    def refused(data: bytes, passphrase: str, match: str) -> None:
        with elm.session(Role.DSL) as session, pytest.raises(InvalidInput, match=match):
            import_file(session, receiver.attachments, data, passphrase)

    refused(made.content, "WRNG-PASS-PHRA-SE00-0000-0000", "passphrase is wrong")
    changed = bytearray(made.content)
    changed[len(changed) // 2] ^= 0x01
    refused(bytes(changed), made.passphrase, "damaged or was changed")
    newer = bytearray(made.content)
    newer[8] = 2
    refused(bytes(newer), made.passphrase, "format version 2")
    refused(b"PK\x03\x04 a zip file", made.passphrase, "not a child-protection file")
    refused(made.content[:-100], made.passphrase, "damaged")
    assert (_count(receiver, ConcernEntry), _count(receiver, Concern)) == before
    assert not (receiver.data_dir / "attachments").exists() or not list(
        (receiver.data_dir / "attachments").iterdir()
    )
    # Spaces, hyphens and small letters as typed do not matter.
    assert open_bundle(made.content, made.passphrase.lower().replace("-", " ")).records


def test_a_pupil_without_a_match_is_refused_or_added_when_asked(
    cs: ConcernSchool, receiver: Installation
) -> None:
    record(cs, Role.TEACHER)
    _born(cs, date(2014, 6, 2))
    transfer_id = _start(cs, learned_on=date.today())
    with cs.session(Role.DSL) as session:
        made = export_file(session, cs.inst.attachments, transfer_files(cs.inst), transfer_id)
    elm = concern_school(receiver, "elm")
    _born(elm, date(2013, 1, 1))  # the same UPN, another child
    with elm.session(Role.DSL) as session, pytest.raises(InvalidInput, match="born"):
        import_file(session, receiver.attachments, made.content, made.passphrase)
    with receiver.db.session(Actor.system("test", school_id=elm.id)) as session:
        pupil = session.get(Person, elm[Role.PUPIL].id)
        assert pupil is not None
        pupil.upn = "B999999999999"
    with elm.session(Role.DSL) as session, pytest.raises(InvalidInput, match="no pupil"):
        import_file(session, receiver.attachments, made.content, made.passphrase)
    with elm.session(Role.DSL) as session:
        received = import_file(
            session, receiver.attachments, made.content, made.passphrase, create_pupil=True
        )
        assert received.file.pupil_created
        assert received.pupil.upn == "A123456789012" and received.pupil.username == "pupil.tester"
    assert _count(receiver, ConcernAttachment) == 0


def test_the_cli_exports_and_imports(cs: ConcernSchool, cli, tmp_path: Path) -> None:
    record(cs, Role.TEACHER)
    concern_school(cs.inst, "elm")
    out = tmp_path / "out" / "file.escp"
    out.parent.mkdir()
    made = cli("safeguarding", "transfer", "export", cs[Role.PUPIL].username, "--to", str(out))
    assert made.code == 2 and "--destination" in made.err
    made = cli(
        "safeguarding", "transfer", "export", cs[Role.PUPIL].username, "--to", str(out),
        "--destination", "Elm Primary School", "--by", cs[Role.DSL].username,
    )  # fmt: skip
    assert made.code == 0, made.err
    passphrase = made.out.split("Passphrase (shown once, not kept): ")[1].split()[0]
    assert out.stat().st_mode & 0o077 == 0 and MARKER.encode() not in out.read_bytes()
    secret = tmp_path / "passphrase.txt"
    secret.write_text("wrong\n")
    wrong = cli(
        "safeguarding",
        "transfer",
        "import",
        str(out),
        "--school",
        "elm",
        "--passphrase-file",
        str(secret),
    )
    assert wrong.code == 2 and "passphrase is wrong" in wrong.err
    secret.write_text(passphrase + "\n")
    done = cli(
        "safeguarding",
        "transfer",
        "import",
        str(out),
        "--school",
        "elm",
        "--passphrase-file",
        str(secret),
    )
    assert done.code == 0, done.err
    assert "Elm Primary School received the child-protection file" in done.out
    again = cli(
        "safeguarding",
        "transfer",
        "import",
        str(out),
        "--school",
        "elm",
        "--passphrase-file",
        str(secret),
    )
    assert again.code == 2 and "was imported on" in again.err
