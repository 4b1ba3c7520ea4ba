"""Subprocess workers for the concurrency and crash tests: ``python -m tests.unit.ledger.workers ...``.

``append URL KEYFILE COUNT TAG``: append COUNT entries, one transaction each, printing
``seq record_hash`` after each commit (a receipt the test can hold the ledger to).
``naive URL KEYFILE COUNT TAG``: the negative control: read the head without a lock, then write in a
second transaction, as naive code would; prints how many appends the UNIQUE constraints refused.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from charter.errors import CharterError
from charter.ledger import Ledger, NewEntry, SigningKey
from charter.ledger.database import write_transaction
from charter.ledger.hashing import RECEIPT_CONTEXT, canonical, leaf_hash, receipt_message
from charter.ledger.schema import ledger_entry, ledger_head


def append(url: str, key_file: str, count: int, tag: str) -> None:
    ledger = Ledger.open(url, log_key=SigningKey.load(Path(key_file)))
    for i in range(count):
        entry = ledger.append([NewEntry("note", {"worker": tag, "i": i}, f"{tag}-{i}")])[0]
        print(entry.seq, entry.record_hash.hex(), flush=True)


def naive(url: str, key_file: str, count: int, tag: str) -> None:
    ledger = Ledger.open(url, log_key=SigningKey.load(Path(key_file)))
    assert ledger.log_key is not None
    refused = 0
    for i in range(count):
        with ledger.engine.connect() as connection:  # reads the head outside the write transaction
            head = connection.execute(select(ledger_head)).one()
        time.sleep(random.random() / 1000)  # the work real code does between reading and writing
        body = canonical({"v": 1, "log": ledger.origin, "seq": head.size, "prev": bytes(head.head_hash).hex(),
                          "type": "note", "received_at": "", "submission_id": f"{tag}-{i}", "payload": {}})
        record_hash = leaf_hash(body)
        try:
            with write_transaction(ledger.engine) as connection:
                connection.execute(insert(ledger_entry).values(
                    seq=head.size, prev_hash=bytes(head.head_hash), record_hash=record_hash, body=body,
                    entry_type="note", submission_id=f"{tag}-{i}", received_at="",
                    receipt=ledger.log_key.sign(RECEIPT_CONTEXT,
                                                receipt_message(ledger.origin, head.size, record_hash))))
                connection.execute(update(ledger_head).values(size=head.size + 1, head_hash=record_hash))
        except (IntegrityError, OperationalError, CharterError):  # a collision, or the lock wait timed out
            refused += 1
    print("refused", refused, flush=True)


if __name__ == "__main__":
    command, url, key_file, count, tag = sys.argv[1:6]
    {"append": append, "naive": naive}[command](url, key_file, int(count), tag)
