"""Canonical bytes and domain-separated hashes: the one place the ledger computes them.

Bodies are serialized with RFC 8785 (JSON Canonicalization Scheme) by the ``rfc8785`` package.
Leaves and interior Merkle nodes are hashed with distinct one-byte prefixes (RFC 6962), so a node
can never be passed off as a leaf. Every signed message starts with an ASCII context line, so a
signature made for one purpose is useless for another.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .auditor import (
    BUNDLE_CONTEXT,
    RANGE_RECEIPT_CONTEXT,
    RECEIPT_CONTEXT,
    ZERO_HASH,
    canonical_json,
    leaf_hash,
    node_hash,
    range_receipt_message,
    receipt_message,
)

__all__ = ["BUNDLE_CONTEXT", "RANGE_RECEIPT_CONTEXT", "RECEIPT_CONTEXT", "ZERO_HASH", "canonical", "leaf_hash",
           "node_hash", "range_receipt_message", "receipt_message", "sha256_hex"]


def canonical(value: Any) -> bytes:
    """RFC 8785 canonical JSON bytes of a JSON-like value."""
    return canonical_json(value)


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()
