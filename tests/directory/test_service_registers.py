"""Pupil flags, technology restrictions (000 §4.5) and the access register (003 §7.2)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from esafety.audit import AuditEntry
from esafety.directory import registers, service
from esafety.directory.model import PersonKind, PupilFlagKind
from esafety.errors import InvalidInput, NotFound, PermissionDenied
from esafety.installation import Installation
from esafety.security.roles import Role
from tests.directory.school_setup import SETUP, acting, add_pupil, new_school, staff_actor


@pytest.fixture
def school(inst: Installation) -> int:
    return new_school(inst)


def _pupil(inst: Installation, school_id: int, first: str = "Ada") -> int:
    with acting(inst, school_id) as session:
        return add_pupil(session, first, "Lovelace").id


# -- pupil flags ------------------------------------------------------------------------


def test_dsl_sets_flags_and_every_read_is_audited(inst: Installation, school: int) -> None:
    pupil_id = _pupil(inst, school)
    dsl = staff_actor(inst, school, Role.DSL, username="dsl")
    with acting(inst, school, dsl) as session:
        flag = registers.set_pupil_flag(session, pupil_id, "send", "EHCP for speech and language")
        assert flag.set_by_id == dsl.person_id
        with pytest.raises(InvalidInput, match="already has the flag 'SEND'"):
            registers.set_pupil_flag(session, pupil_id, PupilFlagKind.SEND)
        with pytest.raises(InvalidInput, match="unknown flag 'sen'"):
            registers.set_pupil_flag(session, pupil_id, "sen")
        with pytest.raises(InvalidInput, match="flags are for pupils"):
            registers.set_pupil_flag(session, dsl.person_id or 0, "send")
    with acting(inst, school, dsl) as session:
        (read,) = registers.pupil_flags(session, pupil_id)
        assert read.flag is PupilFlagKind.SEND
    with inst.db.session(SETUP) as session:
        reads = session.scalars(
            select(AuditEntry).where(
                AuditEntry.object_type == "pupil_flag", AuditEntry.action == "read"
            )
        ).all()
    assert [(r.actor, r.object_id) for r in reads] == [("dsl", str(flag.id))]


def test_only_safeguarding_leads_see_or_set_flags(inst: Installation, school: int) -> None:
    pupil_id = _pupil(inst, school)
    teacher = staff_actor(inst, school, Role.TEACHER, username="teacher")
    head = staff_actor(inst, school, Role.HEADTEACHER, username="head")
    with acting(inst, school, teacher) as session:
        with pytest.raises(PermissionDenied, match="set pupil flags"):
            registers.set_pupil_flag(session, pupil_id, "looked_after")
        with pytest.raises(PermissionDenied, match="see pupil flags"):
            registers.pupil_flags(session, pupil_id)
    with acting(inst, school, head) as session:
        assert registers.pupil_flags(session, pupil_id) == []  # may read, not set
        with pytest.raises(PermissionDenied):
            registers.set_pupil_flag(session, pupil_id, "looked_after")


def test_removed_flags_stay_in_the_history(inst: Installation, school: int) -> None:
    pupil_id = _pupil(inst, school)
    with acting(inst, school) as session:
        flag = registers.set_pupil_flag(session, pupil_id, "young_carer")
        registers.remove_pupil_flag(session, flag.id)
        assert registers.pupil_flags(session, pupil_id) == []
        assert len(registers.pupil_flags(session, pupil_id, include_removed=True)) == 1
        with pytest.raises(NotFound):
            registers.remove_pupil_flag(session, flag.id)
        registers.set_pupil_flag(session, pupil_id, "young_carer")  # may be set again


# -- technology restrictions --------------------------------------------------------------


def test_restrictions_are_listed_for_all_staff_with_reviews_due(
    inst: Installation, school: int
) -> None:
    ada, bob = _pupil(inst, school, "Ada"), _pupil(inst, school, "Bob")
    lead = staff_actor(inst, school, Role.ONLINE_SAFETY_LEAD, username="lead")
    ta = staff_actor(inst, school, Role.TEACHING_ASSISTANT, username="ta")
    today = date.today()
    with acting(inst, school, lead) as session:
        first = registers.add_technology_restriction(
            session, ada, "Parents have not signed the AUP", today
        )
        registers.add_technology_restriction(
            session, bob, "Misuse of an iPad", today + timedelta(30)
        )
        assert first.recorded_by_id == lead.person_id
    with acting(inst, school, ta) as session:
        listed = registers.technology_restrictions(session, today=today)
        assert [(e.pupil.legal_first_name, e.review_due) for e in listed] == [
            ("Ada", True),
            ("Bob", False),
        ]
        assert listed[0].restriction.reason == "Parents have not signed the AUP"
        with pytest.raises(PermissionDenied, match="add technology restrictions"):
            registers.add_technology_restriction(session, ada, "x", today)
    with acting(inst, school, lead) as session:
        registers.end_technology_restriction(session, first.id)
        current = registers.technology_restrictions(session)
        assert [e.pupil.legal_first_name for e in current] == ["Bob"]
        history = registers.technology_restrictions(session, include_ended=True)
        assert len(history) == 2
        with pytest.raises(NotFound):
            registers.end_technology_restriction(session, first.id)


def test_restriction_input_is_checked(inst: Installation, school: int) -> None:
    ada = _pupil(inst, school)
    today = date.today()
    with acting(inst, school) as session:
        staff = service.add_person(session, PersonKind.STAFF, "T", "T", roles=["teacher"])
        with pytest.raises(InvalidInput, match="reason is empty"):
            registers.add_technology_restriction(session, ada, " ", today)
        with pytest.raises(InvalidInput, match=r"review date .* is in the past"):
            registers.add_technology_restriction(session, ada, "why", today - timedelta(1))
        with pytest.raises(InvalidInput, match="technology restrictions are for pupils"):
            registers.add_technology_restriction(session, staff.id, "why", today)
        registers.add_technology_restriction(session, ada, "why", today)
        with pytest.raises(InvalidInput, match="already on the list"):
            registers.add_technology_restriction(session, ada, "again", today)


def test_a_volunteer_sees_the_list_a_parent_does_not(inst: Installation, school: int) -> None:
    with acting(inst, school) as session:
        volunteer = service.add_person(session, PersonKind.VOLUNTEER, "Val", "Volunteer")
        parent = service.add_person(session, PersonKind.PARENT, "Pat", "Parent")
    from esafety.audit import Actor

    as_volunteer = Actor("val", volunteer.id, school, frozenset({"volunteer"}))
    as_parent = Actor("pat", parent.id, school, frozenset({"parent"}))
    with acting(inst, school, as_volunteer) as session:
        assert registers.technology_restrictions(session) == []
    with acting(inst, school, as_parent) as session, pytest.raises(PermissionDenied):
        registers.technology_restrictions(session)


# -- the access register ------------------------------------------------------------------


def test_access_register_keeps_who_granted_what_and_when(inst: Installation, school: int) -> None:
    ada = _pupil(inst, school)
    tech = staff_actor(inst, school, Role.TECHNICIAN, username="tech")
    with acting(inst, school, tech) as session:
        wifi = registers.grant_access(session, ada, "Wi-Fi", granted_on=date(2025, 9, 1))
        registers.grant_access(session, ada, "Google Classroom", granted_on=date(2025, 9, 8))
        with pytest.raises(InvalidInput, match="already has access to Wi-Fi"):
            registers.grant_access(session, ada, "Wi-Fi")
        with pytest.raises(InvalidInput, match="before access was granted"):
            registers.revoke_access(session, wifi.id, date(2025, 8, 1))
        registers.revoke_access(session, wifi.id, date(2025, 12, 19))
        registers.grant_access(session, ada, "Wi-Fi", granted_on=date(2026, 1, 5))
    with acting(inst, school, tech) as session:
        history = registers.access_register(session)
        assert [(e.grant.system, e.grant.granted_on, e.current) for e in history] == [
            ("Wi-Fi", date(2026, 1, 5), True),
            ("Google Classroom", date(2025, 9, 8), True),
            ("Wi-Fi", date(2025, 9, 1), False),
        ]
        assert all(e.grant.granted_by_id == tech.person_id for e in history)
        assert history[2].grant.revoked_by_id == tech.person_id
        assert len(registers.access_register(session, system="Wi-Fi")) == 2
        assert len(registers.access_register(session, current_only=True)) == 2
        assert registers.systems_in_use(session) == ["Google Classroom", "Wi-Fi"]
        with pytest.raises(NotFound):
            registers.revoke_access(session, wifi.id)
        with pytest.raises(InvalidInput, match="system is empty"):
            registers.grant_access(session, ada, "  ")


def test_access_register_permissions(inst: Installation, school: int) -> None:
    ada = _pupil(inst, school)
    dsl = staff_actor(inst, school, Role.DSL, username="dsl")
    teacher = staff_actor(inst, school, Role.TEACHER, username="teacher")
    with acting(inst, school, dsl) as session:
        assert registers.access_register(session) == []  # the DSL may read it
        with pytest.raises(PermissionDenied, match="grant access"):
            registers.grant_access(session, ada, "Wi-Fi")
    with acting(inst, school, teacher) as session, pytest.raises(PermissionDenied):
        registers.access_register(session)


def test_registers_do_not_reach_another_school(inst: Installation, school: int) -> None:
    ada = _pupil(inst, school)
    with acting(inst, school) as session:
        grant = registers.grant_access(session, ada, "Wi-Fi").id
        flag = registers.set_pupil_flag(session, ada, "send").id
        restriction = registers.add_technology_restriction(session, ada, "why", date.today()).id
    other = new_school(inst, "eastpark")
    with acting(inst, other) as session:
        assert registers.access_register(session) == []
        assert registers.pupil_flags(session) == []
        assert registers.technology_restrictions(session) == []
        with pytest.raises(NotFound):
            registers.revoke_access(session, grant)
        with pytest.raises(NotFound):
            registers.remove_pupil_flag(session, flag)
        with pytest.raises(NotFound):
            registers.end_technology_restriction(session, restriction)
        with pytest.raises(NotFound):
            registers.grant_access(session, ada, "Wi-Fi")
