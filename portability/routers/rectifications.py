"""Rectification (Art. 16) and erasure (Art. 17) requests: file, decide, apply (a job), notices."""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from .. import audit, patient_keys, rights
from ..auth import Staff, patient_token_hash, require, same_patient_or_403, staff_or_patient
from ..errors import Conflict, NotFound
from ..models import Erasure, PatientToken, Rectification, RightsJob, aware, utcnow
from .deps import db as get_db, get_or_404

router = APIRouter(prefix="/api", tags=["rights"])


class Change(BaseModel):
    attribute: str = Field(..., description="DICOM keyword, e.g. PatientName, PatientBirthDate")
    current: str = Field("", description="the value Orthanc holds now (checked)")
    proposed: str


class RectificationCreate(BaseModel):
    patient_id: str = Field(..., min_length=1, max_length=64)
    issuer: str = Field("", max_length=64)
    changes: list[Change] = Field(..., min_length=1, max_length=len(rights.RECTIFIABLE))
    evidence: str | None = Field(None, max_length=4000)
    uid_policy: str = Field("regenerate", pattern="^(regenerate|keep)$")
    rejection_code: str = Field("113038", pattern="^(113038|113037)$")


class Decision(BaseModel):
    approve: bool
    reason: str = Field(..., min_length=3, max_length=2000)


class ErasureCreate(BaseModel):
    patient_id: str = Field(..., min_length=1, max_length=64)
    issuer: str = Field("", max_length=64)
    grounds: str | None = Field(None, max_length=4000, description="Art. 17(1) ground given by the data subject")


class ErasureDecision(BaseModel):
    grant: bool
    reason: str = Field(..., min_length=3, max_length=2000)
    retention_ground: str | None = Field(None, description=f"when refused: one of {', '.join(rights.RETENTION_GROUNDS)}")
    retain_until: datetime | None = None


class RectificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    patient_id: str
    issuer: str
    orthanc_patient_id: str | None
    changes: list[dict]
    evidence: str | None
    uid_policy: str
    rejection_code: str
    status: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    result: dict | None
    applied_at: datetime | None
    job: dict | None = None


class ErasureOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    patient_id: str = Field(..., description="empty once the erasure is carried out")
    patient_pseudonym: str | None = Field(None, description="the keyed pseudonym that names the patient for good")
    issuer: str
    orthanc_patient_id: str | None
    grounds: str | None
    status: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    retention_ground: str | None
    retain_until: datetime | None
    result: dict | None
    erased_at: datetime | None
    job: dict | None = None


class PatientTokenCreate(BaseModel):
    patient_id: str = Field(..., min_length=1, max_length=64)
    issuer: str = Field("", max_length=64)
    ttl_hours: float | None = Field(None, gt=0, le=24 * 366)


def _job(s, kind: str, ref_id: int) -> dict | None:
    j = s.scalars(select(RightsJob).where(RightsJob.kind == kind, RightsJob.ref_id == ref_id)
                  .order_by(RightsJob.id.desc())).first()
    if j is None:
        return None
    return {"id": j.id, "status": j.status, "attempts": j.attempts, "error": j.error,
            "next_attempt_at": aware(j.next_attempt_at).isoformat()}


def _out(s, r: Rectification) -> RectificationOut:
    o = RectificationOut.model_validate(r)
    o.job = _job(s, "rectification", r.id)
    return o


def _eout(s, e: Erasure) -> ErasureOut:
    o = ErasureOut.model_validate(e)
    o.job = _job(s, "erasure", e.id)
    return o


def _wake(request: Request) -> None:
    worker = getattr(request.app.state, "rights_worker", None)
    if worker:
        worker.wake.set()


# ----------------------------------------------------------------------------- patient tokens
@router.post("/patient-tokens", status_code=201)
def create_patient_token(body: PatientTokenCreate, request: Request, staff: Staff = Depends(require("staff")),
                         db=Depends(get_db)) -> dict:
    """A token for one patient (header ``X-Patient-Token``); shown once, only its hash is stored."""
    token = "pt_" + secrets.token_urlsafe(32)
    ttl = body.ttl_hours or request.app.state.settings.patient_token_ttl_hours
    with db.session() as s:
        row = PatientToken(token_sha256=patient_token_hash(token), patient_id=body.patient_id, issuer=body.issuer,
                           created_by=staff.name, expires_at=utcnow() + timedelta(hours=ttl))
        s.add(row)
        s.flush()
        token_id, expires = row.id, row.expires_at
    audit.record("patient-token.created", actor=staff.name, token_id=token_id, patient_id=body.patient_id)
    return {"id": token_id, "token": token, "expires_at": expires}


# ----------------------------------------------------------------------------- rectification
@router.post("/rectifications", status_code=201, response_model=RectificationOut)
def create_rectification(body: RectificationCreate, request: Request,
                         who: Staff = Depends(staff_or_patient("staff")), db=Depends(get_db)) -> RectificationOut:
    same_patient_or_403(request, who, body.patient_id, body.issuer)
    attrs = [c.attribute for c in body.changes]
    if len(set(attrs)) != len(attrs):
        raise rights.InvalidValue("each attribute at most once per request")
    described = [{**rights.validate_change(c.attribute, c.proposed), "current": c.current, "proposed": c.proposed}
                 for c in body.changes]  # 422 before anything else
    if body.uid_policy == "keep" and not any(c.attribute == "PatientID" and c.proposed != c.current for c in body.changes):
        raise rights.InvalidValue("uid_policy 'keep' needs a PatientID change (Orthanc cannot replace an "
                                  "instance under an unchanged id); use 'regenerate'")
    client = request.app.state.make_client()
    patient = client.resolve_patient(body.patient_id)  # 404 unknown-patient
    if body.issuer and patient.get("MainDicomTags", {}).get("IssuerOfPatientID", "") not in ("", body.issuer):
        raise NotFound("no patient with this patient_id and issuer in Orthanc")
    first = client.get_json(f"/patients/{patient['ID']}/instances")[0]["ID"]
    tags = client.instance_tags(first)
    stale = [c.attribute for c in body.changes if rights.tag_value(tags, c.attribute) != c.current]
    if stale:
        raise Conflict(f"the current value of {', '.join(stale)} is not what Orthanc holds; check the request")
    unchanged = [c.attribute for c in body.changes if c.current == c.proposed]
    if unchanged:
        raise rights.InvalidValue(f"nothing to correct for {', '.join(unchanged)}: proposed equals current")
    with db.session() as s:
        r = Rectification(patient_id=body.patient_id, issuer=body.issuer, orthanc_patient_id=patient["ID"],
                          changes=described, evidence=body.evidence, uid_policy=body.uid_policy,
                          rejection_code=body.rejection_code, status="requested", requested_by=who.name)
        s.add(r)
        s.flush()
        rights.take_lock(s, body.patient_id, body.issuer, f"rectification #{r.id}")  # 409 when one is open
        result = _out(s, r)
    audit.record("rectification.requested", actor=who.name, rectification_id=result.id, patient_id=body.patient_id,
                 issuer=body.issuer, changes=described, evidence=body.evidence, via=who.role)
    return result


@router.get("/rectifications", response_model=list[RectificationOut])
def list_rectifications(request: Request, status: str | None = None, who: Staff = Depends(staff_or_patient("staff")),
                        db=Depends(get_db)) -> list[RectificationOut]:
    q = select(Rectification).order_by(Rectification.id)
    if who.is_patient:
        q = q.where(Rectification.patient_id == who.patient[0], Rectification.issuer == who.patient[1])
    if status:
        q = q.where(Rectification.status == status)
    with db.session() as s:
        return [_out(s, r) for r in s.scalars(q)]


@router.get("/rectifications/{rect_id}", response_model=RectificationOut)
def get_rectification(rect_id: int, request: Request, who: Staff = Depends(staff_or_patient("staff")),
                      db=Depends(get_db)) -> RectificationOut:
    with db.session() as s:
        r = get_or_404(s, Rectification, rect_id, "rectification")
        same_patient_or_403(request, who, r.patient_id, r.issuer)
        return _out(s, r)


@router.post("/rectifications/{rect_id}/decision", response_model=RectificationOut)
def decide_rectification(rect_id: int, body: Decision, request: Request, staff: Staff = Depends(require("reviewer")),
                         db=Depends(get_db)) -> RectificationOut:
    """A reviewer approves (the change is applied by a job) or rejects, with a reason."""
    with db.session() as s:
        r = get_or_404(s, Rectification, rect_id, "rectification")
        if r.status != "requested":
            raise Conflict(f"rectification {rect_id} is {r.status}: already decided")
        if r.requested_by == staff.name:
            raise Conflict("the person who filed a request cannot also decide it")
        r.decided_by, r.decided_at, r.decision_reason = staff.name, utcnow(), body.reason
        r.status = "applying" if body.approve else "rejected"
        pid, issuer = r.patient_id, r.issuer
    if body.approve:
        rights.enqueue(db, "rectification", rect_id)
        _wake(request)
    else:
        rights.release_lock(db, pid, issuer, f"rectification #{rect_id}")
    audit.record("rectification.approved" if body.approve else "rectification.rejected", actor=staff.name,
                 rectification_id=rect_id, reason=body.reason, patient_id=pid, issuer=issuer)
    with db.session() as s:
        return _out(s, s.get(Rectification, rect_id))


def _retry(request: Request, db, staff: Staff, kind: str, model, ref_id: int, working: str) -> None:
    """Try a failed apply again (after the fault was fixed): the patient lock is taken again."""
    with db.session() as s:
        r = get_or_404(s, model, ref_id, kind)
        if r.status != "failed":
            raise Conflict(f"{kind} {ref_id} is {r.status}: only failed ones are retried")
        rights.take_lock(s, r.patient_id, r.issuer, f"{kind} #{ref_id}")
        r.status = working
    rights.enqueue(db, kind, ref_id)
    _wake(request)
    audit.record(f"{kind}.retried", actor=staff.name, **{f"{kind}_id": ref_id})


@router.post("/rectifications/{rect_id}/retry", response_model=RectificationOut)
def retry_rectification(rect_id: int, request: Request, staff: Staff = Depends(require("reviewer")),
                        db=Depends(get_db)) -> RectificationOut:
    _retry(request, db, staff, "rectification", Rectification, rect_id, "applying")
    with db.session() as s:
        return _out(s, s.get(Rectification, rect_id))


@router.post("/erasures/{erasure_id}/retry", response_model=ErasureOut)
def retry_erasure(erasure_id: int, request: Request, staff: Staff = Depends(require("dpo")),
                  db=Depends(get_db)) -> ErasureOut:
    _retry(request, db, staff, "erasure", Erasure, erasure_id, "erasing")
    with db.session() as s:
        return _eout(s, s.get(Erasure, erasure_id))


# ----------------------------------------------------------------------------- erasure
@router.post("/erasures", status_code=201, response_model=ErasureOut)
def create_erasure(body: ErasureCreate, request: Request, who: Staff = Depends(staff_or_patient("staff")),
                   db=Depends(get_db)) -> ErasureOut:
    same_patient_or_403(request, who, body.patient_id, body.issuer)
    patient = request.app.state.make_client().resolve_patient(body.patient_id)  # 404 unknown-patient
    with db.session() as s:
        e = Erasure(patient_id=body.patient_id, issuer=body.issuer, orthanc_patient_id=patient["ID"],
                    patient_pseudonym=patient_keys.pseudonym_in(s, body.patient_id, body.issuer),
                    grounds=body.grounds, status="requested", requested_by=who.name)
        s.add(e)
        s.flush()
        rights.take_lock(s, body.patient_id, body.issuer, f"erasure #{e.id}")
        result = _eout(s, e)
    audit.record("erasure.requested", actor=who.name, erasure_id=result.id, patient_id=body.patient_id,
                 issuer=body.issuer, grounds=body.grounds, via=who.role)
    return result


@router.get("/erasures", response_model=list[ErasureOut])
def list_erasures(request: Request, who: Staff = Depends(staff_or_patient("staff")), db=Depends(get_db)) -> list[ErasureOut]:
    q = select(Erasure).order_by(Erasure.id)
    if who.is_patient:
        q = q.where(Erasure.patient_id == who.patient[0], Erasure.issuer == who.patient[1])
    with db.session() as s:
        return [_eout(s, e) for e in s.scalars(q)]


@router.get("/erasures/{erasure_id}", response_model=ErasureOut)
def get_erasure(erasure_id: int, request: Request, who: Staff = Depends(staff_or_patient("staff")),
                db=Depends(get_db)) -> ErasureOut:
    with db.session() as s:
        e = get_or_404(s, Erasure, erasure_id, "erasure")
        same_patient_or_403(request, who, e.patient_id, e.issuer)
        return _eout(s, e)


@router.post("/erasures/{erasure_id}/decision", response_model=ErasureOut)
def decide_erasure(erasure_id: int, body: ErasureDecision, request: Request, staff: Staff = Depends(require("dpo")),
                   db=Depends(get_db)) -> ErasureOut:
    """The DPO grants (removal from Orthanc, pseudonym listed, notices) or refuses with a retention ground."""
    if not body.grant and body.retention_ground not in rights.RETENTION_GROUNDS:
        raise rights.InvalidValue(f"a refusal names its retention ground: one of {', '.join(rights.RETENTION_GROUNDS)}")
    with db.session() as s:
        e = get_or_404(s, Erasure, erasure_id, "erasure")
        if e.status != "requested":
            raise Conflict(f"erasure {erasure_id} is {e.status}: already decided")
        e.decided_by, e.decided_at, e.decision_reason = staff.name, utcnow(), body.reason
        e.status = "erasing" if body.grant else "refused"
        if not body.grant:
            e.retention_ground, e.retain_until = body.retention_ground, body.retain_until
        pid, issuer = e.patient_id, e.issuer
    if body.grant:
        rights.enqueue(db, "erasure", erasure_id)
        _wake(request)
    else:
        rights.release_lock(db, pid, issuer, f"erasure #{erasure_id}")
    audit.record("erasure.granted" if body.grant else "erasure.refused", actor=staff.name, erasure_id=erasure_id,
                 reason=body.reason, patient_id=pid, issuer=issuer, retention_ground=body.retention_ground,
                 legal_basis=rights.RETENTION_GROUNDS.get(body.retention_ground or ""))
    with db.session() as s:
        return _eout(s, s.get(Erasure, erasure_id))
