"""Security headers on every answer, and the CSRF check on every unsafe request under ``/ui/``.

A plain ASGI middleware (no response buffering, so large downloads still stream):

- ``Content-Security-Policy: default-src 'self'; frame-ancestors 'none'; form-action 'self';
  base-uri 'none'`` (no inline script or style can run), ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: no-referrer``, ``X-Frame-Options: DENY``, and ``Cache-Control: no-store``
  unless the route chose its own caching (pages and API answers may carry PHI; the stylesheet
  under ``/ui/static/`` may be cached).
- ``POST``/``PUT``/``PATCH``/``DELETE`` under ``/ui/`` must carry the form field ``csrf_token``
  (or the header ``X-CSRF-Token``) matching the browser's session or login cookie
  (:func:`portability.web.session.csrf_for`); otherwise the answer is a 403 page and the refusal
  is audited. Form bodies are read here (at most :data:`MAX_FORM_BYTES`) and handed on unchanged.
"""
from __future__ import annotations

import hmac
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import session

CSP = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
MAX_FORM_BYTES = 256 * 1024


class Protection:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():  # a route's own policy (the API docs) stays
                    if name not in headers:
                        headers[name] = value
                if "cache-control" not in headers and not path.startswith("/ui/static/"):
                    headers["cache-control"] = "no-store"
            await send(message)

        if scope["method"] not in SAFE_METHODS and (path == "/ui" or path.startswith("/ui/")):
            body = await _read_body(receive)
            if body is None or not _csrf_ok(scope, body):
                await _refuse(scope, body, send_with_headers, "too large" if body is None else "csrf")
                return
            receive = _replay(body)
        await self.app(scope, receive, send_with_headers)


async def _read_body(receive: Receive) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _csrf_ok(scope: Scope, body: bytes) -> bool:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    cookies = SimpleCookie()
    try:
        cookies.load(headers.get("cookie", ""))
    except Exception:  # noqa: BLE001 - a malformed cookie header is simply no cookie
        return False
    morsel = cookies.get(session.SESSION_COOKIE) or cookies.get(session.LOGIN_COOKIE)
    if morsel is None or not morsel.value:
        return False
    sent = headers.get("x-csrf-token")
    if sent is None and headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        try:
            sent = parse_qs(body.decode("utf-8"), max_num_fields=200).get("csrf_token", [None])[0]
        except (UnicodeDecodeError, ValueError):
            return False
    return bool(sent) and hmac.compare_digest(sent, session.csrf_for(morsel.value))


async def _refuse(scope: Scope, body: bytes | None, send: Send, why: str) -> None:
    from ..auth import refuse
    from .pages import error_page

    request = Request(scope, _replay(body or b""))
    if why == "csrf":
        refuse(request, 403, "form without a valid CSRF token")
        response = error_page(request, 403, "This form has expired or did not come from this site. "
                                            "Go back, reload the page and try again.",
                              title="The form could not be accepted")
    else:
        response = error_page(request, 413, "The form is too large.")
    await response(scope, _replay(b""), send)
