"""Domain sets: the C extension and the pure-Python fallback agree; files load in other
processes; damaged buffers are refused; matching stops at label boundaries."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from esafety.errors import InvalidInput
from esafety.filtering import domainset
from esafety.filtering.domainset import PyDomainSet, py_hash_name

native = pytest.importorskip("esafety.filtering._domainset", reason="C extension not built")

EDGE_NAMES = [
    "",
    ".",
    "com",
    "com.",
    "example.com",
    "a.b.example.com",
    "..",
    "a..b",
    ".leading.dot",
    "bücher.de",
    "x.bücher.de",
    "ü.ö.ä",
    "xn--bcher-kva.de",
    "10.0.0.1",
    "a.10.0.0.1",
    "[2001:db8::1]",
    "2001:db8::1",
    "a" * 63 + "." + "b" * 63,
    "😀.example",
    "-.-",
]


def random_names(count: int) -> list[str]:
    rng = random.Random(7)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-.é"
    return [
        ".".join(
            "".join(rng.choices(alphabet, k=rng.randint(1, 12))) for _ in range(rng.randint(1, 6))
        )
        for _ in range(count)
    ]


def both(pairs):
    return native.DomainSet.build(pairs), PyDomainSet.build(pairs)


def test_hash_is_the_same_in_c_and_python() -> None:
    for name in [*EDGE_NAMES, *random_names(5000)]:
        assert native.hash_name(name) == py_hash_name(name), name
    # Pinned, so a change of algorithm cannot go unnoticed (files written before would
    # silently stop matching): FNV-1a 64 over the bytes last to first, then fmix64.
    assert py_hash_name("example.com") == 0x9F8D0BDD8BB0915E


def test_c_and_python_match_the_same_and_write_the_same_bytes() -> None:
    listed = [n for n in [*EDGE_NAMES, *random_names(3000)] if n]
    pairs = [(py_hash_name(name), n % 50) for n, name in enumerate(listed)]
    c_set, py_set = both(pairs)
    assert c_set.to_bytes() == py_set.to_bytes()
    assert (len(c_set), c_set.capacity, c_set.value_limit) == (
        len(py_set),
        py_set.capacity,
        py_set.value_limit,
    )
    hosts = [*EDGE_NAMES, *random_names(3000), *(f"www.{n}" for n in listed[:2000])]
    for host in hosts:
        assert c_set.match(host) == py_set.match(host), host
        assert native.match_both(c_set, c_set, host) == domainset.py_match_both(
            py_set, py_set, host
        )
    expected = dict(pairs)  # a repeated name keeps its last value, as in a dict
    for key, value in expected.items():
        assert c_set.get(key) == py_set.get(key) == value
    assert c_set.get(12345) is None and py_set.get(12345) is None


@pytest.mark.parametrize("make", [native.DomainSet.build, PyDomainSet.build])
def test_label_boundaries_and_offsets(make) -> None:
    names = ["example.com", "bet.example.com", "bücher.de", "10.0.0.1", "com"]
    found = make({py_hash_name(n): v for v, n in enumerate(names)})
    assert found.match("a.bet.example.com") == ((2, 1), (6, 0), (14, 4))
    assert found.match("badexample.com") == ((11, 4),)  # only "com": not a label boundary
    assert found.match("example.com.evil.net") == ()
    assert found.match("www.bücher.de") == ((4, 2),)  # offsets count characters
    assert "www.bücher.de"[4:] == "bücher.de"
    assert found.match("10.0.0.1") == ((0, 3),)
    assert found.match("7.10.0.0.1") == ()  # an IP address is looked up whole only
    assert found.match("") == ()
    with pytest.raises(TypeError, match="must be str"):
        found.match(b"example.com")
    with pytest.raises(ValueError, match="127 labels"):
        found.match("a." * 200 + "com")


def test_build_refuses_bad_pairs() -> None:
    for make in (native.DomainSet.build, PyDomainSet.build):
        with pytest.raises(ValueError, match="non-zero"):
            make([(0, 1)])
        with pytest.raises(ValueError, match="non-zero"):
            make([(5, 2**32 - 1)])
        with pytest.raises((OverflowError, ValueError)):
            make([(-1, 1)])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b"", "does not start with the domain-set header"),
        (lambda b: b"NOTASET!" + b[8:], "does not start with the domain-set header"),
        (lambda b: b[:8] + b"\x02" + b[9:], "another format version"),
        (lambda b: b[:12] + b"\x09" + b[13:], "another name hash"),
        (lambda b: b[:16] + b"\x07" + b[17:], "impossible table size"),
        (lambda b: b[:-4], "length does not match"),
        (lambda b: b + b"\0" * 4, "length does not match"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "checksum does not match"),
        (lambda b: b[:100] + bytes([b[100] ^ 0x40]) + b[101:], "checksum does not match"),
    ],
)
def test_a_damaged_buffer_is_refused_with_the_reason(damage, message) -> None:
    good = native.DomainSet.build({py_hash_name("example.com"): 1}).to_bytes()
    bad = damage(good)
    with pytest.raises(ValueError, match=message):
        native.DomainSet.from_buffer(bad)
    with pytest.raises(InvalidInput, match=message):
        PyDomainSet.from_buffer(bad)
    with pytest.raises(InvalidInput, match=message):
        domainset.from_buffer(bad)


def test_empty_or_missing_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.domains"
    empty.write_bytes(b"")
    with pytest.raises(InvalidInput, match="empty"):
        domainset.load(empty)


def test_saved_set_loads_and_matches_in_another_process(tmp_path: Path) -> None:
    names = [f"site{n}.example" for n in range(20_000)]
    built = domainset.DomainSet.build(
        {domainset.hash_name(name): n % 7 for n, name in enumerate(names)}
    )
    path = tmp_path / "index.domains"
    domainset.save(built, path)
    here = built.match("cdn.site123.example")
    assert here == ((4, 123 % 7),)
    script = textwrap.dedent(
        f"""
        import sys
        from esafety.filtering import domainset
        loaded = domainset.load({str(path)!r})
        print(len(loaded), loaded.match("cdn.site123.example"), loaded.match("site123.example.org"))
        py = domainset.PyDomainSet.from_buffer(open({str(path)!r}, "rb").read())
        print(py.match("cdn.site123.example"))
        """
    )
    # A fresh interpreter with another hash seed: the set must not depend on hash().
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"},
        cwd=Path(__file__).resolve().parents[2],
    ).stdout.splitlines()
    assert out == [f"20000 {here} ()", str(here)]
