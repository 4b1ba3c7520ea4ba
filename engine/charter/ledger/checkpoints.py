"""Signing checkpoints and serving proofs against them.

The signer keeps the invariants a log must never break: it never signs a size smaller than one it
signed before, never signs two roots for one size, and before signing a larger tree it checks that
the previous checkpoint's tree is a prefix of it (a consistency self-check).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from ..errors import CharterError
from . import merkle
from .auditor import CompactRange, ReceiptTracker
from .hashing import leaf_hash
from .notes import Checkpoint, open_checkpoint, sign_checkpoint
from .store import Ledger


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def latest_checkpoint(ledger: Ledger) -> tuple[int, bytes, str] | None:
    """The stored checkpoint with the largest size."""
    stored = ledger.checkpoints()
    return stored[-1] if stored else None


def make_checkpoint(ledger: Ledger, size: int | None = None) -> Checkpoint:
    """Sign and store a checkpoint of the first `size` entries (default: all), under the append lock.

    Before signing, the entries since the last checkpoint must carry the log's own receipts and
    chain onto it, and the last checkpoint's tree must be a prefix of the new one: the log never
    signs history that it did not write. Signing a size that is already signed returns that note.

    Raises:
        CharterError: no log key, a size beyond the ledger or below the last checkpoint, or entries
            that do not verify (history was rewritten).
    """
    key = ledger.log_key
    if key is None:
        raise CharterError.single("log_key_required", "signing a checkpoint needs the ledger's key")
    with ledger.locked() as connection:
        current, _, _ = ledger.snapshot_head(connection)
        size = current if size is None else size
        if not 0 < size <= current:
            raise CharterError.single("checkpoint_size", f"cannot checkpoint {size} entries of a ledger of {current}")
        stored = ledger.snapshot_checkpoints(connection)
        previous = stored[-1] if stored else None
        same = next((c for c in stored if c[0] == size), None)
        if same is not None:
            return open_checkpoint(same[2], ledger.origin, key.public)
        if previous is not None and size < previous[0]:
            raise CharterError.single("checkpoint_size", f"a checkpoint of {previous[0]} entries exists; never "
                                      "sign a smaller tree")
        old_size = previous[0] if previous else 0
        # The signed prefix is judged by its record hashes (one column); only the entries since the
        # last checkpoint are read whole, so a checkpoint costs O(new entries) row reads.
        signed = CompactRange()
        for record_hash in ledger.leaf_hashes(old_size, connection):
            signed.append(record_hash)
        if signed.size != old_size:
            raise _refuse(f"only {signed.size} of the {old_size} signed entries exist")
        if previous is not None and signed.root() != previous[1]:
            raise _refuse(f"the first {old_size} entries no longer have the root of the signed checkpoint")
        _check_own_entries(ledger, connection, old_size, size, signed)
        if signed.size != size:
            raise _refuse(f"only {signed.size} of {size} entries exist")
        root = signed.root()
        note = sign_checkpoint(ledger.origin, size, root, key)
        ledger.store_checkpoint(connection, size, root, note)
    return Checkpoint(ledger.origin, size, root, note)


def _refuse(reason: str) -> CharterError:
    return CharterError.single("inconsistent_history", f"refusing to sign a checkpoint: {reason}")


def _check_own_entries(ledger: Ledger, connection: Any, start: int, size: int, signed: CompactRange) -> None:
    """Check that entries `start`..`size`-1 chain on and carry the log's receipts; add them to `signed`.

    A range receipt covers a whole append transaction, so the check reads from the first entry of
    the transaction holding `start` to the last of the one holding ``size - 1``.

    Raises:
        CharterError: ``inconsistent_history`` for an entry that is missing, altered or not the log's.
    """
    key = ledger.log_key
    assert key is not None
    first = ledger.range_start(connection, start)
    prev = ledger.entry_hash(connection, first - 1) if first else b""
    receipts = ReceiptTracker(ledger.origin, key.public)
    last = first - 1
    for entry in ledger.snapshot_entries(connection, first):
        if entry.seq >= size and receipts.open is None:
            break
        if leaf_hash(entry.body) != entry.record_hash or (prev and entry.prev_hash != prev):
            raise _refuse(f"entry {entry.seq} does not match its hash or does not chain on")
        damage = receipts.feed(entry.seq, entry.record_hash, entry.receipt, entry.range_receipt)
        if damage is not None:
            raise _refuse(str(damage))
        if start <= entry.seq < size:
            if entry.seq != signed.size:
                raise _refuse(f"entry {signed.size} is missing")
            signed.append(entry.record_hash)
        prev, last = entry.record_hash, entry.seq
    unclosed = receipts.unclosed(last + 1)
    if unclosed is not None:
        raise _refuse(str(unclosed))


def checkpoint_due(ledger: Ledger, every: int) -> bool:
    """Whether the ledger has grown by at least `every` entries since the last checkpoint."""
    previous = latest_checkpoint(ledger)
    return every > 0 and ledger.size() - (previous[0] if previous else 0) >= every


@dataclass(frozen=True)
class InclusionProof:
    """Proof that entry `seq` is in the tree of a checkpoint."""

    seq: int
    record_hash: bytes
    checkpoint: Checkpoint
    hashes: list[bytes]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: leaf index, tree size, base64 hashes, and the checkpoint note."""
        return {"leaf_index": self.seq, "tree_size": self.checkpoint.size, "record_hash": self.record_hash.hex(),
                "hashes": [_b64(h) for h in self.hashes], "checkpoint": self.checkpoint.note}


def _checkpoint_at(ledger: Ledger, size: int | None, minimum: int) -> Checkpoint:
    stored = ledger.checkpoints()
    candidates = [c for c in stored if c[0] >= minimum and (size is None or c[0] == size)]
    if not candidates:
        wanted = f"of size {size}" if size is not None else f"covering seq {minimum - 1}"
        raise CharterError.single("no_checkpoint", f"no checkpoint {wanted}; run `charter ledger checkpoint`")
    chosen = candidates[-1] if size is None else candidates[0]
    public = base64.b64decode(ledger.meta()["log_public_key"])
    return open_checkpoint(chosen[2], ledger.origin, public)


def prove_inclusion(ledger: Ledger, seq: int, checkpoint_size: int | None = None) -> InclusionProof:
    """An inclusion proof of entry `seq` against a stored checkpoint (default: the newest).

    Raises:
        CharterError: no such entry, or no checkpoint that covers it.
    """
    entry = ledger.entry(seq)
    if entry is None:
        raise CharterError.single("no_entry", f"there is no entry {seq}")
    checkpoint = _checkpoint_at(ledger, checkpoint_size, seq + 1)
    hashes = merkle.inclusion_proof(seq, ledger.leaf_hashes(checkpoint.size))
    merkle.verify_inclusion(entry.record_hash, seq, checkpoint.size, hashes, checkpoint.root)
    return InclusionProof(seq, entry.record_hash, checkpoint, hashes)


def prove_consistency(ledger: Ledger, old_size: int, new_size: int) -> dict[str, Any]:
    """A consistency proof between two stored checkpoints, checked before it is returned."""
    old = _checkpoint_at(ledger, old_size, 1)
    new = _checkpoint_at(ledger, new_size, 1)
    hashes = merkle.consistency_proof(old.size, ledger.leaf_hashes(new.size))
    merkle.verify_consistency(old.size, new.size, old.root, new.root, hashes)
    return {"old_size": old.size, "new_size": new.size, "hashes": [_b64(h) for h in hashes],
            "old_checkpoint": old.note, "new_checkpoint": new.note}
