"""Signing in and out of the staff workspace, and its home page."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse

from ..auth import Staff, check_password, refuse
from . import session
from .pages import render

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/login")
def login_form(request: Request, next: str = "/ui/"):
    if session.signed_in(request) is not None:
        return RedirectResponse(session.safe_next(next), status_code=303)
    return render(request, "login.html", next=session.safe_next(next), errors=[], name="")


@router.post("/login")
def login(request: Request, name: str = Form(""), password: str = Form(""), next: str = Form("/ui/")):
    errors = []
    if not name.strip():
        errors.append(("name", "Enter your user name"))
    if not password:
        errors.append(("password", "Enter your password"))
    staff = check_password(request, name.strip(), password) if not errors else None
    if staff is None and not errors:
        refuse(request, 401, "web login: wrong user name or password")
        errors.append(("name", "The user name or password is not right"))
    if errors:
        return render(request, "login.html", status=401 if staff is None and name.strip() and password else 422,
                      next=session.safe_next(next), errors=errors, name=name.strip())
    session.start(request, staff)
    response = RedirectResponse(session.safe_next(next), status_code=303)
    session.set_cookies(request, response)
    return response


@router.post("/logout")
def logout(request: Request):
    response = RedirectResponse("/ui/login", status_code=303)
    session.end(request, response)
    return response


@router.get("/")
def home(request: Request, staff: Staff = Depends(session.web_user("staff"))):
    return render(request, "home.html")
