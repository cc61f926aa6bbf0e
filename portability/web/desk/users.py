"""The DPO's user administration: add an account (password generated, shown once), disable or
enable it, reset its password, change its role. Calls ``/api/users``' functions: one account store."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse

from ... import accounts
from ...auth import Staff
from ...routers import users as api
from ..pages import NAV
from ..session import web_user
from . import attempt, form_data, page, parse

router = APIRouter(prefix="/ui/desk/users", include_in_schema=False)
NAV.append(("/ui/desk/users", "Users", "dpo"))
LABELS = {"name": "User name", "role": "Role"}


def _users_page(request: Request, staff: Staff, errors=None, values=None, shown=None, status=None):
    return page(request, "desk/users.html", status=status, errors=errors, values=values or {"role": "staff"},
                users=api.list_users(staff, request.app.state.db), shown=shown,
                roles=[(r, r) for r in accounts.ROLES])


@router.get("")
def users(request: Request, staff: Staff = Depends(web_user("dpo"))):
    return _users_page(request, staff)


def _shown(answer: api.UserWithPassword) -> dict:
    return {"name": answer.user.name, "password": answer.generated_password}


@router.post("")
def add(request: Request, data: dict = Depends(form_data), staff: Staff = Depends(web_user("dpo"))):
    body, errors = parse(api.UserCreate, {"name": data.get("name", ""), "role": data.get("role", "")}, LABELS)
    answer = None
    if not errors:
        answer, errors = attempt(lambda: api.create_user(body, staff, request.app.state.db), "name")
        errors = [(m.split(":")[0] if m.split(":")[0] in LABELS else f, m) for f, m in errors]
    if errors:
        return _users_page(request, staff, errors, data)
    return _users_page(request, staff, shown=_shown(answer), status=201)  # the password, once, never redirected


@router.post("/{name}/{action}")
def act(request: Request, name: str, action: str, data: dict = Depends(form_data),
        staff: Staff = Depends(web_user("dpo"))):
    db = request.app.state.db
    calls = {"disable": lambda: api.disable_user(name, staff, db), "enable": lambda: api.enable_user(name, staff, db),
             "password": lambda: api.reset_password(name, api.PasswordReset(), staff, db),
             "role": lambda: api.change_role(name, api.RoleChange(role=data.get("role", "")), staff, db)}
    if action not in calls:
        return _users_page(request, staff, [("name", "Unknown action")])
    answer, errors = attempt(calls[action], f"role-{name}" if action == "role" else "name")
    if errors:
        return _users_page(request, staff, errors)
    if action == "password":
        return _users_page(request, staff, shown=_shown(answer))
    return RedirectResponse("/ui/desk/users", status_code=303)
