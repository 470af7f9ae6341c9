"""Two-step sign-in: time-based codes (TOTP, RFC 6238) and one-time recovery codes.

Required for every role that can read safeguarding records (000 §4.1 "two step secure
log-in"). A code is accepted once: the time step it belongs to is remembered
(``Account.totp_last_step``) and no code of that step or an earlier one is taken again.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

import pyotp
import qrcode
import qrcode.image.svg

__all__ = [
    "ISSUER",
    "RECOVERY_CODE_COUNT",
    "STEP_SECONDS",
    "hash_recovery_code",
    "matching_step",
    "new_recovery_codes",
    "new_secret",
    "normalise_recovery_code",
    "provisioning_uri",
    "qr_svg",
]

ISSUER = "esafety"
STEP_SECONDS = 30
RECOVERY_CODE_COUNT = 10
#: Accept the previous and next step too: phone clocks drift.
_DRIFT_STEPS = 1
_CODE = re.compile(r"^\d{6}$")
# Recovery codes avoid letters people confuse (0/O, 1/l/I).
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str, school_name: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=f"{ISSUER} {school_name}")


def qr_svg(uri: str, *, label: str) -> str:
    """The QR code as inline SVG markup (no image request, nothing for CSP to allow)."""
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, border=2)
    markup: str = image.to_string(encoding="unicode")
    safe_label = label.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return markup.replace("<svg ", f'<svg class="qr" role="img" aria-label="{safe_label}" ', 1)


def current_code(secret: str, at: datetime) -> str:
    """The code an authenticator app shows at ``at`` (for tests and the demo)."""
    return pyotp.TOTP(secret).at(at)


def matching_step(secret: str, code: str, at: datetime, *, last_step: int | None) -> int | None:
    """The time step ``code`` belongs to, if it is valid now and was not used before."""
    code = code.replace(" ", "").strip()
    if not _CODE.match(code):
        return None
    totp = pyotp.TOTP(secret)
    now_step = int(at.timestamp()) // STEP_SECONDS
    for step in range(now_step - _DRIFT_STEPS, now_step + _DRIFT_STEPS + 1):
        if last_step is not None and step <= last_step:
            continue
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_recovery_codes() -> list[str]:
    """Ten codes like ``k7fq-2mzx-p9ad``: 60 bits each, shown once, stored hashed."""
    return [
        "-".join("".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(4)) for _ in range(3))
        for _ in range(RECOVERY_CODE_COUNT)
    ]


def normalise_recovery_code(code: str) -> str:
    return re.sub(r"[^a-z0-9]", "", code.lower())


def hash_recovery_code(code: str) -> str:
    # Random, high-entropy codes: a fast hash is enough (nothing to guess from a dictionary).
    return hashlib.sha256(normalise_recovery_code(code).encode()).hexdigest()


def looks_like_recovery_code(code: str) -> bool:
    return len(normalise_recovery_code(code)) == 12
