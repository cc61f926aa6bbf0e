"""Staff authentication (HTTP Basic or bearer tokens from the settings) and roles.

Roles are ordered: ``staff`` < ``reviewer`` < ``dpo``; a route asks for a minimum role.
Patients hold either a download token (see ``routers.downloads``) or a patient token
(``X-Patient-Token`` header, issued by staff, bound to one PatientID): with it they see their
consents, withdraw them, and file rectification and erasure requests for themselves only.
Every refusal (401/403) is audited as ``access.refused``.
"""
from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request

from .settings import ROLES


@dataclass(frozen=True)
class Staff:
    name: str
    role: str
    patient: tuple[str, str] | None = None  #: (PatientID, issuer) for a patient token

    @property
    def is_patient(self) -> bool:
        return self.role == "patient"


def refuse(request: Request, status: int, reason: str) -> None:
    """Audit a refused access (``access.refused``); never raises."""
    from . import audit

    try:
        audit.record("access.refused", status=status, reason=reason, method=request.method,
                     path=request.url.path, client=request.client.host if request.client else None)
    except Exception:  # noqa: BLE001 - never turn a refusal into a 500
        pass


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, {"error": "unauthorized", "detail": message},
                         headers={"WWW-Authenticate": 'Basic realm="orthanc-gdpr portability", Bearer'})


def check_password(request: Request, name: str, password: str) -> Staff | None:
    """The staff member ``name`` if ``password`` is theirs, else ``None``: the ONE place a staff
    password is verified (HTTP Basic and the web login both come here)."""
    known = request.app.state.settings.staff_users.get(name)
    # Compare against something even for an unknown name: no timing hint that the name exists.
    expected = known[0] if known else "\x00" * 32
    if hmac.compare_digest(expected.encode(), password.encode()) and known:
        return Staff(name, known[1])
    return None


def lookup_staff(request: Request, name: str) -> Staff | None:
    """The staff member ``name`` as the account store knows them now (role included), or ``None``
    when the account no longer exists: web sessions re-check this on every request."""
    known = request.app.state.settings.staff_users.get(name)
    return Staff(name, known[1]) if known else None


def has_role(staff: Staff, role: str) -> bool:
    """``staff`` holds ``role`` or a higher one (``staff`` < ``reviewer`` < ``dpo``)."""
    return staff.role in ROLES and ROLES.index(staff.role) >= ROLES.index(role)


def current_staff(request: Request) -> Staff:
    try:
        return _current_staff(request)
    except HTTPException as e:
        refuse(request, e.status_code, e.detail["detail"])
        raise


def _current_staff(request: Request) -> Staff:
    settings = request.app.state.settings
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise _unauthorized("malformed Basic credentials") from None
        staff = check_password(request, user, password)
        if staff is not None:
            return staff
        raise _unauthorized("wrong user name or password")
    if scheme.lower() == "bearer":
        for token, role in settings.staff_tokens.items():
            if hmac.compare_digest(token.encode(), value.encode()):
                return Staff(f"token:{token[:4]}…", role)
        raise _unauthorized("unknown bearer token")
    raise _unauthorized("staff credentials required (HTTP Basic or bearer token)")


def require(role: str):
    ROLES.index(role)  # an unknown role is a programming error, raised at import

    def dep(request: Request, staff: Staff = Depends(current_staff)) -> Staff:
        if not has_role(staff, role):
            refuse(request, 403, f"{staff.name} ({staff.role}) needs role {role!r} or higher")
            raise HTTPException(403, {"error": "forbidden", "detail": f"needs role {role!r} or higher"})
        return staff

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
            return Staff(f"patient-token:{row.id}", "patient", (row.patient_id, row.issuer))

    return dep


def same_patient_or_403(request: Request, who: Staff, patient_id: str, issuer: str) -> None:
    """A patient token acts for its own patient only."""
    if who.is_patient and who.patient != (patient_id, issuer or ""):
        refuse(request, 403, f"{who.name} acts for another patient")
        raise HTTPException(403, {"error": "forbidden", "detail": "a patient token acts for its own patient only"})
