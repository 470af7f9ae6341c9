"""``esafety filter requests|changes`` and ``esafety filter policy create|list|show|remove``.

Changes to the filter made here go into the filter change log with the reason given
(002 §7.3). Deciding a request names the person deciding (``--by USERNAME``): the command
line has the server's authority, but an approval is a person's decision, checked against
the school's approver setting like one made on the web page.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety.audit import SYSTEM, Actor
from esafety.errors import InvalidInput, NotFound

__all__ = ["register"]

console = Console()

requests_app = typer.Typer(help="Unblock requests: list, approve, refuse.", no_args_is_help=True)

SchoolOption = Annotated[str, typer.Option("--school", help="The school (slug).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def register(filter_app: typer.Typer, policy_app: typer.Typer) -> None:
    filter_app.add_typer(requests_app, name="requests")
    filter_app.command("changes")(filter_changes)
    policy_app.command("create")(policy_create)
    policy_app.command("list")(policy_list)
    policy_app.command("show")(policy_show)
    policy_app.command("remove")(policy_remove)


@contextmanager
def _session(school: str | None, *, by: str | None = None) -> Iterator[Session]:
    """A session for the school, acting as the server or as the person ``by`` names."""
    from esafety.cli import installation
    from esafety.directory.model import Person
    from esafety.directory.service import school_by_slug

    inst = installation()
    school_id = None
    if school is not None:
        with inst.db.session(SYSTEM) as session:
            school_id = school_by_slug(session, school).id
    actor = SYSTEM
    if by is not None:
        with inst.db.session(SYSTEM, school_id=school_id) as session:
            person = session.scalars(select(Person).where(Person.username == by.strip())).first()
            if person is None:
                raise NotFound(f"--by {by!r}: no person of this school has that username")
            actor = Actor(
                name=f"{person.username} (command line)",
                person_id=person.id,
                school_id=school_id,
                roles=frozenset(r.value for r in person.role_ids),
            )
    with inst.db.session(actor, school_id=school_id) as session:
        yield session


def _date(option: str, text: str | None, *, end: bool = False) -> datetime | None:
    if text is None:
        return None
    cleaned = text.strip()
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise InvalidInput(
            f"{option} {text!r} is not a date: write it as 2025-03-12 or 2025-03-12T12:30"
        ) from None
    if end and len(cleaned) == 10:
        moment += timedelta(days=1)
    return moment if moment.tzinfo is not None else moment.astimezone()


# -- unblock requests ---------------------------------------------------------------------


def _request_dict(row: object) -> dict[str, object]:
    from esafety.filtering.requests_model import UnblockRequest

    if not isinstance(row, UnblockRequest):
        return {}
    return {
        "id": row.id,
        "site": row.site,
        "target": row.target,
        "state": row.state.value,
        "groups": [g.get("label") for g in row.groups],
        "starts_at": row.starts_at.isoformat(),
        "ends_at": row.ends_at.isoformat(),
        "reason": row.reason,
        "requested_by": row.requested_by,
        "decided_by": row.decided_by,
        "risk_assessment": row.risk_assessment,
        "decision_note": row.decision_note,
    }


@requests_app.command("list")
def requests_list(
    school: SchoolOption,
    state: Annotated[
        str | None, typer.Option("--state", help="Only requested, approved, active...")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The school's unblock requests, newest first."""
    from esafety.filtering import requests

    with _session(school) as session:
        rows = [_request_dict(r) for r in requests.request_lists(session, recent=500).recent]
    if state is not None:
        rows = [r for r in rows if r["state"] == state.strip().lower()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(
        "#", "Site", "For", "From", "To", "State", "Asked by", title=f"{len(rows)} requests"
    )
    for row in rows:
        table.add_row(
            str(row["id"]),
            str(row["target"]),
            ", ".join(str(g) for g in row["groups"]),  # type: ignore[attr-defined]
            str(row["starts_at"])[:16],
            str(row["ends_at"])[:16],
            str(row["state"]),
            str(row["requested_by"]),
        )
    console.print(table)


By = Annotated[
    str, typer.Option("--by", help="Username of the person deciding (the school's approver).")
]
Risk = Annotated[str, typer.Option("--risk", help="The risk assessment, in full sentences.")]


@requests_app.command("approve")
def requests_approve(
    request_id: Annotated[int, typer.Argument(help="The request's number.")],
    school: SchoolOption,
    by: By,
    risk: Risk,
    note: Annotated[str, typer.Option("--note", help="A note for the requester.")] = "",
) -> None:
    """Approve a request: the exception warns, starts and lapses on time."""
    from esafety.config import load_settings
    from esafety.filtering import requests

    with _session(school, by=by) as session:
        settings = load_settings()  # a warning due at once goes by e-mail too
        row = requests.approve(session, request_id, risk, note, settings=settings)
        shown = f"Approved #{row.id}: {row.target} for {', '.join(g['label'] for g in row.groups)}."
    console.print(shown, markup=False, highlight=False)


@requests_app.command("refuse")
def requests_refuse(
    request_id: Annotated[int, typer.Argument(help="The request's number.")],
    school: SchoolOption,
    by: By,
    risk: Risk,
    reason: Annotated[str, typer.Option("--reason", help="Why, for the requester.")],
) -> None:
    """Refuse a request, with the risk assessment and a reason."""
    from esafety.filtering import requests

    with _session(school, by=by) as session:
        row = requests.refuse(session, request_id, risk, reason)
        shown = f"Refused #{row.id} ({row.target})."
    console.print(shown, markup=False, highlight=False)


@requests_app.command("revoke")
def requests_revoke(
    request_id: Annotated[int, typer.Argument(help="The request's number.")],
    school: SchoolOption,
    by: By,
    reason: Annotated[str, typer.Option("--reason", help="Why it ends early.")],
) -> None:
    """End an approved exception now."""
    from esafety.filtering import requests

    with _session(school, by=by) as session:
        row = requests.revoke(session, request_id, reason)
        shown = f"Revoked #{row.id} ({row.target}); the filter is back to normal."
    console.print(shown, markup=False, highlight=False)


# -- the change log -----------------------------------------------------------------------


def filter_changes(
    school: Annotated[
        str | None, typer.Option("--school", help="The school (slug); omit for shared lists.")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="From this date (ISO).")] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Up to this date (inclusive).")
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option("--kind", help="list, policy, assignment, entry, network, exception..."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.")] = 500,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """The filter change log: who changed what, when and why (002 §7.3)."""
    from esafety.filtering.changes import change_log

    with _session(school) as session:
        changes = change_log(
            session,
            since=_date("--since", since),
            until=_date("--until", until, end=True),
            kinds=kind or (),
            limit=limit,
        )
    if as_json:
        for change in changes:
            print(json.dumps(change.as_dict()))
        return
    table = Table("When (UTC)", "Who", "What", "Why", title=f"{len(changes)} changes")
    for change in changes:
        table.add_row(change.at.strftime("%Y-%m-%d %H:%M"), change.who, change.what, change.why)
    console.print(table)


# -- the school's own policies ------------------------------------------------------------


def policy_create(
    policy_id: Annotated[str, typer.Argument(help="Its id, such as year3-4.")],
    school: SchoolOption,
    based_on: Annotated[str, typer.Option("--based-on", help="eyfs, ks1, ks2, staff or guests.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (for the change log).")],
    name: Annotated[str | None, typer.Option("--name", help="What people call it.")] = None,
    block: Annotated[
        list[str] | None, typer.Option("--block", help="Also block this category (repeat).")
    ] = None,
    allow: Annotated[
        list[str] | None, typer.Option("--allow", help="Allow this category (repeat).")
    ] = None,
    safe_search: Annotated[
        str | None, typer.Option("--safe-search", help="on, off or child_only.")
    ] = None,
    youtube: Annotated[
        str | None, typer.Option("--youtube", help="strict, moderate or off.")
    ] = None,
    bypass: Annotated[
        bool | None,
        typer.Option("--block-bypass/--allow-bypass", help="Block encrypted DNS and relays."),
    ] = None,
    default: Annotated[
        str | None, typer.Option("--default", help="allow, or block (a walled garden).")
    ] = None,
    times: Annotated[
        list[str] | None,
        typer.Option("--time", help="e.g. 'allow games 12:00-13:00 mon-fri' (repeat)."),
    ] = None,
    replace_existing: Annotated[
        bool, typer.Option("--replace", help="Change the policy if it exists.")
    ] = False,
) -> None:
    """Make one of the school's own policies from a built-in one."""
    from esafety.filtering import custom_policies

    with _session(school) as session:
        row = custom_policies.create_policy(
            session,
            policy_id,
            based_on=based_on,
            reason=reason,
            name=name,
            block=block or (),
            allow=allow or (),
            safe_search=safe_search,
            youtube=youtube,
            block_bypass=bypass,
            default=default,
            times=times or (),
            replace_existing=replace_existing,
        )
        shown = f"Policy {row.policy_id} ({row.name}) is ready: assign it with "
        shown += f"'esafety filter policy assign {row.policy_id} --school {school} --year ...'."
    console.print(shown, markup=False, highlight=False)


def policy_list(
    school: Annotated[
        str | None, typer.Option("--school", help="The school (slug): its own policies too.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The built-in policies and the school's own."""
    from esafety.filtering import custom_policies

    with _session(school) as session:
        views = [v.as_dict() for v in custom_policies.list_policies(session)]
    if as_json:
        print(json.dumps(views, indent=2))
        return
    table = Table("Id", "Name", "Based on", "Blocks", "Safe search", title=f"{len(views)} policies")
    for view in views:
        table.add_row(
            str(view["id"]),
            str(view["name"]),
            str(view["based_on"] or "(built in)"),
            f"{len(view['blocked'])} categories",
            str(view["safe_search"]),
        )
    console.print(table)


def policy_show(
    policy_id: Annotated[str, typer.Argument(help="The policy's id.")],
    school: Annotated[str | None, typer.Option("--school", help="The school (slug).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Everything one policy does."""
    from esafety.filtering import custom_policies

    with _session(school) as session:
        view = custom_policies.get_policy(session, policy_id).as_dict()
    if as_json:
        print(json.dumps(view, indent=2))
        return
    for key, value in view.items():
        shown = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
        console.print(f"{key.replace('_', ' ')}: {shown or '-'}", markup=False, highlight=False)


def policy_remove(
    policy_id: Annotated[str, typer.Argument(help="The policy's id.")],
    school: SchoolOption,
    reason: Annotated[str, typer.Option("--reason", help="Why (for the change log).")],
) -> None:
    """Remove one of the school's own policies (not while it is assigned)."""
    from esafety.filtering import custom_policies

    with _session(school) as session:
        custom_policies.remove_policy(session, policy_id, reason)
    console.print(f"Removed policy {policy_id}.", markup=False, highlight=False)
