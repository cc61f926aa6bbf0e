"""What the service forgets when a patient's erasure is carried out (Art. 17).

The patient's working records are the patient's data, and go: consents, restriction and
objection flags, patient tokens, access/portability requests with their jobs, links and bundle
files, rectifications with their Art. 19 notices. Consents signed on screen lose the signature
(biometric strokes) and the FHIR document naming the patient; the signing row keeps its form,
decision, dates and the document's hash, under the erasure (``erased:<id>``). What must be kept
refers to the patient by pseudonym only:

* audit records (hash-chained: never edited) hold the patient's fields sealed under the patient's
  key (:mod:`portability.audit`), which :func:`portability.patient_keys.shred` destroys;
* erasure records (this one and earlier refused ones) keep their decision, dates, people and
  retention ground, and name the patient by ``patient_pseudonym``;
* Art. 19 notices of the erasure name recipients, not the patient.

The caller compacts the database files last (:meth:`portability.db.Database.compact`), after
every other write of the erasure.
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import and_, delete, or_, select

from .models import (CaseTracking, Consent, ConsentSigning, DownloadLink, Erasure, Job, PatientFlag, PatientToken,
                     PortabilityRequest, RecipientNotice, Rectification, RightsJob)


def _files_of(s, job_ids: list[int]) -> list[Path]:
    paths = [p for (p,) in s.execute(select(Job.result_path).where(Job.id.in_(job_ids))) if p]
    paths += [p for (p,) in s.execute(select(DownloadLink.file_path).where(DownloadLink.job_id.in_(job_ids))) if p]
    return [Path(p) for p in paths]


def forget_patient(db, patient_id: str, issuer: str, orthanc_patient: str | None, pseudonym: str,
                   keep_erasure: int) -> dict:
    """Delete the patient's working records; the erasure records (``keep_erasure`` and earlier ones
    of the same patient) name the patient by ``pseudonym`` only.
    Returns how many rows of each kind went (counts only, no identifiers)."""
    counts: dict[str, int] = {}
    files: list[Path] = []
    with db.session() as s:
        def gone(name: str, stmt) -> None:
            counts[name] = counts.get(name, 0) + (s.execute(stmt).rowcount or 0)

        same = {"patient_id": patient_id, "issuer": issuer or ""}
        request_ids = list(s.scalars(select(PortabilityRequest.id).where(or_(
            PortabilityRequest.patient_id == patient_id,
            *([PortabilityRequest.orthanc_patient_id == orthanc_patient] if orthanc_patient else [])))))
        job_ids = list(s.scalars(select(Job.id).where(Job.request_id.in_(request_ids))))
        files = _files_of(s, job_ids)
        rect_ids = list(s.scalars(select(Rectification.id).filter_by(**same)))
        flag_ids = list(s.scalars(select(PatientFlag.id).filter_by(**same)))
        for kind, ids in (("request", request_ids), ("rectification", rect_ids), ("flag", flag_ids)):
            gone("case_tracking", delete(CaseTracking).where(CaseTracking.case_kind == kind, CaseTracking.ref_id.in_(ids)))
        gone("download_links", delete(DownloadLink).where(DownloadLink.job_id.in_(job_ids)))
        gone("bundle_jobs", delete(Job).where(Job.id.in_(job_ids)))
        gone("requests", delete(PortabilityRequest).where(PortabilityRequest.id.in_(request_ids)))
        gone("notices", delete(RecipientNotice).where(RecipientNotice.right == "rectification",
                                                      RecipientNotice.ref_id.in_(rect_ids)))
        gone("rights_jobs", delete(RightsJob).where(RightsJob.kind == "rectification", RightsJob.ref_id.in_(rect_ids)))
        gone("rectifications", delete(Rectification).where(Rectification.id.in_(rect_ids)))
        for row in s.scalars(select(ConsentSigning).filter_by(**same)):
            row.patient_id, row.issuer, row.signature, row.fhir = f"erased:{keep_erasure}", "", None, None
            row.consent_id = None  # the consent row goes below
            counts["consent_signings_anonymised"] = counts.get("consent_signings_anonymised", 0) + 1
        s.flush()
        gone("consents", delete(Consent).filter_by(**same))
        gone("flags", delete(PatientFlag).where(PatientFlag.id.in_(flag_ids)))
        gone("patient_tokens", delete(PatientToken).filter_by(**same))
        for e in s.scalars(select(Erasure).where(or_(Erasure.id == keep_erasure, and_(
                Erasure.patient_id == patient_id, Erasure.issuer == (issuer or ""))))):
            e.patient_pseudonym, e.patient_id, e.issuer, e.orthanc_patient_id = pseudonym, "", "", None
            e.grounds = e.decision_reason = None  # free text: kept sealed in the audit records only
            if e.plan:
                e.plan = {"studies": len(e.plan.get("studies", [])), "recipients": len(e.plan.get("recipients", []))}
    for path in files:
        for p in (path, path.with_name(path.name + ".partial")):
            p.unlink(missing_ok=True)
    counts["bundle_files"] = len(files)
    return counts
