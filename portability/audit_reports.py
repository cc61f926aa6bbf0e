"""Reports over the one audit store: FHIR AuditEvent export (IHE BALP shape) and the breach query.

BALP (IHE Basic Audit Log Patterns, FHIR R4): disclosures (plugin routing, de-identified downloads,
patient bundles, Art. 19 copies, anonymous exports) are ``DCM 110106 Export``; changes of a patient's record
(rectification applied, erasure, consent and restriction changes) are ``DCM 110110 Patient Record``;
refusals of access are ``DCM 110113 Security Alert``; everything else is a RESTful operation.
Each AuditEvent carries the chain position (seq, hash) so an export can be matched to the store.
"""
from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from sqlalchemy import select

from . import audit, chain
from .fhir_ids import urn_uuid
from .models import Erasure, Rectification

DCM = "http://dicom.nema.org/resources/ontology/DCM"
EXPORT = {"system": DCM, "code": "110106", "display": "Export"}
PATIENT_RECORD = {"system": DCM, "code": "110110", "display": "Patient Record"}
SECURITY_ALERT = {"system": DCM, "code": "110113", "display": "Security Alert"}
QUERY = {"system": DCM, "code": "110112", "display": "Query"}
REST = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
        "display": "RESTful Operation"}
EXPORT_EVENTS = {"route.done", "download", "bundle.download", "rectification.notice", "erasure.notice",
                 "anonymity.decision"}
RECORD_EVENTS = {"rectification.applied": "U", "erasure.done": "D", "consent.recorded": "C",
                 "consent.withdrawn": "U", "restriction.recorded": "U", "objection.recorded": "U",
                 "restriction.lifted": "U", "objection.lifted": "U"}
FAILED_WORDS = ("refused", "failed", "rejected", "held-back", "retry")


def _kind(event: str) -> tuple[dict, str]:
    if event in EXPORT_EVENTS:
        return EXPORT, "R"
    if event in RECORD_EVENTS:
        return PATIENT_RECORD, RECORD_EVENTS[event]
    if event in ("access.refused", "export.refused"):
        return SECURITY_ALERT, "E"
    if event == "consent.standing":
        return QUERY, "E"
    return REST, "E"


def audit_event(record: dict) -> dict:
    """One chain record as a FHIR R4B AuditEvent (BALP shape)."""
    f = chain.fields_of(record)
    event = record["event"]
    type_, action = _kind(event)
    plugin = record.get("source") == "plugin"
    failed = any(w in event for w in FAILED_WORDS) or f.get("status") in ("failed",)
    actor = f.get("user") if plugin else record.get("actor")
    agents = [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type",
                                    "code": "humanuser", "display": "human user"}]},
               "who": {"display": str(actor or "system")}, "requestor": True}]
    destination = f.get("destination") or f.get("recipient")
    if destination:
        agents.append({"type": {"coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]},
                       "who": {"display": str(destination)}, "requestor": False})
    entities = []
    patient = f.get("patient_id") or f.get("patient") or f.get("patient_pseudonym")
    if patient:
        entities.append({"what": {"identifier": {"value": str(patient)}},
                         "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1",
                                  "display": "Person"},
                         "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1",
                                  "display": "Patient"}})
    resource = f.get("resource")
    if resource:
        entities.append({"what": {"identifier": {"system": "urn:orthanc:" + str(f.get("level", "resource")),
                                                 "value": str(resource)}},
                         "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2",
                                  "display": "System Object"}})
    entities.append({"what": {"identifier": {"system": "urn:orthanc-gdpr:audit", "value": str(record["seq"])}},
                     "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "4",
                              "display": "Other"},
                     "detail": [{"type": "event", "valueString": event},
                                {"type": "seq", "valueString": str(record["seq"])},
                                {"type": "hash", "valueString": record["hash"]},
                                *([{"type": "source-seq", "valueString": str(record["origin"]["seq"])}] if plugin else [])]})
    doc: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": f"audit-{record['seq']}",
        "type": type_,
        "subtype": [{"system": "urn:orthanc-gdpr:event", "code": event}],
        "action": action,
        "recorded": chain.effective_ts(record).isoformat(),
        "outcome": "4" if failed else "0",
        "agent": agents,
        "source": {"site": "orthanc-gdpr", "observer": {"display": "orthanc-gdpr plugin" if plugin else
                                                        "orthanc-gdpr service"},
                   "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4",
                             "display": "Application Server"}]},
        "entity": entities,
    }
    if failed and (f.get("reason") or f.get("error")):
        doc["outcomeDesc"] = str(f.get("reason") or f.get("error"))[:500]
    if f.get("purpose"):
        doc["purposeOfEvent"] = [{"coding": [{"system": "urn:orthanc-gdpr:purpose", "code": str(f["purpose"])}]}]
    return doc


def export_bundle(db, since: datetime | None = None, until: datetime | None = None,
                  events: set[str] | None = None) -> dict:
    recs = audit.readable(db, [r for r in chain.records(db, since, until) if not events or r["event"] in events])
    return {"resourceType": "Bundle", "type": "collection", "total": len(recs),
            "entry": [{"fullUrl": urn_uuid("audit", r["hash"]), "resource": audit_event(r)} for r in recs]}


# ----------------------------------------------------------------------------- breach query
BREACH_COLUMNS = ("when", "event", "destination", "user", "patient_id", "patient_name", "orthanc_patient",
                  "level", "resource", "instances", "audit_seq", "note")


def _patient_of(client, level: str, resource: str, plans: dict[str, dict]) -> dict:
    if client is not None:
        path = {"studies": "studies", "series": "series", "instances": "instances"}.get(level, "studies")
        try:
            res = client.get_json(f"/{path}/{resource}")
            if path == "instances":
                res = client.get_json(f"/instances/{resource}/study")
            elif path == "series":
                res = client.get_json(f"/studies/{res['ParentStudy']}")
            tags = res.get("PatientMainDicomTags", {})
            return {"patient_id": tags.get("PatientID", ""), "patient_name": tags.get("PatientName", ""),
                    "orthanc_patient": res.get("ParentPatient", ""), "note": ""}
        except Exception:  # noqa: BLE001 - gone from Orthanc (rectified/erased) or Orthanc down
            pass
    if resource in plans:
        p = plans[resource]
        return {"patient_id": p["patient_id"], "patient_name": "", "orthanc_patient": p["orthanc_patient"],
                "note": f"resource since {p['how']}"}
    return {"patient_id": "", "patient_name": "", "orthanc_patient": "", "note": "resource no longer in Orthanc"}


def _plans(db) -> dict[str, dict]:
    """Old Orthanc ids -> patient, from rectification/erasure plans (their resources are gone)."""
    out: dict[str, dict] = {}
    with db.session() as s:
        rows = [(r.plan, r.patient_id, f"rectified (#{r.id})") for r in s.scalars(select(Rectification))] + \
               [(e.plan, e.patient_id, f"erased (#{e.id})") for e in s.scalars(select(Erasure))]
    for plan, pid, how in rows:
        if not plan:
            continue
        for st in plan.get("studies", []):
            ids = [st["old_id"]] + [x["id"] for x in st.get("series", [])] + [x["id"] for x in st.get("instances", [])]
            for i in ids:
                out[i] = {"patient_id": pid, "orthanc_patient": plan.get("patient", ""), "how": how}
    return out


def breach(db, client, since: datetime, until: datetime, destination: str | None = None,
           user: str | None = None) -> list[dict]:
    """Every patient whose data went to ``destination`` or was downloaded by ``user`` in [since, until]."""
    plans = _plans(db)
    rows = []
    for rec in chain.records(db, since, until):
        f = chain.fields_of(rec)
        hit = False
        if destination and rec["event"] == "route.done":
            d = str(f.get("destination", ""))
            hit = d == destination or d.partition(":")[2] == destination
        if user and rec["event"] == "download":
            hit = hit or f.get("user") == user
        if not hit:
            continue
        who = _patient_of(client, str(f.get("level", "studies")), str(f.get("resource", "")), plans)
        rows.append({"when": chain.effective_ts(rec).isoformat(), "event": rec["event"],
                     "destination": f.get("destination", ""), "user": f.get("user", ""),
                     "level": f.get("level", ""), "resource": f.get("resource", ""),
                     "instances": f.get("sent", f.get("instances", "")), "audit_seq": rec["seq"], **who})
    return rows


def breach_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=BREACH_COLUMNS, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def breach_summary(rows: list[dict]) -> dict:
    patients = sorted({(r["patient_id"], r["orthanc_patient"]) for r in rows})
    return {"patients": [{"patient_id": p, "orthanc_patient": o} for p, o in patients],
            "patient_count": len(patients), "events": rows}
