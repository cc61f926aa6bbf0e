"""Consent registry (explicit consent per patient and purpose), restriction and objection flags.

``GET /api/consents/standing`` is what the plugin's consent gate asks before routing
(``orthanc_gdpr.routing.consent.ConsentService``): ``{"consent", "restricted", "objected"}``.
Consents are exported as FHIR R4B ``Consent`` resources.
"""
from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from .. import audit
from ..auth import Staff, machine_or_staff, require, same_patient_or_403, staff_or_patient
from ..errors import Conflict, ServiceError
from ..fhir_ids import urn_uuid
from ..models import Consent, PatientFlag, aware, utcnow
from .deps import db as get_db, get_or_404

router = APIRouter(prefix="/api", tags=["consent"])
FLAG_KINDS = ("restriction", "objection")
PURPOSE_SYSTEM = "urn:orthanc-gdpr:purpose"
V3_PURPOSE = {"research": "HRESCH", "care": "TREAT", "teaching": "HOPERAT", "public-health": "PUBHLTH"}


class ConsentCreate(BaseModel):
    patient_id: str = Field(..., min_length=1, max_length=64)
    issuer: str = Field("", max_length=64)
    purpose: str = Field(..., pattern=r"^[a-z][a-z0-9-]{1,63}$",
                         description="e.g. research, research-oncology, teaching, transfer-abroad")
    evidence: str | None = Field(None, max_length=2000, description="reference to the signed form, recording, ...")
    expires_at: datetime | None = None
    recorded_at: datetime | None = Field(None, description="when consent was given (default: now)")


class Withdrawal(BaseModel):
    reason: str | None = Field(None, max_length=2000)


class ConsentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    patient_id: str
    issuer: str
    purpose: str
    recorded_by: str
    recorded_at: datetime
    evidence: str | None
    expires_at: datetime | None
    withdrawn_at: datetime | None
    withdrawn_by: str | None
    withdrawal_reason: str | None
    status: str = "active"


class FlagCreate(BaseModel):
    patient_id: str = Field(..., min_length=1, max_length=64)
    issuer: str = Field("", max_length=64)
    kind: str = Field(..., pattern="^(restriction|objection)$")
    reason: str | None = Field(None, max_length=2000)


class FlagOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    patient_id: str
    issuer: str
    kind: str
    reason: str | None
    recorded_by: str
    recorded_at: datetime
    lifted_at: datetime | None
    lifted_by: str | None


def consent_status(c: Consent, now: datetime | None = None) -> str:
    now = now or utcnow()
    if c.withdrawn_at is not None:
        return "withdrawn"
    if c.expires_at is not None and aware(c.expires_at) <= now:
        return "expired"
    return "active"


def out(c: Consent) -> ConsentOut:
    o = ConsentOut.model_validate(c)
    o.recorded_at, o.expires_at, o.withdrawn_at = aware(c.recorded_at), aware(c.expires_at), aware(c.withdrawn_at)
    o.status = consent_status(c)
    return o


def standing_of(db, patient_id: str, issuer: str, purpose: str) -> dict:
    """The registry's answer for one patient and purpose (also used by download/bundle checks)."""
    with db.session() as s:
        consents = s.scalars(select(Consent).where(Consent.patient_id == patient_id, Consent.issuer == issuer,
                                                   Consent.purpose == purpose)).all()
        flags = s.scalars(select(PatientFlag).where(PatientFlag.patient_id == patient_id, PatientFlag.issuer == issuer,
                                                    PatientFlag.lifted_at.is_(None))).all()
    now = utcnow()
    return {"consent": any(consent_status(c, now) == "active" for c in consents),
            "restricted": any(f.kind == "restriction" for f in flags),
            "objected": any(f.kind == "objection" for f in flags)}


@router.get("/consents/standing")
def standing(patient_id: str = "", issuer: str = "", purpose: str = Query(..., min_length=1),
             staff: Staff = Depends(machine_or_staff("staff")), db=Depends(get_db)) -> dict:
    """For the plugin's consent gate: explicit consent for ``purpose``, restriction, objection.

    A blank ``patient_id`` (data without a PatientID) is a 400 naming it: no answer can exist."""
    if not patient_id.strip():
        raise ServiceError("patient_id is required: data without a PatientID (0010,0020) cannot be checked "
                           "against the consent registry")
    answer = standing_of(db, patient_id, issuer, purpose)
    audit.record("consent.standing", actor=staff.name, patient_id=patient_id, issuer=issuer, purpose=purpose, **answer)
    return answer


@router.post("/consents", status_code=201, response_model=ConsentOut)
def create_consent(body: ConsentCreate, staff: Staff = Depends(require("staff")), db=Depends(get_db)) -> ConsentOut:
    recorded = body.recorded_at or utcnow()
    recorded = recorded if recorded.tzinfo else recorded.replace(tzinfo=timezone.utc)
    expires = body.expires_at
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=timezone.utc)
    if expires is not None and expires <= recorded:
        raise Conflict("expires_at must be after the consent was given")
    with db.session() as s:
        c = Consent(patient_id=body.patient_id, issuer=body.issuer, purpose=body.purpose, recorded_by=staff.name,
                    recorded_at=recorded, evidence=body.evidence, expires_at=expires)
        s.add(c)
        s.flush()
        result = out(c)
    audit.record("consent.recorded", actor=staff.name, consent_id=result.id, patient_id=body.patient_id,
                 issuer=body.issuer, purpose=body.purpose, evidence=body.evidence, expires_at=expires)
    return result


@router.get("/consents", response_model=list[ConsentOut])
def list_consents(request: Request, patient_id: str | None = None, issuer: str = "", purpose: str | None = None,
                  who: Staff = Depends(staff_or_patient("staff")), db=Depends(get_db)) -> list[ConsentOut]:
    if who.is_patient:
        patient_id, issuer = who.patient
    q = select(Consent).order_by(Consent.id)
    if patient_id:
        q = q.where(Consent.patient_id == patient_id, Consent.issuer == issuer)
    if purpose:
        q = q.where(Consent.purpose == purpose)
    with db.session() as s:
        return [out(c) for c in s.scalars(q)]


@router.get("/consents/{consent_id}", response_model=ConsentOut)
def get_consent(consent_id: int, request: Request, who: Staff = Depends(staff_or_patient("staff")),
                db=Depends(get_db)) -> ConsentOut:
    with db.session() as s:
        c = get_or_404(s, Consent, consent_id, "consent")
        same_patient_or_403(request, who, c.patient_id, c.issuer)
        return out(c)


@router.post("/consents/{consent_id}/withdraw", response_model=ConsentOut)
def withdraw(consent_id: int, body: Withdrawal, request: Request, who: Staff = Depends(staff_or_patient("staff")),
             db=Depends(get_db)) -> ConsentOut:
    """Art. 7(3): withdrawal takes effect at once (the next routing decision sees it)."""
    with db.session() as s:
        c = get_or_404(s, Consent, consent_id, "consent")
        same_patient_or_403(request, who, c.patient_id, c.issuer)
        if c.withdrawn_at is not None:
            raise Conflict(f"consent {consent_id} was already withdrawn")
        c.withdrawn_at, c.withdrawn_by, c.withdrawal_reason = utcnow(), who.name, body.reason
        result = out(c)
    audit.record("consent.withdrawn", actor=who.name, consent_id=consent_id, patient_id=result.patient_id,
                 purpose=result.purpose, reason=body.reason)
    return result


def fhir_consent(c: Consent, issuer_label: str) -> dict:
    """One consent as a FHIR R4B Consent (scope research / patient-privacy, provision permit)."""
    status = consent_status(c)
    purpose = [{"system": PURPOSE_SYSTEM, "code": c.purpose}]
    if c.purpose.split("-")[0] in V3_PURPOSE:
        purpose.append({"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                        "code": V3_PURPOSE[c.purpose.split("-")[0]]})
    period = {"start": aware(c.recorded_at).isoformat()}
    if c.expires_at:
        period["end"] = aware(c.expires_at).isoformat()
    doc = {
        "resourceType": "Consent",
        "id": f"consent-{c.id}",
        "status": "active" if status == "active" else "inactive",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "research" if c.purpose.startswith("research") else "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}]}],
        "patient": {"identifier": {"system": f"urn:orthanc-gdpr:issuer:{c.issuer or 'default'}", "value": c.patient_id}},
        "dateTime": aware(c.recorded_at).isoformat(),
        "organization": [{"display": issuer_label}],
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {"type": "permit", "period": period, "purpose": purpose},
        "extension": [{"url": "urn:orthanc-gdpr:consent:recorded-by", "valueString": c.recorded_by},
                      {"url": "urn:orthanc-gdpr:consent:state", "valueCode": status}],
    }
    if c.evidence:
        doc["sourceReference"] = {"display": c.evidence}
    if c.withdrawn_at:
        doc["extension"].append({"url": "urn:orthanc-gdpr:consent:withdrawn-at",
                                 "valueDateTime": aware(c.withdrawn_at).isoformat()})
    return doc


@router.get("/consents/{consent_id}/fhir")
def consent_fhir(consent_id: int, request: Request, who: Staff = Depends(staff_or_patient("staff")),
                 db=Depends(get_db)) -> dict:
    with db.session() as s:
        c = get_or_404(s, Consent, consent_id, "consent")
        same_patient_or_403(request, who, c.patient_id, c.issuer)
        return fhir_consent(c, request.app.state.settings.issuer)


@router.get("/fhir/Consent")
def consent_bundle(request: Request, patient_id: str | None = None, issuer: str = "",
                   who: Staff = Depends(staff_or_patient("staff")), db=Depends(get_db)) -> dict:
    """A FHIR searchset Bundle of consents (one patient's, or all)."""
    if who.is_patient:
        patient_id, issuer = who.patient
    q = select(Consent).order_by(Consent.id)
    if patient_id:
        q = q.where(Consent.patient_id == patient_id, Consent.issuer == issuer)
    with db.session() as s:
        entries = [{"fullUrl": urn_uuid("consent", c.id, aware(c.recorded_at).isoformat()),
                    "resource": fhir_consent(c, request.app.state.settings.issuer)} for c in s.scalars(q)]
    return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}


# ------------------------------------------------------------------------ restriction / objection
@router.post("/flags", status_code=201, response_model=FlagOut)
def create_flag(body: FlagCreate, staff: Staff = Depends(require("staff")), db=Depends(get_db)) -> FlagOut:
    """Art. 18 restriction or Art. 21 objection: the plugin refuses every purpose but care."""
    with db.session() as s:
        f = PatientFlag(patient_id=body.patient_id, issuer=body.issuer, kind=body.kind, reason=body.reason,
                        recorded_by=staff.name)
        s.add(f)
        s.flush()
        result = FlagOut.model_validate(f)
    audit.record(f"{body.kind}.recorded", actor=staff.name, flag_id=result.id, patient_id=body.patient_id,
                 issuer=body.issuer, reason=body.reason)
    return result


@router.get("/flags", response_model=list[FlagOut])
def list_flags(patient_id: str | None = None, issuer: str = "", active: bool = False,
               staff: Staff = Depends(require("staff")), db=Depends(get_db)) -> list[FlagOut]:
    q = select(PatientFlag).order_by(PatientFlag.id)
    if patient_id:
        q = q.where(PatientFlag.patient_id == patient_id, PatientFlag.issuer == issuer)
    if active:
        q = q.where(PatientFlag.lifted_at.is_(None))
    with db.session() as s:
        return [FlagOut.model_validate(f) for f in s.scalars(q)]


@router.post("/flags/{flag_id}/lift", response_model=FlagOut)
def lift_flag(flag_id: int, staff: Staff = Depends(require("reviewer")), db=Depends(get_db)) -> FlagOut:
    with db.session() as s:
        f = get_or_404(s, PatientFlag, flag_id, "flag")
        if f.lifted_at is not None:
            raise Conflict(f"flag {flag_id} was already lifted")
        f.lifted_at, f.lifted_by = utcnow(), staff.name
        result = FlagOut.model_validate(f)
    audit.record(f"{result.kind}.lifted", actor=staff.name, flag_id=flag_id, patient_id=result.patient_id)
    return result
