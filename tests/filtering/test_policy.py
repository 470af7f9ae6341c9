"""Policy data and its pure rules: built-ins, time rules, strictest pupil policy."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from esafety.errors import InvalidInput
from esafety.filtering.categories import Category, catalogue
from esafety.filtering.policy import (
    Action,
    ApprovedException,
    Policy,
    SafeSearch,
    SchoolEntry,
    TimeRule,
    built_in_policies,
    strictest_pupil_policy,
)

LUNCH = TimeRule(frozenset({Category.GAMES}), Action.ALLOW, time(12), time(13))


def test_built_in_ids_and_pupil_defaults() -> None:
    policies = built_in_policies()
    assert list(policies) == ["eyfs", "ks1", "ks2", "staff", "guests"]
    pupil_blocked = {c for c, i in catalogue().items() if i.blocked_for_pupils}
    for pid in ("eyfs", "ks1", "ks2"):
        assert policies[pid].blocked == pupil_blocked and policies[pid].pupils
    # 003 §7.1: child-safe search engines only for the youngest, safe search from KS2.
    assert policies["ks1"].safe_search is SafeSearch.CHILD_ONLY
    assert policies["ks2"].safe_search is SafeSearch.ON
    assert Category.PORNOGRAPHY in policies["staff"].blocked
    assert Category.SOCIAL_MEDIA not in policies["staff"].blocked


def test_lunchtime_rule() -> None:
    policy = Policy("y6", "Year 6", frozenset({Category.GAMES}), times=(LUNCH,))
    monday = 0
    assert Category.GAMES in policy.blocked_at(monday, 11 * 60 + 59)
    assert Category.GAMES not in policy.blocked_at(monday, 12 * 60)
    assert Category.GAMES not in policy.blocked_at(monday, 12 * 60 + 59)
    assert Category.GAMES in policy.blocked_at(monday, 13 * 60)
    assert Category.GAMES in policy.blocked_at(5, 12 * 60 + 30)  # Saturday: not a school day


def test_time_rule_can_block_after_school() -> None:
    rule = TimeRule(frozenset({Category.STREAMING}), Action.BLOCK, time(15, 30), time(18))
    policy = Policy("club", "After-school club", frozenset(), times=(rule,))
    assert Category.STREAMING in policy.blocked_at(2, 16 * 60)
    assert Category.STREAMING not in policy.blocked_at(2, 9 * 60)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TimeRule(frozenset(), Action.ALLOW, time(13), time(12)), "before the end"),
        (lambda: TimeRule(frozenset(), Action.REWRITE, time(12), time(13)), "rewrite"),
        (lambda: TimeRule(frozenset(), Action.ALLOW, time(1), time(2), frozenset({7})), "0"),
        (lambda: Policy("bad id!", "x", frozenset()), "policy id"),
        (lambda: Policy("p", "x", frozenset(), default=Action.REWRITE), "allow or block"),
        (lambda: SchoolEntry(1, "x.example", Action.REWRITE), "allow or block"),
        (
            lambda: ApprovedException(
                1, "x.example", frozenset({"5b"}), datetime(2025, 1, 1), datetime(2025, 1, 2)
            ),
            "time zone",
        ),
        (
            lambda: ApprovedException(
                1,
                "x.example",
                frozenset(),
                datetime(2025, 1, 1, tzinfo=UTC),
                datetime(2025, 1, 2, tzinfo=UTC),
            ),
            "group",
        ),
    ],
)
def test_bad_policy_data_is_refused(make, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        make()


def test_strictest_pupil_policy() -> None:
    policies = dict(built_in_policies())
    assert strictest_pupil_policy(policies).id == "eyfs"
    policies["walled"] = Policy(
        "walled", "Walled garden", frozenset(), default=Action.BLOCK, pupils=True
    )
    assert strictest_pupil_policy(policies).id == "walled"
    with pytest.raises(InvalidInput, match="pupil policy"):
        strictest_pupil_policy({"staff": built_in_policies()["staff"]})


def test_exception_active_only_for_its_groups_and_times() -> None:
    exception = ApprovedException(
        12,
        "youtube.com",
        frozenset({"class-5b"}),
        datetime(2025, 3, 3, 10, tzinfo=UTC),
        datetime(2025, 3, 3, 11, tzinfo=UTC),
    )
    inside = datetime(2025, 3, 3, 10, 30, tzinfo=UTC).timestamp()
    assert exception.active(inside, frozenset({"class-5b", "year5"}))
    assert not exception.active(inside, frozenset({"class-5a"}))
    assert not exception.active(exception.ends.timestamp(), frozenset({"class-5b"}))
    assert not exception.active(exception.starts.timestamp() - 1, frozenset({"class-5b"}))
