"""``esafety demo``: create the demo school (once) and say how to sign in as each role.

``print_demo`` is shared with ``esafety serve --demo``.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from esafety.demo import DemoInfo
from esafety.security.roles import Role

__all__ = ["print_demo", "register"]


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo() -> None:
    """Create the demo school (once) and print how to sign in as each role."""
    from esafety.cli import installation
    from esafety.demo import ensure_demo

    inst = installation()
    print_demo(ensure_demo(inst), Console())


def print_demo(info: DemoInfo, console: Console) -> None:
    """The sign-in table for the demo school, the DSL's authenticator secret included."""
    what = "Created" if info.created else "Found"
    console.print(
        f"{what} the demo school: {info.school_name} ({info.school_slug}).", highlight=False
    )
    console.print(_sign_in_table(info, wide=console.width >= 120))
    dsl = next((entry for entry in info.logins if entry.role is Role.DSL), None)
    if dsl is not None and dsl.otpauth_uri:
        console.print(
            "Roles with a secret sign in with a code from an authenticator app: add the "
            "secret to the app by hand, or open this link on the phone (the DSL's):",
            highlight=False,
        )
        console.print(dsl.otpauth_uri, highlight=False, soft_wrap=True, markup=False)
        console.print(
            f"DSL: {dsl.username} / {dsl.password} / secret {dsl.totp_secret}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )


def _sign_in_table(info: DemoInfo, *, wide: bool) -> Table:
    # Passwords and secrets are copied by hand: never fold or cut them. On a narrow
    # terminal each role's details stack in one cell instead.
    if not wide:
        table = Table("Role", "Sign in with", title="Demo sign-in")
        for login in info.logins:
            lines = [f"username  {login.username}", f"password  {login.password}"]
            if login.totp_secret:
                lines.append(f"secret    {login.totp_secret}")
            table.add_row(f"{login.role.label}\n[dim]{login.display_name}[/]", "\n".join(lines))
        return table
    table = Table("Role", "Name", "Username", "Password", "Authenticator secret (TOTP)")
    for index in (2, 3, 4):
        table.columns[index].no_wrap = True
    for login in info.logins:
        table.add_row(
            login.role.label,
            login.display_name,
            login.username,
            login.password,
            login.totp_secret or "",
        )
    return table
