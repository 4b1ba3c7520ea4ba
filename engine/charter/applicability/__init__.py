"""Which controls apply to which system, when, and why: the one decision reports, the CLI and the API use.

EU AI Act articles apply by the system's classification (`charter.registry.EUClassification`), the
article's ``obligation:`` block in the catalog and the application dates; ISO/IEC 42001 Annex A by
the Statement of Applicability, and NIST AI RMF subcategories by the target profile, both versioned
YAML documents a policy approver activates in the ledger (``applicability.activated``).
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from ..errors import CharterError
from ..registry import AISystem
from .documents import (
    APPLICABILITY_FRAMEWORKS,
    ActiveDocument,
    ApplicabilityDocument,
    ApplicabilityStatements,
    Decision,
    activate_applicability,
    applicability_statement,
    applicability_statements,
    documented_applicability,
    load_applicability_file,
    parse_applicability_document,
    size_at,
    state_at,
)
from .eu import Obligation, eu_applicability, obligation_problems
from .model import Applicability, Status

if TYPE_CHECKING:
    from ..frameworks import Control, Framework

__all__ = ["APPLICABILITY_FRAMEWORKS", "ActiveDocument", "Applicability", "ApplicabilityDocument",
           "ApplicabilityStatements", "Decision", "Obligation", "Status", "activate_applicability",
           "applicability_statement", "applicability_statements", "control_applicability", "load_applicability_file",
           "obligation_problems", "parse_applicability_document", "size_at", "state_at"]


def control_applicability(framework: Framework, control_id: str, system: AISystem, at: datetime.datetime,
                          statements: ApplicabilityStatements) -> Applicability:
    """Whether `control_id` of `framework` applies to `system` at `at`, and why (never raises for a known control).

    Raises:
        CharterError: ``unknown_control`` when the framework has no such control.
    """
    control = framework.controls.get(control_id)
    if control is None:
        raise CharterError.single("unknown_control", f"control {control_id!r} does not exist in {framework.id}")
    day = (at.astimezone(datetime.UTC) if at.tzinfo else at).date()
    if framework.id == "eu-ai-act":
        decided = eu_applicability(framework, control, system, day)
    elif framework.id in APPLICABILITY_FRAMEWORKS:
        decided = documented_applicability(framework, control, system, statements)
    else:
        decided = Applicability("undetermined", f"Charter has no applicability rule for {framework.id}")
    if decided is None:
        decided = _aggregate(framework, control, system, at, statements)
    return decided


def _aggregate(framework: Framework, control: Control, system: AISystem, at: datetime.datetime,
               statements: ApplicabilityStatements) -> Applicability:
    """A chapter, objective, category or function applies where one of its parts does."""
    children = [c.id for c in framework.controls.values() if c.parent == control.id]
    if not children:
        return Applicability("undetermined", f"nothing in the catalog decides whether {control.id} applies to "
                             f"{system.id}")
    parts = {c: control_applicability(framework, c, system, at, statements) for c in children}
    by_status: dict[str, list[str]] = {}
    for child, result in parts.items():
        by_status.setdefault(result.status, []).append(child)
    for status in ("applicable", "not_yet_applicable", "undetermined"):
        if status in by_status:
            dates = [d for c in by_status[status] if (d := parts[c].applies_from) is not None]
            return Applicability(status, f"{status.replace('_', ' ')} to {system.id} through "
                                 f"{len(by_status[status])} of its {len(children)} parts: "
                                 f"{', '.join(by_status[status])}", min(dates) if dates else None)
    return Applicability("not_applicable", f"none of its {len(children)} parts applies to {system.id}")

