"""The staff web workspace under ``/ui/``: server-rendered pages, no script, one stylesheet.

How to add pages (for every page module)
----------------------------------------
Write a router module of your own (e.g. ``portability/web/desk.py``) and list it in
:data:`PAGE_ROUTERS` below::

    from fastapi import APIRouter, Depends, Form, Request
    from ..auth import Staff
    from .pages import NAV, PageError, render
    from .session import web_user

    router = APIRouter(prefix="/ui", include_in_schema=False)
    NAV.append(("/ui/desk", "Rights desk", "staff"))      # shown in the header nav for that role+

    @router.get("/desk")
    def desk(request: Request, staff: Staff = Depends(web_user("staff"))):
        return render(request, "desk.html", cases=[...])   # template in web/templates/

    @router.post("/desk/{case}/close")                      # CSRF is checked before you get here
    def close(request: Request, case: int, reason: str = Form(""),
              staff: Staff = Depends(web_user("reviewer"))):
        if not reason.strip():
            return render(request, "desk.html", status=422, errors=[("reason", "Enter a reason")])
        raise PageError(404, "Case not found", "There is no open case with that number.")

- ``web_user(min_role)``: signed out -> 303 to ``/ui/login?next=...``; role too low -> 403 page
  (audited as ``access.refused``). Roles: ``staff`` < ``reviewer`` < ``dpo``
  (:func:`portability.auth.has_role`).
- ``render(request, template, status=200, **context)``: every template gets ``staff`` (the
  signed-in person), ``nav``, ``csrf_token`` and ``request``.
- ``PageError(status, title, message)``: a clear error page. Never put a patient's value or
  identifier in a title, message or URL path; name the field and the rule instead.
  Unknown routes (404), validation errors (422, field names only), ``ServiceError``s and
  unexpected errors (500, no traceback) get pages too, for paths under ``/ui/``.

Templates (``web/templates/``)
------------------------------
Extend ``base.html`` and fill ``{% block title %}`` (never an identifier) and
``{% block content %}``. The layout has a skip link to ``#main``, a header with the signed-in
person, role and a sign-out button, and the nav. Form helpers live in ``_forms.html``::

    {% from "_forms.html" import error_summary, field, textarea, select, radios, csrf with context %}
    <h1>Close the case</h1>                {# one h1 first; no heading level skipped #}
    {{ error_summary(errors) }}            {# errors: [(field_id, message)]; links to each field #}
    <form method="post" action="/ui/desk/1/close" novalidate>
      {{ csrf() }}                          {# the hidden csrf_token input: in EVERY form #}
      {{ field("reason", "Reason", value=reason, errors=errors, hint="Plain words") }}
      <button class="button" type="submit">Close case</button>
    </form>

No ``style=`` attributes and no ``<script>``: the Content-Security-Policy
(``default-src 'self'``) blocks them. Styles go into the one stylesheet ``static/gdpr.css``
(classes: ``button``, ``button--secondary``, ``button--warning``, ``table``, ``tag``,
``tag--red``/``--green``/``--grey``/``--amber``, ``panel``, ``summary-list``, ``inset``,
``visually-hidden``, ``grid``/``grid__half``).

Security (:mod:`.protection`, :mod:`.session`)
----------------------------------------------
Headers on every answer (CSP, frame-ancestors none, nosniff, no-referrer, ``no-store``). Session
cookie HttpOnly + SameSite=Strict (+ Secure over https), stored hashed in ``web_sessions``,
re-checked against the account store (:func:`portability.auth.lookup_staff`) on each request;
passwords are checked only by :func:`portability.auth.check_password`. CSRF token on every
unsafe ``/ui/`` request, checked in the middleware before any route runs.

Browser tests: ``tests/browser.py`` (fixture ``browser`` in ``tests/conftest.py``).
"""
from __future__ import annotations

from fastapi import FastAPI, Response
from fastapi.staticfiles import StaticFiles

from . import anonymity, anonymous, login, releases, studies
from .desk import access, audit, cases, consent, decisions, flags, notices, users
from .pages import HERE, error_page, install_error_pages
from .protection import Protection

#: Every router of the workspace (each module a page group of its own).
PAGE_ROUTERS = [login.router, studies.router, releases.router, anonymous.router, anonymity.router, cases.router,
                access.router, decisions.router, notices.router, flags.router, consent.router, audit.router,
                users.router]


def install(app: FastAPI) -> None:
    """Add the workspace to ``app``: middleware, error pages, stylesheet and page routers."""
    app.add_middleware(Protection)
    app.state.error_page = error_page
    install_error_pages(app)
    app.mount("/ui/static", StaticFiles(directory=str(HERE / "static")), name="ui-static")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        """Browsers ask for it on every page; no icon, and no 404 in their console."""
        return Response(status_code=204)

    for router in PAGE_ROUTERS:
        app.include_router(router)
