"""The dashboard (every open request of every right, due dates first) and one case's deadline page."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse

from ... import deadlines
from ...auth import Staff, has_role
from ...routers import desk as api
from ..pages import NAV
from ..session import web_user
from . import attempt, form_data, page, parse

router = APIRouter(prefix="/ui/desk", include_in_schema=False)
NAV.append(("/ui/desk", "Rights desk", "staff"))

#: Where the page of each kind of case is.
CASE_PAGES = {"request": "/ui/desk/requests/{id}", "rectification": "/ui/desk/rectifications/{id}",
              "erasure": "/ui/desk/erasures/{id}", "flag": "/ui/desk/flags#flag-{id}",
              "signing": "/ui/desk/consent/signings/{id}"}
RIGHT_LABELS = {"access": "Access (Art. 15)", "portability": "Portability (Art. 20)",
                "rectification": "Rectification (Art. 16)", "erasure": "Erasure (Art. 17)",
                "restriction": "Restriction (Art. 18)", "objection": "Objection (Art. 21)",
                "consent": "Consent (Art. 7)"}
STATES = sorted({s for src in deadlines.SOURCES.values() for s in src.open_states})


def case_page(kind: str, ref_id: int) -> str:
    return CASE_PAGES[kind].format(id=ref_id)


@router.get("")
def dashboard(request: Request, right: str = "", state: str = "", assignee: str = "", overdue: str = "",
              staff: Staff = Depends(web_user("staff"))):
    errors = []
    if right and right not in deadlines.RIGHTS:
        errors.append(("right", "Type: choose one of the listed rights"))
    if state and state not in STATES:
        errors.append(("state", "State: choose one of the listed states"))
    if overdue not in ("", "yes", "no"):
        errors.append(("overdue", "Overdue: choose yes, no or any"))
    cases = [] if errors else deadlines.open_cases(
        request.app.state.db, right=right or None, state=state or None, assignee=assignee or None,
        overdue={"yes": True, "no": False}.get(overdue))
    return page(request, "desk/dashboard.html", status=422 if errors else 200, errors=errors, cases=cases,
                filters={"right": right, "state": state, "assignee": assignee, "overdue": overdue},
                rights=RIGHT_LABELS, state_options=[(s, s) for s in STATES], case_page=case_page)


@router.get("/cases/{kind}/{ref_id}")
def case(request: Request, kind: str, ref_id: int, staff: Staff = Depends(web_user("staff"))):
    return _case_page(request, staff, kind, ref_id)


def _case_page(request, staff, kind, ref_id, errors=None, values=None):
    c = deadlines.get_case(request.app.state.db, kind, ref_id)
    return page(request, "desk/case.html", errors=errors, case=c, link=case_page(kind, ref_id), values=values or {},
                rights=RIGHT_LABELS, channel_options=[(c, c) for c in deadlines.NOTICE_CHANNELS],
                may_extend=has_role(staff, "reviewer"))


@router.post("/cases/{kind}/{ref_id}/assignee")
def assign(request: Request, kind: str, ref_id: int, data: dict = Depends(form_data),
           staff: Staff = Depends(web_user("staff"))):
    body, errors = parse(api.Assignment, data, {"assignee": "Assignee"})
    if not errors:
        _, errors = attempt(lambda: api.assign(kind, ref_id, body, staff, request.app.state.db), "assignee")
    if errors:
        return _case_page(request, staff, kind, ref_id, errors, data)
    return RedirectResponse(f"/ui/desk/cases/{kind}/{ref_id}", status_code=303)


@router.post("/cases/{kind}/{ref_id}/extension")
def extend(request: Request, kind: str, ref_id: int, data: dict = Depends(form_data),
           staff: Staff = Depends(web_user("reviewer"))):
    body, errors = parse(api.Extension, data, {"reason": "Reason", "channel": "How the patient was told",
                                               "evidence": "Reference of the notice"})
    if not errors:
        _, errors = attempt(lambda: api.extend(kind, ref_id, body, staff, request.app.state.db), "reason")
    if errors:
        return _case_page(request, staff, kind, ref_id, errors, data)
    return RedirectResponse(f"/ui/desk/cases/{kind}/{ref_id}", status_code=303)
