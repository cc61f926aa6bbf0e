"""Page: export anonymous slices of a study (criterion 2), from the review workspace.

Reviewer role and above. The form asks for the series, the slices, the format and window, what
to do with burned-in text, and the clinician's name and statement. A refusal re-shows the form
with an error summary naming the field and the rule. An export shows a confirmation with its
decision record (audit position, SHA-256 of each file) and a one-time link to the ZIP, kept
owner-only on the server until it is downloaded (at most :data:`KEEP_HOURS`), by the same person.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import time
from pathlib import Path

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import Response

from orthanc_gdpr.anonymous import Limits, Refused
from orthanc_gdpr.anonymous.decision import ATTESTATION
from orthanc_gdpr.anonymous.selection import parse_slices
from orthanc_gdpr.anonymous.series import NON_IMAGE_MODALITIES
from orthanc_gdpr.anonymous.slices import SliceRequest, parse_window
from orthanc_gdpr.pixels.render import CT_PRESETS

from ..anonymous_exports import export_study_slices
from ..auth import Staff
from ..review.search import load_study
from .pages import PageError, render
from .session import web_user

router = APIRouter(prefix="/ui", include_in_schema=False)
KEEP_HOURS = 24
WINDOWS = ["default", *CT_PRESETS]
#: The form field each refusal points at (the engine names command-line options).
FIELD_IDS = {"--slices": "slices", "--clinician": "clinician", "--statement": "statement", "--window": "window",
             "--format": "format", "series": "series", "inputs": "series",
             "study": "series"}


def _ready_dir(request: Request) -> Path:
    folder = request.app.state.settings.data_dir / "anonymous" / "ready"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def _ready_path(request: Request, token: str, staff: Staff) -> Path:
    return _ready_dir(request) / (hashlib.sha256(f"{token}\0{staff.name}".encode()).hexdigest() + ".zip")


def _keep(request: Request, data: bytes, staff: Staff) -> str:
    """Store the ZIP for one download by ``staff``; returns the token. Old ones are removed."""
    folder = _ready_dir(request)
    for old in folder.glob("*.zip"):
        if time.time() - old.stat().st_mtime > KEEP_HOURS * 3600:
            old.unlink(missing_ok=True)
    token = secrets.token_urlsafe(24)
    fd = os.open(_ready_path(request, token, staff), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return token


def _form(request: Request, study_id: str, status: int = 200, errors=(), **values):
    study = load_study(request.app.state.make_client(), study_id)
    series = [(s.id, f"Series {s.number or '?'}: {s.modality} {s.description} ({len(s.instances)} images)".strip())
              for s in study.series if s.modality.upper() not in NON_IMAGE_MODALITIES]
    form = {"series": series[0][0] if series else "", "slices": "", "format": "png8", "window": "default",
            "text": "refuse", "clinician": "", "statement": "", **values}
    return render(request, "anonymous_slices.html", status=status, study=study, series=series, form=form,
                  errors=list(errors), windows=WINDOWS, attestation=ATTESTATION, limits=Limits())


@router.get("/studies/{study_id}/anonymous-slices")
def export_form(request: Request, study_id: str, staff: Staff = Depends(web_user("reviewer"))):
    return _form(request, study_id)


@router.post("/studies/{study_id}/anonymous-slices")
def export(request: Request, study_id: str, staff: Staff = Depends(web_user("reviewer")),
           series: str = Form(""), slices: str = Form(""), format: str = Form("png8"), window: str = Form("default"),
           text: str = Form("refuse"), clinician: str = Form(""), statement: str = Form("")):
    values = dict(series=series, slices=slices, format=format, window=window, text=text, clinician=clinician,
                  statement=statement)
    settings = request.app.state.settings
    try:
        if window not in WINDOWS:
            raise Refused("--window", "unknown-window", f"choose one of {', '.join(WINDOWS)}")
        slice_request = SliceRequest(slices=parse_slices(slices), decided_by=staff.name, clinician=clinician,
                                     statement=statement, format=format, window=parse_window(window),
                                     mask_text=text == "mask")
        data, record = export_study_slices(request.app.state.make_client(), settings.data_dir / "anonymous",
                                           study_id, series or None, slice_request,
                                           Limits.load(settings.anonymity_limits))
    except Refused as e:
        return _form(request, study_id, 422, [(FIELD_IDS.get(e.field, "slices"), e.message)], **values)
    token = _keep(request, data, staff)
    return render(request, "anonymous_slices_done.html", study_id=study_id, record=record,
                  download=f"/ui/anonymous-slices/{token}")


@router.get("/anonymous-slices/{token}")
def download(request: Request, token: str, staff: Staff = Depends(web_user("reviewer"))):
    path = _ready_path(request, token, staff)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PageError(404, "Download not found", "This download was already taken, has expired, or belongs to "
                        "someone else. Export the slices again if you need them.") from None
    path.unlink(missing_ok=True)
    return Response(data, media_type="application/zip",
                    headers={"Content-Disposition": 'attachment; filename="anonymous-slices.zip"'})
