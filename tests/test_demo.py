"""The demo school: created once, a whole primary school, every role able to sign in."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date

import pyotp
from sqlalchemy import func, select

from esafety.audit import Actor, verify_chain
from esafety.demo import DEMO_SLUG, demo_password, ensure_demo
from esafety.directory.calendar import academic_year_start
from esafety.directory.model import (
    AccessGrant,
    Group,
    GroupKind,
    ParentLink,
    Person,
    PersonKind,
    PupilFlag,
    TechnologyRestriction,
    Term,
)
from esafety.directory.upn import normalise_upn
from esafety.directory.years import YearGroup
from esafety.installation import Installation
from esafety.security.model import Account
from esafety.security.passwords import hasher, verify
from esafety.security.roles import TWO_STEP_ROLES, Role

TODAY = date(2025, 11, 12)


def test_demo_school_is_created_once_with_everyone_in_it(inst: Installation) -> None:
    info = ensure_demo(inst, today=TODAY)
    assert info.created and info.school_slug == DEMO_SLUG
    assert info.school_name == "Demo Primary School"
    assert {login.role for login in info.logins} == set(Role)

    with inst.db.session(Actor.system("test")) as session:
        people = session.scalars(select(Person)).all()
        pupils = [p for p in people if p.kind is PersonKind.PUPIL]
        assert 300 <= len(pupils) <= 450
        years = Counter(p.year_group for p in pupils)
        assert set(years) == {
            YearGroup.NURSERY,
            YearGroup.RECEPTION,
            *(YearGroup(f"year{n}") for n in range(1, 7)),
        }
        start = academic_year_start(TODAY)
        for pupil in pupils:
            assert normalise_upn(pupil.upn or "") == pupil.upn
            assert pupil.registration_group is not None
            assert pupil.registration_group.year_group is pupil.year_group
            # Age on 31 August before the school year: Reception children are 4.
            assert pupil.date_of_birth is not None and pupil.year_group is not None
            age = _age_on(pupil.date_of_birth, date(start, 8, 31))
            assert age == pupil.year_group.order + 3, (pupil.year_group, pupil.date_of_birth)
        assert len({p.upn for p in pupils}) == len(pupils)
        classes = session.scalars(select(Group).where(Group.kind == GroupKind.CLASS)).all()
        assert len(classes) == 15
        assert all(
            20 <= sum(1 for p in pupils if p.registration_group_id == c.id) <= 30 for c in classes
        )

        links = session.scalars(select(ParentLink)).all()
        with_parents = {link.child_id for link in links if link.parental_responsibility}
        assert with_parents == {p.id for p in pupils}
        roles = Counter(r for p in people for r in p.role_ids)
        assert roles[Role.TEACHER] >= 15 and roles[Role.GOVERNOR] >= 5
        assert all(roles[role] >= 1 for role in Role)
        assert (session.scalar(select(func.count()).select_from(PupilFlag)) or 0) > 0
        assert session.scalar(select(func.count()).select_from(TechnologyRestriction)) == 3
        assert (session.scalar(select(func.count()).select_from(AccessGrant)) or 0) > 30
        terms = session.scalars(select(Term).order_by(Term.starts_on)).all()
        assert [t.starts_on.year for t in terms] == [start, start + 1, start + 1]

        accounts = {a.person_id: a for a in session.scalars(select(Account))}
        assert len(accounts) == len(Role)  # only the demo logins were hashed
        ph = hasher(inst.settings.security)
        by_username = {p.username: p for p in people}
        for login in info.logins:
            person = by_username[login.username]
            assert login.role in person.role_ids
            account = accounts[person.id]
            assert verify(ph, account.password_hash, demo_password(login.role))
            if login.role in TWO_STEP_ROLES:
                assert account.totp_secret == login.totp_secret
                assert account.totp_enrolled_at is not None
                assert login.otpauth_uri is not None
                assert pyotp.parse_uri(login.otpauth_uri).secret == login.totp_secret
            else:
                assert login.totp_secret is None and account.totp_secret is None
        count, problem = verify_chain(session, inst.audit_head_file)
        assert problem is None and count > len(people)

    again = ensure_demo(inst, today=TODAY)
    assert not again.created
    assert again.logins == info.logins
    with inst.db.session(Actor.system("test")) as session:
        assert session.scalar(select(func.count()).select_from(Person)) == len(people)


def _age_on(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def test_esafety_demo_prints_how_to_sign_in(cli) -> None:
    first = cli("demo")
    assert first.code == 0, first.err
    assert "Created the demo school" in first.out
    for role in Role:
        assert f"demo-{role.value}-password" in first.out
    assert "otpauth://totp/" in first.out
    dsl_line = next(line for line in first.out.splitlines() if line.startswith("DSL: "))
    secret = dsl_line.rsplit(" ", 1)[-1]
    assert len(secret) == 32 and secret in first.out

    second = cli("demo")
    assert second.code == 0 and "Found the demo school" in second.out
    assert secret in second.out  # the same enrolled secret, not a new one

    listed = cli("users", "list", "--role", "dsl", "--json")
    assert listed.code == 0, listed.err
    people = json.loads(listed.out)
    assert [(p["username"], p["roles"], p["school"]) for p in people] == [
        ("demo.dsl", ["dsl"], "demo")
    ]
