"""Reading commands open the ledger read-only: they never take the write lock, never write, never wait."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import DBAPIError

from charter.errors import CharterError
from charter.ledger import Ledger
from charter.ledger.database import write_transaction
from charter.ledger.schema import ledger_meta
from tests.unit.ledger.helpers import populate


def test_a_read_only_ledger_refuses_writes_with_a_located_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    populate(url, bundles=1)
    reader = Ledger.open(url, read_only=True)
    with pytest.raises(CharterError) as info, write_transaction(reader.engine) as connection:
        connection.execute(insert(ledger_meta).values(name="x", value="y"))
    assert info.value.code == "database_readonly"


def test_a_read_only_ledger_keeps_the_urls_own_options(db_url: str) -> None:
    # On PostgreSQL the test URL selects its schema with ?options=-csearch_path=...; read-only
    # sessions add their own option, which must not replace it.
    size = populate(db_url, bundles=1).ledger.size()
    reader = Ledger.open(db_url, read_only=True)
    assert reader.size() == size
    with pytest.raises((CharterError, DBAPIError)), write_transaction(reader.engine) as connection:
        connection.execute(insert(ledger_meta).values(name="x", value="y"))


@contextmanager
def _lock_held_elsewhere(ledger: Ledger) -> Iterator[None]:
    """Another thread holds the ledger's write lock (as a long append would) until the block ends."""
    holding, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with ledger.locked():
            holding.set()
            release.wait(timeout=60)

    writer = threading.Thread(target=hold_the_lock)
    writer.start()
    try:
        assert holding.wait(timeout=60)
        yield
    finally:
        release.set()
        writer.join()


def test_readers_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    """A writer holding the lock does not block verify, lists or reports."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    populated = populate(url, bundles=2)
    with _lock_held_elsewhere(populated.ledger):
        reader = Ledger.open(url, read_only=True)
        assert reader.size() == populated.ledger.size()
        assert len(list(reader.entries())) == reader.size()


def test_a_busy_writer_gets_a_bounded_explained_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from charter.ledger import database

    monkeypatch.setattr(database, "WRITE_LOCK_TIMEOUT", 0.05)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    populated = populate(url, bundles=1)
    second = Ledger.open(url, log_key=populated.log_key)
    with _lock_held_elsewhere(populated.ledger):
        with pytest.raises(CharterError) as info, second.locked():
            pass
        assert info.value.code == "ledger_busy" and "nothing was written" in info.value.diagnostics[0].message
