"""Initial ledger schema: meta, head, entries (append-only), checkpoints.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("ledger_meta", sa.Column("name", sa.String(64), primary_key=True),
                    sa.Column("value", sa.Text, nullable=False))
    op.create_table("ledger_head", sa.Column("id", sa.SmallInteger, primary_key=True),
                    sa.Column("size", sa.BigInteger, nullable=False),
                    sa.Column("head_hash", sa.LargeBinary(32), nullable=False),
                    sa.Column("last_received_at", sa.String(32), nullable=False))
    op.create_table(
        "ledger_entry",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("prev_hash", sa.LargeBinary(32), nullable=False, unique=True),
        sa.Column("record_hash", sa.LargeBinary(32), nullable=False, unique=True),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("entry_type", sa.String(64), nullable=False),
        sa.Column("submission_id", sa.String(400), nullable=False, unique=True),
        sa.Column("subject", sa.String(255), nullable=True),
        sa.Column("key_id", sa.String(100), nullable=True),
        sa.Column("received_at", sa.String(32), nullable=False),
        sa.Column("receipt", sa.String(100), nullable=False),
        sa.CheckConstraint("seq >= 0", name="ck_ledger_entry_seq"),
    )
    op.create_index("ix_ledger_entry_type_subject", "ledger_entry", ["entry_type", "subject"])
    op.create_table("checkpoint", sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
                    sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
                    sa.Column("note", sa.Text, nullable=False),
                    sa.Column("issued_at", sa.String(32), nullable=False))
    # Append-only as defence in depth: corrections are new entries. This stops mistakes, not a
    # database superuser; checkpoints held outside the database are what detect that.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE FUNCTION charter_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'ledger entries are append-only'; END $$")
        for table in ("ledger_entry", "checkpoint"):
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION charter_append_only()")
    else:
        for table in ("ledger_entry", "checkpoint"):
            for action in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                           "BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_entry_append_only ON ledger_entry")
        op.execute("DROP TRIGGER IF EXISTS checkpoint_append_only ON checkpoint")
        op.execute("DROP FUNCTION IF EXISTS charter_append_only()")
    op.drop_table("checkpoint")
    op.drop_index("ix_ledger_entry_type_subject", "ledger_entry")
    op.drop_table("ledger_entry")
    op.drop_table("ledger_head")
    op.drop_table("ledger_meta")
