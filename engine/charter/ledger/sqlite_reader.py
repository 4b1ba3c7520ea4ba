"""A read-only view of a SQLite ledger through the standard library's ``sqlite3``.

A read command such as ``charter incidents list`` spent most of its time importing SQLAlchemy, about
ten times a bare interpreter on its own. This reader serves such commands in the one case that
needs no database library: a SQLite file at the newest schema revision with every table of it,
opened read-only. For anything else (PostgreSQL, a URL with options, an older or newer schema, a
file that is not a ledger, a missing file) `open_sqlite_reader` returns None and the caller opens a
`charter.ledger.store.Ledger`, whose checks give the error. So each refusal keeps one
implementation, and `tests/unit/test_sqlite_reader.py` keeps this reader's entries equal to the
store's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

from ..errors import CharterError
from .layout import HEAD_TABLES, SCHEMA_HEAD
from .records import Entry, row_to_entry

_ENTRY_COLUMNS = ("seq", "prev_hash", "record_hash", "body", "entry_type", "submission_id", "subject", "key_id",
                  "received_at", "receipt")
_RANGE_COLUMNS = ("range_first", "range_root", "range_signature")
_SELECT = "SELECT " + ", ".join(f"e.{c}" for c in _ENTRY_COLUMNS) + " FROM ledger_entry AS e"
_SELECT_WITH_RANGE = ("SELECT " + ", ".join(f"e.{c}" for c in _ENTRY_COLUMNS)
                      + ", r.first_seq, r.root_hash, r.signature FROM ledger_entry AS e"
                      " LEFT JOIN ledger_receipt AS r ON r.last_seq = e.seq")


class SqliteLedgerReader:
    """Entries of a SQLite ledger, read-only (`charter.ledger.records.LedgerReader`).

    Args:
        connection: opened by `open_sqlite_reader` (read-only, ``query_only``).
        origin: the log's name, from its stored identity.
    """

    def __init__(self, connection: sqlite3.Connection, origin: str) -> None:
        self._connection = connection
        self.origin = origin

    def entry(self, seq: int) -> Entry | None:
        """The entry at `seq`, if any (with the range receipt it closes, as `Ledger.entry` gives it)."""
        rows = self._query(f"{_SELECT_WITH_RANGE} WHERE e.seq = ?", (seq,), _ENTRY_COLUMNS + _RANGE_COLUMNS)
        row = next(rows, None)
        return row_to_entry(row) if row is not None else None

    def entries(self, start: int = 0, stop: int | None = None, *, types: Sequence[str] = (),
                subject: str | None = None) -> Iterator[Entry]:
        """Entries with ``start <= seq < stop`` of these types and subject, in seq order, streamed."""
        where: list[str] = ["e.seq >= ?"]
        values: list[object] = [start]
        if stop is not None:
            where.append("e.seq < ?")
            values.append(stop)
        if types:
            where.append(f"e.entry_type IN ({', '.join('?' * len(types))})")
            values.extend(types)
        if subject is not None:
            where.append("e.subject = ?")
            values.append(subject)
        for row in self._query(f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY e.seq", values, _ENTRY_COLUMNS):
            yield row_to_entry(row)

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()

    def _query(self, sql: str, values: Sequence[object], columns: tuple[str, ...]) -> Iterator[SimpleNamespace]:
        # `row_to_entry` reads columns as attributes, as SQLAlchemy rows give them.
        try:
            for row in self._connection.execute(sql, tuple(values)):
                yield SimpleNamespace(**dict(zip(columns, row, strict=True)))
        except sqlite3.Error as exc:
            raise CharterError.single("database_unavailable", f"cannot read the ledger database: {exc}") from exc


def open_sqlite_reader(url: str) -> SqliteLedgerReader | None:
    """A reader for `url` when it names a SQLite ledger file at the newest schema; None for anything else.

    None means "open a `Ledger` instead": the store then refuses with its own error (``ledger_missing``,
    ``not_a_ledger``, ``schema_outdated``, ``schema_too_new``, ``database_url``) or opens what this
    reader does not handle.
    """
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    database = url.removeprefix(prefix)
    # Query options, percent-escapes and in-memory databases are SQLAlchemy's to interpret.
    if not database or database == ":memory:" or any(c in database for c in "?#%"):
        return None
    path = Path(database)
    if not path.is_file():
        return None
    try:
        connection = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, timeout=30.0,
                                     isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        connection.execute("PRAGMA query_only=ON")
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        revisions = [r for (r,) in connection.execute("SELECT version_num FROM alembic_version")] \
            if "alembic_version" in tables else []
        meta = dict(connection.execute("SELECT name, value FROM ledger_meta")) if "ledger_meta" in tables else {}
    except sqlite3.Error:
        connection.close()
        return None
    if revisions != [SCHEMA_HEAD] or not tables >= HEAD_TABLES or "origin" not in meta:
        connection.close()
        return None
    return SqliteLedgerReader(connection, str(meta["origin"]))
