"""Recording concerns, corrections that never edit, steps and closing (issue 5 §1, §2, §7),
on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text, update

from esafety.errors import InvalidInput, PermissionDenied
from esafety.safeguarding import concerns, reading
from esafety.safeguarding.concerns import About
from esafety.safeguarding.model import Concern, ConcernEntry, ConcernPerson, EntryKind, Part
from esafety.security.roles import Role
from tests.safeguarding.concern_people import (
    MARKER,
    ConcernSchool,
    an_hour_ago,
    concern_school,
    record,
)


@pytest.fixture
def cs(inst) -> ConcernSchool:
    return concern_school(inst)


def _count(cs: ConcernSchool, table: type) -> int:
    with cs.inst.db.session() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def complete_procedure(cs: ConcernSchool, concern_id: int, who: Role = Role.DSL) -> None:
    """Record every step that opens, answering each decision with its first choice."""
    for _ in range(40):
        with cs.session(who) as session:
            concern = reading.find_concern(session, concern_id)
            state = concerns.procedure_state(concern)
            if state.can_close:
                return
            for step_id in state.open:
                step = state.step(step_id).step
                concerns.record_step(
                    session,
                    concern_id,
                    step_id,
                    choice=step.decision.choices[0].id if step.decision else None,
                    rationale="because the facts of this test call for it"
                    if step.decision
                    else None,
                    note=f"did {step_id}",
                )
    raise AssertionError("the procedure never became closable")


# -- recording ----------------------------------------------------------------------


def test_record_a_concern_with_its_people_and_facts(cs: ConcernSchool) -> None:
    with cs.session(Role.TEACHER) as session:
        concern = concerns.record_concern(
            session,
            kind="online_sexual_abuse",
            narrative="Her mother says a man on a game asked Ella for photos.",
            happened_at=an_hour_ago(),
            about=[
                About(person=cs[Role.PUPIL].username),
                About(person=cs.pupil2.username, part="witness"),
                About(
                    name="Gary Oldman",
                    description="an adult who says he is 15",
                    handle="xXgamerXx",
                    part="harmed_others",
                ),
            ],
            location="online",
            location_detail="Roblox chat",
            action_taken="Told the DSL at once.",
            dsl_told_in_person=True,
        )
        concern_id = concern.id
    with cs.inst.db.session() as session:
        stored = session.get(Concern, concern_id)
        assert stored is not None
        assert stored.kind == "online_sexual_abuse"
        assert stored.raised_by_id == cs[Role.TEACHER].id
        assert stored.dsl_told_in_person and stored.location == "online"
        parts = {(p.person_id, p.part, p.outside_handle) for p in stored.people}
        assert parts == {
            (cs[Role.PUPIL].id, Part.HARMED, None),
            (cs.pupil2.id, Part.WITNESS, None),
            (None, Part.HARMED_OTHERS, "xXgamerXx"),
        }
        assert stored.noticed_at >= stored.happened_at


def test_a_pupil_may_be_named_by_upn_and_a_time_without_zone_is_the_schools(
    cs: ConcernSchool,
) -> None:
    with cs.session(Role.TEACHER) as session:
        concern = concerns.record_concern(
            session,
            kind="pupil_welfare",
            narrative="He said he has not slept because of a group chat.",
            happened_at=datetime(2025, 7, 1, 10, 0),  # BST: 09:00 UTC
            noticed_at=datetime(2025, 7, 1, 11, 0),
            about=["a123456789012"],
        )
        assert concern.happened_at == datetime(2025, 7, 1, 9, 0, tzinfo=UTC)
        assert concern.people[0].person_id == cs[Role.PUPIL].id


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "bullying"}, "unknown"),
        ({"narrative": "   "}, r"narrative\) is empty"),
        ({"about": []}, "say who the concern is about"),
        ({"about": ["nobody.here"]}, "no one of this school"),
        ({"about": [About(name="J. S.")]}, "not initials"),
        ({"about": [About(name="JS")]}, "not initials"),
        ({"happened_at": datetime.now(UTC) + timedelta(days=1)}, "in the future"),
        (
            {"noticed_at": datetime.now(UTC) - timedelta(days=3)},
            "is before it happened",
        ),
        ({"location": "the moon"}, "expected one of"),
    ],
)
def test_bad_facts_are_refused_with_what_to_fix_and_nothing_written(
    cs: ConcernSchool, changes: dict[str, object], message: str
) -> None:
    facts: dict[str, object] = {
        "kind": "online_bullying",
        "narrative": "He was sent cruel messages.",
        "happened_at": an_hour_ago(),
        "about": [cs[Role.PUPIL].username],
    } | changes
    with pytest.raises(InvalidInput, match=message), cs.session(Role.TEACHER) as session:
        concerns.record_concern(session, **facts)  # type: ignore[arg-type]
    assert _count(cs, Concern) == 0
    assert _count(cs, ConcernPerson) == 0


def test_an_outside_adult_known_only_by_handle_may_be_recorded(cs: ConcernSchool) -> None:
    concern_id = record(
        cs, kind="online_sexual_abuse", about=[About(handle="night_rider", description="adult")]
    )
    assert concern_id > 0


def test_pupils_cannot_record_concerns(cs: ConcernSchool) -> None:
    with pytest.raises(PermissionDenied), cs.session(Role.PUPIL) as session:
        concerns.record_concern(
            session,
            kind="online_bullying",
            narrative="x y z",
            happened_at=an_hour_ago(),
            about=[cs.pupil2.username],
        )


def test_linking_never_copies_one_persons_part_to_another(cs: ConcernSchool) -> None:
    concern_id = record(
        cs,
        about=[
            About(person=cs[Role.PUPIL].username, part="harmed"),
            About(person=cs.pupil2.username, part="harmed_others"),
        ],
    )
    with cs.session(Role.DSL) as session:
        concerns.link_person(
            session, concern_id, About(person=cs[Role.TEACHER].username, part="witness"), "saw it"
        )
    with cs.session(Role.DSL) as session:
        concern = reading.open_concern(session, concern_id).concern
        parts = {p.person_id: p.part for p in concern.linked}
    assert parts == {
        cs[Role.PUPIL].id: Part.HARMED,
        cs.pupil2.id: Part.HARMED_OTHERS,
        cs[Role.TEACHER].id: Part.WITNESS,
    }


# -- never edited, never deleted ------------------------------------------------------


def test_a_correction_is_a_new_entry_and_the_original_stays(cs: ConcernSchool) -> None:
    concern_id = record(cs, narrative="He said Tom sent it.")
    with cs.session(Role.TEACHER) as session:  # the one who raised it
        concerns.correct(session, concern_id, "He said Tim sent it.", "I misheard the name")
    with cs.session(Role.DSL) as session:
        concern = reading.open_concern(session, concern_id).concern
        assert concern.narrative == "He said Tom sent it."
        [entry] = concern.entries
        assert entry.kind is EntryKind.CORRECTION and entry.field == "narrative"
        assert entry.text == "He said Tim sent it." and entry.reason == "I misheard the name"
        assert entry.made_by == cs[Role.TEACHER].username


def test_a_correction_needs_its_reason(cs: ConcernSchool) -> None:
    concern_id = record(cs)
    with pytest.raises(InvalidInput, match="reason"), cs.session(Role.TEACHER) as session:
        concerns.correct(session, concern_id, "new words", " ")


def test_changes_of_kind_and_date_are_recorded_beside_the_original(cs: ConcernSchool) -> None:
    concern_id = record(cs, kind="online_bullying")
    earlier = an_hour_ago() - timedelta(days=1)
    with cs.session(Role.DSL) as session:
        concerns.change_kind(session, concern_id, "online_hate", "the messages were racist")
        concerns.change_happened_at(session, concern_id, earlier, "it began the day before")
    with cs.session(Role.DSL) as session:
        concern = reading.open_concern(session, concern_id).concern
        assert concern.kind == "online_bullying"
        assert concern.current_kind == "online_hate"
        assert concern.current_happened_at == earlier
        kinds = [(e.kind, e.old_kind, e.new_kind) for e in concern.entries]
        assert kinds[0] == (EntryKind.KIND_CHANGED, "online_bullying", "online_hate")


def test_the_one_who_raised_it_cannot_change_its_kind(cs: ConcernSchool) -> None:
    concern_id = record(cs)
    with pytest.raises(PermissionDenied), cs.session(Role.TEACHER) as session:
        concerns.change_kind(session, concern_id, "online_hate", "because I think so")


def _edit_narrative(cs: ConcernSchool, concern_id: int) -> None:
    with cs.inst.db.session() as session:
        concern = session.get(Concern, concern_id)
        assert concern is not None
        concern.narrative = "something else"


def _delete(cs: ConcernSchool, concern_id: int) -> None:
    with cs.inst.db.session() as session:
        concern = session.get(Concern, concern_id)
        assert concern is not None
        for row in [*concern.people, concern]:
            session.delete(row)


def _bulk_edit(cs: ConcernSchool) -> None:
    with cs.inst.db.session() as session:
        session.execute(update(ConcernEntry).values(text="x"))


def test_editing_or_deleting_a_concern_is_refused(cs: ConcernSchool) -> None:
    concern_id = record(cs)
    with pytest.raises(PermissionDenied, match="never edited"):
        _edit_narrative(cs, concern_id)
    with pytest.raises(PermissionDenied, match="never deleted"):
        _delete(cs, concern_id)
    with pytest.raises(PermissionDenied, match="bulk"):
        _bulk_edit(cs)
    with cs.session(Role.DSL) as session:
        assert MARKER in reading.open_concern(session, concern_id).concern.narrative


# -- steps and closing ----------------------------------------------------------------


def test_a_step_waiting_for_another_is_refused(cs: ConcernSchool) -> None:
    concern_id = record(cs)
    with pytest.raises(InvalidInput, match="first record"), cs.session(Role.DSL) as session:
        concerns.record_step(session, concern_id, "sanctions", choice="no", rationale="x y z")


def test_a_decision_needs_its_reason(cs: ConcernSchool) -> None:
    concern_id = record(cs, kind="staff_allegation", about=[cs[Role.TEACHER].username])
    with (
        pytest.raises(InvalidInput, match="needs the reason"),
        cs.session(Role.HEADTEACHER) as session,
    ):
        concerns.record_step(session, concern_id, "harm_test", choice="met")


def test_closing_is_refused_until_every_required_step_is_settled(cs: ConcernSchool) -> None:
    concern_id = record(cs)
    with pytest.raises(InvalidInput) as refused, cs.session(Role.DSL) as session:
        concerns.close_concern(session, concern_id, outcome="resolved")
    assert "cannot be closed yet" in str(refused.value)
    assert "keep_evidence" in str(refused.value) and "inform_parents" in str(refused.value)
    complete_procedure(cs, concern_id)
    with cs.session(Role.DSL) as session:
        closed = concerns.close_concern(session, concern_id)
        assert closed.status == "closed" and closed.outcome == "did outcome"
        assert closed.closed_by == cs[Role.DSL].username
    with pytest.raises(InvalidInput, match="closed"), cs.session(Role.DSL) as session:
        concerns.record_step(session, concern_id, "report_to_service")


def test_steps_are_kept_in_order_and_a_correction_is_a_new_record(cs: ConcernSchool) -> None:
    concern_id = record(cs)
    with cs.session(Role.DSL) as session:
        concerns.record_step(session, concern_id, "keep_evidence", note="screenshots kept")
        concerns.record_step(
            session,
            concern_id,
            "keep_evidence",
            note="screenshots kept by the DSL",
            corrects=True,
            correction_reason="said who",
        )
    with cs.session(Role.DSL) as session:
        concern = reading.open_concern(session, concern_id).concern
        assert [(s.step_id, s.corrects) for s in concern.steps] == [
            ("keep_evidence", False),
            ("keep_evidence", True),
        ]
        state = concerns.procedure_state(concern)
        assert state.step("keep_evidence").record.note == "screenshots kept by the DSL"  # type: ignore[union-attr]
        assert len(state.step("keep_evidence").history) == 2


# -- sealed at rest -----------------------------------------------------------------


def test_narratives_are_not_stored_in_plaintext(cs: ConcernSchool) -> None:
    concern_id = record(cs)
    with cs.session(Role.DSL) as session:
        concerns.add_note(session, concern_id, f"note {MARKER}")
    with cs.inst.db.session() as session:
        raw = session.execute(text("SELECT narrative FROM concern")).scalar_one()
        assert MARKER.encode() not in bytes(raw)
        note = session.execute(text("SELECT text FROM concern_entry")).scalar_one()
        assert MARKER.encode() not in bytes(note)
    cs.inst.db.dispose()  # close connections so the WAL is the file's own
    if cs.inst.db.dialect == "sqlite":
        files = list(cs.inst.data_dir.glob("*.db*")) + list(cs.inst.data_dir.glob("*.sqlite*"))
        assert files, "no SQLite file found"
        for path in files:
            assert MARKER.encode() not in path.read_bytes(), path
    with cs.session(Role.DSL) as session:
        assert MARKER in reading.open_concern(session, concern_id).concern.narrative
