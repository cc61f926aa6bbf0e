"""SQLAlchemy models: access/portability requests, jobs, download links, audit events.

Kept free of web and Orthanc concerns so that other data-subject rights (rectification, consent,
erasure) can add their own tables beside these (and their own Alembic revisions).
"""
from __future__ import annotations

import calendar
from datetime import datetime, timezone

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def aware(dt: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes: they are UTC."""
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt


def months_after(d: datetime, months: int) -> datetime:
    """Same day ``months`` later, clamped to the month's last day (31 January + 1 -> 28/29 February)."""
    index = d.month - 1 + months
    year, month = d.year + index // 12, index % 12 + 1
    return d.replace(year=year, month=month, day=min(d.day, calendar.monthrange(year, month)[1]))


def one_month_after(d: datetime) -> datetime:
    """Art. 12(3) GDPR: 'within one month of receipt'."""
    return months_after(d, 1)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True)}


class PortabilityRequest(Base):
    __tablename__ = "portability_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="portability")  # or "access"
    orthanc_patient_id: Mapped[str | None] = mapped_column(String(64))
    patient_id: Mapped[str | None] = mapped_column(String(128))
    issuer: Mapped[str | None] = mapped_column(String(128))
    study_uids: Mapped[list | None] = mapped_column(JSON)  # None: all studies
    language: Mapped[str | None] = mapped_column(String(8))  # the patient's preferred language of the copy
    status: Mapped[str] = mapped_column(String(24), default="received")
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime]
    identity_method: Mapped[str | None] = mapped_column(String(64))
    identity_verified_by: Mapped[str | None] = mapped_column(String(128))
    identity_verified_at: Mapped[datetime | None]
    identity_notes: Mapped[str | None] = mapped_column(Text)
    copy_number: Mapped[int] = mapped_column(Integer, default=1)
    fee_eur: Mapped[float] = mapped_column(Float, default=0.0)
    created_by: Mapped[str | None] = mapped_column(String(128))
    closed_at: Mapped[datetime | None]


class Job(Base):
    __tablename__ = "portability_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(24), default="bundle")
    request_id: Mapped[int] = mapped_column(ForeignKey("portability_requests.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    phase: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    result_path: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class DownloadLink(Base):
    __tablename__ = "portability_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)  # the token itself is never stored
    purpose: Mapped[str] = mapped_column(String(32), default="portability-bundle")
    job_id: Mapped[int] = mapped_column(ForeignKey("portability_jobs.id"), index=True)
    file_path: Mapped[str] = mapped_column(Text)
    encrypted: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(128))
    downloads: Mapped[int] = mapped_column(Integer, default=0)


class AuditEvent(Base):
    __tablename__ = "portability_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    event: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str | None] = mapped_column(String(128))
    request_id: Mapped[int | None] = mapped_column(Integer, index=True)
    fields: Mapped[dict] = mapped_column(JSON, default=dict)
    # The hash chain (see portability.chain): `record` is the canonical JSON that `hash` covers.
    seq: Mapped[int | None] = mapped_column(Integer, unique=True)
    source: Mapped[str | None] = mapped_column(String(32))
    source_seq: Mapped[int | None] = mapped_column(Integer)
    prev: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))
    record: Mapped[str | None] = mapped_column(Text)


class AuditChainHead(Base):
    """One row (id 1): the newest seq and hash. Appends lock it, so concurrent writers keep one chain."""
    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class Consent(Base):
    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(128))
    issuer: Mapped[str] = mapped_column(String(128), default="")
    purpose: Mapped[str] = mapped_column(String(64))
    recorded_by: Mapped[str] = mapped_column(String(128))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    evidence: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None]
    withdrawn_at: Mapped[datetime | None]
    withdrawn_by: Mapped[str | None] = mapped_column(String(128))
    withdrawal_reason: Mapped[str | None] = mapped_column(Text)


class PatientFlag(Base):
    """A restriction of processing (Art. 18) or an objection (Art. 21) for one patient."""
    __tablename__ = "patient_flags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(128))
    issuer: Mapped[str] = mapped_column(String(128), default="")
    kind: Mapped[str] = mapped_column(String(16))  # restriction | objection
    reason: Mapped[str | None] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(String(128))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    lifted_at: Mapped[datetime | None]
    lifted_by: Mapped[str | None] = mapped_column(String(128))


class PatientLock(Base):
    """At most one open rectification or erasure per patient (primary key = the patient)."""
    __tablename__ = "patient_locks"

    patient_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    since: Mapped[datetime] = mapped_column(default=utcnow)


class Rectification(Base):
    __tablename__ = "rectifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(128))
    issuer: Mapped[str] = mapped_column(String(128), default="")
    orthanc_patient_id: Mapped[str | None] = mapped_column(String(64))
    changes: Mapped[list] = mapped_column(JSON)  # [{attribute, tag, vr, current, proposed}]
    evidence: Mapped[str | None] = mapped_column(Text)
    uid_policy: Mapped[str] = mapped_column(String(16), default="regenerate")
    rejection_code: Mapped[str] = mapped_column(String(16), default="113038")
    status: Mapped[str] = mapped_column(String(16), default="requested")
    requested_by: Mapped[str] = mapped_column(String(128))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None]
    decision_reason: Mapped[str | None] = mapped_column(Text)
    plan: Mapped[dict | None] = mapped_column(JSON)
    result: Mapped[dict | None] = mapped_column(JSON)
    applied_at: Mapped[datetime | None]


class Erasure(Base):
    """An erasure request. While it is open it names the patient (to find the data); once carried
    out, only by ``patient_pseudonym`` (``portability.patient_keys``)."""
    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_pseudonym: Mapped[str | None] = mapped_column(String(64))
    patient_id: Mapped[str] = mapped_column(String(128))
    issuer: Mapped[str] = mapped_column(String(128), default="")
    orthanc_patient_id: Mapped[str | None] = mapped_column(String(64))
    grounds: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="requested")
    requested_by: Mapped[str] = mapped_column(String(128))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None]
    decision_reason: Mapped[str | None] = mapped_column(Text)
    retention_ground: Mapped[str | None] = mapped_column(String(64))
    retain_until: Mapped[datetime | None]
    plan: Mapped[dict | None] = mapped_column(JSON)
    result: Mapped[dict | None] = mapped_column(JSON)
    erased_at: Mapped[datetime | None]


class RightsJob(Base):
    """Applying a rectification or an erasure: claimed by the rights worker, retried with back-off."""
    __tablename__ = "rights_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # rectification | erasure
    ref_id: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class RecipientNotice(Base):
    """Art. 19: what was sent (or is to be sent) to one earlier recipient about one rectification/erasure."""
    __tablename__ = "recipient_notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    right: Mapped[str] = mapped_column(String(16))
    ref_id: Mapped[int] = mapped_column(Integer)
    recipient_kind: Mapped[str] = mapped_column(String(24))
    recipient: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # to-send | sent | failed | closed (see portability.notices)
    detail: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    sent_by: Mapped[str | None] = mapped_column(String(128))
    channel: Mapped[str | None] = mapped_column(String(32))
    evidence: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(128))
    close_reason: Mapped[str | None] = mapped_column(Text)


class ErasedPseudonym(Base):
    __tablename__ = "erased_pseudonyms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(128))
    profile: Mapped[str | None] = mapped_column(String(64))
    erasure_id: Mapped[int] = mapped_column(Integer)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class PatientToken(Base):
    __tablename__ = "patient_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    patient_id: Mapped[str] = mapped_column(String(128))
    issuer: Mapped[str] = mapped_column(String(128), default="")
    created_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class WebSession(Base):
    """A signed-in staff member's browser session (``portability.web.session``): the cookie holds
    a random token, the database only its SHA-256."""
    __tablename__ = "web_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class CaseTracking(Base):
    """The desk's bookkeeping of one request (any right): who handles it, and an Art. 12(3) extension.

    ``case_kind`` names the table the request lives in (``request``, ``rectification``, ``erasure``,
    ``flag``, ``signing``) and ``ref_id`` its row; the request itself stays in that table.
    """
    __tablename__ = "case_tracking"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_kind: Mapped[str] = mapped_column(String(16))
    ref_id: Mapped[int] = mapped_column(Integer)
    assignee: Mapped[str | None] = mapped_column(String(128))
    extended_due_at: Mapped[datetime | None]
    extension_reason: Mapped[str | None] = mapped_column(Text)
    extension_notice_channel: Mapped[str | None] = mapped_column(String(32))
    extension_notice_evidence: Mapped[str | None] = mapped_column(Text)
    extended_by: Mapped[str | None] = mapped_column(String(128))
    extended_at: Mapped[datetime | None]


class ConsentForm(Base):
    """One published version of a consent form; never edited (a change is a new version)."""
    __tablename__ = "consent_forms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    language: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(String(64))
    lawful_basis: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    published_by: Mapped[str] = mapped_column(String(128))
    published_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConsentSigning(Base):
    """A consent form put before one patient: pending, then signed on screen or declined."""
    __tablename__ = "consent_signings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("consent_forms.id"), index=True)
    patient_id: Mapped[str] = mapped_column(String(128))
    issuer: Mapped[str] = mapped_column(String(128), default="")
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | signed | declined
    prepared_by: Mapped[str] = mapped_column(String(128))
    prepared_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_by: Mapped[str | None] = mapped_column(String(128))
    completed_at: Mapped[datetime | None]
    signature: Mapped[dict | None] = mapped_column(JSON)  # vector strokes with timestamps
    consent_id: Mapped[int | None] = mapped_column(ForeignKey("consents.id"))
    fhir: Mapped[str | None] = mapped_column(Text)  # the FHIR R5 Consent as signed (canonical JSON)
    sha256: Mapped[str | None] = mapped_column(String(64))  # of ``fhir``; also in the audit chain


class IdempotencyKey(Base):
    """A form's one-time token: a second submission of the same form finds the first record."""
    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    ref_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Release(Base):
    """A person's release decision on a study de-identified with one profile (issue 11): what
    exactly was reviewed (key fingerprint, manifest hash), the risks accepted and why."""
    __tablename__ = "releases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study: Mapped[str] = mapped_column(String(64), index=True)  #: Orthanc study ID
    profile: Mapped[str] = mapped_column(String(64))
    options: Mapped[list] = mapped_column(JSON, default=list)  #: [{"option", "purpose"}]
    rule: Mapped[str | None] = mapped_column(String(128))
    decision: Mapped[str] = mapped_column(String(16))  #: approve | reject
    status: Mapped[str] = mapped_column(String(16), default="active")  #: active | void
    rationale: Mapped[str] = mapped_column(Text)
    classification: Mapped[str] = mapped_column(String(32))
    clinician_name: Mapped[str | None] = mapped_column(String(128))
    clinician_statement: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str] = mapped_column(String(128))
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)
    key_fingerprint: Mapped[str] = mapped_column(String(64))
    instance_count: Mapped[int] = mapped_column(Integer, default=0)
    dropped_count: Mapped[int] = mapped_column(Integer, default=0)
    held_back_count: Mapped[int] = mapped_column(Integer, default=0)
    manifest_sha256: Mapped[str | None] = mapped_column(String(64))
    manifest: Mapped[list | None] = mapped_column(JSON)  #: [[instance, sha256], ...] in order
    residual_risks: Mapped[dict] = mapped_column(JSON, default=dict)
    audit_seq: Mapped[int | None] = mapped_column(Integer)
    audit_hash: Mapped[str | None] = mapped_column(String(64))
    void_reason: Mapped[str | None] = mapped_column(Text)
    voided_at: Mapped[datetime | None]


class PseudonymSecret(Base):
    """One row (id 1): the secret of the keyed patient pseudonyms (``portability.patient_keys``)."""
    __tablename__ = "pseudonym_secret"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    secret: Mapped[bytes] = mapped_column(LargeBinary)


class PatientKey(Base):
    """A patient's key for sealed record fields; ``key`` NULL once shredded by an erasure."""
    __tablename__ = "patient_keys"

    pseudonym: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    shredded_at: Mapped[datetime | None]
