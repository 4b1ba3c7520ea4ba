"""The hash-chained, signed evidence ledger: store, hashing, Merkle checkpoints, proofs, verification.

The names below are loaded on first use (PEP 562), so a command that only reads the store
(`charter incidents list`) does not import checkpoints, proofs, exports and verification.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .auditor import Report
    from .checkpoints import make_checkpoint, prove_consistency, prove_inclusion
    from .export import export_ledger
    from .keys import SigningKey
    from .layout import default_url
    from .records import Entry, NewEntry
    from .store import Ledger
    from .verify import verify_ledger

#: public name -> the module that defines it
_HOMES = {"Report": "auditor", "make_checkpoint": "checkpoints", "prove_consistency": "checkpoints",
          "prove_inclusion": "checkpoints", "default_url": "layout", "export_ledger": "export",
          "SigningKey": "keys", "Entry": "records", "Ledger": "store", "NewEntry": "records",
          "verify_ledger": "verify"}

__all__ = ["Entry", "Ledger", "NewEntry", "Report", "SigningKey", "default_url", "export_ledger", "make_checkpoint",
           "prove_consistency", "prove_inclusion", "verify_ledger"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value
