"""Redacting third parties from a subject access export (issue 5 §8; STANDARDS R13). Pure.

Every other person the export mentions becomes "[third party N]", the same N wherever
they appear: in the fields that name them and inside narratives and notes. A person is
matched by their full name (any case), their username, UPN, e-mail, online handle or
description (any case), and, for the people linked to the records and the school's
staff, by their first or last name alone as written with its capital ("Mr Jones",
"Ella said"), on word boundaries. A word that is also part of the subject's own name is
never redacted alone (a sibling's surname), and a word shared by two third parties goes to
the first: :meth:`Redactor.review` lists all of it for the data protection officer, who
checks the result before it is released.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Redactor", "ThirdParty"]

_MIN_LENGTH = 2


@dataclass(frozen=True)
class ThirdParty:
    """Someone other than the subject, and the forms by which they may appear."""

    key: str
    #: What they are, for the reviewer: "pupil", "member of staff", "outside adult".
    kind: str
    #: Full names: matched in any case.
    names: tuple[str, ...] = ()
    #: First and last names: matched alone, as written (with their capital).
    words: tuple[str, ...] = ()
    #: Usernames, UPNs, e-mails, handles, descriptions: matched in any case.
    ids: tuple[str, ...] = ()


@dataclass
class _Use:
    label: str
    party: ThirdParty
    forms: dict[str, int] = field(default_factory=dict)
    places: list[str] = field(default_factory=list)


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _pattern(token: str) -> str:
    body = r"\s+".join(re.escape(part) for part in token.split())
    start = r"(?<!\w)" if token[0].isalnum() or token[0] == "_" else ""
    end = r"(?!\w)" if token[-1].isalnum() or token[-1] == "_" else ""
    return f"{start}{body}{end}"


class Redactor:
    """Replaces third parties consistently; remembers what it replaced, and where."""

    def __init__(self, subject_names: Iterable[str] = ()) -> None:
        self._own = {w.casefold() for name in subject_names for w in name.split() if w}
        self._parties: dict[str, ThirdParty] = {}
        #: Token (normalised) -> the party it names; any-case tokens and as-written words.
        self._any_case: dict[str, str] = {}
        self._as_written: dict[str, str] = {}
        self._shared: dict[str, list[str]] = {}
        self._kept: set[str] = set()
        self._regex: re.Pattern[str] | None = None
        self._uses: dict[str, _Use] = {}

    def add(self, party: ThirdParty) -> None:
        if party.key in self._parties:
            return
        self._parties[party.key] = party
        self._regex = None
        for token in (*party.names, *party.ids):
            self._claim(self._any_case, _norm(token), party.key)
        for word in party.words:
            cleaned = word.strip()
            if len(cleaned) < _MIN_LENGTH:
                continue
            if cleaned.casefold() in self._own:
                self._kept.add(cleaned)
                continue
            self._claim(self._as_written, cleaned, party.key)

    def _claim(self, table: dict[str, str], token: str, key: str) -> None:
        if len(token) < _MIN_LENGTH:
            return
        owner = table.setdefault(token, key)
        if owner != key:
            self._shared.setdefault(token, [owner]).append(key)

    def _compiled(self) -> re.Pattern[str] | None:
        if self._regex is None:
            alternatives = [(t, f"(?i:{_pattern(t)})") for t in self._any_case]
            alternatives += [(t, _pattern(t)) for t in self._as_written]
            if not alternatives:
                return None
            # Longest first: "Ella Smith" before "Ella".
            alternatives.sort(key=lambda a: len(a[0]), reverse=True)
            self._regex = re.compile("|".join(p for _, p in alternatives))
        return self._regex

    def _label(self, key: str) -> _Use:
        use = self._uses.get(key)
        if use is None:
            use = _Use(f"[third party {len(self._uses) + 1}]", self._parties[key])
            self._uses[key] = use
        return use

    def text(self, value: str, where: str = "") -> str:
        regex = self._compiled()
        if regex is None or not value:
            return value

        def replace(match: re.Match[str]) -> str:
            found = match.group(0)
            key = self._as_written.get(found) or self._any_case.get(_norm(found))
            if key is None:  # pragma: no cover - every alternative is in a table
                return found
            use = self._label(key)
            use.forms[found] = use.forms.get(found, 0) + 1
            if where and where not in use.places:
                use.places.append(where)
            return use.label

        return regex.sub(replace, value)

    def document(self, value: Any, where: str = "") -> Any:
        """``value`` (JSON-like data) with every string redacted; keys are left alone."""
        if isinstance(value, str):
            return self.text(value, where)
        if isinstance(value, dict):
            return {
                k: self.document(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.document(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return value

    def review(self) -> dict[str, Any]:
        """What was redacted, for the data protection officer (it names the people: it is
        never part of what is released)."""
        return {
            "redactions": [
                {
                    "label": use.label,
                    "kind": use.party.kind,
                    "who": (*use.party.names, *use.party.ids, *use.party.words, "?")[0],
                    "forms": dict(sorted(use.forms.items())),
                    "count": sum(use.forms.values()),
                    "places": use.places,
                }
                for use in self._uses.values()
            ],
            "shared_words": {
                token: [self._parties[k].names[0] for k in keys if self._parties[k].names]
                for token, keys in sorted(self._shared.items())
            },
            "not_redacted_alone": sorted(self._kept),
        }
