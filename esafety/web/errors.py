"""Errors become HTTP answers here, in one place: JSON under /api/, pages elsewhere.

* :class:`EsafetyError` (domain errors) answer with their ``status_code`` and message;
  on pages, "not signed in" (401) redirects to the sign-in page (or the next sign-in step).
* Routing and validation errors get the same shapes.
* Anything unexpected is logged and answered 500 with a plain message, never a traceback.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from esafety.errors import AuthenticationFailed, EsafetyError, PermissionDenied

__all__ = ["LastResortMiddleware", "install_error_handlers", "is_api", "safe_next"]

log = logging.getLogger("esafety.web")

_HEADINGS = {
    400: "That did not work",
    401: "Please sign in",
    403: "You cannot open this page",
    404: "Page not found",
    405: "That is not allowed here",
    422: "Something needs correcting",
    500: "Something went wrong",
}


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def safe_next(value: str | None) -> str:
    """A local path to go back to after signing in (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _kind(exc: BaseException) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def _json(status: int, kind: str, detail: Any, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": kind, "detail": detail}, status_code=status, headers=headers)


def _page(request: Request, status: int, message: str) -> Response:
    from esafety.web.pages import render

    caller = getattr(request.state, "caller", None)
    return render(
        request,
        "error.html",
        {"heading": _HEADINGS.get(status, "That did not work"), "message": message},
        caller=caller,
        status_code=status,
    )


def _sign_in_redirect(request: Request, exc: AuthenticationFailed) -> Response:
    page = getattr(exc, "page", "/sign-in")
    target = page
    if request.method in ("GET", "HEAD") and request.url.path != page:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target = f"{page}?next={quote(safe_next(here), safe='/')}"
    return RedirectResponse(target, status_code=303)


async def _esafety_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, EsafetyError):  # pragma: no cover - registered for EsafetyError
        raise exc
    status = exc.status_code
    if status >= 500:
        log.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
    if is_api(request):
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return _json(status, _kind(exc), str(exc), headers)
    if isinstance(exc, AuthenticationFailed):
        return _sign_in_redirect(request, exc)
    message = str(exc)
    if isinstance(exc, PermissionDenied):
        message = message[:1].upper() + message[1:]
    return _page(request, status, message)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "unexpected error"
    messages = {
        404: "There is no page at this address. Check the link, or start again from your home page.",
        405: "This address does not accept that kind of request.",
    }
    if is_api(request):
        return _json(status, "http_error", detail)
    return _page(request, status, messages.get(status, str(detail)))


def _describe(errors: list[Any]) -> list[str]:
    lines = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        lines.append(f"{where or 'request'}: {err.get('msg', 'is not valid')}")
    return lines


async def _validation_error(request: Request, exc: Exception) -> Response:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    problems = _describe(list(errors))
    if is_api(request):
        return _json(422, "invalid_input", problems)
    return _page(request, 422, "Please check what you entered: " + "; ".join(problems) + ".")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(EsafetyError, _esafety_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)


class LastResortMiddleware:
    """An unexpected exception is logged and answered 500 (JSON or a plain page)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            response = _last_resort(str(scope.get("path", "")))
            await response(scope, receive, send)


def _last_resort(path: str) -> Response:
    message = (
        "esafety met an unexpected problem and did not finish this request. Nothing was "
        "saved. Try again; if it happens again, tell your IT technician the time it happened."
    )
    if path.startswith("/api/"):
        return _json(500, "internal_error", message)
    html = (
        '<!doctype html><html lang="en-GB"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>Something went wrong</title><link rel="stylesheet" href="/static/esafety.css">'
        '</head><body><main id="content" class="wrap"><section class="panel panel--narrow">'
        f'<h1>Something went wrong</h1><p class="lead">{message}</p>'
        '<p><a class="button" href="/">Go to your home page</a></p></section></main></body></html>'
    )
    return Response(html, status_code=500, media_type="text/html")
