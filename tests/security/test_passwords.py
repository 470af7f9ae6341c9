"""The school's password rules (001 "Password security") and Argon2id hashing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from esafety.config import SecuritySettings
from esafety.errors import InvalidInput
from esafety.security import passwords

SETTINGS = SecuritySettings(argon2_time_cost=1, argon2_memory_kib=8, argon2_parallelism=1)
PH = passwords.hasher(SETTINGS)
RULES = passwords.PasswordRules(min_length=10, history=3, max_age_days=30)


def test_hashes_are_argon2id_and_verify():
    digest = PH.hash("river-stone-lamp")
    assert digest.startswith("$argon2id$")
    assert passwords.verify(PH, digest, "river-stone-lamp")
    assert not passwords.verify(PH, digest, "river-stone-lam")
    assert not passwords.verify(PH, None, "anything")
    assert not passwords.verify(PH, "not a hash", "anything")


def test_installation_defaults_follow_001():
    rules = passwords.rules_for(SecuritySettings())
    assert rules.max_age_days == 30  # "changed every 30 days"
    assert rules.min_length > 5  # "more than 5 characters long"


def test_school_rules_override_the_defaults():
    rules = passwords.rules_for(SETTINGS, min_length=14, history=0, max_age_days=0)
    assert rules == passwords.PasswordRules(14, 0, 0)


def test_short_common_personal_and_reused_passwords_are_refused_with_reasons():
    old = [PH.hash("first-old-password"), PH.hash("second-old-password")]
    assert "use at least 10" in passwords.problems_with("short", RULES, ph=PH)[0]
    assert "guess" in passwords.problems_with("password123", RULES, ph=PH)[0]
    assert "guess" in passwords.problems_with("aaaaaaaaaaaa", RULES, ph=PH)[0]
    assert (
        "your name"
        in passwords.problems_with("jsmith-garden-9", RULES, ph=PH, personal_words=["jsmith"])[0]
    )
    assert (
        "used it before"
        in passwords.problems_with("second-old-password", RULES, ph=PH, previous_hashes=old)[0]
    )
    assert passwords.problems_with("brand-new-phrase", RULES, ph=PH, previous_hashes=old) == []


def test_history_counts_only_the_last_n():
    old = [PH.hash(f"old-password-{n}") for n in range(5)]  # newest first
    assert passwords.problems_with("old-password-2", RULES, ph=PH, previous_hashes=old)
    assert not passwords.problems_with("old-password-3", RULES, ph=PH, previous_hashes=old)


def test_check_names_every_problem_at_once():
    with pytest.raises(InvalidInput) as caught:
        passwords.check("qwerty", RULES, ph=PH, personal_words=["qwerty"])
    message = str(caught.value)
    assert "at least 10" in message and "your name" in message


def test_expiry():
    now = datetime(2025, 3, 1, tzinfo=UTC)
    assert passwords.is_expired(now - timedelta(days=30), RULES, now)
    assert not passwords.is_expired(now - timedelta(days=29), RULES, now)
    assert not passwords.is_expired(None, RULES, now)
    assert not passwords.is_expired(
        now - timedelta(days=900), passwords.PasswordRules(10, 0, 0), now
    )
