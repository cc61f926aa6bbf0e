"""Restriction (Art. 18) and objection (Art. 21): place a flag with its ground, lift it (a
reviewer), and see who is flagged. The plugin's consent gate refuses every purpose but care."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse

from ...auth import Staff, has_role
from ...routers import consents as api
from ..session import web_user
from . import attempt, create_once, form_data, page, parse

router = APIRouter(prefix="/ui/desk", include_in_schema=False)
LABELS = {"patient_id": "Patient ID", "issuer": "Issuer of the patient ID", "kind": "Kind", "reason": "Ground"}
KINDS = [("restriction", "Restriction of processing (Art. 18)",
          "For example while the accuracy of the data is checked, or instead of erasure"),
         ("objection", "Objection (Art. 21)", "The patient objects to processing for a purpose other than care")]


def _flags_page(request: Request, staff: Staff, errors=None, values=None):
    flags = api.list_flags(None, "", True, staff, request.app.state.db)
    return page(request, "desk/flags.html", errors=errors, values=values or {"kind": "restriction"}, flags=flags,
                kinds=KINDS, may_lift=has_role(staff, "reviewer"), form_token=(values or {}).get("form_token"))


@router.get("/flags")
def flags(request: Request, staff: Staff = Depends(web_user("staff"))):
    return _flags_page(request, staff)


@router.post("/flags")
def place_flag(request: Request, data: dict = Depends(form_data), staff: Staff = Depends(web_user("staff"))):
    db = request.app.state.db
    body, errors = parse(api.FlagCreate, {k: data.get(k, "") for k in ("patient_id", "issuer", "kind", "reason")},
                         LABELS)
    if not data.get("reason"):
        errors.append(("reason", "Ground: say why (the patient's words or the article), it is recorded"))
    if not errors:
        _, errors = create_once(request, data, "flag", lambda: api.create_flag(body, staff, db).id)
    if errors:
        return _flags_page(request, staff, errors, data)
    return RedirectResponse("/ui/desk/flags", status_code=303)


@router.post("/flags/{flag_id}/lift")
def lift_flag(request: Request, flag_id: int, staff: Staff = Depends(web_user("reviewer"))):
    _, errors = attempt(lambda: api.lift_flag(flag_id, staff, request.app.state.db))
    if errors:
        return _flags_page(request, staff, errors)
    return RedirectResponse("/ui/desk/flags", status_code=303)
