"""What the ledger's entries are, without a database library: entries, the read interface, time stamps.

`charter.ledger.store` writes and reads them through SQLAlchemy; `charter.ledger.sqlite_reader` reads a
SQLite ledger with the standard library, so a read-only command does not pay for importing SQLAlchemy.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .auditor import RangeReceipt, StoredEntry

Clock = Callable[[], datetime.datetime]


def utc_now() -> datetime.datetime:
    """The wall clock, in UTC. Only the CLI and the store's default clock read it."""
    return datetime.datetime.now(datetime.UTC)


def format_time(moment: datetime.datetime) -> str:
    """RFC 3339 UTC with milliseconds and ``Z``: fixed width, so strings sort as times do."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class NewEntry:
    """An entry to append; `subject` is an indexed lookup key (a system id).

    `payload` is JSON-like data, or a function that builds it from the entries appended before it
    in the same batch (so a finding can cite the seq and record hash of its bundle).
    """

    type: str
    payload: dict[str, Any] | Callable[[list[Entry]], dict[str, Any]]
    submission_id: str
    subject: str | None = None
    key_id: str | None = None
    signature: str | None = None


@dataclass(frozen=True)
class Entry:
    """An appended entry."""

    seq: int
    prev_hash: bytes
    record_hash: bytes
    body: bytes
    type: str
    submission_id: str
    subject: str | None
    key_id: str | None
    received_at: str
    receipt: str  # per-entry receipt of older ledgers; empty where a range receipt covers the entry
    range_receipt: RangeReceipt | None = None  # on the last entry of an append transaction, where read with it

    def document(self) -> dict[str, Any]:
        """The parsed body."""
        import json

        value: dict[str, Any] = json.loads(self.body)
        return value

    @property
    def payload(self) -> dict[str, Any]:
        """The payload inside the body."""
        payload: dict[str, Any] = self.document()["payload"]
        return payload

    @property
    def via(self) -> dict[str, Any] | None:
        """Who asked for this entry through the API (see `recording_via`); None when it was written locally."""
        via: dict[str, Any] | None = self.document().get("via")
        return via

    def stored(self) -> StoredEntry:
        """The form the auditor checks."""
        return StoredEntry(self.seq, self.body, self.receipt, self.record_hash, self.range_receipt)


def row_to_entry(row: Any) -> Entry:
    """An `Entry` from a row of ``ledger_entry`` (attribute access), with its range receipt columns if selected."""
    closing = getattr(row, "range_first", None)
    return Entry(row.seq, bytes(row.prev_hash), bytes(row.record_hash), bytes(row.body), row.entry_type,
                 row.submission_id, row.subject, row.key_id, row.received_at, row.receipt,
                 RangeReceipt(int(closing), bytes(row.range_root), str(row.range_signature))
                 if closing is not None else None)




class LedgerReader(Protocol):
    """The reads that re-deriving a verdict makes (`charter.submission.replay`): a `Ledger`, or an export's view."""

    def entry(self, seq: int) -> Entry | None:
        """The entry at `seq`, if any."""

    def entries(self, start: int = 0, stop: int | None = None, *, types: Sequence[str] = (),
                subject: str | None = None) -> Iterator[Entry]:
        """Entries with ``start <= seq < stop`` of these types and subject, in seq order."""
