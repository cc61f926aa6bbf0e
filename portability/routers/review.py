"""The JSON twin of the review page: ``GET /api/studies/{id}/review?profile=NAME`` (and its
pictures), for staff with HTTP Basic or a bearer token. Same data, same role rules as the page."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from .. import audit
from ..auth import Staff, require
from ..review.study_review import ReviewParams, build_review
from ..web.studies import review_image

router = APIRouter(prefix="/api", tags=["review"])


@router.get("/studies/{study_id}/review")
def review(request: Request, study_id: str, profile: str = Query(...), instance: str | None = None,
           show: str = "all", page: int = 1, series_page: int = 1, focus: str | None = None,
           slice: int | None = None, window: str = "default", staff: Staff = Depends(require("staff"))) -> dict:
    params = ReviewParams(profile=profile, instance=instance, show=show, page=page, series_page=series_page,
                          focus=focus, slice=slice, window=window)
    base = f"/api/studies/{study_id}/images"
    result = build_review(request.app.state.make_client(), request.app.state.engines,
                          request.app.state.inspections, study_id, params, staff, base)
    audit.record("review.viewed", actor=staff.name, study=study_id, profile=profile, instance=params.instance,
                 identified=result.identified)
    return result.to_json()


@router.get("/studies/{study_id}/images/{instance}")
def image(request: Request, study_id: str, instance: str, profile: str = Query(...), side: str = "after",
          frame: int = 0, window: str = "default", staff: Staff = Depends(require("staff"))):
    return review_image(request, study_id, instance, staff, profile, side, frame, window)
