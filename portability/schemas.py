"""Pydantic models of the HTTP API (requests and responses)."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .i18n import LANGUAGES


class RequestCreate(BaseModel):
    kind: str = Field("portability", pattern="^(portability|access)$")
    orthanc_patient_id: str | None = None
    patient_id: str | None = Field(None, description="DICOM PatientID")
    issuer: str | None = Field(None, description="IssuerOfPatientID")
    study_uids: list[str] | None = Field(None, description="chosen studies; none = all")
    received_at: datetime | None = Field(None, description="default: now")
    language: str | None = Field(None, description="the patient's preferred language of the copy: "
                                 + ", ".join(LANGUAGES) + " (it comes first; the site's languages follow)")

    @field_validator("language")
    @classmethod
    def _known_language(cls, v: str | None) -> str | None:
        if v is not None and v not in LANGUAGES:
            raise ValueError(f"must be one of {', '.join(LANGUAGES)}")
        return v

    @model_validator(mode="after")
    def _one_patient(self):
        if not (self.orthanc_patient_id or self.patient_id):
            raise ValueError("give orthanc_patient_id, or patient_id (+ issuer)")
        return self


class IdentityVerification(BaseModel):
    method: str = Field(..., min_length=2, max_length=64,
                        description="e.g. id-card-in-person, eid, known-to-staff, video-call")
    notes: str | None = Field(None, max_length=2000)


class RequestOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    kind: str
    orthanc_patient_id: str | None
    patient_id: str | None
    issuer: str | None
    study_uids: list[str] | None
    language: str | None = None
    status: str
    received_at: datetime
    due_at: datetime
    identity_method: str | None
    identity_verified_by: str | None
    identity_verified_at: datetime | None
    copy_number: int
    fee_eur: float
    overdue: bool = False


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    request_id: int
    status: str
    phase: str | None
    done: int
    total: int
    error: str | None
    size: int | None
    sha256: str | None
    created_at: datetime
    finished_at: datetime | None


class LinkCreate(BaseModel):
    ttl_hours: float | None = Field(None, gt=0, le=24 * 31)
    password_protected: bool = False


class LinkOut(BaseModel):
    id: int
    url: str
    token: str
    expires_at: datetime
    password: str | None = Field(None, description="give to the patient by another channel; shown once")


class LinkInfo(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    job_id: int
    purpose: str
    encrypted: int
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    downloads: int


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: datetime
    event: str
    actor: str | None
    request_id: int | None
    fields: dict
