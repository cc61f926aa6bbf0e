"""Pages: find a study, see its series, review it under a profile (tags, residual risk, images).

Search terms travel in a POSTed form (never in a URL, so never in an access log). Reviews are
audited (``review.viewed``): who looked at which study, under which profile, and whether
identified data was shown.
"""
from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from .. import audit
from ..auth import Staff, refuse
from ..errors import ServiceError
from ..review.images import WINDOWS, ImageUnavailable, render_picture
from ..review.search import StudyQuery, find_studies, load_study
from ..review.study_review import ReviewParams, build_review, may_see_identified
from . import releases
from .pages import NAV, PageError, render
from .session import web_user

router = APIRouter(prefix="/ui", include_in_schema=False)
NAV.append(("/ui/studies", "Find a study", "staff"))


def client(request: Request):
    return request.app.state.make_client()


@router.get("/studies")
def search_form(request: Request, staff: Staff = Depends(web_user("staff"))):
    return render(request, "studies_search.html", query=StudyQuery(), result=None, errors=[])


@router.post("/studies")
def search(request: Request, staff: Staff = Depends(web_user("staff")), patient: str = Form(""),
           accession: str = Form(""), date_from: str = Form(""), date_to: str = Form(""),
           modality: str = Form(""), since: int = Form(0)):
    query = StudyQuery(patient=patient.strip(), accession=accession.strip(), date_from=date_from.strip(),
                       date_to=date_to.strip(), modality=modality.strip().upper(), since=max(since, 0))
    errors = query.problems()
    if errors:
        return render(request, "studies_search.html", status=422, query=query, result=None, errors=errors)
    result = find_studies(client(request), query)
    audit.record("study.searched", actor=staff.name, results=len(result.hits),
                 fields=sorted(k for k in ("patient", "accession", "date_from", "date_to", "modality")
                               if getattr(query, k)))
    return render(request, "studies_search.html", query=query, result=result, errors=[])


@router.get("/studies/{study_id}")
def study_page(request: Request, study_id: str, staff: Staff = Depends(web_user("staff"))):
    study = load_study(client(request), study_id)
    audit.record("study.viewed", actor=staff.name, study=study_id)
    return render(request, "study.html", study=study, profiles=request.app.state.engines.profiles(),
                  identified=may_see_identified(staff))


@router.get("/studies/{study_id}/review")
def review_page(request: Request, study_id: str, staff: Staff = Depends(web_user("staff")),
                profile: str = Query(...), instance: str | None = None, show: str = "all", page: int = 1,
                series_page: int = 1, focus: str | None = None, slice: int | None = None,
                window: str = "default"):
    params = ReviewParams(profile=profile, instance=instance, show=show, page=page, series_page=series_page,
                          focus=focus, slice=slice, window=window)
    review = build_review(client(request), request.app.state.engines, request.app.state.inspections,
                          study_id, params, staff, f"/ui/studies/{study_id}/images")
    audit.record("review.viewed", actor=staff.name, study=study_id, profile=profile, instance=params.instance,
                 identified=review.identified)
    return render(request, "review.html", review=review, windows=WINDOWS, base=f"/ui/studies/{study_id}/review",
                  profiles=request.app.state.engines.profiles(),
                  release_form=releases.form_context(request, review, staff))


@router.get("/series/{series_id}/review")
def series_review(request: Request, series_id: str, staff: Staff = Depends(web_user("staff")),
                  profile: str = Query(...)):
    """Review of the study a series belongs to (for buttons on series pages of Orthanc's UIs)."""
    study = client(request).get_json(f"/series/{series_id}").get("ParentStudy", "")
    return RedirectResponse(f"/ui/studies/{study}/review?" + urlencode({"profile": profile, "focus": series_id}),
                            status_code=303)


@router.get("/studies/{study_id}/images/{instance}")
def image(request: Request, study_id: str, instance: str, staff: Staff = Depends(web_user("staff")),
          profile: str = Query(...), side: str = "after", frame: int = 0, window: str = "default"):
    return review_image(request, study_id, instance, staff, profile, side, frame, window)


def review_image(request: Request, study_id: str, instance: str, staff: Staff, profile: str, side: str,
                 frame: int, window: str) -> Response:
    """A review picture as JPEG (shared by the page route and the API route)."""
    if side not in ("before", "after"):
        raise ServiceError("side: choose before or after")
    if window not in WINDOWS:
        raise ServiceError(f"window: choose one of {', '.join(WINDOWS)}")
    if side == "before" and not may_see_identified(staff):
        refuse(request, 403, f"{staff.name} ({staff.role}) needs role 'reviewer' for original pictures")
        raise PageError(403, "You cannot see this picture", "Original pictures may show identified data; "
                                                           "they need the reviewer role.")
    engines, orthanc = request.app.state.engines, client(request)
    engine = engines.engine(profile)
    if orthanc.get_json(f"/instances/{instance}/study").get("ID") != study_id:
        raise PageError(404, "Picture not found", "That image is not part of this study.")
    inspected = request.app.state.inspections.get(orthanc, engine, instance)
    try:
        picture = render_picture(inspected, side, frame, window)
    except ImageUnavailable:
        raise PageError(404, "No picture", "There is no picture to show for this image.") from None
    if side == "before":  # the original picture is identified data: who saw which one is recorded
        audit.record("review.picture", actor=staff.name, study=study_id, instance=instance, side=side,
                     profile=profile)
    return Response(picture, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})
