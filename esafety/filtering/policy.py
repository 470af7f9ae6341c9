"""Filtering policies as plain data, and the pure rules that read them (issue 4 §4).

A :class:`Policy` says what a group of people may reach: which categories are blocked,
safe search, YouTube's restricted mode, whether filter-bypass names are blocked, times of
day that change the categories (lunchtime games), and the default. The school's own
block/allow entries and approved exceptions sit beside the policies in
:class:`SchoolRules`. Nothing here reads a database or the clock: times come in.

Built-in policies follow 003 §7.1 ("Swiggle up to Year 4, safe search from Year 5"): EYFS
and KS1 may use child-safe search engines only; KS2 gets safe search (a school assigns
``ks1``'s setting to Years 3-4 by a year-group assignment, or a custom policy).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from enum import StrEnum
from types import MappingProxyType
from zoneinfo import ZoneInfo

from esafety.errors import InvalidInput
from esafety.filtering.categories import Category, catalogue

__all__ = [
    "BUILT_IN_POLICIES",
    "UNKNOWN_DEVICE_POLICY_ORDER",
    "Action",
    "ApprovedException",
    "Policy",
    "SafeSearch",
    "SchoolEntry",
    "SchoolRules",
    "TimeRule",
    "YouTubeMode",
    "built_in_policies",
    "strictest_pupil_policy",
]


class Action(StrEnum):
    ALLOW = "allow"
    BLOCK = "block"
    REWRITE = "rewrite"


class SafeSearch(StrEnum):
    """Google, Bing and DuckDuckGo: ``child_only`` blocks them and leaves child_search."""

    OFF = "off"
    ON = "on"
    CHILD_ONLY = "child_only"


class YouTubeMode(StrEnum):
    """YouTube restricted mode, separate from search: schools choose it on its own."""

    OFF = "off"
    MODERATE = "moderate"
    STRICT = "strict"


_WEEKDAYS = frozenset(range(5))


@dataclass(frozen=True, slots=True)
class TimeRule:
    """Allow or block ``categories`` from ``start`` to ``end`` (school-local time, end
    excluded) on ``days`` (0 = Monday), e.g. games allowed 12:00-13:00 on school days."""

    categories: frozenset[Category]
    action: Action
    start: time
    end: time
    days: frozenset[int] = _WEEKDAYS
    note: str = ""

    def __post_init__(self) -> None:
        if self.action is Action.REWRITE:
            raise InvalidInput("a time rule allows or blocks categories; 'rewrite' is not one")
        if not self.start < self.end:
            raise InvalidInput(
                f"time rule {self.start:%H:%M}-{self.end:%H:%M}: the start must be before "
                "the end (write an overnight period as two rules)"
            )
        if not self.days <= frozenset(range(7)):
            raise InvalidInput(f"time rule days {sorted(self.days)}: use 0 (Monday) to 6")

    def applies(self, weekday: int, minute: int) -> bool:
        start = self.start.hour * 60 + self.start.minute
        end = self.end.hour * 60 + self.end.minute
        return weekday in self.days and start <= minute < end


@dataclass(frozen=True, slots=True)
class Policy:
    id: str
    name: str
    blocked: frozenset[Category]
    #: Categories reached even when ``default`` is block (a walled garden's child_search).
    allowed: frozenset[Category] = frozenset()
    safe_search: SafeSearch = SafeSearch.ON
    youtube: YouTubeMode = YouTubeMode.STRICT
    #: Block the encrypted-DNS canary, Private Relay and DoH resolvers (pupils, guests).
    block_bypass: bool = True
    times: tuple[TimeRule, ...] = ()
    default: Action = Action.ALLOW
    #: A pupil policy: a candidate for unknown devices (the strictest is used).
    pupils: bool = False

    def __post_init__(self) -> None:
        if not self.id or not self.id.replace("_", "").replace("-", "").isalnum():
            raise InvalidInput(
                f"policy id {self.id!r}: use letters, digits, '-' and '_' (such as 'year3')"
            )
        if self.default is Action.REWRITE:
            raise InvalidInput(f"policy '{self.id}': the default is allow or block")

    def blocked_at(self, weekday: int, minute: int) -> frozenset[Category]:
        """The blocked categories at a school-local weekday and minute of the day."""
        blocked = self.blocked
        for rule in self.times:
            if rule.applies(weekday, minute):
                if rule.action is Action.ALLOW:
                    blocked = blocked - rule.categories
                else:
                    blocked = blocked | rule.categories
        return blocked

    def strictness(self) -> tuple[int, int, int, int, int]:
        return (
            self.default is Action.BLOCK,
            len(self.blocked),
            list(SafeSearch).index(self.safe_search),
            list(YouTubeMode).index(self.youtube),
            self.block_bypass,
        )


@dataclass(frozen=True, slots=True)
class SchoolEntry:
    """The school's own block or allow for a host (and its subdomains) or a URL prefix.

    ``target`` is a normalised host or a ``urls.url_key`` prefix (it contains ``/``).
    ``policies`` limits the entry to some policies; empty means every policy.
    """

    id: int
    target: str
    action: Action
    note: str = ""
    policies: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.action is Action.REWRITE:
            raise InvalidInput(f"school entry #{self.id}: the action is allow or block")

    @property
    def is_url(self) -> bool:
        return "/" in self.target

    @property
    def host(self) -> str:
        return self.target.split("/", 1)[0]


@dataclass(frozen=True, slots=True)
class ApprovedException:
    """An approved unblock request (001 "auditable, with clear reasons"): ``target`` is
    reachable by members of ``groups`` from ``starts`` until ``ends`` (aware datetimes)."""

    id: int
    target: str
    groups: frozenset[str]
    starts: datetime
    ends: datetime
    reason: str = ""

    def __post_init__(self) -> None:
        if self.starts.tzinfo is None or self.ends.tzinfo is None:
            raise InvalidInput(f"exception #{self.id}: give its times with a time zone")
        if not self.starts < self.ends:
            raise InvalidInput(f"exception #{self.id}: it must start before it ends")
        if not self.groups:
            raise InvalidInput(f"exception #{self.id}: name at least one group")

    @property
    def is_url(self) -> bool:
        return "/" in self.target

    @property
    def host(self) -> str:
        return self.target.split("/", 1)[0]

    def active(self, now: float, groups: frozenset[str]) -> bool:
        """Active for someone in ``groups`` at ``now`` (seconds since the epoch)."""
        return (
            self.starts.timestamp() <= now < self.ends.timestamp()
            and not self.groups.isdisjoint(groups)
        )


def _pupil_blocked() -> frozenset[Category]:
    return frozenset(c for c, info in catalogue().items() if info.blocked_for_pupils)


# Staff are adults at work: KCSIE still expects harmful and illegal content filtered for
# them, but social media, chat, games, streaming, search and AI are their own business.
_STAFF_ALLOWED = frozenset(
    {
        Category.SOCIAL_MEDIA,
        Category.CHAT,
        Category.GAMES,
        Category.STREAMING,
        Category.SEARCH_ENGINES,
        Category.GENERATIVE_AI,
        Category.DATING,
        Category.ENCRYPTED_DNS,
    }
)


def built_in_policies() -> Mapping[str, Policy]:
    """``eyfs``, ``ks1``, ``ks2``, ``staff``, ``guests`` as a fresh install has them."""
    pupils = _pupil_blocked()
    staff = pupils - _STAFF_ALLOWED
    policies = (
        Policy("eyfs", "EYFS pupils", pupils, safe_search=SafeSearch.CHILD_ONLY, pupils=True),
        Policy("ks1", "KS1 pupils", pupils, safe_search=SafeSearch.CHILD_ONLY, pupils=True),
        Policy("ks2", "KS2 pupils", pupils, safe_search=SafeSearch.ON, pupils=True),
        Policy("staff", "Staff", staff, youtube=YouTubeMode.MODERATE, block_bypass=False),
        Policy(
            "guests",
            "Guests",
            staff | {Category.ENCRYPTED_DNS, Category.DATING},
            youtube=YouTubeMode.MODERATE,
        ),
    )
    return MappingProxyType({policy.id: policy for policy in policies})


BUILT_IN_POLICIES = ("eyfs", "ks1", "ks2", "staff", "guests")
#: Ties in strictness go to the youngest.
UNKNOWN_DEVICE_POLICY_ORDER = ("eyfs", "ks1", "ks2")


def strictest_pupil_policy(policies: Mapping[str, Policy]) -> Policy:
    """The policy for unknown devices: the strictest pupil policy (issue 4 §4)."""
    pupils = [policy for policy in policies.values() if policy.pupils]
    if not pupils:
        raise InvalidInput(
            "no pupil policy is defined, so unknown devices have no policy: "
            "mark at least one policy as for pupils"
        )

    def rank(policy: Policy) -> tuple[tuple[int, ...], int]:
        order = (
            UNKNOWN_DEVICE_POLICY_ORDER.index(policy.id)
            if policy.id in UNKNOWN_DEVICE_POLICY_ORDER
            else len(UNKNOWN_DEVICE_POLICY_ORDER)
        )
        return tuple(-value for value in policy.strictness()), order

    return min(pupils, key=rank)


@dataclass(frozen=True, slots=True)
class SchoolRules:
    """Everything the school decides, as data: policies, its entries and exceptions."""

    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/London"))
    policies: Mapping[str, Policy] = field(default_factory=built_in_policies)
    entries: tuple[SchoolEntry, ...] = ()
    exceptions: tuple[ApprovedException, ...] = ()
