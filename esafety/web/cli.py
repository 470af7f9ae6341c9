"""``esafety serve``: run the web app and the DNS filter on local ports (no root needed)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from fastapi import FastAPI

    from esafety.filtering.dns_service import DnsService
    from esafety.filtering.serve_parts import ServeParts
    from esafety.installation import Installation
    from esafety.web.https import HttpsListener

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
    dns_workers: Annotated[
        int | None,
        typer.Option(
            "--dns-workers",
            min=0,
            max=64,
            help="Processes answering DNS, one a core (default [dns] workers: one a CPU "
            "when there are several; 1 answers in this process).",
        ),
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Create the demo school first (once), then serve.")
    ] = False,
    https_port: Annotated[
        int | None,
        typer.Option(
            "--https-port",
            min=0,
            max=65535,
            help="Also serve HTTPS here, with certificates from the school CA "
            "(default: the web.https_port setting, off).",
        ),
    ] = None,
    radius_port: Annotated[
        int | None,
        typer.Option(
            "--radius-port",
            min=0,
            max=65535,
            help="Wi-Fi RADIUS accounting port (default [radius] port, 18130; needs "
            "[radius] secret).",
        ),
    ] = None,
) -> None:
    """Serve esafety's pages and API and the DNS filter, and print the addresses to use."""
    from esafety.cli import console, installation
    from esafety.web.app import create_app

    inst = installation()
    if dns_workers is not None:
        dns_settings = inst.settings.dns.model_copy(update={"workers": dns_workers})
        inst.settings = inst.settings.model_copy(update={"dns": dns_settings})
    host = host or inst.settings.web.host
    port = port or inst.settings.web.port
    if demo:
        from esafety.demo import ensure_demo
        from esafety.demo_cli import print_demo

        print_demo(ensure_demo(inst), console)
    app = create_app(inst, run_jobs=True)
    # The retention schedule's daily run (issue 5 §8; esafety.safeguarding.retention).
    from esafety.safeguarding.retention import ensure_retention_job

    ensure_retention_job(inst)
    # The block page links back to esafety's own pages on this port; HTTPS is started
    # beside the HTTP server when a port is given (esafety.web.https).
    app.state.web_port = port
    app.state.https_port = https_port if https_port is not None else inst.settings.web.https_port
    # RADIUS accounting, DSL alerts, metrics, upkeep (esafety.filtering.serve_parts).
    app.state.radius_port = radius_port
    # On uvloop when it is installed: the DNS filter answers on this loop (one worker)
    # and each turn of asyncio's own loop costs microseconds a query (issue 4 "Figures").
    run: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        run = uvloop.run
    run(_serve(inst, app, host, port, None if no_dns else dns_port, not no_dns))


async def _serve(
    inst: Installation, app: FastAPI, host: str, port: int, dns_port: int | None, dns: bool
) -> None:
    """uvicorn and the DNS filter on one event loop; stopping one stops both."""
    import uvicorn

    from esafety.cli import console
    from esafety.errors import ConfigError
    from esafety.filtering.dns_service import DnsService

    # Before anything starts: a stop during start-up (the DNS workers already answer while
    # the web app is still starting) must still close what has started and flush the output.
    _exit_cleanly_on_sigterm()
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
            console.print(
                f"warning: DNS filter not started: {error}", highlight=False, markup=False
            )
            service = None
    if service is not None and service.server is not None:
        # Answering DNS on this loop: keep the cycle collector and other threads from
        # stalling it (esafety.filtering.dns_workers.tune_for_serving).
        from esafety.filtering.dns_workers import tune_for_serving

        tune_for_serving()
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
            f"DNS filter answering on {settings.host} port {service.port} (UDP and TCP"
            + (f", {service.workers} worker processes)" if service.workers > 1 else ")"),
            highlight=False,
        )
        for warning in service.warnings:
            console.print(f"warning: DNS filter: {warning}", highlight=False, markup=False)
    https: HttpsListener | None = None
    parts: ServeParts | None = None
    # Grave concerns by e-mail to their readers (esafety.safeguarding.tell_dsl).
    from esafety.safeguarding.tell_dsl import TellDsl

    telling = TellDsl(inst)
    try:
        https = await _start_https(inst, app, host)  # a ConfigError still closes the DNS filter
        parts = await _start_filter_parts(inst, app, service)
        telling.start()
        server = uvicorn.Server(config)
        # Open live streams (the DSL's desk) end when it is asked to stop, so they never
        # hold up the shutdown (esafety.safeguarding.live.stopping).
        app.state.server = server
        await server.serve()
    finally:
        await asyncio.to_thread(telling.stop)
        if https is not None:
            await https.close()
        if service is not None:
            await service.close()
        if parts is not None:  # after the DNS filter: its last batch still raises alerts
            await parts.close()


async def _start_https(inst: Installation, app: FastAPI, host: str) -> HttpsListener | None:
    """The HTTPS listener when a port is set ([web] https_port or --https-port), else None."""
    port = getattr(app.state, "https_port", None)
    if port is None:
        return None
    from esafety.cli import console
    from esafety.web.https import HttpsListener

    listener = HttpsListener(inst, app, host, port)
    await listener.start()
    shown = f"[{host}]" if ":" in host else host
    console.print(
        f"HTTPS (block pages for https:// addresses) at https://{shown}:{listener.port}/",
        highlight=False,
    )
    return listener


async def _start_filter_parts(
    inst: Installation, app: FastAPI, dns: DnsService | None
) -> ServeParts:
    """Starter lists and upkeep jobs, then RADIUS accounting, DSL alerts and metrics."""
    from esafety.cli import console
    from esafety.filtering.serve_parts import ServeParts, prepare

    for line in await asyncio.to_thread(prepare, inst):
        console.print(line, highlight=False, markup=False)
    parts = ServeParts(inst, radius_port=getattr(app.state, "radius_port", None))
    try:
        lines = await parts.start(dns)
    except BaseException:
        await parts.close()
        raise
    for line in lines:
        console.print(line, highlight=False, markup=False)
    return parts


def _exit_cleanly_on_sigterm() -> None:
    """Make SIGTERM (systemd's stop) an ordinary exit once uvicorn has shut down.

    uvicorn catches the signal, stops, and then raises it again with the handler it found:
    the default one would end the process before the ``finally`` above closes the DNS
    filter (its last logged batch), RADIUS accounting and the DSL alerts.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)


def _terminated(_signum: int, _frame: object) -> NoReturn:
    raise SystemExit(0)


def register(app: typer.Typer, users_app: typer.Typer) -> None:
    """Add ``esafety serve`` to the root command."""
    app.command("serve")(serve)
