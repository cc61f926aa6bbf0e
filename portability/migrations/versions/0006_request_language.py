"""A patient's preferred language for the copy (INDEX.HTM, README.TXT and the viewer come first
in it).

Revision ID: 0006_request_language
Revises: 0005_accounts
"""
import sqlalchemy as sa
from alembic import op

revision = "0006_request_language"
down_revision = "0005_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("portability_requests")}
    if "language" not in columns:
        with op.batch_alter_table("portability_requests") as batch:
            batch.add_column(sa.Column("language", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("portability_requests") as batch:
        batch.drop_column("language")
