"""``esafety filter reports``: reports of sites, open first (mounted by esafety.cli)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from esafety.audit import SYSTEM

__all__ = ["register"]

console = Console()


def reports(
    school: Annotated[
        str | None, typer.Option("--school", help="The school (slug); omit for every school.")
    ] = None,
    open_only: Annotated[
        bool, typer.Option("--open", help="Only reports not resolved yet.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
) -> None:
    """Reports of sites that should be blocked or are wrongly blocked, open first."""
    from esafety.cli import installation
    from esafety.directory.service import school_by_slug
    from esafety.filtering.reports import list_reports

    inst = installation()
    with inst.db.session(SYSTEM) as session:
        if school is not None:
            session.info["school_id"] = school_by_slug(session, school).id
        rows = [_plain(row) for row in list_reports(session, open_only=open_only)]
    if as_json:
        for item in rows:
            typer.echo(json.dumps(item, sort_keys=True))
        return
    if not rows:
        console.print("No open reports." if open_only else "No reports.")
        return
    table = Table("#", "Site", "Report", "Filter then", "Reported", "Status")
    for item in rows:
        decision = item["decision"]
        categories = ", ".join(decision["categories"])
        table.add_row(
            str(item["id"]),
            item["site"],
            item["kind"].replace("_", " ") + (f"\n{item['comment']}" if item["comment"] else ""),
            decision["action"] + (f" ({categories})" if categories else ""),
            item["created_at"][:16].replace("T", " "),
            item["status"] + (f": {item['outcome']}" if item["outcome"] else ""),
        )
    console.print(table)


def _plain(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "school_id": row.school_id,
        "site": row.site,
        "url": row.url,
        "kind": row.kind.value,
        "source": row.source.value,
        "comment": row.comment,
        "reporter_id": row.reporter_id,
        "client": row.client,
        "decision": {
            "action": row.decision_action,
            "categories": list(row.categories),
            "rule": row.decision_rule,
            "policy": row.decision_policy,
        },
        "created_at": row.created_at.isoformat(),
        "status": row.status.value,
        "resolved_by": row.resolved_by,
        "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None,
        "outcome": row.outcome,
    }


def register(filter_app: typer.Typer) -> None:
    """Add ``reports`` to ``esafety filter``."""
    filter_app.command("reports")(reports)
