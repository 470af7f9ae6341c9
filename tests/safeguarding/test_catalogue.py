"""The procedures catalogue is validated when loaded; working-day deadlines."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from esafety.errors import ConfigError
from esafety.safeguarding.catalogue import parse_catalogue
from esafety.safeguarding.deadlines import add_working_days
from esafety.safeguarding.kinds import IncidentKind

KIND = """
[[kind]]
id = "{id}"
title = "A title"
description = "A description."
grave = false
readers = ["dsl", "deputy_dsl"]
online_safety = false
source = "003 §10"

[[kind.step]]
id = "first"
title = "First"
required = true
guidance = "Do it (003 §10)."
source = "003 §10"
"""

CLOSING = """
[[closing_step]]
id = "outcome"
title = "Record the outcome"
required = true
after_procedure = true
skippable = false
guidance = "Say how it ended."
source = "002 §8"
"""


def catalogue_text(extra_steps: str = "", skip: str = "", kind_fields: str = "") -> str:
    """A valid catalogue; ``extra_steps`` are appended to the bullying procedure."""
    parts = []
    for kind in IncidentKind:
        if kind.value == skip:
            continue
        text = KIND.format(id=kind.value)
        if kind is IncidentKind.ONLINE_BULLYING:
            text = text.replace('source = "003 §10"\n', f'source = "003 §10"\n{kind_fields}', 1)
            text += extra_steps
        parts.append(text)
    return CLOSING + "".join(parts)


def step(step_id: str, body: str = "") -> str:
    return f"""
[[kind.step]]
id = "{step_id}"
title = "A step"
required = true
guidance = "Guidance."
source = "003 §10"
{body}"""


DECISION = """[kind.step.decision]
question = "Yes or no?"
choices = [
    {{ id = "yes", label = "Yes", rationale = false }},
    {{ id = "no", label = "No", rationale = true }},
]
"""


def test_a_valid_catalogue_parses_and_closing_steps_wait_for_the_procedure() -> None:
    extra = step("decide", DECISION.format()) + step(
        "follow_up", 'when = { step = "decide", choices = ["yes"] }\n'
    )
    parsed = parse_catalogue(catalogue_text(extra))
    bullying = parsed[IncidentKind.ONLINE_BULLYING]
    assert bullying.step_ids == ("first", "decide", "follow_up", "outcome")
    assert bullying.step("outcome").after == ("first", "decide", "follow_up")
    assert bullying.step("follow_up").after == ("decide",)  # a condition is also a wait
    assert bullying.step("decide").skippable is False  # decisions are answered, not skipped
    assert bullying.step("first").skippable is True


@pytest.mark.parametrize(
    ("extra", "kind_fields", "skip", "message"),
    [
        ("", "", "data_breach", "no entry for data_breach"),
        (step("first"), "", "", "duplicate step id"),
        (step("early", 'after = ["later"]\n') + step("later"), "", "", "not an earlier step"),
        (step("gated", 'when = { step = "first", choices = ["yes"] }\n'), "", "", "decision"),
        (
            step("decide", DECISION.format())
            + step("gated", 'when = { step = "decide", choices = ["maybe"] }\n'),
            "",
            "",
            r"not among 'decide' choices \['yes', 'no'\]",
        ),
        (step("odd", 'colour = "red"\n'), "", "", "unknown field.*colour"),
        (step("Bad-Id"), "", "", "not snake_case"),
        (step("slow", "due = { days = 3 }\n"), "", "", "exactly one of hours, working_days"),
        (step("slow", "due = { hours = 0 }\n"), "", "", "at least 1"),
        ("", 'readers_when_about_headteacher = ["admin"]\n', "", "reads no safeguarding"),
        ("", 'refuse_images = ""\n', "", "'refuse_images' is empty"),
    ],
)
def test_a_broken_catalogue_is_refused_naming_the_problem(
    extra: str, kind_fields: str, skip: str, message: str
) -> None:
    text = catalogue_text(extra, skip=skip, kind_fields=kind_fields)
    with pytest.raises(ConfigError, match=message):
        parse_catalogue(text)


def test_a_field_of_the_wrong_type_is_refused() -> None:
    text = catalogue_text().replace("grave = false", 'grave = "yes"', 1)
    with pytest.raises(ConfigError, match="field 'grave' must be a bool"):
        parse_catalogue(text)


def test_a_kind_with_no_required_step_is_refused() -> None:
    text = catalogue_text().replace("required = true", "required = false")
    with pytest.raises(ConfigError, match="has no required step"):
        parse_catalogue(text)


def test_an_unknown_kind_or_table_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown id"):
        parse_catalogue(catalogue_text() + KIND.format(id="sexting"))
    with pytest.raises(ConfigError, match="unknown table"):
        parse_catalogue(catalogue_text() + "\n[extra]\nx = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_catalogue("[[kind]\n")


LONDON = ZoneInfo("Europe/London")


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (datetime(2025, 3, 12, 9, 0), 1, datetime(2025, 3, 13, 9, 0)),  # Wed → Thu
        (datetime(2025, 3, 14, 15, 30), 1, datetime(2025, 3, 17, 15, 30)),  # Fri → Mon
        (datetime(2025, 3, 15, 10, 0), 1, datetime(2025, 3, 18, 0, 0)),  # Sat → end of Mon
        (datetime(2025, 3, 14, 15, 30), 5, datetime(2025, 3, 21, 15, 30)),  # a school week
        # Across the clocks going forward (30 March 2025): the wall-clock time is kept.
        (datetime(2025, 3, 28, 9, 0), 1, datetime(2025, 3, 31, 9, 0)),
    ],
)
def test_working_days(start: datetime, days: int, expected: datetime) -> None:
    moved = add_working_days(start.replace(tzinfo=LONDON), days)
    assert moved == expected.replace(tzinfo=LONDON)


def test_working_days_skip_holidays() -> None:
    thursday = datetime(2025, 4, 17, 12, 0, tzinfo=LONDON)
    easter = {date(2025, 4, 18), date(2025, 4, 21)}  # Good Friday, Easter Monday
    assert add_working_days(thursday, 1, easter) == datetime(2025, 4, 22, 12, 0, tzinfo=LONDON)


def test_the_documentation_names_every_kind() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "safeguarding.md").read_text("utf-8")
    for kind in IncidentKind:
        assert f"| `{kind.value}` |" in docs, kind
