"""The DNS filter as `esafety serve` runs it: real lists, real sign-ins, a real (fake)
upstream on loopback, asked with dnspython from several loopback addresses."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from esafety.config import DnsSettings
from esafety.errors import ConfigError
from esafety.filtering import asking, service
from esafety.filtering.decision import UNKNOWN_DEVICE, Asker
from esafety.filtering.dns_service import DnsService, WhoIsWhere, block_settings
from esafety.filtering.store import ListStore
from esafety.installation import Installation
from tests.directory.school_setup import acting, add_pupil, new_school
from tests.filtering.dns.conftest import BLOCK_V4, ZONE, FakeUpstream, UpstreamThread
from tests.pg import free_port

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]

KS1 = "127.0.0.1"  # a Year 1 pupil signs in here
UNKNOWN = "127.0.0.2"  # nobody
KS2 = "127.0.0.3"  # a Year 4 pupil signs in here


class Running:
    """A :class:`DnsService` on its own event loop in a thread."""

    def __init__(self, dns_service: DnsService) -> None:
        self.service = dns_service
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.run(dns_service.start())
        self.port = dns_service.port

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def stop(self) -> None:
        self.run(self.service.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def ask(self, name: str, client: str, rdtype: str = "A") -> dns.message.Message:
        query = dns.message.make_query(name, rdtype)
        return dns.query.udp(query, "127.0.0.1", port=self.port, timeout=3, source=client)


def answers(response: dns.message.Message) -> list[tuple[str, str]]:
    return sorted(
        (dns.rdatatype.to_text(rrset.rdtype), rdata.to_text())
        for rrset in response.answer
        for rdata in rrset
    )


def _import(inst: Installation, school: int, tmp_path: Path, *names: str) -> None:
    path = tmp_path / "gambling.txt"
    path.write_text("\n".join(names) + "\n")
    with acting(inst, school) as session:
        service.import_list(session, ListStore(inst.data_dir), path, "domains", "gambling")


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()
    fake.add(ZONE)
    fake.add("google.co.uk. 300 IN A 142.250.0.2")
    thread = UpstreamThread(fake)
    try:
        yield fake
    finally:
        thread.stop()


@pytest.fixture
def school(inst: Installation, tmp_path: Path) -> int:
    school = new_school(inst)
    _import(inst, school, tmp_path, "badsite.example")
    with acting(inst, school) as session:
        ks1 = add_pupil(session, "Ada", "One", year="Year 1", class_name="1A")
        ks2 = add_pupil(session, "Bea", "Four", year="Year 4", class_name="4B")
        asking.record_sign_in(session, KS1, ks1.username, "api", timedelta(hours=1))
        asking.record_sign_in(session, KS2, ks2.username, "api", timedelta(hours=1))
    return school


@pytest.fixture
def running(inst: Installation, school: int, upstream: FakeUpstream) -> Iterator[Running]:
    settings = DnsSettings(
        port=0, upstreams=[f"127.0.0.1:{upstream.port}"], block_ipv4=BLOCK_V4, workers=1
    )
    started = Running(DnsService(inst, settings))
    try:
        yield started
    finally:
        started.stop()


def test_a_listed_gambling_name_gets_the_block_page(running: Running) -> None:
    for client in (KS1, KS2, UNKNOWN):
        reply = running.ask("www.badsite.example", client)
        assert answers(reply) == [("A", BLOCK_V4)], client


def test_an_allowed_name_is_forwarded(running: Running, upstream: FakeUpstream) -> None:
    reply = running.ask("allowed.example", KS1)
    assert reply.rcode() == dns.rcode.NOERROR
    assert answers(reply) == [("A", "192.0.2.10")]
    assert upstream.count("allowed.example") == 1


def test_google_for_a_ks2_pupil_is_safe_search(running: Running) -> None:
    reply = running.ask("google.co.uk", KS2)
    assert ("CNAME", "forcesafesearch.google.com.") in answers(reply)
    assert ("A", "216.239.38.120") in answers(reply)


def test_google_for_ks1_and_unknown_devices_is_blocked(running: Running) -> None:
    # KS1 and EYFS allow child-safe search engines only; an unknown device gets the
    # strictest pupil policy (issue 4 §4), so it is treated no better than KS1.
    for client in (KS1, UNKNOWN):
        assert answers(running.ask("www.google.co.uk", client)) == [("A", BLOCK_V4)], client


def test_the_doh_canary_is_no_such_name(running: Running) -> None:
    for client in (KS1, UNKNOWN):
        reply = running.ask("use-application-dns.net", client)
        assert reply.rcode() == dns.rcode.NXDOMAIN
        assert reply.answer == []


def test_new_sign_ins_and_lists_are_picked_up(
    running: Running, inst: Installation, school: int, tmp_path: Path
) -> None:
    assert answers(running.ask("google.co.uk", UNKNOWN)) == [("A", BLOCK_V4)]
    with acting(inst, school) as session:
        pupil = add_pupil(session, "Cal", "Four", year="Year 4", class_name="4B")
        asking.record_sign_in(session, UNKNOWN, pupil.username, "api", timedelta(hours=1))
    # Until the snapshot is read again the filter does not know (no database per query).
    assert answers(running.ask("google.co.uk", UNKNOWN)) == [("A", BLOCK_V4)]
    running.run(running.service.refresh(lists=False))
    assert ("A", "216.239.38.120") in answers(running.ask("google.co.uk", UNKNOWN))

    assert answers(running.ask("allowed.example", KS1)) == [("A", "192.0.2.10")]
    _import(inst, school, tmp_path, "badsite.example", "allowed.example")
    running.run(running.service.refresh(lists=True))
    assert answers(running.ask("allowed.example", KS1)) == [("A", BLOCK_V4)]


def test_the_background_refresh_reads_sign_ins(
    inst: Installation, school: int, upstream: FakeUpstream
) -> None:
    settings = DnsSettings(
        port=0,
        upstreams=[f"127.0.0.1:{upstream.port}"],
        block_ipv4=BLOCK_V4,
        refresh_seconds=0.1,
        workers=1,
    )
    started = Running(DnsService(inst, settings))
    try:
        with acting(inst, school) as session:
            pupil = add_pupil(session, "Dee", "Four", year="Year 4", class_name="4B")
            asking.record_sign_in(session, UNKNOWN, pupil.username, "api", timedelta(hours=1))
        deadline = time.monotonic() + 10
        while answers(started.ask("google.co.uk", UNKNOWN)) == [("A", BLOCK_V4)]:
            assert time.monotonic() < deadline, "the sign-in was never picked up"
            time.sleep(0.1)
    finally:
        started.stop()


def test_who_is_where_snapshot() -> None:
    import ipaddress

    ks1, ipads = Asker("ks1"), Asker("eyfs", frozenset({"1A"}))
    where = WhoIsWhere(
        {"10.1.2.3": (ks1, 2000.0)},
        (
            (ipaddress.ip_network("10.1.0.0/16"), Asker("ks2")),
            (ipaddress.ip_network("10.1.2.0/24"), ipads),
        ),
    )
    assert where.asker("10.1.2.3", 1000.0) is ks1
    assert where.asker("::ffff:10.1.2.3", 1000.0) is ks1
    assert where.asker("10.1.2.3", 2000.0) is ipads  # the sign-in has ended
    assert where.asker("10.1.9.9", 1000.0).policy_id == "ks2"
    assert where.asker("192.0.2.1", 1000.0) is UNKNOWN_DEVICE
    assert WhoIsWhere().asker("::ffff:10.1.2.3", 0.0) is UNKNOWN_DEVICE


def test_block_settings_follow_the_web_address() -> None:
    block, warnings = block_settings(DnsSettings(), "127.0.0.1")
    assert (block.ipv4, block.mode, warnings) == ("127.0.0.1", "address", [])
    block, warnings = block_settings(DnsSettings(), "0.0.0.0")  # noqa: S104
    assert block.mode == "nxdomain" and "block_ipv4" in warnings[0]
    block, _ = block_settings(DnsSettings(block_mode="nxdomain", block_ipv4="192.0.2.1"), "::1")
    assert block.mode == "nxdomain"


def test_several_schools_need_the_dns_school_setting(inst: Installation, school: int) -> None:
    new_school(inst, "eastpark")
    with pytest.raises(ConfigError, match=r"\[dns\] school"):
        DnsService(inst, DnsSettings(port=0)).read_where()
    chosen = DnsService(inst, DnsSettings(port=0, school="westpark")).read_where()
    assert KS1 in chosen.signed_in


# -- the real command ---------------------------------------------------------------------


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def test_esafety_serve_answers_dns_on_the_port_given(tmp_path: Path) -> None:
    web_port, dns_port = free_port(), free_port()
    env = {**os.environ, "ESAFETY_DATA": str(tmp_path / "data"), "COLUMNS": "200"}
    env.pop("ESAFETY_DATABASE_URL", None)
    # This checkout's code, whatever the environment's editable install points at.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    esafety = shutil.which("esafety", path=str(Path(sys.executable).parent)) or "esafety"
    command = [esafety, "serve", "--port", str(web_port), "--dns-port", str(dns_port)]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        query = dns.message.make_query("use-application-dns.net", "A")
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                output, _ = process.communicate()
                pytest.fail(f"esafety serve exited with {process.returncode}:\n{output}")
            try:
                reply = dns.query.udp(query, "127.0.0.1", port=dns_port, timeout=0.5)
                break
            except (dns.exception.Timeout, OSError):
                if time.monotonic() > deadline:
                    pytest.fail("esafety serve did not answer DNS within 60 s")
        assert reply.rcode() == dns.rcode.NXDOMAIN
        # No upstreams are configured: an allowed name cannot be looked up.
        allowed = dns.query.udp(
            dns.message.make_query("allowed.example", "A"), "127.0.0.1", port=dns_port, timeout=3
        )
        assert allowed.rcode() == dns.rcode.SERVFAIL
        # The workers answer before the main process has said so (it waits for all of them,
        # then starts the web app): stop it only once the web app is up.
        while not _accepts(web_port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("esafety serve's web app did not start within 60 s")
            time.sleep(0.1)
    finally:
        process.terminate()
        try:
            output, _ = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    assert f"DNS filter answering on 127.0.0.1 port {dns_port}" in output
    assert "no upstream resolvers" in output


def test_every_decision_is_logged_with_who_asked(
    inst: Installation, school: int, upstream: FakeUpstream
) -> None:
    from esafety.filtering.log import query

    settings = DnsSettings(port=0, upstreams=[f"127.0.0.1:{upstream.port}"], block_ipv4=BLOCK_V4)
    started = Running(DnsService(inst, settings))
    try:
        started.ask("www.badsite.example", KS1)
        started.ask("allowed.example", UNKNOWN, "AAAA")
    finally:
        started.stop()  # the last batch is written when the filter stops
    logged = {(d.client, d.name, d.query_type, d.action): d for d in query(inst.data_dir)}
    blocked = logged[(KS1, "www.badsite.example", "A", "block")]
    assert blocked.person.startswith("ada.")
    assert "gambling" in blocked.categories
    allowed = logged[(UNKNOWN, "allowed.example", "AAAA", "allow")]
    assert allowed.person == ""
