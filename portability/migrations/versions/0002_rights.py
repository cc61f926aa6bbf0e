"""Data-subject rights: hash-chained audit store, consent registry, restriction/objection flags,
rectification and erasure requests, rights jobs, Art. 19 notices, patient locks and tokens.

Revision ID: 0002_rights
Revises: 0001_portability
"""
import sqlalchemy as sa
from alembic import op

revision = "0002_rights"
down_revision = "0001_portability"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())

    def create_table(name, *columns, **kw):
        # Tolerate tables left behind by a schema whose version table was dropped (test resets):
        # they are re-used, never duplicated.
        if name not in existing:
            op.create_table(name, *columns, **kw)

    def create_index(name, table, cols):
        if table not in existing:
            op.create_index(name, table, cols)

    # The audit table becomes a hash chain: seq/prev/hash over the canonical JSON kept in `record`.
    with op.batch_alter_table("portability_audit") as b:
        b.add_column(sa.Column("seq", sa.Integer))
        b.add_column(sa.Column("source", sa.String(32)))
        b.add_column(sa.Column("source_seq", sa.Integer))
        b.add_column(sa.Column("prev", sa.String(64)))
        b.add_column(sa.Column("hash", sa.String(64)))
        b.add_column(sa.Column("record", sa.Text))
        b.create_unique_constraint("uq_portability_audit_seq", ["seq"])
        b.create_unique_constraint("uq_portability_audit_source_seq", ["source", "source_seq"])
    create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    # Rows written before the chain existed are chained now, in id order (one-off, at upgrade).
    conn = op.get_bind()
    from portability.chain import chain_existing_rows

    chain_existing_rows(conn)

    create_table(
        "consents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("patient_id", sa.String(128), nullable=False),
        sa.Column("issuer", sa.String(128), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("recorded_by", sa.String(128), nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("evidence", sa.Text),
        sa.Column("expires_at", TS),
        sa.Column("withdrawn_at", TS),
        sa.Column("withdrawn_by", sa.String(128)),
        sa.Column("withdrawal_reason", sa.Text),
    )
    create_index("ix_consents_patient", "consents", ["patient_id", "issuer"])
    create_table(
        "patient_flags",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("patient_id", sa.String(128), nullable=False),
        sa.Column("issuer", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("recorded_by", sa.String(128), nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("lifted_at", TS),
        sa.Column("lifted_by", sa.String(128)),
    )
    create_index("ix_patient_flags_patient", "patient_flags", ["patient_id", "issuer"])
    create_table(
        "patient_locks",
        sa.Column("patient_key", sa.String(300), primary_key=True),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("since", TS, nullable=False),
    )
    create_table(
        "rectifications",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("patient_id", sa.String(128), nullable=False),
        sa.Column("issuer", sa.String(128), nullable=False),
        sa.Column("orthanc_patient_id", sa.String(64)),
        sa.Column("changes", sa.JSON, nullable=False),
        sa.Column("evidence", sa.Text),
        sa.Column("uid_policy", sa.String(16), nullable=False),
        sa.Column("rejection_code", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("decided_by", sa.String(128)),
        sa.Column("decided_at", TS),
        sa.Column("decision_reason", sa.Text),
        sa.Column("plan", sa.JSON),
        sa.Column("result", sa.JSON),
        sa.Column("applied_at", TS),
    )
    create_table(
        "erasures",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("patient_id", sa.String(128), nullable=False),
        sa.Column("issuer", sa.String(128), nullable=False),
        sa.Column("orthanc_patient_id", sa.String(64)),
        sa.Column("grounds", sa.Text),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("decided_by", sa.String(128)),
        sa.Column("decided_at", TS),
        sa.Column("decision_reason", sa.Text),
        sa.Column("retention_ground", sa.String(64)),
        sa.Column("retain_until", TS),
        sa.Column("plan", sa.JSON),
        sa.Column("result", sa.JSON),
        sa.Column("erased_at", TS),
    )
    create_table(
        "rights_jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ref_id", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("claimed_by", sa.String(128)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS),
    )
    create_index("ix_rights_jobs_status", "rights_jobs", ["status"])
    create_table(
        "recipient_notices",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("right", sa.String(16), nullable=False),
        sa.Column("ref_id", sa.Integer, nullable=False),
        sa.Column("recipient_kind", sa.String(24), nullable=False),
        sa.Column("recipient", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detail", sa.JSON),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS),
        sa.UniqueConstraint("right", "ref_id", "recipient", "action", name="uq_recipient_notice"),
    )
    create_table(
        "erased_pseudonyms",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("pseudonym", sa.String(128), nullable=False),
        sa.Column("profile", sa.String(64)),
        sa.Column("erasure_id", sa.Integer, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
    )
    create_table(
        "patient_tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("patient_id", sa.String(128), nullable=False),
        sa.Column("issuer", sa.String(128), nullable=False),
        sa.Column("created_by", sa.String(128)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )


def downgrade() -> None:
    for t in ("patient_tokens", "erased_pseudonyms", "recipient_notices", "rights_jobs", "erasures",
              "rectifications", "patient_locks", "patient_flags", "consents", "audit_chain_head"):
        op.drop_table(t)
    with op.batch_alter_table("portability_audit") as b:
        b.drop_constraint("uq_portability_audit_source_seq")
        b.drop_constraint("uq_portability_audit_seq")
        for c in ("record", "hash", "prev", "source_seq", "source", "seq"):
            b.drop_column(c)
