"""Storage: migrations match the models, WAL on SQLite, and school scoping in one place."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select, text

import esafety.models  # noqa: F401
from esafety.audit import SYSTEM, Actor
from esafety.db import Base
from esafety.directory.model import Person, PersonKind, School
from esafety.errors import PermissionDenied
from esafety.installation import Installation


def test_migrations_create_exactly_the_models(inst: Installation) -> None:
    with inst.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], "models and migrations differ: run scripts/regen_initial_migration.py"


def test_upgrade_is_idempotent(inst: Installation, cli) -> None:
    inst.upgrade()
    result = cli("db", "upgrade")
    assert result.code == 0, result.err
    assert "up to date" in result.out


def test_sqlite_uses_wal(inst: Installation) -> None:
    if inst.db.dialect != "sqlite":
        pytest.skip("SQLite only")
    with inst.db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def _two_schools(inst: Installation) -> tuple[int, int]:
    with inst.db.session(SYSTEM) as session:
        a, b = School(slug="alpha", name="Alpha"), School(slug="beta", name="Beta")
        session.add_all([a, b])
        session.flush()
        for school in (a, b):
            session.add(
                Person(
                    school_id=school.id,
                    kind=PersonKind.STAFF,
                    username=f"head.{school.slug}",
                    legal_first_name="Head",
                    legal_last_name=school.name,
                )
            )
        return a.id, b.id


def test_a_school_session_sees_only_its_own_rows(inst: Installation) -> None:
    alpha, _ = _two_schools(inst)
    with inst.db.engine.connect() as conn:
        beta_person = conn.execute(
            text("SELECT id FROM person WHERE username = 'head.beta'")
        ).scalar()
    actor = Actor(name="head.alpha", school_id=alpha)
    with inst.db.session(actor) as session:
        names = session.scalars(select(Person.username)).all()
        assert names == ["head.alpha"]
        assert session.scalar(select(func.count()).select_from(Person)) == 1
        other = session.scalars(select(Person).where(Person.username == "head.beta")).first()
        assert other is None
        # Even by primary key, another school's row is not there.
        assert session.get(Person, beta_person) is None


def test_a_school_session_cannot_write_another_schools_rows(inst: Installation) -> None:
    alpha, beta = _two_schools(inst)
    actor = Actor(name="head.alpha", school_id=alpha)
    with pytest.raises(PermissionDenied, match="another school"), inst.db.session(actor) as session:
        session.add(
            Person(
                school_id=beta,
                kind=PersonKind.PUPIL,
                username="intruder",
                legal_first_name="X",
                legal_last_name="Y",
            )
        )
    with inst.db.session(SYSTEM) as session:
        assert session.scalars(select(Person).where(Person.username == "intruder")).first() is None


def test_new_rows_take_the_sessions_school(inst: Installation) -> None:
    alpha, _ = _two_schools(inst)
    with inst.db.session(Actor(name="x", school_id=alpha)) as session:
        person = Person(
            kind=PersonKind.PUPIL, username="new.pupil", legal_first_name="N", legal_last_name="P"
        )
        session.add(person)
        session.flush()
        assert person.school_id == alpha
