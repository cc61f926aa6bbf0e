"""Consent forms (versioned, published by the DPO) and consents signed on screen, as JSON.

The pages of the desk (``portability.web.desk``) call the same functions of
:mod:`portability.consent_forms`; withdrawal stays ``POST /api/consents/{id}/withdraw``.
"""
from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, Field

from .. import consent_forms as forms
from .. import idempotency
from ..auth import Staff, require
from .deps import db as get_db

router = APIRouter(prefix="/api", tags=["consent forms"])


class FormCreate(BaseModel):
    slug: str = Field(..., pattern=forms.SLUG.pattern, description="the form's name, e.g. research-imaging")
    language: str = Field(..., pattern=forms.LANGUAGE.pattern, description="e.g. en, de, fr-CH")
    title: str = Field(..., min_length=3, max_length=200)
    text: str = Field(..., min_length=20, max_length=50_000)
    purpose: str = Field(..., pattern=r"^[a-z][a-z0-9-]{1,63}$", description="the purpose the consent covers")
    lawful_basis: str = Field("consent", max_length=32)


class FormOut(BaseModel):
    id: int
    slug: str
    version: int
    language: str
    title: str
    text: str
    purpose: str
    lawful_basis: str
    sha256: str
    published_by: str
    published_at: datetime


class SigningCreate(BaseModel):
    form_id: int
    patient_id: str = Field(..., min_length=1, max_length=64)
    issuer: str = Field("", max_length=64)


class SignatureIn(BaseModel):
    signature: dict


class SigningOut(BaseModel):
    id: int
    form_id: int
    patient_id: str
    issuer: str
    status: str
    prepared_by: str
    prepared_at: datetime
    completed_by: str | None
    completed_at: datetime | None
    consent_id: int | None
    sha256: str | None


def _form(f) -> FormOut:
    return FormOut.model_validate(f, from_attributes=True)


def _signing(db, signing_id: int) -> SigningOut:
    row, _, _ = forms.get_signing(db, signing_id)
    return SigningOut.model_validate(row, from_attributes=True)


@router.post("/consent-forms", status_code=201, response_model=FormOut)
def publish(body: FormCreate, staff: Staff = Depends(require("dpo")), db=Depends(get_db)) -> FormOut:
    """A new version of the form (version 1 for a new slug and language); older versions stay."""
    return _form(forms.get_form(db, forms.publish(db, by=staff.name, **body.model_dump())))


@router.get("/consent-forms", response_model=list[FormOut])
def list_forms(every_version: bool = False, staff: Staff = Depends(require("staff")),
               db=Depends(get_db)) -> list[FormOut]:
    return [_form(f) for f in forms.forms(db, every_version=every_version)]


@router.get("/consent-forms/{form_id}", response_model=FormOut)
def get_form(form_id: int, staff: Staff = Depends(require("staff")), db=Depends(get_db)) -> FormOut:
    return _form(forms.get_form(db, form_id))


@router.post("/consent-signings", status_code=201, response_model=SigningOut)
def prepare(body: SigningCreate, staff: Staff = Depends(require("staff")), db=Depends(get_db),
            idempotency_key: str | None = Header(None)) -> SigningOut:
    """Put a form version before a patient (an open consent request until signed or declined)."""
    def create() -> int:
        return forms.prepare(db, by=staff.name, **body.model_dump())
    signing_id = idempotency.once(db, idempotency_key, "signing", create)[0] if idempotency_key else create()
    return _signing(db, signing_id)


@router.get("/consent-signings", response_model=list[SigningOut])
def list_signings(patient_id: str | None = None, issuer: str = "", status: str | None = None,
                  staff: Staff = Depends(require("staff")), db=Depends(get_db)) -> list[SigningOut]:
    return [SigningOut.model_validate(r, from_attributes=True)
            for r in forms.signings(db, patient_id=patient_id, issuer=issuer, status=status)]


@router.get("/consent-signings/{signing_id}", response_model=SigningOut)
def get_signing(signing_id: int, staff: Staff = Depends(require("staff")), db=Depends(get_db)) -> SigningOut:
    return _signing(db, signing_id)


@router.post("/consent-signings/{signing_id}/sign", response_model=SigningOut)
def sign(signing_id: int, body: SignatureIn, request: Request, staff: Staff = Depends(require("staff")),
         db=Depends(get_db)) -> SigningOut:
    """The patient's signature (vector strokes with timestamps); an empty pad is refused (422)."""
    forms.sign(db, signing_id, body.signature, by=staff.name, issuer_label=request.app.state.settings.issuer)
    return _signing(db, signing_id)


@router.post("/consent-signings/{signing_id}/decline", response_model=SigningOut)
def decline(signing_id: int, request: Request, staff: Staff = Depends(require("staff")),
            db=Depends(get_db)) -> SigningOut:
    forms.decline(db, signing_id, by=staff.name, issuer_label=request.app.state.settings.issuer)
    return _signing(db, signing_id)


@router.get("/consent-signings/{signing_id}/fhir")
def signing_fhir(signing_id: int, staff: Staff = Depends(require("staff")), db=Depends(get_db)) -> dict:
    """The FHIR R5 Consent as signed (the form version contained), with its state now."""
    return forms.current_fhir(db, signing_id)


@router.get("/consent-signings/{signing_id}/verify")
def verify(signing_id: int, staff: Staff = Depends(require("staff")), db=Depends(get_db)) -> dict:
    return forms.verify(db, signing_id)


@router.get("/fhir/R5/Consent")
def patient_consents(patient_id: str, issuer: str = "", staff: Staff = Depends(require("staff")),
                     db=Depends(get_db)) -> dict:
    """A patient's consents signed or declined on screen, as a FHIR R5 searchset Bundle."""
    return forms.patient_bundle(db, patient_id, issuer)
