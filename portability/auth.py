"""Staff authentication (HTTP Basic or bearer tokens from the settings) and roles.

Roles are ordered: ``staff`` < ``reviewer`` < ``dpo``; a route asks for a minimum role.
Patients never authenticate here: they hold a download token (see ``routers.downloads``).
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


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, {"error": "unauthorized", "detail": message},
                         headers={"WWW-Authenticate": 'Basic realm="orthanc-gdpr portability", Bearer'})


def current_staff(request: Request) -> Staff:
    settings = request.app.state.settings
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise _unauthorized("malformed Basic credentials") from None
        known = settings.staff_users.get(user)
        if known and hmac.compare_digest(known[0].encode(), password.encode()):
            return Staff(user, known[1])
        raise _unauthorized("wrong user name or password")
    if scheme.lower() == "bearer":
        for token, role in settings.staff_tokens.items():
            if hmac.compare_digest(token.encode(), value.encode()):
                return Staff(f"token:{token[:4]}…", role)
        raise _unauthorized("unknown bearer token")
    raise _unauthorized("staff credentials required (HTTP Basic or bearer token)")


def require(role: str):
    floor = ROLES.index(role)

    def dep(staff: Staff = Depends(current_staff)) -> Staff:
        if ROLES.index(staff.role) < floor:
            raise HTTPException(403, {"error": "forbidden", "detail": f"needs role {role!r} or higher"})
        return staff

    return dep
