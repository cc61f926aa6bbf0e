"""Pages: the release decision form (on the review page), a decision's page, the list of
decisions and the evidence document."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse

from .. import releases
from ..auth import Staff, has_role
from ..review.study_review import ReviewParams, build_review
from .evidence import evidence_response
from .pages import NAV, render
from .session import web_user

router = APIRouter(prefix="/ui", include_in_schema=False)
NAV.append(("/ui/releases", "Release decisions", "reviewer"))


def form_context(request: Request, review, staff: Staff, errors=None, values=None) -> dict | None:
    """What the decision form on the review page needs; None when the role may not decide."""
    if not has_role(staff, "reviewer"):
        return None
    rules = releases.routing_rules(request.app.state.make_client())
    return {
        "rules": [("", "No rule (record the review only)")] + [
            (name, f"{name} (sends with profile {r.get('profile')}{', review required' if r.get('review') == 'required' else ''})")
            for name, r in sorted(rules.items()) if r.get("profile") == review.profile.name],
        "classifications": [(k, k, text) for k, text in releases.CLASSIFICATIONS.items()],
        "errors": errors or [], "values": values or {"classification": "pseudonymised"},
        "earlier": releases.listing(request.app.state.db, review.study.id)[:10],
    }


@router.post("/studies/{study_id}/releases")
def decide(request: Request, study_id: str, staff: Staff = Depends(web_user("reviewer")),
           profile: str = Form(""), rule: str = Form(""), decision: str = Form(""), rationale: str = Form(""),
           classification: str = Form(""), clinician_name: str = Form(""), clinician_statement: str = Form("")):
    req = releases.ReleaseRequest(study=study_id, profile=profile, rule=rule or None, decision=decision,
                                  rationale=rationale, classification=classification,
                                  clinician_name=clinician_name, clinician_statement=clinician_statement)
    try:
        release = releases.decide(request.app.state.db, request.app.state.make_client(),
                                  request.app.state.engines, req, staff.name)
    except releases.InvalidRelease as e:
        review = build_review(request.app.state.make_client(), request.app.state.engines,
                              request.app.state.inspections, study_id, ReviewParams(profile=profile), staff,
                              f"/ui/studies/{study_id}/images")
        from ..review.images import WINDOWS

        values = {"rule": rule, "decision": decision, "rationale": rationale, "classification": classification,
                  "clinician_name": clinician_name, "clinician_statement": clinician_statement}
        return render(request, "review.html", status=422, review=review, windows=WINDOWS,
                      base=f"/ui/studies/{study_id}/review", profiles=request.app.state.engines.profiles(),
                      release_form=form_context(request, review, staff, e.problems, values))
    return RedirectResponse(f"/ui/releases/{release.id}", status_code=303)


@router.get("/releases")
def listing(request: Request, staff: Staff = Depends(web_user("reviewer"))):
    return render(request, "releases.html", releases=releases.listing(request.app.state.db),
                  waiting=releases.awaiting_review(request.app.state.make_client()))


@router.get("/releases/{release_id}")
def one(request: Request, release_id: int, staff: Staff = Depends(web_user("reviewer"))):
    return render(request, "release.html", r=releases.get(request.app.state.db, release_id),
                  classification=releases.CLASSIFICATIONS)


@router.get("/releases/{release_id}/evidence")
def evidence(request: Request, release_id: int, staff: Staff = Depends(web_user("reviewer"))):
    return evidence_response(request, releases.get(request.app.state.db, release_id))
