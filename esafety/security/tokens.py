"""Personal API tokens for integrations, sent as ``Authorization: Bearer esf_…``.

Made only on the server's command line or by their owner after a two-step sign-in; stored
as SHA-256 (a token is random and long, so a fast hash is enough); revocable. Creating,
using and revoking one are audited (using: the ``last_used_at`` change, by the owner, from
the caller's address).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from esafety.audit import Actor
from esafety.db import utcnow
from esafety.directory.model import Person, School
from esafety.errors import AuthenticationFailed, InvalidInput, NotFound
from esafety.security.accounts import Identity
from esafety.security.model import Account, ApiToken

if TYPE_CHECKING:
    from esafety.installation import Installation

__all__ = [
    "TOKEN_PREFIX",
    "TokenInfo",
    "authenticate_token",
    "create_token",
    "list_tokens",
    "revoke_token",
    "revoke_tokens_named",
]

TOKEN_PREFIX = "esf_"  # noqa: S105 - the visible prefix of every token
_NAME_MAX = 100


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _info(token: ApiToken) -> TokenInfo:
    return TokenInfo(token.id, token.name, token.created_at, token.last_used_at, token.revoked_at)


def _clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise InvalidInput("give the token a name that says what uses it, e.g. 'timetable sync'")
    if len(name) > _NAME_MAX:
        raise InvalidInput(f"the token's name has {len(name)} characters; use at most {_NAME_MAX}")
    return name


def create_token(
    inst: Installation, person_id: int, name: str, *, actor: Actor
) -> tuple[str, TokenInfo]:
    """A new token for ``person_id``; the token itself is returned now and never again."""
    label = _clean_name(name)
    with inst.db.session(actor) as session:
        person = session.get(Person, person_id)
        if person is None:
            raise NotFound(f"no person with id {person_id}")
        if person.is_leaver:
            raise InvalidInput(f"{person.username} has left the school; they cannot have a token")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = ApiToken(
            school_id=person.school_id, person_id=person.id, name=label, token_hash=_hash(token)
        )
        session.add(row)
        session.flush()
        return token, _info(row)


def list_tokens(inst: Installation, person_id: int, *, actor: Actor) -> list[TokenInfo]:
    with inst.db.session(actor) as session:
        rows = session.scalars(
            select(ApiToken)
            .where(ApiToken.person_id == person_id)
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        ).all()
        return [_info(row) for row in rows]


def revoke_token(
    inst: Installation,
    token_id: int,
    *,
    actor: Actor,
    owner_id: int | None = None,
    now: datetime | None = None,
) -> TokenInfo:
    """Revoke one token; with ``owner_id``, only if it is theirs (the account page)."""
    with inst.db.session(actor) as session:
        row = session.get(ApiToken, token_id)
        if row is None or (owner_id is not None and row.person_id != owner_id):
            raise NotFound(f"no API token with id {token_id} among yours")
        if row.revoked_at is None:
            row.revoked_at = now or utcnow()
        return _info(row)


def revoke_tokens_named(
    inst: Installation, person_id: int, name: str, *, actor: Actor
) -> list[TokenInfo]:
    """Revoke the person's active tokens called ``name`` (the command line's way)."""
    label = _clean_name(name)
    with inst.db.session(actor) as session:
        rows = session.scalars(
            select(ApiToken).where(
                ApiToken.person_id == person_id,
                ApiToken.name == label,
                ApiToken.revoked_at.is_(None),
            )
        ).all()
        if not rows:
            raise NotFound(f"no active API token named {label!r} for this person")
        now = utcnow()
        for row in rows:
            row.revoked_at = now
        return [_info(row) for row in rows]


def authenticate_token(
    inst: Installation, bearer: str, *, address: str | None, now: datetime | None = None
) -> Identity:
    """The owner of a valid bearer token; 401 (AuthenticationFailed) otherwise."""
    now = now or utcnow()
    refused = AuthenticationFailed(
        "this API token is unknown or was revoked; create a new one with "
        "`esafety users token create USERNAME --name LABEL`"
    )
    if not bearer.startswith(TOKEN_PREFIX) or len(bearer) > 200:
        raise refused
    with inst.db.session(Actor.system("api", school_id=None)) as session:
        row = session.scalars(select(ApiToken).where(ApiToken.token_hash == _hash(bearer))).first()
        if row is None or row.revoked_at is not None:
            raise refused
        person = session.get(Person, row.person_id)
        account = session.get(Account, row.person_id)
        school = session.get(School, row.school_id)
        if person is None or school is None or person.is_leaver or (account and account.disabled):
            raise refused
        actor_name = f"{person.username} (token {row.name!r})"
        session.info["actor"] = Actor(
            name=actor_name,
            person_id=person.id,
            school_id=person.school_id,
            roles=frozenset(str(r) for r in person.role_ids),
            address=address,
        )
        row.last_used_at = now  # the audited update is the record of this use
        return Identity(
            person_id=person.id,
            username=person.username,
            display_name=person.display_name,
            school_id=school.id,
            school_slug=school.slug,
            school_name=school.name,
            roles=person.role_ids,
            via="token",
            actor_name=actor_name,
        )
