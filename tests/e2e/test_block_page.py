"""The block page in a real Chromium: `esafety serve --demo` answers a blocked name, and the
page speaks to the KS1 pupil, then the KS2 pupil, then the teacher signed in on the device
(issue 4 §7). The KS2 pupil says "I think this is wrong"; the technician finds the report.
Over HTTPS, Chromium trusts the school CA and shows the page without a warning.

No real DNS: Chromium's ``--host-resolver-rules`` maps the blocked name to 127.0.0.1, as the
DNS filter's block answer would. Sign-ins are posted to the API with the technician's token,
as a proxy or an MDM would.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from esafety.security.ca import create_ca, load_ca
from tests.e2e.conftest import CHROMIUM, RunningServer
from tests.e2e.test_browser_sign_in import _demo_login, _sign_in
from tests.pg import free_port

pytestmark = pytest.mark.e2e

BLOCKED = "blocked.example"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    f"--host-resolver-rules=MAP {BLOCKED} 127.0.0.1",
]


def _env(tmp_path: Path, database_url: str | None) -> dict[str, str]:
    """The environment the server fixture gave `esafety serve`, for commands beside it."""
    env = {
        **os.environ,
        "ESAFETY_DATA": str(tmp_path / "data"),
        "ESAFETY_SECURITY__ARGON2_TIME_COST": "1",
        "ESAFETY_SECURITY__ARGON2_MEMORY_KIB": "8",
        "ESAFETY_SECURITY__ARGON2_PARALLELISM": "1",
        "COLUMNS": "200",
    }
    env.pop("ESAFETY_DATABASE_URL", None)
    if database_url is not None:
        env["ESAFETY_DATABASE_URL"] = database_url
    return env


def _esafety(env: dict[str, str], *args: str) -> str:
    command = shutil.which("esafety", path=str(Path(sys.executable).parent)) or "esafety"
    done = subprocess.run(
        [command, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"esafety {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _pupil_in(env: dict[str, str], year: str) -> tuple[str, str]:
    """A demo pupil of ``year``: (username, first name)."""
    url = env.get("ESAFETY_DATABASE_URL") or f"sqlite:///{env['ESAFETY_DATA']}/esafety.db"
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT username, legal_first_name FROM person WHERE kind = 'pupil' "
                    "AND year_group = :year AND left_on IS NULL ORDER BY username"
                ),
                {"year": year},
            ).first()
    finally:
        engine.dispose()
    assert row is not None, f"the demo has no pupil in {year}"
    return str(row[0]), str(row[1])


class Filter:
    """The school's filter as the test drives it: lists, and who is at 127.0.0.1."""

    def __init__(self, server: RunningServer, env: dict[str, str], list_file: Path) -> None:
        self.server = server
        self.env = env
        list_file.write_text(f"{BLOCKED}\n")
        _esafety(env, "filter", "lists", "import", str(list_file), "--format", "domains",
                 "--category", "gambling", "--name", "Betting sites")  # fmt: skip
        technician, _, _ = _demo_login(server, "IT technician")
        made = _esafety(env, "users", "token", "create", technician, "--name", "mdm")
        self.token = made.strip().splitlines()[-1]

    def sign_in(self, username: str) -> None:
        answer = httpx.post(
            self.server.url + "/api/v1/filtering/sign-ins",
            json={"client": "127.0.0.1", "username": username, "source": "mdm", "ttl": 600},
            headers={"authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        assert answer.status_code == 201, answer.text


def _port(server: RunningServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def test_block_page_for_ks1_ks2_and_staff_and_a_report_reaches_the_technician(
    server: RunningServer, browser, shots: Path, tmp_path: Path, database_url: str | None
) -> None:
    env = _env(tmp_path, database_url)
    school_filter = Filter(server, env, tmp_path / "betting.txt")
    ks1, ks1_name = _pupil_in(env, "year1")
    ks2, ks2_name = _pupil_in(env, "year5")
    address = f"http://{BLOCKED}:{_port(server)}/"
    chromium = browser.browser_type.launch(executable_path=CHROMIUM, args=ARGS)
    try:
        context = chromium.new_context(viewport={"width": 1100, "height": 820})
        page = context.new_page()

        school_filter.sign_in(ks1)
        response = page.goto(address + "games/today")
        assert response is not None and response.status == 403
        heading = page.get_by_role("heading", level=1)
        assert heading.inner_text() == "This website is not for you at school."
        body = page.inner_text("body")
        assert "Tell your teacher or a trusted adult." in body
        assert "gambling" not in body.lower() and ks1_name not in body
        size = heading.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
        assert size >= 36, f"KS1 heading is {size}px: it should be large"
        page.screenshot(path=str(shots / "block-page-ks1.png"), full_page=True)

        school_filter.sign_in(ks2)
        response = page.goto(address)
        assert response is not None and response.status == 403
        assert page.get_by_role("heading", level=1).inner_text() == (
            "This website is blocked at school"
        )
        body = page.inner_text("body")
        assert f"{BLOCKED} is blocked because it is about gambling (betting money)" in body
        assert "tell a trusted adult" in body and ks2_name not in body
        page.screenshot(path=str(shots / "block-page-ks2.png"), full_page=True)

        page.get_by_label("Tell us more").fill("I need it for my maths homework")
        page.get_by_role("button", name="I think this is wrong").click()
        page.wait_for_url("**/.esafety/thanks?kind=wrongly_blocked")
        assert page.get_by_role("status").inner_text() == "Thank you for telling us"
        page.screenshot(path=str(shots / "block-page-ks2-thanks.png"), full_page=True)

        teacher, _, _ = _demo_login(server, "Teacher")
        school_filter.sign_in(teacher)
        page.goto(address)
        body = page.inner_text("body")
        assert page.get_by_role("heading", level=1).inner_text() == f"Blocked: {BLOCKED}"
        assert "Gambling" in body and "Betting sites" in body and "Staff" in body
        unblock = page.get_by_role("link", name="Ask for it to be unblocked")
        assert unblock.get_attribute("href") == (
            f"{server.url}/filtering/requests/new?site={BLOCKED}"
        )
        page.screenshot(path=str(shots / "block-page-staff.png"), full_page=True)
        context.close()
    finally:
        chromium.close()

    username, password, _ = _demo_login(server, "IT technician")
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    _sign_in(page, server, username, password)
    page.wait_for_url(server.url + "/")
    page.goto(server.url + "/filtering/reports")
    row = page.locator("tr", has_text=BLOCKED)
    assert row.count() == 1
    text_of_row = row.inner_text()
    assert "Wrongly blocked" in text_of_row and "maths homework" in text_of_row
    assert ks2_name in text_of_row and "block page" in text_of_row
    assert "Block" in text_of_row and "Gambling" in text_of_row
    page.screenshot(path=str(shots / "reports-technician.png"), full_page=True)
    row.get_by_label("What was done").fill("Not changed: a betting site. Told the class teacher.")
    row.get_by_role("button", name="Resolve").click()
    page.wait_for_url("**/filtering/reports?done=resolved")
    assert "No open reports" in page.inner_text("body")
    context.close()


@pytest.fixture
def https_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """The school CA in the server's data directory, and HTTPS on a free port.

    Requested before ``server``, so `esafety serve` starts with both (its environment is
    copied from this process's)."""
    create_ca(tmp_path / "data", "Demo Primary School")
    port = free_port()
    monkeypatch.setenv("ESAFETY_WEB__HTTPS_PORT", str(port))
    return port


def test_block_page_over_https_with_the_school_ca(
    https_port: int,
    server: RunningServer,
    browser,
    shots: Path,
    tmp_path: Path,
    database_url: str | None,
) -> None:
    env = _env(tmp_path, database_url)
    school_filter = Filter(server, env, tmp_path / "betting.txt")
    ks2, _ = _pupil_in(env, "year4")
    school_filter.sign_in(ks2)
    ca = load_ca(tmp_path / "data")

    # The handshake, checked by Python's own TLS client against the CA certificate alone.
    trusting = ssl.create_default_context(cafile=str(ca.cert_path))
    with (
        socket.create_connection(("127.0.0.1", https_port), timeout=10) as raw,
        trusting.wrap_socket(raw, server_hostname=BLOCKED) as tls,
    ):
        peer = tls.getpeercert() or {}
        assert peer.get("subjectAltName") == (("DNS", BLOCKED),)
        tls.sendall(
            f"GET / HTTP/1.1\r\nHost: {BLOCKED}\r\nAccept: text/html\r\nConnection: close\r\n\r\n".encode()
        )
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
    assert b"This website is blocked at school" in answer

    # Chromium that does not trust the school CA refuses the page...
    address = f"https://{BLOCKED}:{https_port}/"
    plain = browser.browser_type.launch(executable_path=CHROMIUM, args=ARGS)
    try:
        page = plain.new_page()
        with pytest.raises(Exception, match="ERR_CERT_AUTHORITY_INVALID"):
            page.goto(address)
    finally:
        plain.close()
    # ... and Chromium told to trust it (as a managed device is) shows it, no warning.
    trusted = browser.browser_type.launch(
        executable_path=CHROMIUM,
        args=[*ARGS, f"--ignore-certificate-errors-spki-list={ca.spki_sha256}"],
    )
    try:
        page = trusted.new_page(viewport={"width": 1100, "height": 760})
        response = page.goto(address)
        assert response is not None and response.status == 403
        assert page.get_by_role("heading", level=1).inner_text() == (
            "This website is blocked at school"
        )
        security = response.security_details()
        assert security is not None and security.get("subjectName") == BLOCKED
        page.screenshot(path=str(shots / "block-page-https.png"), full_page=True)
    finally:
        trusted.close()
