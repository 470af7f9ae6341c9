"""The starter lists esafety ships: each parses cleanly and names its category."""

from __future__ import annotations

from pathlib import Path

import pytest

from esafety.filtering.categories import category_of
from esafety.filtering.hostnames import parent_domains
from esafety.filtering.lists import DomainEntry, ListProblem, parse_list
from esafety.filtering.safesearch import safe_search_rewrites

STARTER = Path(__file__).parents[2] / "esafety" / "filtering" / "data" / "starter"
FILES = sorted(STARTER.glob("*.txt"))


def test_the_starter_set_covers_what_the_issue_names() -> None:
    assert {f.stem for f in FILES} == {
        "search_engines", "child_search", "social_media", "chat",
        "encrypted_dns", "proxies_vpn", "generative_ai",
    }  # fmt: skip


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_each_list_parses_without_problems(path: Path) -> None:
    assert category_of(path.stem).value == path.stem
    assert f"Category: {path.stem}." in path.read_text()
    items = list(parse_list(path, "domains"))
    assert [i for i in items if isinstance(i, ListProblem)] == []
    names = [i.domain for i in items if isinstance(i, DomainEntry)]
    assert len(names) >= 5
    assert len(names) == len(set(names)), "a name is listed twice"


def _names(path: Path) -> set[str]:
    return {i.domain for i in parse_list(path, "domains") if isinstance(i, DomainEntry)}


def test_engines_with_forced_safe_search_are_not_listed_as_unrestricted() -> None:
    unrestricted = _names(STARTER / "search_engines.txt")
    for host in safe_search_rewrites():
        assert not set(parent_domains(host)) & unrestricted, host
