"""The audit trail: every write recorded through one mechanism, and tampering of every kind detected."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select, text, update

from esafety.audit import Actor, AuditEntry, read_head_file, record, verify_chain
from esafety.directory.model import Person, PersonKind, PupilFlag, PupilFlagKind, School
from esafety.installation import Installation
from esafety.security.model import Account

ACTOR = Actor(name="tester", address="127.0.0.1")


def _school_with_people(inst: Installation, n: int = 3) -> int:
    with inst.db.session(ACTOR) as session:
        school = School(slug="westpark", name="West Park Primary")
        session.add(school)
        session.flush()
        for i in range(n):
            session.add(
                Person(
                    school_id=school.id,
                    kind=PersonKind.PUPIL,
                    username=f"pupil{i}",
                    legal_first_name="Ada",
                    legal_last_name=f"Pupil{i}",
                    date_of_birth=date(2017, 1, i + 1),
                )
            )
        return school.id


def _entries(inst: Installation) -> list[AuditEntry]:
    with inst.db.session() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))


def _verify(inst: Installation):
    with inst.db.session() as session:
        return verify_chain(session, inst.audit_head_file)


def test_fresh_database_verifies(inst: Installation) -> None:
    assert _verify(inst) == (0, None)


def test_every_write_is_recorded_with_who_and_what(inst: Installation) -> None:
    _school_with_people(inst)
    with inst.db.session(ACTOR) as session:
        person = session.scalars(select(Person).where(Person.username == "pupil0")).one()
        person.preferred_first_name = "Addy"
    with inst.db.session(ACTOR) as session:
        session.delete(session.scalars(select(Person).where(Person.username == "pupil1")).one())
    entries = _entries(inst)
    actions = [(e.action, e.object_type) for e in entries]
    assert actions[:4] == [
        ("create", "school"),
        ("create", "person"),
        ("create", "person"),
        ("create", "person"),
    ]
    assert ("update", "person") in actions
    assert actions[-1] == ("delete", "person")
    changed = next(e for e in entries if e.action == "update")
    assert changed.before == {"preferred_first_name": None}
    assert changed.after == {"preferred_first_name": "Addy"}
    assert changed.actor == "tester"
    assert changed.address == "127.0.0.1"
    assert all(e.school_id is not None for e in entries)
    assert _verify(inst) == (len(entries), None)
    assert read_head_file(inst.audit_head_file) == (entries[-1].seq, entries[-1].hash)


def test_secret_columns_are_recorded_as_changed_never_their_value(inst: Installation) -> None:
    school_id = _school_with_people(inst, 1)
    with inst.db.session(ACTOR) as session:
        person = session.scalars(select(Person)).one()
        session.add(
            Account(school_id=school_id, person_id=person.id, password_hash="$argon2id$secret")
        )
    with inst.db.session(ACTOR) as session:
        account = session.scalars(select(Account)).one()
        account.password_hash = "$argon2id$other"
    entries = [e for e in _entries(inst) if e.object_type == "account"]
    assert "argon2id" not in repr([(e.before, e.after) for e in entries])
    assert entries[-1].after == {"password_hash": "[changed, not recorded]"}


def test_reading_a_sensitive_record_is_audited(inst: Installation) -> None:
    school_id = _school_with_people(inst, 1)
    with inst.db.session(ACTOR) as session:
        person = session.scalars(select(Person)).one()
        session.add(PupilFlag(school_id=school_id, person_id=person.id, flag=PupilFlagKind.SEND))
    before = len(_entries(inst))
    with inst.db.session(Actor(name="dsl")) as session:
        flags = session.scalars(select(PupilFlag)).all()
        assert len(flags) == 1
    reads = [e for e in _entries(inst)[before:] if e.action == "read"]
    assert [(r.object_type, r.actor) for r in reads] == [("pupil_flag", "dsl")]


def test_events_are_recorded_and_rolled_back_with_their_transaction(inst: Installation) -> None:
    with inst.db.session(ACTOR) as session:
        record(session, "sign_in", "person", 7, after={"method": "password"})
    with pytest.raises(RuntimeError), inst.db.session(ACTOR) as session:  # noqa: PT012
        record(session, "export", "person", 7)
        session.add(School(slug="gone", name="Never written"))
        session.flush()
        raise RuntimeError("fail")
    assert [e.action for e in _entries(inst)] == ["sign_in"]
    assert _verify(inst)[1] is None


# -- tampering ------------------------------------------------------------------------


def _tamper(inst: Installation, statement: str, **params: object) -> None:
    with inst.db.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_edited_entry_is_named(inst: Installation) -> None:
    _school_with_people(inst)
    _tamper(inst, "UPDATE audit_entry SET actor = 'someone else' WHERE seq = 2")
    problem = _verify(inst)[1]
    assert problem is not None and (problem.kind, problem.seq) == ("edited", 2)


def test_deleted_entry_is_named(inst: Installation) -> None:
    _school_with_people(inst)
    _tamper(inst, "DELETE FROM audit_entry WHERE seq = 2")
    problem = _verify(inst)[1]
    assert problem is not None and (problem.kind, problem.seq) == ("deleted", 2)


def test_newest_entries_removed_are_detected_by_the_head(inst: Installation) -> None:
    _school_with_people(inst)
    _tamper(inst, "DELETE FROM audit_entry WHERE seq >= 3")
    _tamper(
        inst, "UPDATE audit_head SET seq = 2, hash = (SELECT hash FROM audit_entry WHERE seq = 2)"
    )
    problem = _verify(inst)[1]
    assert problem is not None and (problem.kind, problem.seq) == ("deleted", 3)
    assert "head file" in problem.message


def test_inserted_entry_is_named(inst: Installation) -> None:
    _school_with_people(inst)
    entries = _entries(inst)
    # Shift entries 3.. up by one and forge a well-formed entry 3 between 2 and the old 3.
    with inst.db.session() as session:
        for e in reversed(entries[2:]):
            session.execute(update(AuditEntry).where(AuditEntry.seq == e.seq).values(seq=e.seq + 1))
        forged = AuditEntry(
            seq=3,
            at=entries[1].at,
            school_id=None,
            actor="intruder",
            actor_id=None,
            address=None,
            action="create",
            object_type="person",
            object_id="99",
            before=None,
            after=None,
            reason=None,
            prev_hash=entries[1].hash,
        )
        from esafety.audit import entry_hash

        forged.hash = entry_hash(forged)
        session.add(forged)
    problem = _verify(inst)[1]
    assert problem is not None
    assert problem.kind in {"inserted", "edited"}
    assert problem.seq in {3, 4}


def test_reordered_entries_are_named(inst: Installation) -> None:
    _school_with_people(inst)
    _tamper(inst, "UPDATE audit_entry SET seq = 100 WHERE seq = 2")
    _tamper(inst, "UPDATE audit_entry SET seq = 2 WHERE seq = 3")
    _tamper(inst, "UPDATE audit_entry SET seq = 3 WHERE seq = 100")
    problem = _verify(inst)[1]
    assert problem is not None and problem.seq == 2
    assert problem.kind in {"edited", "reordered"}


def test_cli_verify_and_head(inst: Installation, cli) -> None:
    _school_with_people(inst)
    result = cli("audit", "verify")
    assert result.code == 0, result.err
    assert "intact" in result.out
    head = cli("audit", "head").out.split()
    assert head[0] == str(_entries(inst)[-1].seq)
    _tamper(inst, "UPDATE audit_entry SET reason = 'x' WHERE seq = 1")
    result = cli("audit", "verify")
    assert result.code == 1
    assert "entry 1 was edited" in result.err


def test_a_row_removed_through_a_relationship_is_audited(inst: Installation) -> None:
    from esafety.directory.model import PersonRole
    from esafety.security.roles import Role

    _school_with_people(inst, 1)
    with inst.db.session(ACTOR) as session:
        person = session.scalars(select(Person)).one()
        person.roles.append(PersonRole(school_id=person.school_id, role=Role.DSL))
    with inst.db.session(ACTOR) as session:
        person = session.scalars(select(Person)).one()
        person.roles.clear()  # delete-orphan: never passes through session.delete()
    last = _entries(inst)[-1]
    assert (last.action, last.object_type) == ("delete", "person_role")
    assert last.before is not None and last.before["role"] == "dsl"
