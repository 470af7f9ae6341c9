"""The JSON API of unblock requests: ask, list, approve, refuse, revoke (issue 4 §9).

Times without a zone are the school's local time; answers give them in UTC. Groups are
named as on the form (``group:12``, ``year:year5``, ``key_stage:ks2``, ``role:teacher``)
or as people write them (``Oak``, ``Year 5``, ``KS2``).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from esafety.filtering import requests
from esafety.filtering.engine_cache import engines_for
from esafety.filtering.requests_model import UnblockRequest
from esafety.security.roles import Permission
from esafety.web.deps import Caller, SchoolSession, installation, require

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/filtering/unblock-requests", tags=["filtering"])


class NewUnblockRequest(BaseModel):
    site: str = Field(max_length=2000, description="A host (and its subdomains) or an address.")
    reason: str = Field(max_length=2000, description="The educational reason, in sentences.")
    groups: list[str] = Field(max_length=50, description="Classes, years, key stages, roles.")
    starts_at: datetime = Field(description="Without a zone: the school's local time.")
    ends_at: datetime


class Decision(BaseModel):
    risk_assessment: str = Field(default="", max_length=4000, description="Required.")
    note: str = Field(default="", max_length=2000, description="Required to refuse.")


class Ending(BaseModel):
    reason: str = Field(max_length=2000)


class Group(BaseModel):
    kind: str
    target: str
    label: str


class UnblockRequestOut(BaseModel):
    id: int
    site: str
    target: str
    reason: str
    groups: list[Group]
    starts_at: datetime
    ends_at: datetime
    state: str
    requested_by: str
    requested_at: datetime
    risk_assessment: str | None
    decision_note: str | None
    decided_by: str | None
    decided_at: datetime | None
    warned_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None


class UnblockRequestList(BaseModel):
    mine: list[UnblockRequestOut]
    waiting_for_me: list[UnblockRequestOut]
    current: list[UnblockRequestOut]


def _out(row: UnblockRequest) -> UnblockRequestOut:
    return UnblockRequestOut(
        id=row.id,
        site=row.site,
        target=row.target,
        reason=row.reason,
        groups=[Group(**g) for g in row.groups],
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        state=row.state.value,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        risk_assessment=row.risk_assessment,
        decision_note=row.decision_note,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        warned_at=row.warned_at,
        ended_at=row.ended_at,
        end_reason=row.end_reason,
    )


@router.post("", status_code=201)
def ask(
    request: Request,
    body: NewUnblockRequest,
    caller: Caller = Depends(require(Permission.REQUEST_UNBLOCK)),
    session: Session = SchoolSession,
) -> UnblockRequestOut:
    # Before this route's session reads anything (esafety.filtering.reports_web.report).
    engine = engines_for(installation(request)).engine(caller.school_id)
    row = requests.request_unblock(
        session, body.site, body.reason, body.groups, body.starts_at, body.ends_at, engine=engine
    )
    return _out(row)


@router.get("")
def list_requests(
    caller: Caller = Depends(require(Permission.VIEW_UNBLOCK_REQUESTS)),
    session: Session = SchoolSession,
) -> UnblockRequestList:
    lists = requests.request_lists(session)
    return UnblockRequestList(
        mine=[_out(r) for r in lists.mine],
        waiting_for_me=[_out(r) for r in lists.waiting_for_me],
        current=[_out(r) for r in lists.current],
    )


@router.get("/{request_id}")
def get_request(
    request_id: int,
    caller: Caller = Depends(require(Permission.VIEW_UNBLOCK_REQUESTS)),
    session: Session = SchoolSession,
) -> UnblockRequestOut:
    return _out(requests.get_request(session, request_id))


@router.post("/{request_id}/approve")
def approve(
    request: Request,
    request_id: int,
    body: Decision,
    caller: Caller = Depends(require(Permission.APPROVE_UNBLOCK)),
    session: Session = SchoolSession,
) -> UnblockRequestOut:
    settings = installation(request).settings  # a warning due at once goes by e-mail too
    return _out(
        requests.approve(session, request_id, body.risk_assessment, body.note, settings=settings)
    )


@router.post("/{request_id}/refuse")
def refuse(
    request_id: int,
    body: Decision,
    caller: Caller = Depends(require(Permission.APPROVE_UNBLOCK)),
    session: Session = SchoolSession,
) -> UnblockRequestOut:
    return _out(requests.refuse(session, request_id, body.risk_assessment, body.note))


@router.post("/{request_id}/revoke")
def revoke(
    request_id: int,
    body: Ending,
    caller: Caller = Depends(require(Permission.REQUEST_UNBLOCK)),
    session: Session = SchoolSession,
) -> UnblockRequestOut:
    return _out(requests.revoke(session, request_id, body.reason))
