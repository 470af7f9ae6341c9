"""``esafety ca create`` and ``esafety ca show``: the school CA for HTTPS block pages."""

from __future__ import annotations

import json
import stat
from typing import Annotated

import typer

__all__ = ["register"]

ca_app = typer.Typer(
    help="The school CA that signs HTTPS block pages (trust it on managed devices).",
    no_args_is_help=True,
)


def _default_name() -> str:
    """The school's name when there is one school, else 'esafety'."""
    from sqlalchemy import select

    from esafety.audit import SYSTEM
    from esafety.cli import installation
    from esafety.directory.model import School

    with installation().db.session(SYSTEM) as session:
        names = list(session.scalars(select(School.name).limit(2)))
    return names[0] if len(names) == 1 else "esafety"


@ca_app.command("create")
def create(
    name: Annotated[
        str | None,
        typer.Option("--name", help="The school's name, shown on devices (default: the school's)."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace an existing CA (every device must trust the new one)."
        ),
    ] = False,
) -> None:
    """Make the school CA: a key (mode 0600) and a certificate in DATA/ca/."""
    from esafety.cli import installation
    from esafety.security.ca import create_ca

    inst = installation()
    made = create_ca(inst.data_dir, name or _default_name(), force=force)
    typer.echo(f"School CA made for {made.name}.")
    typer.echo(f"Certificate: {made.cert_path}")
    typer.echo(f"Key:         {made.key_path} (mode 0600: guard it)")
    typer.echo(f"SHA-256 fingerprint: {made.fingerprint}")
    typer.echo(
        "Next: trust the certificate on the school's managed devices (docs/deployment.md, "
        "'The school CA'), then serve HTTPS with `esafety serve --https-port 8443`."
    )


@ca_app.command("show")
def show(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Where the school CA's certificate is, and its fingerprint."""
    from esafety.cli import installation
    from esafety.security.ca import load_ca

    inst = installation()
    ca = load_ca(inst.data_dir)
    mode = stat.S_IMODE(ca.key_path.stat().st_mode)
    facts = {
        "name": ca.name,
        "subject": ca.certificate.subject.rfc4514_string(),
        "certificate": str(ca.cert_path),
        "key": str(ca.key_path),
        "key_mode": f"{mode:04o}",
        "sha256_fingerprint": ca.fingerprint,
        "spki_sha256": ca.spki_sha256,
        "not_before": ca.certificate.not_valid_before_utc.isoformat(),
        "not_after": ca.not_after.isoformat(),
    }
    if as_json:
        typer.echo(json.dumps(facts, sort_keys=True))
        return
    typer.echo(f"School CA: {facts['name']} ({facts['subject']})")
    typer.echo(f"Certificate: {facts['certificate']}")
    typer.echo(f"Key:         {facts['key']} (mode {facts['key_mode']})")
    typer.echo(f"SHA-256 fingerprint: {facts['sha256_fingerprint']}")
    typer.echo(f"Public key SHA-256 (SPKI): {facts['spki_sha256']}")
    typer.echo(f"Valid until: {ca.not_after:%d %B %Y}")
    if mode & 0o077:
        typer.echo(
            f"warning: the key file can be read by others (mode {mode:04o}): "
            f"chmod 600 {ca.key_path}",
            err=True,
        )


def register(app: typer.Typer, users_app: typer.Typer) -> None:
    """Add ``esafety ca`` to the root command."""
    app.add_typer(ca_app, name="ca")
