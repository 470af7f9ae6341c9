"""Temporary passwords that can be read aloud to a child."""

from __future__ import annotations

import re

import pytest

from esafety.config import SecuritySettings
from esafety.security import passwords
from esafety.security.temporary_passwords import WORDS, make_temporary_password


def test_three_short_words_and_two_digits():
    for _ in range(50):
        password = make_temporary_password()
        *words, digits = password.split("-")
        assert len(words) == 3
        assert all(word in WORDS for word in words)
        assert re.fullmatch(r"[1-9][0-9]", digits)


def test_they_vary():
    assert len({make_temporary_password() for _ in range(30)}) > 25


@pytest.mark.parametrize("min_length", [6, 10, 20, 40, 128])
def test_a_longer_minimum_gets_more_words(min_length):
    password = make_temporary_password(min_length)
    assert len(password) >= min_length
    assert password.split("-")[-1].isdigit()


def test_they_pass_the_default_password_rules():
    settings = SecuritySettings(argon2_time_cost=1, argon2_memory_kib=8, argon2_parallelism=1)
    rules = passwords.rules_for(settings)
    ph = passwords.hasher(settings)
    for _ in range(20):
        assert (
            passwords.problems_with(make_temporary_password(rules.min_length), rules, ph=ph) == []
        )


def test_the_word_list_is_easy_to_say_and_spell():
    assert len(WORDS) == len(set(WORDS)) >= 190
    assert all(re.fullmatch(r"[a-z]{3,6}", word) for word in WORDS)
    # A few homophones that must never be read aloud to a child.
    assert not {"bear", "bare", "sea", "see", "rain", "pear", "pair", "night", "son", "sun"} & set(
        WORDS
    )
