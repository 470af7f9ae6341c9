"""Usernames: what people sign in with, unique across the whole installation."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

__all__ = ["base_username", "unique_username"]

_NOT_ALLOWED = re.compile(r"[^a-z0-9.]+")


def base_username(first: str, last: str) -> str:
    """``Zoë O'Brien-Smith`` → ``zoe.obriensmith``: ASCII letters, digits and one dot."""

    def clean(text: str) -> str:
        ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
        return _NOT_ALLOWED.sub("", ascii_text.lower().replace(" ", ""))

    first_part, last_part = clean(first) or "user", clean(last)
    return f"{first_part}.{last_part}" if last_part else first_part


def unique_username(first: str, last: str, taken: Callable[[str], bool]) -> str:
    """The base username, or the base with the smallest number (2, 3, ...) not yet taken."""
    base = base_username(first, last)
    candidate, n = base, 1
    while taken(candidate):
        n += 1
        candidate = f"{base}{n}"
    return candidate
