"""decide(): precedence, exceptions, time of day, safe search, bypass, faults, reasons."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from esafety.errors import InvalidInput
from esafety.filtering.categories import Category
from esafety.filtering.decision import UNKNOWN_DEVICE, Asker, EngineHolder, FilterEngine, decide
from esafety.filtering.index import FilterList, ListInfo, compile_index
from esafety.filtering.lists import DomainEntry, UrlPrefixEntry
from esafety.filtering.policy import (
    Action,
    ApprovedException,
    Policy,
    SchoolEntry,
    SchoolRules,
    TimeRule,
    built_in_policies,
)

GAMBLING = ListInfo("gamb", "Gambling", Category.GAMBLING)
GAMES = ListInfo("games", "Online games list", Category.GAMES)
KIDS = ListInfo("kids", "Child search", Category.CHILD_SEARCH)
IWF = ListInfo("iwf", "IWF", Category.PORNOGRAPHY, illegal=True)
WHEN = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)  # a Monday, 10:00 GMT
KS2 = Asker("ks2", frozenset({"class-5b", "year5"}))
STAFF = Asker("staff")


def index():
    return compile_index(
        [
            FilterList(GAMBLING, [DomainEntry("casino.example", 1)]),
            FilterList(GAMES, [DomainEntry("games.example", 1)]),
            FilterList(KIDS, [DomainEntry("swiggle.org.uk", 1)]),
            FilterList(
                IWF, [DomainEntry("abuse.example", 1), UrlPrefixEntry("host.example/bad/", 2)]
            ),
        ]
    )


def engine(**rules) -> FilterEngine:
    return FilterEngine(index(), SchoolRules(**rules))


EXCEPTION = ApprovedException(
    12,
    "games.example",
    frozenset({"class-5b"}),
    datetime(2025, 3, 3, 9, tzinfo=UTC),
    datetime(2025, 3, 3, 11, tzinfo=UTC),
    "Coding lesson",
)


def test_category_block_with_reason_sentence() -> None:
    decision = decide(engine(), KS2, "WWW.Casino.Example.", WHEN)
    assert decision.action is Action.BLOCK
    assert decision.categories == (Category.GAMBLING,)
    assert (decision.rule, decision.list_id, decision.policy_id) == (
        "casino.example",
        "gamb",
        "ks2",
    )
    assert decision.reason == (
        "Blocked because casino.example is in the Gambling list, which the KS2 pupils "
        "policy blocks."
    )
    games = decide(engine(), KS2, "games.example", WHEN)
    assert "in the Online games list (Online games)" in games.reason


def test_label_boundary_through_decide() -> None:
    assert decide(engine(), KS2, "notcasino.example", WHEN).action is Action.ALLOW


def test_allowed_by_default_and_staff_policy() -> None:
    assert decide(engine(), KS2, "bbc.co.uk", WHEN).rule == "policy:ks2 default"
    assert decide(engine(), STAFF, "games.example", WHEN).action is Action.ALLOW


@pytest.mark.parametrize(
    "rules",
    [
        {"entries": (SchoolEntry(1, "abuse.example", Action.ALLOW),)},
        {"entries": (SchoolEntry(1, "example", Action.ALLOW),)},
        {
            "exceptions": (
                ApprovedException(
                    3,
                    "abuse.example",
                    frozenset({"class-5b"}),
                    datetime(2025, 1, 1, tzinfo=UTC),
                    datetime(2026, 1, 1, tzinfo=UTC),
                ),
            )
        },
        {
            "policies": {
                **built_in_policies(),
                "ks2": Policy("ks2", "Open", frozenset(), allowed=frozenset(Category)),
            }
        },
    ],
)
def test_illegal_beats_every_allow_and_exception(rules) -> None:
    for asker in (KS2, STAFF, UNKNOWN_DEVICE):
        decision = decide(engine(**rules), asker, "www.abuse.example", WHEN)
        assert decision.action is Action.BLOCK
        assert decision.list_id == "iwf"
        assert decision.reason.endswith("illegal content, which is always blocked.")


def test_illegal_url_entry_applies_to_urls_only() -> None:
    url = decide(engine(), STAFF, "https://host.example/bad/page", WHEN)
    assert url.action is Action.BLOCK and url.list_id == "iwf"
    assert decide(engine(), STAFF, "host.example", WHEN).action is Action.ALLOW


def test_school_allow_beats_category_block_and_block_beats_default() -> None:
    rules = {
        "entries": (
            SchoolEntry(1, "games.example", Action.ALLOW, "Times tables game"),
            SchoolEntry(2, "bbc.co.uk", Action.BLOCK),
        )
    }
    allowed = decide(engine(**rules), KS2, "play.games.example", WHEN)
    assert (allowed.action, allowed.rule) == (Action.ALLOW, "school entry #1")
    assert allowed.reason == "Allowed because the school allows games.example (Times tables game)."
    assert decide(engine(**rules), STAFF, "bbc.co.uk", WHEN).action is Action.BLOCK


def test_school_entries_most_specific_wins_and_can_name_policies() -> None:
    rules = {
        "entries": (
            SchoolEntry(1, "games.example", Action.ALLOW, policies=frozenset({"ks2"})),
            SchoolEntry(2, "bad.games.example", Action.BLOCK),
        )
    }
    assert decide(engine(**rules), KS2, "bad.games.example", WHEN).rule == "school entry #2"
    assert decide(engine(**rules), Asker("ks1"), "games.example", WHEN).list_id == "games"


def test_school_block_beats_an_exception() -> None:
    rules = {
        "entries": (SchoolEntry(1, "games.example", Action.BLOCK),),
        "exceptions": (EXCEPTION,),
    }
    assert decide(engine(**rules), KS2, "games.example", WHEN).rule == "school entry #1"


def test_school_url_prefix_entry() -> None:
    rules = {"entries": (SchoolEntry(1, "bbc.co.uk/iplayer", Action.BLOCK),)}
    assert decide(engine(**rules), KS2, "https://bbc.co.uk/iplayer/x", WHEN).blocked
    assert not decide(engine(**rules), KS2, "https://bbc.co.uk/news", WHEN).blocked


@pytest.mark.parametrize(
    ("asker", "when", "action"),
    [
        (KS2, WHEN, Action.ALLOW),
        (Asker("ks2", frozenset({"class-5a"})), WHEN, Action.BLOCK),
        (UNKNOWN_DEVICE, WHEN, Action.BLOCK),
        (KS2, datetime(2025, 3, 3, 8, 59, tzinfo=UTC), Action.BLOCK),
        (KS2, datetime(2025, 3, 3, 11, 0, tzinfo=UTC), Action.BLOCK),
    ],
)
def test_exception_only_for_named_groups_inside_its_time(asker, when, action) -> None:
    decision = decide(engine(exceptions=(EXCEPTION,)), asker, "www.games.example", when)
    assert decision.action is action
    assert decision.under_exception is (action is Action.ALLOW)
    if decision.under_exception:
        assert decision.rule == "exception #12"
        assert decision.reason == (
            "Allowed under exception #12 for games.example until 11:00 on 03 March 2025 "
            "(Coding lesson)."
        )


LUNCH_POLICY = Policy(
    "ks2",
    "KS2 pupils",
    frozenset({Category.GAMES}),
    times=(TimeRule(frozenset({Category.GAMES}), Action.ALLOW, time(12), time(13)),),
    pupils=True,
)


@pytest.mark.parametrize(
    ("utc", "action"),
    [
        # GMT (winter): local time is UTC.
        (datetime(2025, 3, 3, 12, 30, tzinfo=UTC), Action.ALLOW),
        (datetime(2025, 3, 3, 11, 30, tzinfo=UTC), Action.BLOCK),
        # BST (summer, from 30 March 2025): 11:30 UTC is 12:30 in school.
        (datetime(2025, 6, 2, 11, 30, tzinfo=UTC), Action.ALLOW),
        (datetime(2025, 6, 2, 12, 30, tzinfo=UTC), Action.BLOCK),
        # Either side of the change back to GMT on 26 October 2025 (Fri 24th, Mon 27th).
        (datetime(2025, 10, 24, 11, 15, tzinfo=UTC), Action.ALLOW),
        (datetime(2025, 10, 27, 11, 15, tzinfo=UTC), Action.BLOCK),
        (datetime(2025, 10, 27, 12, 15, tzinfo=UTC), Action.ALLOW),
        # Saturday lunchtime: the rule is for school days.
        (datetime(2025, 3, 8, 12, 30, tzinfo=UTC), Action.BLOCK),
    ],
)
def test_lunchtime_in_the_school_time_zone(utc, action) -> None:
    policies = {**built_in_policies(), "ks2": LUNCH_POLICY}
    decision = decide(engine(policies=policies), KS2, "games.example", utc)
    assert decision.action is action
    if action is Action.BLOCK and utc.weekday() < 5:
        assert "at this time of day" not in decision.reason


def test_unknown_device_gets_the_strictest_pupil_policy() -> None:
    assert decide(engine(), UNKNOWN_DEVICE, "games.example", WHEN).policy_id == "eyfs"
    assert decide(engine(), Asker("deleted-policy"), "games.example", WHEN).policy_id == "eyfs"
    walled = Policy(
        "walled",
        "Walled garden",
        frozenset(),
        allowed=frozenset({Category.CHILD_SEARCH}),
        default=Action.BLOCK,
        pupils=True,
    )
    strict = engine(policies={**built_in_policies(), "walled": walled})
    assert decide(strict, UNKNOWN_DEVICE, "bbc.co.uk", WHEN).action is Action.BLOCK
    allowed = decide(strict, UNKNOWN_DEVICE, "www.swiggle.org.uk", WHEN)
    assert (allowed.action, allowed.policy_id) == (Action.ALLOW, "walled")


@pytest.mark.parametrize(
    ("host", "policy", "action", "target"),
    [
        ("www.google.co.uk", "ks2", Action.REWRITE, "forcesafesearch.google.com"),
        ("google.fr", "ks2", Action.REWRITE, "forcesafesearch.google.com"),
        ("www.bing.com", "ks2", Action.REWRITE, "strict.bing.com"),
        ("duckduckgo.com", "ks2", Action.REWRITE, "safe.duckduckgo.com"),
        ("www.youtube.com", "ks2", Action.REWRITE, "restrict.youtube.com"),
        ("m.youtube.com", "staff", Action.REWRITE, "restrictmoderate.youtube.com"),
        ("classroom.google.com", "ks2", Action.ALLOW, None),
        ("forcesafesearch.google.com", "ks2", Action.ALLOW, None),
        # 003 §7.1: Swiggle up to Year 4, safe search from Year 5.
        ("www.google.co.uk", "ks1", Action.BLOCK, None),
        ("www.bing.com", "eyfs", Action.BLOCK, None),
        ("www.swiggle.org.uk", "ks1", Action.ALLOW, None),
        ("www.youtube.com", "ks1", Action.REWRITE, "restrict.youtube.com"),
    ],
)
def test_safe_search(host, policy, action, target) -> None:
    decision = decide(engine(), Asker(policy), host, WHEN)
    assert (decision.action, decision.rewrite_to) == (action, target)


def test_child_only_reason() -> None:
    decision = decide(engine(), Asker("ks1"), "www.google.co.uk", WHEN)
    assert decision.categories == (Category.SEARCH_ENGINES,)
    assert decision.reason == (
        "Blocked because Google is a general search engine and the KS1 pupils policy "
        "allows child-safe search engines only."
    )


def test_school_allow_keeps_safe_search() -> None:
    rules = {"entries": (SchoolEntry(1, "www.google.co.uk", Action.ALLOW),)}
    assert decide(engine(**rules), Asker("ks1"), "www.google.co.uk", WHEN).rewrite_to == (
        "forcesafesearch.google.com"
    )


@pytest.mark.parametrize(
    ("host", "nxdomain"),
    [
        ("use-application-dns.net", True),
        ("mask.icloud.com", True),
        ("mask-h2.icloud.com", True),
        ("dns.google", False),
        ("mozilla.cloudflare-dns.com", False),
    ],
)
def test_encrypted_dns_bypass_blocked_for_pupils_not_staff(host, nxdomain) -> None:
    pupil = decide(engine(), KS2, host, WHEN)
    assert pupil.action is Action.BLOCK and pupil.nxdomain is nxdomain
    assert pupil.categories == (Category.ENCRYPTED_DNS,)
    assert decide(engine(), STAFF, host, WHEN).action is Action.ALLOW


def test_canary_reason() -> None:
    assert decide(engine(), KS2, "use-application-dns.net", WHEN).reason == (
        "Blocked because use-application-dns.net is the Firefox encrypted-DNS canary, which "
        "the KS2 pupils policy blocks so that the school's filter cannot be got round."
    )


def test_corrupted_index_fails_closed() -> None:
    broken = engine()
    # Simulate a fault: the list-set table no longer matches the domain table.
    object.__setattr__(broken.index, "_listsets", ())
    for asker in (STAFF, KS2):
        decision = decide(broken, asker, "casino.example", WHEN)
        assert decision.action is Action.BLOCK
        assert decision.rule == "fault: illegal-content lists unavailable"
        assert decision.reason.startswith(
            "Blocked because the filter could not check the illegal-content lists"
        )
    assert decide(broken, STAFF, "https://casino.example/x", WHEN).blocked


def test_illegal_list_that_failed_to_compile_blocks_everything() -> None:
    def broken():
        raise OSError("truncated download")
        yield

    faulty = FilterEngine(compile_index([FilterList(IWF, broken())]), SchoolRules())
    decision = decide(faulty, STAFF, "bbc.co.uk", WHEN)
    assert decision.blocked and "truncated download" in decision.reason


def test_access_gate_runs_after_illegal_and_before_school_entries() -> None:
    def gate(asker, host, policy):
        if asker.policy_id == "ks2":
            return decide(engine(), STAFF, "casino.example", WHEN)  # any block will do
        return None

    gated = FilterEngine(
        index(), SchoolRules(entries=(SchoolEntry(1, "bbc.co.uk", Action.ALLOW),)), gate=gate
    )
    assert decide(gated, KS2, "bbc.co.uk", WHEN).blocked
    assert decide(gated, STAFF, "bbc.co.uk", WHEN).rule == "school entry #1"
    assert decide(gated, KS2, "abuse.example", WHEN).list_id == "iwf"


def test_invalid_name_is_refused_with_reason() -> None:
    with pytest.raises(InvalidInput, match="empty label"):
        decide(engine(), KS2, "a..example", WHEN)


def test_holder_swaps_whole_engine() -> None:
    holder = EngineHolder(engine())
    assert decide(holder.engine, KS2, "bbc.co.uk", WHEN).action is Action.ALLOW
    holder.engine = engine(entries=(SchoolEntry(1, "bbc.co.uk", Action.BLOCK),))
    assert decide(holder.engine, KS2, "bbc.co.uk", WHEN).blocked


def test_decision_as_dict_and_alerts() -> None:
    decision = decide(engine(), KS2, "abuse.example", WHEN)
    assert decision.as_dict()["action"] == "block"
    assert decision.as_dict()["categories"] == ["pornography"]
    assert decision.alerts_dsl
    assert not decide(engine(), KS2, "casino.example", WHEN).alerts_dsl


def test_reused_decisions_for_listed_names_match_fresh_ones() -> None:
    # The engine works a listed-only decision out once per (policy, list sets, minute) and
    # gives later names a copy with their own name: each must equal a fresh engine's.
    names = ["casino.example", "bet.casino.example", "poker.example", "xn--bcher-kva.example"]
    built = compile_index(
        [
            FilterList(GAMBLING, [DomainEntry(n, i) for i, n in enumerate(names, 1)]),
            FilterList(IWF, [DomainEntry("abuse.example", 1)]),
        ]
    )
    shared = FilterEngine(built, SchoolRules())
    for asker in (KS2, STAFF, UNKNOWN_DEVICE):
        for host in [*names, "www.poker.example", "a.xn--bcher-kva.example", "abuse.example"]:
            fresh = FilterEngine(built, SchoolRules())
            assert decide(shared, asker, host, WHEN) == decide(fresh, asker, host, WHEN), host
    reused = decide(shared, KS2, "a.xn--bcher-kva.example", WHEN)
    assert reused.rule == "xn--bcher-kva.example"
    assert reused.reason.startswith("Blocked because bücher.example is in the Gambling list")
