"""Rectification (Art. 16) and erasure (Art. 17): file, see the change against what Orthanc holds,
decide with a reason (a reviewer rectifies, the DPO erases; a refusal names its retention ground),
follow the job to done or failed, and retry."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse

from ... import rights
from ...auth import Staff, has_role
from ...orthanc import OrthancError, PatientNotFound
from ...routers import rectifications as api
from ..session import web_user
from . import attempt, create_once, form_data, page, parse

router = APIRouter(prefix="/ui/desk", include_in_schema=False)
LABELS = {"patient_id": "Patient ID", "issuer": "Issuer of the patient ID", "attribute": "What is wrong",
          "proposed": "Correct value", "evidence": "Evidence", "reason": "Reason", "approve": "Decision",
          "grant": "Decision", "grounds": "Grounds given by the patient", "retention_ground": "Retention ground",
          "retain_until": "Keep until"}
#: What a value of each DICOM VR must look like, in words (the page never repeats the value typed).
VR_RULES = {"PN": "a name as Family^Given, at most 64 characters per part",
            "LO": "at most 64 characters, without backslash", "DA": "a date written YYYYMMDD",
            "TM": "a time written HHMMSS", "CS": "one of M, F or O (or empty)", "SH": "at most 16 characters",
            "LT": "at most 10240 characters"}
WORKING = ("applying", "erasing")
ATTRIBUTES = [(a, a) for a in rights.RECTIFIABLE]


def _orthanc_values(request: Request, orthanc_patient: str | None, attributes: list[str]) -> dict[str, str] | None:
    """What Orthanc holds now for these patient-level attributes (None when it cannot be read)."""
    if not orthanc_patient:
        return None
    client = request.app.state.make_client()
    try:
        first = client.get_json(f"/patients/{orthanc_patient}/instances")[0]["ID"]
        tags = client.instance_tags(first)
    except (OrthancError, PatientNotFound, IndexError):
        return None
    return {a: rights.tag_value(tags, a) for a in attributes}


def _studies(request: Request, orthanc_patient: str | None) -> list[dict] | None:
    if not orthanc_patient:
        return None
    try:
        studies = request.app.state.make_client().patient_studies(orthanc_patient)
    except (OrthancError, PatientNotFound):
        return None
    return [{"date": s["MainDicomTags"].get("StudyDate", ""), "series": len(s.get("Series", [])),
             "description": s["MainDicomTags"].get("StudyDescription", "")} for s in studies]


# ----------------------------------------------------------------------------- rectification
@router.get("/rectifications/new")
def new_rectification(request: Request, staff: Staff = Depends(web_user("staff"))):
    return page(request, "desk/rectification_new.html", values={}, attributes=ATTRIBUTES)


@router.post("/rectifications/new")
def file_rectification(request: Request, data: dict = Depends(form_data), staff: Staff = Depends(web_user("staff"))):
    db = request.app.state.db
    errors = [(k, f"{LABELS[k]}: enter it") for k in ("patient_id", "proposed") if not data.get(k)]
    attribute = data.get("attribute", "")
    if attribute not in rights.RECTIFIABLE:
        errors.append(("attribute", "What is wrong: choose one of the listed attributes"))
    elif data.get("proposed"):
        try:
            vr = rights.validate_change(attribute, data["proposed"])["vr"]
        except rights.InvalidValue:
            from pydicom.datadict import dictionary_VR, tag_for_keyword

            vr = dictionary_VR(tag_for_keyword(attribute))
            errors.append(("proposed", f"Correct value: not valid for {attribute}; it must be "
                                       f"{VR_RULES.get(vr, f'a valid DICOM {vr} value')}"))
    if not errors:
        def create() -> int:
            patient = request.app.state.make_client().resolve_patient(data["patient_id"])
            current = _orthanc_values(request, patient["ID"], [attribute]) or {}
            body, problems = parse(api.RectificationCreate, {
                "patient_id": data["patient_id"], "issuer": data.get("issuer", ""), "evidence": data.get("evidence"),
                "changes": [{"attribute": attribute, "current": current.get(attribute, ""),
                             "proposed": data["proposed"]}]}, LABELS)
            if problems:
                raise rights.InvalidValue(problems[0][1])
            return api.create_rectification(body, request, staff, db).id
        rect_id, errors = create_once(request, data, "rectification", create)
        errors = [("proposed", e[1]) if "proposed equals current" in e[1] else e for e in errors]
    if errors:
        return page(request, "desk/rectification_new.html", errors=errors, values=data, attributes=ATTRIBUTES,
                    form_token=data.get("form_token"))
    return RedirectResponse(f"/ui/desk/rectifications/{rect_id}", status_code=303)


def _rectification_page(request: Request, staff: Staff, rect_id: int, errors=None, values=None):
    r = api.get_rectification(rect_id, request, staff, request.app.state.db)
    held = _orthanc_values(request, r.orthanc_patient_id, [c["attribute"] for c in r.changes]) \
        if r.status == "requested" else None
    return page(request, "desk/rectification.html", errors=errors, r=r, held=held, values=values or {},
                may_decide=has_role(staff, "reviewer"), working=r.status in WORKING)


@router.get("/rectifications/{rect_id}")
def show_rectification(request: Request, rect_id: int, staff: Staff = Depends(web_user("staff"))):
    return _rectification_page(request, staff, rect_id)


def _choice(data: dict, name: str, options: dict[str, bool], rule: str, body_fields: dict, model, errors_out: list):
    """Parse a decision form: the radio ``name`` (one of ``options``) and the model's other fields."""
    chosen = options.get(data.get(name, ""))
    body, errors = parse(model, {name: chosen, **body_fields}, LABELS)
    if chosen is None:
        errors = [e for e in errors if e[0] != name] + [(name, rule)]
    errors_out += errors
    return chosen, body


def _then_back(request: Request, staff: Staff, kind: str, ref_id: int, action, errors=None, data=None):
    """Run ``action`` unless the form has errors; the case page with the problems, or back to it."""
    errors = list(errors or [])
    if not errors:
        _, errors = attempt(action, "reason")
    if errors:
        page_of = _rectification_page if kind == "rectification" else _erasure_page
        return page_of(request, staff, ref_id, errors, data)
    return RedirectResponse(f"/ui/desk/{kind}s/{ref_id}", status_code=303)


@router.post("/rectifications/{rect_id}/decision")
def decide_rectification(request: Request, rect_id: int, data: dict = Depends(form_data),
                         staff: Staff = Depends(web_user("reviewer"))):
    errors: list = []
    _, body = _choice(data, "approve", {"approve": True, "reject": False}, "Decision: choose approve or reject",
                      {"reason": data.get("reason", "")}, api.Decision, errors)
    return _then_back(request, staff, "rectification", rect_id, lambda: api.decide_rectification(
        rect_id, body, request, staff, request.app.state.db), errors, data)


@router.post("/rectifications/{rect_id}/retry")
def retry_rectification(request: Request, rect_id: int, staff: Staff = Depends(web_user("reviewer"))):
    return _then_back(request, staff, "rectification", rect_id,
                      lambda: api.retry_rectification(rect_id, request, staff, request.app.state.db))


@router.get("/rights/{kind}/{ref_id}/progress")
def progress(request: Request, kind: str, ref_id: int, staff: Staff = Depends(web_user("staff"))) -> dict:
    """The state a decided rectification or erasure is in (polled by ``static/desk.js``)."""
    db = request.app.state.db
    row = (api.get_rectification if kind == "rectification" else api.get_erasure)(ref_id, request, staff, db)
    return {"status": row.status, "done": 0, "total": 0}


# ----------------------------------------------------------------------------- erasure
@router.get("/erasures/new")
def new_erasure(request: Request, staff: Staff = Depends(web_user("staff"))):
    return page(request, "desk/erasure_new.html", values={})


@router.post("/erasures/new")
def file_erasure(request: Request, data: dict = Depends(form_data), staff: Staff = Depends(web_user("staff"))):
    db = request.app.state.db
    body, errors = parse(api.ErasureCreate, {k: data.get(k, "") for k in ("patient_id", "issuer", "grounds")}, LABELS)
    if not data.get("patient_id"):
        errors = [e for e in errors if e[0] != "patient_id"] + [("patient_id", "Patient ID: enter the patient's ID")]
    if not errors:
        erasure_id, errors = create_once(request, data, "erasure",
                                         lambda: api.create_erasure(body, request, staff, db).id)
    if errors:
        return page(request, "desk/erasure_new.html", errors=errors, values=data, form_token=data.get("form_token"))
    return RedirectResponse(f"/ui/desk/erasures/{erasure_id}", status_code=303)


def _erasure_page(request: Request, staff: Staff, erasure_id: int, errors=None, values=None):
    e = api.get_erasure(erasure_id, request, staff, request.app.state.db)
    studies = _studies(request, e.orthanc_patient_id) if e.status == "requested" else None
    return page(request, "desk/erasure.html", errors=errors, e=e, studies=studies, values=values or {},
                grounds=rights.RETENTION_GROUNDS, may_decide=has_role(staff, "dpo"), working=e.status in WORKING)


@router.get("/erasures/{erasure_id}")
def show_erasure(request: Request, erasure_id: int, staff: Staff = Depends(web_user("staff"))):
    return _erasure_page(request, staff, erasure_id)


@router.post("/erasures/{erasure_id}/decision")
def decide_erasure(request: Request, erasure_id: int, data: dict = Depends(form_data),
                   staff: Staff = Depends(web_user("dpo"))):
    errors: list = []
    grant, body = _choice(data, "grant", {"grant": True, "refuse": False}, "Decision: choose erase or refuse",
                          {k: data.get(k, "") for k in ("reason", "retention_ground", "retain_until")},
                          api.ErasureDecision, errors)
    if grant is False and data.get("retention_ground") not in rights.RETENTION_GROUNDS:
        errors.append(("retention_ground", "Retention ground: a refusal must name the ground for keeping the data"))
    return _then_back(request, staff, "erasure", erasure_id, lambda: api.decide_erasure(
        erasure_id, body, request, staff, request.app.state.db), errors, data)


@router.post("/erasures/{erasure_id}/retry")
def retry_erasure(request: Request, erasure_id: int, staff: Staff = Depends(web_user("dpo"))):
    return _then_back(request, staff, "erasure", erasure_id,
                      lambda: api.retry_erasure(erasure_id, request, staff, request.app.state.db))
