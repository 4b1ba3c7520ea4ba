"""The ledger's tables (SQLAlchemy Core). Migrations in ``migrations/`` create and evolve them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, Index, LargeBinary, MetaData, SmallInteger, String, Table, Text

metadata = MetaData()


class Bytes(LargeBinary):
    """Binary bound as it is: sqlite3 and psycopg take `bytes` natively, so SQLAlchemy's per-value
    wrapping is skipped on the append path (three binary columns per entry)."""

    cache_ok = True

    def bind_processor(self, dialect: Any) -> None:
        return None

#: Log identity and settings: origin, creation time, the log's public key id.
ledger_meta = Table(
    "ledger_meta", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

#: The serialization point: one row, locked and updated by every append transaction.
ledger_head = Table(
    "ledger_head", metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("head_hash", LargeBinary(32), nullable=False),
    Column("last_received_at", String(32), nullable=False),
)

#: Entries: the exact canonical body bytes, their record hash, and the log's receipt signature.
ledger_entry = Table(
    "ledger_entry", metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("prev_hash", Bytes(32), nullable=False, unique=True),
    Column("record_hash", Bytes(32), nullable=False, unique=True),
    Column("body", Bytes, nullable=False),
    Column("entry_type", String(64), nullable=False),
    Column("submission_id", String(400), nullable=False, unique=True),
    Column("subject", String(255), nullable=True),
    Column("key_id", String(100), nullable=True),
    Column("received_at", String(32), nullable=False),
    Column("receipt", String(100), nullable=False),
    Index("ix_ledger_entry_type_subject", "entry_type", "subject"),
)

#: Signed checkpoints (C2SP notes) at tree sizes.
checkpoint = Table(
    "checkpoint", metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("issued_at", String(32), nullable=False),
)

#: Range receipts: the log's signature over the Merkle root of one append transaction's entries.
ledger_receipt = Table(
    "ledger_receipt", metadata,
    Column("last_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("first_seq", BigInteger, nullable=False, unique=True),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("signature", String(100), nullable=False),
)

#: The service's replies to requests sent with an ``Idempotency-Key``: not ledger state (nothing here is
#: hashed or signed), kept so that a client retrying a POST gets the first reply instead of a second effect.
api_request = Table(
    "api_request", metadata,
    Column("principal", String(255), primary_key=True),
    Column("idempotency_key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("status", SmallInteger, nullable=True),  # NULL while the first request is still being answered
    Column("response", LargeBinary, nullable=True),
    Column("created_at", String(32), nullable=False),
    Index("ix_api_request_created_at", "created_at"),
)
