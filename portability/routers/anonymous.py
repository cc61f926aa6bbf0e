"""Anonymous exports of data in Orthanc (reviewer role and above).

* ``POST /studies/{study}/anonymous-slices``: a few slices of a series of the study (criterion 2);
* ``POST /anonymous-aggregates``: a mean, median, std image or template over series (criterion 1).

The answer is a ZIP of the exported files, with the decision record's audit position in
``X-Audit-Seq``; a refusal is a 422 naming the field and the rule
(``{"error": "refused", "field": ..., "rule": ..., "detail": ...}``), and is audited too.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from orthanc_gdpr.anonymous import Limits, Refused
from orthanc_gdpr.anonymous.aggregate import FORMATS as AGGREGATE_FORMATS
from orthanc_gdpr.anonymous.aggregate import STATISTICS, AggregateRequest
from orthanc_gdpr.anonymous.decision import ATTESTATION
from orthanc_gdpr.anonymous.selection import parse_slices
from orthanc_gdpr.anonymous.slices import FORMATS, SliceRequest, parse_window

from ..anonymous_exports import export_series_aggregate, export_study_slices
from ..auth import Staff, require
from .deps import settings as get_settings

router = APIRouter(tags=["anonymous exports"])
#: An Orthanc resource ID: SHA-1 in five groups of eight hex digits.
ORTHANC_ID = r"^[0-9a-f]{8}(-[0-9a-f]{8}){4}$"


class SliceExportIn(BaseModel):
    series: str | None = Field(None, pattern=ORTHANC_ID, description="Orthanc ID of the series "
                               "(optional when the study has one)")
    slices: str = Field(..., max_length=200, description="instance numbers: 12,40,77 or 3,10-12; N:F for a frame")
    clinician: str = Field("", max_length=200, description="the clinician consulted")
    statement: str = Field("", max_length=4000, description=f"their statement: the slices show {ATTESTATION}")
    format: str = Field("png8", description=f"one of {', '.join(FORMATS)}")
    window: str | None = Field(None, max_length=40, description="png8: default, a CT preset, or CENTER,WIDTH")
    mask_text: bool = Field(False, description="mask burned-in text instead of refusing the slice")


class AggregateExportIn(BaseModel):
    series: list[Annotated[str, Field(pattern=ORTHANC_ID)]] = Field(..., min_length=1, max_length=10000,
                                                                    description="Orthanc IDs of the series")
    statistic: str = Field(..., description=f"one of {', '.join(STATISTICS)}")
    format: str = Field("auto", description=f"one of {', '.join(AGGREGATE_FORMATS)}")
    window: str | None = Field(None, max_length=40, description="png8 (2-D): default, a CT preset, or CENTER,WIDTH")
    spacing: float | None = Field(None, description="template: voxel size in mm")
    clinician: str | None = Field(None, max_length=200)
    statement: str | None = Field(None, max_length=4000, description="the rationale or a clinician's statement")


def _zip(data: bytes, record: dict, name: str) -> Response:
    return Response(data, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}.zip"',
                             "X-Audit-Seq": str(record["seq"]), "Cache-Control": "no-store"})


def _refusal(e: Refused) -> JSONResponse:
    return JSONResponse({"error": "refused", **e.to_dict()}, status_code=422)


@router.post("/studies/{study}/anonymous-slices", response_class=Response,
             responses={200: {"content": {"application/zip": {}}}, 422: {"description": "refused"}})
def anonymous_slices(body: SliceExportIn, request: Request, study: str = Path(..., pattern=ORTHANC_ID),
                     staff: Staff = Depends(require("reviewer")), settings=Depends(get_settings)):
    try:
        slice_request = SliceRequest(slices=parse_slices(body.slices), decided_by=staff.name,
                                     clinician=body.clinician, statement=body.statement, format=body.format,
                                     window=parse_window(body.window), mask_text=body.mask_text)
        data, record = export_study_slices(request.app.state.make_client(), settings.data_dir / "anonymous",
                                           study, body.series, slice_request, Limits.load(settings.anonymity_limits))
    except Refused as e:
        return _refusal(e)
    return _zip(data, record, "anonymous-slices")


@router.post("/anonymous-aggregates", response_class=Response,
             responses={200: {"content": {"application/zip": {}}}, 422: {"description": "refused"}})
def anonymous_aggregate(body: AggregateExportIn, request: Request, staff: Staff = Depends(require("reviewer")),
                        settings=Depends(get_settings)):
    try:
        aggregate_request = AggregateRequest(statistic=body.statistic, decided_by=staff.name, format=body.format,
                                             window=parse_window(body.window), spacing=body.spacing,
                                             clinician=body.clinician, statement=body.statement)
        data, record = export_series_aggregate(request.app.state.make_client(), settings.data_dir / "anonymous",
                                               body.series, aggregate_request, Limits.load(settings.anonymity_limits))
    except Refused as e:
        return _refusal(e)
    return _zip(data, record, "anonymous-aggregate")
