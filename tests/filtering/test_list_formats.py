"""List formats (issue 4 §3): every format, broken lines reported by number, parsing goes on."""

from __future__ import annotations

import gzip
import re
import time
from pathlib import Path

import pytest

from esafety.errors import InvalidInput
from esafety.filtering.categories import Category
from esafety.filtering.lists import (
    UT1_CATEGORIES,
    DomainEntry,
    HashAlgorithm,
    ListFormat,
    ListProblem,
    ParsedList,
    RegexEntry,
    UrlHashEntry,
    UrlPrefixEntry,
    list_format_of,
    parse_list,
    ut1_category,
)
from esafety.filtering.lists.parse import MAX_KEPT_PROBLEMS
from esafety.filtering.lists.regex_safety import MAX_PATTERN, compile_safe, unsafe_reason


def items(lines, fmt):
    return list(parse_list(lines, fmt))


def entries(lines, fmt):
    return [item for item in items(lines, fmt) if not isinstance(item, ListProblem)]


def problems(lines, fmt):
    return [item for item in items(lines, fmt) if isinstance(item, ListProblem)]


def domains(lines, fmt):
    return [(e.domain, e.line) for e in entries(lines, fmt)]


# -- reading lines: encodings, endings, files ---------------------------------------


@pytest.mark.parametrize("fmt", ["hosts", "domains", "adblock", "urls", "urlhash", "regex"])
def test_every_format_skips_blank_lines_and_reads_crlf_and_bom(fmt, tmp_path):
    body = {
        "hosts": "0.0.0.0 one.example",
        "domains": "one.example",
        "adblock": "||one.example^",
        "urls": "one.example/page",
        "urlhash": "d41d8cd98f00b204e9800998ecf8427e",
        "regex": r"^one\.example$",
    }[fmt]
    path = tmp_path / "list.txt"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode() + b"\r\n\r\n   \r\n" + body.encode() + b"\r\n")
    found = items(path, fmt)
    assert not [item for item in found if isinstance(item, ListProblem)]
    assert [item.line for item in found] == [1, 4]
    # the BOM and the CR are gone: both lines give the same entry
    first, second = found
    assert type(first) is type(second)
    assert {k: v for k, v in vars_of(first).items() if k != "line"} == {
        k: v for k, v in vars_of(second).items() if k != "line"
    }


def vars_of(entry):
    return {name: getattr(entry, name) for name in entry.__slots__}


def test_bom_on_a_str_first_line():
    assert domains(["\ufeffexample.com", "b.example"], "domains") == [
        ("example.com", 1),
        ("b.example", 2),
    ]


def test_windows_1252_bytes_are_reported_not_a_crash(tmp_path):
    path = tmp_path / "domains"
    # "café.example" saved as Windows-1252: 0xe9 is not UTF-8.
    path.write_bytes(b"good.example\ncaf\xe9.example\r\nafter.example\n")
    found = items(path, "domains")
    assert [type(item) for item in found] == [DomainEntry, ListProblem, DomainEntry]
    problem = found[1]
    assert problem.line == 2
    assert "not UTF-8" in problem.reason
    assert "0xe9" in problem.reason
    assert "save the list as UTF-8" in problem.reason
    assert found[2] == DomainEntry("after.example", 3)


def test_bytes_lines_from_memory():
    assert domains([b"a.example\n", b"B.EXAMPLE\r\n"], "domains") == [
        ("a.example", 1),
        ("b.example", 2),
    ]


def test_gzip_file_is_read(tmp_path):
    path = tmp_path / "domains.gz"
    path.write_bytes(gzip.compress(b"zipped.example\n"))
    assert domains(path, "domains") == [("zipped.example", 1)]


def test_overlong_line_is_reported():
    found = items(["a" * 5000, "ok.example"], "domains")
    assert isinstance(found[0], ListProblem)
    assert "longer than 4096" in found[0].reason
    assert found[1] == DomainEntry("ok.example", 2)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidInput, match=r"cannot read list file .*nope\.txt"):
        parse_list(tmp_path / "nope.txt", "domains")


def test_unknown_format_names_the_allowed_ones():
    with pytest.raises(InvalidInput) as caught:
        parse_list(["a.example"], "csv")
    assert str(caught.value) == (
        "unknown list format 'csv': expected one of hosts|domains|adblock|ut1|urls|urlhash|regex"
    )
    assert list_format_of(" Hosts ") is ListFormat.HOSTS


def test_parsing_streams_lazily():
    def endless():
        number = 0
        while True:
            number += 1
            yield f"site{number}.example"

    stream = parse_list(endless(), "domains")
    assert next(stream) == DomainEntry("site1.example", 1)
    assert next(stream) == DomainEntry("site2.example", 2)


# -- hosts ----------------------------------------------------------------------------

HOSTS = """\
# StevenBlack-style header
127.0.0.1 localhost
127.0.0.1 localhost.localdomain
::1 ip6-localhost ip6-loopback
0.0.0.0 0.0.0.0
0.0.0.0 ads.example tracker.example  # two names, then a comment
127.0.0.1\tTABBED.example
:: six.example
0:0:0:0:0:0:0:0 long-six.example
0.0.0.0 bad..example
192.168.1.10 printer.example
just-a-name.example
0.0.0.0
0.0.0.0 after.example
"""


def test_hosts_file():
    found = items(HOSTS.splitlines(), "hosts")
    assert [(e.domain, e.line) for e in found if isinstance(e, DomainEntry)] == [
        ("ads.example", 6),
        ("tracker.example", 6),
        ("tabbed.example", 7),
        ("six.example", 8),
        ("long-six.example", 9),
        ("after.example", 14),
    ]
    reported = {p.line: p.reason for p in found if isinstance(p, ListProblem)}
    assert set(reported) == {10, 11, 12, 13}
    assert "empty label" in reported[10]
    assert "192.168.1.10" in reported[11] and "not at a blocking address" in reported[11]
    assert "expected an address first" in reported[12]
    assert "no name after it" in reported[13]


def test_hosts_entries_are_blocks():
    assert all(not e.exception for e in entries(HOSTS.splitlines(), "hosts"))


# -- domains ----------------------------------------------------------------------------


def test_domains_list():
    lines = [
        "# a comment",
        "! another comment",
        "",
        "Example.COM.",
        "*.wild.example",
        ".dotted.example",
        "inline.example # why it is listed",
        "tabbed.example\t# comment",
        "192.0.2.7",
        "2001:db8::1",
        "two.example three.example",
        "mid.*.example",
        "x.example/path",
        "a" * 64 + ".example",
        "last.example",
    ]
    found = items(lines, "domains")
    assert [(e.domain, e.line) for e in found if isinstance(e, DomainEntry)] == [
        ("example.com", 4),
        ("wild.example", 5),
        ("dotted.example", 6),
        ("inline.example", 7),
        ("tabbed.example", 8),
        ("last.example", 15),
    ]
    reported = {p.line: p.reason for p in found if isinstance(p, ListProblem)}
    assert set(reported) == {9, 10, 11, 12, 13, 14}
    assert "an IP address" in reported[9]
    assert "an IP address" in reported[10]
    assert "one name per line" in reported[11]
    assert "wildcard" in reported[12]
    assert "--format urls" in reported[13]
    assert "not a valid name" in reported[14]


@pytest.mark.parametrize(
    ("listed", "normal"),
    [
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("*.bücher.example", "xn--bcher-kva.example"),
        ("例え.jp", "xn--r8jz45g.jp"),
        ("ｅｘａｍｐｌｅ．ｃｏｍ", "example.com"),  # fullwidth letters and dot (UTS 46)
    ],
)
def test_internationalised_names_become_punycode(listed, normal):
    assert domains([listed], "domains") == [(normal, 1)]
    assert domains([f"0.0.0.0 {listed}"], "hosts") == [(normal, 1)]
    assert domains([f"||{listed}^"], "adblock") == [(normal, 1)]


def test_duplicates_are_kept_for_later_deduplication():
    assert domains(["a.example", "A.example", "*.a.example"], "domains") == [
        ("a.example", 1),
        ("a.example", 2),
        ("a.example", 3),
    ]


# -- adblock ------------------------------------------------------------------------------

ADBLOCK = """\
[Adblock Plus 2.0]
! Title: test list
! Expires: 1 day
||ads.example^
||Tracker.EXAMPLE^$third-party
||important.example^$important
@@||allowed.ads.example^
@@||ok.example^$important
||*.wild.example^
||pipe.example^|
plain.example
example.com##.advert
##.banner
example.com#@#.advert
||path.example/ads/*
/banner[0-9]+/
||script.example^$script
||bad.example^$badfilter
||dnsrewrite.example^$dnsrewrite=1.2.3.4
||ads*.example^
# hash comment
||last.example^
"""


def test_adblock_rules():
    found = items(ADBLOCK.splitlines(), "adblock")
    kept = [(e.domain, e.line, e.exception) for e in found if isinstance(e, DomainEntry)]
    assert kept == [
        ("ads.example", 4, False),
        ("tracker.example", 5, False),
        ("important.example", 6, False),
        ("allowed.ads.example", 7, True),
        ("ok.example", 8, True),
        ("wild.example", 9, False),
        ("pipe.example", 10, False),
        ("plain.example", 11, False),
        ("last.example", 22, False),
    ]
    reported = {p.line: p.reason for p in found if isinstance(p, ListProblem)}
    assert set(reported) == set(range(12, 21))
    assert all(reason.startswith("unsupported") for reason in reported.values())
    assert "cosmetic" in reported[12] and "cosmetic" in reported[13] and "cosmetic" in reported[14]
    assert "whole-site" in reported[15]
    assert "--format regex" in reported[16]
    assert "script" in reported[17]
    assert "badfilter" in reported[18]
    assert "dnsrewrite" in reported[19]
    assert "whole-site" in reported[20]


# -- urls and urlhash ---------------------------------------------------------------------


def test_url_prefix_list():
    lines = [
        "# URL prefixes",
        "example.com/bad/page",
        "HTTPS://Example.COM:443/a/./b/../c?x=%7e#frag",
        "http://user@bücher.example/path",
        "http://",
        "one.example two.example",
        "example.org",
    ]
    found = items(lines, "urls")
    assert [(e.url_key, e.line) for e in found if isinstance(e, UrlPrefixEntry)] == [
        ("example.com/bad/page", 2),
        ("example.com/a/c?x=~", 3),
        ("xn--bcher-kva.example/path", 4),
        ("example.org/", 7),
    ]
    reported = {p.line: p.reason for p in found if isinstance(p, ListProblem)}
    assert set(reported) == {5, 6}
    assert "not a valid URL" in reported[5]
    assert "one URL per line" in reported[6]


@pytest.mark.parametrize(
    ("digest", "algorithm"),
    [
        ("d41d8cd98f00b204e9800998ecf8427e", HashAlgorithm.MD5),
        ("DA39A3EE5E6B4B0D3255BFEF95601890AFD80709", HashAlgorithm.SHA1),
        ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", HashAlgorithm.SHA256),
    ],
)
def test_url_hash_algorithm_by_length(digest, algorithm):
    assert entries([digest], "urlhash") == [UrlHashEntry(algorithm, digest.lower(), 1)]


def test_url_hash_bad_lines():
    lines = [
        "# IWF-style hashed list",
        "abc",
        "g" * 32,
        "d41d8cd98f00b204e9800998ecf8427e0",  # 33 digits
        "d41d8cd98f00b204e9800998ecf8427e d41d8cd98f00b204e9800998ecf8427e",
        "d41d8cd98f00b204e9800998ecf8427e  # comment",
    ]
    found = items(lines, "urlhash")
    assert found[-1] == UrlHashEntry(HashAlgorithm.MD5, "d41d8cd98f00b204e9800998ecf8427e", 6)
    reported = {p.line: p.reason for p in found if isinstance(p, ListProblem)}
    assert set(reported) == {2, 3, 4, 5}
    assert "3 hex digits: expected 32 (MD5), 40 (SHA-1) or 64 (SHA-256)" in reported[2]
    assert "not a hex digest (found 'g')" in reported[3]
    assert "33 hex digits" in reported[4]
    assert "one digest per line" in reported[5]


# -- UT1 folders ---------------------------------------------------------------------------


def ut1_folder(root: Path, name: str, domain_lines: str, url_lines: str | None) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "domains").write_text(domain_lines, encoding="utf-8")
    if url_lines is not None:
        (folder / "urls").write_text(url_lines, encoding="utf-8")
    (folder / "usage").write_text("black\n", encoding="utf-8")
    (folder / "expressions").write_text("(casino|poker)+.*\n", encoding="utf-8")
    return folder


def test_ut1_folder(tmp_path):
    folder = ut1_folder(
        tmp_path / "blacklists",
        "gambling",
        "casino.example\n192.0.2.1\nbet.example\nbad..example\n",
        "poker.example/play\nhttp://\n",
    )
    assert ut1_category(folder) is Category.GAMBLING
    found = items(folder, "ut1")
    assert [e for e in found if not isinstance(e, ListProblem)] == [
        DomainEntry("casino.example", 1),
        DomainEntry("bet.example", 3),
        UrlPrefixEntry("poker.example/play", 1),
    ]
    reported = [(p.file, p.line) for p in found if isinstance(p, ListProblem)]
    assert reported == [("domains", 2), ("domains", 4), ("urls", 2)]
    assert str(found[1]).startswith("domains:2: an IP address")


def test_ut1_folder_with_domains_only_and_gzip(tmp_path):
    folder = tmp_path / "adult"
    folder.mkdir()
    (folder / "domains.gz").write_bytes(gzip.compress(b"x.example\n"))
    assert entries(folder, "ut1") == [DomainEntry("x.example", 1)]
    assert ut1_category(folder) is Category.PORNOGRAPHY


def test_ut1_whole_collection_is_refused_with_a_hint(tmp_path):
    root = tmp_path / "blacklists"
    ut1_folder(root, "gambling", "a.example\n", None)
    ut1_folder(root, "warez", "b.example\n", None)
    with pytest.raises(InvalidInput, match=r"holds several UT1 categories .*gambling, warez"):
        parse_list(root, "ut1")


def test_ut1_errors(tmp_path):
    with pytest.raises(InvalidInput, match="not a folder"):
        parse_list(tmp_path / "missing", "ut1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match="expected a 'domains' or 'urls' file"):
        parse_list(tmp_path / "empty", "ut1")
    with pytest.raises(InvalidInput, match="a UT1 list is a folder"):
        parse_list(["a.example"], "ut1")


@pytest.mark.parametrize(
    ("folder", "category"),
    [
        ("adult", Category.PORNOGRAPHY),
        ("porn", Category.PORNOGRAPHY),
        ("mixed_adult", Category.ADULT),
        ("agressif", Category.HATE),
        ("dangerous_material", Category.WEAPONS),
        ("drogue", Category.DRUGS),
        ("gambling", Category.GAMBLING),
        ("phishing", Category.PHISHING),
        ("malware", Category.MALWARE),
        ("dating", Category.DATING),
        ("social_networks", Category.SOCIAL_MEDIA),
        ("chat", Category.CHAT),
        ("games", Category.GAMES),
        ("warez", Category.PIRACY),
        ("vpn", Category.PROXIES_VPN),
        ("redirector", Category.PROXIES_VPN),
        ("strong_redirector", Category.PROXIES_VPN),
        ("doh", Category.ENCRYPTED_DNS),
        ("ai", Category.GENERATIVE_AI),
        ("fakenews", Category.MISINFORMATION),
        ("sect", None),
        ("child", None),  # an allow list in UT1, never a block category
        ("not-a-ut1-folder", None),
    ],
)
def test_ut1_category_mapping(folder, category):
    assert ut1_category(Path("/lists/blacklists") / folder) is category


def test_ut1_mapping_only_names_real_categories():
    assert all(value is None or isinstance(value, Category) for value in UT1_CATEGORIES.values())


# -- regex ---------------------------------------------------------------------------------


def test_regex_list():
    lines = [
        "# patterns",
        r"^ads?[0-9]*\.",
        r"/casino|poker/",
        r"(a+)+$",
        r"[",
        r"\#hash",
    ]
    found = items(lines, "regex")
    assert [e for e in found if isinstance(e, RegexEntry)] == [
        RegexEntry(r"^ads?[0-9]*\.", 2),
        RegexEntry("casino|poker", 3),
        RegexEntry(r"\#hash", 6),
    ]
    reported = {p.line: p.reason for p in found if isinstance(p, ListProblem)}
    assert set(reported) == {4, 5}
    assert reported[4].startswith("regular expression refused: nested repetition")
    assert "not a valid regular expression" in reported[5]


ACCEPTED = [
    r"casino",
    r"^ads\.",
    r"^([a-z0-9-]+\.)*example\.com$",
    r"^(www\.)?bet[0-9]+\.com$",
    r"(\d+,\s*)*",
    r"(a|b)*c",
    r"[a-z]{2,10}\.xyz",
    r"(?i)poker",
    r"\.(com|net|org)$",
    r"^https?://[^/]+/ads/",
    r"foo.*bar",
    r"a*b*a*",
    r"(?:com|co\.uk)+",
    r"(\.[a-z]+)+/",
    r"^[^/]*/wp-admin/",
    r"(?:ab)+",
    "x" * MAX_PATTERN,
]

REFUSED = [
    (r"(a+)+", "nested repetition"),
    (r"(a*)*", "nested repetition"),
    (r"(a+)*b", "nested repetition"),
    (r"(.*a){10}", "nested repetition"),
    (r"(a*b*)*", "nested repetition"),
    (r"(x+x+)+y", "nested repetition"),
    (r"([a-z]+)*$", "nested repetition"),
    (r"(\w+\s?)+$", "nested repetition"),
    (r"(?i)(A+a)+", "nested repetition"),  # case-insensitively A+ and a overlap
    (r"((ab)*)*", "nested repetition"),
    (r"^(([a-z])+.)+[A-Z]([a-z])+$", "nested repetition"),
    (r"(a|a)*", "alternatives inside a repetition"),
    (r"(a|ab)*", "alternatives inside a repetition"),
    (r"(a|)*", "alternatives inside a repetition"),
    (r"(\d\d|[0-9]x)*", "alternatives inside a repetition"),
    (r"(a)\1", "backreference"),
    (r"(?P<x>a)(?(x)b|c)", "conditional group"),
    (r"(?=a)b", "lookahead or lookbehind"),
    (r"(?<=a)b", "lookahead or lookbehind"),
    (r"(?!a)b", "negative lookahead"),
    (r"x(?<!a)b", "negative lookahead"),
    (r"(x|(?=a)b)", "lookahead or lookbehind"),
    (r".*a.*b.*c", "three or more overlapping repeats"),
    ("x" * (MAX_PATTERN + 1), f"longer than {MAX_PATTERN}"),
    ("", "empty pattern"),
    (r"(", "not a valid regular expression"),
]


@pytest.mark.parametrize("pattern", ACCEPTED)
def test_regex_checker_accepts(pattern):
    assert unsafe_reason(pattern) is None
    assert compile_safe(pattern).pattern == pattern


@pytest.mark.parametrize(("pattern", "reason"), REFUSED)
def test_regex_checker_refuses(pattern, reason):
    refused = unsafe_reason(pattern)
    assert refused is not None
    assert reason in refused
    with pytest.raises(InvalidInput, match="refused"):
        compile_safe(pattern)


@pytest.mark.parametrize("pattern", ACCEPTED[:16])
def test_accepted_patterns_run_fast_on_hostile_input(pattern):
    # The point of the checker: no accepted pattern takes long on the inputs that break
    # refused ones (a run of one character and a mismatch at the end).
    compiled = re.compile(pattern)
    started = time.perf_counter()
    for text in ("a" * 2000 + "!", "a." * 1000 + "!", "1," * 1000 + "x", " " * 2000 + "!"):
        compiled.search(text)
    assert time.perf_counter() - started < 1.0


def test_a_refused_pattern_really_is_slow():
    # The checker is not refusing harmless patterns: (a+)+$ takes visibly long on 24 a's.
    compiled = re.compile(r"(a+)+$")
    started = time.perf_counter()
    compiled.match("a" * 22 + "!")
    assert time.perf_counter() - started > 0.05


# -- ParsedList ------------------------------------------------------------------------------


def test_parsed_list_tallies_while_streaming():
    summary = ParsedList(ListFormat.ADBLOCK)
    kept = list(summary.entries(parse_list(ADBLOCK.splitlines(), "adblock")))
    assert len(kept) == 9
    assert summary.counts == {"domain": 7, "exception": 2}
    assert summary.entry_count == 9
    assert summary.problem_count == 9
    assert [p.line for p in summary.problems] == list(range(12, 21))


def test_parsed_list_of_counts_every_kind(tmp_path):
    path = tmp_path / "hashes.txt"
    path.write_text(
        "d41d8cd98f00b204e9800998ecf8427e\nda39a3ee5e6b4b0d3255bfef95601890afd80709\nzz\n",
        encoding="utf-8",
    )
    summary = ParsedList.of(path, "urlhash")
    assert summary.format is ListFormat.URLHASH
    assert summary.counts == {"url_hash": 2}
    assert summary.problem_count == 1
    assert ParsedList.of([r"^a\.", "b.example/x"], "regex").counts == {"regex": 2}
    assert ParsedList.of(["b.example/x"], "urls").counts == {"url_prefix": 1}


def test_parsed_list_keeps_the_first_problems_and_counts_all():
    bad = ["bad..example"] * (MAX_KEPT_PROBLEMS + 50)
    summary = ParsedList.of(bad, "domains")
    assert summary.problem_count == MAX_KEPT_PROBLEMS + 50
    assert len(summary.problems) == MAX_KEPT_PROBLEMS
    assert summary.entry_count == 0
