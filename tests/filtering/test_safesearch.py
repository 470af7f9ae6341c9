"""Safe-search rewrites and bypass names: the shipped data, and broken data refused."""

from __future__ import annotations

import pytest

from esafety.errors import ConfigError
from esafety.filtering.safesearch import (
    bypass_names,
    parse_bypass,
    parse_safesearch,
    safe_search_rewrites,
)


@pytest.mark.parametrize(
    "host",
    [
        "google.com",
        "www.google.com",
        "www.google.co.uk",
        "google.co.uk",
        "www.google.de",
        "www.google.com.au",
        "www.google.co.jp",
        "www.google.ie",
    ],
)
def test_every_google_country_domain_is_forced_safe(host: str) -> None:
    rewrite = safe_search_rewrites()[host]
    assert rewrite.target == "forcesafesearch.google.com" and rewrite.search_engine


def test_many_google_country_domains() -> None:
    google = [h for h, r in safe_search_rewrites().items() if r.engine == "google"]
    assert len(google) >= 2 * 180


@pytest.mark.parametrize(
    ("host", "target"),
    [
        ("www.bing.com", "strict.bing.com"),
        ("duckduckgo.com", "safe.duckduckgo.com"),
        ("www.youtube.com", "restrict.youtube.com"),
        ("m.youtube.com", "restrict.youtube.com"),
        ("youtubei.googleapis.com", "restrict.youtube.com"),
        ("youtube.googleapis.com", "restrict.youtube.com"),
        ("www.youtube-nocookie.com", "restrict.youtube.com"),
    ],
)
def test_other_engines(host: str, target: str) -> None:
    assert safe_search_rewrites()[host].target == target


def test_youtube_has_moderate_and_is_not_a_search_engine() -> None:
    youtube = safe_search_rewrites()["www.youtube.com"]
    assert youtube.moderate == "restrictmoderate.youtube.com" and not youtube.search_engine


def test_other_google_services_are_not_rewritten() -> None:
    rewrites = safe_search_rewrites()
    for host in ("classroom.google.com", "mail.google.com", "maps.google.co.uk"):
        assert host not in rewrites


def test_bypass_names() -> None:
    names = bypass_names()
    assert names["use-application-dns.net"].nxdomain
    assert names["mask.icloud.com"].nxdomain and names["mask-h2.icloud.com"].nxdomain
    assert not names["dns.google"].nxdomain


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[engine]]\nid='x'\nname='X'\ntarget='a..b'\nsearch_engine=true\n", "not valid"),
        ("[[engine]]\nid='x'\nname='X'\ntarget='t.example'\n", "search_engine"),
        (
            "[[engine]]\nid='x'\nname='X'\ntarget='t.example'\nsearch_engine=true\n"
            "country_hosts=['google.com']\n",
            "no {domain}",
        ),
        ("engine = 1", "expected"),
        ("[[engine", "not valid TOML"),
    ],
)
def test_broken_safesearch_data_is_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_safesearch(text)


def test_broken_bypass_data_is_refused() -> None:
    with pytest.raises(ConfigError, match="nxdomain"):
        parse_bypass("[[name]]\nhost='x.example'\nwhat='x'\n")
