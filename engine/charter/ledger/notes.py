"""Checkpoints as C2SP signed notes (tlog-checkpoint): origin, size and root, signed by the log key.

    ledger.example/charter
    128
    <base64 root>

    — ledger.example/charter <base64(4-byte key hash || Ed25519 signature)>

The key hash is ``SHA-256(name || 0x0A || 0x01 || public key)[:4]`` as the signed-note format
defines; the signature covers the body text (the three lines, each ending in a newline).
"""

from __future__ import annotations

import base64

from .auditor import Checkpoint, NoteError, note_key_hash, open_checkpoint
from .keys import SigningKey

__all__ = ["Checkpoint", "NoteError", "body_text", "note_key_hash", "open_checkpoint", "sign_checkpoint"]

_DASH = "\u2014"


def body_text(origin: str, size: int, root: bytes) -> str:
    """The three body lines of a checkpoint."""
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def sign_checkpoint(origin: str, size: int, root: bytes, key: SigningKey) -> str:
    """A signed note for (origin, size, root), signed by the log key under the origin's name."""
    body = body_text(origin, size, root)
    signature = key.private.sign(body.encode())
    blob = base64.b64encode(note_key_hash(origin, key.public) + signature).decode()
    return f"{body}\n{_DASH} {origin} {blob}\n"
