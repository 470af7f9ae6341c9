"""From a filter alert to a concern (issue 5 "a filter block of extremist content that the
DSL turns into a concern from the alert list").

The DSL opens the record-a-concern form from an alert: the kind follows the alert's
category (:data:`KIND_OF_CATEGORY`), the pupil, the time and a factual draft of what the
filter saw are filled in, for the DSL to check and complete. Once recorded, the alert is
linked to the concern (:class:`ConcernFromAlert`) and acknowledged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety.directory.model import Person
from esafety.directory.service import require
from esafety.errors import InvalidInput, NotFound
from esafety.filtering import alerts
from esafety.filtering.alerts_model import FilterAlert
from esafety.filtering.categories import category_of, info
from esafety.safeguarding.alert_concerns_model import ConcernFromAlert
from esafety.safeguarding.kinds import IncidentKind
from esafety.safeguarding.model import Location
from esafety.safeguarding.reading import actor_name, concern_access, find_concern
from esafety.security.roles import Permission

__all__ = [
    "KIND_OF_CATEGORY",
    "AlertDraft",
    "concerns_of_alerts",
    "draft_from_alert",
    "kind_for",
    "link_alert",
]

#: The kind of concern a block in each alerting category suggests (the DSL can change it,
#: on the form or later with a recorded change of kind). Categories are those whose
#: ``alerts_dsl`` is set in esafety/filtering/data/categories.toml.
KIND_OF_CATEGORY: dict[str, IncidentKind] = {
    # Seeking extremist material is a sign of risk of radicalisation: Prevent (003 §11.7).
    "extremism": IncidentKind.RADICALISATION,
    # Hate sites: the online hate procedure (003 §11.6).
    "hate": IncidentKind.ONLINE_HATE,
    # Self-harm, suicide and eating disorders are a worry about the pupil's wellbeing, not
    # misbehaviour: the general welfare procedure (003 §10.1).
    "self_harm": IncidentKind.PUPIL_WELFARE,
    "eating_disorders": IncidentKind.PUPIL_WELFARE,
    # Misogynistic content (violence against women and girls) is a worry about the pupil's
    # views and wellbeing (KCSIE part 5 context); the DSL may judge it radicalisation.
    "vawg": IncidentKind.PUPIL_WELFARE,
    # Trying to reach pornography on school systems is misuse of technology (001 "Misuse
    # and infringements", behaviour policy); the DSL changes the kind if it shows more.
    "pornography": IncidentKind.TECHNOLOGY_MISUSE,
}
#: Any other alerting category (one added later): a worry about the pupil (003 §10.1).
DEFAULT_KIND = IncidentKind.PUPIL_WELFARE


def kind_for(categories: Iterable[str]) -> IncidentKind:
    """The kind the first mapped category suggests (the alert lists them in order)."""
    for category in categories:
        if category in KIND_OF_CATEGORY:
            return KIND_OF_CATEGORY[category]
    return DEFAULT_KIND


@dataclass(frozen=True)
class AlertDraft:
    """What the record-a-concern form is filled with for one alert."""

    alert_id: int
    kind: IncidentKind
    #: The pupil's (or adult's) username; None for an unknown device.
    username: str | None
    #: When the block happened, in school time (the form's date and time).
    happened_at: datetime
    location: Location
    location_detail: str
    narrative: str


def _category_names(alert: FilterAlert) -> list[str]:
    names = []
    for category in alert.category_ids:
        try:
            names.append(info(category_of(category)).name)
        except InvalidInput:
            names.append(category)
    return names


def _alert(session: Session, alert_id: int) -> FilterAlert:
    require(session, Permission.VIEW_FILTER_ALERTS, "record a concern from a filter alert")
    row = session.scalars(select(FilterAlert).where(FilterAlert.id == alert_id)).first()
    if row is None:
        raise NotFound(f"no filter alert #{alert_id} in this school")
    return row


def draft_from_alert(session: Session, alert_id: int, zone: ZoneInfo) -> AlertDraft:
    """The form's draft for an alert: facts only (what the filter saw), for the DSL to
    check and add to (issue 5 §1: facts and full names)."""
    alert = _alert(session, alert_id)
    person = session.get(Person, alert.person_id) if alert.person_id is not None else None
    who = person.display_name if person is not None else f"an unknown device at {alert.client}"
    at = alert.first_seen.astimezone(zone)
    names = ", ".join(_category_names(alert)) or alert.categories
    host = alert.name if alert.name and "/" not in alert.name else alert.site
    words = f"The filter blocked {host} (category: {names}) for {who} at {at:%H:%M on %A %d %B %Y}."
    if alert.count > 1:
        last = alert.last_seen.astimezone(zone)
        words += f" It was blocked {alert.count} times, the last at {last:%H:%M on %d %B}."
    return AlertDraft(
        alert_id=alert.id,
        kind=kind_for(alert.category_ids),
        username=person.username if person is not None else None,
        happened_at=at.replace(tzinfo=None),
        location=Location.IN_SCHOOL,
        location_detail=f"School network (web filter), {alert.site}",
        narrative=words,
    )


def link_alert(session: Session, alert_id: int, concern_id: int) -> ConcernFromAlert:
    """Link the alert to the concern recorded from it, and acknowledge the alert."""
    alert = _alert(session, alert_id)
    taken = session.scalars(
        select(ConcernFromAlert).where(ConcernFromAlert.alert_id == alert.id)
    ).first()
    if taken is not None:
        raise InvalidInput(
            f"filter alert #{alert.id} already became a concern (the alert list links to it): "
            "add a note to that concern instead"
        )
    concern = find_concern(session, concern_id)
    link = ConcernFromAlert(
        school_id=concern.school_id,
        alert_id=alert.id,
        concern_id=concern.id,
        recorded_by=actor_name(session),
    )
    session.add(link)
    session.flush()
    if alert.acknowledged_at is None:
        alerts.acknowledge(session, alert.id)  # the DSL looked into it: it became a concern
    return link


def concerns_of_alerts(session: Session, alert_ids: Iterable[int]) -> dict[int, int | None]:
    """Alert id → the concern recorded from it; None when the actor may not read that
    concern (its number is not shown: a concern's existence is not revealed)."""
    wanted = list(alert_ids)
    if not wanted:
        return {}
    found: dict[int, int | None] = {}
    for link in session.scalars(
        select(ConcernFromAlert).where(ConcernFromAlert.alert_id.in_(wanted))
    ):
        readable = concern_access(session, find_concern(session, link.concern_id)).can_read
        found[link.alert_id] = link.concern_id if readable else None
    return found
