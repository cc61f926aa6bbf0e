"""Browser sessions of signed-in staff, their CSRF tokens, and the ``web_user`` page dependency.

- The session cookie (``gdpr_session``: HttpOnly, SameSite=Strict, Secure over https) holds a
  random token; the database (``web_sessions``) keeps only its SHA-256, so a copy of the database
  signs nobody in. Sessions end after :data:`IDLE` without a request, after :data:`LIFETIME` in
  any case, and at logout (the row is deleted).
- Every request re-reads the account through :func:`portability.auth.lookup_staff`: a removed
  account or a lowered role takes effect at once.
- The CSRF token of a form is an HMAC of the browser's session token (before login: of the
  ``gdpr_login`` cookie). Another site can neither read the cookie nor compute the token;
  :mod:`portability.web.protection` checks it on every unsafe request under ``/ui/``.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from urllib.parse import quote

from fastapi import Request
from starlette.responses import Response

from ..auth import Staff, has_role, lookup_staff, refuse
from ..models import WebSession, aware, utcnow

SESSION_COOKIE = "gdpr_session"
LOGIN_COOKIE = "gdpr_login"
IDLE = timedelta(minutes=30)
LIFETIME = timedelta(hours=12)


class LoginRequired(Exception):
    """Raised by :func:`web_user` when nobody is signed in: answered with a redirect to the login
    page, which brings the person back to ``next`` (a path of this site) afterwards."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class RoleTooLow(Exception):
    """Raised by :func:`web_user` when the signed-in person's role is below the page's."""

    def __init__(self, role: str) -> None:
        super().__init__(role)
        self.role = role


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_for(cookie_value: str) -> str:
    """The CSRF token that goes with a session (or login) cookie value."""
    return hmac.new(cookie_value.encode(), b"orthanc-gdpr csrf", hashlib.sha256).hexdigest()


def csrf_token(request: Request) -> str:
    """The CSRF token for forms on this page (templates get it as ``csrf_token``)."""
    cookie = getattr(request.state, "new_session_token", None) or request.cookies.get(SESSION_COOKIE)
    if not cookie:
        cookie = login_cookie(request)
    return csrf_for(cookie)


def login_cookie(request: Request) -> str:
    """The pre-login cookie value of this browser (made on first use, set by :func:`set_cookies`)."""
    value = request.cookies.get(LOGIN_COOKIE) or getattr(request.state, "new_login_token", None)
    if not value:
        value = request.state.new_login_token = secrets.token_urlsafe(32)
    return value


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/ui", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


def set_cookies(request: Request, response: Response) -> None:
    """Attach the cookies this request created (login cookie, new session) to ``response``."""
    new_login = getattr(request.state, "new_login_token", None)
    if new_login and not getattr(request.state, "new_session_token", None):
        _cookie(response, request, LOGIN_COOKIE, new_login, None)
    new_session = getattr(request.state, "new_session_token", None)
    if new_session:
        _cookie(response, request, SESSION_COOKIE, new_session, int(LIFETIME.total_seconds()))
        response.delete_cookie(LOGIN_COOKIE, path="/ui")


def start(request: Request, staff: Staff) -> None:
    """Sign ``staff`` in: a fresh session row; the cookie goes out with :func:`set_cookies`."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with request.app.state.db.session() as s:
        s.add(WebSession(token_sha256=_sha256(token), staff_name=staff.name, created_at=now,
                         last_seen_at=now, expires_at=now + LIFETIME))
    request.state.new_session_token = token
    request.state.staff = staff


def end(request: Request, response: Response) -> None:
    """Sign out: the session row is deleted and the cookie cleared."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        with request.app.state.db.session() as s:
            s.query(WebSession).filter_by(token_sha256=_sha256(token)).delete()
    response.delete_cookie(SESSION_COOKIE, path="/ui")


def signed_in(request: Request) -> Staff | None:
    """The staff member whose live session cookie came with ``request``, or ``None``."""
    if hasattr(request.state, "staff"):
        return request.state.staff
    staff = None
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        now = utcnow()
        with request.app.state.db.session() as s:
            row = s.get(WebSession, _sha256(token))
            if row is not None and (aware(row.expires_at) <= now or aware(row.last_seen_at) + IDLE <= now):
                s.delete(row)
                row = None
            if row is not None:
                staff = lookup_staff(request, row.staff_name)
                if staff is None:
                    s.delete(row)
                else:
                    row.last_seen_at = now
    request.state.staff = staff
    return staff


def web_user(min_role: str = "staff"):
    """Page dependency: the signed-in :class:`~portability.auth.Staff` holding ``min_role`` or
    higher. Signed out: redirect to the login page. Role too low: the 403 page (audited)."""

    def dep(request: Request) -> Staff:
        staff = signed_in(request)
        if staff is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequired(target if request.method == "GET" else "/ui/")
        if not has_role(staff, min_role):
            refuse(request, 403, f"{staff.name} ({staff.role}) needs role {min_role!r} or higher")
            raise RoleTooLow(min_role)
        return staff

    return dep


def login_url(next_path: str) -> str:
    return "/ui/login?next=" + quote(next_path, safe="/")


def safe_next(value: str | None) -> str:
    """A ``next`` target that stays on this site's workspace (no open redirect)."""
    if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui/"
