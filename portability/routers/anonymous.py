"""``POST /studies/{study}/anonymous-slices``: a few slices of a study as anonymous PNG files.

Reviewer role and above. The answer is a ZIP of PNG files (criterion 2) with the decision
record's audit position in ``X-Audit-Seq``; a refusal is a 422 naming the field and the rule
(``{"error": "refused", "field": ..., "rule": ..., "detail": ...}``), and is audited too.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from orthanc_gdpr.anonymous import Limits, Refused
from orthanc_gdpr.anonymous.decision import ATTESTATION
from orthanc_gdpr.anonymous.selection import parse_slices
from orthanc_gdpr.anonymous.slices import FORMATS, SliceRequest, parse_window

from ..anonymous_exports import export_study_slices
from ..auth import Staff, require
from .deps import settings as get_settings

router = APIRouter(tags=["anonymous exports"])


class SliceExportIn(BaseModel):
    series: str | None = Field(None, description="Orthanc ID of the series (optional when the study has one)")
    slices: str = Field(..., max_length=200, description="instance numbers: 12,40,77 or 3,10-12; N:F for a frame")
    clinician: str = Field("", max_length=200, description="the clinician consulted")
    statement: str = Field("", max_length=4000, description=f"their statement: the slices show {ATTESTATION}")
    format: str = Field("png8", description=f"one of {', '.join(FORMATS)}")
    window: str | None = Field(None, max_length=40, description="png8: default, a CT preset, or CENTER,WIDTH")
    mask_text: bool = Field(False, description="mask burned-in text instead of refusing the slice")


def refusal(e: Refused) -> JSONResponse:
    return JSONResponse({"error": "refused", **e.to_dict()}, status_code=422)


@router.post("/studies/{study}/anonymous-slices", response_class=Response,
             responses={200: {"content": {"application/zip": {}}}, 422: {"description": "refused"}})
def anonymous_slices(study: str, body: SliceExportIn, request: Request, staff: Staff = Depends(require("reviewer")),
                     settings=Depends(get_settings)):
    try:
        slice_request = SliceRequest(slices=parse_slices(body.slices), decided_by=staff.name,
                                     clinician=body.clinician, statement=body.statement, format=body.format,
                                     window=parse_window(body.window), mask_text=body.mask_text)
        data, record = export_study_slices(request.app.state.make_client(), settings.data_dir / "anonymous",
                                           study, body.series, slice_request, Limits.load(settings.anonymity_limits))
    except Refused as e:
        return refusal(e)
    return Response(data, media_type="application/zip",
                    headers={"Content-Disposition": 'attachment; filename="anonymous-slices.zip"',
                             "X-Audit-Seq": str(record["seq"]), "Cache-Control": "no-store"})
