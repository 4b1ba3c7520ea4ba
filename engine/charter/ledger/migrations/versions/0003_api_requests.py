"""The service's idempotency records: the first reply to each (principal, Idempotency-Key).

Not ledger state: rows are updated (when the reply is ready) and deleted (when they expire), so the
append-only triggers of the ledger's tables do not apply here.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_request",
        sa.Column("principal", sa.String(255), primary_key=True),
        sa.Column("idempotency_key", sa.String(255), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status", sa.SmallInteger, nullable=True),
        sa.Column("response", sa.LargeBinary, nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_api_request_created_at", "api_request", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_api_request_created_at", table_name="api_request")
    op.drop_table("api_request")
