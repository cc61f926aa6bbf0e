"""SQLAlchemy models: access/portability requests, jobs, download links, audit events.

Kept free of web and Orthanc concerns so that other data-subject rights (rectification, consent,
erasure) can add their own tables beside these (and their own Alembic revisions).
"""
from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def aware(dt: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes: they are UTC."""
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt


def one_month_after(d: datetime) -> datetime:
    """Art. 12(3) GDPR: 'within one month of receipt' — same day next month, clamped to the month's
    last day (31 January -> 28/29 February)."""
    year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    day = min(d.day, calendar.monthrange(year, month)[1])
    return d.replace(year=year, month=month, day=day)


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
