"""A pupil's chronology (issue 5 §5; STANDARDS R3): every concern and everything done
about it in time order, filterable, only what the reader may read, every read audited,
linked pupils and siblings visible."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from esafety.audit import Actor, AuditEntry
from esafety.directory.model import ParentLink, Person, PersonKind
from esafety.errors import InvalidInput, NotFound
from esafety.safeguarding import concerns
from esafety.safeguarding.chronology import (
    ChronologyFilter,
    EntryType,
    chronology,
    parse_filter,
)
from esafety.safeguarding.concerns import About
from esafety.safeguarding.kinds import IncidentKind
from esafety.safeguarding.model import Part
from esafety.safeguarding.pupil_index import pupil_index
from esafety.safeguarding.reading import break_glass
from esafety.security.roles import Role
from tests.accounts import Member, add_member
from tests.safeguarding.concern_people import MARKER, ConcernSchool, concern_school


@pytest.fixture
def cs(inst) -> ConcernSchool:
    return concern_school(inst)


def ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


def record(
    cs: ConcernSchool,
    who: Member | Role = Role.TEACHER,
    *,
    kind: str = "online_bullying",
    about: list[About | str] | None = None,
    happened: datetime | None = None,
    narrative: str | None = None,
) -> int:
    with cs.session(who) as session:
        return concerns.record_concern(
            session,
            kind=kind,
            narrative=narrative or f"Sam showed me messages calling him names. {MARKER}",
            happened_at=happened or ago(hours=1),
            about=about if about is not None else [cs[Role.PUPIL].username],
            location="online",
            location_detail="a game's chat",
        ).id


def worked_on(cs: ConcernSchool, concern_id: int) -> None:
    """The DSL keeps evidence, decides on the police (a referral with a reference number),
    adds a note and corrects the narrative."""
    with cs.session(Role.DSL) as session:
        concerns.record_step(session, concern_id, "keep_evidence", note="Screenshots kept")
        concerns.record_step(
            session,
            concern_id,
            "police",
            choice="yes",
            rationale="Threats of violence in the messages",
            reference="CAD-4471",
        )
        concerns.add_note(session, concern_id, "Spoke to Sam's mother on the phone.")
        concerns.correct(session, concern_id, "The chat was on Roblox.", "Named the wrong game")


def test_every_entry_in_time_order_with_decisions_reasons_and_references(cs) -> None:
    earlier = record(cs, happened=ago(days=3), narrative="Called names in a group chat")
    later = record(cs)
    worked_on(cs, later)
    with cs.session(Role.DSL) as session:
        concerns.change_kind(session, earlier, "online_hate", "Racist words were used")
        chron = chronology(session, cs[Role.PUPIL].id)

    assert [c.id for c in chron.concerns] == [earlier, later]
    moments = [e.at for e in chron.entries]
    assert moments == sorted(moments)
    # The older incident comes first: it happened three days ago.
    first = chron.entries[0]
    assert (first.type, first.concern_id) == (EntryType.HAPPENED, earlier)
    types = [e.type for e in chron.entries if e.concern_id == later]
    assert types[:2] == [EntryType.HAPPENED, EntryType.RECORDED]
    assert {EntryType.STEP, EntryType.REFERRAL, EntryType.NOTE, EntryType.CORRECTION} <= set(types)
    police = next(e for e in chron.entries if e.type is EntryType.REFERRAL)
    assert "Involve the police? Yes" in police.details[0]
    assert "Why: Threats of violence in the messages" in police.details
    assert "Police reference: CAD-4471" in police.details
    assert police.by == cs[Role.DSL].username
    recorded = next(
        e for e in chron.entries if e.type is EntryType.RECORDED and e.concern_id == later
    )
    assert "Their part: harmed or at risk" in recorded.details
    assert any(MARKER in line for line in recorded.details)
    change = next(e for e in chron.entries if e.type is EntryType.CHANGE)
    assert change.details[0] == "Online bullying → Online hate"
    assert "Why: Racist words were used" in change.details
    # The concern's kind now is the one it is filed under.
    assert {e.kind for e in chron.entries if e.concern_id == earlier} == {IncidentKind.ONLINE_HATE}


def test_closing_attachments_and_break_glass_are_entries(cs) -> None:
    concern_id = record(cs)
    with cs.session(cs.teacher2) as session:
        break_glass(session, concern_id, "His form tutor needs to know before the trip today")
    with cs.session(Role.DSL) as session:
        chron = chronology(session, cs[Role.PUPIL].id)
    glass = next(e for e in chron.entries if e.type is EntryType.BREAK_GLASS)
    assert glass.by == cs.teacher2.username
    assert "Reason given: His form tutor needs to know before the trip today" in glass.details


def test_filters_by_kind_type_and_dates(cs) -> None:
    bullying = record(cs, happened=ago(days=10))
    welfare = record(cs, kind="pupil_welfare", happened=ago(hours=2))
    worked_on(cs, bullying)
    pupil = cs[Role.PUPIL].id
    with cs.session(Role.DSL) as session:
        everything = chronology(session, pupil)
        by_kind = chronology(session, pupil, parse_filter(kinds=["pupil_welfare"]))
        notes = chronology(session, pupil, parse_filter(types=["note", "referral"]))
        today = datetime.now(UTC).date()
        recent = chronology(session, pupil, ChronologyFilter(date_from=today - timedelta(days=1)))
    assert {e.concern_id for e in by_kind.entries} == {welfare}
    assert [c.id for c in by_kind.concerns] == [welfare]
    assert {e.type for e in notes.entries} == {EntryType.NOTE, EntryType.REFERRAL}
    assert len(notes.entries) == 2 and notes.total_entries == len(everything.entries)
    # Ten days ago is out of the range; what was recorded today is in it.
    assert all(e.at.date() >= today - timedelta(days=2) for e in recent.entries)
    assert not any(
        e.type is EntryType.HAPPENED and e.concern_id == bullying for e in recent.entries
    )
    assert any(e.type is EntryType.HAPPENED and e.concern_id == welfare for e in recent.entries)
    assert "kinds: Worry about" in by_kind.filter.describe()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"types": ["gossip"]}, "type of entry 'gossip'"),
        ({"kinds": ["bullying"]}, "bullying"),
        ({"date_from": "2025-03-10", "date_to": "2025-03-01"}, "the dates run backwards"),
        ({"date_from": "10/03/2025"}, "give a date such as"),
    ],
)
def test_a_bad_filter_says_what_to_fix(args, words) -> None:
    with pytest.raises(InvalidInput, match=words):
        parse_filter(**args)


def test_only_readers_see_a_chronology_and_the_rest_get_not_found(cs) -> None:
    pupil = cs[Role.PUPIL].id
    mine = record(cs, Role.TEACHER)
    other = record(cs, cs.teacher2)
    with cs.session(Role.DSL) as session:
        assert {c.id for c in chronology(session, pupil).concerns} == {mine, other}
    # A teacher reads only what they raised: their chronology holds that one concern.
    with cs.session(Role.TEACHER) as session:
        chron = chronology(session, pupil)
        assert [c.id for c in chron.concerns] == [mine]
        assert not chron.reader_acts
    # A teacher who raised none gets the same answer as for no such pupil.
    with cs.session(cs.teacher2) as session:
        assert [c.id for c in chronology(session, pupil).concerns] == [other]
    with cs.session(cs.teacher2) as session, pytest.raises(NotFound) as refused:
        chronology(session, cs.pupil2.id)
    with cs.session(cs.teacher2) as session, pytest.raises(NotFound) as missing:
        chronology(session, 999999)
    assert str(refused.value).replace(str(cs.pupil2.id), "N") == str(missing.value).replace(
        "999999", "N"
    )
    # The DSL sees an empty chronology of a pupil with no concerns (nothing is hidden).
    with cs.session(Role.DSL) as session:
        assert chronology(session, cs.pupil2.id).entries == ()


def test_a_deputy_does_not_see_a_staff_allegation_in_it_the_headteacher_does(cs) -> None:
    pupil = cs[Role.PUPIL]
    bullying = record(cs)
    allegation = record(
        cs,
        kind="staff_allegation",
        about=[About(person=cs.teacher2.username), About(person=pupil.username)],
        narrative="Mr Tester messaged the pupil on Instagram late at night.",
    )
    with cs.session(Role.DEPUTY_DSL) as session:
        chron = chronology(session, pupil.id)
    assert [c.id for c in chron.concerns] == [bullying]
    assert allegation not in {e.concern_id for e in chron.entries}
    assert "Instagram" not in repr(chron)
    with cs.session(Role.HEADTEACHER) as session:
        head = chronology(session, pupil.id)
    assert [c.id for c in head.concerns] == [allegation]
    assert head.concerns[0].part is Part.HARMED
    # The member of staff it is about never reads it, even as its raiser's colleague.
    with cs.session(cs.teacher2) as session, pytest.raises(NotFound):
        chronology(session, pupil.id)


def test_every_read_and_every_refusal_is_audited(cs) -> None:
    pupil = cs[Role.PUPIL].id
    concern_id = record(cs)
    with cs.session(Role.DSL) as session:
        chronology(session, pupil, parse_filter(types=["note"]))
    with cs.session(cs.teacher2) as session, pytest.raises(NotFound):
        chronology(session, pupil)
    with cs.inst.db.session() as session:
        rows = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.object_type == "chronology")
            .order_by(AuditEntry.seq)
        ).all()
        seen = [(r.actor, r.action, r.object_id, r.after) for r in rows]
    assert seen[0][:3] == (cs[Role.DSL].username, "read", str(pupil))
    assert seen[0][3]["concerns"] == [concern_id]
    assert seen[0][3]["filter"]["types"] == ["note"]
    assert seen[1][:3] == (cs.teacher2.username, "read_refused", str(pupil))


def test_linked_pupils_and_siblings_are_visible_each_with_their_own_part(cs) -> None:
    pupil, witness = cs[Role.PUPIL], cs.pupil2
    sister = add_member(cs.inst, cs.id, "sister.oak", [Role.PUPIL])
    cousin = add_member(cs.inst, cs.id, "cousin.oak", [Role.PUPIL])
    with cs.inst.db.session(Actor.system("test", school_id=cs.id)) as session:
        mother = Person(
            school_id=cs.id,
            kind=PersonKind.PARENT,
            username="mother.oak",
            legal_first_name="Mary",
            legal_last_name="Tester",
        )
        session.add(mother)
        session.flush()
        for child in (pupil.id, sister.id):
            session.add(ParentLink(school_id=cs.id, parent_id=mother.id, child_id=child))
    shared = record(
        cs, about=[About(person=pupil.username), About(person=witness.username, part="witness")]
    )
    record(cs, about=[sister.username], kind="pupil_welfare")
    record(cs, about=[cousin.username])
    with cs.session(Role.DSL) as session:
        chron = chronology(session, pupil.id)
    assert [(p.id, p.concerns) for p in chron.linked] == [(witness.id, ((shared, "witness"),))]
    assert [(p.id, p.concern_count) for p in chron.siblings] == [(sister.id, 1)]
    # The witness's own chronology gives them their own part, not the pupil's (R6).
    with cs.session(Role.DSL) as session:
        theirs = chronology(session, witness.id)
    assert theirs.concerns[0].part is Part.WITNESS
    # A sibling's concern the reader may not read does not make them visible.
    with cs.session(cs.teacher2) as session, pytest.raises(NotFound):
        chronology(session, pupil.id)
    with cs.session(Role.TEACHER) as session:
        assert [p.id for p in chronology(session, pupil.id).siblings] == [sister.id]
    with cs.session(Role.ONLINE_SAFETY_LEAD) as session:
        osl = chronology(session, pupil.id)
    assert (osl.concerns, osl.linked, osl.siblings) == ((), (), ())


def test_the_pupil_list_finds_pupils_with_concerns_and_by_name(cs) -> None:
    record(cs)
    with cs.session(Role.DSL) as session:
        listed = pupil_index(session)
        found = pupil_index(session, cs.pupil2.username)
    assert [(r.id, r.concerns, r.open) for r in listed] == [(cs[Role.PUPIL].id, 1, 1)]
    assert [(r.id, r.concerns) for r in found] == [(cs.pupil2.id, 0)]
    with cs.session(cs.teacher2) as session:
        assert pupil_index(session) == []
        assert pupil_index(session, cs[Role.PUPIL].username) == []
