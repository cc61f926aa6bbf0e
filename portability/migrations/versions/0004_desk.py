"""The rights desk: case tracking (assignee, Art. 12(3) extension), versioned consent forms,
consents signed on screen, and one-time form tokens against double submission.

Revision ID: 0004_desk
Revises: 0003_web_sessions
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_desk"
down_revision = "0003_web_sessions"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
TABLES = ("idempotency_keys", "consent_signings", "consent_forms", "case_tracking")


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if set(TABLES) <= existing:  # left behind by a schema whose version table was dropped (test resets)
        return
    op.create_table(
        "case_tracking",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("case_kind", sa.String(16), nullable=False),
        sa.Column("ref_id", sa.Integer, nullable=False),
        sa.Column("assignee", sa.String(128)),
        sa.Column("extended_due_at", TS),
        sa.Column("extension_reason", sa.Text),
        sa.Column("extension_notice_channel", sa.String(32)),
        sa.Column("extension_notice_evidence", sa.Text),
        sa.Column("extended_by", sa.String(128)),
        sa.Column("extended_at", TS),
        sa.UniqueConstraint("case_kind", "ref_id", name="uq_case_tracking_case"),
    )
    op.create_table(
        "consent_forms",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("lawful_basis", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("published_by", sa.String(128), nullable=False),
        sa.Column("published_at", TS, nullable=False),
        sa.UniqueConstraint("slug", "language", "version", name="uq_consent_form_version"),
    )
    op.create_table(
        "consent_signings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("form_id", sa.Integer, sa.ForeignKey("consent_forms.id"), nullable=False),
        sa.Column("patient_id", sa.String(128), nullable=False),
        sa.Column("issuer", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("prepared_by", sa.String(128), nullable=False),
        sa.Column("prepared_at", TS, nullable=False),
        sa.Column("completed_by", sa.String(128)),
        sa.Column("completed_at", TS),
        sa.Column("signature", sa.JSON),
        sa.Column("consent_id", sa.Integer, sa.ForeignKey("consents.id")),
        sa.Column("fhir", sa.Text),
        sa.Column("sha256", sa.String(64)),
    )
    op.create_index("ix_consent_signings_form_id", "consent_signings", ["form_id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("ref_id", sa.Integer),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    for t in TABLES:
        op.drop_table(t)
