"""Range receipts (issue 11, item 22): one log signature per append transaction, every entry still provable."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, update

from charter.errors import CharterError
from charter.ledger import Ledger, NewEntry, SigningKey, export_ledger, make_checkpoint, verify_ledger
from charter.ledger.auditor import check_receipt
from charter.ledger.hashing import RECEIPT_CONTEXT, canonical, leaf_hash, receipt_message
from charter.ledger.schema import ledger_entry, ledger_head, ledger_receipt
from tests.unit.ledger.helpers import ORIGIN, drop_guards, key_of, new_ledger, populate, transaction_start


def test_one_signature_per_transaction_and_a_provable_receipt_for_each_entry(db_url: str) -> None:
    ledger = new_ledger(db_url)
    appended = ledger.append([NewEntry("note", {"i": i}, f"n{i}") for i in range(7)])
    with ledger.engine.connect() as connection:
        rows = connection.execute(select(ledger_receipt)).all()
    assert [(r.first_seq, r.last_seq) for r in rows] == [(0, 0), (1, 7)]  # the trust root, then the notes
    assert appended[-1].range_receipt is not None and all(e.range_receipt is None for e in appended[:-1])
    assert ledger.log_key is not None
    for entry in appended:
        receipt = ledger.receipt_for(entry.seq)
        assert receipt is not None and check_receipt(receipt, ORIGIN, ledger.log_key.public)
        moved = {**receipt, "seq": (entry.seq + 1) % 7}
        assert not check_receipt(moved, ORIGIN, ledger.log_key.public)


def test_a_missing_range_receipt_is_found(db_url: str) -> None:
    populated = populate(db_url, bundles=1)
    drop_guards(populated.ledger.engine)
    with populated.ledger.engine.begin() as connection:
        last = connection.execute(select(ledger_receipt.c.last_seq).order_by(ledger_receipt.c.last_seq.desc())
                                  .limit(1)).scalar_one()
        connection.execute(delete(ledger_receipt).where(ledger_receipt.c.last_seq == last))
    report = verify_ledger(populated.ledger, populated.log_key.public)
    assert [p.kind for p in report.problems] == ["missing_receipt"]
    assert report.first_bad_seq == transaction_start_of_deleted(populated.ledger, last)
    with pytest.raises(CharterError) as info:
        make_checkpoint(populated.ledger)  # the log never signs history without its receipts
    assert info.value.code == "inconsistent_history"


def transaction_start_of_deleted(ledger: Ledger, last: int) -> int:
    with ledger.engine.connect() as connection:
        previous = connection.execute(select(ledger_receipt.c.last_seq).where(ledger_receipt.c.last_seq < last)
                                      .order_by(ledger_receipt.c.last_seq.desc()).limit(1)).scalar_one_or_none()
    return 0 if previous is None else previous + 1


def test_a_receipt_moved_to_another_range_is_refused(db_url: str) -> None:
    populated = populate(db_url, bundles=2)
    engine = populated.ledger.engine
    drop_guards(engine)
    with engine.begin() as connection:
        rows = connection.execute(select(ledger_receipt).order_by(ledger_receipt.c.last_seq)).all()
        donor, victim = rows[-1], rows[-2]
        connection.execute(update(ledger_receipt).where(ledger_receipt.c.last_seq == victim.last_seq)
                           .values(signature=donor.signature))
    report = verify_ledger(populated.ledger, populated.log_key.public)
    assert report.first_bad_seq == victim.first_seq and report.problems[0].kind == "bad_receipt"


def test_ledgers_with_per_entry_receipts_still_verify_after_upgrading(tmp_path: Path) -> None:
    """A ledger written before range receipts (schema 0001) upgrades, grows with range receipts and verifies."""
    from alembic import command

    from charter.ledger.database import _alembic_config, make_engine

    url = f"sqlite:///{tmp_path / 'old.db'}"
    key = SigningKey.generate(ORIGIN)
    engine = make_engine(url)
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(insert(ledger_head).values(id=1, size=0, head_hash=bytes(32), last_received_at=""))
        from charter.ledger.schema import ledger_meta

        connection.execute(insert(ledger_meta), [{"name": "origin", "value": ORIGIN},
                                                 {"name": "log_key_id", "value": key.key_id},
                                                 {"name": "log_public_key", "value": _b64(key.public)},
                                                 {"name": "created_at", "value": "2026-01-01T00:00:00.000Z"}])
        prev = bytes(32)
        for seq in range(3):  # as the earlier Charter wrote them: a receipt on every entry
            kind, payload, submission = (("governance.config", *_trust_root()) if seq == 0
                                         else ("note", {"seq": seq}, f"old{seq}"))
            body = canonical({"v": 1, "log": ORIGIN, "seq": seq, "prev": prev.hex(), "type": kind,
                              "received_at": "2026-01-01T00:00:00.000Z", "submission_id": submission,
                              "payload": payload})
            record_hash = leaf_hash(body)
            connection.execute(insert(ledger_entry).values(
                seq=seq, prev_hash=prev, record_hash=record_hash, body=body, entry_type=kind,
                submission_id=submission, received_at="2026-01-01T00:00:00.000Z",
                receipt=key.sign(RECEIPT_CONTEXT, receipt_message(ORIGIN, seq, record_hash))))
            prev = record_hash
        connection.execute(update(ledger_head).values(size=3, head_hash=prev,
                                                      last_received_at="2026-01-01T00:00:00.000Z"))
    engine.dispose()
    ledger = Ledger.open(url, log_key=key)  # a writer upgrades the schema
    ledger.append([NewEntry("note", {"new": i}, f"new{i}") for i in range(4)])
    assert verify_ledger(ledger, key.public).ok
    assert make_checkpoint(ledger).size == 7
    old_receipt, new_receipt = ledger.receipt_for(1), ledger.receipt_for(5)
    assert old_receipt is not None and "range" not in old_receipt and check_receipt(old_receipt, ORIGIN, key.public)
    assert new_receipt is not None and new_receipt["range"]["first"] == 3 and check_receipt(new_receipt, ORIGIN,
                                                                                            key.public)
    export_ledger(ledger, tmp_path / "export")
    from charter.ledger.auditor import read_export, verify_entries

    _, entries, notes = read_export(tmp_path / "export")
    assert verify_entries(entries, ORIGIN, key.public, notes).ok
    assert transaction_start(ledger.engine, 6) == 3


def _trust_root() -> tuple[dict[str, object], str]:
    """A governance configuration of one administrator, approved by its key, and its submission id: entry 0."""
    from charter.ledger.auditor import ACTION_CONTEXT, action_message, statement_id

    admin = key_of("ana.costa")
    payload: dict[str, object] = {"config": {"administrators": [{"principal": "ana.costa",
                                                                 "public_key": _b64(admin.public)}],
                                             "threshold": 1, "roles": {}},
                                  "signed_at": "2026-01-01T00:00:00.000Z", "supersedes": None}
    message = action_message(ORIGIN, "governance.config", payload)
    approvals = [{"principal": "ana.costa", "signature": admin.sign(ACTION_CONTEXT, message)}]
    return {**payload, "approvals": approvals}, statement_id(ORIGIN, "governance.config", payload)


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()
