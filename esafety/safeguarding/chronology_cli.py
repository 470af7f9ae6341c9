"""``esafety safeguarding chronology USERNAME``: a pupil's chronology on the command line,
as text, JSON (``--json``) or a PDF for a case conference (``--pdf FILE``) (issue 5 §5).

The command acts on the server's authority, or as the member of staff that ``--by`` names:
then their reading rules apply (a deputy's chronology leaves out an allegation about
staff) and the audit trail names them. Every run is audited like the page.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy import select

from esafety.audit import SYSTEM, Actor
from esafety.errors import NotFound

if TYPE_CHECKING:
    from esafety.installation import Installation
    from esafety.safeguarding.chronology import Chronology

__all__ = ["as_json", "register"]

console = Console()


def register(safeguarding_app: typer.Typer) -> None:
    safeguarding_app.command("chronology")(chronology_command)


def _actor(inst: Installation, username: str, by: str | None) -> tuple[Actor, int]:
    """The actor (``--by``, or the server) and the pupil's id, in the pupil's school."""
    from esafety.directory.model import Person

    with inst.db.session(SYSTEM) as session:
        pupil = session.scalars(select(Person).where(Person.username == username.strip())).first()
        if pupil is None:
            raise NotFound(f"no one with username {username!r} (see: esafety users list)")
        school_id, pupil_id = pupil.school_id, pupil.id
        if by is None:
            return Actor(SYSTEM.name, school_id=school_id), pupil_id
        reader = session.scalars(select(Person).where(Person.username == by.strip())).first()
        if reader is None or reader.school_id != school_id:
            raise NotFound(f"--by {by!r}: no member of staff of {username}'s school has it")
        actor = Actor(
            name=reader.username,
            person_id=reader.id,
            school_id=school_id,
            roles=frozenset(r.value for r in reader.role_ids),
            address="command line",
        )
        return actor, pupil_id


def as_json(chron: Chronology) -> dict[str, Any]:
    """The chronology as JSON-ready values (times in ISO 8601, UTC)."""
    subject = chron.subject
    return {
        "school": chron.school,
        "pupil": {
            "id": subject.id,
            "username": subject.username,
            "name": subject.name,
            "date_of_birth": subject.date_of_birth.isoformat() if subject.date_of_birth else None,
            "year_group": subject.year_group,
            "upn": subject.upn,
        },
        "filter": chron.filter.as_json(),
        "concerns": [
            {
                "id": c.id,
                "kind": c.kind.value,
                "title": c.title,
                "part": c.part.value,
                "happened_at": c.happened_at.isoformat(),
                "open": c.is_open,
            }
            for c in chron.concerns
        ],
        "linked": [
            {"id": p.id, "name": p.name, "concerns": [cid for cid, _ in p.concerns]}
            for p in chron.linked
        ],
        "siblings": [
            {"id": p.id, "name": p.name, "concerns": p.concern_count} for p in chron.siblings
        ],
        "entries": [
            {
                "at": e.at.isoformat(),
                "type": e.type.value,
                "concern": e.concern_id,
                "kind": e.kind.value,
                "title": e.title,
                "details": list(e.details),
                "by": e.by,
            }
            for e in chron.entries
        ],
        "total_entries": chron.total_entries,
        "read_by": chron.read_by,
        "read_at": chron.read_at.isoformat(),
    }


def _print(chron: Chronology) -> None:
    from esafety.safeguarding.chronology_entries import local_time

    subject = chron.subject
    console.print("[bold red]CONFIDENTIAL — child protection[/]", highlight=False)
    facts = [subject.name]
    if subject.date_of_birth:
        facts.append(f"born {subject.date_of_birth.strftime('%d %b %Y')}")
    if subject.year_group:
        facts.append(subject.year_group)
    console.print(f"[bold]{escape(' · '.join(facts))}[/]  {escape(chron.school)}", highlight=False)
    shown = f"{len(chron.entries)} of {chron.total_entries} entries"
    if chron.filter.active:
        shown += f" ({chron.filter.describe()})"
    console.print(escape(shown), highlight=False)
    for entry in chron.entries:
        console.print()
        console.print(
            f"{local_time(entry.at, chron.zone)}  [cyan]#{entry.concern_id}[/]  "
            f"[bold]{escape(entry.heading)}[/]" + (f"  ({escape(entry.by)})" if entry.by else ""),
            highlight=False,
        )
        for line in entry.details:
            console.print(f"    {escape(line)}", highlight=False, soft_wrap=True)


def chronology_command(
    username: Annotated[str, typer.Argument(help="The pupil (username).")],
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="Act as this member of staff (username): their reading rules apply and the "
            "audit trail names them. Omit: the server's own authority.",
        ),
    ] = None,
    kind: Annotated[
        list[str] | None, typer.Option("--kind", help="Only concerns of this kind (repeat).")
    ] = None,
    type_: Annotated[
        list[str] | None,
        typer.Option("--type", help="Only entries of this type: note, decision, ... (repeat)."),
    ] = None,
    date_from: Annotated[str | None, typer.Option("--from", help="From this date.")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="To this date.")] = None,
    pdf: Annotated[Path | None, typer.Option("--pdf", help="Write a PDF to this file.")] = None,
    as_json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A pupil's safeguarding chronology: every concern and what was done, in time order."""
    from esafety.cli import installation
    from esafety.safeguarding.chronology import chronology, parse_filter
    from esafety.safeguarding.chronology_pdf import chronology_pdf

    chosen = parse_filter(kind or (), type_ or (), date_from, date_to)
    inst = installation()
    actor, pupil_id = _actor(inst, username, by)
    purpose = "export" if (pdf is not None or as_json_) else "read"
    with inst.db.session(actor) as session:
        chron = chronology(session, pupil_id, chosen, purpose=purpose)
    if pdf is not None:
        # A child-protection record: readable by its owner only, from the first byte.
        handle = os.open(pdf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(handle, "wb") as out:
            out.write(chronology_pdf(chron))
        pdf.chmod(0o600)
        console.print(f"Chronology written: {pdf} (confidential: keep it safe)", highlight=False)
        return
    if as_json_:
        print(json.dumps(as_json(chron), indent=2, ensure_ascii=False))
        return
    _print(chron)
