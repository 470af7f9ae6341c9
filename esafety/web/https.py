"""The web app over HTTPS, with a certificate for whatever name the browser asked for.

``esafety serve --https-port N`` (or ``[web] https_port``) runs a second uvicorn server in
the same process and on the same event loop as the HTTP one, serving the same app. Its
TLS context comes from :meth:`esafety.security.ca.LeafCertificates.server_context`: during
each handshake the SNI callback swaps in a context whose certificate names the host the
browser asked for, made from the school CA and remembered in a bounded LRU. So
``https://blocked.example/`` shows the block page without a warning on devices that trust
the school CA, and esafety's own name gets a certificate too.

Why a second uvicorn server rather than one with two listeners: uvicorn gives one
``Config`` (so one SSL context, or none) to all of a server's sockets; a second
``uvicorn.Server`` over a socket we bind ourselves is uvicorn's own public API
(``ssl_context_factory``, ``serve(sockets=...)``), runs the app's lifespan once (its own
is off), and lets a port that is taken be reported as a clear error before anything
starts. It leaves signal handling to the HTTP server and stops when that one does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

import uvicorn

from esafety.errors import ConfigError, NotFound
from esafety.filtering.blockpage import own_names
from esafety.security.ca import LeafCertificates, load_ca

if TYPE_CHECKING:
    from fastapi import FastAPI

    from esafety.installation import Installation

__all__ = ["HttpsListener"]


class _Follower(uvicorn.Server):
    """A uvicorn server that leaves Ctrl+C and SIGTERM to the main (HTTP) server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and ipaddress.ip_address(host.strip("[]")).is_unspecified:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host.strip("[]"), port))
    except (OSError, ValueError) as error:
        sock.close()
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise ConfigError(
            f"HTTPS cannot listen on {host} port {port}: {reason}; choose another with "
            "--https-port, or leave HTTPS off"
        ) from None
    return sock


class HttpsListener:
    """The HTTPS side of ``esafety serve``: start it after the app exists, close it after."""

    def __init__(self, inst: Installation, app: FastAPI, host: str, port: int) -> None:
        self.inst = inst
        self.app = app
        self.host = host
        self.requested_port = port
        self.leaves: LeafCertificates | None = None
        self.server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1]) if self._socket is not None else 0

    def default_names(self) -> list[str]:
        """Names on the certificate for clients that send none (by IP address)."""
        names = [self.host.strip("[]"), *sorted(own_names(self.inst.settings)), "127.0.0.1"]
        return [
            n
            for n in dict.fromkeys(names)
            if n and not (_is_ip(n) and ipaddress.ip_address(n).is_unspecified)
        ]

    async def start(self) -> None:
        """Bind, then serve; raises ConfigError (no CA, port taken) before serving anything."""
        try:
            ca = load_ca(self.inst.data_dir)
        except NotFound as error:
            raise ConfigError(f"HTTPS needs the school CA: {error}") from None
        self._socket = _bind(self.host, self.requested_port)
        self.leaves = LeafCertificates(ca)
        context = self.leaves.server_context(self.default_names())

        def factory(
            _config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]
        ) -> ssl.SSLContext:
            return context

        config = uvicorn.Config(
            self.app,
            lifespan="off",  # the HTTP server runs the app's lifespan (the scheduler) once
            ssl_context_factory=factory,
            log_level=self.inst.settings.log_level,
            proxy_headers=False,
            server_header=False,
        )
        self.server = _Follower(config)
        self._task = asyncio.create_task(self.server.serve(sockets=[self._socket]))
        for _ in range(500):  # up to 5 s for uvicorn to start listening
            if self.server.started or self._task.done():
                break
            await asyncio.sleep(0.01)
        if self._task.done():
            await self.close()
            raise ConfigError("the HTTPS server stopped as it started: see the log above")

    async def close(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, SystemExit):
                await self._task
            self._task = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self.leaves is not None:
            self.leaves.close()
            self.leaves = None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
