"""What an audit-readiness report says: controls, their rules and evidence, gaps, scores, portfolio KPIs.

A report describes exactly one ledger state: the caller signs a checkpoint first and everything
here is read from the entries below its size. `PortfolioSnapshot` reads that state once (systems,
findings, bundles, incidents, waivers) so that the three frameworks' reports share one pass over
the ledger; `build_report` turns it into a `ReportDocument` for one framework.

Readiness is computed, never asserted: each (rule, system) pair that a control's rules apply to
earns points from its latest evidence (see `POINTS` and `FORMULA`), a control scores the mean of
its pairs, a framework the sum over its controls divided by the controls in scope (uncovered
controls count as zero), and the overall score is the mean of the three frameworks.
"""

from __future__ import annotations

import datetime
import hashlib
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import CharterError
from ..escalation import EscalationGraph
from ..evaluate import Status
from ..frameworks import Framework, FrameworkSet, parse_control_ref
from ..incidents import INCIDENT_TYPES, Incident, IncidentBook, State, Waiver, apply, metrics
from ..ledger.store import Ledger, format_time
from ..policy.compiler import CompiledPolicy, CompiledRule
from ..policy.model import Scope
from ..registry import AISystem, SystemStatus
from ..submission import BUNDLE, EVALUATION, FINDING, systems_in_ledger

SCHEMA_VERSION = 2
#: controls a framework is assessed on: the leaves that policies cite
ASSESSED_KINDS = {"iso-42001": ("annex_a_control", "clause"), "eu-ai-act": ("article",),
                  "nist-ai-rmf": ("subcategory",)}
#: evidence older than this is stale when the policy states no max_age
DEFAULT_MAX_AGE = datetime.timedelta(days=90)
POINTS = {"pass": 1.0, "warn": 0.75, "breach_governed": 0.5, "breach_open": 0.25, "missing": 0.0, "error": 0.0,
          "stale": 0.0, "no_evidence": 0.0}
FORMULA = (
    "pair points (latest evidence of one rule for one system): pass 1, warn 0.75, breach whose risk is "
    "accepted by an unexpired waiver or whose incident has a decision 0.5, breach still under investigation "
    "0.25, missing, error, stale (older than the policy's max_age, else 90 days) or no evidence 0; for a "
    "segment rule the worst segment of the latest window speaks, and a breach is governed only when every "
    "breached segment is. "
    "control score = mean of its pairs' points. framework readiness = sum of control scores / number of "
    "assessed controls, where a control no rule covers counts 0 and a covered control that applies to no "
    "system in scope is left out. coverage = covered controls / assessed controls. overall = mean of the "
    "three frameworks' readiness. system score = mean points of the system's pairs in this framework. "
    "Only active systems are in scope; suspended and retired ones are listed, not scored."
)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PairStatus(_Model):
    """The latest evidence of one rule for one system."""

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


class RuleSummary(_Model):
    """How one rule mapped to a control fares across the systems in scope."""

    rule: str
    systems: int
    counts: dict[str, int] = Field(description="pairs per status: pass, warn, breach, missing, error, "
                                   "no_evidence, stale")
    points: float = Field(description="sum of the pairs' points")


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


class DecisionRef(_Model):
    """A decision taken on such an incident."""

    incident: str
    system: str
    at: str
    by: str
    decisions: list[str]
    note: str


class WaiverRef(_Model):
    """An accepted risk on a mapped rule."""

    id: str
    incident: str
    system: str
    rule: str
    owner: str
    granted_at: str
    expires_at: str
    active: bool


class ControlReport(_Model):
    """One assessed control."""

    id: str
    ref: str
    title: str
    kind: str
    group: str
    group_title: str
    coverage: Literal["covered", "gap", "not_applicable"]
    score: float | None
    rules: list[str]
    summaries: list[RuleSummary]
    attention: list[PairStatus] = Field(description="pairs below full points: warn, breach, missing, error, stale, "
                                        "no evidence")
    open_incidents: list[IncidentRef]
    decisions: list[DecisionRef]
    waivers: list[WaiverRef]


class FrameworkScore(_Model):
    """Readiness and coverage of one framework."""

    readiness: float
    coverage: float
    assessed: int
    covered: int
    not_applicable: int


class Scores(_Model):
    """The scores of the report, with the formula that produced them."""

    formula: str
    framework: FrameworkScore
    frameworks: dict[str, FrameworkScore]
    overall: float
    systems: dict[str, float | None]


class StaleRule(_Model):
    """A rule that applies to a system but has no current evidence."""

    policy: str
    rule: str
    system: str
    status: str
    window_end: str | None


class Gaps(_Model):
    """What the governance set-up does not cover."""

    uncovered_controls: list[str]
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
    """The signed ledger state the report describes."""

    origin: str
    checkpoint_size: int
    checkpoint_root: str
    checkpoint_note: str
    verified: bool
    verify_summary: str


class PolicyRef(_Model):
    """One policy the report judged the evidence against."""

    id: str
    version: str
    digest: str


class ReportInputs(_Model):
    """What besides the ledger the report depends on, pinned by digest so it can be reproduced."""

    policies: list[PolicyRef]
    policy_set_digest: str = Field(description="SHA-256 over the sorted policy digests, one per line")
    escalation_digest: str = Field(description="SHA-256 of the escalation configuration (RFC 8785 JSON)")


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
    scores: Scores
    controls: list[ControlReport]
    pairs: list[PairStatus] = Field(description="every (rule, system) pair in scope, by system and rule")
    gaps: Gaps
    portfolio: Portfolio
    trends: list[Trend]
    escalation_mermaid: str


# -- reading the ledger once ---------------------------------------------------------------------


#: how bad a finding status is (`Status.rank`), for picking the segment that speaks for a rule
_WORST_RANK = {status.value: status.rank for status in Status}


@dataclass
class _Latest:
    status: str
    window_end: str
    evaluated_at: str
    segment: str | None = None  # the worst segment, for segment rules
    breached_segments: list[str | None] = field(default_factory=list)


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
        snapshot = cls(size, dict(systems_in_ledger(ledger, before=size)))
        latest_bundle: dict[str, tuple[datetime.datetime, int, str]] = {}  # system -> (window end, seq, submission)
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
            candidate = (_time(p["window_end"]), entry.seq, entry.submission_id)
            if system_id not in latest_bundle or candidate > latest_bundle[system_id]:
                latest_bundle[system_id] = candidate
        evaluations = sorted(f"{EVALUATION}:{submission}" for _, _, submission in latest_bundle.values())
        finding_ids = [f"{FINDING}:{entry.submission_id.split(':', 1)[1]}:{index}"
                       for entry in ledger.by_submissions(evaluations, size)
                       for index in range(int(entry.payload["findings"]))]
        for entry in ledger.by_submissions(finding_ids, size):
            p = entry.payload
            key = (p["system_id"], f"{p['policy']}/{p['rule']}")
            current = snapshot.latest.get(key)
            if current is None:
                current = snapshot.latest[key] = _Latest(p["status"], p["window_end"], p["evaluated_at"],
                                                         p.get("segment"))
            elif _WORST_RANK[p["status"]] > _WORST_RANK[current.status]:
                current.status, current.segment = p["status"], p.get("segment")
            if p["status"] == "breach":
                current.breached_segments.append(p.get("segment"))
        for entry in ledger.entries(0, size, types=INCIDENT_TYPES):
            apply(snapshot.book, entry)
        for points in snapshot.series.values():
            points.sort()
        return snapshot

    def check_as_of(self, as_of: datetime.datetime) -> None:
        """Refuse a report time before the newest evidence: the report would cite bundles not yet measured.

        Raises:
            CharterError: `as_of` is earlier than the newest bundle's measured_at.
        """
        if self.newest_measured_at is not None and as_of < self.newest_measured_at:
            raise CharterError.single("report_time", f"the report time {format_time(as_of)} is before the newest "
                                      f"evidence (measured at {format_time(self.newest_measured_at)}); a report "
                                      "describes the ledger as it stands, so its time cannot precede what it cites")

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


def _rule_controls(policies: Sequence[CompiledPolicy]) -> dict[tuple[str, str], list[str]]:
    """(framework, control id) -> qualified rule ids citing it (a paragraph cites its article)."""
    mapping: dict[tuple[str, str], list[str]] = defaultdict(list)
    for policy in policies:
        for rule in policy.rules:
            for text in rule.rule.controls:
                ref = parse_control_ref(text)
                if ref is not None and rule.ref not in mapping[(ref.framework, ref.control)]:
                    mapping[(ref.framework, ref.control)].append(rule.ref)
    return mapping


def _governed(snapshot: PortfolioSnapshot, key: tuple[str, str, str | None], at: datetime.datetime) -> str | None:
    """Why the breach of one (system, rule, segment) counts as governed, or None.

    Governed means a waiver granted by `at` and not yet expired accepts the risk, or the key's most
    recent incident (the one the breach attaches to) carries a decision that still holds: a decision
    to accept a risk whose waiver has lapsed no longer does.
    """
    waivers, incidents = snapshot.governance_index()
    for waiver in waivers.get(key, ()):
        if _waiver_active(waiver, at):  # the index already matched the key
            return f"risk accepted until {waiver.expires_at} ({waiver.id})"
    incident = incidents.get(key)
    if incident is None or incident.state not in (State.DECIDED, State.RESOLVED, State.CLOSED):
        return None
    decision = incident.current_decision or incident.decisions
    if set(decision) <= {"accept_risk"}:
        return None  # the accepted risk's waiver was checked above: it has lapsed or is not yet granted
    return f"{incident.id} decided: {', '.join(decision)}"


def _pair_status(pair: _Pair, snapshot: PortfolioSnapshot, as_of: datetime.datetime) -> PairStatus:
    latest = snapshot.latest.get((pair.system.id, pair.rule.ref))
    system, rule, severity = pair.system.id, pair.rule.ref, pair.rule.rule.severity.value
    if latest is None:
        return PairStatus(system=system, rule=rule, severity=severity, status="no_evidence", fresh=False, points=0.0,
                          note="no finding recorded")
    segment = latest.segment if pair.rule.rule.scope is Scope.SEGMENTS else None
    max_age = pair.rule.rule.max_age or pair.policy.policy.max_age or DEFAULT_MAX_AGE
    age = as_of - _time(latest.window_end)
    fresh = age <= max_age
    status, note = latest.status, ""
    if not fresh:
        points, note = POINTS["stale"], f"stale: the latest window ended {age.days} days ago"
    elif status == "breach":
        reasons = [_governed(snapshot, (system, rule, s), as_of) for s in dict.fromkeys(latest.breached_segments)]
        governed = all(reasons)
        points = POINTS["breach_governed"] if governed else POINTS["breach_open"]
        note = "; ".join(r for r in reasons if r) if governed else "breach under investigation"
    else:
        points = POINTS[status]
    return PairStatus(system=system, rule=rule, severity=severity, status=status, segment=segment,
                      window_end=latest.window_end,
                      age_days=round(age.total_seconds() / 86400, 1), fresh=fresh, points=points, note=note)


def _summary(rule: str, pairs: Sequence[PairStatus]) -> RuleSummary:
    counts: dict[str, int] = defaultdict(int)
    for pair in pairs:
        counts[pair.status if pair.fresh or pair.status == "no_evidence" else "stale"] += 1
    return RuleSummary(rule=rule, systems=len(pairs), counts=dict(sorted(counts.items())),
                       points=round(sum(p.points for p in pairs), 4))


def _mean(values: Sequence[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def _framework_score(framework: Framework, mapping: dict[tuple[str, str], list[str]],
                     pair_points: dict[str, list[float]]) -> tuple[FrameworkScore, dict[str, float | None]]:
    """Score every assessed control of a framework; `pair_points` maps rule -> points of its pairs."""
    kinds = ASSESSED_KINDS.get(framework.id, ())
    assessed = [c for c in framework.controls.values() if c.kind in kinds and _is_leaf(framework, c.id)]
    scores: dict[str, float | None] = {}
    covered = not_applicable = 0
    total = 0.0
    for control in assessed:
        rules = mapping.get((framework.id, control.id), [])
        points = [p for rule in rules for p in pair_points.get(rule, [])]
        if not rules:
            scores[control.id] = 0.0
            continue
        covered += 1
        if not points:
            scores[control.id] = None
            not_applicable += 1
            continue
        scores[control.id] = _mean(points)
        total += statistics.fmean(points)
    denominator = len(assessed) - not_applicable
    return FrameworkScore(readiness=round(total / denominator, 4) if denominator else 0.0,
                          coverage=round(covered / len(assessed), 4) if assessed else 0.0,
                          assessed=len(assessed), covered=covered, not_applicable=not_applicable), scores


def _is_leaf(framework: Framework, control_id: str) -> bool:
    return not any(c.parent == control_id for c in framework.controls.values())


def _incident_ref(incident: Incident) -> IncidentRef:
    return IncidentRef(id=incident.id, system=incident.system_id, rule=incident.rule, segment=incident.segment,
                       severity=incident.severity.value, state=incident.state.value, opened_at=incident.opened_at,
                       escalated_to=list(incident.escalated_to))


def _decisions(incident: Incident) -> list[DecisionRef]:
    out = []
    for event in incident.timeline:
        if event["event"] == "decide":
            note, _, listed = event["note"].partition(" [decision: ")
            out.append(DecisionRef(incident=incident.id, system=incident.system_id, at=event["at"], by=event["by"],
                                   decisions=listed.rstrip("]").split(", ") if listed else [], note=note))
    return out


def _trends(snapshot: PortfolioSnapshot, policies: Sequence[CompiledPolicy], systems: Sequence[AISystem],
            rules_in_framework: set[str], per_system: int = 4, limit: int = 12) -> list[Trend]:
    """The watched KPIs whose rules did worst: up to `per_system` per system, `limit` in all, worst first.

    Threshold rules cite one KPI each; a segment rule's chart follows the segment whose finding speaks
    for it. A portfolio of a thousand systems gets the charts that need attention rather than four
    thousand.
    """
    trends: list[Trend] = []
    rank = {"no_evidence": -1, **_WORST_RANK}
    for system in systems:
        candidates: dict[tuple[str, str | None], Trend] = {}
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
            if known is None or rank[worst] > rank[known.worst]:
                candidates[(kpi, segment)] = Trend(
                    system=system.id, kpi=kpi, rule=pair.rule.ref, segment=segment,
                    points=[TrendPoint(window_start=at, value=value) for at, value in points],
                    thresholds=dict(pair.rule.thresholds), worst=worst)
        trends.extend(sorted(candidates.values(), key=lambda t: (-rank[t.worst], t.kpi, t.segment or ""))[:per_system])
    worst_first = sorted(trends, key=lambda t: (-rank[t.worst], t.system, t.kpi, t.segment or ""))[:limit]
    return sorted(worst_first, key=lambda t: (t.system, t.kpi, t.segment or ""))


def _inputs(policies: Sequence[CompiledPolicy], graph: EscalationGraph) -> ReportInputs:
    refs = sorted((PolicyRef(id=p.policy.id, version=p.policy.version, digest=p.digest) for p in policies),
                  key=lambda r: (r.id, r.version))
    joined = "".join(f"{digest}\n" for digest in sorted(r.digest for r in refs))
    return ReportInputs(policies=refs, policy_set_digest=hashlib.sha256(joined.encode()).hexdigest(),
                        escalation_digest=graph.digest)


def build_report(snapshot: PortfolioSnapshot, framework_id: str, frameworks: FrameworkSet,
                 policies: Sequence[CompiledPolicy], graph: EscalationGraph, binding: LedgerBinding,
                 as_of: datetime.datetime, system: str | None = None) -> ReportDocument:
    """The audit-readiness report of `framework_id` over `snapshot`, optionally for one system."""
    framework = frameworks[framework_id]
    snapshot.check_as_of(as_of)
    registered = sorted(snapshot.systems.values(), key=lambda s: s.id)
    # a system named on purpose is reported whatever its status; a portfolio report scores the active ones
    systems = [s for s in registered if s.id == system] if system is not None else \
        [s for s in registered if s.status is SystemStatus.ACTIVE]
    scope = {s.id for s in systems}
    not_in_scope = {s.id: s.status.value for s in registered if system is None and s.id not in scope}
    statuses = snapshot.assess(policies, systems, as_of)
    by_rule: dict[str, list[PairStatus]] = defaultdict(list)
    by_system: dict[str, list[PairStatus]] = defaultdict(list)
    for status in statuses:
        by_rule[status.rule].append(status)
        by_system[status.system].append(status)
    pair_points = {rule: [s.points for s in items] for rule, items in by_rule.items()}
    mapping = _rule_controls(policies)

    all_scores = {fid: _framework_score(fw, mapping, pair_points) for fid, fw in frameworks.items()
                  if fid in ASSESSED_KINDS}
    this_score, control_scores = all_scores[framework_id]
    incidents = [i for i in snapshot.book.incidents.values() if i.system_id in scope]
    controls: list[ControlReport] = []
    rules_in_framework: set[str] = set()
    for control_id, score in control_scores.items():
        control = framework.controls[control_id]
        rules = mapping.get((framework_id, control_id), [])
        rules_in_framework.update(rules)
        group = framework.controls.get(control.parent or "")
        ruleset = set(rules)
        mapped_incidents = sorted((i for i in incidents if i.rule in ruleset), key=lambda i: (i.opened_at, i.id))
        controls.append(ControlReport(
            id=control_id, ref=f"{framework_id}:{control_id}", title=control.title or control_id, kind=control.kind,
            group=group.id if group else "", group_title=(group.title or group.id) if group else "",
            coverage="gap" if not rules else ("not_applicable" if score is None else "covered"), score=score,
            rules=rules, summaries=[_summary(rule, by_rule.get(rule, [])) for rule in rules],
            attention=sorted((s for rule in rules for s in by_rule.get(rule, []) if s.points < 1.0),
                             key=lambda s: (s.points, s.system, s.rule)),
            open_incidents=[_incident_ref(i) for i in mapped_incidents if i.state not in (State.RESOLVED,
                                                                                           State.CLOSED)],
            decisions=[d for i in mapped_incidents for d in _decisions(i)],
            waivers=[WaiverRef(id=w.id, incident=w.incident_id, system=w.system_id, rule=w.rule, owner=w.owner,
                               granted_at=w.granted_at, expires_at=w.expires_at, active=_waiver_active(w, as_of))
                     for w in snapshot.book.waivers if w.rule in ruleset and w.system_id in scope]))

    system_scores = {s.id: _mean([p.points for p in by_system[s.id] if p.rule in rules_in_framework])
                     for s in systems}
    stale = [StaleRule(policy=p.rule.split("/")[0], rule=p.rule.split("/", 1)[1], system=p.system, status=p.status,
                       window_end=p.window_end) for p in statuses if not p.fresh]
    current_policies = {p.rule.split("/")[0] for p in statuses if p.fresh}
    applied_policies = {p.rule.split("/")[0] for p in statuses}
    readiness = [score.readiness for score, _ in all_scores.values()]
    return ReportDocument(
        framework=framework_id, framework_name=framework.info.name, as_of=format_time(as_of), system=system,
        systems=sorted(scope), not_in_scope=not_in_scope, ledger=binding, inputs=_inputs(policies, graph),
        scores=Scores(formula=FORMULA, framework=this_score,
                      frameworks={fid: score for fid, (score, _) in sorted(all_scores.items())},
                      overall=round(statistics.fmean(readiness), 4) if readiness else 0.0, systems=system_scores),
        controls=controls, pairs=sorted(statuses, key=lambda p: (p.system, p.rule)),
        gaps=Gaps(uncovered_controls=[c.id for c in controls if c.coverage == "gap"],
                  rules_without_current_evidence=stale,
                  policies_without_current_evidence=sorted(applied_policies - current_policies)),
        portfolio=_portfolio(snapshot, systems, statuses, incidents, as_of),
        trends=_trends(snapshot, policies, systems, rules_in_framework),
        escalation_mermaid=graph.render("mermaid"))


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
