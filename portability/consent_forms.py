"""Versioned consent forms, and consents signed on screen, stored as FHIR R5 ``Consent``.

A form (title, text, purpose, lawful basis, language) is published by the DPO as a new version;
earlier versions stay as they were. The front desk puts one version before a patient (a pending
*signing*); the patient signs on the pad or declines. Signing records the consent in the
registry (``consents``, which the plugin's consent gate asks), and keeps the FHIR Consent as
signed: it references the form version (``policyText``) and carries the signature as SVG and as
its raw strokes (``sourceAttachment``). The SHA-256 of that document goes into the audit chain,
so a later change to the form or the signature is found by :func:`verify`.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re

from sqlalchemy import func, select

from . import audit, signatures
from .errors import Conflict, NotFound, ServiceError
from .models import Consent, ConsentForm, ConsentSigning, aware, utcnow

PURPOSE_SYSTEM = "urn:orthanc-gdpr:purpose"
BASIS_SYSTEM = "urn:orthanc-gdpr:lawful-basis"
SHA256_EXTENSION = "urn:orthanc-gdpr:sha256"
SLUG = re.compile(r"^[a-z][a-z0-9-]{1,63}$")
LANGUAGE = re.compile(r"^[a-z]{2}(-[A-Z]{2})?$")


class InvalidForm(ServiceError):
    status, code = 422, "invalid-value"


def canonical(doc: dict) -> str:
    """The JSON text a hash covers: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def lawful_bases() -> dict[str, str]:
    from orthanc_gdpr.routing.rules import LAWFUL_BASES

    return LAWFUL_BASES


def _form_doc(f: ConsentForm) -> dict:
    return {"slug": f.slug, "version": f.version, "language": f.language, "title": f.title, "text": f.text,
            "purpose": f.purpose, "lawful_basis": f.lawful_basis}


# ----------------------------------------------------------------------------- forms
def publish(db, *, slug: str, language: str, title: str, text: str, purpose: str, lawful_basis: str, by: str) -> int:
    """A new version of form ``slug`` in ``language`` (version 1 when the form is new)."""
    if lawful_basis not in lawful_bases():
        raise InvalidForm(f"lawful_basis: one of {', '.join(lawful_bases())}")
    with db.session() as s:
        version = (s.scalar(select(func.max(ConsentForm.version)).where(
            ConsentForm.slug == slug, ConsentForm.language == language)) or 0) + 1
        f = ConsentForm(slug=slug, version=version, language=language, title=title, text=text, purpose=purpose,
                        lawful_basis=lawful_basis, sha256="", published_by=by, published_at=utcnow())
        f.sha256 = sha256(canonical(_form_doc(f)))
        s.add(f)
        s.flush()
        form_id = f.id
    audit.record("consent-form.published", actor=by, form_id=form_id, slug=slug, version=version,
                 language=language, purpose=purpose, lawful_basis=lawful_basis, sha256=f.sha256)
    return form_id


def forms(db, *, every_version: bool = False) -> list[ConsentForm]:
    """The newest version of each form and language (or every version), by slug."""
    with db.session() as s:
        rows = list(s.scalars(select(ConsentForm).order_by(ConsentForm.slug, ConsentForm.language,
                                                           ConsentForm.version.desc())))
    if every_version:
        return rows
    newest: dict[tuple[str, str], ConsentForm] = {}
    for f in rows:
        newest.setdefault((f.slug, f.language), f)
    return list(newest.values())


def get_form(db, form_id: int) -> ConsentForm:
    with db.session() as s:
        f = s.get(ConsentForm, form_id)
        if f is None:
            raise NotFound(f"no consent form {form_id}")
        return f


def document_reference(f: ConsentForm) -> dict:
    """The form version as a FHIR R5 DocumentReference (its text as an attachment)."""
    return {
        "resourceType": "DocumentReference", "id": f"consent-form-{f.id}", "status": "current",
        "version": str(f.version), "description": f.title,
        "type": {"coding": [{"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}]},
        "identifier": [{"system": "urn:orthanc-gdpr:consent-form", "value": f"{f.slug}/{f.language}/v{f.version}"}],
        "date": aware(f.published_at).isoformat(),
        "content": [{"attachment": {"contentType": "text/plain; charset=utf-8", "language": f.language,
                                    "title": f.title, "data": base64.b64encode(f.text.encode()).decode()}}],
        "extension": [{"url": SHA256_EXTENSION, "valueString": f.sha256}],
    }


# ----------------------------------------------------------------------------- signings
def prepare(db, *, form_id: int, patient_id: str, issuer: str, by: str) -> int:
    """Put a form version before a patient: a pending signing (an open consent request)."""
    get_form(db, form_id)
    with db.session() as s:
        row = ConsentSigning(form_id=form_id, patient_id=patient_id, issuer=issuer, status="pending", prepared_by=by)
        s.add(row)
        s.flush()
        signing_id = row.id
    audit.record("consent.prepared", actor=by, signing_id=signing_id, form_id=form_id, patient_id=patient_id,
                 issuer=issuer)
    return signing_id


def get_signing(db, signing_id: int) -> tuple[ConsentSigning, ConsentForm, Consent | None]:
    with db.session() as s:
        row = s.get(ConsentSigning, signing_id)
        if row is None:
            raise NotFound(f"no consent signing {signing_id}")
        consent = s.get(Consent, row.consent_id) if row.consent_id else None
        return row, s.get(ConsentForm, row.form_id), consent


def signings(db, *, patient_id: str | None = None, issuer: str = "", status: str | None = None) -> list[ConsentSigning]:
    q = select(ConsentSigning).order_by(ConsentSigning.id.desc())
    if patient_id:
        q = q.where(ConsentSigning.patient_id == patient_id, ConsentSigning.issuer == issuer)
    if status:
        q = q.where(ConsentSigning.status == status)
    with db.session() as s:
        return list(s.scalars(q))


def fhir_as_signed(row: ConsentSigning, form: ConsentForm, signature: dict | None, issuer_label: str) -> dict:
    """The FHIR R5 Consent recorded when the patient signed (``permit``) or declined (``deny``)."""
    when = aware(row.completed_at)
    doc = {
        "resourceType": "Consent", "id": f"signing-{row.id}", "status": "active",
        "identifier": [{"system": "urn:orthanc-gdpr:consent-signing", "value": str(row.id)}],
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}]}],
        "subject": {"identifier": {"system": f"urn:orthanc-gdpr:issuer:{row.issuer or 'default'}",
                                   "value": row.patient_id}},
        "date": when.date().isoformat(),
        "controller": [{"display": issuer_label}],
        "policyText": [{"reference": f"DocumentReference/consent-form-{form.id}",
                        "display": f"{form.title}, version {form.version} ({form.language})"}],
        "regulatoryBasis": [{"coding": [{"system": BASIS_SYSTEM, "code": form.lawful_basis,
                                         "display": lawful_bases()[form.lawful_basis]}]}],
        "decision": "permit" if signature else "deny",
        "provision": [{"purpose": [{"system": PURPOSE_SYSTEM, "code": form.purpose}]}],
        "extension": [{"url": "urn:orthanc-gdpr:consent-form-sha256", "valueString": form.sha256},
                      {"url": "urn:orthanc-gdpr:consent:recorded-by", "valueString": row.completed_by},
                      {"url": "urn:orthanc-gdpr:consent:recorded-at", "valueDateTime": when.isoformat()}],
    }
    if signature:
        drawn = signatures.svg(signature).encode()
        strokes = canonical(signature).encode()
        doc["sourceAttachment"] = [
            {"contentType": "image/svg+xml", "title": "Signature drawn on screen", "creation": when.isoformat(),
             "data": base64.b64encode(drawn).decode()},
            {"contentType": "application/json", "title": "Signature strokes: x, y, milliseconds, pressure",
             "creation": when.isoformat(), "data": base64.b64encode(strokes).decode()}]
    return doc


def _complete(db, signing_id: int, signature: dict | None, by: str, issuer_label: str) -> None:
    from fhir.resources.consent import Consent as FhirConsent

    with db.session() as s:
        row = s.get(ConsentSigning, signing_id)
        if row is None:
            raise NotFound(f"no consent signing {signing_id}")
        if row.status != "pending":
            raise Conflict(f"this consent form was already {row.status}")
        form = s.get(ConsentForm, row.form_id)
        row.status = "signed" if signature else "declined"
        row.completed_by, row.completed_at, row.signature = by, utcnow(), signature
        doc = fhir_as_signed(row, form, signature, issuer_label)
        FhirConsent.model_validate(doc)  # a document that is not valid FHIR is never stored
        row.fhir = canonical(doc)
        row.sha256 = sha256(row.fhir)
        if signature:
            consent = Consent(patient_id=row.patient_id, issuer=row.issuer, purpose=form.purpose, recorded_by=by,
                              recorded_at=row.completed_at,
                              evidence=f"consent form {form.slug} v{form.version} ({form.language}) signed on "
                                       f"screen, signing {row.id}, sha256 {row.sha256}")
            s.add(consent)
            s.flush()
            row.consent_id = consent.id
        fields = dict(signing_id=row.id, consent_id=row.consent_id, form_id=form.id, form_version=form.version,
                      form_sha256=form.sha256, sha256=row.sha256, patient_id=row.patient_id, issuer=row.issuer,
                      purpose=form.purpose)
    audit.record("consent.signed" if signature else "consent.declined", actor=by, **fields)


def sign(db, signing_id: int, raw_signature, *, by: str, issuer_label: str) -> None:
    """The patient signed: the strokes are checked (empty refused), the consent is in force at once."""
    try:
        signature = signatures.parse(raw_signature)
    except signatures.SignatureError as e:
        raise InvalidForm(f"signature: {e}") from None
    _complete(db, signing_id, signature, by, issuer_label)


def decline(db, signing_id: int, *, by: str, issuer_label: str) -> None:
    _complete(db, signing_id, None, by, issuer_label)


def current_fhir(db, signing_id: int) -> dict:
    """The Consent as signed, with its state now: a withdrawn one is ``inactive`` (withdrawal noted)."""
    row, form, consent = get_signing(db, signing_id)
    if row.fhir is None:
        raise Conflict("this consent form is not signed or declined yet")
    doc = json.loads(row.fhir)
    doc["contained"] = [document_reference(form)]
    doc["policyText"][0]["reference"] = f"#consent-form-{form.id}"
    if consent is not None and consent.withdrawn_at is not None:
        doc["status"] = "inactive"
        doc["extension"].append({"url": "urn:orthanc-gdpr:consent:withdrawn-at",
                                 "valueDateTime": aware(consent.withdrawn_at).isoformat()})
    return doc


def patient_bundle(db, patient_id: str, issuer: str) -> dict:
    """A patient's signed and declined consents as a FHIR R5 searchset Bundle."""
    import uuid

    entries = [{"fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'urn:orthanc-gdpr:signing:{r.id}')}",
                "resource": current_fhir(db, r.id)}
               for r in signings(db, patient_id=patient_id, issuer=issuer) if r.fhir is not None]
    return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}


def verify(db, signing_id: int) -> dict:
    """Recompute the hashes of the stored Consent and of its form, against the audit chain's."""
    from .models import AuditEvent

    row, form, _ = get_signing(db, signing_id)
    if row.fhir is None:
        raise Conflict("this consent form is not signed or declined yet")
    with db.session() as s:
        texts = s.scalars(select(AuditEvent.record).where(
            AuditEvent.event.in_(("consent.signed", "consent.declined"))).order_by(AuditEvent.seq))
        recorded = [r for r in map(json.loads, texts) if r.get("signing_id") == signing_id]
    audited = recorded[-1].get("sha256") if recorded else None
    document, form_now = sha256(row.fhir), sha256(canonical(_form_doc(form)))
    signed_form = json.loads(row.fhir)["extension"][0]["valueString"]
    intact = document == row.sha256 == audited and form_now == form.sha256 == signed_form
    return {"intact": intact, "sha256": row.sha256, "recomputed": document, "audited": audited,
            "form_sha256": form.sha256, "form_recomputed": form_now}
