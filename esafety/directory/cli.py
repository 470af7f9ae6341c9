"""Command-line commands of the directory slice (mounted by esafety.cli).

``esafety users list``, ``esafety school ...`` (schools, terms, closures) and
``esafety demo``. The command line acts on the server's own authority (``SYSTEM``).
"""

from __future__ import annotations

import json
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from esafety.audit import SYSTEM
from esafety.directory.roster import cli as roster_cli
from esafety.errors import InvalidInput

if TYPE_CHECKING:
    from esafety.installation import Installation

__all__ = ["register"]

console = Console()

school_app = typer.Typer(help="Schools and their calendars.", no_args_is_help=True)


def register(app: typer.Typer, users_app: typer.Typer) -> None:
    """Add the directory's commands to the root command and the ``users`` group."""
    roster_cli.register(app)
    users_app.command("list")(users_list)
    app.add_typer(school_app, name="school")
    from esafety import demo_cli

    demo_cli.register(app)


def _installation() -> Installation:
    from esafety.cli import installation

    inst: Installation = installation()
    return inst


def _day(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{field} {text!r} is not a date: write it as YYYY-MM-DD") from None


# -- users ----------------------------------------------------------------------------


def users_list(
    school: Annotated[str | None, typer.Option("--school", help="Only this school (slug).")] = None,
    role: Annotated[str | None, typer.Option("--role", help="Only people with this role.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
    include_leavers: Annotated[
        bool, typer.Option("--include-leavers", help="Include people who have left.")
    ] = False,
) -> None:
    """List people: username, roles, school (a JSON array with --json, for scripts)."""
    from esafety.directory import service
    from esafety.directory.model import Person, PersonRole, School
    from esafety.security.roles import Role

    inst = _installation()
    with inst.db.session(SYSTEM) as session:
        query = select(Person, School.slug).join(School, School.id == Person.school_id)
        if school is not None:
            query = query.where(Person.school_id == service.school_by_slug(session, school).id)
        if role is not None:
            try:
                wanted = Role(role.strip())
            except ValueError:
                allowed = ", ".join(r.value for r in Role)
                raise InvalidInput(f"unknown role {role!r}: use one of {allowed}") from None
            holders = select(PersonRole.person_id).where(PersonRole.role == wanted)
            query = query.where(Person.id.in_(holders))
        if not include_leavers:
            query = query.where(Person.left_on.is_(None))
        rows = session.execute(query.order_by(School.slug, Person.username))
        people: list[dict[str, Any]] = [
            {
                "username": person.username,
                "roles": sorted(r.value for r in person.role_ids),
                "school": slug,
                "id": person.id,
                "kind": person.kind.value,
                "name": person.display_name,
                "left_on": person.left_on.isoformat() if person.left_on else None,
            }
            for person, slug in rows
        ]
    if as_json:
        print(json.dumps(people, indent=2))
        return
    table = Table("Username", "Name", "Kind", "Roles", "School", title=f"{len(people)} people")
    for entry in people:
        table.add_row(
            str(entry["username"]),
            str(entry["name"]),
            str(entry["kind"]),
            ", ".join(entry["roles"]),
            str(entry["school"]),
        )
    console.print(table)


# -- schools --------------------------------------------------------------------------


@school_app.command("create")
def school_create(
    slug: Annotated[
        str, typer.Argument(help="The school's id: lowercase letters, digits, hyphens.")
    ],
    name: Annotated[str, typer.Option("--name", help="The school's name.")],
    timezone: Annotated[
        str, typer.Option("--timezone", help="IANA time zone; times without a zone are this.")
    ] = "Europe/London",
    urn: Annotated[str | None, typer.Option("--urn", help="DfE unique reference number.")] = None,
) -> None:
    """Create a school."""
    from esafety.directory import service

    inst = _installation()
    with inst.db.session(SYSTEM) as session:
        school = service.create_school(session, slug, name, timezone=timezone, urn=urn)
        shown = f"{school.name} ({school.slug}, {school.timezone})"
    console.print(f"Created school {shown}.", highlight=False)


@school_app.command("list")
def school_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List the installation's schools."""
    from esafety.directory.model import School

    inst = _installation()
    with inst.db.session(SYSTEM) as session:
        schools = [
            {"slug": s.slug, "name": s.name, "timezone": s.timezone, "urn": s.urn}
            for s in session.scalars(select(School).order_by(School.slug))
        ]
    if as_json:
        print(json.dumps(schools, indent=2))
        return
    table = Table("Slug", "Name", "Time zone", "URN", title=f"{len(schools)} schools")
    for s in schools:
        table.add_row(s["slug"], s["name"], s["timezone"], s["urn"] or "")
    console.print(table)


@school_app.command("add-term")
def school_add_term(
    slug: Annotated[str, typer.Argument(help="The school's slug.")],
    name: Annotated[str, typer.Argument(help="e.g. 'Autumn 2025'.")],
    starts: Annotated[str, typer.Argument(help="First day, YYYY-MM-DD.")],
    ends: Annotated[str, typer.Argument(help="Last day, YYYY-MM-DD.")],
) -> None:
    """Add a term to a school's calendar (terms may not overlap)."""
    from esafety.directory import service, terms

    inst = _installation()
    with inst.db.session(SYSTEM) as session:
        session.info["school_id"] = service.school_by_slug(session, slug).id
        term = terms.add_term(session, name, _day(starts, "starts"), _day(ends, "ends"))
        shown = f"{term.name}: {term.starts_on} to {term.ends_on}"
    console.print(f"Added term {shown}.", highlight=False)


@school_app.command("add-closure")
def school_add_closure(
    slug: Annotated[str, typer.Argument(help="The school's slug.")],
    starts: Annotated[str, typer.Argument(help="First day closed, YYYY-MM-DD.")],
    ends: Annotated[str, typer.Argument(help="Last day closed, YYYY-MM-DD.")],
    reason: Annotated[str, typer.Argument(help="e.g. 'INSET day', 'Half term'.")],
) -> None:
    """Add days inside a term when the school is closed."""
    from esafety.directory import service, terms

    inst = _installation()
    with inst.db.session(SYSTEM) as session:
        session.info["school_id"] = service.school_by_slug(session, slug).id
        closure = terms.add_closure(session, _day(starts, "starts"), _day(ends, "ends"), reason)
        shown = f"{closure.reason}: {closure.starts_on} to {closure.ends_on}"
    console.print(f"Added closure {shown}.", highlight=False)


@school_app.command("calendar")
def school_calendar(slug: Annotated[str, typer.Argument(help="The school's slug.")]) -> None:
    """Show a school's terms and closures, with the school days in each term."""
    from esafety.directory import service, terms

    inst = _installation()
    with inst.db.session(SYSTEM) as session:
        session.info["school_id"] = service.school_by_slug(session, slug).id
        calendar = terms.school_calendar(session)
        table = Table("Term", "Starts", "Ends", "School days", title=f"Calendar of {slug}")
        for term in calendar.terms:
            days = calendar.school_days_between(term.starts_on, term.ends_on)
            table.add_row(term.name, str(term.starts_on), str(term.ends_on), str(days))
        closed = Table("Closure", "Starts", "Ends")
        for closure in calendar.closures:
            closed.add_row(closure.name, str(closure.starts_on), str(closure.ends_on))
    console.print(table)
    console.print(closed)
