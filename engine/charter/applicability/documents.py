"""Statements of Applicability (ISO/IEC 42001) and target profiles (NIST AI RMF): versioned documents a
policy approver puts in force in the ledger (``applicability.activated``), and the decisions they make."""

from __future__ import annotations

import datetime
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .._sources import SourceMap, load_yaml_file
from ..bundle import Identifier
from ..errors import CharterError, Diagnostic, DiagnosticCollector
from ..ledger.auditor import APPLICABILITY_ACTIVATED, SYSTEM_REGISTERED, document_digest
from ..registry import AISystem
from ..validation import collect_validation_errors
from .model import Applicability

if TYPE_CHECKING:
    from ..authority import Signer
    from ..frameworks import Control, Framework, FrameworkSet
    from ..ledger.records import Entry, LedgerReader
    from ..ledger.store import Ledger


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


#: frameworks decided by a document, the kind of control the document decides, and what it is called
APPLICABILITY_FRAMEWORKS: dict[str, tuple[str, str]] = {
    "iso-42001": ("annex_a_control", "Statement of Applicability"),
    "nist-ai-rmf": ("subcategory", "target profile"),
}


class Decision(_Strict):
    """One control of the document: included or excluded, why, and optionally for which systems only."""

    id: str = Field(min_length=1, max_length=64)
    included: bool
    justification: str = Field(min_length=1, max_length=4000)
    systems: tuple[Identifier, ...] | None = Field(default=None, description="Included only for these systems.")

    @field_validator("justification")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a decision needs its justification, not blank text")
        return value


class ApplicabilityDocument(_Strict):
    """A Statement of Applicability (ISO/IEC 42001 6.1.3 d) or a NIST AI RMF target profile."""

    framework: Literal["iso-42001", "nist-ai-rmf"]
    version: str = Field(min_length=1, max_length=64)
    scope: str = Field(min_length=1, max_length=4000)
    decisions: tuple[Decision, ...] = Field(min_length=1, max_length=5000)

    def label(self, seq: int | None = None) -> str:
        """How reasons cite it: ``SoA v3 (seq 41)``."""
        name = "SoA" if self.framework == "iso-42001" else "target profile"
        return f"{name} v{self.version}" + (f" (seq {seq})" if seq is not None else "")


def parse_applicability_document(data: Any, smap: SourceMap, frameworks: FrameworkSet) -> ApplicabilityDocument:
    """Validate a Statement of Applicability or target profile against its schema and catalog.

    Every control of the decided kind (ISO Annex A controls, NIST subcategories) must be decided
    exactly once; unknown ids, other kinds (ISO clauses always apply) and duplicates are refused.

    Raises:
        CharterError: all problems, located by line.
    """
    try:
        document = ApplicabilityDocument.model_validate(data)
    except ValidationError as exc:
        raise CharterError(collect_validation_errors(exc, smap, code="applicability_schema")) from exc
    framework = frameworks.get(document.framework)
    if framework is None:
        raise CharterError([Diagnostic("unknown_framework", f"framework {document.framework!r} is not loaded",
                                       smap.location(("framework",)))])
    kind, name = APPLICABILITY_FRAMEWORKS[document.framework]
    decidable = [c.id for c in framework.controls.values() if c.kind == kind]
    problems = DiagnosticCollector()
    seen: dict[str, int] = {}
    for index, decision in enumerate(document.decisions):
        where = smap.location(("decisions", index, "id"))
        control = framework.controls.get(decision.id)
        if control is None:
            close = difflib.get_close_matches(decision.id, decidable, n=1)
            problems.add("unknown_control", f"control {decision.id!r} does not exist in {document.framework}"
                         + (f" (did you mean {close[0]}?)" if close else ""), where)
        elif control.kind != kind:
            problems.add("not_decidable", f"{decision.id} is a {control.kind}, not a{'n' if kind[0] in 'aeiou' else ''}"
                         f" {kind}: a {name} decides only those", where)
        if decision.id in seen:
            problems.add("duplicate_decision", f"{decision.id} is decided twice (first at decision "
                         f"{seen[decision.id]})", where)
        seen.setdefault(decision.id, index)
        if decision.systems is not None and not decision.included:
            problems.add("applicability_schema", f"{decision.id}: systems limit an inclusion; an exclusion applies "
                         "to every system", smap.location(("decisions", index, "systems")))
    missing = [c for c in decidable if c not in seen]
    if missing:
        problems.add("undecided_control", f"{len(missing)} of {len(decidable)} controls of kind {kind} are not "
                     f"decided: {', '.join(missing)}", smap.location(("decisions",)))
    problems.raise_if_any()
    return document


def load_applicability_file(path: Path, frameworks: FrameworkSet) -> ApplicabilityDocument:
    """Read and validate a Statement of Applicability or target profile (YAML); see `parse_applicability_document`."""
    data, smap = load_yaml_file(path)
    return parse_applicability_document(data, smap, frameworks)


@dataclass(frozen=True)
class ActiveDocument:
    """An applicability document in force, and the seq that activated it."""

    document: ApplicabilityDocument
    seq: int

    @property
    def label(self) -> str:
        """``SoA v3 (seq 41)``."""
        return self.document.label(self.seq)

    def decision(self, control_id: str) -> Decision | None:
        """The document's decision on `control_id`, if it makes one."""
        return next((d for d in self.document.decisions if d.id == control_id), None)


@dataclass(frozen=True)
class ApplicabilityStatements:
    """The applicability documents in force, by framework id."""

    documents: Mapping[str, ActiveDocument] = field(default_factory=dict)


def applicability_statement(document: dict[str, Any], supersedes: int | None) -> dict[str, Any]:
    """What an approver signs to put an applicability document in force: its framework, the normalized
    document, its digest, and the seq of the document of that framework it replaces."""
    return {"framework": document["framework"], "digest": document_digest(document), "document": document,
            "supersedes": supersedes}


def applicability_statements(ledger: LedgerReader, size: int | None = None) -> ApplicabilityStatements:
    """The Statement of Applicability and target profile in force in the first `size` entries (default: all)."""
    latest: dict[str, Entry] = {}
    for entry in ledger.entries(0, size, types=(APPLICABILITY_ACTIVATED,)):
        latest[str(entry.payload["framework"])] = entry
    return ApplicabilityStatements({framework: ActiveDocument(ApplicabilityDocument.model_validate(
        entry.payload["document"]), entry.seq) for framework, entry in latest.items()})


def size_at(ledger: LedgerReader, at: datetime.datetime) -> int | None:
    """The number of entries the ledger held at `at` (None: all of them).

    Entries are received in seq order, so the first entry received after `at` bounds what stood then.
    """
    from ..ledger.store import Ledger

    if isinstance(ledger, Ledger):  # one indexed query instead of reading the registrations
        size = ledger.size_at(at)
        return None if size == ledger.size() else size
    for entry in ledger.entries(0, None, types=(SYSTEM_REGISTERED, APPLICABILITY_ACTIVATED)):
        if datetime.datetime.fromisoformat(entry.received_at) > at:
            return entry.seq
    return None


def state_at(ledger: LedgerReader, at: datetime.datetime) -> tuple[dict[str, AISystem], ApplicabilityStatements]:
    """The registry (with each system's classification) and the applicability documents as they stood at `at`."""
    from ..submission import systems_in_ledger

    size = size_at(ledger, at)
    return systems_in_ledger(ledger, size), applicability_statements(ledger, size)


def activate_applicability(ledger: Ledger, document: ApplicabilityDocument, approver: Signer) -> Entry | None:
    """Put a Statement of Applicability or target profile in force, as a policy approver; None if it already is.

    Systems an inclusion is limited to must be registered in the ledger.

    Raises:
        CharterError: an unregistered system, or an actor who may not activate it.
    """
    from ..authority import signed_entry
    from ..submission import systems_in_ledger

    normal = document.model_dump(mode="json")
    digest = document_digest(normal)

    def build(next_seq: int) -> list[Any]:
        registered = systems_in_ledger(ledger, next_seq)
        unknown = sorted({s for d in document.decisions for s in d.systems or () if s not in registered})
        if unknown:
            raise CharterError.single("unknown_system", f"the {document.label()} limits controls to systems the "
                                      f"ledger does not hold: {', '.join(unknown)}")
        in_force = ledger.authority(next_seq).applicability_seqs.get(document.framework)
        current = ledger.entry(in_force) if in_force is not None else None
        if current is not None and current.payload["digest"] == digest:
            return []
        return [signed_entry(ledger, APPLICABILITY_ACTIVATED, applicability_statement(normal, in_force), approver,
                             subject=document.framework, size=next_seq)]
    appended = ledger.append(build)
    return appended[0] if appended else None



def documented_applicability(framework: Framework, control: Control, system: AISystem,
                statements: ApplicabilityStatements) -> Applicability | None:
    kind, name = APPLICABILITY_FRAMEWORKS[framework.id]
    if framework.id == "iso-42001" and control.kind == "clause":
        return Applicability("applicable", f"clause {control.id} is a requirement of the AI management system: "
                             "ISO/IEC 42001 allows no exclusion from clauses 4 to 10",
                             source="ISO/IEC 42001 clauses 4-10")
    if control.kind != kind:
        return None
    active = statements.documents.get(framework.id)
    if active is None:
        return Applicability("undetermined", f"no {name} is in force for {framework.id} in the ledger: "
                             f"{control.id} is undetermined until a policy approver activates one (`charter "
                             "applicability activate`)")
    decision = active.decision(control.id)
    if decision is None:
        return Applicability("undetermined", f"the {active.label} does not decide {control.id}", source=active.label)
    if not decision.included:
        return Applicability("not_applicable", f"excluded by the {active.label}: {decision.justification}",
                             source=active.label)
    if decision.systems is not None and system.id not in decision.systems:
        # an inclusion limited to named systems says nothing about the others (one registered later, say):
        # their exclusion needs a justification of its own, so they are presumed in scope until decided
        return Applicability("undetermined", f"the {active.label} includes {control.id} for "
                             f"{', '.join(decision.systems)} and does not decide it for {system.id}",
                             source=active.label)
    return Applicability("applicable", f"included by the {active.label}: {decision.justification}",
                         source=active.label)
