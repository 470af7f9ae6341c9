"""Time-based codes: drift allowed, replay refused; recovery codes; the QR code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp

from esafety.security import totp

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
AT = datetime(2025, 1, 6, 8, 30, tzinfo=UTC)


def _code(at: datetime) -> str:
    return pyotp.TOTP(SECRET).at(at)


def test_current_and_neighbouring_codes_are_accepted():
    step = int(AT.timestamp()) // 30
    assert totp.matching_step(SECRET, _code(AT), AT, last_step=None) == step
    assert (
        totp.matching_step(SECRET, _code(AT - timedelta(seconds=30)), AT, last_step=None)
        == step - 1
    )
    assert totp.matching_step(SECRET, _code(AT - timedelta(seconds=90)), AT, last_step=None) is None


def test_a_used_step_and_older_ones_are_refused():
    step = int(AT.timestamp()) // 30
    assert totp.matching_step(SECRET, _code(AT), AT, last_step=step) is None
    earlier = _code(AT - timedelta(seconds=30))
    assert totp.matching_step(SECRET, earlier, AT, last_step=step) is None


def test_malformed_codes_are_refused():
    for code in ("", "12345", "1234567", "abcdef", "12 34 5x"):
        assert totp.matching_step(SECRET, code, AT, last_step=None) is None
    spaced = _code(AT)[:3] + " " + _code(AT)[3:]
    assert totp.matching_step(SECRET, spaced, AT, last_step=None) is not None


def test_recovery_codes_are_ten_distinct_readable_codes():
    codes = totp.new_recovery_codes()
    assert len(codes) == 10 == len(set(codes))
    for code in codes:
        assert len(code) == 14 and code.count("-") == 2
        assert not set(code) & set("01ilo")
        assert totp.looks_like_recovery_code(code)
        assert totp.hash_recovery_code(code) == totp.hash_recovery_code(
            code.upper().replace("-", " ")
        )


def test_qr_code_is_inline_svg_with_a_label():
    uri = totp.provisioning_uri(SECRET, "j.smith", "Oakfield <Primary>")
    assert uri.startswith("otpauth://totp/")
    svg = totp.qr_svg(uri, label='Two-step for "j.smith"')
    assert svg.startswith(
        '<svg class="qr" role="img" aria-label="Two-step for &quot;j.smith&quot;"'
    )
    assert "<script" not in svg and "style=" not in svg
