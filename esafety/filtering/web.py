"""The filter's JSON API: sign-in events from a proxy, device agent or MDM (issue 4 §6)."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from esafety.filtering import asking
from esafety.security.roles import Permission
from esafety.web.deps import Caller, SchoolSession, require

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/filtering", tags=["filtering"])


class SignIn(BaseModel):
    client: str = Field(max_length=64, description="The device's IP address.")
    username: str = Field(max_length=120)
    source: str = Field(default="api", description="api, radius, proxy or mdm.")
    ttl: int = Field(default=3600, description="Seconds the sign-in lasts (at most a day).")


class SignedIn(BaseModel):
    id: int
    client: str
    person_id: int
    source: str
    expires_at: datetime


@router.post("/sign-ins", status_code=201)
def record_sign_in(
    body: SignIn,
    caller: Caller = Depends(require(Permission.RECORD_SIGN_INS)),
    session: Session = SchoolSession,
) -> SignedIn:
    row = asking.record_sign_in(
        session, body.client, body.username, body.source, timedelta(seconds=body.ttl)
    )
    return SignedIn(
        id=row.id,
        client=row.client,
        person_id=row.person_id,
        source=row.source.value,
        expires_at=row.expires_at,
    )
