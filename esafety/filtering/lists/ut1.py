"""UT1 / squidGuard category folders: ``<category>/domains`` and ``<category>/urls``.

The free UT1 lists (Université Toulouse Capitole, CC BY-SA) ship one folder per category;
each holds a ``domains`` file (one name per line) and often a ``urls`` file (URL prefixes
without a scheme, ``example.com/path``). Other files there (``usage``, ``expressions``,
``very_restrictive_expression``) are not imported: UT1's expressions are unbounded regular
expressions meant for squidGuard.

``UT1_CATEGORIES`` maps UT1's folder names (from its ``global_usage`` catalogue and the
folder aliases it ships: ``porn``, ``aggressive``, ``drugs``, ``proxy``) to esafety's
categories. Folders with no fitting category map to None, and the importer must then be
told the category.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

from esafety.errors import InvalidInput
from esafety.filtering.categories import Category
from esafety.filtering.lists.domains import parse_domains
from esafety.filtering.lists.entries import ListItem, ListProblem
from esafety.filtering.lists.urls import parse_urls

__all__ = ["UT1_CATEGORIES", "parse_ut1", "ut1_category"]

UT1_CATEGORIES: Mapping[str, Category | None] = MappingProxyType(
    {
        # "Some adult site from erotic to hard pornography"
        "adult": Category.PORNOGRAPHY,
        "porn": Category.PORNOGRAPHY,
        # Adult sections mixed with other content; lingerie shops.
        "mixed_adult": Category.ADULT,
        "lingerie": Category.ADULT,
        # UT1's French description: "racist, antisemitic sites inciting hatred".
        "agressif": Category.HATE,
        "aggressive": Category.HATE,
        # "how to make bomb and some dangerous material"
        "dangerous_material": Category.WEAPONS,
        "drogue": Category.DRUGS,
        "drugs": Category.DRUGS,
        "gambling": Category.GAMBLING,
        # French-certified gambling sites: still gambling.
        "arjel": Category.GAMBLING,
        "malware": Category.MALWARE,
        "cryptojacking": Category.MALWARE,
        "hacking": Category.MALWARE,
        "ddos": Category.MALWARE,
        "stalkerware": Category.MALWARE,
        "phishing": Category.PHISHING,
        "dating": Category.DATING,
        "social_networks": Category.SOCIAL_MEDIA,
        "chat": Category.CHAT,
        "games": Category.GAMES,
        "audio-video": Category.STREAMING,
        "warez": Category.PIRACY,
        # Filter circumvention. strict_redirector and strong_redirector also hold search
        # engines' cache and image services, so they block more than redirector does.
        "redirector": Category.PROXIES_VPN,
        "strict_redirector": Category.PROXIES_VPN,
        "strong_redirector": Category.PROXIES_VPN,
        "proxy": Category.PROXIES_VPN,
        "vpn": Category.PROXIES_VPN,
        "residential-proxies": Category.PROXIES_VPN,
        "doh": Category.ENCRYPTED_DNS,
        "ai": Category.GENERATIVE_AI,
        "fakenews": Category.MISINFORMATION,
        # No esafety category fits; a school that wants them names one on import.
        "sect": None,  # cults: not extremism in the Prevent sense
        "tricheur": None,  # exam cheating
        "remote-control": None,
        "dynamic-dns": None,
        "shortener": None,
        "filehosting": None,
        "download": None,
        "webmail": None,
        "forums": None,
        "blog": None,
        "shopping": None,
        "publicite": None,
        "ads": None,
        "marketingware": None,
        "astrology": None,
        "associations_religieuses": None,
        "bitcoin": None,
        "celebrity": None,
        "cooking": None,
        "dialer": None,
        "financial": None,
        "jobsearch": None,
        "manga": None,
        "mobile-phone": None,
        "press": None,
        "radio": None,
        "reaffected": None,
        "sports": None,
        "translation": None,
        "update": None,
        # UT1's allow lists ("DEFAULT_TYPE: white"): never a blocking category.
        "child": None,
        "educational_games": None,
        "sexual_education": None,
        "cleaning": None,
        "bank": None,
        "liste_bu": None,
        "liste_blanche": None,
        "examen_pix": None,
    }
)

_FILES = ("domains", "urls")


def ut1_category(folder: str | os.PathLike[str]) -> Category | None:
    """esafety's category for a UT1 folder (by its name), or None if none fits."""
    return UT1_CATEGORIES.get(Path(folder).name.lower())


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _in_file(items: Iterator[ListItem], file: str) -> Iterator[ListItem]:
    for item in items:
        yield dataclasses.replace(item, file=file) if isinstance(item, ListProblem) else item


def parse_ut1(folder: str | os.PathLike[str]) -> Iterator[ListItem]:
    """Entries of one UT1 category folder: its ``domains`` file, then its ``urls`` file."""
    root = Path(folder)
    if not root.is_dir():
        raise InvalidInput(f"UT1 list '{root}' is not a folder: give one category folder")
    files = {name: _find(root, name) for name in _FILES}
    if not any(files.values()):
        nested = sorted(child.name for child in root.iterdir() if _find(child, "domains"))
        if nested:
            raise InvalidInput(
                f"'{root}' holds several UT1 categories ({', '.join(nested[:5])}...):"
                f" import one category folder at a time, e.g. '{root / nested[0]}'"
            )
        raise InvalidInput(
            f"'{root}' is not a UT1 category folder: expected a 'domains' or 'urls' file in it"
        )
    return _items(files)


def _items(files: dict[str, Path | None]) -> Iterator[ListItem]:
    if (domains := files["domains"]) is not None:
        yield from _in_file(parse_domains(domains), domains.name)
    if (urls := files["urls"]) is not None:
        yield from _in_file(parse_urls(urls), urls.name)
