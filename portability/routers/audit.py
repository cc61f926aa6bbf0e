"""The audit trail (DPO only): list, one patient's records, verify the store and the plugin's log,
import the plugin's log, export as FHIR AuditEvent (IHE BALP), and the breach query (CSV or JSON)."""
from __future__ import annotations

import json
from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from .. import audit, audit_integrity, audit_reports, chain
from ..auth import Staff, require
from ..errors import ServiceError
from ..models import AuditEvent
from ..schemas import AuditOut
from .deps import db as get_db

router = APIRouter(tags=["audit"])


@router.get("/audit", response_model=list[AuditOut])
def list_events(request_id: int | None = None, event: str | None = None,
                staff: Staff = Depends(require("dpo")), db=Depends(get_db)) -> list[AuditOut]:
    q = select(AuditEvent).order_by(AuditEvent.seq)
    if request_id is not None:
        q = q.where(AuditEvent.request_id == request_id)
    if event:
        q = q.where(AuditEvent.event == event)
    with db.session() as s:
        rows = list(s.scalars(q))
    opened = audit.readable(db, [json.loads(e.record) if e.record else {} for e in rows])
    out = []
    for e, rec in zip(rows, opened):
        o = AuditOut.model_validate(e)
        if e.record:
            o.fields = chain.fields_of(rec)
        out.append(o)
    return out


@router.get("/api/audit/records")
def list_records(event: str | None = None, source: str | None = None, staff: Staff = Depends(require("dpo")),
                 db=Depends(get_db)) -> list[dict]:
    """The chain records themselves (service and imported plugin records), sealed patient fields
    opened while the patient's key exists (``"erased": true`` once it was shredded)."""
    return audit.readable(db, [r for r in chain.records(db)
                               if (not event or r["event"] == event) and (not source or r["source"] == source)])


class PatientQuery(BaseModel):
    patient_id: str = Field(..., min_length=1, max_length=64)
    issuer: str = Field("", max_length=64)


@router.post("/api/audit/patient-records")
def patient_records(body: PatientQuery, staff: Staff = Depends(require("dpo")), db=Depends(get_db)) -> list[dict]:
    """Every service record about one patient, sealed fields opened (records name patients by
    pseudonym only). POSTed, so the patient's ID never sits in an address or an access log."""
    found = audit.records_for_patient(body.patient_id, body.issuer, db)
    audit.record("audit.patient-records", actor=staff.name, patient_id=body.patient_id, issuer=body.issuer,
                 matches=len(found))
    return found


@router.get("/api/audit/verify")
def verify(request: Request, staff: Staff = Depends(require("dpo")), db=Depends(get_db)) -> dict:
    """The store and the plugin's log checked whole (the same answer as ``orthanc-gdpr audit verify
    --json``); a break is raised as a ``security.audit-broken`` incident and blocks nothing."""
    return audit_integrity.verify_whole(db, request.app.state.settings.plugin_audit_log, actor=staff.name)


@router.post("/api/audit/ingest")
def ingest(request: Request, staff: Staff = Depends(require("dpo")), db=Depends(get_db)) -> dict:
    """Import the plugin's JSONL log (sound records only; idempotent). Broken records are left out,
    listed in ``breaks`` and raised as incidents."""
    path = request.app.state.settings.plugin_audit_log
    if not path:
        raise ServiceError("no plugin audit log configured (ORTHANC_GDPR_SERVICE_PLUGIN_AUDIT_LOG)")
    return audit_integrity.ingest(db, path, actor=staff.name)


@router.get("/api/audit/fhir")
def export_fhir(since: datetime | None = None, until: datetime | None = None, event: list[str] | None = Query(None),
                staff: Staff = Depends(require("dpo")), db=Depends(get_db)) -> dict:
    bundle = audit_reports.export_bundle(db, since, until, set(event) if event else None)
    audit.record("audit.exported", actor=staff.name, entries=bundle["total"], since=since, until=until)
    return bundle


@router.get("/api/audit/breach")
def breach(request: Request, since: datetime, until: datetime, destination: str | None = None,
           user: str | None = None, format: str = Query("json", pattern="^(json|csv)$"),
           staff: Staff = Depends(require("dpo")), db=Depends(get_db)):
    """Every patient whose data went to ``destination`` or was downloaded by ``user`` in [since, until]."""
    if not destination and not user:
        raise ServiceError("give destination= or user=")
    settings = request.app.state.settings
    if settings.plugin_audit_log:
        audit_integrity.ingest(db, settings.plugin_audit_log, actor=staff.name)
    rows = audit_reports.breach(db, request.app.state.make_client(), since, until, destination, user)
    audit.record("audit.breach-query", actor=staff.name, destination=destination, user=user,
                 since=since, until=until, matches=len(rows))
    if format == "csv":
        return Response(audit_reports.breach_csv(rows), media_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="breach.csv"'})
    return audit_reports.breach_summary(rows)
