"""The categories catalogue (issue 4 §2; STANDARDS F2)."""

from __future__ import annotations

import pytest

from esafety.errors import ConfigError, InvalidInput
from esafety.filtering.categories import (
    Category,
    CategoryInfo,
    catalogue,
    category_of,
    info,
    parse_catalogue,
)

ISSUE_IDS = [
    "discrimination",
    "drugs",
    "extremism",
    "gambling",
    "malware",
    "misinformation",
    "pornography",
    "piracy",
    "self_harm",
    "eating_disorders",
    "violence",
    "vawg",
    "hate",
    "weapons",
    "adult",
    "dating",
    "social_media",
    "chat",
    "games",
    "streaming",
    "search_engines",
    "child_search",
    "proxies_vpn",
    "encrypted_dns",
    "phishing",
    "generative_ai",
]

ENTRY = """
[[category]]
id = "{id}"
name = "A name"
description = "A description."
blocked_for_pupils = true
alerts_dsl = false
uksic = ""
"""


def full_catalogue(skip: str = "", extra: str = "") -> str:
    return "".join(ENTRY.format(id=c.value) for c in Category if c.value != skip) + extra


def test_ids_are_exactly_the_issue_ids_and_stable():
    assert [c.value for c in Category] == ISSUE_IDS


def test_shipped_catalogue_covers_every_category_in_order():
    shipped = catalogue()
    assert list(shipped) == list(Category)
    for category, entry in shipped.items():
        assert isinstance(entry, CategoryInfo)
        assert entry.id is category
        assert entry.name.strip()
        assert entry.description.endswith(".")
        assert len(entry.description) < 200, "one plain sentence"


def test_shipped_catalogue_is_read_once():
    assert catalogue() is catalogue()


def test_every_uksic_category_is_marked():
    # UKSIC 1b inappropriate-content categories (STANDARDS F2).
    uksic = {c for c, entry in catalogue().items() if entry.is_uksic}
    assert {
        Category.DISCRIMINATION,
        Category.DRUGS,
        Category.EXTREMISM,
        Category.GAMBLING,
        Category.MALWARE,
        Category.MISINFORMATION,
        Category.PORNOGRAPHY,
        Category.PIRACY,
        Category.SELF_HARM,
        Category.EATING_DISORDERS,
        Category.VIOLENCE,
        Category.VAWG,
    } <= uksic
    assert not info(Category.GAMES).is_uksic
    assert info(Category.GAMES).uksic is None


def test_alerting_and_pupil_defaults():
    for category in (
        Category.EXTREMISM,
        Category.SELF_HARM,
        Category.PORNOGRAPHY,
        Category.VAWG,
        Category.EATING_DISORDERS,
    ):
        assert info(category).alerts_dsl, category
        assert info(category).blocked_for_pupils, category
    assert not info(Category.GAMES).alerts_dsl
    assert not info(Category.CHILD_SEARCH).blocked_for_pupils
    assert info(Category.ENCRYPTED_DNS).blocked_for_pupils  # F7
    assert info(Category.PROXIES_VPN).blocked_for_pupils  # F7
    # Every alerting category is one pupils are kept from.
    for entry in catalogue().values():
        if entry.alerts_dsl:
            assert entry.blocked_for_pupils, entry.id


def test_category_info_is_frozen():
    with pytest.raises(AttributeError):
        info(Category.DRUGS).alerts_dsl = True  # type: ignore[misc]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("gambling", Category.GAMBLING),
        ("  Gambling ", Category.GAMBLING),
        ("Self-harm", Category.SELF_HARM),
        ("social media", Category.SOCIAL_MEDIA),
        ("VAWG", Category.VAWG),
    ],
)
def test_category_of_reads_what_people_type(typed, expected):
    assert category_of(typed) is expected


@pytest.mark.parametrize(
    ("typed", "suggestion"),
    [
        ("gamblng", "gambling"),
        ("porn", None),
        ("selfharm", "self_harm"),
        ("extremist", "extremism"),
    ],
)
def test_category_of_explains_and_suggests(typed, suggestion):
    with pytest.raises(InvalidInput) as caught:
        category_of(typed)
    message = str(caught.value)
    assert f"unknown category '{typed}'" in message
    assert "expected one of: discrimination, drugs," in message
    assert "generative_ai" in message
    if suggestion:
        assert f"did you mean '{suggestion}'?" in message


def test_category_of_nonsense_offers_no_guess():
    with pytest.raises(InvalidInput) as caught:
        category_of("zzzz")
    assert "did you mean" not in str(caught.value)


def test_parse_catalogue_accepts_a_complete_file():
    parsed = parse_catalogue(full_catalogue())
    assert len(parsed) == len(Category)
    assert parsed[Category.DRUGS].uksic is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (full_catalogue(extra=ENTRY.format(id="gambling")), "entry 27: duplicate id 'gambling'"),
        (full_catalogue(extra=ENTRY.format(id="astrology")), "unknown id 'astrology'"),
        (full_catalogue(skip="vawg"), "no entry for vawg"),
        (
            full_catalogue(skip="vawg")
            + '[[category]]\nid = "vawg"\nname = "V"\ndescription = "D."\n',
            "entry 26 ('vawg'): missing field(s) blocked_for_pupils, alerts_dsl, uksic",
        ),
        (
            full_catalogue().replace("alerts_dsl = false", 'alerts_dsl = "no"', 1),
            "entry 1 ('discrimination'): field 'alerts_dsl' must be a bool",
        ),
        (
            full_catalogue().replace('uksic = ""', 'uksic = ""\ncolour = "red"', 1),
            "unknown field(s) colour",
        ),
        (full_catalogue().replace('name = "A name"', 'name = " "', 1), "field 'name' is empty"),
        ("[[category]\n", "not valid TOML"),
        ("title = 'no categories'", "expected [[category]] tables"),
        ("category = [1]", "entry 1: expected a [[category]] table"),
    ],
)
def test_parse_catalogue_names_the_bad_entry(text, message):
    with pytest.raises(ConfigError) as caught:
        parse_catalogue(text)
    assert message in str(caught.value)
