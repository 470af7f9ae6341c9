"""The home page for each role."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from esafety.audit import SYSTEM
from esafety.directory.model import (
    Group,
    GroupKind,
    GroupMembership,
    ParentLink,
    Person,
    PersonKind,
    TechnologyRestriction,
)
from esafety.security.roles import Role
from esafety.web.deps import SESSION_COOKIE
from tests.accounts import session_cookie


def _home(client, inst, member):
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, session_cookie(inst, member))
    response = client.get("/")
    assert response.status_code == 200
    return response.text


@pytest.fixture
def class_with_a_restriction(inst, school):
    """Year 3 Rowan, taught by the teacher, with one pupil who may not use technology."""
    with inst.db.session(SYSTEM) as session:
        group = Group(school_id=school.id, kind=GroupKind.CLASS, name="Year 3 Rowan")
        session.add(group)
        session.flush()
        pupil = Person(
            school_id=school.id,
            kind=PersonKind.PUPIL,
            username="ada.pupil",
            legal_first_name="Ada",
            legal_last_name="Lovelace",
            registration_group_id=group.id,
        )
        session.add(pupil)
        session.flush()
        session.add_all(
            [
                GroupMembership(
                    school_id=school.id,
                    group_id=group.id,
                    person_id=school[Role.TEACHER].id,
                    role="teacher",
                ),
                TechnologyRestriction(
                    school_id=school.id,
                    person_id=pupil.id,
                    reason="parent's request",
                    review_on=date.today() + timedelta(days=30),
                ),
                ParentLink(
                    school_id=school.id, parent_id=school[Role.PARENT].id, child_id=pupil.id
                ),
            ]
        )
    return group


def test_teacher_sees_concern_placeholder_class_and_no_technology_list(
    client, inst, school, class_with_a_restriction
):
    html = _home(client, inst, school[Role.TEACHER])
    assert "Record a concern" in html and "Coming later" in html
    assert "Year 3 Rowan: 1 pupils" in html
    assert "Ada Lovelace (Year 3 Rowan)" in html
    assert "parent&#39;s request" not in html  # the reason is on the list's own page
    assert "Safeguarding overview" not in html


def test_dsl_sees_the_safeguarding_overview(client, inst, school):
    html = _home(client, inst, school[Role.DSL])
    assert "Safeguarding overview" in html
    assert "pupils with a vulnerability flag" in html


def test_technician_sees_the_access_register(client, inst, school):
    html = _home(client, inst, school[Role.TECHNICIAN])
    assert "Access register" in html and "current grants" in html


def test_admin_sees_school_set_up(client, inst, school):
    html = _home(client, inst, school[Role.ADMIN])
    assert "School set-up" in html
    assert "esafety roster import FILE --school oakfield" in html
    assert "Record a concern" not in html  # the administrator reads no safeguarding record


def test_parent_sees_their_children(client, inst, school, class_with_a_restriction):
    html = _home(client, inst, school[Role.PARENT])
    assert "Your children" in html and "Ada Lovelace" in html
    assert "Children who may not use technology" not in html


def test_pupil_sees_a_friendly_page_and_no_staff_lists(client, inst, school):
    html = _home(client, inst, school[Role.PUPIL])
    assert "tell a trusted adult" in html
    assert "No-technology list" not in html and "People" not in html


def test_every_role_has_a_home_page(client, inst, school):
    for role in Role:
        html = _home(client, inst, school[role])
        assert 'class="card' in html, role
