"""`charter verify`: the auditor's checks run over the database, plus the checks only it can make.

The entry checks are those of `charter.ledger.auditor` (the same code the offline export ships), so
the database and an export are judged alike. On top, this compares each row's columns with its body
and the head row with the entries.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from .auditor import Problem, Report, Verifier
from .store import Ledger


def verify_ledger(ledger: Ledger, log_public_key: bytes, extra_notes: Iterable[str] = (),
                  check_signatures: bool = True, progress: Callable[[int], None] | None = None) -> Report:
    """Verify the whole ledger in one streaming pass.

    Args:
        ledger: the store to read.
        log_public_key: the pinned log key (from the key file, never from the database).
        extra_notes: checkpoint notes held outside the database, e.g. by an auditor.
        check_signatures: check receipts and bundle signatures too.
        progress: called with the number of entries read so far, every few hundred entries.
    """
    notes = [note for _, _, note in ledger.checkpoints()] + list(extra_notes)
    verifier = Verifier(ledger.origin, log_public_key, notes, check_signatures)
    for count, entry in enumerate(ledger.entries(), start=1):
        verifier.feed(entry.stored())
        try:
            body = json.loads(entry.body)
        except ValueError:
            body = {}  # the verifier has reported the malformed body
        if isinstance(body, dict) and (body.get("type") != entry.type or body.get("submission_id")
                                       != entry.submission_id):
            verifier.report.problems.append(
                Problem(entry.seq, "column_mismatch", "the row's type or submission id differs from its body"))
        if progress is not None and count % 500 == 0:
            progress(count)
    return verifier.finish(claimed_size=ledger.size())

