"""Staff authentication and roles.

People log in with their account (:mod:`portability.accounts`): HTTP Basic on the API, or the
web workspace's session, which verifies through :func:`check_password` too. Machines use bearer
tokens: the plugin's token (``Settings.plugin_token``) is accepted only by the routes the plugin
calls (:func:`machine_or_staff`); ``Settings.staff_tokens`` are integration tokens with a role.
Roles are ranked ``staff`` (= ``clinician``) < ``reviewer`` < ``dpo``; a route asks for a
minimum role. Patients hold either a download token (see ``routers.downloads``) or a patient
token (``X-Patient-Token`` header, issued by staff, bound to one PatientID): with it they see
their consents, withdraw them, and file rectification and erasure requests for themselves only.
Every refusal (401/403/429) is audited as ``access.refused``; failed logins as ``login.failed``.
"""
from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request

from . import accounts, audit, logins

ROLES = accounts.ROLES
PLUGIN = "orthanc-gdpr-plugin"  #: the name the plugin's token acts under
MACHINE = "machine"


@dataclass(frozen=True)
class Staff:
    name: str
    role: str
    patient: tuple[str, str] | None = None  #: (PatientID, issuer) for a patient token

    @property
    def is_patient(self) -> bool:
        return self.role == "patient"

    @property
    def may_act_for_care(self) -> bool:
        return accounts.may_act_for_care(self.role)


def refuse(request: Request, status: int, reason: str) -> None:
    """Audit a refused access (``access.refused``); never raises."""
    try:
        audit.record("access.refused", status=status, reason=reason, method=request.method,
                     path=request.url.path, client=_client(request))
    except Exception:  # noqa: BLE001 - never turn a refusal into a 500
        pass


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, {"error": "unauthorized", "detail": message},
                         headers={"WWW-Authenticate": 'Basic realm="orthanc-gdpr", Bearer'})


def _login(request: Request, name: str, password: str, channel: str) -> logins.Outcome:
    outcome = logins.authenticate(request.app.state.db, name, password, _client(request), channel)
    if outcome.ok:
        audit.note_role(outcome.name, outcome.role)
    return outcome


def check_password(request: Request, name: str, password: str) -> Staff | None:
    """The staff member ``name`` if ``password`` is theirs and the account is enabled, else
    ``None`` (also while failed attempts lock the account or address): the ONE place a staff
    password is verified (HTTP Basic and the web login both come here). Failures are audited."""
    outcome = _login(request, name, password, "web")
    return Staff(outcome.name, outcome.role) if outcome.ok else None


def lookup_staff(request: Request, name: str) -> Staff | None:
    """The staff member ``name`` as the account store knows them now (role included), or ``None``
    when the account no longer exists or is disabled: web sessions re-check this on every request."""
    account = accounts.get(request.app.state.db, name)
    if account is None or not account.enabled:
        return None
    audit.note_role(account.name, account.role)
    return Staff(account.name, account.role)


def has_role(staff: Staff, role: str) -> bool:
    """``staff`` holds ``role`` or a higher one (``staff`` = ``clinician`` < ``reviewer`` < ``dpo``)."""
    return accounts.rank(staff.role) >= accounts.RANK[role]


def current_staff(request: Request) -> Staff:
    try:
        return _current_staff(request)
    except HTTPException as e:
        refuse(request, e.status_code, e.detail["detail"])
        raise


def _bearer(request: Request, value: str) -> Staff | None:
    settings = request.app.state.settings
    if settings.plugin_token and hmac.compare_digest(settings.plugin_token.encode(), value.encode()):
        audit.note_role(PLUGIN, MACHINE)
        return Staff(PLUGIN, MACHINE)
    for token, role in settings.staff_tokens.items():
        if hmac.compare_digest(token.encode(), value.encode()):
            audit.note_role(f"token:{token[:4]}…", f"{role} (integration token)")
            return Staff(f"token:{token[:4]}…", role)
    return None


def _current_staff(request: Request) -> Staff:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise _unauthorized("malformed Basic credentials") from None
        outcome = _login(request, user, password, "api")
        if outcome.result == "throttled":
            raise HTTPException(429, {"error": "too-many-attempts",
                                      "detail": "too many failed logins for this account or address; try later"},
                                headers={"Retry-After": str(int(logins.LOCK.total_seconds()))})
        if not outcome.ok:
            raise _unauthorized("wrong user name or password, or account disabled")
        return Staff(outcome.name, outcome.role)
    if scheme.lower() == "bearer":
        staff = _bearer(request, value)
        if staff is None:
            raise _unauthorized("unknown bearer token")
        return staff
    raise _unauthorized("staff credentials required (HTTP Basic or bearer token)")


def require(role: str):
    accounts.RANK[role]  # an unknown role is a programming error, raised at import

    def dep(request: Request, staff: Staff = Depends(current_staff)) -> Staff:
        if not has_role(staff, role):
            refuse(request, 403, f"{staff.name} ({staff.role}) needs role {role!r} or higher")
            raise HTTPException(403, {"error": "forbidden", "detail": f"needs role {role!r} or higher"})
        return staff

    return dep


def plugin_only(request: Request, staff: Staff = Depends(current_staff)) -> Staff:
    """The plugin's own token, nobody else: for the plugin's login checks."""
    if staff.role != MACHINE:
        refuse(request, 403, f"{staff.name} ({staff.role}): route of the Orthanc plugin's token only")
        raise HTTPException(403, {"error": "forbidden", "detail": "for the Orthanc plugin's token only"})
    return staff


def machine_or_staff(role: str):
    """The plugin's own token, or staff of at least ``role``: for the routes the plugin calls."""
    staff_dep = require(role)

    def dep(request: Request, staff: Staff = Depends(current_staff)) -> Staff:
        return staff if staff.role == MACHINE else staff_dep(request, staff)

    return dep


def patient_token_hash(token: str) -> str:
    import hashlib

    return hashlib.sha256(token.encode()).hexdigest()


def staff_or_patient(role: str = "staff"):
    """Staff of at least ``role``, or a patient holding a valid ``X-Patient-Token``."""
    staff_dep = require(role)

    def dep(request: Request) -> Staff:
        token = request.headers.get("x-patient-token")
        if not token:
            return staff_dep(request, current_staff(request))
        from .models import PatientToken, aware, utcnow

        with request.app.state.db.session() as s:
            row = s.query(PatientToken).filter_by(token_sha256=patient_token_hash(token)).one_or_none()
            if row is None or aware(row.expires_at) <= utcnow():
                reason = "unknown patient token" if row is None else "expired patient token"
                refuse(request, 401, reason)
                raise HTTPException(401, {"error": "unauthorized", "detail": reason})
            audit.note_role(f"patient-token:{row.id}", "patient")
            return Staff(f"patient-token:{row.id}", "patient", (row.patient_id, row.issuer))

    return dep


def same_patient_or_403(request: Request, who: Staff, patient_id: str, issuer: str) -> None:
    """A patient token acts for its own patient only."""
    if who.is_patient and who.patient != (patient_id, issuer or ""):
        refuse(request, 403, f"{who.name} acts for another patient")
        raise HTTPException(403, {"error": "forbidden", "detail": "a patient token acts for its own patient only"})
