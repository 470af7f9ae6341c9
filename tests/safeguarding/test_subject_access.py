"""Subject access export (issue 5 §8; STANDARDS R13): everything held about a person, read
through the access rules and audited, never a secret, third parties redactable."""

from __future__ import annotations

import json
import stat
import time
import zipfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from esafety.audit import Actor, AuditEntry
from esafety.directory.model import ParentLink, Person, PupilFlag, PupilFlagKind
from esafety.errors import InvalidInput, PermissionDenied
from esafety.filtering.categories import Category
from esafety.filtering.decision import Decision
from esafety.filtering.log import DecisionLog, LogEntry
from esafety.filtering.policy import Action
from esafety.safeguarding import concerns, subject_access
from esafety.safeguarding.concerns import About
from esafety.safeguarding.redaction import Redactor, ThirdParty
from esafety.security.model import Account, ApiToken
from esafety.security.roles import Role
from tests.safeguarding.concern_people import MARKER, ConcernSchool, concern_school, record

BLOCKED = Decision(Action.BLOCK, (Category.GAMBLING,), "bet.example", "3", "ks2", "Blocked.")


def _name(cs: ConcernSchool, person_id: int, first: str, last: str, **extra: object) -> None:
    with cs.inst.db.session(Actor.system("test", school_id=cs.id)) as session:
        person = session.get(Person, person_id)
        assert person is not None
        person.legal_first_name, person.legal_last_name = first, last
        for key, value in extra.items():
            setattr(person, key, value)


@dataclass
class Sam:
    cs: ConcernSchool
    bullying: int
    allegation: int
    ella: int


@pytest.fixture
def sam(inst) -> Sam:
    """Sam Carter (the subject), Ella Moss who hurt him, a man on a game, Mr Dan Jones
    who raised it, Rita Carter his mother; an allegation about Mr Tom Price; a concern
    about Ella alone."""
    cs = concern_school(inst)
    _name(cs, cs[Role.PUPIL].id, "Sam", "Carter", date_of_birth=date(2012, 4, 3))
    _name(cs, cs.pupil2.id, "Ella", "Moss", upn="B999999999999")
    _name(cs, cs[Role.TEACHER].id, "Dan", "Jones")
    _name(cs, cs.teacher2.id, "Tom", "Price")
    _name(cs, cs[Role.PARENT].id, "Rita", "Carter")
    _name(cs, cs[Role.DSL].id, "Priya", "Shah")
    with cs.inst.db.session(Actor.system("test", school_id=cs.id)) as session:
        session.add(
            ParentLink(school_id=cs.id, parent_id=cs[Role.PARENT].id, child_id=cs[Role.PUPIL].id)
        )
        session.add(
            PupilFlag(
                school_id=cs.id,
                person_id=cs[Role.PUPIL].id,
                flag=PupilFlagKind.YOUNG_CARER,
                note="cares for his dad",
            )
        )
        session.add(
            ApiToken(
                school_id=cs.id, person_id=cs[Role.PUPIL].id, name="laptop", token_hash="f" * 64
            )
        )
    bullying = record(
        cs,
        about=[
            About(person=cs[Role.PUPIL].username, part="harmed"),
            About(person=cs.pupil2.username, part="harmed_others"),
            About(
                name="Gary Oldman",
                description="an adult who says he is fifteen",
                handle="xXgamerXx",
                part="harmed_others",
            ),
        ],
        narrative=(
            f"Sam said Ella Moss and Gary sent him messages as xXgamerXx; Mr Jones saw them. "
            f"Ella told pupil2.oak she was sorry. {MARKER}"
        ),
    )
    with cs.session(Role.DSL) as session:
        concerns.add_note(session, bullying, "Spoke to Ella's mother and to Rita Carter.")
    allegation = record(
        cs,
        kind="staff_allegation",
        about=[
            About(person=cs.teacher2.username, part="harmed_others"),
            About(person=cs[Role.PUPIL].username, part="harmed"),
        ],
        narrative=f"Sam says Mr Price messaged him at night. {MARKER}",
    )
    about_ella = record(cs, about=[cs.pupil2.username], narrative="Ella alone.")
    return Sam(cs, bullying, allegation, about_ella)


def _export(cs: ConcernSchool, who: Role | None, **kw) -> subject_access.SubjectAccessExport:
    actor = cs.actor(cs[who]) if who is not None else Actor.system("cli", school_id=cs.id)
    with cs.inst.db.session(actor) as session:
        return subject_access.export(
            session, cs[Role.PUPIL].username, data_dir=cs.inst.data_dir, **kw
        )


def _text(export: subject_access.SubjectAccessExport) -> str:
    return json.dumps(export.document, ensure_ascii=False)


def test_the_dsls_export_holds_the_record_and_the_concerns_they_read(sam):
    cs = sam.cs
    export = _export(cs, Role.DSL)
    doc = export.document
    assert (
        doc["person"]["legal_first_name"] == "Sam"
        and doc["person"]["date_of_birth"] == "2012-04-03"
    )
    assert doc["person"]["upn"] == "A123456789012"
    assert doc["person"]["parents_and_carers"][0]["name"] == "Rita Carter"
    assert doc["person"]["vulnerability_flags"][0]["note"] == "cares for his dad"
    assert [t["name"] for t in doc["account"]["api_tokens"]] == ["laptop"]
    assert doc["account"]["has_account"] and doc["account"]["password_set"]
    [concern] = doc["safeguarding"]["concerns"]
    assert concern["id"] == sam.bullying and MARKER in concern["narrative"]
    assert concern["entries"][0]["text"] == "Spoke to Ella's mother and to Rita Carter."
    parts = {p["name"]: p["part"] for p in concern["people"]}
    assert parts == {
        "Sam Carter": "harmed",
        "Ella Moss": "harmed_others",
        "Gary Oldman": "harmed_others",
    }
    # The allegation is the headteacher's alone; the export says so whether or not there is one.
    safeguarding = doc["safeguarding"]
    assert sam.allegation not in [c["id"] for c in safeguarding["concerns_recorded_or_written_in"]]
    assert "Mr Price" not in _text(export)
    assert "only by the headteacher" in doc["export"]["for_review"]
    assert export.review is None


def test_the_headteacher_reads_the_allegation_and_the_server_reads_everything(sam):
    cs = sam.cs
    head = _export(cs, Role.HEADTEACHER).document["safeguarding"]["concerns"]
    assert [c["id"] for c in head] == [sam.allegation]
    everything = _export(cs, None).document["safeguarding"]["concerns"]
    assert [c["id"] for c in everything] == [sam.bullying, sam.allegation]
    assert sam.ella not in [c["id"] for c in everything]


def test_no_secret_ever_leaves(sam):
    cs = sam.cs
    with cs.inst.db.session() as session:
        account = session.get(Account, cs[Role.PUPIL].id)
        assert account is not None and account.password_hash
        secrets = [account.password_hash, "f" * 64]
    dsl = cs[Role.DSL]
    assert dsl.totp_secret
    with cs.inst.db.session() as session:
        dsl_hash = session.get(Account, dsl.id).password_hash
    for who, username in ((Role.DSL, cs[Role.PUPIL].username), (None, dsl.username)):
        actor = cs.actor(cs[who]) if who else Actor.system("cli", school_id=cs.id)
        with cs.inst.db.session(actor) as session:
            text = _text(subject_access.export(session, username))
        for secret in [*secrets, dsl_hash, dsl.totp_secret]:
            assert secret not in text
        assert "password_hash" not in text and "totp_secret" not in text


def test_only_the_dsl_and_headteacher_export(sam):
    cs = sam.cs
    for role in (Role.TEACHER, Role.DEPUTY_DSL, Role.ADMIN, Role.OFFICE):
        with pytest.raises(PermissionDenied, match="subject access"):
            _export(cs, role)


def test_every_read_and_the_export_are_audited(sam):
    cs = sam.cs
    with cs.inst.db.session() as session:
        before = session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1))
    _export(cs, Role.DSL, redact_third_parties=True)
    with cs.inst.db.session() as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.seq > before)).all()
    done = {(e.action, e.object_type, e.object_id, e.actor) for e in entries}
    dsl = cs[Role.DSL].username
    assert ("read", "concern", str(sam.bullying), dsl) in done
    assert ("read", "pupil_flag", None, dsl) not in done  # flags are read by id
    assert any(a == "read" and t == "pupil_flag" for a, t, _, _ in done)
    [made] = [e for e in entries if e.action == "subject_access_export"]
    assert made.object_id == str(cs[Role.PUPIL].id) and made.actor == dsl
    assert made.after == {"redacted": True, "concerns": [sam.bullying]}


def test_redaction_replaces_third_parties_everywhere_and_consistently(sam):
    cs = sam.cs
    export = _export(cs, Role.DSL, redact_third_parties=True)
    text = _text(export)
    for gone in ("Ella", "Moss", "pupil2.oak", "B999999999999", "Gary", "Oldman", "xXgamerXx",
                 "says he is fifteen", "Jones", "Rita", "Priya", "Shah", "dsl.oak", "teacher.oak"):  # fmt: skip
        assert gone not in text, gone
    [concern] = export.document["safeguarding"]["concerns"]
    people = {p["part"] + str(i): p["name"] for i, p in enumerate(concern["people"])}
    ella_label = people["harmed_others1"]
    gary_label = people["harmed_others2"]
    assert ella_label.startswith("[third party ") and gary_label.startswith("[third party ")
    assert ella_label != gary_label
    narrative = concern["narrative"]
    assert narrative.startswith(f"Sam said {ella_label} and {gary_label} sent him messages as ")
    assert f"{ella_label} told {ella_label} she was sorry" in narrative  # name and username
    assert "Mr [third party " in narrative and MARKER in narrative
    # The subject stays; a surname shared with a third party is never redacted alone.
    assert export.document["person"]["legal_last_name"] == "Carter"
    assert concern["people"][0]["name"] == "Sam Carter"
    note = concern["entries"][0]["text"]
    assert note.startswith(f"Spoke to {ella_label}'s mother and to [third party ")
    review = export.review
    assert review is not None
    ella = next(r for r in review["redactions"] if r["label"] == ella_label)
    assert ella["who"] == "Ella Moss" and ella["kind"] == "pupil"
    assert (
        ella["forms"]["Ella Moss"] >= 1 and "safeguarding.concerns[0].narrative" in ella["places"]
    )
    assert "Carter" in review["not_redacted_alone"]


def test_the_export_is_written_as_a_private_zip_with_a_readable_page(sam, tmp_path: Path):
    cs = sam.cs
    export = _export(cs, Role.DSL, redact_third_parties=True)
    written = export.write(tmp_path / "sam.zip")
    assert stat.S_IMODE(written.archive.stat().st_mode) == 0o600
    with zipfile.ZipFile(written.archive) as archive:
        assert sorted(archive.namelist()) == ["subject-access.html", "subject-access.json"]
        page = archive.read("subject-access.html").decode()
        data = json.loads(archive.read("subject-access.json"))
    assert (
        data["safeguarding"]["concerns"][0]["narrative"]
        == export.document["safeguarding"]["concerns"][0]["narrative"]
    )
    assert "Information held about Sam Carter" in page and MARKER in page
    assert "Ella" not in page and "<script" not in page
    assert written.review is not None and "Ella Moss" in written.review.read_text()
    assert stat.S_IMODE(written.review.stat().st_mode) == 0o600
    with pytest.raises(InvalidInput, match="already exists"):
        export.write(tmp_path / "sam.zip")


def test_the_filters_decisions_and_sign_ins_for_them(sam):
    cs = sam.cs
    log = DecisionLog(cs.inst.data_dir)
    log.record(
        LogEntry(time.time(), "10.0.0.7", cs[Role.PUPIL].username, "bet.example", "A", BLOCKED)
    )
    log.record(LogEntry(time.time(), "10.0.0.8", cs.pupil2.username, "ella.example", "A", BLOCKED))
    log.flush()
    decisions = _export(cs, Role.DSL).document["filtering"]["decisions"]
    assert [(d["name"], d["action"]) for d in decisions] == [("bet.example", "block")]


def test_a_member_of_staffs_export_names_the_concerns_they_raised(sam):
    cs = sam.cs
    with cs.inst.db.session(cs.actor(cs[Role.DSL])) as session:
        doc = subject_access.export(session, cs[Role.TEACHER].username).document
    recorded = doc["safeguarding"]["concerns_recorded_or_written_in"]
    # The allegation the teacher raised is not the DSL's to read: not even its number.
    assert [c["id"] for c in recorded] == [sam.bullying, sam.ella]
    assert all(c["raised_it"] for c in recorded)
    assert MARKER not in json.dumps(doc)


def test_the_command_writes_the_export(sam, cli, tmp_path: Path):
    cs = sam.cs
    target = tmp_path / "out.zip"
    result = cli(
        "safeguarding", "subject-access", cs[Role.PUPIL].username, "--to", str(target),
        "--redact-third-parties", "--by", cs[Role.DSL].username,
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "do not send this file" in result.out
    with zipfile.ZipFile(target) as archive:
        data = json.loads(archive.read("subject-access.json"))
    assert data["export"]["made_by"].startswith("[third party ")  # redacted like the rest
    with cs.inst.db.session() as session:
        made = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "subject_access_export")
        ).one()
        assert made.actor == cs[Role.DSL].username
    assert [c["id"] for c in data["safeguarding"]["concerns"]] == [sam.bullying]
    refused = cli(
        "safeguarding", "subject-access", cs[Role.PUPIL].username, "--to", str(tmp_path / "t.zip"),
        "--by", cs[Role.TEACHER].username,
    )  # fmt: skip
    assert refused.code == 2 and "subject access" in refused.err
    unknown = cli("safeguarding", "subject-access", "nobody", "--to", str(tmp_path / "n.zip"))
    assert unknown.code == 2 and "no one with username 'nobody'" in unknown.err


# -- the redactor (pure) ------------------------------------------------------------


def test_redactor_matches_on_word_boundaries_and_keeps_the_subjects_names():
    redactor = Redactor(["Sam Carter"])
    redactor.add(ThirdParty("a", "pupil", names=("Will Carter",), words=("Will", "Carter")))
    redactor.add(
        ThirdParty(
            "b", "member of staff", names=("Ann Lee",), words=("Ann", "Lee"), ids=("ann.lee",)
        )
    )
    out = redactor.text(
        "Will said he will ask Ann (ann.lee) and Mr Lee; Annabel and Carter laughed. will carter"
    )
    assert out == (
        "[third party 1] said he will ask [third party 2] ([third party 2]) and Mr "
        "[third party 2]; Annabel and Carter laughed. [third party 1]"
    )
    assert redactor.review()["not_redacted_alone"] == ["Carter"]
