"""Keyed patient pseudonyms and per-patient keys (crypto-shredding on erasure); an erasure names
its patient by pseudonym once carried out.

Revision ID: 0009_patient_keys
Revises: 0008_releases
"""
import os

import sqlalchemy as sa
from alembic import op

revision = "0009_patient_keys"
down_revision = "0008_releases"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    secret = op.create_table(
        "pseudonym_secret",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("secret", sa.LargeBinary, nullable=False),
    )
    op.bulk_insert(secret, [{"id": 1, "secret": os.urandom(32)}])
    op.create_table(
        "patient_keys",
        sa.Column("pseudonym", sa.String(64), primary_key=True),
        sa.Column("key", sa.LargeBinary),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("shredded_at", TS),
    )
    with op.batch_alter_table("erasures") as b:
        b.add_column(sa.Column("patient_pseudonym", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("erasures") as b:
        b.drop_column("patient_pseudonym")
    op.drop_table("patient_keys")
    op.drop_table("pseudonym_secret")
