"""The hash-chained, signed evidence ledger: store, hashing, Merkle checkpoints, proofs, verification."""

from .auditor import Report
from .checkpoints import make_checkpoint, prove_consistency, prove_inclusion
from .database import default_url
from .export import export_ledger
from .keys import SigningKey
from .store import Entry, Ledger, NewEntry
from .verify import verify_ledger

__all__ = [
    "Entry",
    "Ledger",
    "NewEntry",
    "Report",
    "SigningKey",
    "default_url",
    "export_ledger",
    "make_checkpoint",
    "prove_consistency",
    "prove_inclusion",
    "verify_ledger",
]
