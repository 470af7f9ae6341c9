"""Passwords: Argon2id hashing and the school's password rules.

001 "Password security": passwords are "changed every 30 days", "more than 5 characters long
and unique for each new password changed". A school sets its own rules (columns on
``school``); the installation's settings give the defaults.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from esafety.config import SecuritySettings
from esafety.errors import InvalidInput

__all__ = [
    "MAX_LENGTH",
    "PasswordRules",
    "hasher",
    "is_expired",
    "problems_with",
    "rules_for",
    "verify",
]

#: Long enough for any passphrase, short enough that hashing it is no denial of service.
MAX_LENGTH = 256

# A few passwords every guesser tries first; a real list would be larger, but these are
# the ones people in schools pick (the school's name is checked separately).
_COMMON = frozenset(
    {
        "password",
        "password1",
        "password123",
        "passw0rd",
        "123456789",
        "1234567890",
        "12345678",
        "qwertyuiop",
        "qwerty123",
        "iloveyou",
        "letmein123",
        "welcome123",
        "changeme",
        "abcdefghij",
        "football1",
    }
)


@dataclass(frozen=True)
class PasswordRules:
    min_length: int
    #: How many previous passwords may not be used again (the current one included).
    history: int
    #: Days before a password must be changed; 0: never.
    max_age_days: int

    def describe(self) -> str:
        parts = [f"at least {self.min_length} characters"]
        if self.history:
            parts.append(f"not one of your last {self.history} passwords")
        return "; ".join(parts)


def rules_for(
    settings: SecuritySettings,
    *,
    min_length: int | None = None,
    history: int | None = None,
    max_age_days: int | None = None,
) -> PasswordRules:
    """The school's rules (its columns), falling back to the installation's defaults."""
    return PasswordRules(
        min_length=min_length if min_length is not None else settings.password_min_length,
        history=history if history is not None else settings.password_history,
        max_age_days=max_age_days if max_age_days is not None else settings.password_max_age_days,
    )


def hasher(settings: SecuritySettings) -> PasswordHasher:
    return PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        type=Type.ID,
    )


def verify(ph: PasswordHasher, stored_hash: str | None, password: str) -> bool:
    if stored_hash is None:
        return False
    try:
        return ph.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def problems_with(
    password: str,
    rules: PasswordRules,
    *,
    ph: PasswordHasher,
    previous_hashes: Iterable[str] = (),
    personal_words: Iterable[str] = (),
) -> list[str]:
    """Every way ``password`` breaks the rules, each saying what to do instead."""
    problems = []
    if len(password) < rules.min_length:
        problems.append(
            f"it has {len(password)} characters; use at least {rules.min_length} "
            "(a few words together make a long password that is easy to remember)"
        )
    if len(password) > MAX_LENGTH:
        problems.append(f"it is longer than {MAX_LENGTH} characters; use a shorter one")
    lowered = password.lower()
    if lowered in _COMMON or len(set(password)) <= 2:
        problems.append("it is one of the first passwords anyone would guess; choose another")
    for word in personal_words:
        if word and len(word) >= 3 and word.lower() in lowered:
            problems.append(
                "it contains your name or username; choose something others cannot guess"
            )
            break
    if rules.history and len(password) <= MAX_LENGTH:
        for old in list(previous_hashes)[: rules.history]:
            if verify(ph, old, password):
                problems.append(
                    f"you have used it before; choose one that is not among your last "
                    f"{rules.history} passwords"
                )
                break
    return problems


def check(
    password: str,
    rules: PasswordRules,
    *,
    ph: PasswordHasher,
    previous_hashes: Iterable[str] = (),
    personal_words: Iterable[str] = (),
) -> None:
    """Raise InvalidInput naming every rule the password breaks."""
    problems = problems_with(
        password, rules, ph=ph, previous_hashes=previous_hashes, personal_words=personal_words
    )
    if problems:
        raise InvalidInput("That password cannot be used: " + "; ".join(problems) + ".")


def is_expired(changed_at: datetime | None, rules: PasswordRules, now: datetime) -> bool:
    """Whether the password must be changed now (001: every 30 days by default)."""
    if not rules.max_age_days or changed_at is None:
        return False
    return now >= changed_at + timedelta(days=rules.max_age_days)
