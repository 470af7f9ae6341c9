"""Web addresses: read as browsers read them, compared in one form, hashed for URL lists."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esafety.errors import InvalidInput
from esafety.filtering.hostnames import HostKind
from esafety.filtering.urls import (
    InvalidUrl,
    ParsedUrl,
    parse_url,
    url_hash_candidates,
    url_hashes,
    url_key,
)

KEYS = [
    # scheme, case, default ports, userinfo, fragment
    ("http://example.com/", "example.com/"),
    ("http://example.com", "example.com/"),
    ("https://example.com/page", "example.com/page"),
    ("HTTPS://WWW.Example.COM/Page", "www.example.com/Page"),  # path case is kept
    ("http://example.com:80/", "example.com/"),
    ("https://example.com:443/", "example.com/"),
    ("http://example.com:443/", "example.com:443/"),
    ("https://example.com:8443/a", "example.com:8443/a"),
    ("http://example.com:/a", "example.com/a"),
    ("ftp://example.com:21/f", "example.com/f"),
    ("ws://example.com:80/s", "example.com/s"),
    ("wss://example.com:443/s", "example.com/s"),
    ("http://user:pass@example.com/", "example.com/"),
    ("http://trusted.example@evil.example/x", "evil.example/x"),
    ("http://example.com/a#frag", "example.com/a"),
    ("http://example.com/a?#frag", "example.com/a"),
    ("http://example.com/a?q#frag?x", "example.com/a?q"),
    ("http://example.com/a#f/../b", "example.com/a"),
    # a missing scheme means http; a host and port is not a scheme
    ("example.com", "example.com/"),
    ("example.com/path", "example.com/path"),
    ("Example.com/path?q=1", "example.com/path?q=1"),
    ("example.com:8080", "example.com:8080/"),
    ("example.com:8080/x", "example.com:8080/x"),
    ("localhost:3000", "localhost:3000/"),
    ("//example.com/x", "example.com/x"),
    # whitespace and control characters, as WHATWG strips them
    ("  http://example.com/  ", "example.com/"),
    ("\x00\x1fhttp://example.com/\x7f", "example.com/%7F"),
    ("ht\ttp://exa\nmple.com/pa\rth", "example.com/path"),
    # slashes and backslashes after the scheme, as browsers treat them
    ("http:example.com/a", "example.com/a"),
    ("http:/example.com/a", "example.com/a"),
    ("http:///example.com/a", "example.com/a"),
    ("http:\\\\example.com\\a\\b", "example.com/a/b"),
    ("http:/\\example.com/a", "example.com/a"),
    ("https://example.com\\a?b\\c", "example.com/a?b%5Cc"),
    # dot segments, also percent-encoded
    ("http://example.com/a/./b/../c", "example.com/a/c"),
    ("http://example.com/a/b/..", "example.com/a/"),
    ("http://example.com/a/b/.", "example.com/a/b/"),
    ("http://example.com/../../a", "example.com/a"),
    ("http://example.com/a/%2e%2E/b", "example.com/b"),
    ("http://example.com/a/.%2e/b", "example.com/b"),
    ("http://example.com/%2e/b", "example.com/b"),
    ("http://example.com/a/..%2fb", "example.com/a/..%2Fb"),  # an encoded "/" is not a separator
    # runs of slashes collapse in the path (servers treat them alike)
    ("http://example.com//a///b/", "example.com/a/b/"),
    # percent-encoding normalised: unreserved decoded, hex upper, the rest escaped
    ("http://example.com/%7Euser", "example.com/~user"),
    ("http://example.com/%7euser", "example.com/~user"),
    ("http://example.com/%41%42%43", "example.com/ABC"),
    ("http://example.com/a%2fb", "example.com/a%2Fb"),
    ("http://example.com/a%2Fb", "example.com/a%2Fb"),
    ("http://example.com/a%3fb", "example.com/a%3Fb"),
    ("http://example.com/a b", "example.com/a%20b"),
    ("http://example.com/a%20b", "example.com/a%20b"),
    ("http://example.com/café", "example.com/caf%C3%A9"),
    ("http://example.com/caf%c3%a9", "example.com/caf%C3%A9"),
    ("http://example.com/100%", "example.com/100%25"),
    ("http://example.com/100%25", "example.com/100%25"),
    ("http://example.com/%zz", "example.com/%25zz"),
    ("http://example.com/%2", "example.com/%252"),
    ("http://example.com/%252e", "example.com/%252e"),  # decoded once only
    ("http://example.com/<script>", "example.com/%3Cscript%3E"),
    ('http://example.com/a"b`c{d}|e^', "example.com/a%22b%60c%7Bd%7D%7Ce%5E"),
    ("http://example.com/?q=%7e&r=%2F&s=a+b", "example.com/?q=~&r=%2F&s=a+b"),
    ("http://example.com/?q=é", "example.com/?q=%C3%A9"),
    ("http://example.com/?", "example.com/"),
    ("http://example.com/?a=1&b=2", "example.com/?a=1&b=2"),
    ("http://example.com/?b=2&a=1", "example.com/?b=2&a=1"),  # order is kept
    ("http://example.com/a?x=/../", "example.com/a?x=/../"),  # the query is not a path
    # hosts go through the host rules
    ("http://%77%77%77.example.com/", "www.example.com/"),
    ("http://www%2eexample%2ecom/", "www.example.com/"),
    ("http://bücher.de/", "xn--bcher-kva.de/"),
    ("http://Ｅｘａｍｐｌｅ。ｃｏｍ/", "example.com/"),
    ("http://i❤.ws/", "xn--i-7iq.ws/"),
    ("http://example.com./", "example.com/"),
    ("http://3232235777/", "192.168.1.1/"),
    ("http://0xC0A80001/", "192.168.0.1/"),
    ("http://0300.0250.0.1/", "192.168.0.1/"),
    ("http://127.1:8080/", "127.0.0.1:8080/"),
    ("http://[::1]/", "[::1]/"),
    ("http://[::1]:8080/x", "[::1]:8080/x"),
    ("https://[2001:DB8::1]:443/", "[2001:db8::1]/"),
    ("http://[::ffff:192.168.0.1]/", "192.168.0.1/"),
    ("http://a/b@evil.example/", "a/b@evil.example/"),  # "@" in the path is not userinfo
]


@pytest.mark.parametrize(("text", "key"), KEYS)
def test_url_key(text, key):
    parsed = parse_url(text)
    assert url_key(parsed) == key
    # The key read back as an address gives the same key.
    assert url_key(parse_url(key)) == key


def test_parsed_url_fields():
    parsed = parse_url("HTTPS://user@WWW.Example.com:8443/a/../b?x=%7e#top")
    assert parsed.scheme == "https"
    assert parsed.host.name == "www.example.com"
    assert parsed.host.kind is HostKind.NAME
    assert parsed.port == 8443
    assert parsed.effective_port == 8443
    assert parsed.path == "/b"
    assert parsed.query == "x=~"
    assert str(parsed) == "https://www.example.com:8443/b?x=~"
    plain = parse_url("example.com")
    assert (plain.scheme, plain.port, plain.effective_port, plain.path, plain.query) == (
        "http",
        None,
        80,
        "/",
        "",
    )
    assert parse_url("https://example.com:443/") == parse_url("https://EXAMPLE.com/")
    assert isinstance(plain, ParsedUrl)


INVALID = [
    ("", "empty"),
    ("   ", "empty"),
    ("\x00\x01", "empty"),
    ("http://", "no host name"),
    ("http:///", "no host name"),
    ("http://?q", "no host name"),
    ("http://user@/", "empty"),
    ("mailto:someone@example.com", "'mailto' is not a web address scheme"),
    ("javascript:alert(1)", "'javascript' is not a web address scheme"),
    ("data:text/html,hi", "'data' is not a web address scheme"),
    ("file:///etc/passwd", "'file' is not a web address scheme"),
    ("gopher://example.com/", "'gopher' is not a web address scheme"),
    ("foo://example.com/", "'foo' is not a web address scheme"),
    ("http://a..b/", "empty label"),
    ("http://" + "a" * 64 + ".com/", "at most 63"),
    ("http://exa mple.com/", "a space"),
    ("http://exa%00mple.com/", "control character"),
    ("http://exa%2fmple.com/", "'/'"),
    ("http://example.com:70000/", "out of range"),
    ("http://example.com:80a/", "not a number"),
    ("http://[::1/", "not closed"),
    ("http://[fe80::1%25eth0]/", "zone ids"),
    ("http://4294967296/", "too large"),
    ("http://xn--zz.com/", "punycode"),
    ("http://a\ufffdb.com/", "no host name can have"),
]


@pytest.mark.parametrize(("text", "reason"), INVALID)
def test_invalid_urls_say_why(text, reason):
    with pytest.raises(InvalidUrl) as caught:
        parse_url(text)
    message = str(caught.value)
    assert message.startswith("web address ")
    assert reason in message
    assert isinstance(caught.value, InvalidInput)


@given(st.text(max_size=120))
@settings(max_examples=500)
def test_any_text_parses_or_says_why(text):
    try:
        parsed = parse_url(text)
    except InvalidUrl:
        return
    key = url_key(parsed)
    assert key.isascii()
    assert url_key(parse_url(key)) == key
    assert parse_url(str(parsed)) == parsed


urlish = st.text(alphabet="aZ0./\\?#%2eEfF:@[]~ é", max_size=40)


@given(urlish)
@settings(max_examples=500)
def test_url_like_text_key_is_stable(text):
    try:
        parsed = parse_url("http://example.com/" + text)
    except InvalidUrl:
        return
    key = url_key(parsed)
    assert url_key(parse_url(key)) == key
    assert "#" not in key
    assert "/./" not in parsed.path and "/../" not in parsed.path and "//" not in parsed.path


# --- hashed URL lists --------------------------------------------------------------------


def test_url_hash_candidates_for_a_page():
    candidates = url_hash_candidates(parse_url("https://www.example.co.uk/gallery/?id=7#x"))
    assert candidates[0] == "www.example.co.uk/gallery/?id=7"  # the exact key first
    assert set(candidates) == {
        "www.example.co.uk/gallery/?id=7",
        "www.example.co.uk/gallery?id=7",
        "example.co.uk/gallery/?id=7",
        "example.co.uk/gallery?id=7",
        "www.example.co.uk/gallery/",
        "www.example.co.uk/gallery",
        "example.co.uk/gallery/",
        "example.co.uk/gallery",
        "www.example.co.uk",
        "www.example.co.uk/",
        "example.co.uk",
        "example.co.uk/",
    }
    assert len(candidates) == len(set(candidates))


def test_url_hash_candidates_never_widen_past_the_registrable_domain():
    candidates = url_hash_candidates(parse_url("http://a.b.someone.github.io/p"))
    assert "someone.github.io/" in candidates
    assert not any(c.startswith(("github.io", "io")) for c in candidates)
    root = url_hash_candidates(parse_url("http://example.com/"))
    assert set(root) == {"example.com/", "www.example.com/", "example.com"}


def test_url_hash_candidates_keep_ports_and_ips():
    assert set(url_hash_candidates(parse_url("http://10.0.0.1:8080/x"))) == {
        "10.0.0.1:8080/x",
        "10.0.0.1:8080/x/",
        "10.0.0.1:8080",
        "10.0.0.1:8080/",
    }
    assert "[::1]/x" in url_hash_candidates(parse_url("http://[::1]/x"))


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha256"])
def test_url_hashes_find_a_listed_page_however_it_is_written(algorithm):
    listed = hashlib.new(algorithm, b"example.com/gallery/page.html").hexdigest()
    for written in [
        "http://example.com/gallery/page.html",
        "HTTPS://WWW.EXAMPLE.COM:443/gallery/./page.html#top",
        "example.com/gallery//page%2Ehtml",
        "http://user@%65xample.com/gallery/x/../page.html?utm=1",
        "http:\\\\example.com\\gallery\\page.html/",
    ]:
        assert listed in url_hashes(parse_url(written)), written
    assert listed not in url_hashes(parse_url("http://example.com/gallery/other.html"))
    assert listed not in url_hashes(parse_url("http://badexample.com/gallery/page.html"))


def test_url_hashes_whole_site_entry_covers_its_pages():
    listed = hashlib.sha256(b"abuse.example").hexdigest()
    assert listed in url_hashes(parse_url("http://cdn.abuse.example/any/page"))
    assert listed not in url_hashes(parse_url("http://notabuse.example/"))


def test_url_hashes_are_lowercase_hex_of_each_algorithm():
    digests = url_hashes(parse_url("http://example.com/"))
    assert {len(d) for d in digests} == {32, 40, 64}
    assert all(d == d.lower() and int(d, 16) >= 0 for d in digests)
    only = url_hashes(parse_url("http://example.com/"), algorithms=("sha256",))
    assert {len(d) for d in only} == {64}
    assert hashlib.sha256(b"example.com/").hexdigest() in only
