"""What an audit-readiness report says: per control and system, whether it applies, what evidences it, its status.

A report describes exactly one ledger state: the ledger is verified and a checkpoint signed first, and
everything here is read from the entries the ledger held at the report's time (`--at`), which is a
prefix of that checkpoint. `PortfolioSnapshot` reads that prefix once (systems, findings, bundles,
incidents, waivers) so that the three frameworks' reports share one pass over the ledger;
`build_report` turns it into a `ReportDocument` for one framework.

For each (control, system) the report decides, in this order (see `STATUS_DEFINITIONS`):
applicability (EU AI Act classification and dates, ISO/IEC 42001 Statement of Applicability, NIST AI
RMF target profile), then a status: ``not_applicable``, ``nonconformity``, ``operating``,
``implemented``, ``designed`` or ``no_evidence``. Per framework it shows separate figures, never one
blended score: documentary completeness, KPI health (`KPI_HEALTH_FORMULA`) and open nonconformities.
Every pair cites the ledger entries behind it (seq and record hash) with an inclusion proof against
the report's checkpoint.
"""

from __future__ import annotations

import datetime
import hashlib
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ..errors import CharterError
from ..escalation import EscalationGraph
from ..evaluate import Status
from ..frameworks import Framework, FrameworkSet, parse_control_ref
from ..incidents import INCIDENT_TYPES, WAIVER, Incident, IncidentBook, State, Waiver, apply, metrics
from ..ledger.auditor import SYSTEM_REGISTERED
from ..ledger.records import format_time
from ..ledger.store import Ledger
from ..policy.compiler import CompiledPolicy, CompiledRule
from ..policy.model import Scope
from ..registry import AISystem, SystemStatus
from ..submission import BUNDLE, EVALUATION, FINDING

SCHEMA_VERSION = 4
#: evidence older than this is stale when the policy states no max_age
DEFAULT_MAX_AGE = datetime.timedelta(days=90)
POINTS = {"pass": 1.0, "warn": 0.75, "breach_governed": 0.5, "breach_open": 0.25, "missing": 0.0, "error": 0.0,
          "stale": 0.0, "no_evidence": 0.0}
KPI_HEALTH_FORMULA = (
    "KPI health is a monitoring figure, not a measure of conformity. Each (rule, system) pair whose rule is "
    "mapped as primary evidence to a control of this framework that applies to the system earns points from its "
    "latest evidence: pass 1, warn 0.75, breach whose risk is accepted by an unexpired waiver or whose incident "
    "has a decision 0.5, breach still under investigation 0.25, missing, error, stale (older than the policy's "
    "max_age, else 90 days) or no evidence 0; for a segment rule the worst segment of the latest window speaks, "
    "and a breach is governed only when every breached segment is. KPI health = mean points over those pairs. "
    "Supporting mappings do not count. No figure is averaged across frameworks."
)
CONTROL_STATUSES = ("not_applicable", "nonconformity", "operating", "implemented", "designed", "no_evidence")
STATUS_DEFINITIONS = {
    "not_applicable": "the control does not apply to the system: EU AI Act role, classification or application "
                      "date; excluded by the ISO/IEC 42001 Statement of Applicability; outside the NIST AI RMF "
                      "target profile; a kind of AI a profile does not cover (NIST AI 600-1: generative systems and "
                      "agents only). The reason is shown and the pair leaves every figure.",
    "nonconformity": "the latest finding of a primary KPI rule of the control is a breach that is not governed: its "
                     "incident has no decision yet, or the waiver that accepted it has expired; or a current result "
                     "of a test of the control (per test name, for the system) failed and no later result of that "
                     "test passed. Stale evidence does not close a breach: it stays open until it is decided or a "
                     "later finding passes; a failed test stays open until a later result of that test passes (an "
                     "inconclusive one does not clear it, nor does a pass the system's owner recorded over a "
                     "failure someone else recorded), or until it expires.",
    "operating": "every primary KPI rule of the control that applies to the system passes (or warns) on current "
                 "evidence judged under the policy version in force; or the control is implemented (as below) and "
                 "a current passing test result (the latest of its name) or a current event shows it operating. A "
                 "supporting mapping never makes a control operating. An organisation-level control (scope: "
                 "organisation in the catalog: ISO/IEC 42001 clauses 4-10 and the Annex A controls of the management "
                 "system) must be implemented first: passing KPIs then show it operating, but alone they show how a "
                 "system performs, not that the management system is in place.",
    "implemented": "a current document describes the control and a current signed attestation by someone other "
                   "than who recorded that document states it is in place (separation of duties).",
    "designed": "a current document describes the control, but no current attestation states it is in place, or "
                "only the person who recorded the document attests it.",
    "no_evidence": "none of the above: no current document, attestation or passing primary KPI evidence. Expired "
                   "attestations, test results and events, documents past their review date and stale KPI evidence "
                   "count as missing.",
}
APPLICABILITY_NOTE = (
    "Applicability comes first. EU AI Act: the system's recorded role(s) and classification and the application "
    "date as amended by Regulation (EU) 2026/1744 (an obligation not yet applicable is not applicable until its "
    "date). ISO/IEC 42001: clauses 4-10 always apply; Annex A controls per the Statement of Applicability in "
    "force. NIST AI RMF: the target profile in force. NIST AI 600-1: the system's kind (generative systems and "
    "agents built on generative models). Where applicability cannot be decided (no classification, "
    "a control the statement does not decide), the control is presumed to apply and the reason is shown."
)

ControlStatusName = Literal["not_applicable", "nonconformity", "operating", "implemented", "designed", "no_evidence"]
ApplicabilityStatus = Literal["applicable", "not_yet_applicable", "not_applicable", "undetermined"]


class ApplicabilityDecision(Protocol):
    """What `charter.applicability.control_applicability` returns (the fields a report reads)."""

    @property
    def status(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def applies_from(self) -> datetime.date | None: ...
    @property
    def source(self) -> str: ...


class EvidenceRecord(Protocol):
    """A recorded document, attestation, test result or event (`charter.evidence.EvidenceItem`), as a report
    reads it."""

    @property
    def kind(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def record_hash(self) -> str: ...
    @property
    def actor(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def valid_from(self) -> str: ...
    @property
    def valid_until(self) -> str | None: ...
    @property
    def outcome(self) -> str | None: ...
    @property
    def method(self) -> str | None: ...
    @property
    def event_kind(self) -> str | None: ...

    def status_at(self, at: datetime.datetime) -> str: ...


@dataclass(frozen=True)
class ReportContext:
    """What besides KPI findings a report judges by, read from the same ledger prefix.

    `applicability(framework, control_id, system)` decides whether a control applies at the report's
    time; `evidence(control_ref, system_id)` lists the documents and attestations citing a control for
    a system (organisation-wide ones included).
    """

    applicability: Callable[[Framework, str, AISystem], ApplicabilityDecision]
    evidence: Callable[[str, str], Sequence[EvidenceRecord]]
    #: framework -> the label of the applicability statement in force (a decision whose source it is
    #: rests on that statement's activation entry)
    statement_labels: dict[str, str] = field(default_factory=dict)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


_M = TypeVar("_M", bound=_Model)
_set = object.__setattr__


def _trusted(cls: type[_M], **values: Any) -> _M:
    """An instance of `cls` from values that are already what its fields hold: every field, nothing else.

    For the hundreds of thousands of rows a large report makes out of models and strings it made
    itself: validating them again costs more than the rest of the row, and `model_construct` (pure
    Python, alias and default handling) more still. This sets exactly what `model_construct` sets
    for a model with no aliases, defaults left out, extra fields, private attributes or post-init
    (`test_trusted_rows_equal_validated_ones` checks the models it is used for and that the values
    are exactly their fields).
    """
    model = cls.__new__(cls)
    _set(model, "__dict__", values)
    _set(model, "__pydantic_fields_set__", set(values))
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


class Citation(_Model):
    """A ledger entry a report relies on; `proofs` holds its inclusion proof against the report's checkpoint.

    Every object of a report with a ``seq`` and a ``record_hash`` is such a citation (findings, bundles,
    documents, attestations, the decisions and waivers that govern a breach, incident openings, Art. 73
    classifications and filings, system classifications, and the activations the report judged by):
    `ReportDocument.cited` lists them all and `charter report verify` checks each has its proof.
    """

    seq: int
    record_hash: str = Field(description="hex SHA-256 record hash of the entry")


class PairStatus(_Model):
    """The latest evidence of one rule for one system, with the ledger entries behind it."""

    system: str
    rule: str
    severity: str
    status: str = Field(description="pass, warn, breach, missing, error, or no_evidence")
    segment: str | None = Field(default=None, description="for a segment rule, the segment whose finding "
                                "speaks for the rule (the worst one)")
    window_end: str | None = None
    age_days: float | None = None
    fresh: bool
    points: float
    note: str
    governed: bool | None = Field(default=None, description="for a breach: whether a decision or an unexpired "
                                  "waiver governs it")
    governed_by: list[Citation] = Field(default_factory=list, description="for a governed breach: the decision "
                                        "(incident.transition) or waiver (waiver.granted) entries that govern it, one "
                                        "per breached segment")
    finding: Citation | None = Field(default=None, description="the finding entry that speaks for the pair")
    bundle: Citation | None = Field(default=None, description="the evidence bundle that finding judged")
    evaluated_at: str | None = None
    observed: dict[str, float | str | None] = Field(default_factory=dict)
    thresholds: dict[str, float] = Field(default_factory=dict)
    explanation: str = ""


class ApplicabilityRef(_Model):
    """Whether a control applies to a system, and why."""

    status: ApplicabilityStatus
    reason: str
    applies_from: str | None = None
    source: str = ""
    basis: Citation | None = Field(default=None, description="the entry the decision rests on: for the EU AI Act "
                                   "and NIST AI 600-1, the system's registration recording the classification "
                                   "(or the kind) in force; for ISO/IEC "
                                   "42001 and the NIST AI RMF, the activation of the Statement of Applicability or "
                                   "target profile that decides it")


class EvidenceRef(_Model):
    """A document, attestation, test result or event cited for a control and system, with its state at the
    report's time."""

    kind: str = Field(description="document, attestation, test_result or event")
    id: str
    title: str = Field(description="a document's name and version, an attestation's first line, a test's name, "
                                   "an event's title")
    actor: str
    state: str = Field(description="current, expired, past_review, withdrawn or not_yet_valid")
    valid_until: str | None
    seq: int
    record_hash: str
    valid_from: str | None = Field(default=None, description="when a test was performed or an event happened")
    outcome: str | None = Field(default=None, description="a test result's outcome: passed, failed or inconclusive")
    method: str | None = Field(default=None, description="a test result's method or tool")
    event_kind: str | None = Field(default=None, description="an event's kind (management_review, internal_audit, "
                                                              "training, ...)")


class ControlSystemStatus(_Model):
    """One (control, system) pair: applicability, status and the evidence behind it."""

    system: str
    applicability: ApplicabilityRef
    status: ControlStatusName
    reason: str
    primary_rules: list[str] = Field(description="primary KPI rules of the control that apply to the system")
    supporting_rules: list[str]
    evidence: list[EvidenceRef]


class ClassificationRef(Citation):
    """The Art. 3(49) triage of an incident in force (an ``incident.classified`` entry)."""

    serious: bool
    ground: str | None
    aware_at: str | None
    due_at: str | None
    by: str


class FilingRef(Citation):
    """A report filed with an authority under Art. 73 (an ``incident.report_filed`` entry)."""

    kind: str
    authority: str
    reference: str
    filed_at: str
    by: str


class IncidentRef(_Model):
    """An incident of a rule mapped to the control."""

    id: str
    system: str
    rule: str
    segment: str | None
    severity: str
    state: str
    opened_at: str
    escalated_to: list[str]
    opened: Citation = Field(description="the incident.opened entry")
    classification: ClassificationRef | None = Field(default=None, description="the Art. 73 triage in force, if any")
    filings: list[FilingRef] = Field(default_factory=list)


class DecisionRef(Citation):
    """A decision taken on such an incident (its ``incident.transition`` entry)."""

    incident: str
    system: str
    at: str
    by: str
    decisions: list[str]
    note: str
    proven_by: str = Field(description="how the decider proved it was them: key signature or step-up sign-in "
                           "(the ledger refuses a decision with neither)")


class WaiverRef(Citation):
    """An accepted risk on a mapped rule (its ``waiver.granted`` entry)."""

    id: str
    incident: str
    system: str
    rule: str
    owner: str
    granted_at: str
    expires_at: str
    active: bool


class ControlReport(_Model):
    """One assessed control across the systems in scope."""

    id: str
    ref: str
    title: str
    kind: str
    group: str
    group_title: str
    primary_rules: list[str]
    supporting_rules: list[str]
    counts: dict[str, int] = Field(description="systems per control status")
    systems: list[ControlSystemStatus]
    attention: list[PairStatus] = Field(description="primary pairs below full points: warn, breach, missing, error, "
                                        "stale, no evidence")
    open_incidents: list[IncidentRef]
    decisions: list[DecisionRef]
    waivers: list[WaiverRef]


class Figures(_Model):
    """Separate figures of one framework over its (control, system) pairs; no blended score."""

    pairs: int = Field(description="(control, system) pairs: assessed controls x systems in scope")
    not_applicable: int
    applicable: int = Field(description="pairs that apply, including those whose applicability is undetermined")
    undetermined: int = Field(description="applicable pairs whose applicability could not be decided")
    statuses: dict[str, int] = Field(description="pairs per control status")
    documented: int = Field(description="applicable pairs with a current document")
    documentary_completeness: float | None = Field(description="documented / applicable")
    attested: int = Field(description="applicable pairs with a current attestation")
    kpi_pairs: int = Field(description="(rule, system) pairs counted in KPI health")
    kpi_health: float | None
    open_nonconformities: int = Field(description="pairs in nonconformity")
    nonconformities_by_severity: dict[str, int] = Field(description="open nonconformity pairs by the severity of "
                                                        "the worst breached primary rule")
    decisions_by_proof: dict[str, int] = Field(description="decisions on incidents of this framework's rules, by "
                                               "how the decider proved it was them; none is merely asserted: the "
                                               "ledger refuses a decision without its decider's proof")


class SystemFigures(_Model):
    """The figures of one system in this framework."""

    statuses: dict[str, int]
    kpi_health: float | None


class Definitions(_Model):
    """How to read the statuses and figures (printed in every report)."""

    applicability: str = APPLICABILITY_NOTE
    statuses: dict[str, str] = Field(default_factory=lambda: dict(STATUS_DEFINITIONS))
    kpi_health: str = KPI_HEALTH_FORMULA


class StaleRule(_Model):
    """A rule that applies to a system but has no current evidence."""

    policy: str
    rule: str
    system: str
    status: str
    window_end: str | None


class UndeterminedRef(_Model):
    """A (control, system) pair whose applicability could not be decided."""

    control: str
    system: str
    reason: str


class Gaps(_Model):
    """What the governance set-up does not cover."""

    controls_without_evidence: list[str] = Field(description="applicable controls with no primary KPI rule and "
                                                 "no typed evidence (document, attestation, test result or event) "
                                                 "for any system in scope")
    undetermined_applicability: list[UndeterminedRef]
    rules_without_current_evidence: list[StaleRule]
    policies_without_current_evidence: list[str]


class Portfolio(_Model):
    """Operational-resilience KPIs of the systems in scope, computed by Charter itself."""

    systems: int
    monitored_systems: int
    monitoring_coverage: float | None
    mttd_median_h: float | None
    mttr_median_h: float | None
    human_override_rate: float | None
    open_incidents: int
    active_waivers: int


class TrendPoint(_Model):
    """One measured value, at the start of the window it was measured over."""

    window_start: str
    value: float


class Trend(_Model):
    """A KPI of one system over its bundles, with the bounds of the rule that watches it."""

    system: str
    kpi: str
    rule: str
    segment: str | None = Field(default=None, description="the segment plotted, for a segment rule")
    points: list[TrendPoint]
    thresholds: dict[str, float]
    worst: str


class LedgerBinding(_Model):
    """The signed ledger state the report is bound to, and the prefix of it the report describes."""

    origin: str
    checkpoint_size: int
    checkpoint_root: str
    checkpoint_note: str
    described_size: int = Field(description="entries the ledger held at the report's time (a prefix of the "
                                "checkpoint); later entries are not described")
    verified: bool
    verify_summary: str


class PolicyRef(_Model):
    """One policy the report judged the evidence against."""

    id: str
    version: str
    digest: str


class ReportInputs(_Model):
    """What the report judged by, all recorded in the ledger, pinned by digest and seq."""

    policies: list[PolicyRef]
    policy_set_digest: str = Field(description="SHA-256 over the sorted policy digests, one per line")
    policy_activation_seq: int | None = Field(default=None, description="the policy.activated entry in force")
    escalation_digest: str = Field(description="SHA-256 of the escalation configuration (RFC 8785 JSON)")
    escalation_seq: int | None = Field(default=None, description="the escalation.activated entry in force")
    applicability: dict[str, int] = Field(default_factory=dict, description="framework -> seq of the applicability "
                                          "statement in force (ISO SoA, NIST target profile)")
    policy_activation: Citation | None = Field(default=None, description="the policy.activated entry in force")
    escalation_activation: Citation | None = Field(default=None, description="the escalation.activated entry in "
                                                   "force")
    applicability_activations: dict[str, Citation] = Field(default_factory=dict, description="framework -> the "
                                                           "applicability.activated entry in force")


class InclusionProofRef(_Model):
    """An RFC 6962 audit path of one cited entry against the report's checkpoint."""

    seq: int
    record_hash: str
    path: list[str] = Field(description="hex hashes, nearest the leaf first")


class ReportDocument(_Model):
    """An audit-readiness report for one framework (the published JSON schema: ``charter schema report``)."""

    schema_version: int = SCHEMA_VERSION
    framework: str
    framework_name: str
    as_of: str
    system: str | None
    systems: list[str]
    not_in_scope: dict[str, str] = Field(description="registered systems left out because they are not "
                                         "active: id -> status")
    ledger: LedgerBinding
    inputs: ReportInputs
    definitions: Definitions
    figures: Figures
    system_figures: dict[str, SystemFigures]
    controls: list[ControlReport]
    pairs: list[PairStatus] = Field(description="every (rule, system) pair in scope, by system and rule")
    gaps: Gaps
    portfolio: Portfolio
    trends: list[Trend]
    escalation_mermaid: str
    proofs: list[InclusionProofRef] = Field(default_factory=list, description="an inclusion proof of every cited "
                                            "entry against the checkpoint, by seq")

    def cited(self) -> dict[int, str]:
        """Seq -> record hash of every ledger entry this report cites (each gets an inclusion proof)."""
        cited: dict[int, str] = {}

        def add(citation: Citation | EvidenceRef | None) -> None:
            if citation is not None:
                cited[citation.seq] = citation.record_hash

        inputs = self.inputs
        for citation in (inputs.policy_activation, inputs.escalation_activation,
                         *inputs.applicability_activations.values()):
            add(citation)
        for pair in self.pairs:
            add(pair.finding)
            add(pair.bundle)
            for governing in pair.governed_by:
                add(governing)
        seen: set[int] = set()  # rows share applicability and evidence objects: each is read once
        for control in self.controls:
            for row in control.systems:
                if id(row.applicability) not in seen:
                    seen.add(id(row.applicability))
                    add(row.applicability.basis)
                for item in row.evidence:
                    add(item)
            for incident in control.open_incidents:
                add(incident.opened)
                add(incident.classification)
                for filing in incident.filings:
                    add(filing)
            for decision in control.decisions:
                add(decision)
            for waiver in control.waivers:
                add(waiver)
        return dict(sorted(cited.items()))


# -- reading the ledger once ---------------------------------------------------------------------


#: how bad a finding status is (`Status.rank`), for picking the segment that speaks for a rule
_WORST_RANK = {status.value: status.rank for status in Status}


@dataclass
class _Latest:
    status: str
    window_end: str
    evaluated_at: str
    segment: str | None  # the worst segment, for segment rules
    finding: Citation
    bundle: Citation
    observed: dict[str, Any]
    thresholds: dict[str, float]
    explanation: str
    breached_segments: list[str | None] = field(default_factory=list)
    policy_digest: str = ""  # the policy version the finding was judged under


@dataclass
class PortfolioSnapshot:
    """Everything a report needs from the first `size` ledger entries, read in one pass."""

    size: int
    systems: dict[str, AISystem]
    latest: dict[tuple[str, str], _Latest] = field(default_factory=dict)  # (system, policy/rule) -> latest
    #: (system, kpi, segment or None) -> [(window start, value)], by time
    series: dict[tuple[str, str, str | None], list[tuple[str, float]]] = field(default_factory=dict)
    book: IncidentBook = field(default_factory=IncidentBook)
    newest_measured_at: datetime.datetime | None = None
    #: seq -> hex record hash of every incident entry (openings, transitions, waivers, Art. 73), to cite them
    incident_hashes: dict[int, str] = field(default_factory=dict)
    #: waiver id -> the seq of its waiver.granted entry
    waiver_seqs: dict[str, int] = field(default_factory=dict)
    #: system id -> its registration in force (which records its EU AI Act classification)
    registrations: dict[str, Citation] = field(default_factory=dict)
    _governance: tuple[dict[tuple[str, str, str | None], list[Waiver]],
                       dict[tuple[str, str, str | None], Incident]] | None = None
    _assessed: dict[Any, list[PairStatus]] = field(default_factory=dict)

    @classmethod
    def load(cls, ledger: Ledger, size: int) -> PortfolioSnapshot:
        """Read systems, KPI series, each system's current findings and the incidents below `size`.

        A system's current findings are those of its most recent bundle (latest window end): the
        evidence a control rests on today. They are read by exact submission id (the bundle's
        evaluation states how many findings it made), so a report touches the bundles, the incident
        entries and one evaluation per system, not every finding ever made.
        """
        snapshot = cls(size, {})
        for entry in ledger.entries(0, size, types=(SYSTEM_REGISTERED,)):  # as `systems_in_ledger`, with the seqs
            system = AISystem.model_validate(entry.payload["system"])
            snapshot.systems[system.id] = system
            snapshot.registrations[system.id] = Citation(seq=entry.seq, record_hash=entry.record_hash.hex())
        # system -> (window end, seq, submission, record hash)
        latest_bundle: dict[str, tuple[datetime.datetime, int, str, bytes]] = {}
        for entry in ledger.entries(0, size, types=(BUNDLE,)):
            p = entry.payload
            system_id = p["system_id"]
            start = format_time(_time(p["window_start"]))
            for kpi, value in p.get("kpis", {}).items():
                if isinstance(value, int | float):
                    snapshot.series.setdefault((system_id, kpi, None), []).append((start, float(value)))
            for segment, values in (p.get("segments") or {}).items():
                for kpi, value in values.items():
                    if isinstance(value, int | float):
                        snapshot.series.setdefault((system_id, kpi, segment), []).append((start, float(value)))
            measured = _time(p["measured_at"])
            if snapshot.newest_measured_at is None or measured > snapshot.newest_measured_at:
                snapshot.newest_measured_at = measured
            candidate = (_time(p["window_end"]), entry.seq, entry.submission_id, entry.record_hash)
            if system_id not in latest_bundle or candidate[:3] > latest_bundle[system_id][:3]:
                latest_bundle[system_id] = candidate
        bundles = {submission: Citation(seq=seq, record_hash=record_hash.hex())
                   for _, seq, submission, record_hash in latest_bundle.values()}
        evaluations = sorted(f"{EVALUATION}:{submission}" for submission in bundles)
        finding_ids = [f"{FINDING}:{entry.submission_id.split(':', 1)[1]}:{index}"
                       for entry in ledger.by_submissions(evaluations, size)
                       for index in range(int(entry.payload["findings"]))]
        for entry in ledger.by_submissions(finding_ids, size):
            p = entry.payload
            key = (p["system_id"], f"{p['policy']}/{p['rule']}")
            current = snapshot.latest.get(key)
            bundle = bundles[entry.submission_id.split(":", 1)[1].rsplit(":", 1)[0]]
            finding = Citation(seq=entry.seq, record_hash=entry.record_hash.hex())
            if current is None or _WORST_RANK[p["status"]] > _WORST_RANK[current.status]:
                breached = current.breached_segments if current is not None else []
                current = snapshot.latest[key] = _Latest(
                    p["status"], p["window_end"], p["evaluated_at"], p.get("segment"), finding, bundle,
                    dict(p.get("observed") or {}), dict(p.get("thresholds") or {}), p.get("explanation", ""),
                    breached, str(p.get("policy_digest", "")))
            if p["status"] == "breach":
                current.breached_segments.append(p.get("segment"))
        for entry in ledger.entries(0, size, types=INCIDENT_TYPES):
            apply(snapshot.book, entry)
            snapshot.incident_hashes[entry.seq] = entry.record_hash.hex()
            if entry.type == WAIVER:
                snapshot.waiver_seqs[str(entry.payload["waiver_id"])] = entry.seq
        for points in snapshot.series.values():
            points.sort()
        return snapshot

    def check_as_of(self, as_of: datetime.datetime) -> None:
        """Refuse a report time before the newest evidence the ledger held then (a bundle measured later).

        Raises:
            CharterError: `as_of` is earlier than the newest bundle's measured_at.
        """
        if self.newest_measured_at is not None and as_of < self.newest_measured_at:
            raise CharterError.single("report_time", f"the report time {format_time(as_of)} is before the newest "
                                      f"evidence the ledger held then (measured at "
                                      f"{format_time(self.newest_measured_at)}); a report cannot cite a "
                                      "measurement not yet made")

    def governance_index(self) -> tuple[dict[tuple[str, str, str | None], list[Waiver]],
                                        dict[tuple[str, str, str | None], Incident]]:
        """Waivers by dedup key (system, rule, segment), and each key's most recently opened incident."""
        if self._governance is None:
            waivers: dict[tuple[str, str, str | None], list[Waiver]] = defaultdict(list)
            latest: dict[tuple[str, str, str | None], Incident] = {}
            for waiver in self.book.waivers:
                waivers[(waiver.system_id, waiver.rule, waiver.segment)].append(waiver)
            for incident in self.book.incidents.values():
                known = latest.get(incident.key)
                if known is None or (_time(incident.opened_at), incident.id) > (_time(known.opened_at), known.id):
                    latest[incident.key] = incident
            self._governance = (waivers, latest)
        return self._governance

    def assess(self, policies: Sequence[CompiledPolicy], systems: Sequence[AISystem],
               as_of: datetime.datetime) -> list[PairStatus]:
        """The status of every (rule, system) pair, computed once per scope and shared by the frameworks."""
        key = (tuple(p.digest for p in policies), tuple(s.id for s in systems), as_of)
        if key not in self._assessed:
            self._assessed[key] = [_pair_status(pair, self, as_of) for pair in _pairs(policies, systems)]
        return self._assessed[key]


# -- building a report ---------------------------------------------------------------------------


def _time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class _Pair:
    system: AISystem
    policy: CompiledPolicy
    rule: CompiledRule


def _pairs(policies: Sequence[CompiledPolicy], systems: Iterable[AISystem]) -> list[_Pair]:
    return [_Pair(system, policy, rule) for system in systems for policy in policies
            if policy.policy.applies_to.matches(system) for rule in policy.rules]


def rule_controls(policies: Sequence[CompiledPolicy]) -> tuple[dict[tuple[str, str], list[str]],
                                                              dict[tuple[str, str], list[str]]]:
    """(framework, control id) -> qualified rule ids citing it, primary and supporting (a paragraph cites its article).

    A control a rule cites both ways counts as primary.
    """
    primary: dict[tuple[str, str], list[str]] = defaultdict(list)
    supporting: dict[tuple[str, str], list[str]] = defaultdict(list)
    for policy in policies:
        for rule in policy.rules:
            for mapping, texts in ((primary, rule.rule.controls),
                                   (supporting, rule.rule.supporting_controls)):
                for text in texts:
                    ref = parse_control_ref(text)
                    if ref is not None and rule.ref not in mapping[(ref.framework, ref.control)]:
                        mapping[(ref.framework, ref.control)].append(rule.ref)
    for key, rules in supporting.items():
        supporting[key] = [rule for rule in rules if rule not in primary.get(key, ())]
    return primary, supporting


def _incident_citation(snapshot: PortfolioSnapshot, seq: int) -> Citation:
    """The citation of an incident entry (opening, transition, waiver, Art. 73 entry) the snapshot read."""
    return Citation(seq=seq, record_hash=snapshot.incident_hashes[seq])


def _last_decision(incident: Incident) -> dict[str, Any] | None:
    """The timeline event of the incident's latest decision (its ``decide`` transition), or None."""
    return next((event for event in reversed(incident.timeline) if event["event"] == "decide"), None)


def _governed(snapshot: PortfolioSnapshot, key: tuple[str, str, str | None],
              at: datetime.datetime) -> tuple[str, Citation | None] | None:
    """Why the breach of one (system, rule, segment) counts as governed, and the entry that governs it; or None.

    Governed means a waiver granted by `at` and not yet expired accepts the risk, or the key's most
    recent incident (the one the breach attaches to) carries a decision that still holds: a decision
    to accept a risk whose waiver has lapsed no longer does. The entry is the waiver.granted or the
    deciding incident.transition.
    """
    waivers, incidents = snapshot.governance_index()
    for waiver in waivers.get(key, ()):
        if _waiver_active(waiver, at):  # the index already matched the key
            seq = snapshot.waiver_seqs.get(waiver.id)
            return (f"risk accepted until {waiver.expires_at} ({waiver.id})",
                    None if seq is None else _incident_citation(snapshot, seq))
    incident = incidents.get(key)
    if incident is None or incident.state not in (State.DECIDED, State.RESOLVED, State.CLOSED):
        return None
    decision = incident.current_decision or incident.decisions
    if set(decision) <= {"accept_risk"}:
        return None  # the accepted risk's waiver was checked above: it has lapsed or is not yet granted
    event = _last_decision(incident)
    cited = None if event is None else _incident_citation(snapshot, int(event["seq"]))
    where = f" at seq {cited.seq}" if cited is not None else ""
    return f"{incident.id} decided{where}: {', '.join(decision)}", cited


def _ungoverned(snapshot: PortfolioSnapshot, key: tuple[str, str, str | None], at: datetime.datetime) -> str:
    """Why a breach of `key` is not governed: an expired waiver, an undecided incident, or no incident."""
    waivers, incidents = snapshot.governance_index()
    lapsed = [w for w in waivers.get(key, ()) if _time(w.expires_at) <= at]
    if lapsed:
        waiver = max(lapsed, key=lambda w: w.expires_at)
        return f"the waiver {waiver.id} that accepted the risk expired at {waiver.expires_at}"
    incident = incidents.get(key)
    if incident is None:
        return "breach with no incident"
    return f"breach under investigation ({incident.id}, {incident.state.value})"


def _pair_status(pair: _Pair, snapshot: PortfolioSnapshot, as_of: datetime.datetime) -> PairStatus:
    latest = snapshot.latest.get((pair.system.id, pair.rule.ref))
    system, rule, severity = pair.system.id, pair.rule.ref, pair.rule.rule.severity.value
    if latest is None:
        return PairStatus(system=system, rule=rule, severity=severity, status="no_evidence", fresh=False, points=0.0,
                          note="no finding recorded")
    segment = latest.segment if pair.rule.rule.scope is Scope.SEGMENTS else None
    max_age = pair.rule.rule.max_age or pair.policy.policy.max_age or DEFAULT_MAX_AGE
    age = as_of - _time(latest.window_end)
    # a finding judged under another version of the policy is no evidence for the version in force
    superseded = bool(latest.policy_digest) and latest.policy_digest != pair.policy.digest
    fresh = age <= max_age and not superseded
    status, note, governed = latest.status, "", None
    governed_by: list[Citation] = []
    if status == "breach":
        # governed or not whatever its age: an undecided breach stays open when evidence stops coming
        keys = [(system, rule, s) for s in dict.fromkeys(latest.breached_segments)]
        reasons = [_governed(snapshot, key, as_of) for key in keys]
        governed = all(reasons)
        if governed:
            note = "; ".join(r[0] for r in reasons if r)
            governed_by = list({c.seq: c for r in reasons if r and (c := r[1]) is not None}.values())
        else:
            note = "; ".join(_ungoverned(snapshot, key, as_of) for key, reason in zip(keys, reasons, strict=True)
                             if not reason)
    if superseded:
        points = POINTS["stale"]
        note = "; ".join(filter(None, [f"judged under another version of {pair.policy.policy.id} "
                                       f"({latest.policy_digest[:12]}), not the one in force", note]))
    elif not fresh:
        points = POINTS["stale"]
        note = "; ".join(filter(None, [f"stale: the latest window ended {age.days} days ago", note]))
    elif status == "breach":
        points = POINTS["breach_governed"] if governed else POINTS["breach_open"]
    else:
        points = POINTS[status]
    return PairStatus(system=system, rule=rule, severity=severity, status=status, segment=segment,
                      window_end=latest.window_end, age_days=round(age.total_seconds() / 86400, 1), fresh=fresh,
                      points=points, note=note, governed=governed, governed_by=governed_by, finding=latest.finding,
                      bundle=latest.bundle,
                      evaluated_at=latest.evaluated_at, observed=latest.observed, thresholds=latest.thresholds,
                      explanation=latest.explanation)


def _mean(values: Sequence[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def _applicability_ref(decision: ApplicabilityDecision, basis: Citation | None = None) -> ApplicabilityRef:
    since = decision.applies_from.isoformat() if decision.applies_from is not None else None
    return ApplicabilityRef(status=decision.status,  # type: ignore[arg-type]
                            reason=decision.reason, applies_from=since, source=decision.source, basis=basis)


def _evidence_ref(item: EvidenceRecord, as_of: datetime.datetime) -> EvidenceRef:
    occurrence = item.kind in ("test_result", "event")
    return EvidenceRef(kind=item.kind, id=item.id, title=item.title, actor=item.actor, state=item.status_at(as_of),
                       valid_until=item.valid_until, seq=item.seq, record_hash=item.record_hash,
                       valid_from=item.valid_from if occurrence else None, outcome=item.outcome, method=item.method,
                       event_kind=item.event_kind)


class _SharedRows:
    """What (control, system) rows of one report share instead of recomputing it per row.

    Systems of one classification class get equal applicability decisions, organisation-wide documents
    are cited for every system, and most rows have the same inputs to their status (no finding, the
    same documents): each distinct value is made once and the same frozen object serves every row.
    """

    def __init__(self, as_of: datetime.datetime) -> None:
        self.as_of = as_of
        self._applicability: dict[tuple[Any, ...], ApplicabilityRef] = {}
        self._evidence: dict[int, tuple[EvidenceRecord, EvidenceRef]] = {}
        self._status: dict[tuple[Any, ...], tuple[ControlStatusName, str]] = {}

    def applicability(self, decision: ApplicabilityDecision, basis: Citation | None = None) -> ApplicabilityRef:
        key = (decision.status, decision.reason, decision.applies_from, decision.source,
               None if basis is None else basis.seq)
        known = self._applicability.get(key)
        if known is None:
            known = self._applicability[key] = _applicability_ref(decision, basis)
        return known

    def evidence(self, item: EvidenceRecord) -> EvidenceRef:
        known = self._evidence.get(id(item))
        if known is None or known[0] is not item:  # the item is kept alive here, so its id is not reused
            known = self._evidence[id(item)] = (item, _evidence_ref(item, self.as_of))
        return known[1]

    def status(self, applicability: ApplicabilityRef, primary: Sequence[PairStatus],
               evidence: Sequence[EvidenceRef], owner: str | None = None,
               organisation: bool = False) -> tuple[ControlStatusName, str]:
        """`control_status`, computed once per distinct input: everything of a pair it reads is in the key.

        `applicability` and `evidence` are references this object made: equal values are the same
        object (kept alive here), so their ids stand for their values.
        """
        key = (id(applicability), tuple(map(id, evidence)),
               tuple((p.rule, p.status, p.governed, p.fresh, p.segment, p.note) for p in primary), owner, organisation)
        known = self._status.get(key)
        if known is None:
            known = self._status[key] = control_status(applicability, primary, evidence, owner, organisation)
        return known


def latest_test_results(evidence: Sequence[EvidenceRef]) -> dict[str, EvidenceRef]:
    """The latest result of each test name among `evidence` (by when it was performed, then seq), leaving out
    withdrawn results and results not yet performed at the report's time: a later result of a test
    supersedes an earlier one, whatever their outcomes."""
    latest: dict[str, EvidenceRef] = {}
    results = [e for e in evidence if e.kind == "test_result" and e.state not in ("withdrawn", "not_yet_valid")]
    for result in sorted(results, key=lambda e: (e.valid_from or "", e.seq)):
        latest[result.title] = result
    return latest


def open_test_failures(evidence: Sequence[EvidenceRef], owner: str | None = None) -> list[EvidenceRef]:
    """The failed test results among `evidence` that nothing has cleared yet, one per test name at most.

    A failure stays open until a later result of that test *passes*: an inconclusive result does not
    clear it. Nor does a pass the system's `owner` recorded over a failure someone else found: the
    owner may re-test, but an independent failure is cleared by its own recorder or by someone other
    than the owner. Withdrawn results and results not yet performed at the report's time do not count;
    an open failure makes the control a nonconformity only while it is current (`control_status`).
    """
    failures: dict[str, EvidenceRef] = {}
    results = [e for e in evidence if e.kind == "test_result" and e.state not in ("withdrawn", "not_yet_valid")]
    for result in sorted(results, key=lambda e: (e.valid_from or "", e.seq)):
        open_failure = failures.get(result.title)
        if result.outcome == "failed":
            failures[result.title] = result
        elif result.outcome == "passed" and open_failure is not None and (
                result.actor == open_failure.actor or result.actor != owner):
            del failures[result.title]
    return list(failures.values())


def _occurrence_words(item: EvidenceRef) -> str:
    if item.kind == "test_result":
        return f"test result {item.id} '{item.title}' {item.outcome} on {(item.valid_from or '')[:10]}"
    return f"event {item.id} '{item.title}' ({item.event_kind}) on {(item.valid_from or '')[:10]}"


def _applicability_basis(framework: Framework, decision: ApplicabilityDecision, system_id: str,
                         snapshot: PortfolioSnapshot, inputs: ReportInputs, context: ReportContext) -> Citation | None:
    """The entry an applicability decision rests on, so that "not applicable because ..." can be followed.

    The EU AI Act decides by the system's recorded role(s) and classification, and NIST AI 600-1 by its
    recorded kind: the registration in force. ISO/IEC 42001 and the NIST AI RMF decide by the Statement
    of Applicability or target profile in force: its activation, when the decision is that statement's
    (clauses 4-10 always apply, and no statement decides nothing).
    """
    framework_id = framework.id
    if framework_id == "eu-ai-act" or framework.applies_to_kinds is not None:
        return snapshot.registrations.get(system_id)  # the classification, or the kind, it records
    label = context.statement_labels.get(framework_id)
    if label is not None and decision.source == label:
        return inputs.applicability_activations.get(framework_id)
    return None


def control_status(applicability: ApplicabilityRef, primary: Sequence[PairStatus],
                   evidence: Sequence[EvidenceRef], owner: str | None = None,
                   organisation: bool = False) -> tuple[ControlStatusName, str]:
    """The status of one (control, system) and why, per `STATUS_DEFINITIONS` (the one implementation of that rule).

    `primary` are the pairs of the control's primary KPI rules on the system; `evidence` the
    documents, attestations, test results and events citing the control for the system, with their
    state at the report time; `owner` the system's owner, who cannot clear a failed test someone else
    recorded (`open_test_failures`); `organisation`, whether the control is organisation-level, which passing
    KPIs show operating only once it is implemented.
    """
    if applicability.status in ("not_applicable", "not_yet_applicable"):
        return "not_applicable", applicability.reason
    prefix = f"applicability undetermined ({applicability.reason}); " if applicability.status == "undetermined" \
        else ""
    latest = latest_test_results(evidence)
    open_breaches = [p for p in primary if p.status == "breach" and p.governed is False]
    failed = [e for e in open_test_failures(evidence, owner) if e.state == "current"]
    if open_breaches or failed:
        named = [f"{p.rule}{f' [{p.segment}]' if p.segment else ''}: {p.note}" for p in open_breaches]
        named += [f"{_occurrence_words(e)}, current until {e.valid_until}: no later result of that test passed"
                  + (f" that anyone but the system's owner ({owner}) recorded" if owner and e.actor != owner else "")
                  for e in failed]
        return "nonconformity", prefix + "; ".join(named)
    kpis_pass = bool(primary) and all(p.fresh and p.status in ("pass", "warn") for p in primary)
    kpis_shown = ""
    if kpis_pass:
        rules = ", ".join(p.rule for p in primary)
        warned = [p.rule for p in primary if p.status == "warn"]
        how = (f"passes, or only warns ({', '.join(dict.fromkeys(warned))})," if warned else "passes")
        kpis_shown = f"every primary KPI rule {how} on current evidence ({rules})"
        if not organisation:
            return "operating", prefix + kpis_shown
    documents = [e for e in evidence if e.kind == "document" and e.state == "current"]
    attestations = [e for e in evidence if e.kind == "attestation" and e.state == "current"]
    kpi = "; ".join(f"{p.rule}: {_pair_words(p)}" for p in primary)
    kpi_note = f"; primary KPI evidence: {kpi}" if kpi else ""
    # What shows the process running: the latest passing result of each test, and events, while current.
    shown = [e for e in latest.values() if e.outcome == "passed" and e.state == "current"]
    shown += [e for e in evidence if e.kind == "event" and e.state == "current"]
    # Lapsed or inconclusive ones are named, as stale KPI evidence is: they count as missing.
    unshown = [f"{_occurrence_words(e)}, {e.state.replace('_', ' ')}" for e in latest.values()
               if e not in shown and not (e.outcome == "failed" and e.state == "current")]
    unshown += [f"{_occurrence_words(e)}, {e.state.replace('_', ' ')}" for e in evidence
                if e.kind == "event" and e.state != "current"]
    operation_note = f"; not shown operating: {'; '.join(unshown)}" if unshown else ""
    # Separation of duties: an attestation counts only against a document someone else recorded.
    independent = [(d, a) for d in documents for a in attestations if a.actor != d.actor]
    if independent:
        shown_documents = dict.fromkeys(d.id for d, _ in independent)
        shown_attestations = dict.fromkeys(a.id for _, a in independent)
        done = (f"documented ({', '.join(shown_documents)}) and attested ({', '.join(shown_attestations)})")
        if shown:
            return "operating", prefix + (f"{done}, and shown operating by "
                                          f"{'; '.join(_occurrence_words(e) for e in shown)}{kpi_note}")
        if kpis_pass:  # an organisation-level control, implemented: its KPIs show it operating
            return "operating", prefix + f"{done}, and {kpis_shown}"
        return "implemented", prefix + done + operation_note + kpi_note
    # A test or event on a control not implemented shows a process, not that the control is in place.
    pending = (f"; {'; '.join(_occurrence_words(e) for e in shown)} would show it operating once implemented"
               if shown else "") + operation_note
    if documents and attestations:
        recorders = ", ".join(sorted({e.actor for e in documents}))
        return "designed", prefix + (f"documented ({', '.join(e.id for e in documents)}) and attested "
                                     f"({', '.join(e.id for e in attestations)}) only by who recorded the document "
                                     f"({recorders}): implemented needs an attestation by someone else "
                                     f"(separation of duties){pending}{kpi_note}")
    if documents:
        return "designed", prefix + f"documented ({', '.join(e.id for e in documents)}); no current attestation" \
            + pending + kpi_note
    lapsed = [f"{e.kind.replace('_', ' ')} {e.id} {e.state.replace('_', ' ')}" for e in evidence
              if e.state != "current" and e.kind in ("document", "attestation")]
    missing = "; ".join(lapsed) if lapsed else "no document or attestation recorded"
    if kpis_pass:  # an organisation-level control: KPIs alone do not show the management system in place
        missing += ("; an organisation-level control needs a document and an attestation before its KPIs can "
                    "show it operating")
    return "no_evidence", prefix + missing + pending + (kpi_note or "; no primary KPI rule")


def _pair_words(pair: PairStatus) -> str:
    if pair.status == "no_evidence":
        return "no evidence"
    if not pair.fresh:
        return "stale"
    if pair.status == "breach":
        return "breach governed" if pair.governed else "breach"
    return pair.status


def _incident_ref(snapshot: PortfolioSnapshot, incident: Incident) -> IncidentRef:
    opened = _incident_citation(snapshot, int(incident.timeline[0]["seq"]))  # the opening is its first event
    triage = incident.classification
    classification = None
    if triage is not None:
        classification = ClassificationRef(
            **_incident_citation(snapshot, int(triage["seq"])).model_dump(), serious=bool(triage["serious"]),
            ground=triage.get("ground"), aware_at=triage.get("aware_at"), due_at=triage.get("due_at"),
            by=str(triage.get("by")))
    filings = [FilingRef(**_incident_citation(snapshot, int(f["seq"])).model_dump(), kind=str(f["kind"]),
                         authority=str(f["authority"]), reference=str(f["reference"]), filed_at=str(f["filed_at"]),
                         by=str(f["by"])) for f in incident.filings]
    return IncidentRef(id=incident.id, system=incident.system_id, rule=incident.rule, segment=incident.segment,
                       severity=incident.severity.value, state=incident.state.value, opened_at=incident.opened_at,
                       escalated_to=list(incident.escalated_to), opened=opened, classification=classification,
                       filings=filings)


def _decisions(snapshot: PortfolioSnapshot, incident: Incident) -> list[DecisionRef]:
    out = []
    for event in incident.timeline:
        if event["event"] == "decide":
            note, _, listed = event["note"].partition(" [decision: ")
            out.append(DecisionRef(**_incident_citation(snapshot, int(event["seq"])).model_dump(),
                                   incident=incident.id, system=incident.system_id, at=event["at"], by=event["by"],
                                   decisions=listed.rstrip("]").split(", ") if listed else [], note=note,
                                   proven_by=str(event.get("proof", "key signature"))))
    return out


def _trends(snapshot: PortfolioSnapshot, policies: Sequence[CompiledPolicy], systems: Sequence[AISystem],
            rules_in_framework: set[str], per_system: int = 4, limit: int = 12) -> list[Trend]:
    """The watched KPIs whose rules did worst: up to `per_system` per system, `limit` in all, worst first.

    Threshold rules cite one KPI each; a segment rule's chart follows the segment whose finding speaks
    for it. A portfolio of a thousand systems gets the charts that need attention rather than four
    thousand.
    """
    # Candidates stay plain tuples (worst, system, kpi, segment, rule, points): a portfolio has thousands,
    # of which `limit` become models.
    trends: list[tuple[str, str, str, str | None, CompiledRule, list[tuple[str, float]]]] = []
    rank = {"no_evidence": -1, **_WORST_RANK}
    for system in systems:
        candidates: dict[tuple[str, str | None], tuple[str, str, str, str | None, CompiledRule,
                                                       list[tuple[str, float]]]] = {}
        for pair in _pairs(policies, [system]):
            kpi = pair.rule.rule.kpi
            if kpi is None or pair.rule.ref not in rules_in_framework:
                continue
            latest = snapshot.latest.get((system.id, pair.rule.ref))
            segment = latest.segment if latest and pair.rule.rule.scope is Scope.SEGMENTS else None
            if pair.rule.rule.scope is Scope.SEGMENTS and segment is None:
                continue  # no segment finding yet: there is no segment series to show
            points = snapshot.series.get((system.id, kpi, segment))
            if not points:
                continue
            worst = latest.status if latest else "no_evidence"
            known = candidates.get((kpi, segment))
            if known is None or rank[worst] > rank[known[0]]:
                candidates[(kpi, segment)] = (worst, system.id, kpi, segment, pair.rule, points)
        trends.extend(sorted(candidates.values(), key=lambda t: (-rank[t[0]], t[2], t[3] or ""))[:per_system])
    worst_first = sorted(trends, key=lambda t: (-rank[t[0]], t[1], t[2], t[3] or ""))[:limit]
    return [Trend(system=system_id, kpi=kpi, rule=rule.ref, segment=segment,
                  points=[TrendPoint(window_start=at, value=value) for at, value in points],
                  thresholds=dict(rule.thresholds), worst=worst)
            for worst, system_id, kpi, segment, rule, points in sorted(worst_first,
                                                                       key=lambda t: (t[1], t[2], t[3] or ""))]


def report_inputs(policies: Sequence[CompiledPolicy], graph: EscalationGraph, *, policy_activation_seq: int | None,
                  escalation_seq: int | None, applicability: dict[str, int],
                  record_hash: Callable[[int], str] | None = None) -> ReportInputs:
    """The inputs block: every policy by digest, the escalation configuration, and the entries that put them in force.

    With `record_hash` (seq -> hex record hash), the activations are cited (seq and hash) as well as named.
    """
    refs = sorted((PolicyRef(id=p.policy.id, version=p.policy.version, digest=p.digest) for p in policies),
                  key=lambda r: (r.id, r.version))
    joined = "".join(f"{digest}\n" for digest in sorted(r.digest for r in refs))

    def cite(seq: int | None) -> Citation | None:
        return None if seq is None or record_hash is None else Citation(seq=seq, record_hash=record_hash(seq))

    activations = {framework: cite(seq) for framework, seq in sorted(applicability.items())}
    return ReportInputs(policies=refs, policy_set_digest=hashlib.sha256(joined.encode()).hexdigest(),
                        policy_activation_seq=policy_activation_seq, escalation_digest=graph.digest,
                        escalation_seq=escalation_seq, applicability=dict(sorted(applicability.items())),
                        policy_activation=cite(policy_activation_seq), escalation_activation=cite(escalation_seq),
                        applicability_activations={f: c for f, c in activations.items() if c is not None})


def build_report(snapshot: PortfolioSnapshot, framework_id: str, frameworks: FrameworkSet,
                 policies: Sequence[CompiledPolicy], graph: EscalationGraph, binding: LedgerBinding,
                 as_of: datetime.datetime, inputs: ReportInputs, context: ReportContext,
                 system: str | None = None) -> ReportDocument:
    """The audit-readiness report of `framework_id` over `snapshot`, optionally for one system."""
    framework = frameworks[framework_id]
    snapshot.check_as_of(as_of)
    if system is not None and system not in snapshot.systems:
        raise CharterError.single("unknown_system", f"system {system!r} was not registered in the ledger at "
                                  f"{format_time(as_of)}: a report on it would be empty")
    registered = sorted(snapshot.systems.values(), key=lambda s: s.id)
    # a system named on purpose is reported whatever its status; a portfolio report covers the active ones
    systems = [s for s in registered if s.id == system] if system is not None else \
        [s for s in registered if s.status is SystemStatus.ACTIVE]
    scope = {s.id for s in systems}
    not_in_scope = {s.id: s.status.value for s in registered if system is None and s.id not in scope}
    statuses = snapshot.assess(policies, systems, as_of)
    by_pair = {(p.rule, p.system): p for p in statuses}
    pair_of = by_pair.get
    primary_map, supporting_map = rule_controls(policies)
    incidents = [i for i in snapshot.book.incidents.values() if i.system_id in scope]

    controls: list[ControlReport] = []
    kpi_pairs: dict[tuple[str, str], PairStatus] = {}
    rules_in_framework: set[str] = set()
    undetermined: list[UndeterminedRef] = []
    per_system: dict[str, Counter[str]] = {s.id: Counter() for s in systems}
    per_system_kpi: dict[str, dict[str, PairStatus]] = {s.id: {} for s in systems}
    documented = attested = 0
    nonconformity_severity: Counter[str] = Counter()
    without_evidence: list[str] = []
    shared = _SharedRows(as_of)
    # what needs attention, grouped by rule once rather than scanned per control over every system
    below_full: dict[str, list[PairStatus]] = defaultdict(list)
    for pair in statuses:
        if pair.points < 1.0:
            below_full[pair.rule].append(pair)
    for control in framework.assessed_controls():
        control_id = control.id
        ref = f"{framework_id}:{control_id}"
        primary_rules = primary_map.get((framework_id, control_id), [])
        supporting_rules = supporting_map.get((framework_id, control_id), [])
        rules_in_framework.update(primary_rules)
        rows: list[ControlSystemStatus] = []
        any_evidence_path = False
        for target in systems:
            target_id = target.id
            decision = context.applicability(framework, control_id, target)
            applicability = shared.applicability(decision, _applicability_basis(
                framework, decision, target_id, snapshot, inputs, context))
            primary = [p for r in primary_rules if (p := pair_of((r, target_id))) is not None] \
                if primary_rules else []
            supporting = [r for r in supporting_rules if (r, target_id) in by_pair] if supporting_rules else []
            evidence = [shared.evidence(item) for item in context.evidence(ref, target_id)]
            if len(evidence) > 1:
                evidence.sort(key=lambda e: (e.seq, e.id))
            status, reason = shared.status(applicability, primary, evidence, target.owner,
                                           control.scope == "organisation")
            # made of models and strings validated or computed here: the row is not validated again
            rows.append(_trusted(ControlSystemStatus, system=target.id, applicability=applicability, status=status,
                                 reason=reason, primary_rules=[p.rule for p in primary],
                                 supporting_rules=supporting, evidence=evidence))
            per_system[target.id][status] += 1
            if status == "not_applicable":
                continue
            any_evidence_path = any_evidence_path or bool(primary) or bool(evidence)
            if applicability.status == "undetermined":
                undetermined.append(_trusted(UndeterminedRef, control=ref, system=target.id,
                                             reason=applicability.reason))
            if evidence:
                documented += any(e.kind == "document" and e.state == "current" for e in evidence)
                attested += any(e.kind == "attestation" and e.state == "current" for e in evidence)
            for pair in primary:
                kpi_pairs[(pair.rule, pair.system)] = pair
                per_system_kpi[target.id][pair.rule] = pair
            if status == "nonconformity":
                worst = max((p for p in primary if p.status == "breach" and p.governed is False),
                            key=lambda p: _SEVERITY_RANK.get(p.severity, 0))
                nonconformity_severity[worst.severity] += 1
        if any(r.status != "not_applicable" for r in rows) and not any_evidence_path:
            without_evidence.append(control_id)
        ruleset = set(primary_rules) | set(supporting_rules)
        # incidents and waivers bear on the control only where it applies
        applies = {row.system for row in rows if row.status != "not_applicable"}
        mapped_incidents = sorted((i for i in incidents if i.rule in ruleset and i.system_id in applies),
                                  key=lambda i: (i.opened_at, i.id))
        group = framework.controls.get(control.parent or "")
        controls.append(ControlReport(
            id=control_id, ref=ref, title=control.title or control_id, kind=control.kind,
            group=group.id if group else "", group_title=(group.title or group.id) if group else "",
            primary_rules=primary_rules, supporting_rules=supporting_rules,
            counts=dict(sorted(Counter(r.status for r in rows).items())), systems=rows,
            attention=sorted((p for r in primary_rules for p in below_full.get(r, ())),
                             key=lambda s: (s.points, s.system, s.rule)),
            open_incidents=[_incident_ref(snapshot, i) for i in mapped_incidents
                            if i.state not in (State.RESOLVED, State.CLOSED)],
            decisions=[d for i in mapped_incidents for d in _decisions(snapshot, i)],
            waivers=[WaiverRef(**_incident_citation(snapshot, snapshot.waiver_seqs[w.id]).model_dump(),
                               id=w.id, incident=w.incident_id, system=w.system_id, rule=w.rule, owner=w.owner,
                               granted_at=w.granted_at, expires_at=w.expires_at, active=_waiver_active(w, as_of))
                     for w in snapshot.book.waivers if w.rule in ruleset and w.system_id in applies]))

    counts: Counter[str] = Counter()
    for rows_by_system in per_system.values():
        counts.update(rows_by_system)
    total = sum(counts.values())
    applicable = total - counts["not_applicable"]
    figures = Figures(
        pairs=total, not_applicable=counts["not_applicable"], applicable=applicable, undetermined=len(undetermined),
        statuses={status: counts[status] for status in CONTROL_STATUSES}, documented=documented,
        documentary_completeness=round(documented / applicable, 4) if applicable else None, attested=attested,
        kpi_pairs=len(kpi_pairs), kpi_health=_mean([p.points for p in kpi_pairs.values()]),
        open_nonconformities=counts["nonconformity"],
        nonconformities_by_severity=dict(sorted(nonconformity_severity.items())),
        decisions_by_proof=dict(sorted(Counter(d.proven_by for d in {(d.incident, d.at): d for c in controls
                                                                     for d in c.decisions}.values()).items())))
    system_figures = {s.id: SystemFigures(statuses={status: per_system[s.id][status] for status in CONTROL_STATUSES},
                                          kpi_health=_mean([p.points for p in per_system_kpi[s.id].values()]))
                      for s in systems}
    stale = [StaleRule(policy=p.rule.split("/")[0], rule=p.rule.split("/", 1)[1], system=p.system, status=p.status,
                       window_end=p.window_end) for p in statuses if not p.fresh]
    current_policies = {p.rule.split("/")[0] for p in statuses if p.fresh}
    applied_policies = {p.rule.split("/")[0] for p in statuses}
    return ReportDocument(
        framework=framework_id, framework_name=framework.info.name, as_of=format_time(as_of), system=system,
        systems=sorted(scope), not_in_scope=not_in_scope, ledger=binding, inputs=inputs, definitions=Definitions(),
        figures=figures, system_figures=system_figures, controls=controls,
        pairs=sorted(statuses, key=lambda p: (p.system, p.rule)),
        gaps=Gaps(controls_without_evidence=without_evidence, undetermined_applicability=undetermined,
                  rules_without_current_evidence=stale,
                  policies_without_current_evidence=sorted(applied_policies - current_policies)),
        portfolio=_portfolio(snapshot, systems, statuses, incidents, as_of),
        trends=_trends(snapshot, policies, systems, rules_in_framework),
        escalation_mermaid=graph.render("mermaid"))


_SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def _portfolio(snapshot: PortfolioSnapshot, systems: Sequence[AISystem], statuses: Sequence[PairStatus],
               incidents: Sequence[Incident], as_of: datetime.datetime) -> Portfolio:
    monitored = {s.system for s in statuses if s.fresh}
    scopes = metrics(incidents).scopes.get("portfolio", {})
    overrides = [snapshot.series[(s.id, "human_override_rate", None)][-1][1] for s in systems
                 if (s.id, "human_override_rate", None) in snapshot.series]
    return Portfolio(
        systems=len(systems), monitored_systems=len(monitored),
        monitoring_coverage=round(len(monitored) / len(systems), 4) if systems else None,
        mttd_median_h=scopes.get("mttd", {}).get("median_h"), mttr_median_h=scopes.get("mttr", {}).get("median_h"),
        human_override_rate=_mean(overrides),
        open_incidents=sum(i.state not in (State.RESOLVED, State.CLOSED) for i in incidents),
        active_waivers=sum(_waiver_active(w, as_of) for w in snapshot.book.waivers
                           if w.system_id in {s.id for s in systems}))


def _waiver_active(waiver: Waiver, at: datetime.datetime) -> bool:
    """Granted by `at` and not yet expired then."""
    return _time(waiver.granted_at) <= at < _time(waiver.expires_at)
