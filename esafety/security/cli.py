"""Account commands: API tokens, password resets, unlocking (mounted by esafety.cli).

    esafety users token create USERNAME --name LABEL    the token alone on the last line
    esafety users token list USERNAME
    esafety users token revoke USERNAME --name LABEL
    esafety users password set USERNAME [--password-stdin] [--permanent]
    esafety users unlock USERNAME
    esafety users two-step reset USERNAME [--reason TEXT]   after a lost phone

These act on the server's authority (the ``system:cli`` actor), and are audited.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from esafety.audit import SYSTEM
from esafety.errors import InvalidInput

__all__ = ["register"]

token_app = typer.Typer(help="Personal API tokens for integrations.", no_args_is_help=True)
password_app = typer.Typer(help="Set people's passwords.", no_args_is_help=True)
two_step_app = typer.Typer(help="Two-step sign-in.", no_args_is_help=True)

Username = Annotated[str, typer.Argument(help="The person's username (see `esafety users list`).")]
Label = Annotated[str, typer.Option("--name", help="What the token is for, e.g. 'timetable sync'.")]


@token_app.command("create")
def token_create(username: Username, name: Label) -> None:
    """Create a token; it is printed once, alone on the last line, and stored hashed."""
    from esafety.cli import installation
    from esafety.security import service

    inst = installation()
    person = service.find_person(inst, username)
    token, info = service.create_token(inst, person.id, name, actor=SYSTEM)
    print(f"API token {info.name!r} for {person.username} (send as 'Authorization: Bearer ...').")
    print("It is shown only now; revoke it with `esafety users token revoke`.")
    print(token)


@token_app.command("list")
def token_list(
    username: Username,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List a person's tokens (names and dates; never the tokens)."""
    from esafety.cli import installation
    from esafety.security import service

    inst = installation()
    person = service.find_person(inst, username)
    tokens = service.list_tokens(inst, person.id, actor=SYSTEM)
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "id": t.id,
                        "name": t.name,
                        "created_at": t.created_at.isoformat(),
                        "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                        "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
                    }
                    for t in tokens
                ],
                indent=2,
            )
        )
        return
    if not tokens:
        print(f"{person.username} has no API tokens.")
    for t in tokens:
        state = f"revoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "active"
        used = f"last used {t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never used"
        print(f"{t.id}\t{t.name}\tcreated {t.created_at:%Y-%m-%d %H:%M}\t{used}\t{state}")


@token_app.command("revoke")
def token_revoke(username: Username, name: Label) -> None:
    """Revoke the person's active tokens with this name."""
    from esafety.cli import installation
    from esafety.security import service

    inst = installation()
    person = service.find_person(inst, username)
    revoked = service.revoke_tokens_named(inst, person.id, name, actor=SYSTEM)
    print(f"Revoked {len(revoked)} token(s) named {name!r} for {person.username}.")


@password_app.command("set")
def password_set(
    username: Username,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    permanent: Annotated[
        bool,
        typer.Option(
            "--permanent",
            help="Do not ask the person to choose their own at the next sign-in "
            "(the school's full password rules then apply).",
        ),
    ] = False,
) -> None:
    """Set a password. By default it is temporary: the person must change it at sign-in."""
    from esafety.cli import installation
    from esafety.security import service

    inst = installation()
    person = service.find_person(inst, username)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt(
            f"New password for {person.username}", hide_input=True, confirmation_prompt=True
        )
    if not password:
        raise InvalidInput("the password is empty; type one, or give it on standard input")
    service.set_password(inst, person.id, password, actor=SYSTEM, temporary=not permanent)
    then = "" if permanent else " They will choose their own when they next sign in."
    print(f"Password set for {person.username}.{then}")


def unlock(username: Username) -> None:
    """Clear a lockout after too many failed sign-ins."""
    from esafety.cli import installation
    from esafety.security import service

    inst = installation()
    service.unlock_account(inst, username, actor=SYSTEM)
    print(f"{username} can sign in again.")


@two_step_app.command("reset")
def two_step_reset(
    username: Username,
    reason: Annotated[
        str,
        typer.Option(
            "--reason", help="Why, for the audit trail (e.g. 'phone lost; checked in person')."
        ),
    ] = "reset on the server's command line",
) -> None:
    """Turn off a person's two-step sign-in after a lost phone; their sessions end.

    If their role needs two-step sign-in, they set it up again at their next sign-in.
    """
    from esafety.cli import installation
    from esafety.security import service

    inst = installation()
    person = service.find_person(inst, username)
    result = service.reset_two_step(inst, person.id, actor=SYSTEM, reason=reason)
    then = (
        " They must set it up again when they next sign in."
        if result.must_enrol_again
        else " They can set it up again from their account page."
    )
    print(
        f"Two-step sign-in reset for {result.username}; "
        f"{result.sessions_ended} session(s) ended.{then}"
    )


def register(app: typer.Typer, users_app: typer.Typer) -> None:
    """Add this slice's commands to the ``users`` group."""
    users_app.add_typer(token_app, name="token")
    users_app.add_typer(password_app, name="password")
    users_app.add_typer(two_step_app, name="two-step")
    users_app.command("unlock")(unlock)
