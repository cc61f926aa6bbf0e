"""Art. 19 notices get a lifecycle: due date, who sent them by which channel with what evidence,
or who closed them and why.

Revision ID: 0007_notice_lifecycle
Revises: 0006_request_language
"""
from datetime import datetime

import sqlalchemy as sa
from alembic import op

from portability.models import one_month_after

revision = "0007_notice_lifecycle"
down_revision = "0006_request_language"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
COLUMNS = (("due_at", TS), ("sent_by", sa.String(128)), ("channel", sa.String(32)), ("evidence", sa.Text),
           ("closed_at", TS), ("closed_by", sa.String(128)), ("close_reason", sa.Text))


def upgrade() -> None:
    with op.batch_alter_table("recipient_notices") as b:
        for name, type_ in COLUMNS:
            b.add_column(sa.Column(name, type_))
    conn = op.get_bind()
    for notice_id, created in conn.execute(sa.text("SELECT id, created_at FROM recipient_notices")).all():
        if isinstance(created, str):  # SQLite hands back text
            created = datetime.fromisoformat(created)
        conn.execute(sa.text("UPDATE recipient_notices SET due_at = :due WHERE id = :id"),
                     {"due": one_month_after(created), "id": notice_id})


def downgrade() -> None:
    with op.batch_alter_table("recipient_notices") as b:
        for name, _ in reversed(COLUMNS):
            b.drop_column(name)
