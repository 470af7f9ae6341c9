"""The block page: what a browser sees when the DNS filter sent a blocked name to esafety.

The DNS filter answers a blocked name with the block page's address, the web app's
(issue 4 §7), so the browser asks esafety for ``http://blocked.example/anything`` with
``Host: blocked.example``. :class:`BlockPageMiddleware` sits in front of the app: a
request whose Host is not one of esafety's own names (:func:`own_names`) never reaches
the app or its sign-in page; it gets the block page for the person at that device
(:mod:`esafety.filtering.blockwords`), decided again now by the engine.

Status 403 Forbidden: the school's filter refuses the resource. Every browser shows a
403's own page (Chrome, Edge, Firefox, Safari; only old Internet Explorer replaced pages
under 512 bytes, and ours is larger), while a non-2xx status keeps link previews, apps,
caches and service workers from taking the block page for the site's content. 451
(Unavailable For Legal Reasons) is not used: it would say why an illegal-content block
happened. Requests that are not page loads (images, scripts, API calls of a blocked
tracker) get a short plain 403 without touching the database.

On the blocked name itself (the same origin as the page) live the page's style sheet
and its report form, ``/.esafety/report``: no session exists there, so the form carries a
token signed with the installation's secret over site, device and time
(:func:`esafety.filtering.reports.report_token`), and reports are rate-limited per device.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from esafety.audit import Actor
from esafety.config import Settings
from esafety.db import utcnow
from esafety.directory.model import School
from esafety.errors import EsafetyError, InvalidInput, PermissionDenied
from esafety.filtering import asking, reports
from esafety.filtering.blockwords import BlockView, Outcome, view_for
from esafety.filtering.decision import UNKNOWN_DEVICE
from esafety.filtering.engine_cache import engines_for
from esafety.filtering.hostnames import normalise_host
from esafety.filtering.model import ClientSignIn, SubnetMapping
from esafety.filtering.reports_model import ReportKind, ReportSource
from esafety.installation import Installation

__all__ = [
    "REPORTS_PER_HOUR",
    "BlockPageMiddleware",
    "host_of",
    "is_own_host",
    "own_names",
    "school_for_client",
]

log = logging.getLogger(__name__)

#: Paths on the blocked name that are the block page's own.
PREFIX = "/.esafety/"
STYLE_PATH = PREFIX + "block.css"
REPORT_PATH = PREFIX + "report"
THANKS_PATH = PREFIX + "thanks"
#: A device may send this many reports an hour (a brake on a loop, not an accounting).
REPORTS_PER_HOUR = 10
#: The report form is small; anything bigger is not from our page.
MAX_FORM_BYTES = 16_384
STATUS = 403

_STYLE = Path(__file__).resolve().parent.parent / "web" / "static" / "blockpage.css"
_SHORT = "Blocked by the school's web filter. Tell a trusted adult if you need this.\n"


# -- whose name is it ---------------------------------------------------------------------


def own_names(settings: Settings) -> frozenset[str]:
    """The names esafety itself answers to (besides IP addresses and dotless names)."""
    names = {"localhost", settings.web.host, *settings.web.names}
    if settings.web.base_url:
        names.add(urlsplit(settings.web.base_url).hostname or "")
    return frozenset(n.strip().lower().rstrip(".") for n in names if n and n.strip()) - {""}


def host_of(scope: Scope) -> str:
    """The Host header without its port, lower case, no trailing dot ("" when absent)."""
    raw = b""
    for name, value in scope.get("headers") or ():
        if name == b"host":
            raw = value
            break
    text = raw.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    return text.rstrip(".")


def is_own_host(host: str, own: frozenset[str]) -> bool:
    """esafety's own: no Host, an IP address, a dotless name (``localhost``, an intranet
    short name), or a configured name. Anything else is a name the DNS filter sent here.

    A blocked name always has a dot (lists name registrable domains and their subdomains),
    so a dotless name is safe to treat as esafety's: it keeps ``http://esafety/`` on a
    school network working without configuration.
    """
    if not host or host in own or "." not in host:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def school_for_client(session: Session, slug: str | None, client: str) -> int | None:
    """The school whose device this is: the DNS filter's school when set, the only
    school, else the school of the device's current sign-in or mapped network."""
    if slug:
        return session.scalar(select(School.id).where(School.slug == slug.strip()))
    ids = list(session.scalars(select(School.id).limit(2)))
    if len(ids) <= 1:
        return ids[0] if ids else None
    signed = session.scalars(
        select(ClientSignIn.school_id)
        .where(ClientSignIn.client == client, ClientSignIn.expires_at > utcnow())
        .order_by(ClientSignIn.signed_in_at.desc())
    ).first()
    if signed is not None:
        return signed
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return None
    best: tuple[int, int] | None = None
    for row in session.scalars(select(SubnetMapping)):
        network = ipaddress.ip_network(row.network)
        inside = network.version == address.version and address in network
        if inside and (best is None or network.prefixlen > best[0]):
            best = (network.prefixlen, row.school_id)
    return best[1] if best is not None else None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    text = str(client[0]) if client else ""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _wants_page(request: Request) -> bool:
    """A page load (a browser navigating asks for HTML), not an image, script or API call."""
    accept = request.headers.get("accept", "")
    return request.method in ("GET", "HEAD", "POST") and "text/html" in accept


# -- the middleware -----------------------------------------------------------------------


class BlockPageMiddleware:
    """Requests for names that are not esafety's own get the block page, never the app."""

    def __init__(self, app: ASGIApp, inst: Installation) -> None:
        self.app = app
        self.inst = inst
        self.own = own_names(inst.settings)
        self.limiter = reports.RateLimiter(REPORTS_PER_HOUR, 3600.0)
        self._secret: bytes | None = None
        self._style: bytes | None = None
        self._warned: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = host_of(scope)
        if is_own_host(host, self.own):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":  # a blocked site's socket: refuse before accepting
            await send({"type": "websocket.close", "code": 1008})
            return
        response = await self.answer(Request(scope, receive), host)
        await response(scope, receive, send)

    @property
    def secret(self) -> bytes:
        if self._secret is None:
            self._secret = self.inst.settings.secret()
        return self._secret

    async def answer(self, request: Request, host: str) -> Response:
        path = request.url.path
        if path == STYLE_PATH and request.method in ("GET", "HEAD"):
            return self.style()
        if path == REPORT_PATH and request.method == "POST":
            return await self.report(request, host)
        if not _wants_page(request):
            return PlainTextResponse(_SHORT, status_code=STATUS)
        client = _client(request.scope)
        view = await run_in_threadpool(self.view, host, client)
        if path == THANKS_PATH and request.method in ("GET", "HEAD"):
            kind = request.query_params.get("kind", "")
            return self.page("filtering/block_thanks.html", view, 200, kind=kind)
        if view.outcome is Outcome.ALLOWED and host not in self._warned and len(self._warned) < 100:
            self._warned.add(host)
            log.warning(
                "block page shown for %r, which the filter allows: if esafety is reached "
                "by that name, add it to [web] names (or set [web] base_url)",
                host,
            )
        return self.page("filtering/block.html", view, STATUS, request=request, client=client)

    # -- who and what -----------------------------------------------------------------

    def view(self, host_text: str, client: str) -> BlockView:
        """Who is at ``client``, and what the engine decides for them and the host now."""
        try:
            host: str | None = normalise_host(host_text)
        except InvalidInput:
            host = None
        settings = self.inst.settings
        with self.inst.db.session(Actor.system("block page")) as session:
            school_id = school_for_client(session, settings.dns.school, client)
        if school_id is None:
            return view_for(
                person=None, policy_id=None, how="", host=None, decision=None, engine=None
            )
        # The engine first: it reads in a session of its own, which must not wait for ours
        # (SQLite transactions take the write lock when they begin).
        engine = engines_for(self.inst).engine(school_id) if host is not None else None
        actor = Actor(name="system:block page", school_id=school_id, address=client or None)
        with self.inst.db.session(actor, school_id=school_id) as session:
            try:
                who = asking.who_is_at(session, client)
                asker, person, how = who.asker, who.person, who.how
            except InvalidInput:  # not an IP address (a test client): an unknown device
                asker, person, how = UNKNOWN_DEVICE, None, "unknown device"
            if host is None or engine is None:
                return view_for(
                    person=person, policy_id=asker.policy_id, how=how, host=None,
                    decision=None, engine=None,
                )  # fmt: skip
            decision = engine.decide_host(asker, host, time.time())
            return view_for(
                person=person,
                policy_id=asker.policy_id,
                how=how,
                host=host,
                decision=decision,
                engine=engine,
            )

    # -- answers ------------------------------------------------------------------------

    def page(
        self,
        template: str,
        view: BlockView,
        status: int,
        *,
        request: Request | None = None,
        client: str = "",
        **extra: Any,
    ) -> HTMLResponse:
        from esafety.web.pages import environment

        form = None
        if request is not None and view.can_report and view.host is not None:
            issued = int(time.time())
            form = {
                "token": reports.report_token(self.secret, view.host, client, issued),
                "issued": str(issued),
                "url": str(request.url)[:2000],
            }
        unblock = None
        if view.can_ask_to_unblock and view.host is not None and request is not None:
            unblock = f"{self._own_origin(request)}/filtering/requests/new?site={quote(view.host)}"
        html = environment.get_template(template).render(
            {
                "view": view,
                "band": view.band.value,
                "form": form,
                "report_path": REPORT_PATH,
                "style_path": STYLE_PATH,
                "unblock_url": unblock,
                # A pupil may tell someone about a worry (issue 5 §1), on esafety's own address.
                "worry_url": f"{self._own_origin(request)}/worry" if request is not None else None,
                **extra,
            }
        )
        return HTMLResponse(html, status_code=status)

    def _own_origin(self, request: Request) -> str:
        """esafety's own address, for links from the block page to its pages."""
        base = self.inst.settings.web.base_url
        if base:
            return base.rstrip("/")
        server = request.scope.get("server")
        address = str(server[0]) if server else self.inst.settings.web.host
        port = getattr(request.app.state, "web_port", None) if "app" in request.scope else None
        shown = f"[{address}]" if ":" in address else address
        return f"http://{shown}:{port or self.inst.settings.web.port}"

    def style(self) -> Response:
        if self._style is None:
            self._style = _STYLE.read_bytes()
        return Response(self._style, media_type="text/css")

    def problem(self, message: str, status: int) -> HTMLResponse:
        from esafety.web.pages import environment

        html = environment.get_template("filtering/block_problem.html").render(
            {"message": message[:1].upper() + message[1:], "style_path": STYLE_PATH}
        )
        return HTMLResponse(html, status_code=status)

    async def report(self, request: Request, host_text: str) -> Response:
        """The block page's buttons: check the token and the rate, then store the report."""
        length = request.headers.get("content-length", "")
        if not length.isdigit() or int(length) > MAX_FORM_BYTES:
            return self.problem("that report was too large to be from this page.", 413)
        form = await request.form(max_files=0, max_fields=10)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        await form.close()
        client = _client(request.scope)
        try:
            host = normalise_host(host_text)
            reports.check_report_token(
                self.secret, host, client, fields.get("issued", ""), fields.get("token", "")
            )
            kind = reports.report_kind(fields.get("kind", ""))
        except PermissionDenied as error:
            return self.problem(str(error), 403)
        except InvalidInput as error:
            return self.problem(str(error), 400)
        if not self.limiter.allow(client):
            return self.problem(
                "this device has sent a lot of reports in the last hour, so this one was not "
                "sent. Please tell a trusted adult about the website instead.",
                429,
            )
        try:
            saved = await run_in_threadpool(
                self.save_report, host, client, kind, fields.get("comment", ""), fields.get("url")
            )
        except EsafetyError as error:
            return self.problem(str(error), error.status_code)
        if not saved:
            return self.problem(
                "this report could not be kept: the device does not belong to a school. "
                "Please tell a trusted adult about the website instead.",
                400,
            )
        return RedirectResponse(f"{THANKS_PATH}?kind={kind.value}", status_code=303)

    def save_report(
        self, host: str, client: str, kind: ReportKind, comment: str, url: str | None
    ) -> bool:
        view = self.view(host, client)
        with self.inst.db.session(Actor.system("block page")) as session:
            school_id = school_for_client(session, self.inst.settings.dns.school, client)
        if school_id is None:
            return False
        actor = Actor(name="system:block page", school_id=school_id, address=client or None)
        with self.inst.db.session(actor, school_id=school_id) as session:
            reports.record_report(
                session,
                site=host,
                kind=kind,
                source=ReportSource.BLOCK_PAGE,
                decision=view.decision,
                illegal=view.illegal,
                comment=comment,
                url=url,
                reporter_id=view.person_id,
                client=client or None,
            )
        return True
