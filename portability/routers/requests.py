"""Access/portability requests: create, verify identity, status, due list, start a bundle."""
from __future__ import annotations

from datetime import timedelta, timezone

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import func, or_, select

from .. import audit, jobs
from ..auth import Staff, require
from ..errors import Conflict
from ..models import PortabilityRequest, aware, one_month_after, utcnow
from ..schemas import IdentityVerification, JobOut, RequestCreate, RequestOut
from .deps import db as get_db, get_or_404

router = APIRouter(prefix="/requests", tags=["requests"])
OPEN = ("received", "identity_verified", "in_progress", "ready", "failed")


def out(req: PortabilityRequest) -> RequestOut:
    o = RequestOut.model_validate(req)
    o.received_at, o.due_at = aware(req.received_at), aware(req.due_at)
    o.overdue = req.status in OPEN and aware(req.due_at) < utcnow()
    return o


@router.post("", status_code=201, response_model=RequestOut)
def create(body: RequestCreate, request: Request, staff: Staff = Depends(require("staff")),
           db=Depends(get_db)) -> RequestOut:
    client = request.app.state.make_client()
    patient = client.resolve_patient(body.patient_id, body.orthanc_patient_id)  # 404 if unknown
    patient_id = body.patient_id or patient.get("MainDicomTags", {}).get("PatientID")
    received = body.received_at or utcnow()
    if received.tzinfo is None:
        received = received.replace(tzinfo=timezone.utc)
    with db.session() as s:
        earlier = s.scalar(select(func.count()).select_from(PortabilityRequest).where(
            or_(PortabilityRequest.orthanc_patient_id == patient["ID"],
                PortabilityRequest.patient_id == patient_id)))
        req = PortabilityRequest(
            kind=body.kind, orthanc_patient_id=patient["ID"], patient_id=patient_id, issuer=body.issuer,
            study_uids=body.study_uids, language=body.language, status="received", received_at=received,
            due_at=one_month_after(received), copy_number=earlier + 1,
            fee_eur=0.0,  # Art. 15(3): the first copy is free; further copies: no fee charged either
            created_by=staff.name)
        s.add(req)
        s.flush()
        result = out(req)
    audit.record("request.created", actor=staff.name, request_id=result.id, kind=body.kind,
                 patient_id=patient_id, issuer=body.issuer, patient=patient["ID"], studies=body.study_uids)
    return result


@router.get("", response_model=list[RequestOut])
def list_requests(staff: Staff = Depends(require("staff")), db=Depends(get_db)) -> list[RequestOut]:
    with db.session() as s:
        return [out(r) for r in s.scalars(select(PortabilityRequest).order_by(PortabilityRequest.id))]


@router.get("/due", response_model=list[RequestOut])
def due(within_days: int = Query(7, ge=0, le=31), staff: Staff = Depends(require("staff")),
        db=Depends(get_db)) -> list[RequestOut]:
    """Open requests whose Art. 12(3) deadline is past or within ``within_days`` days."""
    limit = utcnow() + timedelta(days=within_days)
    with db.session() as s:
        rows = s.scalars(select(PortabilityRequest).where(
            PortabilityRequest.status.in_(OPEN), PortabilityRequest.due_at <= limit)
            .order_by(PortabilityRequest.due_at))
        return [out(r) for r in rows]


@router.get("/{request_id}", response_model=RequestOut)
def get(request_id: int, staff: Staff = Depends(require("staff")), db=Depends(get_db)) -> RequestOut:
    with db.session() as s:
        return out(get_or_404(s, PortabilityRequest, request_id, "request"))


@router.post("/{request_id}/identity", response_model=RequestOut)
def verify_identity(request_id: int, body: IdentityVerification, staff: Staff = Depends(require("staff")),
                    db=Depends(get_db)) -> RequestOut:
    with db.session() as s:
        req = get_or_404(s, PortabilityRequest, request_id, "request")
        if req.status not in ("received", "identity_verified"):
            raise Conflict(f"request {request_id} is {req.status}: identity can no longer be changed")
        req.identity_method, req.identity_notes = body.method, body.notes
        req.identity_verified_by, req.identity_verified_at = staff.name, utcnow()
        req.status = "identity_verified"
        result = out(req)
    audit.record("request.identity_verified", actor=staff.name, request_id=request_id, method=body.method)
    return result


@router.post("/{request_id}/bundle", status_code=202, response_model=JobOut)
def start_bundle(request_id: int, request: Request, staff: Staff = Depends(require("staff")),
                 db=Depends(get_db)) -> JobOut:
    from ..models import Job

    with db.session() as s:
        req = get_or_404(s, PortabilityRequest, request_id, "request")
        if req.identity_method is None:
            raise Conflict("verify and record the requester's identity first")
        busy = s.scalar(select(func.count()).select_from(Job).where(
            Job.request_id == request_id, Job.status.in_(("queued", "running"))))
        if busy:
            raise Conflict(f"a bundle job for request {request_id} is already queued or running")
    job_id = jobs.enqueue(db, request_id)
    if request.app.state.worker:
        request.app.state.worker.wake.set()
    audit.record("bundle.queued", actor=staff.name, request_id=request_id, job_id=job_id)
    with db.session() as s:
        return JobOut.model_validate(s.get(Job, job_id))
