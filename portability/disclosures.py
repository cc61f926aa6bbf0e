"""Every disclosure of one patient's data, from the one audit store (GDPR Art. 15(1)(c)).

A *disclosure* is data leaving the archive for someone: a routing rule delivering a study
(``route.done`` with at least one instance sent), a staff member's de-identified download through
the plugin (``download``), identified data handed out by Orthanc's own routes at a person's
request (``export``: archive, media, file to that person; store to a modality or peer), the
patient's own earlier bundles (``bundle.download`` of a GET that answered 200/206). Everything else in the store (claims, queue bookkeeping, refusals, internal
fetches by the service itself) is an internal machine record and is not a disclosure.

Plugin records name Orthanc resources, not patients: they are matched by the patient's Orthanc
ids (patient, studies, series, instances) given as ``resources``. Service records are matched by
the patient's requests. :func:`disclosures_for` is the only query; the bundle's Art. 15 notice
and the Art. 19 recipient list read through it.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select

from . import audit_integrity, chain
from .models import PortabilityRequest

ROUTE, DOWNLOAD, BUNDLE = "route", "download", "bundle"


@dataclass(frozen=True)
class Disclosure:
    """One recipient receiving the patient's data once.

    ``kind``: ``route`` (``recipient`` is the destination key, e.g. ``modality:RESEARCH_PACS``),
    ``download`` (``recipient`` is the Orthanc user) or ``bundle`` (the patient, ``recipient`` is
    ``request:N``). ``profile`` is the de-identification profile, ``None`` when the data carried
    the patient's identity."""
    at: datetime
    kind: str
    recipient: str
    purpose: str | None
    lawful_basis: str | None
    profile: str | None
    rule: str | None = None
    request_id: int | None = None

    @property
    def identified(self) -> bool:
        return self.profile is None


def _request_ids(db, patient_id: str | None, issuer: str | None, orthanc_patient: str | None) -> set[int]:
    by_id = and_(PortabilityRequest.patient_id == patient_id,
                 or_(PortabilityRequest.issuer == issuer, PortabilityRequest.issuer.is_(None), issuer is None)) \
        if patient_id else None
    by_orthanc = PortabilityRequest.orthanc_patient_id == orthanc_patient if orthanc_patient else None
    clauses = [c for c in (by_id, by_orthanc) if c is not None]
    if not clauses:
        return set()
    with db.session() as s:
        return set(s.scalars(select(PortabilityRequest.id).where(or_(*clauses))))


def _of_record(rec: dict, resources: set[str], requests: set[int], service_user: str | None = None) -> Disclosure | None:
    f = chain.fields_of(rec)
    at = chain.effective_ts(rec)
    if rec.get("source") == "plugin":
        if rec["event"] == "export" and f.get("result") == "sent" and resources & set(f.get("resources") or ()):
            # the service's own fetches (bundles, rectification checks) are internal, not disclosures
            return None if service_user and f.get("user") == service_user else _identified_export(at, f)
        if f.get("resource") not in resources:
            return None
        if rec["event"] == "route.done" and f.get("destination") and int(f.get("sent") or 0) > 0:
            return Disclosure(at, ROUTE, str(f["destination"]), f.get("purpose"), f.get("lawful_basis"),
                              f.get("profile"), rule=f.get("rule"))
        if rec["event"] == "download" and f.get("user") and int(f.get("instances") or 0) > 0:
            return Disclosure(at, DOWNLOAD, str(f["user"]), f.get("purpose"), f.get("lawful_basis"),
                              f.get("profile"))
        return None
    if rec["event"] == "bundle.download" and rec.get("request_id") in requests \
            and f.get("status") in (200, 206) and f.get("method", "GET") == "GET":
        return Disclosure(at, BUNDLE, f"request:{rec['request_id']}", "portability", "data-subject-request",
                          None, request_id=rec["request_id"])
    return None


def _identified_export(at: datetime, f: dict) -> Disclosure:
    """Orthanc's own routes at a person's request (``export`` records of the plugin's egress gate):
    a store to a modality or peer goes to that destination, anything else (archive, media, file)
    to the person who fetched it. The data carried the patient's identity (no profile)."""
    destination, purpose = f.get("destination"), f.get("purpose")
    basis = "care" if purpose == "care" else None
    if destination:
        kind = "modality" if str(f.get("route", "")).startswith("modalities") else "peer"
        return Disclosure(at, ROUTE, f"{kind}:{destination}", purpose, basis, None)
    return Disclosure(at, DOWNLOAD, str(f.get("user")), purpose, basis, None)


def disclosures_for(db, settings, *, patient_id: str | None = None, issuer: str | None = None,
                    orthanc_patient: str | None = None, resources: Iterable[str] = ()) -> list[Disclosure]:
    """The disclosures of one patient's data, oldest first, one per recipient and occasion.

    ``resources``: the patient's Orthanc ids (patient, studies, series, instances) that plugin
    records may name. The plugin's audit log is imported first (``settings.plugin_audit_log``).
    Repeated HTTP range requests of one bundle download count once (per request and day)."""
    if settings is not None and settings.plugin_audit_log:  # a broken line: left out, raised as an incident
        audit_integrity.ingest(db, settings.plugin_audit_log, actor="orthanc-gdpr disclosures")
    resources = set(resources) | ({orthanc_patient} if orthanc_patient else set())
    requests = _request_ids(db, patient_id, issuer, orthanc_patient)
    out: list[Disclosure] = []
    seen: set[tuple] = set()
    for rec in chain.records(db):
        d = _of_record(rec, resources, requests, getattr(settings, "orthanc_username", None))
        if d is None:
            continue
        if d.kind == BUNDLE:
            key = (d.kind, d.request_id, d.at.date())
            if key in seen:
                continue
            seen.add(key)
        out.append(d)
    out.sort(key=lambda d: d.at)
    return out
