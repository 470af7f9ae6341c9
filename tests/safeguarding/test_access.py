"""Who may read a concern (issue 5 §3): the pure rules, without a database."""

from __future__ import annotations

import pytest

from esafety.safeguarding.access import (
    ConcernFacts,
    Grounds,
    Linked,
    Reader,
    access,
    all_reader_roles,
    break_glass_problem,
)
from esafety.safeguarding.catalogue import kind
from esafety.safeguarding.kinds import IncidentKind
from esafety.security.roles import TWO_STEP_ROLES, Role

PUPIL, TEACHER, RAISER, HEAD, OTHER = 1, 2, 3, 4, 5


def facts(kind_id: str, *linked: Linked, raised_by: int = RAISER) -> ConcernFacts:
    return ConcernFacts(kind(kind_id), raised_by, linked or (Linked(PUPIL, "harmed"),))


def reader(role: Role, person_id: int = OTHER) -> Reader:
    return Reader(person_id, frozenset({role.value}))


@pytest.mark.parametrize("kind_id", [k.value for k in IncidentKind])
def test_admin_reads_no_kind(kind_id: str) -> None:
    assert not access(reader(Role.ADMIN), facts(kind_id)).can_read


@pytest.mark.parametrize("role", [Role.DSL, Role.DEPUTY_DSL])
def test_dsl_and_deputies_read_concerns_about_pupils(role: Role) -> None:
    for kind_id in ("online_bullying", "youth_produced_sexual_imagery", "pupil_welfare"):
        granted = access(reader(role), facts(kind_id))
        assert granted.grounds is Grounds.ROLE and granted.can_act


def test_a_teacher_reads_only_what_they_raised() -> None:
    assert access(reader(Role.TEACHER, RAISER), facts("online_bullying")).grounds is Grounds.RAISED
    assert not access(reader(Role.TEACHER, RAISER), facts("online_bullying")).can_act
    assert not access(reader(Role.TEACHER, OTHER), facts("online_bullying")).can_read


def test_staff_allegations_are_the_headteachers_alone() -> None:
    allegation = facts("staff_allegation", Linked(TEACHER, "harmed_others", frozenset({"teacher"})))
    assert access(reader(Role.HEADTEACHER), allegation).can_read
    for role in (Role.DSL, Role.DEPUTY_DSL, Role.ONLINE_SAFETY_LEAD, Role.CHAIR_OF_GOVERNORS):
        assert not access(reader(role), allegation).can_read, role


def test_an_allegation_about_the_head_is_the_chairs_alone() -> None:
    about_head = facts(
        "staff_allegation", Linked(HEAD, "harmed_others", frozenset({"headteacher"}))
    )
    assert access(reader(Role.CHAIR_OF_GOVERNORS), about_head).can_read
    assert not access(reader(Role.HEADTEACHER, HEAD), about_head).can_read
    assert not access(reader(Role.DEPUTY_DSL), about_head).can_read


def test_the_person_a_concern_is_about_never_reads_it_by_role() -> None:
    about_dsl = facts("pupil_welfare", Linked(OTHER, "harmed_others", frozenset({"dsl"})))
    assert not access(reader(Role.DSL, OTHER), about_dsl).can_read
    assert break_glass_problem(reader(Role.DSL, OTHER), about_dsl) is not None


def test_the_online_safety_lead_reads_the_schools_kinds() -> None:
    osl = reader(Role.ONLINE_SAFETY_LEAD)
    assert access(osl, facts("filtering_breach")).can_read
    assert access(osl, facts("technology_misuse")).can_read
    assert access(osl, facts("data_breach")).can_read
    assert not access(osl, facts("online_bullying")).can_read
    chosen = {"online_bullying"}
    assert access(osl, facts("online_bullying"), online_safety_kinds=chosen).can_read
    assert not access(osl, facts("filtering_breach"), online_safety_kinds=chosen).can_read


def test_break_glass_is_for_staff() -> None:
    assert break_glass_problem(reader(Role.TEACHER), facts("online_bullying")) is None
    assert break_glass_problem(reader(Role.PARENT), facts("online_bullying")) is not None
    assert break_glass_problem(reader(Role.ADMIN), facts("online_bullying")) is not None


def test_every_reader_role_signs_in_with_two_steps() -> None:
    assert all_reader_roles() <= TWO_STEP_ROLES
    assert Role.ADMIN not in all_reader_roles()
