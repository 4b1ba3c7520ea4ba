"""The incident book submissions keep between appends is the book a fresh fold of the ledger gives.

Submissions fold only the incident entries since the last one; transitions, other writers (another
`Ledger` object on the same database, as another worker would be) and refused appends must not
make the kept book differ from `load_book`, or incidents would be opened, attached or reopened
against a stale view.
"""

from __future__ import annotations

import datetime
import json

import pytest

from charter.errors import CharterError
from charter.incidents import IncidentBook, kept_book, load_book, transition
from charter.ledger import Ledger
from charter.submission import submit_bundle
from tests.conftest import REPO
from tests.unit.ledger.helpers import CATALOG, key_of, populate


def _view(book: IncidentBook) -> dict[str, object]:
    """What decides the next submission's incident entries: each incident's state, findings, latest per key."""
    return {"incidents": {i.id: (i.state.value, tuple(i.findings), i.level, tuple(i.decisions))
                          for i in book.incidents.values()},
            "latest": {key: i.id for key, i in book._latest.items()},
            "waivers": [w.id for w in book.waivers]}


def _submit(ledger: Ledger, name: str, owner: str) -> None:
    path = REPO / "evidence" / name
    at = datetime.datetime.fromisoformat(json.loads(path.read_text())["measured_at"])
    submit_bundle(ledger, path.read_bytes(), CATALOG, key=key_of(owner), at=at)


def test_the_kept_book_equals_a_fresh_fold_through_transitions_other_writers_and_refusals(db_url: str) -> None:
    populated = populate(db_url, bundles=4)
    ledger = populated.ledger
    kept = kept_book(ledger)
    assert _view(kept.book) == _view(load_book(ledger))
    incident = next(i for i in load_book(ledger).incidents.values() if i.system_id == "fraud-detector")
    transition(ledger, incident.id, "acknowledge", key_of("maria.keller"), "on it")  # not through a submission
    other = Ledger.open(db_url, log_key=populated.log_key)  # another writer on the same database
    _submit(other, "claims-approval-2026-05.json", "tom.berger")
    _submit(ledger, "fraud-detector-2026-05.json", "maria.keller")
    assert kept.size == ledger.size()
    assert _view(kept.book) == _view(load_book(ledger))
    with pytest.raises(CharterError):  # refused: signed by someone who does not own the system
        _submit(ledger, "fraud-detector-2026-06.json", "tom.berger")
    _submit(ledger, "fraud-detector-2026-06.json", "maria.keller")
    assert _view(kept.book) == _view(load_book(ledger))
