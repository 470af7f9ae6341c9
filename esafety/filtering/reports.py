"""Reports of sites that should be blocked or are wrongly blocked (issue 4 §9).

Reports come from the block page's two buttons (no sign-in there: a signed token from the
page stands in for the session, see :func:`report_token`) and from a staff page; both keep
the filter's decision at the time. The technician, the online safety lead, the DSL and
deputies read them, open ones first, and resolve each with a note (004 "Managing
filtering": reported "to the Online Safety Coordinator and/or the ICT Technician";
003 §7.3.1 "over blocking"). A new report is published on the event bus
(:class:`SiteReported`), after its commit, so other parts can alert.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from esafety.db import utcnow
from esafety.directory.service import actor_of, require
from esafety.errors import InvalidInput, NotFound, PermissionDenied
from esafety.events import Event, publish_on_commit
from esafety.filtering.decision import Decision
from esafety.filtering.hostnames import normalise_host
from esafety.filtering.reports_model import ReportKind, ReportSource, ReportStatus, SiteReport
from esafety.filtering.urls import parse_url
from esafety.security.roles import Permission

__all__ = [
    "ILLEGAL_RULE",
    "TOKEN_SECONDS",
    "RateLimiter",
    "SiteReported",
    "check_report_token",
    "list_reports",
    "open_count",
    "record_report",
    "report_kind",
    "report_site",
    "report_token",
    "resolve_report",
    "site_of",
]

#: How long a block page's report buttons work (the page says to reload after that).
TOKEN_SECONDS = 30 * 60
#: What a report keeps as the rule when an illegal-content list decided: never the entry.
ILLEGAL_RULE = "a list the school always blocks"
#: The same device reporting the same site the same way again within this time is one report.
DUPLICATE_WINDOW = timedelta(minutes=10)
MAX_COMMENT = 2000
MAX_OUTCOME = 2000


@dataclass(frozen=True)
class SiteReported(Event):
    """Someone reported a site; alerting subscribes to this (``filtering.site.reported``)."""

    subject: ClassVar[str] = "filtering.site.reported"

    report_id: int
    school_id: int
    site: str
    kind: str
    source: str
    reporter_id: int | None
    decision_action: str
    categories: tuple[str, ...] = ()


# -- the block page's token ---------------------------------------------------------------


def _mac(secret: bytes, site: str, client: str, issued: int) -> str:
    # A key of its own, derived from the installation's secret, so this token can never
    # be mistaken for a session or CSRF token signed with the same secret.
    key = hmac.new(secret, b"esafety site report token", hashlib.sha256).digest()
    message = f"{site}\n{client}\n{issued}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def report_token(secret: bytes, site: str, client: str, issued: int) -> str:
    """The token the block page puts in its report form: HMAC over site, device and time."""
    return _mac(secret, site, client, issued)


def check_report_token(
    secret: bytes, site: str, client: str, issued: str, token: str, *, now: float | None = None
) -> None:
    """Raise :class:`PermissionDenied` unless ``token`` was made for this site and device
    within :data:`TOKEN_SECONDS`."""
    moment = time.time() if now is None else now
    try:
        issued_at = int(issued)
    except ValueError:
        issued_at = -1
    expected = _mac(secret, site, client, issued_at)
    if issued_at < 0 or not hmac.compare_digest(expected, token.strip()):
        raise PermissionDenied(
            "this report form did not come from this page (its security token is wrong): "
            "reload the page and press the button again"
        )
    if not -60 <= moment - issued_at <= TOKEN_SECONDS:
        raise PermissionDenied(
            f"this page is more than {TOKEN_SECONDS // 60} minutes old, so its report "
            "buttons have expired: reload the page and press the button again"
        )


class RateLimiter:
    """At most ``limit`` events per key in any ``window`` seconds (kept in memory).

    Per process: with several web workers each allows ``limit``; it is a brake on a
    device sending reports in a loop, not an accounting.
    """

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Count one event for ``key`` if it is allowed; False (and not counted) if not."""
        now = self.clock()
        with self._lock:
            times = self._seen.get(key)
            if times is None:
                if len(self._seen) >= self.max_keys:
                    self._forget_old(now)
                times = self._seen[key] = deque()
            while times and now - times[0] >= self.window:
                times.popleft()
            if len(times) >= self.limit:
                return False
            times.append(now)
            return True

    def _forget_old(self, now: float) -> None:
        for key in [k for k, t in self._seen.items() if not t or now - t[-1] >= self.window]:
            del self._seen[key]
        if len(self._seen) >= self.max_keys:  # a flood of addresses: start again
            self._seen.clear()


# -- recording ----------------------------------------------------------------------------


def report_kind(text: str) -> ReportKind:
    try:
        return ReportKind(text.strip())
    except ValueError:
        raise InvalidInput(
            f"report kind {text!r}: use {ReportKind.WRONGLY_BLOCKED.value} (it should not be "
            f"blocked) or {ReportKind.SHOULD_BE_BLOCKED.value} (it should be)"
        ) from None


def site_of(text: str) -> tuple[str, str | None]:
    """A site as a person typed it: its normalised host, and the address if it had a path."""
    cleaned = text.strip()
    if not cleaned:
        raise InvalidInput("site: give a name such as example.com or a web address")
    if "/" in cleaned or "\\" in cleaned:
        parsed = parse_url(cleaned)
        return parsed.host.name, cleaned[:2000]
    return normalise_host(cleaned), None


def record_report(
    session: Session,
    *,
    site: str,
    kind: ReportKind,
    source: ReportSource,
    decision: Decision | None,
    illegal: bool = False,
    comment: str = "",
    url: str | None = None,
    reporter_id: int | None = None,
    client: str | None = None,
) -> SiteReport:
    """Store one report (the block page's path: the caller has checked its token).

    The same device or person reporting the same site the same way within
    :data:`DUPLICATE_WINDOW` gets the open report back (a comment is added to it).
    """
    school_id = session.info.get("school_id")
    if school_id is None:
        raise InvalidInput("a report belongs to a school: open the session for one school")
    text = comment.strip()
    if len(text) > MAX_COMMENT:
        raise InvalidInput(f"the comment has {len(text)} characters: use at most {MAX_COMMENT}")
    earlier = _duplicate(session, site, kind, reporter_id, client)
    if earlier is not None:
        if text and text not in earlier.comment:
            earlier.comment = f"{earlier.comment}\n{text}".strip()[:MAX_COMMENT]
            session.flush()
        return earlier
    action, categories, rule, policy = _decision_fields(decision, illegal)
    row = SiteReport(
        school_id=int(school_id),
        site=site,
        url=url[:2000] if url else None,
        kind=kind,
        source=source,
        comment=text,
        reporter_id=reporter_id,
        client=client,
        decision_action=action,
        decision_categories=categories,
        decision_rule=rule,
        decision_policy=policy,
        created_at=utcnow(),
        status=ReportStatus.OPEN,
    )
    session.add(row)
    session.flush()
    publish_on_commit(
        session,
        SiteReported(
            report_id=row.id,
            school_id=row.school_id,
            site=row.site,
            kind=row.kind.value,
            source=row.source.value,
            reporter_id=row.reporter_id,
            decision_action=row.decision_action,
            categories=row.categories,
        ),
    )
    return row


def _decision_fields(decision: Decision | None, illegal: bool) -> tuple[str, str, str, str]:
    if decision is None:
        return "unknown", "", "", ""
    if illegal:  # the entry and its list stay confidential; the category says too much
        return decision.action.value, "", ILLEGAL_RULE, decision.policy_id
    categories = ",".join(c.value for c in decision.categories)
    return decision.action.value, categories, decision.rule[:2000], decision.policy_id


def _duplicate(
    session: Session, site: str, kind: ReportKind, reporter_id: int | None, client: str | None
) -> SiteReport | None:
    query = select(SiteReport).where(
        SiteReport.site == site,
        SiteReport.kind == kind,
        SiteReport.status == ReportStatus.OPEN,
        SiteReport.created_at >= utcnow() - DUPLICATE_WINDOW,
    )
    if reporter_id is not None:
        query = query.where(SiteReport.reporter_id == reporter_id)
    elif client is not None:
        query = query.where(SiteReport.reporter_id.is_(None), SiteReport.client == client)
    else:
        return None
    return session.scalars(query.order_by(SiteReport.id.desc())).first()


def report_site(
    session: Session,
    site_text: str,
    kind: ReportKind | str,
    comment: str = "",
    *,
    decision: Decision | None = None,
    illegal: bool = False,
    client: str | None = None,
) -> SiteReport:
    """A member of staff reports a site from their own page (they are the reporter)."""
    require(session, Permission.REPORT_SITES, "report sites")
    chosen = kind if isinstance(kind, ReportKind) else report_kind(kind)
    site, url = site_of(site_text)
    actor = actor_of(session)
    return record_report(
        session,
        site=site,
        kind=chosen,
        source=ReportSource.STAFF_PAGE,
        decision=decision,
        illegal=illegal,
        comment=comment,
        url=url,
        reporter_id=actor.person_id if actor is not None else None,
        client=client,
    )


# -- reading and resolving ----------------------------------------------------------------


def list_reports(session: Session, *, open_only: bool = False) -> list[SiteReport]:
    """The school's reports: open ones first, newest first within each."""
    require(session, Permission.VIEW_SITE_REPORTS, "see reports of sites")
    query = select(SiteReport)
    if open_only:
        query = query.where(SiteReport.status == ReportStatus.OPEN)
    opened_first = case((SiteReport.status == ReportStatus.OPEN, 0), else_=1)
    return list(session.scalars(query.order_by(opened_first, SiteReport.created_at.desc())))


def resolve_report(session: Session, report_id: int, outcome: str) -> SiteReport:
    """Close a report with what was done about it."""
    require(session, Permission.RESOLVE_SITE_REPORTS, "resolve reports of sites")
    row = session.scalars(select(SiteReport).where(SiteReport.id == report_id)).first()
    if row is None:
        raise NotFound(f"no report #{report_id} in this school")
    note = outcome.strip()
    if not note:
        raise InvalidInput(
            "say what was done (for example 'added to the school's block list' or "
            "'left as it is: the site is needed for lessons'): the note is kept with the report"
        )
    if len(note) > MAX_OUTCOME:
        raise InvalidInput(f"the note has {len(note)} characters: use at most {MAX_OUTCOME}")
    if row.status is ReportStatus.RESOLVED:
        raise InvalidInput(f"report #{report_id} is already resolved")
    actor = actor_of(session)
    row.status = ReportStatus.RESOLVED
    row.resolved_at = utcnow()
    row.resolved_by_id = actor.person_id if actor is not None else None
    row.resolved_by = actor.name if actor is not None else "system"
    row.outcome = note
    session.flush()
    return row


def open_count(session: Session) -> int:
    """How many reports wait to be resolved (for a home page or a badge)."""
    found = session.scalar(
        select(func.count()).select_from(SiteReport).where(SiteReport.status == ReportStatus.OPEN)
    )
    return int(found or 0)
