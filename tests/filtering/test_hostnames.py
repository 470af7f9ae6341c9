"""Host normalisation: the one normal form every list, rule and decision compares on."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esafety.errors import InvalidInput
from esafety.filtering import hostnames
from esafety.filtering.hostnames import (
    Host,
    HostKind,
    InvalidHost,
    display_host,
    host_matches,
    is_plain_ascii_host,
    normalise_host,
    parent_domains,
    parse_authority,
    parse_host,
    public_suffix,
    registrable_domain,
)

LABEL_63 = "a" * 63
NAME_253 = ".".join([LABEL_63] * 3 + ["b" * 61])  # 63*3 + 61 + 3 dots = 253

NORMALISED = [
    # case, whitespace and the trailing dot
    ("example.com", "example.com"),
    ("Example.COM", "example.com"),
    ("example.com.", "example.com"),
    ("  example.com\r\n", "example.com"),
    ("WWW.EXAMPLE.CO.UK.", "www.example.co.uk"),
    # DNS service names and edge hyphens, which browsers and resolvers accept
    ("_dmarc.example.com", "_dmarc.example.com"),
    ("a_b.example.com", "a_b.example.com"),
    ("-x-.blogspot.com", "-x-.blogspot.com"),
    ("ab--cd.example", "ab--cd.example"),
    ("localhost", "localhost"),
    ("1.example", "1.example"),
    ("example.123abc", "example.123abc"),
    # lengths at the limits
    (f"{LABEL_63}.com", f"{LABEL_63}.com"),
    (NAME_253, NAME_253),
    (NAME_253 + ".", NAME_253),
    # IDNA both ways, UTS 46 mapping
    ("bücher.de", "xn--bcher-kva.de"),
    ("BÜCHER.DE", "xn--bcher-kva.de"),
    ("xn--bcher-kva.de", "xn--bcher-kva.de"),
    ("XN--BCHER-KVA.DE", "xn--bcher-kva.de"),
    ("faß.de", "xn--fa-hia.de"),  # nontransitional: ß stays ß, as browsers do now
    ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
    ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
    ("中国", "xn--fiqs8s"),
    ("Ｅｘａｍｐｌｅ。ｃｏｍ", "example.com"),  # fullwidth letters, ideographic full stop
    ("example．com", "example.com"),  # fullwidth full stop
    ("example｡com", "example.com"),  # halfwidth ideographic full stop
    ("example.com。", "example.com"),  # a mapped trailing dot
    ("so\u00adft.example", "soft.example"),  # soft hyphen is ignored
    ("ｘｎ－－ｂｃｈｅｒ－ｋｖａ.de", "xn--bcher-kva.de"),
    # look-alikes normalise to their own, different, names
    ("аpple.com", "xn--pple-43d.com"),  # Cyrillic а
    ("xn--pple-43d.com", "xn--pple-43d.com"),
    ("раураl.com", "xn--l-7sba6dbr.com"),  # Cyrillic р, а, у
    # emoji domains exist and browsers reach them
    ("i❤.ws", "xn--i-7iq.ws"),
    ("xn--i-7iq.ws", "xn--i-7iq.ws"),
    ("💩.la", "xn--ls8h.la"),
    # percent-encoded hosts
    ("%77%77%77.example.com", "www.example.com"),
    ("www%2Eexample%2ecom", "www.example.com"),
    ("b%C3%BCcher.de", "xn--bcher-kva.de"),
    # URL authorities: userinfo and ports dropped
    ("user:pass@host.example:8080", "host.example"),
    ("trusted.example@evil.example", "evil.example"),
    ("a@b@evil.example", "evil.example"),
    ("example.com:", "example.com"),
    ("example.com:0", "example.com"),
    ("example.com:65535", "example.com"),
    ("EXAMPLE.com.:443", "example.com"),
    # IPv4 in every form browsers accept
    ("192.168.0.1", "192.168.0.1"),
    ("3232235777", "192.168.1.1"),
    ("0300.0250.0.1", "192.168.0.1"),
    ("0xC0A80001", "192.168.0.1"),
    ("0xc0.0xa8.0.1", "192.168.0.1"),
    ("0XC0.0XA8.0X0.0X1", "192.168.0.1"),
    ("192.168.1", "192.168.0.1"),  # last part fills 16 bits
    ("192.11010049", "192.168.0.1"),  # last part fills 24 bits
    ("127.1", "127.0.0.1"),
    ("0", "0.0.0.0"),  # noqa: S104 (an address, not a bind)
    ("0x", "0.0.0.0"),  # noqa: S104
    ("4294967295", "255.255.255.255"),
    ("0xffffffff", "255.255.255.255"),
    ("037777777777", "255.255.255.255"),
    ("1.2.3.4.", "1.2.3.4"),
    ("０xＣ0Ａ80001", "192.168.0.1"),  # fullwidth, mapped first
    ("１２７.０.０.１", "127.0.0.1"),
    ("%31%32%37.0.0.1", "127.0.0.1"),
    ("user@127.1:80", "127.0.0.1"),
    # digits that are not a valid IPv4 part are names, as the resolver treats them
    ("08", "08"),
    ("1.2.3.08", "1.2.3.08"),
    ("0x1g", "0x1g"),
    ("1.2.3.4.5", "1.2.3.4.5"),
    # IPv6
    ("[::1]", "::1"),
    ("::1", "::1"),
    ("[2001:DB8:0:0:0:0:0:1]", "2001:db8::1"),
    ("[2001:db8::1]:8080", "2001:db8::1"),
    ("user@[2001:db8::1]:443", "2001:db8::1"),
    ("[::ffff:192.168.0.1]", "192.168.0.1"),  # IPv4-mapped is the IPv4 address
    ("[::ffff:c0a8:1]", "192.168.0.1"),
    ("[::]", "::"),
    ("[64:ff9b::192.168.0.1]", "64:ff9b::c0a8:1"),
]


@pytest.mark.parametrize(("text", "expected"), NORMALISED)
def test_normalise_host(text, expected):
    assert normalise_host(text) == expected
    # The normal form is a fixed point.
    assert normalise_host(expected) == expected


INVALID = [
    ("", "empty"),
    ("   ", "empty"),
    (".", "empty"),
    ("a..b", "empty label"),
    (".example.com", "empty label"),
    ("example.com..", "empty label"),
    ("a" * 64 + ".com", "64 octets long; a label may have at most 63"),
    (NAME_253 + "c", "254 octets long"),
    (NAME_253 + ".c", "255 octets long"),
    ("ü" * 60 + ".com", "a label may have at most 63"),  # short in Unicode, long as an A-label
    ("a" * 2000, "characters long"),
    ("exa mple.com", "a space"),
    ("exa\x00mple.com", "control character (U+0000)"),
    ("\x00", "control character"),
    ("example.com\x00", "control character"),
    ("exa\tmple.com", "control character (U+0009)"),
    ("exa\x7fmple.com", "U+007F"),
    ("exa\x1bmple.com", "U+001B"),
    ("example.com/path", "'/'"),
    ("http://example.com", "'/'"),
    ("example.com?q", "'?'"),
    ("example.com#top", "'#'"),
    ("example\\com", "'\\\\'"),
    ("exa!mple.com", "'!'"),
    ("exa*mple.com", "'*'"),
    ("*.example.com", "'*'"),
    ("exa<mple.com", "'<'"),
    ("exa^mple.com", "'^'"),
    ("exa|mple.com", "'|'"),
    ("exa%mple.com", "'%'"),  # a lone percent sign
    ("exa%2fmple.com", "'/'"),  # percent-encoded slash
    ("%252e.com", "'%'"),  # decoded once only
    ("%ff.com", "not UTF-8"),
    ("exa／mple.com", "'/'"),  # fullwidth solidus maps to "/"
    ("a\ufffdb.com", "no host name can have"),
    ("x\u2488.com", "no host name can have"),  # ⒈ is disallowed
    ("a\u2024b.com", "no host name can have"),  # one dot leader is not a dot
    ("\u0301a.com", "combining mark"),
    ("a\u200db.com", "joining character"),  # zero-width joiner out of context
    ("a\u200cb.com", "joining character"),
    ("\u05d0a.com", "right-to-left"),  # Hebrew letter with Latin in one label
    # A-labels that are not the punycode of a valid label
    ("xn--zz.com", "not valid punycode"),
    ("xn--.com", "decodes to plain ASCII"),
    ("xn--abc-.com", "decodes to plain ASCII"),
    ("xn--a.com", "characters no host name can have"),  # decodes to U+0080
    ("xn--99999999999999.com", "not valid punycode"),
    ("xn--bcher-kva-.de", "not a valid A-label"),
    ("xn--ls8h-.la", "not a valid A-label"),
    # numbers that are IPv4 but out of range
    ("4294967296", "too large"),
    ("0x100000000", "too large"),
    ("040000000000", "too large"),
    ("256.1.1.1", "over 255"),
    ("1.256.1.1", "over 255"),
    ("1.2.3.256", "too large"),
    ("1.2.65536", "too large"),
    ("1.16777216", "too large"),
    ("99999999999999999999", "too large"),
    # ports
    ("example.com:70000", "out of range"),
    ("example.com:65536", "out of range"),
    ("example.com:-1", "not a number"),
    ("example.com:8o", "not a number"),
    ("example.com:８０", "not a number"),
    # IPv6
    ("[::1", "not closed"),
    ("[::1]x", "after the IPv6 address"),
    ("[fe80::1%eth0]", "zone ids"),
    ("[fe80::1%25eth0]", "zone ids"),
    ("fe80::1%eth0", "zone ids"),
    ("[::g]", "not an IPv6 address"),
    ("[1:2:3:4:5:6:7:8:9]", "not an IPv6 address"),
    ("[example.com]", "not an IPv6 address"),
    ("a:b:c", "not an IPv6 address"),
    ("[]", "not an IPv6 address"),
]


@pytest.mark.parametrize(("text", "reason"), INVALID)
def test_invalid_hosts_say_why(text, reason):
    with pytest.raises(InvalidHost) as caught:
        normalise_host(text)
    assert reason in str(caught.value)
    assert str(caught.value).startswith("host name ")
    assert caught.value.reason in str(caught.value)


def test_invalid_host_is_invalid_input_with_422():
    with pytest.raises(InvalidInput) as caught:
        normalise_host("a..b")
    assert caught.value.status_code == 422


def test_long_hostile_input_is_shortened_in_the_message():
    with pytest.raises(InvalidHost) as caught:
        normalise_host("x" * 5000)
    assert len(str(caught.value)) < 300


def test_non_text_is_refused():
    with pytest.raises(InvalidHost, match="expected text"):
        parse_host(b"example.com")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("example.com", HostKind.NAME),
        ("EXAMPLE.com", HostKind.NAME),
        ("08", HostKind.NAME),
        ("127.1", HostKind.IPV4),
        ("[::ffff:10.0.0.1]", HostKind.IPV4),
        ("[::1]", HostKind.IPV6),
    ],
)
def test_parse_host_kind(text, kind):
    host = parse_host(text)
    assert host.kind is kind
    assert host.is_ip is (kind is not HostKind.NAME)


def test_host_value():
    name = parse_host("A.B.Example.com")
    assert name == Host("a.b.example.com")
    assert name.labels == ("a", "b", "example", "com")
    assert str(name) == "a.b.example.com"
    assert name.url_form == "a.b.example.com"
    ipv6 = parse_host("[2001:db8::1]")
    assert ipv6.labels == ()
    assert ipv6.url_form == "[2001:db8::1]"
    assert parse_host("10.0.0.1").url_form == "10.0.0.1"
    with pytest.raises(AttributeError):
        name.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("example.com", "example.com", None),
        ("example.com:8080", "example.com", 8080),
        ("example.com:", "example.com", None),
        ("u:p@Example.com:08080", "example.com", 8080),
        ("[::1]:53", "::1", 53),
        ("[::1]", "::1", None),
        ("::1", "::1", None),
        ("127.1:80", "127.0.0.1", 80),
    ],
)
def test_parse_authority(text, host, port):
    parsed, parsed_port = parse_authority(text)
    assert (parsed.name, parsed_port) == (host, port)


# --- the fast path -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("example.com", True),
        ("a.b.c.example.co.uk", True),
        ("_sip._tcp.example.com", True),
        ("1.0.168.192.in-addr.arpa", True),
        ("com", True),
        (NAME_253, True),
        (f"{LABEL_63}.com", True),
        ("Example.com", False),
        ("example.com.", False),
        ("a" * 64 + ".com", False),
        (NAME_253 + "c", False),
        ("xn--bcher-kva.de", False),  # punycode is checked on the slow path
        ("a.xn--p1ai", False),
        ("-x.example.com", False),
        ("x-.example.com", False),
        ("a..b", False),
        ("", False),
        ("192.168.0.1", False),  # ends in a number: IPv4 rules apply
        ("127.1", False),
        ("08", False),
        ("a.0x1f", False),
        ("a.0x", False),
        ("bücher.de", False),
        ("example.com:80", False),
        ("example.com\n", False),
    ],
)
def test_is_plain_ascii_host(text, plain):
    assert is_plain_ascii_host(text) is plain


@given(st.from_regex(hostnames._PLAIN_HOST, fullmatch=True))
@settings(max_examples=300)
def test_plain_hosts_are_already_normal(text):
    if len(text) <= 253:
        assert normalise_host(text) == text
        assert hostnames._parse_name_or_ipv4(text, text).name == text  # the slow path agrees


@given(st.text(max_size=80))
@settings(max_examples=500)
def test_any_text_normalises_or_says_why(text):
    """Hostile input never escapes as anything but InvalidHost, and the result is stable."""
    try:
        result = normalise_host(text)
    except InvalidHost:
        return
    assert result.isascii()
    assert normalise_host(result) == result
    if ":" not in result:
        assert len(result) <= 253
        assert all(0 < len(label) <= 63 for label in result.split("."))


hostish = st.text(alphabet="abcXYZ019-_.:%@[]ü。．ｅ\u200d❤", max_size=30)


@given(hostish)
@settings(max_examples=500)
def test_host_like_text_is_idempotent(text):
    try:
        result = normalise_host(text)
    except InvalidHost:
        return
    assert normalise_host(result) == result
    assert parse_host(result).kind is parse_host(text).kind


# --- display --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("xn--bcher-kva.de", "bücher.de"),
        ("bücher.de", "bücher.de"),
        ("xn--e1afmkfd.xn--p1ai", "пример.рф"),
        ("xn--i-7iq.ws", "i❤.ws"),
        ("example.com", "example.com"),
        ("Example.COM.", "example.com"),
        ("[::1]", "::1"),
        ("127.1", "127.0.0.1"),
        # mixed-script look-alikes stay in punycode, as browsers show them
        ("аpple.com", "xn--pple-43d.com"),
        ("xn--pple-43d.com", "xn--pple-43d.com"),
        ("раураl.com", "xn--l-7sba6dbr.com"),
        ("www.аpple.com", "www.xn--pple-43d.com"),
    ],
)
def test_display_host(text, shown):
    assert display_host(text) == shown
    assert parse_host(text).display == shown
    assert normalise_host(shown) == normalise_host(text)


# --- matching at label boundaries ------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "listed", "matches"),
    [
        ("example.com", "example.com", True),
        ("www.example.com", "example.com", True),
        ("a.b.c.example.com", "example.com", True),
        ("a.b.c.example.com", "c.example.com", True),
        ("a.b.c.example.com", "com", True),
        ("badexample.com", "example.com", False),
        ("example.com.evil", "example.com", False),
        ("example.com", "www.example.com", False),
        ("xexample.com", "example.com", False),
        ("com", "example.com", False),
        ("example.co", "example.com", False),
        ("1.2.3.4", "1.2.3.4", True),
        ("5.1.2.3.4", "1.2.3.4", False),  # a name that happens to end like an address
        ("::1", "::1", True),
        ("1::1", "::1", False),
    ],
)
def test_host_matches(host, listed, matches):
    assert host_matches(host, listed) is matches


@pytest.mark.parametrize(
    ("host", "parents"),
    [
        ("a.b.c.com", ["a.b.c.com", "b.c.com", "c.com", "com"]),
        ("example.com", ["example.com", "com"]),
        ("localhost", ["localhost"]),
        ("192.168.0.1", ["192.168.0.1"]),
        ("2001:db8::1", ["2001:db8::1"]),
    ],
)
def test_parent_domains(host, parents):
    assert list(parent_domains(host)) == parents


@given(
    st.from_regex(hostnames._PLAIN_HOST, fullmatch=True),
    st.from_regex(hostnames._PLAIN_HOST, fullmatch=True),
)
def test_matching_agrees_with_parent_domains(host, listed):
    assert host_matches(host, listed) is (listed in set(parent_domains(host)))


# --- registrable domains from the bundled Public Suffix List ------------------------------


@pytest.mark.parametrize(
    ("host", "registrable"),
    [
        ("example.com", "example.com"),
        ("www.example.com", "example.com"),
        ("a.b.example.co.uk", "example.co.uk"),
        ("EXAMPLE.CO.UK.", "example.co.uk"),
        # English schools: *.sch.uk, one level per local authority
        ("stmarys.essex.sch.uk", "stmarys.essex.sch.uk"),
        ("www.stmarys.essex.sch.uk", "stmarys.essex.sch.uk"),
        ("www.bbc.co.uk", "bbc.co.uk"),
        ("a.b.example.com.au", "example.com.au"),
        # private suffixes: each user's site is its own
        ("someone.github.io", "someone.github.io"),
        ("www.someone.github.io", "someone.github.io"),
        ("shop.myshopify.com", "shop.myshopify.com"),
        ("x.y.blogspot.com", "y.blogspot.com"),
        # wildcard and exception rules (*.kobe.jp, !city.kobe.jp)
        ("x.y.kobe.jp", "x.y.kobe.jp"),
        ("www.city.kobe.jp", "city.kobe.jp"),
        # IDN suffixes, in or out of punycode
        ("www.例え.中国", "xn--r8jz45g.xn--fiqs8s"),
        ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
        # bare suffixes and IPs have none
        ("co.uk", None),
        ("com", None),
        ("github.io", None),
        ("sch.uk", None),
        ("essex.sch.uk", None),
        ("localhost", None),
        ("192.168.0.1", None),
        ("[::1]", None),
        # an unknown top-level domain counts as a suffix
        ("server.internal", "server.internal"),
    ],
)
def test_registrable_domain(host, registrable):
    assert registrable_domain(host) == registrable


def test_registrable_domain_icann_only():
    assert registrable_domain("someone.github.io", private_suffixes=False) == "github.io"
    assert registrable_domain("a.b.example.co.uk", private_suffixes=False) == "example.co.uk"


@pytest.mark.parametrize(
    ("host", "suffix"),
    [
        ("a.example.co.uk", "co.uk"),
        ("someone.github.io", "github.io"),
        ("com", "com"),
        ("10.0.0.1", None),
    ],
)
def test_public_suffix(host, suffix):
    assert public_suffix(host) == suffix


def test_registrable_domain_rejects_invalid_hosts():
    with pytest.raises(InvalidHost):
        registrable_domain("a..b")


def test_public_suffix_list_is_never_fetched(monkeypatch):
    """The list comes from the package's bundled file: no socket is ever opened."""

    def no_network(*args, **kwargs):
        raise AssertionError("the Public Suffix List must not be fetched")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    hostnames._public_suffix_list.cache_clear()
    try:
        assert registrable_domain("a.b.example.co.uk") == "example.co.uk"
        assert registrable_domain("someone.github.io", private_suffixes=False) == "github.io"
    finally:
        hostnames._public_suffix_list.cache_clear()
