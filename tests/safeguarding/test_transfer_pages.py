"""The transfer pages (issue 5 §5): the DSL starts a transfer, makes the file (its
passphrase shown once), downloads it, records the sending and the receipt; another school
of the installation imports the file; others with ACT_ON_CONCERNS see nothing."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import date

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from esafety.safeguarding.model import Concern
from esafety.safeguarding.transfer_bundle import open_bundle
from esafety.safeguarding.transfer_model import PupilTransfer
from esafety.security.roles import Role
from esafety.web.app import create_app
from esafety.web.deps import SESSION_COOKIE
from tests.accounts import Member, session_and_csrf
from tests.safeguarding.concern_people import MARKER, ConcernSchool, concern_school, record


@pytest.fixture
def cs(inst) -> ConcernSchool:
    return concern_school(inst)


@pytest.fixture
def client(inst) -> Iterator[TestClient]:
    with TestClient(create_app(inst), follow_redirects=False) as c:
        yield c


def as_member(client: TestClient, cs: ConcernSchool, who: Member | Role) -> dict[str, str]:
    member = cs[who] if isinstance(who, Role) else who
    cookie, csrf = session_and_csrf(cs.inst, member)
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, cookie)
    return {"x-csrf-token": csrf}


def _start(
    client: TestClient, headers: dict[str, str], cs: ConcernSchool, **changes: str
) -> httpx.Response:
    form = {
        "pupil": cs[Role.PUPIL].username,
        "destination_name": "Elm Primary School",
        "destination_urn": "123456",
        "dsl_name": "Erin Elm",
        "dsl_email": "dsl@elm.example",
        "learned_on": date.today().isoformat(),
    } | changes
    response: httpx.Response = client.post("/safeguarding/transfers", data=form, headers=headers)
    return response


def test_the_dsl_sends_a_file_and_another_school_imports_it(
    cs: ConcernSchool, client: TestClient
) -> None:
    record(cs, Role.TEACHER)
    elm = concern_school(cs.inst, "elm")
    headers = as_member(client, cs, Role.DSL)
    listed = client.get("/safeguarding/transfers")
    assert listed.status_code == 200 and "Start a transfer" in listed.text
    assert f'value="{cs[Role.PUPIL].username}"' in listed.text

    bad = _start(client, headers, cs, destination_urn="12")
    assert bad.status_code == 422 and "6 to 8 digits" in html.unescape(bad.text)
    assert 'value="Erin Elm"' in bad.text  # what was typed is kept
    started = _start(client, headers, cs)
    assert started.status_code == 303, started.text
    page_url = started.headers["location"].split("?")[0]
    page = client.get(started.headers["location"])
    assert page.status_code == 200 and "Due" in page.text and "Elm Primary School" in page.text

    made = client.post(page_url + "/export", headers=headers)
    assert made.status_code == 200 and made.headers["cache-control"] == "no-store"
    found = re.search(r'id="passphrase">([A-Z0-9-]+)<', made.text)
    assert found is not None
    passphrase = found.group(1)
    again = client.get(page_url)
    assert passphrase not in again.text  # shown once
    download = client.get(page_url + "/file")
    assert download.status_code == 200
    assert download.headers["content-disposition"].endswith('.escp"')
    assert MARKER.encode() not in download.content
    assert MARKER in open_bundle(download.content, passphrase).records["concerns"][0]["narrative"]

    no_method = client.post(page_url + "/sent", data={"method": ""}, headers=headers)
    assert no_method.status_code == 422 and "choose how the file was sent" in no_method.text
    sent = client.post(page_url + "/sent", data={"method": "esafety_file"}, headers=headers)
    assert sent.status_code == 303, sent.text
    assert "Sent, awaiting receipt" in client.get(page_url).text

    elm_headers = as_member(client, cs, elm[Role.DSL])
    assert "nothing here for you" not in client.get("/safeguarding/transfers/import").text
    files = {"file": ("cp-file.escp", download.content, "application/octet-stream")}
    wrong = client.post(
        "/safeguarding/transfers/import",
        data={"passphrase": "nope"},
        files=files,
        headers=elm_headers,
    )
    assert wrong.status_code == 422 and "passphrase is wrong" in wrong.text
    imported = client.post(
        "/safeguarding/transfers/import",
        data={"passphrase": passphrase},
        files=files,
        headers=elm_headers,
    )
    assert imported.status_code == 200, imported.text
    text = html.unescape(imported.text)
    assert "Elm Primary School received the child-protection file" in text
    assert "Oak Primary School" in text
    with cs.inst.db.session() as session:
        copied = session.scalars(select(Concern).where(Concern.school_id == elm.id)).all()
    assert len(copied) == 1
    assert f"/safeguarding/concerns/{copied[0].id}" in imported.text
    assert "Oak Primary School" in client.get("/safeguarding/transfers").text
    twice = client.post(
        "/safeguarding/transfers/import",
        data={"passphrase": passphrase},
        files=files,
        headers=elm_headers,
    )
    assert twice.status_code == 422 and "was imported on" in twice.text
    # Oak's transfer is not Elm's to see.
    assert client.get(page_url).status_code == 404

    headers = as_member(client, cs, Role.DEPUTY_DSL)
    received = client.post(
        page_url + "/received", data={"acknowledged_by": "Erin Elm"}, headers=headers
    )
    assert received.status_code == 303, received.text
    final = client.get(page_url)
    assert "Receipt acknowledged" in final.text and "Erin Elm" in final.text
    assert "Record the sending" not in final.text  # complete: no more forms
    assert ">Received<" in client.get("/safeguarding/transfers").text


def test_others_who_act_on_concerns_see_no_transfers(cs: ConcernSchool, client: TestClient) -> None:
    headers = as_member(client, cs, Role.DSL)
    started = _start(client, headers, cs)
    page_url = started.headers["location"].split("?")[0]
    headers = as_member(client, cs, Role.HEADTEACHER)
    listed = client.get("/safeguarding/transfers")
    assert listed.status_code == 200 and "nothing here for you" in listed.text
    assert "Pupil Tester" not in listed.text
    assert client.get(page_url).status_code == 404
    assert client.get(page_url + "/file").status_code == 404
    assert (
        client.post(page_url + "/withdraw", data={"reason": "x y"}, headers=headers).status_code
        == 404
    )
    refused = _start(client, headers, cs, pupil=cs.pupil2.username)
    assert refused.status_code == 403 and "DSL and deputies" in refused.text
    with cs.inst.db.session() as session:
        assert len(session.scalars(select(PupilTransfer)).all()) == 1


def test_withdrawing_and_correcting(cs: ConcernSchool, client: TestClient) -> None:
    headers = as_member(client, cs, Role.DSL)
    page_url = _start(client, headers, cs).headers["location"].split("?")[0]
    corrected = client.post(
        page_url + "/correct",
        data={
            "destination_name": "Ash Academy",
            "destination_urn": "123456",
            "dsl_name": "Erin Elm",
            "dsl_email": "dsl@elm.example",
            "learned_on": date.today().isoformat(),
            "reason": "The family chose another school",
        },
        headers=headers,
    )
    assert corrected.status_code == 303, corrected.text
    page = html.unescape(client.get(page_url).text)
    assert "Ash Academy" in page and "Details corrected" in page
    empty = client.post(page_url + "/withdraw", data={"reason": ""}, headers=headers)
    assert empty.status_code == 422 and "the reason for withdrawing it" in empty.text
    gone = client.post(
        page_url + "/withdraw", data={"reason": "The family stayed in the area"}, headers=headers
    )
    assert gone.status_code == 303
    assert "Withdrawn" in client.get(page_url).text
