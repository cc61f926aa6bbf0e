"""Staff web sessions (the ``/ui/`` workspace): one row per signed-in browser.

Revision ID: 0003_web_sessions
Revises: 0002_rights
"""
import sqlalchemy as sa
from alembic import op

revision = "0003_web_sessions"
down_revision = "0002_rights"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    if "web_sessions" in sa.inspect(op.get_bind()).get_table_names():
        return  # left behind by a schema whose version table was dropped (test resets)
    op.create_table(
        "web_sessions",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column("staff_name", sa.String(128), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_index("ix_web_sessions_staff", "web_sessions", ["staff_name"])


def downgrade() -> None:
    op.drop_table("web_sessions")
