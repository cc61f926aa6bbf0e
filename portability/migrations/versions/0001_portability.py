"""Portability requests, bundle jobs, download links, audit events.

Revision ID: 0001_portability
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001_portability"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "portability_requests",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("orthanc_patient_id", sa.String(64)),
        sa.Column("patient_id", sa.String(128)),
        sa.Column("issuer", sa.String(128)),
        sa.Column("study_uids", sa.JSON),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("identity_method", sa.String(64)),
        sa.Column("identity_verified_by", sa.String(128)),
        sa.Column("identity_verified_at", TS),
        sa.Column("identity_notes", sa.Text),
        sa.Column("copy_number", sa.Integer, nullable=False),
        sa.Column("fee_eur", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(128)),
        sa.Column("closed_at", TS),
    )
    op.create_index("ix_portability_requests_due_at", "portability_requests", ["due_at"])
    op.create_table(
        "portability_jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("request_id", sa.Integer, sa.ForeignKey("portability_requests.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("done", sa.Integer, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("phase", sa.String(32)),
        sa.Column("error", sa.Text),
        sa.Column("result_path", sa.Text),
        sa.Column("size", sa.BigInteger),
        sa.Column("sha256", sa.String(64)),
        sa.Column("claimed_by", sa.String(128)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
    )
    op.create_index("ix_portability_jobs_request_id", "portability_jobs", ["request_id"])
    op.create_index("ix_portability_jobs_status", "portability_jobs", ["status"])
    op.create_table(
        "portability_links",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("portability_jobs.id"), nullable=False),
        sa.Column("file_path", sa.Text, nullable=False),
        sa.Column("encrypted", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(128)),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("revoked_at", TS),
        sa.Column("revoked_by", sa.String(128)),
        sa.Column("downloads", sa.Integer, nullable=False),
    )
    op.create_index("ix_portability_links_job_id", "portability_links", ["job_id"])
    op.create_table(
        "portability_audit",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(128)),
        sa.Column("request_id", sa.Integer),
        sa.Column("fields", sa.JSON, nullable=False),
    )
    op.create_index("ix_portability_audit_event", "portability_audit", ["event"])
    op.create_index("ix_portability_audit_request_id", "portability_audit", ["request_id"])


def downgrade() -> None:
    for t in ("portability_audit", "portability_links", "portability_jobs", "portability_requests"):
        op.drop_table(t)
