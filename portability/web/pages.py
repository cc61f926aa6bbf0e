"""Rendering pages: one Jinja2 environment (autoescape on), :func:`render`, and the error pages.

Error pages never show a stack trace, an exception text from a library, or a value a person
typed: only messages written for them (``PageError``) and field names with the rule broken.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, RedirectResponse, Response

from ..auth import ROLES, has_role
from . import session

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals["ROLES"] = ROLES
templates.env.filters["dicom_date"] = lambda v: f"{v[:4]}-{v[4:6]}-{v[6:8]}" if len(v or "") == 8 and v.isdigit() else (v or "")
templates.env.filters["pair"] = lambda v: (v, v)
templates.env.filters["utc"] = lambda ts: datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M") if ts else ""

#: The navigation of the workspace: (path, label, minimum role). Pages add themselves here from
#: their own module (``NAV.append(...)``) so that the layout needs no edit per page.
NAV: list[tuple[str, str, str]] = [("/ui/", "Home", "staff")]


class PageError(Exception):
    """A clear error page: ``status``, a short ``title`` and a plain-language ``message``.

    Neither may contain a patient's value or identifier: say which field and which rule.
    """

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    """Render ``template`` with the layout's context (signed-in person, nav, CSRF token)."""
    staff = session.signed_in(request)
    nav = [(p, label) for p, label, role in NAV
           if staff is not None and has_role(staff, role)]
    response = templates.TemplateResponse(
        request, template,
        {"staff": staff, "nav": nav, "csrf_token": session.csrf_token(request), **context},
        status_code=status)
    session.set_cookies(request, response)
    return response


TITLES = {400: "Bad request", 401: "Sign in needed", 403: "You cannot see this page",
          404: "Page not found", 405: "Not allowed", 409: "Conflict", 410: "No longer available",
          413: "Too large", 422: "There is a problem with the request", 502: "Orthanc is not answering"}

MESSAGES = {
    404: "The address may be wrong, or what it pointed to no longer exists.",
    403: "Your role does not allow this. Ask a data protection officer if you need access.",
    405: "This address does not accept that kind of request.",
    502: "The image archive (Orthanc) did not answer. Try again in a minute; if it persists, "
         "tell the PACS team.",
}


def error_page(request: Request, status: int, message: str | None = None,
               title: str | None = None, problems: list[tuple[str, str]] | None = None) -> Response:
    return render(request, "error.html", status=status, title=title or TITLES.get(status, "Something went wrong"),
                  message=message or MESSAGES.get(status, ""), problems=problems or [])


def is_page(request: Request) -> bool:
    return request.url.path == "/ui" or request.url.path.startswith("/ui/")


def install_error_pages(app) -> None:
    """HTML error pages for ``/ui/``; other paths keep their JSON answers."""
    from fastapi.exception_handlers import http_exception_handler

    from ..errors import invalid_request

    @app.exception_handler(PageError)
    async def _page(request: Request, exc: PageError):
        if not is_page(request):
            return JSONResponse({"error": exc.title, "detail": exc.message}, status_code=exc.status)
        return error_page(request, exc.status, exc.message, exc.title)

    @app.exception_handler(session.LoginRequired)
    async def _login(request: Request, exc: session.LoginRequired):
        return RedirectResponse(session.login_url(exc.next_path), status_code=303)

    @app.exception_handler(session.RoleTooLow)
    async def _role(request: Request, exc: session.RoleTooLow):
        return error_page(request, 403, f"This page needs the role {exc.role} or higher. "
                                        "Ask a data protection officer if you need access.")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if not is_page(request):
            return await http_exception_handler(request, exc)
        return error_page(request, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        if not is_page(request):
            return invalid_request(exc)
        # Name the field and the rule; never echo the value (it may be a patient's).
        problems = [(str(e["loc"][-1]) if e.get("loc") else "request", e.get("msg", "is not valid"))
                    for e in exc.errors()]
        return error_page(request, 422, "Please correct the following and try again.", problems=problems)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        # Reached only for unexpected errors; the traceback goes to the server log, never to a page.
        if is_page(request):
            return error_page(request, 500, "Something went wrong on our side. The error has been "
                                            "logged; try again, and tell the PACS team if it persists.",
                              title="Something went wrong")
        return Response('{"error": "internal", "detail": "internal error"}', status_code=500,
                        media_type="application/json")
