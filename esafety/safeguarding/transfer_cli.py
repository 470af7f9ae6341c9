"""``esafety safeguarding transfer export|import``: a pupil's child-protection file, made
for the new school or received from the old one (issue 5 §5).

The command line acts on the server's authority, or as the DSL or deputy that ``--by``
names (recorded as theirs). The passphrase of a file made here is printed once and kept
nowhere; to import, it is asked for (not echoed) or read from ``--passphrase-file``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from sqlalchemy import select

from esafety.audit import SYSTEM, Actor
from esafety.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from esafety.installation import Installation

__all__ = ["register", "transfer_app"]

console = Console()

transfer_app = typer.Typer(
    help="Child-protection files of pupils who move school: make one, import one.",
    no_args_is_help=True,
)


def register(safeguarding_app: typer.Typer) -> None:
    safeguarding_app.add_typer(transfer_app, name="transfer")


ByOption = Annotated[
    str | None,
    typer.Option("--by", help="The DSL or deputy doing it (username); else the server."),
]


def _actor(inst: Installation, school_id: int, by: str | None) -> Actor:
    from esafety.directory.model import Person

    if by is None:
        return Actor(SYSTEM.name, school_id=school_id)
    with inst.db.session(SYSTEM, school_id=school_id) as session:
        person = session.scalars(select(Person).where(Person.username == by.strip())).first()
        if person is None:
            raise NotFound(f"--by {by!r}: no person of this school has that username")
        return Actor(
            name=f"{person.username} (command line)",
            person_id=person.id,
            school_id=school_id,
            roles=frozenset(r.value for r in person.role_ids),
        )


def _say(text: str) -> None:
    console.print(text, markup=False, highlight=False)


@transfer_app.command("export")
def export(
    username: Annotated[str, typer.Argument(help="The pupil who is leaving (username or UPN).")],
    to: Annotated[Path, typer.Option("--to", help="Where to write the file (.escp).")],
    destination: Annotated[
        str | None,
        typer.Option("--destination", help="The new school's name (starts a transfer if none)."),
    ] = None,
    urn: Annotated[str | None, typer.Option("--urn", help="The new school's URN.")] = None,
    dsl_name: Annotated[str | None, typer.Option("--dsl-name", help="Their DSL.")] = None,
    dsl_email: Annotated[
        str | None, typer.Option("--dsl-email", help="Their DSL's e-mail.")
    ] = None,
    learned_on: Annotated[
        str | None,
        typer.Option("--learned-on", help="When the school learned of the move (YYYY-MM-DD)."),
    ] = None,
    by: ByOption = None,
) -> None:
    """Make the pupil's child-protection file for their new school, encrypted with a
    passphrase printed once: give it to their DSL by telephone, not with the file."""
    from esafety.cli import installation
    from esafety.directory.model import Person
    from esafety.safeguarding import transfer
    from esafety.safeguarding.transfer_export import export_file, transfer_files
    from esafety.sealing.keyring import replace_private_file

    if to.exists():
        raise InvalidInput(f"--to {to}: that file exists already; choose a new name")
    inst = installation()
    with inst.db.session(SYSTEM) as session:
        wanted = username.strip()
        found = session.scalars(
            select(Person.school_id).where(
                (Person.username == wanted) | (Person.upn == wanted.upper())
            )
        ).all()
    if len(found) != 1:
        raise NotFound(f"pupil {username!r}: no pupil has that username or UPN")
    with inst.db.session(_actor(inst, found[0], by), school_id=found[0]) as session:
        pupil = transfer.pupil_of(session, wanted)
        row = transfer.open_transfer_of(session, pupil.id)
        if row is None:
            if not destination:
                raise InvalidInput(
                    f"{pupil.display_name} has no transfer under way: give --destination "
                    "'New School' (and --dsl-name, --dsl-email) to start one"
                )
            row = transfer.start_transfer(
                session,
                pupil.id,
                destination_name=destination,
                destination_urn=urn,
                dsl_name=dsl_name,
                dsl_email=dsl_email,
                learned_on=_date(learned_on),
            )
        made = export_file(session, inst.attachments, transfer_files(inst), row.id)
        replace_private_file(to, made.content)
        due = transfer.transfer_state(session, row, made.entry.at or row.started_at).due_on
        _say(
            f"Wrote {to} for {pupil.display_name} (transfer #{row.id} to "
            f"{row.current('destination_name')}, due by {due:%d %B %Y})."
        )
        for line in made.entry.items or []:
            _say(f"  {line}")
        _say("")
        _say(f"Passphrase (shown once, not kept): {made.passphrase}")
        _say(
            "Give it to the new school's DSL by telephone, never with the file. Then record "
            "how and when the file was sent on the transfer's page."
        )


def _date(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"--learned-on {text!r}: give the date as 2025-03-12") from None


def _school_id(inst: Installation, slug: str | None) -> int:
    from esafety.directory.model import School
    from esafety.directory.service import school_by_slug

    with inst.db.session(SYSTEM) as session:
        if slug is not None:
            return school_by_slug(session, slug).id
        schools = session.scalars(select(School.id)).all()
    if len(schools) != 1:
        raise InvalidInput("this installation has several schools: give --school SLUG")
    return schools[0]


@transfer_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="The file the sending school's DSL sent.")],
    school: Annotated[
        str | None, typer.Option("--school", help="The receiving school (slug).")
    ] = None,
    passphrase_file: Annotated[
        Path | None,
        typer.Option("--passphrase-file", help="Read the passphrase from this file."),
    ] = None,
    create_pupil: Annotated[
        bool,
        typer.Option("--create-pupil", help="Add the pupil from the file if no UPN matches."),
    ] = False,
    by: ByOption = None,
) -> None:
    """Import a child-protection file made by another esafety (asks for its passphrase)."""
    from esafety.cli import installation
    from esafety.safeguarding.transfer_import import import_file

    try:
        data = file.read_bytes()
        secret = (
            passphrase_file.read_text(encoding="utf-8").strip()
            if passphrase_file is not None
            else None
        )
    except OSError as exc:
        raise InvalidInput(f"cannot read {exc.filename}: {exc.strerror}") from None
    if secret is None:
        secret = typer.prompt("Passphrase", hide_input=True)
    inst = installation()
    school_id = _school_id(inst, school)
    with inst.db.session(_actor(inst, school_id, by), school_id=school_id) as session:
        received = import_file(session, inst.attachments, data, secret, create_pupil=create_pupil)
        concerns = ", ".join(f"#{c.concern_id}" for c in received.file.concerns) or "none"
        _say(f"Imported for {received.pupil.display_name}: concerns {concerns}.")
        _say("")
        _say("Tell the sending school's DSL, so they can record the receipt:")
        _say(received.receipt)
