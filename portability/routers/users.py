"""Staff accounts through the API (``/api/users``, dpo only) and the plugin's login check.

``POST /api/logins/verify`` is what the Orthanc plugin asks (with its own token) for every
credential it has not verified recently: the same accounts, throttling and audit as the API.
Refusals (unknown role, duplicate user, weak password, ...) are answered 4xx naming the field and
the rule, and audited as ``user.refused``; no answer or record carries a password, except the
answer that shows a generated one, once.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, SecretStr

from .. import accounts, audit, logins
from ..auth import Staff, plugin_only, require
from ..errors import ServiceError
from .deps import db as get_db

router = APIRouter(prefix="/api", tags=["users"])


class UserCreate(BaseModel):
    name: str = Field(..., max_length=64, description="log-in name: lower-case letters, digits, '.', '_', '-'")
    role: str = Field(..., max_length=32, description=f"one of {', '.join(accounts.ROLES)}")
    password: SecretStr | None = Field(None, description="omit to have one generated (shown once in the answer)")


class PasswordReset(BaseModel):
    password: SecretStr | None = Field(None, description="omit to have one generated (shown once in the answer)")


class RoleChange(BaseModel):
    role: str = Field(..., max_length=32, description=f"one of {', '.join(accounts.ROLES)}")


class UserWithPassword(BaseModel):
    user: accounts.Account
    generated_password: str | None = Field(None, description="shown once; not stored anywhere readable")


class LoginCheck(BaseModel):
    name: str = Field(..., max_length=200)
    password: SecretStr = Field(..., max_length=1024)
    client: str | None = Field(None, max_length=90, description="the client address Orthanc saw")


class LoginAnswer(BaseModel):
    name: str
    role: str


CODES = {422: "invalid-account", 409: "conflict", 404: "not-found"}


def _refused(staff: Staff, action: str, name: str, e: accounts.AccountError) -> ServiceError:
    audit.record("user.refused", actor=staff.name, action=action, account=name if accounts.NAME.match(name) else None,
                 field=e.field, rule=e.rule)
    error = ServiceError(str(e))
    error.status, error.code = e.status, CODES[e.status]
    return error


def _password(body_password: SecretStr | None) -> tuple[str, bool]:
    if body_password is None:
        return accounts.generate_password(), True
    return body_password.get_secret_value(), False


@router.get("/users", response_model=list[accounts.Account])
def list_users(staff: Staff = Depends(require("dpo")), db=Depends(get_db)) -> list[accounts.Account]:
    return accounts.list_accounts(db)


@router.post("/users", status_code=201, response_model=UserWithPassword)
def create_user(body: UserCreate, staff: Staff = Depends(require("dpo")), db=Depends(get_db)) -> UserWithPassword:
    password, generated = _password(body.password)
    try:
        account = accounts.create(db, body.name, body.role, password, staff.name)
    except accounts.AccountError as e:
        raise _refused(staff, "create", body.name, e) from None
    audit.record("user.created", actor=staff.name, account=account.name, role=account.role, channel="api",
                 password="generated" if generated else "chosen")
    return UserWithPassword(user=account, generated_password=password if generated else None)


def _set_enabled(name: str, enabled: bool, staff: Staff, db) -> accounts.Account:
    try:
        account = accounts.set_enabled(db, name, enabled, staff.name)
    except accounts.AccountError as e:
        raise _refused(staff, "enable" if enabled else "disable", name, e) from None
    audit.record("user.enabled" if enabled else "user.disabled", actor=staff.name, account=name, channel="api")
    return account


@router.post("/users/{name}/disable", response_model=accounts.Account)
def disable_user(name: str, staff: Staff = Depends(require("dpo")), db=Depends(get_db)) -> accounts.Account:
    return _set_enabled(name, False, staff, db)


@router.post("/users/{name}/enable", response_model=accounts.Account)
def enable_user(name: str, staff: Staff = Depends(require("dpo")), db=Depends(get_db)) -> accounts.Account:
    return _set_enabled(name, True, staff, db)


@router.post("/users/{name}/role", response_model=accounts.Account)
def change_role(name: str, body: RoleChange, staff: Staff = Depends(require("dpo")), db=Depends(get_db)) -> accounts.Account:
    before = accounts.get(db, name)
    try:
        account = accounts.set_role(db, name, body.role)
    except accounts.AccountError as e:
        raise _refused(staff, "role", name, e) from None
    audit.record("user.role-changed", actor=staff.name, account=name, role=account.role,
                 previous=before.role if before else None, channel="api")
    return account


@router.post("/users/{name}/password", response_model=UserWithPassword)
def reset_password(name: str, body: PasswordReset, staff: Staff = Depends(require("dpo")),
                   db=Depends(get_db)) -> UserWithPassword:
    password, generated = _password(body.password)
    try:
        account = accounts.set_password(db, name, password)
    except accounts.AccountError as e:
        raise _refused(staff, "reset-password", name, e) from None
    audit.record("user.password-reset", actor=staff.name, account=name, channel="api",
                 password="generated" if generated else "chosen")
    return UserWithPassword(user=account, generated_password=password if generated else None)


@router.post("/logins/verify", response_model=LoginAnswer, include_in_schema=False)
def verify_login(body: LoginCheck, machine: Staff = Depends(plugin_only), db=Depends(get_db)):
    """For the Orthanc plugin: 200 with the role, 401 for a wrong or disabled login, 429 while locked."""
    outcome = logins.authenticate(db, body.name, body.password.get_secret_value(), body.client, "orthanc")
    if outcome.ok:
        return LoginAnswer(name=outcome.name, role=outcome.role or "")
    status = 429 if outcome.result == "throttled" else 401
    return JSONResponse({"error": "too-many-attempts" if status == 429 else "unauthorized",
                         "detail": "login refused"}, status_code=status)
