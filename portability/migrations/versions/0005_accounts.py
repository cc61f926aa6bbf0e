"""Staff accounts (Argon2 password hashes, roles, enabled flag) and failed-login throttling.

Revision ID: 0005_accounts
Revises: 0004_desk
"""
import sqlalchemy as sa
from alembic import op

revision = "0005_accounts"
down_revision = "0004_desk"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "staff_users" not in existing:  # tolerate a table left by a dropped version table (test resets)
        op.create_table(
            "staff_users",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(64), nullable=False, unique=True),
            sa.Column("role", sa.String(16), nullable=False),
            sa.Column("password_hash", sa.String(255), nullable=False),
            sa.Column("created_at", TS, nullable=False),
            sa.Column("created_by", sa.String(128), nullable=False),
            sa.Column("password_set_at", TS, nullable=False),
            sa.Column("disabled_at", TS),
            sa.Column("disabled_by", sa.String(128)),
        )
    if "login_throttle" not in existing:
        op.create_table(
            "login_throttle",
            sa.Column("key", sa.String(200), primary_key=True),
            sa.Column("failures", sa.Integer, nullable=False),
            sa.Column("window_start", TS, nullable=False),
            sa.Column("locked_until", TS),
        )


def downgrade() -> None:
    op.drop_table("login_throttle")
    op.drop_table("staff_users")
