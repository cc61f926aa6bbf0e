"""Release decisions on reviewed studies (issue 11): manifest, key fingerprint, accepted risks.

Revision ID: 0008_releases
Revises: 0007_notice_lifecycle
"""
import sqlalchemy as sa
from alembic import op

revision = "0008_releases"
down_revision = "0007_notice_lifecycle"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    if "releases" in sa.inspect(op.get_bind()).get_table_names():
        return  # left behind by a schema whose version table was dropped (test resets)
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("study", sa.String(64), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("rule", sa.String(128)),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rationale", sa.Text, nullable=False),
        sa.Column("classification", sa.String(32), nullable=False),
        sa.Column("clinician_name", sa.String(128)),
        sa.Column("clinician_statement", sa.Text),
        sa.Column("decided_by", sa.String(128), nullable=False),
        sa.Column("decided_at", TS, nullable=False),
        sa.Column("key_fingerprint", sa.String(64), nullable=False),
        sa.Column("instance_count", sa.Integer, nullable=False),
        sa.Column("dropped_count", sa.Integer, nullable=False),
        sa.Column("held_back_count", sa.Integer, nullable=False),
        sa.Column("manifest_sha256", sa.String(64)),
        sa.Column("manifest", sa.JSON),
        sa.Column("residual_risks", sa.JSON, nullable=False),
        sa.Column("audit_seq", sa.Integer),
        sa.Column("audit_hash", sa.String(64)),
        sa.Column("void_reason", sa.Text),
        sa.Column("voided_at", TS),
    )
    op.create_index("ix_releases_study", "releases", ["study", "profile", "rule"])


def downgrade() -> None:
    op.drop_table("releases")
