"""Wi-Fi RADIUS accounting: real Accounting-Requests built and sent by pyrad's client over
loopback UDP to the listener, with the sign-ins checked in the database and through
``who_is_at``; the DNS filter learning of a RADIUS sign-in at once (issue 4 §6)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import pytest
from pydantic import SecretStr
from pyrad import packet
from pyrad.client import Client, Timeout
from sqlalchemy import select

from esafety.config import DnsSettings, RadiusSettings
from esafety.db import utcnow
from esafety.directory.model import PersonKind
from esafety.directory.service import add_person
from esafety.events import subscribe
from esafety.filtering import asking, service
from esafety.filtering.dns_service import DnsService
from esafety.filtering.model import ClientSignIn, SignInSource
from esafety.filtering.radius import (
    Accounting,
    RadiusListener,
    dictionary,
    sign_in_ttl,
    username_candidates,
)
from esafety.filtering.serve_parts import ServeParts
from esafety.filtering.sign_ins import SignInEnded, SignInRecorded
from esafety.filtering.store import ListStore
from esafety.installation import Installation
from esafety.security.roles import Role
from tests.directory.school_setup import acting, add_pupil, new_school
from tests.filtering.loop_thread import LoopThread

SECRET = "wifi-controller-secret"
ADDRESS = "10.20.0.5"


@pytest.fixture
def school(inst: Installation) -> tuple[int, str]:
    school_id = new_school(inst, "westpark")
    with acting(inst, school_id) as session:
        pupil = add_pupil(session, "Ada", "Owen", year="Year 4", class_name="4B")
        return school_id, pupil.username


@pytest.fixture
def listener(inst: Installation, school: tuple[int, str]) -> Iterator[RadiusListener]:
    settings = RadiusSettings(port=0, secret=SecretStr(SECRET))
    running = RadiusListener(inst, settings)
    loop = LoopThread()
    loop.run(running.start())
    try:
        yield running
    finally:
        loop.run(running.close())
        loop.stop()


@pytest.fixture
def client(listener: RadiusListener) -> Iterator[Client]:
    made = Client(
        server="127.0.0.1",
        acctport=listener.port,
        secret=SECRET.encode(),
        dict=dictionary(),
        retries=1,
        timeout=5,
    )
    try:
        yield made
    finally:
        made._CloseSocket()


def accounting(client: Client, status: str, user: str | None, **attributes: Any) -> Any:
    request = client.CreateAcctPacket()
    request["Acct-Status-Type"] = status
    if user is not None:
        request["User-Name"] = user
    for name, value in attributes.items():
        request[name.replace("_", "-")] = value
    return client.SendPacket(request)


def sign_ins(inst: Installation, school_id: int) -> list[ClientSignIn]:
    with acting(inst, school_id) as session:
        return list(session.scalars(select(ClientSignIn).order_by(ClientSignIn.id)))


def who(inst: Installation, school_id: int, address: str) -> str | None:
    with acting(inst, school_id) as session:
        found = asking.who_is_at(session, address)
        return found.person.username if found.person is not None else None


@pytest.fixture
def events() -> Iterator[list[Any]]:
    seen: list[Any] = []
    stop = subscribe("filtering.sign_in.>", seen.append)
    try:
        yield seen
    finally:
        stop()


# -- the protocol, end to end -------------------------------------------------------------


def test_a_start_signs_the_pupil_in_until_three_interim_updates_are_missed(
    inst: Installation, school: tuple[int, str], client: Client, events: list[Any]
) -> None:
    school_id, username = school
    reply = accounting(
        client,
        "Start",
        f"{username}@westpark.sch.uk",  # a UPN-looking name: the realm is stripped
        Framed_IP_Address=ADDRESS,
        Acct_Session_Id="5F3A-0001",
        Calling_Station_Id="AA-BB-CC-DD-EE-01",
        Acct_Interim_Interval=600,
    )
    assert reply.code == packet.AccountingResponse
    [row] = sign_ins(inst, school_id)
    assert (row.client, row.source) == (ADDRESS, SignInSource.RADIUS)
    assert row.expires_at - row.signed_in_at == timedelta(minutes=30)
    assert who(inst, school_id, ADDRESS) == username
    assert [type(e) for e in events] == [SignInRecorded]
    assert events[0].client == ADDRESS and events[0].person_id == row.person_id


def test_an_interim_update_renews_and_a_stop_ends_the_sign_in(
    inst: Installation,
    school: tuple[int, str],
    client: Client,
    listener: RadiusListener,
    events: list[Any],
) -> None:
    school_id, username = school
    accounting(client, "Start", username, Framed_IP_Address=ADDRESS, Session_Timeout=3600)
    [first] = sign_ins(inst, school_id)
    assert first.expires_at - first.signed_in_at == timedelta(hours=1)
    time.sleep(0.01)
    accounting(client, "Interim-Update", username, Framed_IP_Address=ADDRESS, Session_Timeout=7200)
    [renewed] = sign_ins(inst, school_id)  # the same sign-in, not a second one
    assert renewed.id == first.id and renewed.expires_at > first.expires_at
    reply = accounting(client, "Stop", username, Framed_IP_Address=ADDRESS, Acct_Terminate_Cause=1)
    assert reply.code == packet.AccountingResponse
    assert who(inst, school_id, ADDRESS) is None
    assert [type(e) for e in events] == [SignInRecorded, SignInEnded]
    counters = listener.counters
    assert (counters.sign_ins_started, counters.sign_ins_renewed, counters.sign_ins_ended) == (
        1,
        1,
        1,
    )


def test_a_stop_without_an_address_is_matched_by_its_session_id(
    inst: Installation, school: tuple[int, str], client: Client
) -> None:
    school_id, username = school
    accounting(client, "Start", username, Framed_IP_Address=ADDRESS, Acct_Session_Id="S-42")
    assert who(inst, school_id, ADDRESS) == username
    accounting(client, "Stop", username, Acct_Session_Id="S-42")
    assert who(inst, school_id, ADDRESS) is None


def test_a_new_person_on_the_address_ends_the_last_ones_sign_in(
    inst: Installation, school: tuple[int, str], client: Client
) -> None:
    school_id, username = school
    with acting(inst, school_id) as session:
        other = add_pupil(session, "Bea", "Ray", year="Year 5", class_name="5A").username
    accounting(client, "Start", username, Framed_IP_Address=ADDRESS)
    accounting(client, "Start", other, Framed_IP_Address=ADDRESS)
    assert who(inst, school_id, ADDRESS) == other
    now = utcnow()
    active = [r for r in sign_ins(inst, school_id) if r.expires_at > now]
    assert len(active) == 1


def test_a_wrong_secret_gets_no_answer_and_nothing_is_stored(
    inst: Installation, school: tuple[int, str], listener: RadiusListener
) -> None:
    school_id, username = school
    forger = Client(
        server="127.0.0.1",
        acctport=listener.port,
        secret=b"not-the-secret",
        dict=dictionary(),
        retries=1,
        timeout=0.5,
    )
    try:
        with pytest.raises(Timeout):
            accounting(forger, "Start", username, Framed_IP_Address=ADDRESS)
    finally:
        forger._CloseSocket()
    assert listener.counters.bad_authenticator == 1
    assert listener.counters.answered == 0
    assert sign_ins(inst, school_id) == []


def test_an_unknown_user_is_answered_counted_and_logged_once(
    inst: Installation,
    school: tuple[int, str],
    client: Client,
    listener: RadiusListener,
    caplog: pytest.LogCaptureFixture,
) -> None:
    school_id, _ = school
    with caplog.at_level(logging.INFO, logger="esafety.filtering.radius"):
        for _ in range(2):
            reply = accounting(client, "Start", "visitor.phone", Framed_IP_Address=ADDRESS)
            assert reply.code == packet.AccountingResponse
    assert sign_ins(inst, school_id) == []
    assert listener.counters.unknown_users == 2
    said = [r for r in caplog.records if "visitor.phone" in r.getMessage()]
    assert len(said) == 1


def test_a_start_before_dhcp_is_answered_and_the_interim_brings_the_address(
    inst: Installation, school: tuple[int, str], client: Client, listener: RadiusListener
) -> None:
    school_id, username = school
    accounting(client, "Start", username, Acct_Session_Id="S-7")
    assert sign_ins(inst, school_id) == []
    assert listener.counters.without_address == 1
    accounting(client, "Interim-Update", username, Acct_Session_Id="S-7", Framed_IP_Address=ADDRESS)
    assert who(inst, school_id, ADDRESS) == username


def test_garbage_datagrams_do_not_stop_the_listener(
    inst: Installation, school: tuple[int, str], client: Client, listener: RadiusListener
) -> None:
    school_id, username = school
    valid = client.CreateAcctPacket(User_Name=username)
    valid["Acct-Status-Type"] = "Start"
    raw = valid.RequestPacket()
    garbage = [
        b"",
        b"\x04",
        b"\x04\x01\x00\x14",  # a header shorter than it says
        b"\x04\x01\xff\xff" + bytes(16),  # longer than it is
        b"\x04\x01\x00\x18" + bytes(16) + b"\x28\x04\x00\x00",  # an integer of two octets
        b"\x01\x01\x00\x14" + bytes(16),  # an Access-Request on the accounting port
        raw[:-3],  # a real request cut short
        bytes(range(256)) * 4,
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for datagram in garbage:
            sender.sendto(datagram, ("127.0.0.1", listener.port))
    reply = accounting(client, "Start", username, Framed_IP_Address=ADDRESS)
    assert reply.code == packet.AccountingResponse
    assert who(inst, school_id, ADDRESS) == username
    counters = listener.counters
    assert counters.malformed + counters.not_accounting + counters.bad_authenticator == len(garbage)


def test_a_full_queue_leaves_requests_unanswered_and_counted(
    inst: Installation, school: tuple[int, str]
) -> None:
    # Not started: nothing takes from the queue, so the second request finds it full.
    listener = RadiusListener(inst, RadiusSettings(port=0, secret=SecretStr(SECRET), queue=1))
    request = packet.AcctPacket(dict=dictionary(), secret=SECRET.encode(), User_Name="x")
    request["Acct-Status-Type"] = "Start"
    raw = request.RequestPacket()
    listener.received(raw, ("127.0.0.1", 5000))
    listener.received(raw, ("127.0.0.1", 5000))
    assert listener.counters.dropped_busy == 1


def test_the_listener_needs_a_secret(inst: Installation) -> None:
    from esafety.errors import ConfigError

    with pytest.raises(ConfigError, match=r"\[radius\] secret"):
        RadiusListener(inst, RadiusSettings())


def test_its_counters_are_in_the_metrics_while_it_runs(listener: RadiusListener) -> None:
    from esafety import metrics

    assert "radius" in metrics.registry.names()
    text = metrics.render()
    assert "esafety_radius_requests_total 0" in text
    assert "esafety_radius_queue_length 0" in text
    assert "# TYPE esafety_radius_bad_authenticator_total counter" in text


# -- pure parts ---------------------------------------------------------------------------


def test_user_names_are_tried_as_usernames_first() -> None:
    assert username_candidates("ada.o@westpark.sch.uk") == ["ada.o", "ada.o@westpark.sch.uk"]
    assert username_candidates("WESTPARK\\ada.o") == ["ada.o", "WESTPARK\\ada.o"]
    assert username_candidates(" ada.o ") == ["ada.o"]


@pytest.mark.parametrize(
    ("interval", "timeout", "expected"),
    [
        (None, None, timedelta(hours=8)),
        (600, None, timedelta(minutes=30)),
        (None, 3600, timedelta(hours=1)),
        (600, 600, timedelta(minutes=10)),
        (5, None, timedelta(minutes=1)),  # never shorter than a minute
        (86_400, None, timedelta(hours=24)),  # never longer than a day
    ],
)
def test_a_sign_in_lasts_until_three_updates_are_missed_or_the_session_ends(
    interval: int | None, timeout: int | None, expected: timedelta
) -> None:
    given = Accounting("Start", session_timeout=timeout, interim_interval=interval)
    assert sign_in_ttl(given, timedelta(hours=8)) == expected


# -- the DNS filter learns of it at once --------------------------------------------------


def _blocked(port: int, client: str) -> bool:
    """Whether the DNS filter blocks the social-media name for ``client`` (allowed names
    get SERVFAIL: there is no upstream in this test)."""
    query = dns.message.make_query("chatty.example", "A")
    reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=3, source=client)
    return reply.rcode() != dns.rcode.SERVFAIL


def test_a_radius_sign_in_reaches_the_dns_filter_without_waiting_for_its_poll(
    inst: Installation, school: tuple[int, str], tmp_path: Path
) -> None:
    school_id, _ = school
    listed = tmp_path / "social.txt"
    listed.write_text("chatty.example\n")
    with acting(inst, school_id) as session:
        service.import_list(session, ListStore(inst.data_dir), listed, "domains", "social_media")
        teacher = add_person(
            session, PersonKind.STAFF, "Sam", "Teach", roles=[Role.TEACHER], job_title="Teacher"
        ).username
    settings = inst.settings.model_copy(
        update={"radius": RadiusSettings(port=0, secret=SecretStr(SECRET))}
    )
    serving = Installation(settings)
    # Polls an hour apart: only the sign-in event can make it read who is where again.
    dns_settings = DnsSettings(port=0, refresh_seconds=3600, lists_poll_seconds=3600)
    dns_filter = DnsService(serving, dns_settings)
    parts = ServeParts(serving)
    loop = LoopThread()
    try:
        loop.run(dns_filter.start())
        loop.run(parts.start(dns_filter))
        assert parts.radius is not None
        # An unknown device gets the strictest pupil policy: social media is blocked.
        assert _blocked(dns_filter.port, "127.0.0.9")
        radius = Client(
            server="127.0.0.1",
            acctport=parts.radius.port,
            secret=SECRET.encode(),
            dict=dictionary(),
            retries=1,
            timeout=5,
        )
        try:
            accounting(radius, "Start", teacher, Framed_IP_Address="127.0.0.9")
        finally:
            radius._CloseSocket()
        # The teacher signed in on the Wi-Fi: staff may use social media.
        deadline = time.monotonic() + 10
        while _blocked(dns_filter.port, "127.0.0.9"):
            assert time.monotonic() < deadline, "the DNS filter did not learn of the sign-in"
            time.sleep(0.05)
        assert _blocked(dns_filter.port, "127.0.0.10")  # nobody else's address changed
    finally:
        loop.run(dns_filter.close())
        loop.run(parts.close())
        serving.close()
        loop.stop()


def test_the_sign_ins_api_takes_the_same_route_to_the_dns_filter(
    inst: Installation, events: list[Any]
) -> None:
    from fastapi.testclient import TestClient

    from esafety.audit import SYSTEM
    from esafety.security import service as security
    from esafety.web.app import create_app
    from tests.accounts import add_member, make_school

    school = make_school(inst, "api")
    pupil = add_member(inst, school.id, "pip.api", [Role.PUPIL])
    token, _ = security.create_token(inst, school[Role.TECHNICIAN].id, "mdm", actor=SYSTEM)
    with TestClient(create_app(inst)) as client:
        answer = client.post(
            "/api/v1/filtering/sign-ins",
            json={"client": "10.1.2.3", "username": pupil.username, "source": "mdm"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 201, answer.text
    [event] = events
    assert isinstance(event, SignInRecorded)
    assert (event.client, event.person_id, event.source) == ("10.1.2.3", pupil.id, "mdm")


def test_esafety_serve_runs_the_listener_and_stops_cleanly(
    inst: Installation, school: tuple[int, str], cli_env: dict[str, str]
) -> None:
    import os
    import subprocess
    import sys

    from tests.pg import free_port

    _, username = school
    esafety = Path(sys.executable).with_name("esafety")
    web_port, radius_port = free_port(), free_port()
    env = {
        **os.environ,
        **cli_env,
        "PYTHONUNBUFFERED": "1",
        "ESAFETY_DNS__PORT": "0",
        "ESAFETY_RADIUS__SECRET": SECRET,
    }
    process = subprocess.Popen(
        [str(esafety), "serve", "--port", str(web_port), "--radius-port", str(radius_port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    printed: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            printed.append(line)
            if "RADIUS accounting listening" in line:
                break
        assert f"RADIUS accounting listening on 127.0.0.1 port {radius_port}" in "".join(printed)
        radius = Client(
            server="127.0.0.1",
            acctport=radius_port,
            secret=SECRET.encode(),
            dict=dictionary(),
            retries=3,
            timeout=5,
        )
        try:
            reply = accounting(radius, "Start", username, Framed_IP_Address=ADDRESS)
        finally:
            radius._CloseSocket()
        assert reply.code == packet.AccountingResponse
    finally:
        process.terminate()
        try:
            rest, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            rest, _ = process.communicate()
    assert process.returncode == 0, "".join(printed) + rest
    assert "Traceback" not in rest, rest
    school_id, _ = school
    assert who(inst, school_id, ADDRESS) == username


def test_a_radius_port_without_a_secret_is_refused(cli) -> None:
    result = cli("serve", "--port", "1", "--no-dns", "--radius-port", "18131")
    assert result.code == 2
    assert "[radius] secret" in result.err
