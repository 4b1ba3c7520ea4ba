"""`charter verify`: the auditor's checks run over the database, plus the checks only it can make.

The entry checks are those of `charter.ledger.auditor` (the same code the offline export ships), so
the database and an export are judged alike. On top, this compares each row's columns with its body
and the head row with the last entry. Everything is read in one snapshot, so appends that commit
while verification runs neither disturb nor confuse it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .auditor import Problem, Report, Verifier, checkpoint_row_problems, parse_body
from .records import Entry
from .store import Ledger
from .verified import full_pass_of, load_verified_state


def _column_mismatches(entry: Entry, body: dict[str, Any]) -> list[str]:
    expected = {"type": entry.type, "submission_id": entry.submission_id, "subject": entry.subject,
                "key_id": entry.key_id, "received_at": entry.received_at}
    return [name for name, value in expected.items() if body.get(name) != value]


def verify_ledger(ledger: Ledger, log_public_key: bytes, extra_notes: Iterable[str] = (),
                  check_signatures: bool = True, progress: Callable[[int], None] | None = None,
                  *, resume: bool = False) -> Report:
    """Verify the ledger in one streaming pass (see `verify_with_state` for `resume`).

    Args:
        ledger: the store to read.
        log_public_key: the pinned log key (from the key file, never from the database).
        extra_notes: checkpoint notes held outside the database, e.g. by an auditor.
        check_signatures: check receipts and bundle signatures too.
        progress: called with the number of entries read so far, every few hundred entries.
        resume: start after the log-signed verified state, if there is a usable one.
    """
    return verify_with_state(ledger, log_public_key, extra_notes, check_signatures, progress, resume=resume)[0]


def verify_with_state(ledger: Ledger, log_public_key: bytes, extra_notes: Iterable[str] = (),
                      check_signatures: bool = True, progress: Callable[[int], None] | None = None,
                      *, resume: bool = False) -> tuple[Report, Verifier, dict[str, Any] | None]:
    """Verify, and return the verifier (to record its state) and the state it resumed from, if any.

    With `resume`, a verified state signed by the pinned log key (see `charter.ledger.verified`) is
    taken as the starting point: entries below its size are not read again, and the new entries must
    extend its Merkle frontier. A state that is missing, not validly signed, or does not fit the
    checkpoints (a stored or held checkpoint it did not verify) means a full pass.
    """
    notes_held = list(extra_notes)
    with ledger.snapshot() as connection:
        size, head_hash, last_received = ledger.snapshot_head(connection)
        rows = ledger.snapshot_checkpoints(connection)
        notes = [note for _, _, note in rows] + notes_held
        verifier = Verifier(ledger.origin, log_public_key, notes, check_signatures, lambda: ledger.controls)
        state = load_verified_state(ledger, log_public_key) if resume and check_signatures else None
        beyond_head = state is not None and int(state.get("size", 0)) > size
        if state is not None and not beyond_head:
            try:
                verifier.resume(state)
            except (ValueError, KeyError, TypeError):
                verifier = Verifier(ledger.origin, log_public_key, notes, check_signatures, lambda: ledger.controls)
                state = None
        elif beyond_head:
            verifier.report.problems.append(Problem(size, "truncated", f"the log-signed verified state covers "
                                                    f"{state['size']} entries, only {size} exist"))  # type: ignore[index]
            state = None
        start = verifier.report.entries
        last: tuple[Entry, dict[str, Any]] | None = None
        for count, entry in enumerate(ledger.snapshot_entries(connection, start), start=1):
            parsed = verifier.feed(entry.stored())
            if parsed is not None:
                body = parsed  # parsed once, for the verifier and the column checks below
            else:  # past damage the verifier stops parsing; the columns are still compared
                try:
                    body = parse_body(entry.body)
                except (ValueError, UnicodeDecodeError):
                    body = {}  # the verifier has reported the malformed body
            if body:
                if entry.prev_hash.hex() != body.get("prev"):
                    verifier.report.problems.append(Problem(entry.seq, "column_mismatch",
                                                            "the row's prev_hash differs from its body"))
                mismatched = _column_mismatches(entry, body)
                if mismatched:
                    verifier.report.problems.append(Problem(
                        entry.seq, "column_mismatch", f"the row's {', '.join(mismatched)} differ from its body"))
            last = (entry, body)
            if progress is not None and count % 500 == 0:
                progress(start + count)
        report = verifier.finish(claimed_size=size)
        if state is not None and start == size and size and head_hash.hex() != state["prev"]:
            # Nothing new: the head must still be the state's last entry.
            report.problems.append(Problem(size - 1, "head_mismatch", "the head row's hash is not the last "
                                           "verified entry's"))
    if last is not None and last[0].seq == size - 1:
        entry, body = last
        if head_hash != entry.record_hash or last_received != body.get("received_at"):
            report.problems.append(Problem(entry.seq, "head_mismatch", "the head row's hash or time is not the "
                                           "last entry's"))
    if state is not None:
        report.full_pass = full_pass_of(state)
    report.problems.extend(checkpoint_row_problems(rows, ledger.origin, log_public_key))
    if not verifier.stopped:
        # Which escalation role may move which incident needs Charter's own rule, not only the auditor's.
        from ..incidents import transition_problems
        from ..submission import evaluation_time_problems

        # A rule the standalone checks already named (the Art. 73 high-risk rule) is named once: the
        # library's wording only adds advice after the same text.
        named = {(p.seq, p.kind): p.detail for p in report.problems}
        report.problems.extend(p for p in transition_problems(ledger, start, size)
                               if not p.detail.startswith(named.get((p.seq, p.kind)) or "\0"))
        report.problems.extend(evaluation_time_problems(ledger, start, size))
        report.problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
    return report, verifier, state
