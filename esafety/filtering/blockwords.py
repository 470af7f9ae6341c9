"""What the block page says, and to whom: the filter's decision in words for an age.

The page is for the person at the device (issue 4 §7): EYFS and KS1 pupils get a few
very simple words ("This website is not for you at school"), KS2 pupils a little more
(why, in plain words), staff and other adults the category, the rule and list that
decided and how to ask for the site to be unblocked. A device nobody is signed in on
gets the KS2 words and a line for adults. Every version says what happened and what to
do ("tell a trusted adult": 003 §7.3.2 "report the concern immediately to a member of
staff", 001 "let their teacher know").

A block by an illegal-content list is described neutrally to everyone, staff included:
the page never names the list (the IWF asks its members not to reveal it) nor a category
that would say what the site holds. No database queries and no web here: the middleware
(:mod:`esafety.filtering.blockpage`) finds who is at the device and asks the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from esafety.directory.model import Person, PersonKind
from esafety.directory.years import KeyStage
from esafety.filtering.categories import Category, info
from esafety.filtering.decision import Decision, FilterEngine
from esafety.filtering.hostnames import display_host
from esafety.filtering.policy import Action

__all__ = ["Band", "BlockView", "Outcome", "band_of", "is_illegal", "plain_reason", "view_for"]


class Band(StrEnum):
    """Whose words the page uses."""

    #: EYFS and KS1 pupils (and devices on a network mapped to their policies).
    YOUNG = "young"
    KS2 = "ks2"
    #: Staff, governors, volunteers, visitors, guests.
    ADULT = "adult"
    #: Nobody is signed in on the device: it has the strictest pupil policy.
    UNKNOWN = "unknown"


class Outcome(StrEnum):
    BLOCKED = "blocked"
    #: An illegal-content list decided: said neutrally, never unblockable.
    ALWAYS = "always"
    #: The filter could not check its illegal-content lists and blocks everything.
    FAULT = "fault"
    #: The filter allows it now (the device still remembers the old answer).
    ALLOWED = "allowed"
    #: The address asked for is not a site name the filter could decide on.
    NO_SITE = "no_site"


_YOUNG_POLICIES = frozenset({"eyfs", "ks1"})
_ADULT_POLICIES = frozenset({"staff", "guests"})


def band_of(person: Person | None, policy_id: str | None) -> Band:
    """The words for whoever is at the device: by their key stage, else by their policy."""
    if person is not None:
        if person.kind is not PersonKind.PUPIL:
            return Band.ADULT
        stage = person.key_stage
        if stage in (KeyStage.EYFS, KeyStage.KS1):
            return Band.YOUNG
        if stage is not None:
            return Band.KS2
    if policy_id in _YOUNG_POLICIES:
        return Band.YOUNG
    if policy_id == "ks2":
        return Band.KS2
    if policy_id in _ADULT_POLICIES:
        return Band.ADULT
    if person is not None:  # a pupil with no year and a custom policy
        return Band.KS2
    return Band.UNKNOWN


#: Why, for a child of KS2 age: "This website is blocked because ...".
_PLAIN: dict[Category, str] = {
    Category.SOCIAL_MEDIA: "it is a social media site. Social media is not for children at school.",
    Category.CHAT: "it is a chat or messaging site, where you could be talking to people you do not know.",
    Category.GAMES: "it is an online games site.",
    Category.STREAMING: "it is a video or music site that is not set up for school.",
    Category.SEARCH_ENGINES: "it is a search engine that is not made for children. Your school has a search engine for children you can use instead.",
    Category.GENERATIVE_AI: "it is an AI chatbot or picture maker, which is not for children at school.",
    Category.PROXIES_VPN: "it could be used to get round the school's filter, which is there to keep you safe.",
    Category.ENCRYPTED_DNS: "it could be used to get round the school's filter, which is there to keep you safe.",
    Category.PHISHING: "it could trick people into giving away passwords or money.",
    Category.MALWARE: "it could harm the computer or steal information.",
    Category.PIRACY: "it shares films, music, games or books without permission.",
    Category.GAMBLING: "it is about gambling (betting money), which is for adults only.",
    Category.DATING: "it is a dating site, which is for adults only.",
    Category.PORNOGRAPHY: "it has things on it that are for adults only.",
    Category.ADULT: "it has things on it that are for adults only.",
    Category.MISINFORMATION: "it spreads things that are not true.",
}
#: Everything else (violence, hate, self-harm...): not described to a child.
_NOT_SUITABLE = "it has things on it that are not suitable for children."


def plain_reason(decision: Decision) -> str:
    """The KS2 sentence: why this site is blocked, without describing harmful content."""
    for category in decision.categories:
        return _PLAIN.get(category, _NOT_SUITABLE)
    if decision.rule.startswith("school entry"):
        return "your school has chosen to block it."
    if decision.rule.endswith(" default"):
        return "only websites your school has chosen are allowed for you."
    return "it is not suitable for school."


@dataclass(frozen=True)
class BlockView:
    """Everything the page shows; nothing about anyone but the person at the device."""

    band: Band
    outcome: Outcome
    #: The site as a person reads it (Unicode, look-alikes left as xn--); None: no site.
    site: str | None
    #: The normalised host (for reports and the unblock link).
    host: str | None
    #: KS2 and unknown devices: why, in plain words.
    plain: str = ""
    #: Adults: the decision's own sentence, categories, rule, list and policy.
    reason: str = ""
    categories: tuple[str, ...] = ()
    rule: str = ""
    list_name: str = ""
    policy_name: str = ""
    #: How the filter knew who is at the device: "sign-in (api)", "subnet ...", ...
    how: str = ""
    decision: Decision | None = None
    #: The person at the device (a report's reporter), never shown.
    person_id: int | None = None

    @property
    def illegal(self) -> bool:
        return self.outcome is Outcome.ALWAYS

    @property
    def can_report(self) -> bool:
        return self.host is not None

    @property
    def can_ask_to_unblock(self) -> bool:
        return self.band is Band.ADULT and self.outcome is Outcome.BLOCKED


def _list_of(engine: FilterEngine, list_id: str | None) -> tuple[str, bool]:
    """The deciding list's name and whether it is an illegal-content list."""
    if list_id is None:
        return "", False
    for listed in engine.index.lists:
        if listed.id == list_id:
            return listed.name, listed.illegal
    return "", False


def device_words(how: str) -> str:
    """How the filter knew who is at the device, for the staff page."""
    if how.startswith("sign-in"):
        return "signed in to the filter" + how.removeprefix("sign-in")
    if how.startswith("subnet "):
        return "on the network " + how.removeprefix("subnet ")
    return "nobody is signed in to the filter" if how == "unknown device" else how


def is_illegal(engine: FilterEngine, decision: Decision) -> bool:
    """Whether an illegal-content list decided (then say nothing about the list)."""
    return _list_of(engine, decision.list_id)[1]


def _outcome(decision: Decision, illegal: bool) -> Outcome:
    if decision.action is not Action.BLOCK:
        return Outcome.ALLOWED
    if decision.rule.startswith("fault:"):
        return Outcome.FAULT
    return Outcome.ALWAYS if illegal else Outcome.BLOCKED


def view_for(
    *,
    person: Person | None,
    policy_id: str | None,
    how: str,
    host: str | None,
    decision: Decision | None,
    engine: FilterEngine | None,
) -> BlockView:
    """The page for the person at the device, who asked for ``host`` and got ``decision``."""
    band = band_of(person, policy_id)
    person_id = person.id if person is not None else None
    if host is None or decision is None or engine is None:
        return BlockView(band, Outcome.NO_SITE, None, None, how=how, person_id=person_id)
    list_name, illegal = _list_of(engine, decision.list_id)
    outcome = _outcome(decision, illegal)
    site = display_host(host)
    if outcome is not Outcome.BLOCKED:  # neutral: no category, rule, list or reason
        return BlockView(band, outcome, site, host, how=how, decision=decision, person_id=person_id)
    policy = engine.rules.policies.get(decision.policy_id)
    return BlockView(
        band,
        outcome,
        site,
        host,
        plain=plain_reason(decision),
        reason=decision.reason,
        categories=tuple(info(c).name for c in decision.categories),
        rule=decision.rule,
        list_name=list_name,
        policy_name=policy.name if policy is not None else decision.policy_id,
        how=device_words(how),
        decision=decision,
        person_id=person_id,
    )
