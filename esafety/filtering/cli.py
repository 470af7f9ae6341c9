"""``esafety filter ...``: lists, checks, policy assignments (mounted by esafety.cli).

The command line acts on the server's own authority (``SYSTEM``); ``--school SLUG``
opens the session for one school (its own lists, entries and assignments).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table
from sqlalchemy.orm import Session

from esafety import audit
from esafety.audit import SYSTEM
from esafety.errors import InvalidInput

if TYPE_CHECKING:
    from esafety.filtering.store import ListStore
    from esafety.installation import Installation

__all__ = ["register"]

console = Console()
err_console = Console(stderr=True)

filter_app = typer.Typer(help="The web filter: lists, checks and policies.", no_args_is_help=True)
lists_app = typer.Typer(help="Filter lists (run without a command to list them).")
policy_app = typer.Typer(help="Which policy each group gets.", no_args_is_help=True)
filter_app.add_typer(lists_app, name="lists")
filter_app.add_typer(policy_app, name="policy")

#: Problems printed after an import; the rest are counted.
SHOWN_PROBLEMS = 20

School = Annotated[
    str | None, typer.Option("--school", help="The school (slug); omit for every school.")
]


def register(app: typer.Typer, users_app: typer.Typer) -> None:
    from esafety.filtering import changes_cli

    changes_cli.register(filter_app, policy_app)  # requests, changes, the school's policies
    app.add_typer(filter_app, name="filter")


@contextmanager
def _session(school: str | None) -> Iterator[tuple[Session, ListStore]]:
    from esafety.cli import installation
    from esafety.filtering.store import ListStore

    inst = installation()
    with inst.db.session(SYSTEM, school_id=_school_id(inst, school)) as session:
        yield session, ListStore(inst.data_dir)


def _school_id(inst: Installation, school: str | None) -> int | None:
    """The id of the school ``--school`` names; None without it."""
    from esafety.directory.service import school_by_slug

    if school is None:
        return None
    with inst.db.session(SYSTEM) as session:
        return school_by_slug(session, school).id


def _when(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(
            f"--at {text!r} is not a time: write it as 2025-03-12T12:30 or with a zone"
        ) from None
    return moment if moment.tzinfo is not None else moment.astimezone()


# -- lists --------------------------------------------------------------------------------


@lists_app.callback(invoke_without_command=True)
def lists_show(
    ctx: typer.Context,
    school: School = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List the filter lists: name, category, entries, last update."""
    if ctx.invoked_subcommand is not None:
        return
    from esafety.filtering import service

    with _session(school) as (session, _store):
        rows = [
            {
                "name": row.name,
                "school": bool(getattr(row, "school_id", None)),
                "format": row.format,
                "category": row.category,
                "illegal": row.illegal,
                "entries": row.entry_count,
                "problems": row.problem_count,
                "url": row.url,
                "update_every_hours": row.update_every_hours,
                "updated_at": row.updated_at.isoformat() if row.updated_at else None,
                "last_good_at": row.last_good_at.isoformat() if row.last_good_at else None,
                "last_error": row.last_error,
                "sha256": row.sha256,
            }
            for row in service.list_lists(session)
        ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(
        "Name",
        "Category",
        "Illegal",
        "Entries",
        "Updated",
        "Last error",
        title=f"{len(rows)} lists",
    )
    for row in rows:
        table.add_row(
            str(row["name"]),
            str(row["category"]),
            "yes" if row["illegal"] else "",
            f"{row['entries']:,}",
            str(row["last_good_at"] or "")[:16],
            str(row["last_error"] or ""),
        )
    console.print(table)


@lists_app.command("import")
def lists_import(
    file: Annotated[Path, typer.Argument(help="The list file (a category folder for ut1).")],
    format: Annotated[
        str, typer.Option("--format", help="hosts|domains|adblock|ut1|urls|urlhash|regex")
    ],
    category: Annotated[
        str | None, typer.Option("--category", help="What the list names, e.g. gambling.")
    ] = None,
    illegal: Annotated[
        bool, typer.Option("--illegal", help="Illegal content (IWF, CTIRU): never lifted.")
    ] = False,
    name: Annotated[str | None, typer.Option("--name", help="Default: the file's name.")] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="Where 'lists update' downloads it from.")
    ] = None,
    every: Annotated[
        int | None, typer.Option("--every", help="Update from --url every N hours.")
    ] = None,
    source: Annotated[
        str | None, typer.Option("--source", help="Who publishes it (for the change log).")
    ] = None,
    school: School = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (for the filter change log).")
    ] = None,
) -> None:
    """Import a list; bad lines are reported by number and skipped."""
    from esafety.filtering import service

    with (
        _session(school) as (session, store),
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
        ) as bar,
    ):
        task = bar.add_task(f"Reading {file.name}", total=None)
        audit.set_reason(session, reason)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        result = service.import_list(
            session,
            store,
            file,
            format,
            category,
            name=name,
            illegal=illegal,
            source=source,
            url=url,
            update_every_hours=every,
            progress=progress,
        )
        listed, parsed = result.list, result.parsed
        summary = (
            f"{'Replaced' if result.replaced else 'Imported'} list '{listed.name}' "
            f"({listed.category}{', illegal content' if listed.illegal else ''}): "
            f"{parsed.entry_count:,} entries"
        )
    kinds = ", ".join(f"{n:,} {kind}" for kind, n in sorted(parsed.counts.items()))
    console.print(f"{summary}{f' ({kinds})' if kinds else ''}.", highlight=False, markup=False)
    if parsed.problem_count:
        err_console.print(
            f"{parsed.problem_count:,} lines were not imported:", highlight=False, markup=False
        )
        for problem in parsed.problems[:SHOWN_PROBLEMS]:
            err_console.print(f"  {problem}", highlight=False, markup=False)
        if parsed.problem_count > SHOWN_PROBLEMS:
            err_console.print(
                f"  ... and {parsed.problem_count - SHOWN_PROBLEMS:,} more", markup=False
            )


@lists_app.command("update")
def lists_update(
    name: Annotated[str | None, typer.Option("--name", help="Only this list.")] = None,
    school: School = None,
) -> None:
    """Download lists that have a URL; a failed download keeps the last good copy."""
    from esafety.cli import installation
    from esafety.filtering import service
    from esafety.filtering.store import ListStore

    inst = installation()
    # Not in one session: it would hold the database through every download.
    updates = service.update_lists(
        inst.db, SYSTEM, ListStore(inst.data_dir), school_id=_school_id(inst, school), name=name
    )
    results = [(r.list.name, r.list.entry_count, r.error) for r in updates]
    failed = 0
    for list_name, count, error in results:
        if error is None:
            console.print(f"Updated '{list_name}': {count:,} entries.", markup=False)
        else:
            failed += 1
            err_console.print(
                f"Could not update '{list_name}' (kept the last good copy, {count:,} entries): "
                f"{error}",
                markup=False,
                highlight=False,
            )
    if not results:
        console.print("No list has a URL to update from.")
    if failed:
        raise typer.Exit(1)


# -- checking -----------------------------------------------------------------------------


@filter_app.command("check")
def filter_check(
    host_or_url: Annotated[str, typer.Argument(help="A host name or web address.")],
    person: Annotated[str | None, typer.Option("--person", help="As this username.")] = None,
    group: Annotated[
        str | None, typer.Option("--group", help="As this policy (eyfs, ks1, ks2, staff...).")
    ] = None,
    at: Annotated[str | None, typer.Option("--at", help="At this time (ISO 8601).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    school: School = None,
) -> None:
    """What the filter decides for a site, and why (exit 0 whether blocked or not)."""
    from esafety.filtering import service

    when = _when(at)
    if school is None and person is not None:
        school = _school_of(person)
    with _session(school) as (session, store):
        result = service.check(
            session, store, host_or_url, username=person, policy_id=group, at=when
        )
    if as_json:
        print(json.dumps(result.as_dict()))
        return
    decision = result.decision
    colour = {"block": "red", "allow": "green", "rewrite": "yellow"}[decision.action.value]
    console.print(f"[bold {colour}]{decision.action.value.upper()}[/] {result.host}")
    console.print(decision.reason, markup=False, highlight=False)
    details = [
        f"rule: {decision.rule}",
        f"policy: {decision.policy_id} ({result.why_policy})",
    ]
    if decision.categories:
        details.append("categories: " + ", ".join(c.value for c in decision.categories))
    if decision.rewrite_to:
        details.append(f"answered with: {decision.rewrite_to}")
    for line in details:
        console.print(f"  {line}", markup=False, highlight=False)


def _school_of(username: str) -> str | None:
    from sqlalchemy import select

    from esafety.directory.model import Person
    from esafety.directory.model import School as SchoolRow

    with _session(None) as (session, _store):
        found = session.execute(
            select(SchoolRow.slug)
            .join(Person, Person.school_id == SchoolRow.id)
            .where(Person.username == username.strip())
        ).first()
    return found[0] if found else None


# -- policies -----------------------------------------------------------------------------


@policy_app.command("assign")
def policy_assign(
    policy_id: Annotated[str, typer.Argument(help="eyfs, ks1, ks2, staff or guests.")],
    school: Annotated[str, typer.Option("--school", help="The school (slug).")],
    group: Annotated[str | None, typer.Option("--group", help="A class or group name.")] = None,
    year: Annotated[str | None, typer.Option("--year", help="A year, e.g. 'Year 4'.")] = None,
    key_stage: Annotated[str | None, typer.Option("--key-stage", help="eyfs, ks1...")] = None,
    person: Annotated[str | None, typer.Option("--person", help="A username.")] = None,
    role: Annotated[str | None, typer.Option("--role", help="A role, e.g. teacher.")] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (for the filter change log).")
    ] = None,
) -> None:
    """Give a policy to a person, group, year, key stage or role (most specific wins)."""
    from esafety.filtering import asking
    from esafety.filtering.model import TargetKind

    given = {
        TargetKind.PERSON: person,
        TargetKind.GROUP: group,
        TargetKind.YEAR: year,
        TargetKind.KEY_STAGE: key_stage,
        TargetKind.ROLE: role,
    }
    chosen = [(kind, value) for kind, value in given.items() if value is not None]
    if len(chosen) != 1:
        raise InvalidInput("give exactly one of --person, --group, --year, --key-stage or --role")
    kind, target = chosen[0]
    with _session(school) as (session, _store):
        audit.set_reason(session, reason)
        row = asking.assign_policy(session, policy_id, kind, target)
        shown = f"Assigned policy {row.policy_id} to {kind.value.replace('_', ' ')} {target}."
    console.print(shown, markup=False, highlight=False)


# -- the decision log ---------------------------------------------------------------------


def _moment(option: str, text: str | None, *, end: bool = False) -> datetime | None:
    """An ISO date or time; a bare date as --to means the end of that day (inclusive)."""
    if text is None:
        return None
    cleaned = text.strip()
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise InvalidInput(
            f"{option} {text!r} is not a date or time: write it as 2025-03-12, "
            "2025-03-12T12:30 or 2025-03-12T12:30+00:00"
        ) from None
    if end and len(cleaned) == 10:  # "2025-03-12": up to midnight after it
        moment += timedelta(days=1)
    return moment if moment.tzinfo is not None else moment.astimezone()


@filter_app.command("log")
def filter_log(
    person: Annotated[str | None, typer.Option("--person", help="Only this username.")] = None,
    group: Annotated[
        str | None, typer.Option("--group", help="Only this policy (ks1, staff...) or group.")
    ] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="Only allow, block or rewrite.")
    ] = None,
    category: Annotated[
        str | None, typer.Option("--category", help="Only this category, e.g. gambling.")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="From this date or time (ISO 8601).")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Up to this date (inclusive) or time.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """The filter's decisions, newest first (from the daily decision log)."""
    from esafety.config import load_settings
    from esafety.filtering import log
    from esafety.filtering.categories import category_of
    from esafety.filtering.policy import Action

    chosen_action: str | None = None
    if action is not None:
        try:
            chosen_action = Action(action.strip().lower()).value
        except ValueError:
            raise InvalidInput(
                f"--action {action!r} is not an action: use allow, block or rewrite"
            ) from None
    chosen_category = category_of(category).value if category is not None else None
    since, until = _moment("--from", start), _moment("--to", end, end=True)
    if since is not None and until is not None and until <= since:
        raise InvalidInput(f"--to {end!r} is not after --from {start!r}: swap them")
    if limit < 1:
        raise InvalidInput(f"--limit {limit} must be at least 1")
    rows = log.query(
        load_settings().data,
        person=person.strip() if person else None,
        group=group.strip() if group else None,
        action=chosen_action,
        category=chosen_category,
        start=since,
        end=until,
        limit=limit,
    )
    if as_json:
        for row in rows:
            print(json.dumps(row.as_dict()))
        return
    table = Table(
        "Time (UTC)",
        "Person",
        "Client",
        "Name",
        "Type",
        "Action",
        "Categories",
        "Rule",
        title=f"{len(rows)} decisions",
    )
    for row in rows:
        table.add_row(
            row.time.strftime("%Y-%m-%d %H:%M:%S"),
            row.person or "(unknown)",
            row.client,
            row.name,
            row.query_type,
            row.action + (" (exception)" if row.under_exception else ""),
            ", ".join(row.categories),
            row.rule,
        )
    console.print(table)
