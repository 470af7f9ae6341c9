"""``esafety serve``: run the web app on a local port (no root needed)."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["register"]


def serve(
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on (default 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", min=1, max=65535, help="Port (default 8080).")
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Create the demo school first (once), then serve.")
    ] = False,
) -> None:
    """Serve esafety's pages and API, and print the address to open."""
    import uvicorn

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
    shown = f"[{host}]" if ":" in host else host
    console.print(
        f"esafety is running at http://{shown}:{port}/  (Ctrl+C stops it)", highlight=False
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=inst.settings.log_level,
        proxy_headers=False,
        server_header=False,
    )


def register(app: typer.Typer, users_app: typer.Typer) -> None:
    """Add ``esafety serve`` to the root command."""
    app.command("serve")(serve)
