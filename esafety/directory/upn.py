"""Unique pupil numbers (DfE), a pure module.

A UPN is 13 characters: a check letter, the local authority number (3 digits), the
establishment number (4), the last two digits of the year of issue, and a 3-digit
serial; a temporary UPN ends in a letter instead of the last digit. The check letter is
the sum of characters 2-13 weighted 2-13, modulo 23, written with the alphabet that
leaves out I, O and S (DfE, "Unique pupil numbers", and the school census check 1510).
"""

from __future__ import annotations

from esafety.errors import InvalidInput

__all__ = ["check_letter", "make_upn", "normalise_upn"]

#: Values 0-22 as letters; I, O and S are never used (they look like 1, 0 and 5).
LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"


def check_letter(body: str) -> str:
    """The check letter for the 12 characters that follow it."""
    if (
        len(body) != 12
        or not body[:11].isdigit()
        or not (body[11].isdigit() or body[11] in LETTERS)
    ):
        raise InvalidInput(
            f"UPN body {body!r}: expected 11 digits then a digit or a letter other than I, O, S"
        )
    total = 0
    for weight, char in enumerate(body, start=2):
        total += weight * (int(char) if char.isdigit() else LETTERS.index(char))
    return LETTERS[total % 23]


def normalise_upn(text: str) -> str:
    """The UPN in capitals without spaces, or InvalidInput saying what is wrong."""
    upn = text.strip().replace(" ", "").upper()
    shown = text.strip()
    if len(upn) != 13:
        raise InvalidInput(
            f"UPN {shown!r} has {len(upn)} characters: a UPN has 13 (a letter, 11 digits, "
            "then a digit or, for a temporary UPN, a letter)"
        )
    first, body = upn[0], upn[1:]
    if first not in LETTERS:
        raise InvalidInput(
            f"UPN {shown!r} must start with a check letter (A-Z without I, O, S), not {first!r}"
        )
    if not body[:11].isdigit():
        raise InvalidInput(f"UPN {shown!r}: characters 2 to 12 must be digits")
    if not (body[11].isdigit() or body[11] in LETTERS):
        raise InvalidInput(
            f"UPN {shown!r}: the last character must be a digit or a letter other than I, O, S"
        )
    expected = check_letter(body)
    if first != expected:
        raise InvalidInput(
            f"UPN {shown!r} has the wrong check letter {first!r} (expected {expected!r} for "
            "these digits): check the number was copied correctly"
        )
    return upn


def make_upn(la: int, establishment: int, year: int, serial: int) -> str:
    """A permanent UPN from its parts (used by the demo school and tests)."""
    if not (0 <= la <= 999 and 0 <= establishment <= 9999 and 0 <= serial <= 999):
        raise InvalidInput("UPN parts out of range: LA 0-999, establishment 0-9999, serial 0-999")
    body = f"{la:03d}{establishment:04d}{year % 100:02d}{serial:03d}"
    return check_letter(body) + body
