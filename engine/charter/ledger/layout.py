"""Facts about the ledger database that need no database library: its newest schema, its tables, its default place.

`charter.ledger.database` gates every opened database on them; `charter.ledger.sqlite_reader` reads a
SQLite ledger that matches them exactly, with the standard library.
"""

from __future__ import annotations

from pathlib import Path

#: The newest revision in ``migrations/versions`` (a test keeps it equal to `database.code_revision()`).
#: A ledger already at it opens without importing alembic, which takes longer than a whole read command.
SCHEMA_HEAD = "0003"

#: Tables every Charter ledger has, whatever its revision.
LEDGER_TABLES = frozenset({"ledger_meta", "ledger_head", "ledger_entry", "checkpoint"})
#: Tables of the newest schema: a ledger at SCHEMA_HEAD has all of them.
HEAD_TABLES = LEDGER_TABLES | {"ledger_receipt", "api_request"}


def default_url(directory: Path | None = None) -> str:
    """``sqlite:///.charter/ledger.db`` under `directory` (default: the working directory)."""
    base = (directory or Path.cwd()) / ".charter"
    return f"sqlite:///{base / 'ledger.db'}"
