"""``esafety safeguarding retention|deletions|retention-settings|hold|lift-hold|holds|
subject-access``: the retention schedule and data rights (issue 5 §8; STANDARDS R8, R13).

Mounted by :mod:`esafety.safeguarding.cli`. The command line acts on the server's own
authority (a named system actor), or, for a subject access export, as the member of staff
given with ``--by`` (whose reading the access rules then decide, and the trail names).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy import select

from esafety.audit import Actor
from esafety.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from esafety.installation import Installation
    from esafety.safeguarding.retention import SchoolRetention

__all__ = ["register"]

console = Console()

SchoolOption = Annotated[str | None, typer.Option("--school", help="The school (slug).")]


def register(safeguarding_app: typer.Typer) -> None:
    safeguarding_app.command("retention")(retention_run)
    safeguarding_app.command("deletions")(deletions)
    safeguarding_app.command("retention-settings")(retention_settings)
    safeguarding_app.command("hold")(hold)
    safeguarding_app.command("lift-hold")(lift_hold)
    safeguarding_app.command("holds")(holds)
    safeguarding_app.command("subject-access")(subject_access)


def _installation() -> Installation:
    from esafety.cli import installation

    inst: Installation = installation()
    return inst


def _day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"--at {text!r} is not a date: write it as YYYY-MM-DD") from None


def _school_id(inst: Installation, slug: str | None) -> int:
    from esafety.directory.model import School

    with inst.db.session(Actor.system("cli")) as session:
        schools = session.execute(select(School.id, School.slug).order_by(School.slug)).all()
    if slug is None and len(schools) == 1:
        return int(schools[0].id)
    known = ", ".join(s.slug for s in schools) or "none yet"
    if slug is None:
        raise InvalidInput(f"give the school with --school SLUG (schools: {known})")
    for school_id, found in schools:
        if found == slug.strip():
            return int(school_id)
    raise NotFound(f"no school with slug {slug!r} (schools: {known})")


# -- the schedule -------------------------------------------------------------------


def retention_run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would be deleted.")
    ] = False,
    at: Annotated[
        str | None,
        typer.Option(
            "--at", help="As on this date (YYYY-MM-DD; a later date only with --dry-run)."
        ),
    ] = None,
    school: Annotated[
        str | None, typer.Option("--school", help="Only this school (slug); omit for every school.")
    ] = None,
) -> None:
    """Delete the concerns whose retention period has ended (the daily job does this too)."""
    from esafety.safeguarding import retention

    inst = _installation()
    done = retention.run(
        inst.db, inst.attachments, at=_day(at), dry_run=dry_run, school=school, actor="cli"
    )
    for index, part in enumerate(done.schools):
        if index:
            console.print()
        _print_school(part, dry_run)


def _print_school(part: SchoolRetention, dry_run: bool) -> None:
    from esafety.safeguarding.retention_rules import Verdict

    went = "would be deleted" if dry_run else "deleted"
    console.print(
        f"[bold]{escape(part.school)}[/] on {part.at.isoformat()}: {len(part.deleted)} "
        f"concern{'s' if len(part.deleted) != 1 else ''} {went}",
        highlight=False,
    )
    by_id = {d.concern_id: d for d in part.decisions}
    for concern_id in part.deleted:
        decision = by_id[concern_id]
        due = decision.due_on.isoformat() if decision.due_on else "?"
        console.print(
            f"  #{concern_id}  {went}: {escape(decision.rule)} (due {due})", highlight=False
        )
    for concern_id, error in part.failed.items():
        console.print(f"  #{concern_id}  [red]not deleted[/]: {escape(error)}", highlight=False)
    for verdict in (Verdict.CANNOT_COMPUTE, Verdict.ON_HOLD):
        for decision in part.by_verdict(verdict):
            console.print(
                f"  #{decision.concern_id}  kept: {escape(decision.why)}", highlight=False
            )
    kept = part.by_verdict(Verdict.KEPT)
    still_open = part.by_verdict(Verdict.OPEN)
    soonest = min((d.due_on for d in kept if d.due_on), default=None)
    console.print(
        f"  kept until due: {len(kept)}"
        + (f" (the next on {soonest.isoformat()})" if soonest else "")
        + f"; open: {len(still_open)}",
        highlight=False,
    )


def deletions(
    school: SchoolOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """The record of what the retention schedule deleted, and when (newest first)."""
    from esafety.safeguarding import retention

    inst = _installation()
    school_id = _school_id(inst, school)
    with inst.db.session(Actor.system("cli", school_id=school_id)) as session:
        rows: list[dict[str, Any]] = [
            {
                "concern_id": r.concern_id,
                "kind": r.kind,
                "recorded_on": r.recorded_on.isoformat(),
                "closed_on": r.closed_on.isoformat() if r.closed_on else None,
                "due_on": r.due_on.isoformat(),
                "rule": r.rule,
                "removed": r.removed,
                "deleted_at": r.deleted_at.isoformat(),
                "deleted_by": r.deleted_by,
                "files_pending": len(r.files_pending),
            }
            for r in retention.deletion_records(session)
        ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    console.print(f"{len(rows)} concerns deleted by the retention schedule", highlight=False)
    for row in rows:
        console.print(
            f"  #{row['concern_id']}  {row['kind']}  recorded {row['recorded_on']}, due "
            f"{row['due_on']}, deleted {row['deleted_at'][:16]} by {escape(row['deleted_by'])}",
            highlight=False,
        )


def retention_settings(
    school: SchoolOption = None,
    pupil_years: Annotated[
        int | None, typer.Option("--pupil-years", help="Years after a pupil's date of birth.")
    ] = None,
    retirement_age: Annotated[
        int | None, typer.Option("--retirement-age", help="Retirement age for allegations.")
    ] = None,
    allegation_years: Annotated[
        int | None,
        typer.Option("--allegation-years", help="Years after an allegation is closed."),
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why they change (needed to change them).")
    ] = None,
) -> None:
    """Show the school's retention periods, or change them (with --reason)."""
    from esafety.safeguarding import retention

    inst = _installation()
    school_id = _school_id(inst, school)
    changing = any(v is not None for v in (pupil_years, retirement_age, allegation_years))
    with inst.db.session(Actor.system("cli", school_id=school_id)) as session:
        if changing:
            rules = retention.set_retention_rules(
                session,
                reason=reason or "",
                pupil_years=pupil_years,
                retirement_age=retirement_age,
                allegation_years=allegation_years,
            )
        else:
            rules = retention.retention_rules(session)
    console.print(rules.describe(), highlight=False)


def hold(
    reason: Annotated[str, typer.Option("--reason", help="Which investigation or inquiry.")],
    concern: Annotated[
        int | None, typer.Option("--concern", help="One concern (omit: every concern).")
    ] = None,
    school: SchoolOption = None,
) -> None:
    """Place a legal hold: the concern (or every concern) is not deleted until it is lifted."""
    from esafety.safeguarding import retention

    inst = _installation()
    with inst.db.session(Actor.system("cli", school_id=_school_id(inst, school))) as session:
        placed = retention.place_hold(session, reason, concern)
        hold_id = placed.id
    what = f"concern #{concern}" if concern is not None else "every concern of the school"
    console.print(f"Legal hold #{hold_id} placed on {what}.", highlight=False)


def lift_hold(
    hold_id: Annotated[int, typer.Argument(help="The hold's number (see: holds).")],
    reason: Annotated[str, typer.Option("--reason", help="Why it can be lifted.")],
    school: SchoolOption = None,
) -> None:
    """Lift a legal hold (the retention schedule may then delete what is due)."""
    from esafety.safeguarding import retention

    inst = _installation()
    with inst.db.session(Actor.system("cli", school_id=_school_id(inst, school))) as session:
        retention.lift_hold(session, hold_id, reason)
    console.print(f"Legal hold #{hold_id} lifted.", highlight=False)


def holds(school: SchoolOption = None) -> None:
    """The legal holds in force, with their reasons."""
    from esafety.safeguarding import retention

    inst = _installation()
    with inst.db.session(Actor.system("cli", school_id=_school_id(inst, school))) as session:
        found = retention.active_holds(session)
        lines = [
            f"  #{h.id}  "
            + (f"concern #{h.concern_id}" if h.concern_id is not None else "every concern")
            + f"  placed {h.placed_at:%Y-%m-%d} by {h.placed_by}: {h.reason}"
            for h in found
        ]
    console.print(f"{len(lines)} legal holds in force", highlight=False)
    for line in lines:
        console.print(escape(line), highlight=False)


# -- subject access -----------------------------------------------------------------


def subject_access(
    username: Annotated[str, typer.Argument(help="The person (username).")],
    to: Annotated[Path, typer.Option("--to", help="The zip file to write.")],
    redact_third_parties: Annotated[
        bool,
        typer.Option(
            "--redact-third-parties",
            help="Replace other people's names, usernames and handles with [third party N].",
        ),
    ] = False,
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="Act as this member of staff (the DSL or headteacher): their access rules "
            "apply and the audit trail names them. Omit: the server's own authority.",
        ),
    ] = None,
) -> None:
    """Export everything esafety holds about a person, for a subject access request."""
    from esafety.safeguarding.subject_access import actor_for, export

    inst = _installation()
    actor = actor_for(inst.db, username, by)
    with inst.db.session(actor) as session:
        made = export(
            session, username, redact_third_parties=redact_third_parties, data_dir=inst.data_dir
        )
    written = made.write(to)
    console.print(f"Subject access export written: {written.archive}", highlight=False)
    if written.review is not None:
        console.print(
            f"Redactions for the data protection officer to check (do not send this file): "
            f"{written.review}",
            highlight=False,
        )
    console.print(
        "The export is not encrypted: keep it safe, and review it before you send it.",
        highlight=False,
    )
