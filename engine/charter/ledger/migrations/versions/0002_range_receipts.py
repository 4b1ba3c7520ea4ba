"""Range receipts: one log signature per append transaction, over the Merkle root of its entries.

Entries appended from this revision on carry an empty ``receipt`` column; the signature is in
``ledger_receipt``, one row per transaction, keyed by its last entry. Older entries keep their
per-entry receipts, and both verify.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_receipt",
        sa.Column("last_seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("first_seq", sa.BigInteger, nullable=False, unique=True),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("signature", sa.String(100), nullable=False),
        sa.CheckConstraint("first_seq >= 0 AND first_seq <= last_seq", name="ck_ledger_receipt_range"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE TRIGGER ledger_receipt_append_only BEFORE UPDATE OR DELETE ON ledger_receipt "
                   "FOR EACH ROW EXECUTE FUNCTION charter_append_only()")
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER ledger_receipt_no_{action.lower()} BEFORE {action} ON ledger_receipt "
                       "BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_receipt_append_only ON ledger_receipt")
    op.drop_table("ledger_receipt")
