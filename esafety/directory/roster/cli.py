"""`esafety roster ...` commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

__all__ = ["register"]

roster_app = typer.Typer(
    help="Import people and classes from the school's MIS.", no_args_is_help=True
)

#: Below this many rows an import is quick enough not to need a progress bar.
PROGRESS_FROM_ROWS = 2000


class _ProgressBar:
    """A Rich progress bar on stderr, shown only on a terminal and for large rosters."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar: Any = None
        self.task: Any = None

    def stage(self, description: str, total: int) -> None:
        if self.bar is None:
            if not self.console.is_terminal or total < PROGRESS_FROM_ROWS:
                return
            from rich.progress import Progress

            self.bar = Progress(console=self.console, transient=True)
            self.bar.start()
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(description, total=max(total, 1))

    def advance(self, amount: int = 1) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.advance(self.task, amount)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


@roster_app.command("import")
def roster_import(
    path: Annotated[Path, typer.Argument(help="OneRoster folder or .zip, or an MIS .csv export.")],
    school: Annotated[str, typer.Option("--school", help="The school's slug, e.g. westpark.")],
    delta: Annotated[
        bool,
        typer.Option("--delta", help="Change only what the roster names (no leavers by absence)."),
    ] = False,
    roster_format: Annotated[
        str | None, typer.Option("--format", help="oneroster or mis (detected when not given).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and show what would change; write nothing.")
    ] = False,
    allow_bom: Annotated[
        bool,
        typer.Option("--allow-bom", help="Accept files that start with a UTF-8 byte-order mark."),
    ] = False,
) -> None:
    """Check a roster, then import all of it or nothing (see docs/roster.md)."""
    from esafety.cli import console, installation
    from esafety.directory.roster.problems import RosterProblems
    from esafety.directory.roster.service import import_roster

    err = Console(stderr=True, highlight=False)
    inst = installation()
    bar = _ProgressBar(err)
    try:
        result = import_roster(
            inst,
            path,
            school,
            delta=delta,
            format=roster_format,
            dry_run=dry_run,
            allow_bom=allow_bom,
            progress=bar,
        )
    except RosterProblems as problems:
        bar.close()
        # Plain lines, never wrapped: one problem per line, for people and for grep.
        print(str(problems), file=sys.stderr)
        raise typer.Exit(1) from None
    finally:
        bar.close()
    verb = "Would import" if result.dry_run else "Imported"
    console.print(
        f"{verb} {result.format} roster ({result.mode}) into {result.school}: "
        f"{result.added} added, {result.updated} updated, {result.left} left, "
        f"{result.unchanged} unchanged.",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"Classes: {result.classes_added} added, {result.classes_updated} updated, "
        f"{result.classes_archived} archived. Class places: +{result.memberships_added} "
        f"-{result.memberships_ended}. Parent links: +{result.links_added} -{result.links_ended}.",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    if result.dry_run:
        console.print("Dry run: nothing was written.")


def register(app: typer.Typer) -> None:
    """Add the ``roster`` command group to the root command."""
    app.add_typer(roster_app, name="roster")
