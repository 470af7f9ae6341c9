"""Filter service: the policy resolver (pure), lists, assignments, entries, who is asking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from esafety.audit import Actor
from esafety.directory import service as directory
from esafety.directory.model import PersonKind
from esafety.errors import InvalidInput, NotFound, PermissionDenied
from esafety.filtering import asking, service
from esafety.filtering.assignment import Assignment, PersonGroups, default_policy, policy_for
from esafety.filtering.model import FilterList, SchoolFilterList
from esafety.filtering.store import ListStore
from esafety.installation import Installation
from esafety.security.roles import Role
from tests.directory.school_setup import acting, add_pupil, new_school, staff_actor

# -- the resolver (pure) ------------------------------------------------------------------

PUPIL = PersonGroups(
    person_id=7, group_ids=(30, 31), year="year4", key_stage="ks2", roles=("pupil",), pupil=True
)


def test_the_most_specific_assignment_wins() -> None:
    everything = [
        Assignment("role", "pupil", "guests"),
        Assignment("key_stage", "ks2", "ks2"),
        Assignment("year", "year4", "ks1"),
        Assignment("group", "31", "staff"),
        Assignment("group", "30", "eyfs"),
        Assignment("person", "7", "ks2"),
    ]
    order = ["person", "group", "year", "key_stage", "role"]
    expected = ["ks2", "eyfs", "ks1", "ks2", "guests"]
    for level, policy in zip(order, expected, strict=True):
        left = [a for a in everything if order.index(a.kind) >= order.index(level)]
        found = policy_for(PUPIL, left)
        assert found is not None and found.kind == level and found.policy_id == policy


def test_the_first_group_listed_wins_within_a_level() -> None:
    found = policy_for(PUPIL, [Assignment("group", "31", "ks1"), Assignment("group", "30", "eyfs")])
    assert found == Assignment("group", "30", "eyfs")


def test_swiggle_to_year_4_safe_search_from_year_5() -> None:
    # 003 §7.1: two year-group assignments.
    rules = [Assignment("year", "year4", "ks1"), Assignment("year", "year5", "ks2")]
    year5 = PersonGroups(person_id=8, year="year5", key_stage="ks2", pupil=True)
    assert policy_for(PUPIL, rules) == rules[0]
    assert policy_for(year5, rules) == rules[1]


def test_nobody_assigned_gets_the_built_in_default() -> None:
    assert policy_for(PUPIL, [Assignment("person", "8", "staff")]) is None
    assert default_policy(PUPIL) == "ks2"
    assert default_policy(PersonGroups(1, key_stage="ks1", pupil=True)) == "ks1"
    assert default_policy(PersonGroups(1, key_stage="ks3", pupil=True)) == "ks2"
    assert default_policy(PersonGroups(1, pupil=True)) == "eyfs"
    assert default_policy(PersonGroups(1, staff=True)) == "staff"
    assert default_policy(PersonGroups(1)) == "guests"


# -- with a database ----------------------------------------------------------------------


def _domains(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "list.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_school_lists_are_the_schools_own(inst: Installation, tmp_path: Path) -> None:
    store = ListStore(inst.data_dir)
    one, two = new_school(inst, "one"), new_school(inst, "two")
    with inst.db.session(acting_system()) as session:
        shared = service.import_list(
            session, store, _domains(tmp_path, "bet.example"), "domains", "gambling", name="bets"
        )
        assert isinstance(shared.list, FilterList)
    with acting(inst, one) as session:
        own = service.import_list(
            session, store, _domains(tmp_path, "chat.example"), "domains", "chat", name="chats"
        )
        assert isinstance(own.list, SchoolFilterList) and own.parsed.entry_count == 1
        assert [r.name for r in service.list_lists(session)] == ["bets", "chats"]
    with acting(inst, two) as session:
        assert [r.name for r in service.list_lists(session)] == ["bets"]
        ks2 = service.check(session, store, "x.bet.example", policy_id="ks2")
        assert ks2.decision.blocked and ks2.host == "x.bet.example"
        assert not service.check(session, store, "chat.example", policy_id="ks2").decision.blocked
    with acting(inst, one) as session:
        assert service.check(session, store, "chat.example", policy_id="ks2").decision.blocked


def acting_system() -> Actor:
    return Actor.system("test")


def test_a_bad_category_names_the_allowed_ids(inst: Installation, tmp_path: Path) -> None:
    with inst.db.session(acting_system()) as session, pytest.raises(InvalidInput) as caught:
        service.import_list(
            session, ListStore(inst.data_dir), _domains(tmp_path, "a.example"), "domains", "gamblng"
        )
    assert "did you mean 'gambling'" in str(caught.value) and "self_harm" in str(caught.value)


def test_assignments_choose_the_policy(inst: Installation) -> None:
    school = new_school(inst)
    with acting(inst, school) as session:
        pupil = add_pupil(session, year="Year 4", class_name="4B")
        asker, why = asking.asker_for_person(session, pupil)
        assert asker.policy_id == "ks2" and "built-in" in why
        asking.assign_policy(session, "ks1", "year", "Year 4")
        assert asking.asker_for_person(session, pupil)[0].policy_id == "ks1"
        asking.assign_policy(session, "eyfs", "group", "4B")
        assert asking.asker_for_person(session, pupil)[0].policy_id == "eyfs"
        asking.assign_policy(session, "ks2", "person", pupil.username)
        asker, why = asking.asker_for_person(session, pupil)
        assert asker.policy_id == "ks2" and "their own" in why and "4B" in asker.groups
        with pytest.raises(InvalidInput, match="unknown policy 'ks9'"):
            asking.assign_policy(session, "ks9", "year", "Year 4")
        with pytest.raises(NotFound, match="no group is named"):
            asking.assign_policy(session, "ks1", "group", "9Z")
        with pytest.raises(InvalidInput, match="unknown year"):
            asking.assign_policy(session, "ks1", "year", "Year 40")


def test_a_teacher_cannot_assign_policies(inst: Installation) -> None:
    school = new_school(inst)
    teacher = staff_actor(inst, school, Role.TEACHER)
    with acting(inst, school, teacher) as session, pytest.raises(PermissionDenied):
        asking.assign_policy(session, "ks1", "year", "Year 4")


def test_school_entries_come_before_lists(inst: Installation, tmp_path: Path) -> None:
    store = ListStore(inst.data_dir)
    school = new_school(inst)
    with acting(inst, school) as session:
        service.import_list(session, store, _domains(tmp_path, "games.example"), "domains", "games")
        assert service.check(session, store, "games.example", policy_id="ks2").decision.blocked
        entry = asking.add_school_entry(session, "GAMES.example.", "allow", "maths games")
        assert entry.target == "games.example"
        result = service.check(session, store, "games.example", policy_id="ks2")
        assert not result.decision.blocked and result.decision.rule == f"school entry #{entry.id}"
        with pytest.raises(InvalidInput, match="reason"):
            asking.add_school_entry(session, "x.example", "block", " ")


def test_who_is_at_an_address(inst: Installation) -> None:
    school = new_school(inst)
    now = datetime(2025, 3, 12, 9, 0, tzinfo=UTC)
    with acting(inst, school) as session:
        pupil = add_pupil(session, year="Year 1", class_name="1A")
        directory.add_person(session, PersonKind.STAFF, "Tess", "Teach", roles=[Role.TEACHER])
        asking.add_subnet(session, "10.1.0.0/16", policy_id="ks2")
        asking.add_subnet(session, "10.1.2.0/24", group="1A")
        asking.assign_policy(session, "eyfs", "group", "1A")
        assert asking.who_is_at(session, "192.0.2.1", now=now).how == "unknown device"
        assert asking.who_is_at(session, "10.1.9.9", now=now).asker.policy_id == "ks2"
        ipads = asking.who_is_at(session, "::ffff:10.1.2.3", now=now)
        assert ipads.how == "subnet 10.1.2.0/24" and ipads.asker.policy_id == "eyfs"
        asking.record_sign_in(
            session, "10.1.2.3", pupil.username, "api", timedelta(hours=1), now=now
        )
        found = asking.who_is_at(session, "10.1.2.3", now=now + timedelta(minutes=5))
        assert found.person is not None and found.person.id == pupil.id
        assert found.how == "sign-in (api)" and found.asker.policy_id == "eyfs"
        later = asking.who_is_at(session, "10.1.2.3", now=now + timedelta(hours=2))
        assert later.person is None and later.how == "subnet 10.1.2.0/24"
        with pytest.raises(InvalidInput, match="not an IP address"):
            asking.record_sign_in(session, "pc-12", pupil.username, "api", timedelta(hours=1))
        with pytest.raises(InvalidInput, match="sign-in source"):
            asking.record_sign_in(session, "10.0.0.1", pupil.username, "wifi", timedelta(hours=1))
        with pytest.raises(InvalidInput, match="give 1 s to"):
            asking.record_sign_in(session, "10.0.0.1", pupil.username, "api", timedelta(days=3))
        with pytest.raises(InvalidInput, match="a group or a policy"):
            asking.add_subnet(session, "10.2.0.0/16")
        with pytest.raises(InvalidInput, match="write it as"):
            asking.add_subnet(session, "10.2.0.1/16", policy_id="ks1")
