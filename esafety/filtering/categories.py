"""The filtering categories: stable ids, and the catalogue in ``data/categories.toml``.

The catalogue is read and validated once, on first use; a broken catalogue is a
:class:`ConfigError` naming the entry. ``category_of`` reads an id as a person types it.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from esafety.errors import ConfigError, InvalidInput

__all__ = [
    "Category",
    "CategoryInfo",
    "catalogue",
    "category_of",
    "info",
    "parse_catalogue",
]


class Category(StrEnum):
    """Ids used in the CLI, the API, lists and settings (add, never rename)."""

    DISCRIMINATION = "discrimination"
    DRUGS = "drugs"
    EXTREMISM = "extremism"
    GAMBLING = "gambling"
    MALWARE = "malware"
    MISINFORMATION = "misinformation"
    PORNOGRAPHY = "pornography"
    PIRACY = "piracy"
    SELF_HARM = "self_harm"
    EATING_DISORDERS = "eating_disorders"
    VIOLENCE = "violence"
    VAWG = "vawg"
    HATE = "hate"
    WEAPONS = "weapons"
    ADULT = "adult"
    DATING = "dating"
    SOCIAL_MEDIA = "social_media"
    CHAT = "chat"
    GAMES = "games"
    STREAMING = "streaming"
    SEARCH_ENGINES = "search_engines"
    CHILD_SEARCH = "child_search"
    PROXIES_VPN = "proxies_vpn"
    ENCRYPTED_DNS = "encrypted_dns"
    PHISHING = "phishing"
    GENERATIVE_AI = "generative_ai"


@dataclass(frozen=True, slots=True)
class CategoryInfo:
    id: Category
    name: str
    description: str
    blocked_for_pupils: bool
    alerts_dsl: bool
    #: The UKSIC "Appropriate Filtering" category this implements (STANDARDS F2), or None.
    uksic: str | None

    @property
    def is_uksic(self) -> bool:
        return self.uksic is not None


_FIELDS: dict[str, type] = {
    "id": str,
    "name": str,
    "description": str,
    "blocked_for_pupils": bool,
    "alerts_dsl": bool,
    "uksic": str,
}


def _entry(index: int, raw: Any) -> CategoryInfo:
    where = f"categories catalogue entry {index}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a [[category]] table, found {raw!r}")
    if isinstance(raw.get("id"), str):
        where += f" ('{raw['id']}')"
    missing = [name for name in _FIELDS if name not in raw]
    if missing:
        raise ConfigError(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(_FIELDS)}"
        )
    for name, kind in _FIELDS.items():
        if not isinstance(raw[name], kind):
            raise ConfigError(
                f"{where}: field '{name}' must be a {kind.__name__}, found {raw[name]!r}"
            )
    for name in ("name", "description"):
        if not raw[name].strip():
            raise ConfigError(f"{where}: field '{name}' is empty")
    try:
        category = Category(raw["id"])
    except ValueError:
        raise ConfigError(f"{where}: unknown id '{raw['id']}'; {_allowed_ids()}") from None
    return CategoryInfo(
        id=category,
        name=raw["name"],
        description=raw["description"],
        blocked_for_pupils=raw["blocked_for_pupils"],
        alerts_dsl=raw["alerts_dsl"],
        uksic=raw["uksic"] or None,
    )


def parse_catalogue(text: str) -> Mapping[Category, CategoryInfo]:
    """Validate catalogue TOML: every Category exactly once, every field present and typed."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"categories catalogue is not valid TOML: {error}") from None
    entries = document.get("category")
    if not isinstance(entries, list):
        raise ConfigError("categories catalogue: expected [[category]] tables")
    found: dict[Category, CategoryInfo] = {}
    for index, raw in enumerate(entries, start=1):
        entry = _entry(index, raw)
        if entry.id in found:
            raise ConfigError(f"categories catalogue entry {index}: duplicate id '{entry.id}'")
        found[entry.id] = entry
    absent = [category.value for category in Category if category not in found]
    if absent:
        raise ConfigError(f"categories catalogue: no entry for {', '.join(absent)}")
    # Catalogue order follows the enum, whatever order the file lists them in.
    return MappingProxyType({category: found[category] for category in Category})


@cache
def catalogue() -> Mapping[Category, CategoryInfo]:
    """The shipped catalogue, read and validated once."""
    text = resources.files("esafety.filtering").joinpath("data/categories.toml").read_text("utf-8")
    return parse_catalogue(text)


def info(category: Category) -> CategoryInfo:
    return catalogue()[category]


def _allowed_ids() -> str:
    return "expected one of: " + ", ".join(category.value for category in Category)


def category_of(text: str) -> Category:
    """Read a category id as typed ('Self-harm', ' gambling ') or explain what is allowed."""
    cleaned = text.strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return Category(cleaned)
    except ValueError:
        pass
    ids = [category.value for category in Category]
    close = difflib.get_close_matches(cleaned, ids, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise InvalidInput(f"unknown category '{text}': {hint}{_allowed_ids()}")
