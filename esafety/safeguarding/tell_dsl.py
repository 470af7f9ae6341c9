"""A grave concern reaches its readers by e-mail at once (issue 5 §4; 003 §10: the DSL is
told straight away).

:class:`TellDsl` listens for :class:`~esafety.safeguarding.concerns.ConcernRecorded`
(published after the commit, also when a change of kind makes a concern grave) and, for a
grave kind, queues one e-mail to each person who reads that concern by their role — the
DSL and deputies; for an allegation about a member of staff the headteacher, or the chair
of governors alone when it is about the headteacher. Who that is comes from the one set of
reading rules (:func:`esafety.safeguarding.access.access`), so the person a concern is
about is never told of it. People without an e-mail address, leavers and disabled
accounts are left out.

The e-mail says that a concern of that kind arrived, when, at which school, and links to
it. It never carries what was seen or said, the place, or anyone's name: those are read
in esafety, behind two-step sign-in, where the read is audited (STANDARDS R5).

``esafety serve`` starts it; sending goes through :mod:`esafety.mail` (queued in the
database, sent by a thread of its own, retried by the scheduler).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety.audit import Actor
from esafety.directory.model import PersonRole, School
from esafety.errors import EsafetyError
from esafety.events import subscribe
from esafety.installation import Installation
from esafety.mail import Courier, Mail, addresses_of, link, mail_is_on, queue_mail
from esafety.safeguarding.access import Grounds, Reader, access, all_reader_roles
from esafety.safeguarding.catalogue import kind as kind_info
from esafety.safeguarding.concerns import ConcernRecorded
from esafety.safeguarding.model import Concern, EntryKind
from esafety.safeguarding.reading import facts_of, find_concern, online_safety_kinds
from esafety.security.roles import Role

__all__ = ["Recipient", "TellDsl", "grave_concern_mail", "queue_grave_concern_mail", "recipients"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipient:
    person_id: int
    email: str
    #: The role they read the concern as (named in the e-mail: why they receive it).
    role: Role


def recipients(session: Session, concern: Concern) -> list[Recipient]:
    """Everyone at the concern's school who reads it by role and has an e-mail address."""
    wanted = all_reader_roles()
    roles: dict[int, set[str]] = {}
    for person_id, role in session.execute(
        select(PersonRole.person_id, PersonRole.role).where(PersonRole.role.in_(wanted))
    ):
        roles.setdefault(person_id, set()).add(str(role))
    if not roles:
        return []
    addresses = addresses_of(session, roles)
    facts = facts_of(session, concern)
    kinds = online_safety_kinds(session)
    found = []
    for person_id, email in sorted(addresses.items()):
        granted = access(
            Reader(person_id, frozenset(roles[person_id])), facts, online_safety_kinds=kinds
        )
        if granted.grounds is Grounds.ROLE and granted.role is not None:
            found.append(Recipient(person_id, email, granted.role))
    return found


def grave_concern_mail(concern: Concern, school: School, recipient: Recipient, url: str) -> Mail:
    """The e-mail for one reader: the kind, when, where it was recorded, the link; no more."""
    info = kind_info(concern.current_kind)
    zone = ZoneInfo(school.timezone or "Europe/London")
    changed = [e for e in concern.entries if e.kind is EntryKind.KIND_CHANGED]
    if changed and concern.current_kind != concern.kind:
        when = _when(changed[-1].made_at, zone)
        opening = (
            f"A concern at {school.name} is now of kind “{info.title}” "
            f"(its kind was changed at {when})."
        )
        subject = f"A concern at {school.name} is now of kind “{info.title}”"
    else:
        when = _when(concern.recorded_at, zone)
        opening = f"A concern of kind “{info.title}” was recorded at {when} at {school.name}."
        subject = f"A concern of kind “{info.title}” was recorded at {school.name}"
    lines = [
        opening,
        "",
        "It is of a grave kind: read it and act on it now.",
        "",
        f"Open it in esafety (you will be asked to sign in): {url}",
        "",
        "This e-mail never carries what was seen or said, nor anyone's name: read them in "
        "esafety, where your read is recorded.",
        f"You receive it because you read concerns of this kind at {school.name} as "
        f"{recipient.role.label}.",
    ]
    page = (
        f"<p>{html.escape(opening)}</p>"
        "<p><strong>It is of a grave kind: read it and act on it now.</strong></p>"
        f'<p><a href="{html.escape(url, quote=True)}">Open the concern in esafety</a> '
        "(you will be asked to sign in).</p>"
        "<p>This e-mail never carries what was seen or said, nor anyone's name: read them in "
        "esafety, where your read is recorded.<br>"
        f"You receive it because you read concerns of this kind at {html.escape(school.name)} "
        f"as {html.escape(recipient.role.label)}.</p>"
    )
    return Mail(recipient.email, subject, "\n".join(lines) + "\n", page)


def _when(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%H:%M} on {local:%A} {local.day} {local:%B %Y}"


def queue_grave_concern_mail(inst: Installation, school_id: int, concern_id: int) -> list[int]:
    """Queue the e-mails for one grave concern (once per reader and kind); the job ids."""
    actor = Actor.system("tell the DSL", school_id=school_id)
    jobs: list[int] = []
    with inst.db.session(actor, school_id=school_id) as session:
        concern = find_concern(session, concern_id)
        info = kind_info(concern.current_kind)
        if not info.grave:
            return []
        school = session.get(School, school_id)
        if school is None:
            return []
        url = link(inst.settings, f"/safeguarding/concerns/{concern.id}")
        for recipient in recipients(session, concern):
            if recipient.person_id == concern.raised_by_id and concern.current_kind == concern.kind:
                continue  # they recorded it: they know
            row = queue_mail(
                session,
                inst.settings,
                grave_concern_mail(concern, school, recipient, url),
                key=f"grave-concern:{concern.id}:{info.id.value}:{recipient.person_id}",
                school_id=school_id,
            )
            if row is not None and row.job_id is not None and row.sent_at is None:
                jobs.append(row.job_id)
    return jobs


class TellDsl:
    """The subscriber ``esafety serve`` runs: grave concerns by e-mail, sent at once."""

    def __init__(self, inst: Installation) -> None:
        self.inst = inst
        self.courier = Courier(inst)
        self._stop: Callable[[], None] | None = None

    def __call__(self, event: ConcernRecorded) -> None:
        if not event.grave or not mail_is_on(self.inst.settings):
            return
        try:
            jobs = queue_grave_concern_mail(self.inst, event.school_id, event.concern_id)
        except EsafetyError:
            # The concern is committed and on the desk; the e-mail alone is missing: say so.
            log.exception("could not queue the e-mail for grave concern #%s", event.concern_id)
            return
        self.courier.send_soon(jobs)

    def start(self) -> None:
        if self._stop is None:
            self.courier.start()
            self._stop = subscribe(ConcernRecorded, self)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None
        self.courier.stop(timeout=5.0)
