"""The decision: whether a control applies to a system, and the sentence that says why."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Literal

Status = Literal["applicable", "not_yet_applicable", "not_applicable", "undetermined"]


@dataclass(frozen=True)
class Applicability:
    """Whether a control applies to a system at a time, with the sentence an auditor reads.

    Attributes:
        status: ``applicable``, ``not_yet_applicable`` (it will, from `applies_from`), ``not_applicable``
            or ``undetermined`` (nothing recorded decides it: never silently applicable).
        reason: why, citing the legal basis or the recorded justification.
        applies_from: the date from which it applies, where a date decides.
        source: the legal source of that date, or the document that decided (``SoA v3 (seq 41)``).
    """

    status: Status
    reason: str
    applies_from: datetime.date | None = None
    source: str = ""
