"""The ``esafety`` command. Thin: parses, calls a service, prints.

Each slice adds its commands in its own ``cli.py``; they are mounted here.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from esafety.errors import EsafetyError

__all__ = ["app", "main"]

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="esafety",
    help="esafety: filtering, monitoring, safeguarding records and acceptable use for schools.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Show the effective settings.", no_args_is_help=True)
db_app = typer.Typer(help="Create and upgrade the database.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
users_app = typer.Typer(help="People's accounts and API tokens.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.add_typer(users_app, name="users")


@app.callback()
def _global(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Data directory (database, keys, audit head). Env: ESAFETY_DATA.",
            envvar="ESAFETY_DATA",
            show_envvar=False,
        ),
    ] = None,
) -> None:
    if data is not None:
        # Through the environment so that esafety.toml in that directory is found too.
        os.environ["ESAFETY_DATA"] = str(data.resolve())


def installation(*, check_keys: bool = True) -> Any:
    """The installation for this command, its database upgraded to the newest schema.

    Refuses to go on when sealed records need keys that are missing (``check_keys``;
    only ``esafety keys show`` looks without it).
    """
    from esafety.installation import Installation

    inst = Installation()
    _opened.append(inst)
    inst.upgrade()
    if check_keys:
        inst.check_keys()
    return inst


#: Installations opened by the running command, closed when it ends.
_opened: list[Any] = []


@config_app.command("show")
def config_show(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the effective settings, secrets masked."""
    from esafety.config import load_settings, masked

    values = masked(load_settings())
    if as_json:
        print(json.dumps(values, indent=2, default=str))
        return
    _print_toml(values)


def _print_toml(values: dict[str, Any], prefix: str = "") -> None:
    tables = {
        k: v
        for k, v in values.items()
        if isinstance(v, dict) and v and all(not isinstance(x, dict) for x in v.values())
    }
    for key, value in values.items():
        if key in tables:
            continue
        if isinstance(value, dict):
            _print_toml(value, f"{prefix}{key}.")
            continue
        console.print(
            f"{prefix}{key} = {json.dumps(value, default=str)}", markup=False, highlight=False
        )
    for key, table in tables.items():
        console.print(f"\n[{prefix}{key}]", markup=False, highlight=False)
        for item, value in table.items():
            console.print(
                f"{item} = {json.dumps(value, default=str)}", markup=False, highlight=False
            )


@db_app.command("upgrade")
def db_upgrade(
    no_starter_lists: Annotated[
        bool,
        typer.Option(
            "--no-starter-lists",
            help="Do not load the starter filter lists (also [filtering] starter_lists = false).",
        ),
    ] = False,
) -> None:
    """Create the database or bring it to the newest schema, and load the starter lists."""
    inst = installation()
    console.print(f"Database is up to date: {inst.settings.sqlalchemy_url.split('@')[-1]}")
    if inst.settings.filtering.starter_lists and not no_starter_lists:
        from esafety.filtering.upkeep import load_starter_lists

        loaded = load_starter_lists(inst)
        if loaded:
            console.print(f"Starter filter lists loaded: {', '.join(loaded)}", highlight=False)


@audit_app.command("head")
def audit_head() -> None:
    """Print the newest audit entry's number and hash (for a governor to note)."""
    from esafety.audit import GENESIS, AuditHead

    inst = installation()
    with inst.db.session() as session:
        head = session.get(AuditHead, 1)
        seq, digest = (head.seq, head.hash) if head else (0, GENESIS)
    print(f"{seq} {digest}")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the whole chain; name the first entry that was tampered with."""
    from esafety.audit import verify_chain

    inst = installation()
    with inst.db.session() as session:
        count, problem = verify_chain(session, inst.audit_head_file)
    if problem is not None:
        err_console.print(f"[bold red]Audit trail broken[/]: {problem.message}", highlight=False)
        raise typer.Exit(1)
    console.print(f"Audit trail intact: {count} entries checked.")


_mounted = False


def _mount() -> None:
    # Slices register their own commands; imported here so `esafety --help` lists them.
    global _mounted
    if _mounted:
        return
    _mounted = True
    from esafety.directory import cli as directory_cli
    from esafety.filtering import cli as filtering_cli
    from esafety.filtering import reports_cli
    from esafety.safeguarding import cli as safeguarding_cli
    from esafety.sealing import cli as sealing_cli
    from esafety.security import ca_cli
    from esafety.security import cli as security_cli
    from esafety.web import cli as web_cli

    directory_cli.register(app, users_app)
    filtering_cli.register(app, users_app)
    reports_cli.register(filtering_cli.filter_app)
    safeguarding_cli.register(app, users_app)
    sealing_cli.register(app, users_app)
    ca_cli.register(app, users_app)
    security_cli.register(app, users_app)
    web_cli.register(app, users_app)


def main() -> None:
    _mount()
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except EsafetyError as exc:
        # Escaped: messages name settings as "[radius] secret", which is not markup.
        err_console.print(f"[bold red]Error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("Aborted.")
        sys.exit(130)
    except Exception as exc:  # usage errors carry their own exit code and message
        show = getattr(exc, "show", None)
        if callable(show) and hasattr(exc, "exit_code"):
            show()
            sys.exit(exc.exit_code)
        raise
    finally:
        while _opened:
            _opened.pop().close()
