"""``esafety safeguarding ...``: concerns and incident procedures (mounted by esafety.cli).

``procedures`` reads only the shipped catalogue: it needs no database, so it works before
``esafety db upgrade`` and on a machine with no installation.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding

from esafety.safeguarding.kinds import KindInfo, Step, as_json

__all__ = ["register", "safeguarding_app"]

console = Console()

safeguarding_app = typer.Typer(
    help="Safeguarding records: concerns and incident procedures.", no_args_is_help=True
)


def register(app: typer.Typer, users_app: typer.Typer) -> None:
    # Retention, legal holds, deletions and subject access (issue 5 §8).
    from esafety.safeguarding import retention_cli

    retention_cli.register(safeguarding_app)
    # Child-protection files of pupils who move school (issue 5 §5).
    from esafety.safeguarding import transfer_cli

    transfer_cli.register(safeguarding_app)
    # A pupil's chronology, as text, JSON or PDF (issue 5 §5).
    from esafety.safeguarding import chronology_cli

    chronology_cli.register(safeguarding_app)
    app.add_typer(safeguarding_app, name="safeguarding")


@safeguarding_app.command("procedures")
def procedures(
    kind_id: Annotated[
        str | None,
        typer.Argument(metavar="[KIND]", help="One kind (e.g. youth_produced_sexual_imagery)."),
    ] = None,
    as_json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every kind of incident with the steps of its procedure (one kind, with guidance)."""
    from esafety.safeguarding.catalogue import kind, kinds

    chosen = (kind(kind_id),) if kind_id is not None else kinds()
    if as_json_:
        print(json.dumps([as_json(k) for k in chosen], indent=2, ensure_ascii=False))
        return
    for index, info in enumerate(chosen):
        if index:
            console.print()
        _print_kind(info, guidance=kind_id is not None)


def _print_kind(info: KindInfo, *, guidance: bool) -> None:
    # A list rather than a table: it stays readable in an 80-column terminal.
    readers = ", ".join(role.label for role in info.readers)
    if info.online_safety:
        readers += ", Online safety lead"
    if info.readers_when_about_headteacher:
        instead = ", ".join(role.label for role in info.readers_when_about_headteacher)
        readers += f" ({instead} when it is about the headteacher)"
    tags = [f"read by: {escape(readers)}"]
    if info.grave:
        tags.insert(0, "[bold red]grave: its readers are alerted at once[/]")
    if info.refuses_images:
        tags.append("no image attachments")
    console.print(f"[bold]{escape(info.title)}[/]  [cyan]{info.id.value}[/]", highlight=False)
    _indented(escape(info.description), 2)
    _indented(" · ".join(tags), 2)
    for number, step in enumerate(info.steps, start=1):
        need = "required" if step.required else "optional"
        _indented(f"{number:>2}. [cyan]{step.id}[/]  {escape(step.title)}  [dim]({need})[/]", 2)
        details = []
        if step.decision is not None:
            details.append(f"decision: {_decision(step)}")
        waits = _waits(info, step)
        if waits:
            details.append(f"waits for: {waits}")
        if step.when is not None:
            details.append(f"only if: {step.when.step} = {' or '.join(step.when.choices)}")
        if step.referral:
            details.append(f"agency: {escape(step.referral)}")
        if step.due is not None:
            details.append(f"due: {step.due.text} of the school learning of it")
        if guidance:
            details.append(escape(step.guidance))
        for line in details:
            _indented(line, 6)


def _indented(text: str, left: int) -> None:
    console.print(Padding(text, (0, 0, 0, left), expand=False), highlight=False)


def _decision(step: Step) -> str:
    if step.decision is None:
        return ""
    choices = " | ".join(
        f"{c.id}{' (with reason)' if c.rationale_required else ''}" for c in step.decision.choices
    )
    return escape(f"{step.decision.question} {choices}")


def _waits(info: KindInfo, step: Step) -> str:
    after = [a for a in step.after if step.when is None or a != step.when.step]
    own = {s.id for s in info.steps if s.required and not s.closing}
    if step.closing and own <= set(after):
        after = ["every required step", *(a for a in after if a not in own)]
    return escape(", ".join(after))
