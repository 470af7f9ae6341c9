"""``esafety serve``: run the web app and the DNS filter on local ports (no root needed)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from fastapi import FastAPI

    from esafety.installation import Installation

__all__ = ["register"]


def serve(
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on (default 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", min=1, max=65535, help="Port (default 8080).")
    ] = None,
    dns_port: Annotated[
        int | None,
        typer.Option(
            "--dns-port", min=1, max=65535, help="DNS filter port (default [dns] port, 8053)."
        ),
    ] = None,
    no_dns: Annotated[
        bool, typer.Option("--no-dns", help="Do not run the DNS filter, only the web app.")
    ] = False,
    demo: Annotated[
        bool, typer.Option("--demo", help="Create the demo school first (once), then serve.")
    ] = False,
) -> None:
    """Serve esafety's pages and API and the DNS filter, and print the addresses to use."""
    from esafety.cli import console, installation
    from esafety.web.app import create_app

    inst = installation()
    host = host or inst.settings.web.host
    port = port or inst.settings.web.port
    if demo:
        from esafety.demo import ensure_demo
        from esafety.demo_cli import print_demo

        print_demo(ensure_demo(inst), console)
    app = create_app(inst, run_jobs=True)
    asyncio.run(_serve(inst, app, host, port, None if no_dns else dns_port, not no_dns))


async def _serve(
    inst: Installation, app: FastAPI, host: str, port: int, dns_port: int | None, dns: bool
) -> None:
    """uvicorn and the DNS filter on one event loop; stopping one stops both."""
    import uvicorn

    from esafety.cli import console
    from esafety.errors import ConfigError
    from esafety.filtering.dns_service import DnsService

    service: DnsService | None = None
    settings = inst.settings.dns
    if dns and settings.enabled:
        if dns_port is not None:
            settings = settings.model_copy(update={"port": dns_port})
        service = DnsService(inst, settings, web_host=host)
        try:
            await service.start()
        except ConfigError as error:
            if dns_port is not None:
                raise  # asked for by name: not getting it is an error
            # The configured port is taken (another esafety, a test run): the web app is
            # still useful, so say loudly that this run does not filter DNS.
            console.print(f"warning: DNS filter not started: {error}", highlight=False)
            service = None
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=inst.settings.log_level,
        proxy_headers=False,
        server_header=False,
    )
    shown = f"[{host}]" if ":" in host else host
    console.print(
        f"esafety is running at http://{shown}:{port}/  (Ctrl+C stops it)", highlight=False
    )
    if service is not None:
        console.print(
            f"DNS filter answering on {settings.host} port {service.port} (UDP and TCP)",
            highlight=False,
        )
        for warning in service.warnings:
            console.print(f"warning: DNS filter: {warning}", highlight=False)
    try:
        await uvicorn.Server(config).serve()
    finally:
        if service is not None:
            await service.close()


def register(app: typer.Typer, users_app: typer.Typer) -> None:
    """Add ``esafety serve`` to the root command."""
    app.command("serve")(serve)
