"""Which controls apply to which system, when, and why: the one decision reports, the CLI and the API use.

EU AI Act articles apply by the system's classification (`charter.registry.EUClassification`), the
article's ``obligation:`` block in the catalog and the application dates; ISO/IEC 42001 Annex A by
the Statement of Applicability, and NIST AI RMF subcategories by the target profile, both versioned
YAML documents a policy approver activates in the ledger (``applicability.activated``).
"""

from __future__ import annotations

import dataclasses
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

__all__ = [
    "APPLICABILITY_FRAMEWORKS",
    "PLACEHOLDER_ID",
    "ActiveDocument",
    "Applicability",
    "ApplicabilityDocument",
    "ApplicabilityStatements",
    "Decision",
    "Obligation",
    "SharedApplicability",
    "Status",
    "activate_applicability",
    "applicability_statement",
    "applicability_statements",
    "control_applicability",
    "kind_applicability",
    "load_applicability_file",
    "obligation_problems",
    "parse_applicability_document",
    "size_at",
    "state_at",
]


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
    elif framework.applies_to_kinds is not None:
        decided = kind_applicability(framework, system)
    else:
        decided = Applicability("undetermined", f"Charter has no applicability rule for {framework.id}")
    if decided is None:
        decided = _aggregate(framework, control, system, at, statements)
    return decided


def kind_applicability(framework: Framework, system: AISystem) -> Applicability:
    """Whether a catalog about some kinds of AI (`Framework.applies_to_kinds`) applies to `system`.

    NIST AI 600-1 profiles generative AI: its risks apply to generative systems and to agents built on
    generative models, and to no classifier or forecaster, whatever the system's other classification.
    """
    kinds = framework.applies_to_kinds or ()
    source = f"{getattr(framework.info, 'source', framework.info.name)}; kinds in scope: {', '.join(kinds)}"
    if system.kind.value in kinds:
        return Applicability("applicable", f"{framework.info.name} applies to {system.kind.value} systems, and "
                             f"{system.id} is one", source=source)
    return Applicability("not_applicable", f"{framework.info.name} covers {' and '.join(kinds)} systems only; "
                         f"{system.id} is a {system.kind.value}", source=source)


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



#: the id a class's shared decision is computed for: no registered id can contain it (ids are
#: ``[a-z0-9._-]``), so substituting the real id back replaces exactly what the decision said of the system
PLACEHOLDER_ID = "\x00system\x00"


class SharedApplicability:
    """`control_applicability` over a portfolio, decided once per classification class.

    What decides whether a control applies to a system is its EU AI Act classification and whether
    an applicability document (Statement of Applicability, target profile) names it; the system's id
    appears only in the reason's wording. Systems with identical classifications that the framework's
    document does not name therefore share one decision per control, computed for `PLACEHOLDER_ID` and worded for each
    system by putting its id in place of the placeholder. Systems a document names are decided one
    by one. The first system of each class is also decided directly and compared with the shared
    decision: on a difference the class is decided one by one from then on, and the difference is
    recorded in `divergences` (tests assert there is none).
    """

    def __init__(self, at: datetime.datetime, statements: ApplicabilityStatements) -> None:
        self.at = at
        self.statements = statements
        #: framework id -> systems its applicability document names (an inclusion limited to them): in that
        #: framework they are decided one by one
        self.named = {framework: frozenset(s for decision in active.document.decisions for s in decision.systems or ())
                      for framework, active in statements.documents.items()}
        #: (framework, control id, system) where the shared decision differed from the direct one
        self.divergences: list[tuple[str, str, str]] = []
        self._shared: dict[tuple[int, str, str], Applicability | None] = {}  # None: decided one by one
        self._frameworks: dict[int, Framework] = {}  # keeps the frameworks keyed by id() alive
        self._classes: dict[str, tuple[AISystem, str]] = {}

    def direct(self, framework: Framework, control_id: str, system: AISystem) -> Applicability:
        """The decision for `system` itself, shared with no other system."""
        return control_applicability(framework, control_id, system, self.at, self.statements)

    def decide(self, framework: Framework, control_id: str, system: AISystem) -> Applicability:
        """Whether `control_id` applies to `system`: the same decision as `direct`, shared within its class.

        Raises:
            CharterError: ``unknown_control`` when the framework has no such control.
        """
        if system.id in self.named.get(framework.id, ()):
            return self.direct(framework, control_id, system)
        key = (id(framework), control_id, self._class_of(system))
        if key not in self._shared:
            self._frameworks[id(framework)] = framework
            shared = self.direct(framework, control_id, system.model_copy(update={"id": PLACEHOLDER_ID}))
            decided, direct = _worded(shared, system.id), self.direct(framework, control_id, system)
            if decided != direct:
                self.divergences.append((framework.id, control_id, system.id))
            self._shared[key] = shared if decided == direct else None
            return direct
        known = self._shared[key]
        return self.direct(framework, control_id, system) if known is None else _worded(known, system.id)

    def _class_of(self, system: AISystem) -> str:
        known = self._classes.get(system.id)
        if known is None or known[0] is not system:
            classification = system.eu_ai_act
            # the kind decides catalogs scoped to kinds of AI (`kind_applicability`); the classification the rest
            known = self._classes[system.id] = (
                system, system.kind.value + ("" if classification is None else classification.model_dump_json()))
        return known[1]


def _worded(shared: Applicability, system_id: str) -> Applicability:
    """A class's decision as said of one system: the same object when its wording names no system."""
    if PLACEHOLDER_ID not in shared.reason and PLACEHOLDER_ID not in shared.source:
        return shared
    return dataclasses.replace(shared, reason=shared.reason.replace(PLACEHOLDER_ID, system_id),
                               source=shared.source.replace(PLACEHOLDER_ID, system_id))
