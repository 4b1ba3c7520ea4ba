"""Bounds on what Charter reads, apart from `_sources` (which imports yaml) so the CLI can set them at startup."""

from __future__ import annotations

from dataclasses import dataclass

#: Default cap on one input file (bundle, policy, registry, key, checkpoint note): 64 MiB. The CLI sets
#: it from ``CHARTER_MAX_INPUT_BYTES``; nothing Charter reads legitimately comes near it.
DEFAULT_MAX_INPUT_BYTES = 64 * 1024 * 1024


@dataclass
class InputLimits:
    """Bounds on what Charter reads from a file, so hostile input fails fast instead of exhausting memory."""

    max_bytes: int = DEFAULT_MAX_INPUT_BYTES


#: The limits in force; only the CLI changes them (from its environment).
LIMITS = InputLimits()
