"""The standard-library SQLite reader answers exactly as the store does, and hands every other case to the store."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from charter.incidents import INCIDENT_TYPES, load_book
from charter.ledger import Ledger
from charter.ledger.sqlite_reader import SqliteLedgerReader, open_sqlite_reader
from tests.conftest import run_cli
from tests.unit.ledger.helpers import populate


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Ledger]:
    url = f"sqlite:///{tmp_path_factory.mktemp('reader') / 'ledger.db'}"
    return url, populate(url, bundles=4).ledger


def _reader(url: str) -> SqliteLedgerReader:
    reader = open_sqlite_reader(url)
    assert reader is not None
    return reader


def test_every_entry_and_every_filter_reads_as_the_store_reads_it(populated: tuple[str, Ledger]) -> None:
    url, ledger = populated
    reader = _reader(url)
    size = ledger.size()
    every = list(ledger.entries())
    assert list(reader.entries()) == every and len(every) == size
    for seq in (-1, 0, 1, size // 2, size - 1, size, size + 5):
        assert reader.entry(seq) == ledger.entry(seq), seq
    # Range receipts ride on the last entry of each append transaction, as `Ledger.entry` returns them.
    assert any(reader.entry(e.seq).range_receipt is not None for e in every)  # type: ignore[union-attr]
    types = sorted({e.type for e in every})
    subjects = [*sorted({e.subject for e in every if e.subject}), "no-such-system"]
    for chosen in ([], types[:1], types[-2:], list(INCIDENT_TYPES), ["no.such.type"]):
        for subject in (None, *subjects):
            for start, stop in ((0, None), (3, None), (0, size // 2), (size // 3, size - 2), (size, None), (5, 5)):
                ours = list(reader.entries(start, stop, types=chosen, subject=subject))
                assert ours == list(ledger.entries(start, stop, types=chosen, subject=subject)), (
                    chosen, subject, start, stop)
    assert reader.origin == ledger.origin
    reader.close()


def test_the_incident_book_folds_the_same_from_both(populated: tuple[str, Ledger]) -> None:
    url, ledger = populated
    ours, theirs = load_book(_reader(url)), load_book(ledger)
    assert ours.incidents and ours.incidents == theirs.incidents and ours.waivers == theirs.waivers


def test_the_reader_never_writes(populated: tuple[str, Ledger], tmp_path: Path) -> None:
    url, _ = populated
    copy = tmp_path / "copy.db"
    copy.write_bytes(Path(url.removeprefix("sqlite:///")).read_bytes())
    before = copy.read_bytes()
    reader = _reader(f"sqlite:///{copy}")
    with pytest.raises(sqlite3.OperationalError):
        reader._connection.execute("DELETE FROM ledger_meta")
    list(reader.entries())
    reader.close()
    assert copy.read_bytes() == before


def _older(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0002'")


def _newer(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")


def _foreign(path: Path) -> None:
    path.unlink()
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE invoices (id INTEGER)")


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a database " * 100)


def _empty(path: Path) -> None:
    path.unlink()
    path.touch()


def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _missing(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize(("damage", "code"), [
    (_older, "schema_outdated"), (_newer, "schema_too_new"), (_foreign, "not_a_ledger"), (_garbage, None),
    (_empty, "ledger_missing"), (_directory, "ledger_missing"), (_fifo, "ledger_missing"), (_missing, "ledger_missing"),
])
def test_anything_but_a_current_sqlite_ledger_goes_to_the_store_and_gets_its_error(
        populated: tuple[str, Ledger], tmp_path: Path, damage: object, code: str | None) -> None:
    url, _ = populated
    path = tmp_path / "ledger.db"
    path.write_bytes(Path(url.removeprefix("sqlite:///")).read_bytes())
    damage(path)  # type: ignore[operator]
    assert open_sqlite_reader(f"sqlite:///{path}") is None
    result = run_cli("incidents", "list", "--db", f"sqlite:///{path}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    if code is not None:
        assert code in result.stderr, result.stderr


@pytest.mark.parametrize("url", ["postgresql://root@127.0.0.1:5432/test", "sqlite://", "sqlite:///:memory:",
                                 "sqlite:///ledger.db?mode=ro", "sqlite:///a%20b.db", "mysql:///x", ""])
def test_urls_the_reader_does_not_interpret_are_left_to_the_store(url: str) -> None:
    assert open_sqlite_reader(url) is None


def test_incidents_list_and_show_read_the_same_through_the_cli_as_the_store(populated: tuple[str, Ledger],
                                                                            tmp_path: Path) -> None:
    import json

    url, ledger = populated
    listed = run_cli("incidents", "list", "--db", url, "--format", "json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert sorted(r["id"] for r in rows) == sorted(load_book(ledger).incidents)
    shown = run_cli("incidents", "show", rows[0]["id"], "--db", url, "--format", "json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    findings = json.loads(shown.stdout)["findings"]
    assert findings and findings[0]["observed"] == ledger.entry(findings[0]["seq"]).payload["observed"]  # type: ignore[union-attr]
