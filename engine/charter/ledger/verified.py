"""The verified state: where a full verification left off, signed by the log, so the next one need not start at 0.

Re-verifying 300,000 entries takes minutes; binding a report to the ledger only needs the entries
appended since the last verification. After a clean pass the appending process records what the
verifier knew at the end (size, Merkle frontier and root, last record hash, keys, owners, the
checkpoints it matched), signed with the log key under its own context. A later pass checks that
signature against the pinned log key and resumes: it reads only the newer entries, and its new root
extends the recorded frontier, which proves the old tree a prefix of the new one (what a
consistency proof shows).

The state vouches for the entries below its size; a body rewritten there by someone with write
access to the database is found only by ``charter verify --full``. Without the log key nobody can
forge a state; deleting it only costs the next verification a full pass.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, insert, select

from .auditor import UNKNOWN_IN_OLDER_STATE, Verifier, canonical_json, verify_signature
from .records import format_time
from .schema import ledger_meta
from .store import Ledger

#: The signing context of verified states, distinct from receipts, bundles and checkpoints.
VERIFIED_CONTEXT = b"charter-verified-state/v1\n"
_META_NAME = "verified_state"
#: the folds a state must hold to be resumed from: states recorded before they existed lack them
RESUME_NEEDS = (*sorted(UNKNOWN_IN_OLDER_STATE), "pending_keys")


def record_verified_state(ledger: Ledger, verifier: Verifier, full_pass: tuple[int, str] | None) -> dict[str, Any]:
    """Sign and store the state `verifier` reached, replacing any earlier one.

    Args:
        ledger: the ledger, opened with its log key.
        verifier: a verifier that has just finished a clean pass with signatures checked.
        full_pass: (entries, time) of the last pass that read every entry: this one's, or the one
            the resumed state descends from.
    """
    assert ledger.log_key is not None, "recording a verified state needs the log key"
    state = verifier.state()
    state["verified_at"] = format_time(ledger.clock())
    state["full_pass"] = {"size": full_pass[0], "at": full_pass[1]} if full_pass else None
    signature = ledger.log_key.sign(VERIFIED_CONTEXT, canonical_json(state))
    value = json.dumps({"state": state, "signature": signature}, sort_keys=True)
    with ledger.locked() as connection:
        connection.execute(delete(ledger_meta).where(ledger_meta.c.name == _META_NAME))
        connection.execute(insert(ledger_meta).values(name=_META_NAME, value=value))
    return state


def load_verified_state(ledger: Ledger, log_public_key: bytes) -> dict[str, Any] | None:
    """The recorded state, if its signature by the pinned log key holds, it is this log's and it knows every
    fold the rules need; else None (the next pass reads every entry)."""
    with ledger.engine.connect() as connection:
        value = connection.execute(select(ledger_meta.c.value).where(ledger_meta.c.name == _META_NAME)
                                   ).scalar_one_or_none()
    if value is None:
        return None
    try:
        document = json.loads(value)
        state, signature = document["state"], str(document["signature"])
        if not isinstance(state, dict) or state.get("log") != ledger.origin:
            return None
        if not verify_signature(log_public_key, VERIFIED_CONTEXT, canonical_json(state), signature):
            return None
    except (ValueError, KeyError, TypeError):
        return None
    authority = state.get("authority")
    if not isinstance(authority, dict) or any(authority.get(name) is None for name in RESUME_NEEDS):
        # Recorded before a fold existed (the Art. 73 rule's, the pending keys'): resuming would leave its rule
        # unchecked from here on (an older Charter folds a pending key as registered), so this pass reads every
        # entry, and the state it records knows the fold (review L1).
        return None
    return state


def full_pass_of(state: dict[str, Any] | None) -> tuple[int, str] | None:
    """(entries, time) of the last full pass a state descends from."""
    full = (state or {}).get("full_pass")
    return (int(full["size"]), str(full["at"])) if isinstance(full, dict) else None
