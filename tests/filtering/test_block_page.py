"""The block page: requests for names that are not esafety's get it, never the app, in words
for the person at the device (issue 4 §7)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from esafety.config import Settings, WebSettings
from esafety.filtering.blockpage import host_of, is_own_host, own_names
from esafety.installation import Installation
from tests.filtering.blockpage_world import BlockWorld, build_world

PAGE = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
def world(inst: Installation, tmp_path: Path) -> BlockWorld:
    return build_world(inst, tmp_path / "lists")


def _visible(html: str) -> str:
    """The page's words, tags removed, whitespace collapsed (what a reader sees)."""
    text = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", text).split())


def _get(world: BlockWorld, device: str, host: str, path: str = "/") -> tuple[int, str]:
    with world.client(device) as client:
        answer = client.get(path, headers={**PAGE, "host": host})
    return answer.status_code, answer.text


# -- the Host rule ------------------------------------------------------------------------


def test_own_names_are_localhost_addresses_dotless_and_configured() -> None:
    settings = Settings(
        web=WebSettings(
            host="0.0.0.0",  # noqa: S104 - a setting, nothing binds here
            base_url="https://esafety.westpark.sch.uk/",
            names=["filter.lan"],
        )
    )
    own = own_names(settings)
    for host in ("", "localhost", "127.0.0.1", "::1", "10.0.0.5", "esafety", "testserver",
                 "esafety.westpark.sch.uk", "filter.lan"):  # fmt: skip
        assert is_own_host(host, own), host
    for host in ("blocked.example", "www.facebook.com", "westpark.sch.uk", "xn--80ak6aa92e.com"):
        assert not is_own_host(host, own), host


@pytest.mark.parametrize(
    ("header", "host"),
    [
        (b"Blocked.Example:8080", "blocked.example"),
        (b"blocked.example.", "blocked.example"),
        (b"[::1]:8443", "::1"),
        (b"[2001:db8::1]", "2001:db8::1"),
        (b"10.0.0.5:80", "10.0.0.5"),
    ],
)
def test_the_host_header_is_read_without_its_port(header: bytes, host: str) -> None:
    assert host_of({"headers": [(b"host", header)]}) == host


def test_a_blocked_name_never_reaches_the_app_or_its_sign_in(world: BlockWorld) -> None:
    with world.client("nobody") as client:
        for method, path in [("GET", "/"), ("GET", "/sign-in"), ("POST", "/sign-in"),
                             ("GET", "/people"), ("GET", "/filtering/reports")]:  # fmt: skip
            answer = client.request(method, path, headers={**PAGE, "host": "blocked.example"})
            assert answer.status_code == 403, (method, path)
            assert 'name="password"' not in answer.text
            assert 'action="/sign-in"' not in answer.text
            assert "blocked at school" in answer.text
            assert "location" not in answer.headers
            assert answer.headers["cache-control"] == "no-store"
            assert "default-src 'self'" in answer.headers["content-security-policy"]
        api = client.get("/api/v1/me", headers={"host": "blocked.example"})
        assert api.status_code == 403 and api.headers["content-type"].startswith("text/plain")
        # esafety's own name still gets esafety.
        own = client.get("/", headers={**PAGE, "host": "127.0.0.1:8080"})
        assert own.status_code == 303 and own.headers["location"].startswith("/sign-in")


def test_requests_that_are_not_page_loads_get_a_short_answer(world: BlockWorld) -> None:
    with world.client("year1") as client:
        image = client.get("/ad.png", headers={"host": "blocked.example", "accept": "image/*"})
    assert image.status_code == 403
    assert image.text.startswith("Blocked by the school's web filter")


def test_the_page_style_is_served_on_the_blocked_name(world: BlockWorld) -> None:
    with world.client("year1") as client:
        style = client.get("/.esafety/block.css", headers={"host": "blocked.example"})
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert ".block__card" in style.text


# -- words for each age -------------------------------------------------------------------


def test_a_ks1_pupil_gets_very_simple_words(world: BlockWorld) -> None:
    status, html = _get(world, "year1", "blocked.example")
    words = _visible(html)
    assert status == 403
    assert 'class="block block--young block--blocked"' in html
    assert "This website is not for you at school." in words
    assert "Tell your teacher or a trusted adult." in words
    assert "I think this is wrong" in words and "Report this site" in words
    for grown_up in ("Gambling", "gambling", "Betting sites", "policy", "blocked.example"):
        assert grown_up not in words, grown_up
    assert "Yusuf" not in words  # the page never names anyone


def test_an_eyfs_pupil_gets_the_same_simple_page(world: BlockWorld) -> None:
    _, html = _get(world, "reception", "social.example")
    assert "block--young" in html and "not for you at school" in html


def test_a_ks2_pupil_is_told_why_in_plain_words(world: BlockWorld) -> None:
    status, html = _get(world, "year5", "www.blocked.example")
    words = _visible(html)
    assert status == 403 and "block--ks2" in html
    assert "This website is blocked at school" in words
    assert "www.blocked.example is blocked because it is about gambling (betting money)" in words
    assert "tell a trusted adult straight away" in words
    assert "Betting sites" not in words and "policy" not in words
    _, social = _get(world, "year5", "social.example")
    assert "it is a social media site" in _visible(social)


def test_staff_see_the_category_rule_list_and_how_to_ask_for_an_unblock(
    world: BlockWorld,
) -> None:
    status, html = _get(world, "teacher", "bets.example", "/some/page?x=1")
    words = _visible(html)
    assert status == 403 and "block--adult" in html
    assert "Blocked: bets.example" in words
    assert "Category Gambling" in words
    assert "Rule bets.example" in words and "List Betting sites" in words
    assert "Policy Staff" in words and "signed in to the filter (api)" in words
    assert "Blocked because bets.example is in the Betting sites list (Gambling)" in words
    link = re.search(r'href="([^"]*/filtering/requests/new\?site=[^"]*)"', html)
    assert link is not None and link.group(1).endswith("/filtering/requests/new?site=bets.example")
    assert "Ask for it to be unblocked" in words
    assert "tell the designated safeguarding lead" in words


def test_a_device_nobody_is_signed_in_on_gets_pupil_words_and_a_line_for_adults(
    world: BlockWorld,
) -> None:
    _, html = _get(world, "nobody", "blocked.example")
    words = _visible(html)
    assert "block--unknown" in html
    assert "is blocked because it is about gambling" in words
    assert "For adults: nobody is signed in to the school's filter on this device" in words


def test_an_illegal_content_block_is_described_neutrally_to_everyone(world: BlockWorld) -> None:
    for device in ("teacher", "year5", "year1", "nobody"):
        status, html = _get(world, device, "hidden.example")
        words = _visible(html)
        assert status == 403
        for secret in ("Watch list", "illegal", "Illegal", "IWF", "ornograph", "adults only"):
            assert secret not in words, (device, secret)
        assert "filtering/requests/new" not in html  # it can never be unblocked
    _, staff = _get(world, "teacher", "hidden.example")
    assert "a list that the school's filter always blocks. It cannot be unblocked." in _visible(
        staff
    )


def test_a_name_the_filter_allows_says_so(world: BlockWorld) -> None:
    status, html = _get(world, "year5", "www.bbc.co.uk")
    assert status == 403
    assert "This website is not blocked now" in _visible(html)


def test_everything_shown_is_escaped(world: BlockWorld) -> None:
    hostile = '/"><script>alert(1)</script>?q=<img src=x onerror=alert(2)>'
    status, html = _get(world, "teacher", "bets.example", hostile)
    assert status == 403
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html or "%3Cscript%3E" in html
    # A Host that is not a name at all: the neutral page, nothing echoed.
    weird, page = _get(world, "year5", "bad_host<b>.example")
    assert weird == 403 and "<b>" not in page.split("</title>", 1)[1]
    assert "blocks this address" in _visible(page)
