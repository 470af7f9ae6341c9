"""Incident procedures as state machines (issue 5 §2): pure, no database."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from esafety.errors import InvalidInput
from esafety.safeguarding.kinds import IncidentKind, KindInfo, reader_roles
from esafety.safeguarding.procedures import (
    ProcedureState,
    StepOutcome,
    StepRecord,
    StepStatus,
    ensure_closable,
    kind,
    kinds,
    state,
    validate,
)
from esafety.security.roles import Role

LONDON = ZoneInfo("Europe/London")
#: A Wednesday morning in term.
T0 = datetime(2025, 3, 12, 9, 0, tzinfo=LONDON)

GRAVE = {
    "illegal_content",
    "indecent_images_of_children",
    "youth_produced_sexual_imagery",
    "online_sexual_abuse",
    "sexual_violence_harassment",
    "radicalisation",
    "staff_allegation",
}
ISSUE_KINDS = GRAVE | {
    "online_bullying",
    "online_hate",
    "filtering_breach",
    "data_breach",
    "parent_carer_concern",
    "technology_misuse",
}


class Log:
    """A concern's records, each checked by validate() before it is kept (as the service will)."""

    def __init__(self, which: str) -> None:
        self.kind = kind(which)
        self.records: list[StepRecord] = []
        self.clock = T0

    def add(self, step_id: str, **fields: object) -> StepRecord:
        self.clock += timedelta(minutes=5)
        fields.setdefault("done_at", self.clock)
        fields.setdefault("done_by", "dsl.jones")
        record = validate(self.kind, StepRecord(step_id=step_id, **fields), self.records)  # type: ignore[arg-type]
        self.records.append(record)
        return record

    def refused(self, step_id: str, match: str, **fields: object) -> None:
        before = list(self.records)
        with pytest.raises(InvalidInput, match=match):
            self.add(step_id, **fields)
        assert self.records == before  # nothing half-written

    @property
    def state(self) -> ProcedureState:
        return state(self.kind, self.records)

    def status(self, step_id: str) -> StepStatus:
        return self.state.step(step_id).status


# -- the catalogue -------------------------------------------------------------------------


def test_every_kind_the_issue_names_is_in_the_catalogue_in_enum_order() -> None:
    ids = [k.id.value for k in kinds()]
    assert ids == [k.value for k in IncidentKind]
    assert set(ids) >= ISSUE_KINDS
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("info", kinds(), ids=lambda k: k.id.value)
def test_every_kind_has_required_steps_cited_and_ends_with_closing(info: KindInfo) -> None:
    own = [s for s in info.steps if not s.closing]
    assert any(s.required for s in own), f"{info.id} has no required step of its own"
    assert [s.id for s in info.steps if s.closing] == ["outcome", "debrief", "changes"]
    assert info.title and info.description and info.title != info.id.value
    cited = re.compile(r"\b00[0-4]\b|KCSIE|UKCIS|GDPR")
    for step in info.steps:
        assert cited.search(step.source), f"{info.id}.{step.id} cites no source"
        assert re.fullmatch(r"[a-z][a-z0-9_]*", step.id)
        assert step.guidance.strip()
    # The outcome waits for every required step of the procedure itself.
    outcome = info.step("outcome")
    assert {s.id for s in own if s.required} <= set(outcome.after)


def test_grave_kinds_are_the_ones_the_dsl_must_see_at_once() -> None:
    assert {k.id.value for k in kinds() if k.grave} == GRAVE


def test_images_are_refused_for_sexual_images_of_children_with_the_reason() -> None:
    refusing = {k.id.value for k in kinds() if k.refuses_images}
    assert {"youth_produced_sexual_imagery", "indecent_images_of_children"} <= refusing
    assert "online_bullying" not in refusing
    reason = kind("youth_produced_sexual_imagery").image_refusal
    assert reason is not None and "describe" in reason


def test_who_reads_each_kind() -> None:
    allegation = kind("staff_allegation")
    assert reader_roles(allegation) == {Role.HEADTEACHER}
    assert reader_roles(allegation, about_headteacher=True) == {Role.CHAIR_OF_GOVERNORS}
    assert reader_roles(kind("youth_produced_sexual_imagery")) == {Role.DSL, Role.DEPUTY_DSL}
    for which in ("filtering_breach", "technology_misuse", "data_breach"):
        assert Role.ONLINE_SAFETY_LEAD in reader_roles(kind(which))
    assert Role.ONLINE_SAFETY_LEAD not in reader_roles(kind("online_bullying"))
    # A school names its own online-safety kinds: the default no longer applies.
    assert Role.ONLINE_SAFETY_LEAD in reader_roles(
        kind("online_bullying"), online_safety_kinds={"online_bullying"}
    )
    assert Role.ONLINE_SAFETY_LEAD not in reader_roles(
        kind("filtering_breach"), online_safety_kinds=set()
    )
    for info in kinds():
        assert Role.ADMIN not in reader_roles(info)
        assert Role.ADMIN not in reader_roles(info, about_headteacher=True)


def test_unknown_kind_names_the_valid_ids() -> None:
    with pytest.raises(InvalidInput, match="unknown kind of incident 'sexting'") as caught:
        kind("sexting")
    assert "youth_produced_sexual_imagery" in str(caught.value)
    with pytest.raises(InvalidInput, match="did you mean 'online_bullying'"):
        kind("online_bulying")
    assert kind(" Online Bullying ").id is IncidentKind.ONLINE_BULLYING
    with pytest.raises(InvalidInput, match="unknown kind"):
        state("nope", [])


def test_unknown_step_names_the_kinds_steps() -> None:
    log = Log("online_bullying")
    with pytest.raises(InvalidInput, match="unknown step 'delete_images'") as caught:
        log.add("delete_images")
    assert "keep_evidence" in str(caught.value)
    assert log.records == []


# -- closing -------------------------------------------------------------------------------


def test_a_new_concern_cannot_close_and_says_why() -> None:
    log = Log("online_bullying")
    now = log.state
    assert not now.can_close
    assert "keep_evidence" in now.remaining_required
    assert "keep_evidence" in now.open
    assert "outcome" in now.blocked
    assert any("keep_evidence" in line for line in now.reasons)
    assert any(line.startswith("'Record the outcome' (outcome) waits for") for line in now.reasons)
    with pytest.raises(InvalidInput, match=r"cannot be closed yet: .*keep_evidence"):
        ensure_closable(now)


def test_closing_is_blocked_until_the_last_required_step_then_allowed() -> None:
    log = Log("online_bullying")
    log.add("keep_evidence")
    log.add("investigate")
    log.add("support")
    log.add("sanctions", choice="no", rationale="Both pupils apologised; a first incident.")
    log.add("police", choice="no")
    log.add("inform_parents", choice="yes")
    assert log.state.open == ("report_to_service", "outcome")  # optional steps never block
    log.refused("debrief", "cannot be recorded yet: first record 'Record the outcome'")
    log.add("outcome", note="Messages stopped; both families spoken to.")
    log.add("debrief", outcome=StepOutcome.NOT_APPLICABLE, rationale="A small first incident.")
    assert not log.state.can_close
    assert log.state.remaining_required == ("changes",)
    log.add("changes", choice="no")
    assert log.state.can_close
    assert log.state.reasons == ()
    ensure_closable(log.state)
    assert log.status("report_to_service") is StepStatus.OPEN  # optional, still open


def test_not_applicable_with_a_reason_settles_a_step_and_unblocks_what_waits_for_it() -> None:
    log = Log("filtering_breach")
    assert log.status("report_technical") is StepStatus.BLOCKED
    log.refused(
        "record_address",
        "say why it does not apply",
        outcome=StepOutcome.NOT_APPLICABLE,
    )
    log.refused(
        "record_address",
        "say why it does not apply",
        outcome=StepOutcome.NOT_APPLICABLE,
        rationale="   ",
    )
    log.add(
        "record_address",
        outcome=StepOutcome.NOT_APPLICABLE,
        rationale="It was an app on a pupil's tablet, not a web page.",
    )
    assert log.status("record_address") is StepStatus.NOT_APPLICABLE
    assert log.status("report_technical") is StepStatus.OPEN
    assert "record_address" not in log.state.remaining_required


def test_decisions_and_the_outcome_cannot_be_skipped() -> None:
    log = Log("youth_produced_sexual_imagery")
    log.refused(
        "viewing",
        "always applies: answer the decision",
        outcome=StepOutcome.NOT_APPLICABLE,
        rationale="n/a",
    )
    for step in ("viewing", "secure_device", "block_and_isolate", "risk_assessment"):
        assert log.status(step) is StepStatus.OPEN
    log = Log("pupil_welfare")
    log.add("refer_social_care", choice="no", rationale="Below threshold; early help offered.")
    log.add("support")
    log.add("inform_parents", choice="yes")
    log.refused(
        "outcome",
        "always applies: record it as done",
        outcome=StepOutcome.NOT_APPLICABLE,
        rationale="none",
    )


# -- youth-produced sexual imagery ----------------------------------------------------------


def _ypsi_up_to_referrals(log: Log) -> None:
    log.add("viewing", choice="not_viewed")
    log.add("secure_device", note="Phone switched off, in the DSL's safe.")
    log.add(
        "block_and_isolate",
        outcome=StepOutcome.NOT_APPLICABLE,
        rationale="Sent between personal phones, never on the school's network.",
    )
    log.add("risk_assessment")
    log.add("refer_social_care", choice="yes", rationale="Year 6 pupil, coercion suspected.")
    log.add("refer_police", choice="no", rationale="UKCIS: no adult involved, no coercion.")


def test_ypsi_deletion_is_blocked_until_the_dsl_confirms_no_agency_needs_the_images() -> None:
    log = Log("youth_produced_sexual_imagery")
    assert log.status("delete_images") is StepStatus.BLOCKED
    log.refused("delete_images", "cannot be recorded yet: first record .*confirm_deletion_safe")
    _ypsi_up_to_referrals(log)
    # Still blocked: the referrals are decided but the DSL has not confirmed.
    assert log.state.step("delete_images").waiting_for == ("confirm_deletion_safe",)
    log.refused("delete_images", "confirm_deletion_safe")
    log.refused("confirm_deletion_safe", "needs the reason", choice="confirmed")
    log.add(
        "confirm_deletion_safe",
        choice="confirmed",
        rationale="Social care (ref 12345) do not need them; police not involved.",
    )
    assert log.status("delete_images") is StepStatus.OPEN
    log.add("delete_images", note="Both pupils deleted the images in front of the DSL.")
    assert log.status("delete_images") is StepStatus.DONE


def test_ypsi_images_kept_for_an_agency_are_not_deleted() -> None:
    log = Log("youth_produced_sexual_imagery")
    _ypsi_up_to_referrals(log)
    log.add("confirm_deletion_safe", choice="keep", rationale="Social care asked us to wait.")
    assert log.status("delete_images") is StepStatus.NOT_NEEDED
    assert "delete_images" not in log.state.remaining_required
    log.refused("delete_images", "is not needed: 'confirm_deletion_safe' was answered 'keep'")


def test_ypsi_referral_waits_for_the_risk_assessment() -> None:
    log = Log("youth_produced_sexual_imagery")
    log.refused(
        "refer_police",
        r"first record 'Carry out a risk assessment' \(risk_assessment\)",
        choice="no",
        rationale="x",
    )


def test_parents_are_told_unless_that_puts_the_child_at_risk_which_needs_the_reason() -> None:
    log = Log("youth_produced_sexual_imagery")
    log.add("risk_assessment")
    log.refused("inform_parents", "needs the reason", choice="no")
    log.refused("inform_parents", "needs the reason", choice="no", rationale="  \n ")
    record = log.add("inform_parents", choice="no", rationale="  Father is the suspected abuser.  ")
    assert record.rationale == "Father is the suspected abuser."  # cleaned


def test_a_decision_needs_a_known_choice_and_other_steps_take_none() -> None:
    log = Log("online_bullying")
    log.refused("police", r"choose an answer to 'Involve the police\?' \(yes, no\)")
    log.refused("police", "unknown choice 'maybe': expected one of: yes, no", choice="maybe")
    log.refused("keep_evidence", "is not a decision", choice="yes")
    log.refused(
        "keep_evidence",
        "has no choice",
        outcome=StepOutcome.NOT_APPLICABLE,
        rationale="Nothing kept.",
        choice="yes",
    )
    log.add("police", choice="no")  # "no" needs no reason for bullying


# -- records: twice, corrections, order ---------------------------------------------------


def test_a_step_cannot_be_recorded_twice_but_a_correction_supersedes_it() -> None:
    log = Log("radicalisation")
    log.add("prevent_referral", choice="no", rationale="Curiosity after a news story.")
    log.refused(
        "prevent_referral",
        "already recorded by dsl.jones at 2025-03-12T09:05.*record a correction",
        choice="yes",
        rationale="Changed my mind.",
    )
    log.refused(
        "prevent_referral",
        "say why it is being corrected",
        choice="yes",
        rationale="Further searches found.",
        corrects=True,
    )
    log.add(
        "prevent_referral",
        choice="yes",
        rationale="Further searches found.",
        reference="PR-2025-0042",
        corrects=True,
        correction_reason="New information from the filter log on 14 March.",
    )
    current = log.state.step("prevent_referral")
    assert current.record is not None and current.record.choice == "yes"
    assert [r.choice for r in current.history] == ["no", "yes"]


def test_corrections_need_something_to_correct_and_reasons_need_a_correction() -> None:
    log = Log("radicalisation")
    log.refused(
        "support",
        "has no record to correct",
        corrects=True,
        correction_reason="typo",
    )
    log.refused("support", "a correction reason belongs to a correction", correction_reason="x")


def test_a_step_cannot_be_done_before_what_it_waits_for() -> None:
    log = Log("filtering_breach")
    log.add("record_address", done_at=T0 + timedelta(hours=2))
    log.refused("block", "before 'record_address'", done_at=T0 + timedelta(hours=1))
    log.add("block", done_at=T0 + timedelta(hours=3))


def test_who_and_when_are_required() -> None:
    log = Log("online_hate")
    log.refused("keep_evidence", "say who did it", done_by="  ")
    log.refused("keep_evidence", "has no zone", done_at=datetime(2025, 3, 12, 9, 0))


def test_a_step_done_in_the_future_is_refused_when_the_time_is_given() -> None:
    info = kind("online_hate")
    later = StepRecord("keep_evidence", "dsl.jones", T0 + timedelta(hours=1))
    with pytest.raises(InvalidInput, match="is in the future"):
        validate(info, later, [], now=T0)
    assert validate(info, later, [], now=T0 + timedelta(hours=1)) == later


def test_a_reference_number_belongs_to_a_referral() -> None:
    log = Log("online_hate")
    log.refused("keep_evidence", "is not a referral", reference="ABC")
    log.add("police", choice="yes", rationale="Threats of violence.", reference="CAD 123")


def test_a_correction_that_changes_a_decision_flags_the_steps_that_followed_it() -> None:
    log = Log("staff_allegation")
    log.add("harm_test", choice="not_met", rationale="Rude message, no child harmed.")
    log.add("low_level_concern")
    assert log.state.step("low_level_concern").conflict is None
    log.add(
        "harm_test",
        choice="met",
        rationale="Messages asked the pupil to keep a secret.",
        corrects=True,
        correction_reason="The full message thread came to light.",
    )
    stale = log.state.step("low_level_concern")
    assert stale.status is StepStatus.DONE
    assert stale.conflict == "recorded, but 'harm_test' is now 'met'"
    assert log.status("lado_referral") is StepStatus.OPEN


def test_records_of_steps_the_kind_lacks_are_kept_aside() -> None:
    stray = StepRecord("delete_images", "dsl.jones", T0)
    now = state("online_bullying", [stray])
    assert now.unknown == (stray,)
    assert not now.can_close


# -- staff allegations and due times --------------------------------------------------------


def test_staff_allegation_meeting_a_harm_test_goes_to_the_lado_within_one_working_day() -> None:
    log = Log("staff_allegation")
    friday = datetime(2025, 3, 14, 15, 30, tzinfo=LONDON)
    before = state(log.kind, [], aware_at=friday)
    assert before.step("lado_referral").status is StepStatus.BLOCKED
    log.add("harm_test", choice="met", rationale="Test 3: messages to a pupil at night.")
    lado = state(log.kind, log.records, aware_at=friday, now=friday).step("lado_referral")
    assert lado.status is StepStatus.OPEN
    assert lado.step.referral == "LADO"
    assert lado.due_at == datetime(2025, 3, 17, 15, 30, tzinfo=LONDON)  # Monday
    assert not lado.overdue
    monday_evening = datetime(2025, 3, 17, 18, 0, tzinfo=LONDON)
    late = state(log.kind, log.records, aware_at=friday, now=monday_evening)
    assert late.overdue == ("lado_referral",)
    assert log.status("low_level_concern") is StepStatus.NOT_NEEDED
    # A bank holiday on the Monday moves it to Tuesday.
    holiday = state(log.kind, log.records, aware_at=friday, holidays={date(2025, 3, 17)})
    assert holiday.step("lado_referral").due_at == datetime(2025, 3, 18, 15, 30, tzinfo=LONDON)


def test_staff_allegation_below_the_threshold_is_a_low_level_concern() -> None:
    log = Log("staff_allegation")
    log.refused("lado_referral", "first record .*harm_test")
    log.add("harm_test", choice="not_met", rationale="Followed a parent on social media.")
    assert log.status("lado_referral") is StepStatus.NOT_NEEDED
    log.refused("lado_referral", "is not needed: 'harm_test' was answered 'not_met'")
    assert log.status("low_level_concern") is StepStatus.OPEN
    assert log.status("disciplinary") is StepStatus.BLOCKED
    log.add("low_level_concern")
    assert log.status("disciplinary") is StepStatus.OPEN


def test_a_reportable_data_breach_is_due_at_the_ico_within_72_hours() -> None:
    log = Log("data_breach")
    log.add("contain")
    log.add("tell_dpo")
    log.add("assess_risk", choice="reportable", rationale="Safeguarding notes e-mailed out.")
    aware = T0
    ico = state(log.kind, log.records, aware_at=aware, now=aware + timedelta(hours=71))
    assert ico.step("report_ico").due_at == aware + timedelta(hours=72)
    assert ico.overdue == ()
    late = state(log.kind, log.records, aware_at=aware, now=aware + timedelta(hours=72))
    assert late.overdue == ("report_ico",)
    log.add("report_ico", reference="ICO/2025/001")
    done = state(log.kind, log.records, aware_at=aware, now=aware + timedelta(days=5))
    assert done.overdue == ()


def test_a_data_breach_that_is_not_reportable_has_no_ico_step_due() -> None:
    log = Log("data_breach")
    log.add("contain")
    log.add("tell_dpo")
    log.add("assess_risk", choice="not_reportable", rationale="Encrypted laptop, recovered.")
    ico = state(log.kind, log.records, aware_at=T0, now=T0 + timedelta(days=10))
    assert ico.step("report_ico").status is StepStatus.NOT_NEEDED
    assert ico.step("report_ico").due_at is None
    assert ico.overdue == ()


def test_due_times_need_a_zone() -> None:
    with pytest.raises(InvalidInput, match="has no zone"):
        state("data_breach", [], aware_at=datetime(2025, 3, 12, 9, 0))
    # UTC is a zone like any other.
    utc = state("data_breach", [], aware_at=datetime(2025, 3, 12, 9, 0, tzinfo=UTC))
    assert utc.step("report_ico").due_at is not None


# -- every procedure can be finished, whichever way its decisions go ------------------------


def _finish(info: KindInfo, pick: int) -> tuple[int, ProcedureState]:
    """Record open required steps in order until the concern can close; count the steps."""
    log = Log(info.id.value)
    count = 0
    while not log.state.can_close:
        ready = [s for s in log.state.steps if s.status is StepStatus.OPEN and s.step.required]
        assert ready, f"{info.id}: stuck with {log.state.reasons}"
        step = ready[0].step
        fields: dict[str, object] = {}
        if step.decision is not None:
            choices = step.decision.choices
            fields = {"choice": choices[pick % len(choices)].id, "rationale": "Because so."}
        log.add(step.id, **fields)
        count += 1
    # One record fewer and it could not close: the last required step was what it waited for.
    assert not state(info, log.records[:-1]).can_close
    return count, log.state


@pytest.mark.parametrize("pick", [0, 1, 2])
@pytest.mark.parametrize("info", kinds(), ids=lambda k: k.id.value)
def test_every_procedure_can_be_finished_and_not_before(info: KindInfo, pick: int) -> None:
    count, final = _finish(info, pick)
    assert count >= 4  # the kind's own required steps and the three closing steps
    assert final.can_close
    assert all(s.settled for s in final.steps if s.step.required)
