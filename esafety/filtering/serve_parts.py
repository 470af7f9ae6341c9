"""What ``esafety serve`` runs for the filter beside the DNS server and the web app.

* before serving (:func:`prepare`): the starter lists (once; ``[filtering]
  starter_lists``) and the recurring upkeep jobs (:mod:`esafety.filtering.upkeep`);
* while serving (:class:`ServeParts`): Wi-Fi RADIUS accounting when a secret is set
  (:mod:`esafety.filtering.radius`) and the DSL alerts fed by the DNS filter's decision
  log (:mod:`esafety.filtering.alerts`, through ``DnsService.add_log_listener``).

The DNS filter itself follows the sign-in events (:mod:`esafety.filtering.sign_ins`), so a
RADIUS or API sign-in is in force within a moment, and registers its own counters for
``/metrics``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from esafety.audit import Actor
from esafety.errors import ConfigError
from esafety.filtering.serving import served_school_id
from esafety.installation import Installation

if TYPE_CHECKING:
    from esafety.filtering.alerts import DslAlerts
    from esafety.filtering.dns_service import DnsService
    from esafety.filtering.radius import RadiusListener

__all__ = ["ServeParts", "prepare"]

log = logging.getLogger(__name__)


def prepare(inst: Installation) -> list[str]:
    """Load the starter lists (unless turned off) and set up the upkeep jobs; returns
    lines to print."""
    from esafety.filtering.upkeep import ensure_upkeep_jobs, load_starter_lists

    lines = []
    if inst.settings.filtering.starter_lists:
        loaded = load_starter_lists(inst)
        if loaded:
            lines.append(f"Starter filter lists loaded: {', '.join(loaded)}")
    ensure_upkeep_jobs(inst)
    return lines


class ServeParts:
    """RADIUS accounting and DSL alerts, started and closed on the serving loop."""

    def __init__(self, inst: Installation, *, radius_port: int | None = None) -> None:
        self.inst = inst
        self.radius_port = radius_port
        self.radius: RadiusListener | None = None
        self.alerts: DslAlerts | None = None
        self._stops: list[Callable[[], None]] = []

    async def start(self, dns: DnsService | None) -> list[str]:
        """Start each part; returns lines to print (warnings included)."""
        lines: list[str] = []
        await self._start_alerts(dns)
        radius = await self._start_radius()
        if radius is not None:
            lines.append(radius)
        return lines

    async def _start_alerts(self, dns: DnsService | None) -> None:
        from esafety.filtering.alerts import DslAlerts

        settings = self.inst.settings
        try:
            school_id = await asyncio.to_thread(self._school, settings.dns.school, "[dns] school")
        except ConfigError as error:
            log.warning("DSL alerts are off: %s", error)
            return
        window = timedelta(minutes=settings.filtering.alert_window_minutes)
        self.alerts = DslAlerts(self.inst, school_id, window)
        self.alerts.start()
        if dns is not None:
            self._stops.append(dns.add_log_listener(self.alerts.sink.take))

    def _school(self, slug: str | None, setting: str) -> int | None:
        with self.inst.db.session(Actor.system("serve")) as session:
            return served_school_id(session, slug, setting)

    async def _start_radius(self) -> str | None:
        settings = self.inst.settings
        radius = settings.radius
        if self.radius_port is not None:
            radius = radius.model_copy(update={"port": self.radius_port})
        if radius.secret is None or not radius.secret.get_secret_value():
            if self.radius_port is not None:
                raise ConfigError(
                    "--radius-port needs the controller's shared secret: set [radius] secret "
                    "(or ESAFETY_RADIUS__SECRET)"
                )
            return None
        from esafety.filtering.radius import RadiusListener

        listener = RadiusListener(self.inst, radius, fallback_school=settings.dns.school)
        try:
            await listener.start()
        except ConfigError as error:
            if self.radius_port is not None:
                raise
            return f"warning: RADIUS accounting not started: {error}"
        self.radius = listener
        return f"RADIUS accounting listening on {radius.host} port {listener.port} (UDP)"

    async def close(self) -> None:
        """Stop the parts (after the DNS filter, so its last batch still raises alerts)."""
        if self.radius is not None:
            await self.radius.close()
            self.radius = None
        for stop in reversed(self._stops):
            stop()
        self._stops = []
        if self.alerts is not None:
            await asyncio.to_thread(self.alerts.stop)
            self.alerts = None
