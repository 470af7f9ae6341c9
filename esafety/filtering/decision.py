"""Decisions: ``decide(who, host or URL, when)`` → one :class:`Decision` (issue 4 §5).

A decision is one frozen value that travels unchanged from the engine to the DNS answer,
the log and the page a teacher reads (ARCHITECTURE "Decisions carry their reason").

Precedence, in this order (issue 4 §4):

1. illegal-content lists: nothing lifts them, and if they cannot be checked (a fault in
   the index) the answer is block: the filter fails closed;
2. the access gate (a hook; a later issue sends people without a current AUP signature to
   the AUP page);
3. the school's own block and allow entries (host or URL prefix; the most specific wins,
   block beats allow at the same name);
4. active approved exceptions, for their named groups and only within their times;
5. the policy: filter-bypass names, "child-safe search engine only", then categories
   (with time-of-day rules in the school's time zone);
6. the policy's default.

An allowed search-engine or YouTube host is then rewritten to its safe host if the policy
says so. :class:`FilterEngine` is compiled once from a :class:`CompiledIndex` and
:class:`SchoolRules`, never changed, and swapped by reference in an :class:`EngineHolder`;
deciding does no I/O and awaits nothing.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import math
import time as clock
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from esafety.filtering.categories import Category, catalogue, info
from esafety.filtering.domainset import DomainSet, hash_name, match_both
from esafety.filtering.hostnames import display_host, normalise_host
from esafety.filtering.index import (
    CompiledIndex,
    ListInfo,
    Match,
    MatchKind,
    domain_matches,
)
from esafety.filtering.policy import (
    Action,
    ApprovedException,
    Policy,
    SafeSearch,
    SchoolEntry,
    SchoolRules,
    YouTubeMode,
    strictest_pupil_policy,
)
from esafety.filtering.safesearch import (
    BypassName,
    SearchRewrite,
    bypass_names,
    safe_search_rewrites,
)
from esafety.filtering.urls import ParsedUrl, parse_url, url_key

__all__ = [
    "UNKNOWN_DEVICE",
    "AccessGate",
    "Asker",
    "Decision",
    "EngineHolder",
    "FilterEngine",
    "decide",
]


@dataclass(frozen=True, slots=True)
class Asker:
    """Who is asking, already resolved: the policy of their most specific group (None for
    an unknown device) and every group they belong to (for exceptions)."""

    policy_id: str | None
    groups: frozenset[str] = frozenset()


UNKNOWN_DEVICE = Asker(None)


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    categories: tuple[Category, ...]
    #: What decided: a listed name or URL, ``school entry #3``, ``exception #12``,
    #: ``policy:ks1 default``, ...
    rule: str
    list_id: str | None
    policy_id: str
    #: One sentence a teacher can read.
    reason: str
    #: For ``rewrite``: the safe host to answer with (a CNAME).
    rewrite_to: str | None = None
    under_exception: bool = False
    #: Answer "no such name", not the block page: the signal bypass services look for.
    nxdomain: bool = False

    @property
    def blocked(self) -> bool:
        return self.action is Action.BLOCK

    @property
    def alerts_dsl(self) -> bool:
        """A block in a category that raises an alert to the DSL."""
        return self.blocked and any(info(c).alerts_dsl for c in self.categories)

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "categories": [c.value for c in self.categories],
            "rule": self.rule,
            "list": self.list_id,
            "policy": self.policy_id,
            "reason": self.reason,
            "rewrite_to": self.rewrite_to,
            "under_exception": self.under_exception,
            "nxdomain": self.nxdomain,
        }


_new = object.__new__
(
    _set_action,
    _set_categories,
    _set_rule,
    _set_list_id,
    _set_policy_id,
    _set_reason,
    _set_rewrite_to,
    _set_under_exception,
    _set_nxdomain,
) = (getattr(Decision, f.name).__set__ for f in dataclasses.fields(Decision))


def _copy_naming(decided: Decision, rule: str, reason: str) -> Decision:
    """``decided`` with another ``rule`` and ``reason``. A frozen dataclass's __init__
    costs about 2 µs here (one object.__setattr__ a field); setting the slots directly
    a quarter of that. The fields are unpacked in declaration order above."""
    copy = _new(Decision)
    _set_action(copy, decided.action)
    _set_categories(copy, decided.categories)
    _set_rule(copy, rule)
    _set_list_id(copy, decided.list_id)
    _set_policy_id(copy, decided.policy_id)
    _set_reason(copy, reason)
    _set_rewrite_to(copy, decided.rewrite_to)
    _set_under_exception(copy, decided.under_exception)
    _set_nxdomain(copy, decided.nxdomain)
    return copy


#: The access gate: a decision to send the person elsewhere, or None to go on.
AccessGate = Callable[[Asker, str, Policy], Decision | None]


@dataclass(frozen=True, slots=True)
class _Overlay:
    """What the school and the catalogues say about one name (most are empty)."""

    entries: tuple[SchoolEntry, ...] = ()
    exceptions: tuple[ApprovedException, ...] = ()
    rewrite: SearchRewrite | None = None
    bypass: BypassName | None = None


#: Cached decisions for hosts only lists name (see FilterEngine._listed_only).
_MAX_PLANS = 4096
_CATEGORY_ORDER = tuple(Category)  # iterating the enum itself is slow (enum.__iter__)


def _categories(matches: tuple[Match, ...] | list[Match]) -> tuple[Category, ...]:
    found = {c for match in matches for c in match.categories}
    return tuple(c for c in _CATEGORY_ORDER if c in found)


@functools.lru_cache(maxsize=1024)
def _list_words(listed: ListInfo) -> str:
    category = info(listed.category).name
    name = listed.name if listed.name.casefold().endswith(" list") else f"{listed.name} list"
    if listed.name.casefold() == category.casefold():
        return f"the {name}"
    return f"the {name} ({category})"


class FilterEngine:
    """An index and the school's rules compiled together; immutable once built."""

    def __init__(
        self,
        index: CompiledIndex,
        rules: SchoolRules,
        gate: AccessGate | None = None,
    ) -> None:
        self.index = index
        self.rules = rules
        self.gate = gate
        self._policies: dict[str | None, Policy] = {}
        self._policies.update(rules.policies.items())
        self.unknown_policy = strictest_pupil_policy(rules.policies)
        self._overlay = self._build_overlay(rules)
        # The overlay's names in a domain set too, so that one C call per table finds
        # every parent of a host that the index or the overlay names (the hot path).
        self._near_names = tuple(self._overlay.items())
        self._near_set = DomainSet.build(
            {hash_name(name): n for n, (name, _node) in enumerate(self._near_names)}
        )
        self._index_set = index.domain_set
        self._url_entries: dict[str, tuple[SchoolEntry | ApprovedException, ...]] = {}
        items: tuple[SchoolEntry | ApprovedException, ...] = (*rules.entries, *rules.exceptions)
        for item in items:
            if item.is_url:
                self._url_entries[item.host] = (*self._url_entries.get(item.host, ()), item)
        self._plain = {pid: self._default(policy, ()) for pid, policy in self._policies.items()}
        # Nothing matched and nothing can intervene: the answer is the policy's default,
        # made once. Keyed by what the asker carries, so the fast path is one dict get.
        self._plain_ok = gate is None and not index.has_regexes
        self._plans: dict[object, tuple[int, Decision, str, str]] = {}
        self._plain_for: dict[str | None, Decision] = dict(self._plain)
        self._plain_for[None] = self._plain.get(self.unknown_policy.id) or self._default(
            self.unknown_policy, ()
        )
        self._clock: tuple[int, int, int] = (-1, 0, 0)
        # When decisions can change with the clock alone (see steady_until).
        self._timed = any(policy.times for policy in self._policies.values())
        self._edges = sorted(
            {moment.timestamp() for e in rules.exceptions for moment in (e.starts, e.ends)}
        )
        catalogue()  # read the categories now, not during the first decision

    def steady_until(self, now: float) -> float:
        """The first moment after ``now`` at which :meth:`decide_host` may decide
        differently for the same asker and host with nothing else changed: the next
        minute when a policy has times of day, the next start or end of an exception,
        the next second when an access gate is set (it may look at anything); infinity
        when no rule depends on the time. The DNS filter keeps ready answers until then.
        """
        until = math.inf
        if self.gate is not None:
            until = math.floor(now) + 1.0
        if self._timed:
            until = min(until, (math.floor(now / 60) + 1) * 60.0)
        edges = self._edges
        if edges:
            at = bisect.bisect_right(edges, now)
            if at < len(edges):
                until = min(until, edges[at])
        return until

    @staticmethod
    def _build_overlay(rules: SchoolRules) -> dict[str, _Overlay]:
        overlay: dict[str, _Overlay] = {}

        def add(host: str, **changes: Any) -> None:
            current = overlay.get(host, _Overlay())
            for name, value in changes.items():
                if isinstance(value, tuple):
                    changes[name] = getattr(current, name) + value
            overlay[host] = _Overlay(**{**_fields(current), **changes})

        for entry in rules.entries:
            if not entry.is_url:
                add(entry.target, entries=(entry,))
        for exception in rules.exceptions:
            if not exception.is_url:
                add(exception.target, exceptions=(exception,))
        for host, rewrite in safe_search_rewrites().items():
            add(host, rewrite=rewrite)
        for host, bypass in bypass_names().items():
            add(host, bypass=bypass)
        return overlay

    # -- the hot path -------------------------------------------------------------------

    def decide_host(self, asker: Asker, host: str, now: float) -> Decision:
        """Decide for a normalised host at ``now`` (seconds since the epoch)."""
        index = self.index
        if index.illegal_fault is None:
            try:
                both = match_both(self._index_set, self._near_set, host)
            except Exception as error:  # a corrupt index must fail closed, never open
                return self._fault(self._policy(asker), f"{type(error).__name__}: {error}")
            if both is None:
                if self._plain_ok:  # the common case: nothing names the host or a parent
                    plain = self._plain_for.get(asker.policy_id)
                    if plain is not None:
                        return plain
                return self._decide_found(asker, host, now, (), ())
            return self._decide_found(asker, host, now, *both)
        return self._fault(self._policy(asker), index.illegal_fault)

    def _policy(self, asker: Asker) -> Policy:
        return self._policies.get(asker.policy_id) or self.unknown_policy

    def _decide_found(
        self,
        asker: Asker,
        host: str,
        now: float,
        found: tuple[tuple[int, int], ...],
        near_found: tuple[tuple[int, int], ...],
    ) -> Decision:
        """decide_host once the tables have been walked: ``found`` and ``near_found`` are
        ``(offset in host, value)`` for each parent the index or the overlay names."""
        policy = self._policy(asker)
        index = self.index
        if found and not near_found and self._plain_ok:
            try:
                return self._listed_only(asker, policy, host, now, found)
            except Exception as error:  # a corrupt index must fail closed, never open
                return self._fault(policy, f"{type(error).__name__}: {error}")
        try:
            if found:
                hits = [(host[offset:], listset_id) for offset, listset_id in found]
                matches = domain_matches(index, hits)
            else:
                matches = []
            if index.has_regexes:
                matches.extend(index.regex_matches(host))
        except Exception as error:  # a corrupt index must fail closed, never open
            return self._fault(policy, f"{type(error).__name__}: {error}")
        near: list[tuple[str, _Overlay]] = []
        for offset, number in near_found:
            name, node = self._near_names[number]
            if host[offset:] == name:  # a 64-bit hash collision must not pull in a rule
                near.append((name, node))
        if not matches and not near and self.gate is None:
            return self._plain[policy.id]
        return self._evaluate(asker, policy, host, tuple(matches), near, now, None)

    def _listed_only(
        self,
        asker: Asker,
        policy: Policy,
        host: str,
        now: float,
        found: tuple[tuple[int, int], ...],
    ) -> Decision:
        """A host that only lists name (no school entry, exception, rewrite or bypass).

        Its decision depends on the policy, the list sets hit (in order) and the time of
        day, and on the names only through ``rule`` and the name shown in the reason. So
        the decision is worked out once per (policy, list sets, minute) and later hosts
        get a copy with their own name: the blocked path costs about what the allowed one
        does (issue 4: ≥ 1,000,000 decisions/s with 10 % of hosts listed).
        """
        sets = found[0][1] if len(found) == 1 else tuple([v for _, v in found])
        key = (policy.id, sets, self._local(now) if policy.times else None)
        plan = self._plans.get(key)
        names = [host[offset:] for offset, _ in found]
        if plan is None:
            hits = [(name, value) for name, (_, value) in zip(names, found, strict=True)]
            matches = tuple(domain_matches(self.index, hits))
            decided = self._evaluate(asker, policy, host, matches, [], now, None)
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
            which = names.index(decided.rule) if decided.rule in names else -1
            if which >= 0:
                head, shown, tail = decided.reason.partition(f" {_display(names[which])} is ")
                if not shown:  # not the usual sentence: never reuse it for another name
                    return decided
                plan = (which, decided, head + " ", " is " + tail)
            else:
                plan = (-1, decided, "", "")
            self._plans[key] = plan
            return decided
        which, decided, head, tail = plan
        if which < 0:
            return decided
        name = names[which]
        return _copy_naming(decided, name, head + _display(name) + tail)

    def decide_url(self, asker: Asker, url: ParsedUrl, now: float) -> Decision:
        """Decide for a web address: its host and the URL-level entries of every list."""
        policy = self._policy(asker)
        if self.index.illegal_fault is not None:
            return self._fault(policy, self.index.illegal_fault)
        try:
            matches = self.index.match_url(url)
        except Exception as error:  # as in decide_host: fail closed
            return self._fault(policy, f"{type(error).__name__}: {error}")
        host = url.host.name
        near = [(name, node) for name in _parents(host) if (node := self._overlay.get(name))]
        return self._evaluate(asker, policy, host, matches, near, now, url_key(url))

    # -- the rules, in order ------------------------------------------------------------

    def _evaluate(
        self,
        asker: Asker,
        policy: Policy,
        host: str,
        matches: tuple[Match, ...],
        near: list[tuple[str, _Overlay]],
        now: float,
        key: str | None,
    ) -> Decision:
        categories = _categories(matches)
        for match in matches:
            if match.illegal:
                return self._illegal(policy, match)
        if self.gate is not None:
            gated = self.gate(asker, host, policy)
            if gated is not None:
                return gated
        decision = (
            self._school_entry(policy, categories, near, key)
            or self._exception(asker, policy, categories, near, key, now)
            or self._policy_rules(policy, host, categories, matches, near, now)
        )
        if decision.action is Action.ALLOW and near and near[0][0] == host:
            return self._safe_search(policy, near[0][1].rewrite, decision)
        return decision

    def _school_entry(
        self,
        policy: Policy,
        categories: tuple[Category, ...],
        near: list[tuple[str, _Overlay]],
        key: str | None,
    ) -> Decision | None:
        if key is not None:
            prefixed = [
                item
                for item in self._url_entries.get(key.split("/", 1)[0], ())
                if isinstance(item, SchoolEntry)
                and key.startswith(item.target)
                and (not item.policies or policy.id in item.policies)
            ]
            if prefixed:  # a URL entry is more specific than any host entry
                return self._entry_decision(policy, categories, prefixed)
        for _name, node in near:
            applicable = [e for e in node.entries if not e.policies or policy.id in e.policies]
            if applicable:
                return self._entry_decision(policy, categories, applicable)
        return None

    @staticmethod
    def _entry_decision(
        policy: Policy, categories: tuple[Category, ...], entries: list[SchoolEntry]
    ) -> Decision:
        entry = next((e for e in entries if e.action is Action.BLOCK), entries[0])
        verb = "blocks" if entry.action is Action.BLOCK else "allows"
        note = f" ({entry.note})" if entry.note else ""
        return Decision(
            action=entry.action,
            categories=categories,
            rule=f"school entry #{entry.id}",
            list_id=None,
            policy_id=policy.id,
            reason=f"{entry.action.value.capitalize()}ed because the school {verb} "
            f"{entry.target}{note}.",
        )

    def _exception(
        self,
        asker: Asker,
        policy: Policy,
        categories: tuple[Category, ...],
        near: list[tuple[str, _Overlay]],
        key: str | None,
        now: float,
    ) -> Decision | None:
        candidates: list[ApprovedException] = []
        if key is not None:
            candidates.extend(
                item
                for item in self._url_entries.get(key.split("/", 1)[0], ())
                if isinstance(item, ApprovedException) and key.startswith(item.target)
            )
        for _name, node in near:
            candidates.extend(node.exceptions)
        for exception in candidates:
            if exception.active(now, asker.groups):
                ends = exception.ends.astimezone(self.rules.timezone)
                return Decision(
                    action=Action.ALLOW,
                    categories=categories,
                    rule=f"exception #{exception.id}",
                    list_id=None,
                    policy_id=policy.id,
                    reason=f"Allowed under exception #{exception.id} for {exception.target} "
                    f"until {ends:%H:%M on %d %B %Y}"
                    + (f" ({exception.reason})." if exception.reason else "."),
                    under_exception=True,
                )
        return None

    def _policy_rules(
        self,
        policy: Policy,
        host: str,
        categories: tuple[Category, ...],
        matches: tuple[Match, ...],
        near: list[tuple[str, _Overlay]],
        now: float,
    ) -> Decision:
        if policy.block_bypass:
            for _name, node in near:
                if node.bypass is not None:
                    return Decision(
                        action=Action.BLOCK,
                        categories=(Category.ENCRYPTED_DNS,),
                        rule=f"bypass {node.bypass.host}",
                        list_id=None,
                        policy_id=policy.id,
                        reason=f"Blocked because {node.bypass.host} is {node.bypass.what}, "
                        f"which the {policy.name} policy blocks so that the school's "
                        "filter cannot be got round.",
                        nxdomain=node.bypass.nxdomain,
                    )
        rewrite = near[0][1].rewrite if near and near[0][0] == host else None
        if (
            rewrite is not None
            and rewrite.search_engine
            and policy.safe_search is SafeSearch.CHILD_ONLY
        ):
            return Decision(
                action=Action.BLOCK,
                categories=(Category.SEARCH_ENGINES,),
                rule=f"policy:{policy.id} child-safe search only",
                list_id=None,
                policy_id=policy.id,
                reason=f"Blocked because {rewrite.engine_name} is a general search engine "
                f"and the {policy.name} policy allows child-safe search engines only.",
            )
        if matches:
            blocked = policy.blocked
            timed = ""
            if policy.times:
                weekday, minute = self._local(now)
                blocked = policy.blocked_at(weekday, minute)
                if blocked != policy.blocked:
                    timed = " at this time of day"
            if policy.block_bypass:
                blocked = blocked | {Category.ENCRYPTED_DNS}
            for match in matches:
                for listed in match.lists:
                    if listed.category in blocked:
                        return Decision(
                            action=Action.BLOCK,
                            categories=categories,
                            rule=match.listed,
                            list_id=listed.id,
                            policy_id=policy.id,
                            reason=f"Blocked because {_shown(match)} is in "
                            f"{_list_words(listed)}, which the {policy.name} policy "
                            f"blocks{timed}.",
                        )
            for match in matches:
                for listed in match.lists:
                    if listed.category in policy.allowed:
                        return Decision(
                            action=Action.ALLOW,
                            categories=categories,
                            rule=match.listed,
                            list_id=listed.id,
                            policy_id=policy.id,
                            reason=f"Allowed because {_shown(match)} is in "
                            f"{_list_words(listed)}, which the {policy.name} policy allows.",
                        )
        return self._default(policy, categories)

    def _safe_search(
        self, policy: Policy, rewrite: SearchRewrite | None, decision: Decision
    ) -> Decision:
        if rewrite is None:
            return decision
        if rewrite.moderate is not None:  # YouTube
            if policy.youtube is YouTubeMode.OFF:
                return decision
            target = rewrite.moderate if policy.youtube is YouTubeMode.MODERATE else rewrite.target
            mode = f"{policy.youtube.value} restricted mode"
        else:
            if policy.safe_search is SafeSearch.OFF:
                return decision
            target, mode = rewrite.target, "safe search"
        return Decision(
            action=Action.REWRITE,
            categories=decision.categories,
            rule=f"safe search {rewrite.engine}",
            list_id=decision.list_id,
            policy_id=policy.id,
            reason=f"Sent to {rewrite.engine_name} {mode} ({target}), which the "
            f"{policy.name} policy turns on.",
            rewrite_to=target,
            under_exception=decision.under_exception,
        )

    # -- fixed answers ------------------------------------------------------------------

    @staticmethod
    def _default(policy: Policy, categories: tuple[Category, ...]) -> Decision:
        if policy.default is Action.BLOCK:
            reason = f"Blocked because the {policy.name} policy allows only the sites it names."
        else:
            reason = f"Allowed: nothing the {policy.name} policy blocks names this site."
        return Decision(
            action=policy.default,
            categories=categories,
            rule=f"policy:{policy.id} default",
            list_id=None,
            policy_id=policy.id,
            reason=reason,
        )

    @staticmethod
    def _illegal(policy: Policy, match: Match) -> Decision:
        listed = next(info for info in match.lists if info.illegal)
        return Decision(
            action=Action.BLOCK,
            categories=(listed.category,),
            rule=match.listed,
            list_id=listed.id,
            policy_id=policy.id,
            reason=f"Blocked because {_shown(match)} is in the {listed.name} list of "
            "illegal content, which is always blocked.",
        )

    @staticmethod
    def _fault(policy: Policy, detail: str) -> Decision:
        return Decision(
            action=Action.BLOCK,
            categories=(),
            rule="fault: illegal-content lists unavailable",
            list_id=None,
            policy_id=policy.id,
            reason="Blocked because the filter could not check the illegal-content lists "
            f"({detail}); everything is blocked until they load again.",
        )

    def _local(self, now: float) -> tuple[int, int]:
        """School-local weekday and minute of the day, worked out once a minute."""
        bucket = int(now) // 60
        cached = self._clock
        if cached[0] == bucket:
            return cached[1], cached[2]
        local = datetime.fromtimestamp(bucket * 60, self.rules.timezone)
        self._clock = (bucket, local.weekday(), local.hour * 60 + local.minute)
        return self._clock[1], self._clock[2]


def _fields(node: _Overlay) -> dict[str, Any]:
    return {
        "entries": node.entries,
        "exceptions": node.exceptions,
        "rewrite": node.rewrite,
        "bypass": node.bypass,
    }


def _parents(host: str) -> list[str]:
    labels = host.split(".")
    if ":" in host or host[-1].isdigit():
        return [host]
    return [".".join(labels[i:]) for i in range(len(labels))]


def _display(name: str) -> str:
    """display_host for a normalised name, without parsing it again when it is ASCII."""
    return display_host(name) if "xn--" in name else name


def _shown(match: Match) -> str:
    if match.kind is MatchKind.DOMAIN:
        return _display(match.listed)
    if match.kind is MatchKind.URL_HASH:
        return "this page"
    if match.kind is MatchKind.REGEX:
        return f"an address matching {match.listed!r}"
    return match.listed


class EngineHolder:
    """The current engine, swapped whole by assigning ``engine`` (one reference)."""

    __slots__ = ("engine",)

    def __init__(self, engine: FilterEngine) -> None:
        self.engine = engine


def decide(
    engine: FilterEngine, asker: Asker, host_or_url: str, when: datetime | None = None
) -> Decision:
    """Decide for a host name or a web address as a person typed it.

    A text with ``/`` or a scheme is read as a web address; anything else as a host.
    Raises ``InvalidHost``/``InvalidUrl`` (InvalidInput) with the reason for a bad name.
    """
    now = clock.time() if when is None else when.timestamp()
    text = host_or_url.strip()
    if "/" in text or "\\" in text:
        return engine.decide_url(asker, parse_url(text), now)
    return engine.decide_host(asker, normalise_host(text), now)
