"""Evaluation: one bundle of one system against the policies that apply to it -> findings.

Evaluation is a pure function of (system, bundle, policies, evaluation time, earlier bundles of
the system): the same inputs give the same findings, byte for byte, so any finding can be replayed.
Missing or stale evidence is reported as a ``missing`` finding, never silently as a pass.
"""

from __future__ import annotations

import datetime
import decimal
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeVar

import rule_engine
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from .bundle import EvidenceBundle
from .policy.compile import CompiledCondition
from .policy.compiler import CompiledPolicy, CompiledRule
from .policy.context import current_evaluation_time, evaluation_time
from .policy.explain import MemoKey, explain_false, explain_true, observed_values
from .policy.model import Scope, Severity, format_duration
from .registry import AISystem


class Status(StrEnum):
    """The outcome of one rule on one bundle (and segment)."""

    PASS = "pass"
    WARN = "warn"
    BREACH = "breach"
    MISSING = "missing"
    ERROR = "error"

    @property
    def rank(self) -> int:
        """Ordering by how much attention the status needs: pass < missing < warn < error < breach."""
        return {"pass": 0, "missing": 1, "warn": 2, "error": 3, "breach": 4}[self.value]


def _is_none(value: Any) -> bool:
    return value is None


class Finding(BaseModel):
    """The result of one rule for one bundle of one system (and one segment, for segment rules)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    system_id: str
    policy: str
    policy_version: str
    policy_digest: str
    rule: str
    title: str
    segment: str | None = None
    status: Status
    severity: Severity
    bundle_digest: str
    model_version: str
    window_start: AwareDatetime
    window_end: AwareDatetime
    # Findings recorded before ingest existed have no measurable_at: omitted when unset, their payloads
    # (and digests) stay the same.
    measurable_at: AwareDatetime | None = Field(default=None, exclude_if=_is_none, description=(
        "When the window became measurable, if later than its end: labels that arrive late (charter ingest "
        "records when their coverage sufficed). Omitted otherwise."))
    evaluated_at: AwareDatetime
    condition: str
    observed: dict[str, float | str | None]
    thresholds: dict[str, float]
    consecutive: int
    sustained: int
    controls: tuple[str, ...]
    explanation: str
    remediation: str | None = None

    @property
    def rule_ref(self) -> str:
        """``policy/rule``."""
        return f"{self.policy}/{self.rule}"

    @property
    def failing(self) -> bool:
        """Whether the finding is a breach or an evaluation error."""
        return self.status in (Status.BREACH, Status.ERROR)


@dataclass(frozen=True)
class _Outcome:
    """What judging a rule on one snapshot gave: status, explanation, the values it read."""

    status: Status
    explanation: str
    observed: dict[str, float | str | None]


def _freeze(values: Mapping[str, Any]) -> Mapping[str, Any]:
    # rule-engine copies plain dicts on every read; a read-only proxy is used as is (5-6x faster).
    return MappingProxyType(dict(values))


def _json_value(value: Any) -> float | str | None:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, decimal.Decimal | float | int):
        number = float(value)
        if not math.isfinite(number):
            return str(number)  # JSON has no infinity; the text keeps the finding printable
        # 12 significant digits hide binary noise (0.7200000000000001) and stay deterministic.
        return float(f"{number:.12g}")
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return format_duration(value) if value.total_seconds() > 0 else str(value)
    return str(value)


@dataclass(frozen=True)
class NamespaceViews:
    """The read-only mappings of a namespace that do not depend on the segment.

    The evaluator builds them per evaluation; a bulk evaluator (back-testing) may share them
    between bundles: the system and its baseline are the same for every bundle of a system, and a
    bundle's KPIs are the next bundle's ``previous``.
    """

    system: Mapping[str, Any]
    baseline: Mapping[str, Any]
    kpis: Mapping[str, Any]
    previous: Mapping[str, Any]

    @classmethod
    def of(cls, snap: _Snapshot) -> NamespaceViews:
        """Fresh views of one snapshot."""
        return cls(_freeze(snap.system.rule_view()), _freeze(snap.system.baseline), _freeze(snap.bundle.kpis),
                   _freeze(snap.previous.kpis if snap.previous else {}))


#: Every finite double is an integer multiple of 2**-1074: scaled by 2**1074, doubles add exactly as integers.
_SCALE = 1074


def _scaled(x: float) -> int:
    numerator, denominator = x.as_integer_ratio()  # the denominator is a power of two, at most 2**1074
    return numerator << (_SCALE + 1 - denominator.bit_length())


@dataclass(frozen=True)
class _ExactSum:
    """The exact sum of some floats (scaled by 2**1074: an int, so it never overflows), how many, and
    how many are -0.0 (the sign of a zero sum); one value can be taken out again in O(1)."""

    total: int
    count: int
    negative_zeros: int

    @classmethod
    def of(cls, values: Iterable[float]) -> _ExactSum:
        total = count = negative_zeros = 0
        for value in values:
            count += 1
            if value:
                total += _scaled(value)
            elif math.copysign(1.0, value) < 0:
                negative_zeros += 1
        return cls(total, count, negative_zeros)

    def without(self, value: float) -> _ExactSum:
        return _ExactSum(self.total - _scaled(value) if value else self.total, self.count - 1,
                         self.negative_zeros - (not value and math.copysign(1.0, value) < 0))

    def rounded(self) -> float:
        """``math.fsum`` of the values: their exact sum rounded once (int / int rounds correctly too).

        Raises OverflowError where the sum is beyond the float range."""
        if self.total == 0:
            return math.fsum([-0.0]) if self.negative_zeros == self.count else 0.0
        return self.total / (1 << _SCALE)


class _Peers:
    """Per KPI of one dimension: exact sums of the values, of v/n and of v/(n-1), n groups having it."""

    __slots__ = ("but_one", "count", "values", "whole")

    def __init__(self, values: list[float]) -> None:
        self.count = n = len(values)
        self.values = _ExactSum.of(values)
        self.whole = _ExactSum.of(v / n for v in values)
        self.but_one = _ExactSum.of(v / (n - 1) for v in values) if n > 1 else None

    def mean(self, own: float | None) -> float:
        """The mean over the groups but the one whose value is `own` (None: a group without the KPI).

        Bit for bit ``math.fsum(v / n for v in others)``: dividing before adding keeps it finite even for
        values near the float maximum, and ``fsum`` rounds the exact sum once, so the order of the
        groups does not matter (a hypothesis test holds it to that definition). Where that sum overflows
        (values near the float maximum: it used to crash evaluation), the exact mean of the others,
        correctly rounded; it is never beyond the largest value, so it always exists.
        """
        quotients = self.whole if own is None else self.but_one.without(own / (self.count - 1))  # type: ignore[union-attr]
        try:
            return quotients.rounded()
        except OverflowError:
            values = self.values if own is None else self.values.without(own)
            return values.total / (values.count << _SCALE)


class _BundleDerived:
    """What evaluation derives from a bundle once rather than once per segment and rule.

    With N segments, rebuilding the read-only ``segments`` view and each group's peer means for every
    segment made evaluation O(N^2) (a bundle of 2,000 segments took over a minute).
    """

    def __init__(self, bundle: EvidenceBundle) -> None:
        self.bundle = bundle
        self.digest = bundle.digest()  # canonical JSON of the whole bundle: once, not once per finding
        self.segments = _freeze({k: _freeze(v) for k, v in bundle.segments.items()})
        self._sums: dict[str, dict[str, _Peers]] | None = None

    def _dimension_sums(self) -> dict[str, dict[str, _Peers]]:
        if self._sums is None:
            values: dict[str, dict[str, list[float]]] = {}
            for key, kpis in self.bundle.segments.items():
                per_kpi = values.setdefault(key.split(":", 1)[0], {})
                for kpi_id, value in kpis.items():
                    per_kpi.setdefault(kpi_id, []).append(value)
            self._sums = {dimension: {kpi_id: _Peers(vs) for kpi_id, vs in sorted(per_kpi.items())}
                          for dimension, per_kpi in values.items()}
        return self._sums

    def peers(self, segment: str) -> dict[str, float]:
        """Per KPI, the mean over the other groups of `segment`'s dimension, in O(KPIs); see `_Peers.mean`."""
        own = self.bundle.segments.get(segment, {})
        return {kpi_id: sums.mean(own.get(kpi_id))
                for kpi_id, sums in self._dimension_sums().get(segment.split(":", 1)[0], {}).items()
                if kpi_id not in own or sums.count > 1}


#: The derived data of the last few bundles evaluated, by identity (a bundle is frozen).
_DERIVED: dict[int, _BundleDerived] = {}
_DERIVED_KEEP = 16


def _derived(bundle: EvidenceBundle) -> _BundleDerived:
    found = _DERIVED.get(id(bundle))
    if found is None or found.bundle is not bundle:
        if len(_DERIVED) >= _DERIVED_KEEP:
            _DERIVED.pop(next(iter(_DERIVED)))
        found = _DERIVED[id(bundle)] = _BundleDerived(bundle)
    return found


@dataclass(frozen=True)
class _Snapshot:
    """Everything one evaluation of a rule can read."""

    system: AISystem
    bundle: EvidenceBundle
    previous: EvidenceBundle | None
    segment: str | None

    def values(self) -> Mapping[str, float] | None:
        if self.segment is None:
            return self.bundle.kpis
        return self.bundle.segments.get(self.segment)

    def peers(self) -> dict[str, float]:
        assert self.segment is not None
        return _derived(self.bundle).peers(self.segment)

    def namespace(self, views: Callable[[_Snapshot], NamespaceViews] | None = None) -> dict[str, Any]:
        """What the rule's expressions read; `views` may supply the read-only parts (see `NamespaceViews`)."""
        values = self.values() or {}
        ns: dict[str, Any] = dict(values)
        parts = views(self) if views is not None else NamespaceViews.of(self)
        ns["system"] = parts.system
        ns["bundle"] = _freeze({
            "system_id": self.bundle.system_id, "model_version": self.bundle.model_version,
            "submitter": self.bundle.submitter, "window_start": self.bundle.window_start,
            "window_end": self.bundle.window_end, "measured_at": self.bundle.measured_at,
            "kpis": parts.kpis})
        ns["baseline"] = parts.baseline
        ns["previous"] = parts.previous
        ns["segments"] = _derived(self.bundle).segments
        if self.segment is not None:
            dimension, group = self.segment.split(":", 1)
            ns["segment"] = _freeze({"key": self.segment, "dimension": dimension, "group": group})
            ns["peers"] = _freeze(self.peers())
        return ns

    def missing_evidence(self, rule: CompiledRule) -> list[str]:
        sources: dict[str | None, Mapping[str, float] | None] = {
            None: self.values(), "baseline": self.system.baseline,
            "previous": self.previous.kpis if self.previous else None,
            "bundle.kpis": self.bundle.kpis,
        }
        if self.segment is not None:
            sources["peers"] = self.peers()
        missing = []
        for ref in sorted(rule.needs, key=str):
            source = sources.get(ref.where)
            if source is None and ref.where == "previous":
                missing.append(f"{ref} (no earlier bundle of {self.bundle.system_id})")
            elif source is None or ref.kpi not in source:
                missing.append(str(ref))
        return missing


@dataclass
class _Held:
    """A snapshot's namespace, and the operand values explanations read from it (`explain.observed_values`)."""

    system: AISystem
    bundle: EvidenceBundle
    previous: EvidenceBundle | None
    namespace: dict[str, Any]
    #: the evaluation time `reads` were read at (``$now`` reads it), and the reads
    at: datetime.datetime | None = None
    reads: dict[MemoKey, Any] = field(default_factory=dict)


#: Per segment key (None for the whole bundle), the last snapshot's namespace: every rule of a bundle
#: reads the same one. A namespace depends only on the system, bundle, previous bundle and segment
#: (all frozen, held here so their ids are not reused) and evaluation never writes to it.
_NAMESPACES: dict[str | None, _Held] = {}
_NAMESPACES_KEEP = 4096


def _held(snap: _Snapshot) -> _Held:
    held = _NAMESPACES.get(snap.segment)
    if (held is not None and held.system is snap.system and held.bundle is snap.bundle
            and held.previous is snap.previous):
        return held
    if len(_NAMESPACES) >= _NAMESPACES_KEEP:
        _NAMESPACES.clear()
    held = _NAMESPACES[snap.segment] = _Held(snap.system, snap.bundle, snap.previous, snap.namespace())
    return held


def _reads(held: _Held) -> dict[MemoKey, Any]:
    """The operand values read from `held`'s namespace at the current evaluation time, shared by its rules."""
    at = current_evaluation_time()
    if not _same_time(held.at, at):
        held.at, held.reads = at, {}
    return held.reads


def _same_time(one: datetime.datetime | None, other: datetime.datetime | None) -> bool:
    """The same instant written the same way: ``$now`` and ``$today`` show the zone and (in a gap or a fold)
    the fold, so one instant in two zones, or two readings of an ambiguous wall time, read differently."""
    if one is None or other is None:
        return one is other
    return one == other and one.tzinfo is other.tzinfo and one.fold == other.fold and \
        one.utcoffset() == other.utcoffset()


def _run(rule: CompiledRule, snap: _Snapshot) -> _Outcome:
    """Evaluate a rule once, without history or freshness: breach, warn, pass, missing or error."""
    missing = snap.missing_evidence(rule)
    if missing:
        where = f" in segment {snap.segment}" if snap.segment else ""
        return _Outcome(Status.MISSING, f"evidence missing{where}: {', '.join(missing)}", {})
    held = _held(snap)
    thing = held.namespace
    read = _reads(held)  # operand values, read once for every rule's explanation and observed values
    try:
        if _condition(rule.breach_compiled, thing):
            return _Outcome(Status.BREACH, explain_true(rule.breach.statement, thing, read),
                            _observed(rule.breach, thing, read))
        if rule.warn is not None and rule.warn_compiled is not None and _condition(rule.warn_compiled, thing):
            return _Outcome(Status.WARN, "warning band: " + explain_true(rule.warn.statement, thing, read),
                            _observed(rule.warn, thing, read))
        return _Outcome(Status.PASS, explain_false(rule.breach.statement, thing, read),
                        _observed(rule.breach, thing, read))
    except rule_engine.errors.LookupError as exc:
        if isinstance(exc.item, str):  # a segment or KPI the bundle does not have
            return _Outcome(Status.MISSING, f"evidence missing: no entry {exc.item!r} in {rule.breach_text!r}", {})
        return _Outcome(Status.ERROR, f"evaluation failed: no item {exc.item!r} in {rule.breach_text!r}", {})
    except (rule_engine.errors.EngineError, ArithmeticError, TypeError, ValueError) as exc:
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return _Outcome(Status.ERROR, f"evaluation failed: {message}", {})


def _condition(compiled: CompiledCondition, thing: Any) -> bool:
    result = compiled.evaluate(thing)
    if not isinstance(result, bool):
        raise TypeError(f"the condition gave {result!r}, not true or false")
    return result


def _observed(compiled: rule_engine.Rule, thing: Any, memo: dict[MemoKey, Any] | None = None
              ) -> dict[str, float | str | None]:
    return {name: _json_value(value) for name, value in sorted(observed_values(compiled.statement, thing,
                                                                               memo).items())
            if not isinstance(value, Mapping | tuple | list)}


def _segments_for(rule: CompiledRule, bundle: EvidenceBundle) -> list[str]:
    return sorted(key for key in bundle.segments
                  if rule.rule.dimension is None or key.split(":", 1)[0] == rule.rule.dimension)


def evaluate_rule(rule: CompiledRule, policy: CompiledPolicy, system: AISystem, bundle: EvidenceBundle,
                  at: datetime.datetime, history: Sequence[EvidenceBundle]) -> list[Finding]:
    """The findings of one rule: one, or one per segment for segment-scoped rules.

    Args:
        rule: the compiled rule.
        policy: the policy it belongs to.
        system: the system the bundle measures.
        bundle: the bundle to judge.
        at: the evaluation time (``$now``, and the reference for freshness).
        history: earlier bundles of the system, most recent first.
    """
    return [_finding(rule, policy, bundle, at, segment, consecutive, outcome)
            for segment, consecutive, outcome in rule_outcomes(rule, policy, system, bundle, at, history, _run)]


Runner = Callable[[CompiledRule, "_Snapshot"], "_Outcome"]


def rule_outcomes(rule: CompiledRule, policy: CompiledPolicy, system: AISystem, bundle: EvidenceBundle,
                  at: datetime.datetime, history: Sequence[EvidenceBundle], run: Runner
                  ) -> list[tuple[str | None, int, _Outcome]]:
    """(segment, consecutive breaches, outcome) of one rule: the control flow every evaluation shares.

    `run` judges the rule on one snapshot: `_run` explains each outcome for a finding; back-testing
    passes a runner that only needs the status. Segments, freshness and sustained breaches are
    decided here, so both give the same statuses.
    """
    previous = history[0] if history else None
    max_age = rule.rule.max_age or policy.policy.max_age
    age = at - bundle.window_end
    segments: list[str | None]
    if rule.rule.scope is Scope.SEGMENTS:
        segments = list(_segments_for(rule, bundle))
        if not segments:
            dim = f" of dimension {rule.rule.dimension!r}" if rule.rule.dimension else ""
            return [(None, 0, _Outcome(Status.MISSING, f"evidence missing: the bundle has no segments{dim}", {}))]
    else:
        segments = [None]
    outcomes: list[tuple[str | None, int, _Outcome]] = []
    for segment in segments:
        if at < bundle.measured_at:
            outcomes.append((segment, 0, _Outcome(
                Status.MISSING, f"evidence not yet available: measured at {bundle.measured_at.isoformat()}, after "
                f"the evaluation time {at.isoformat()}", {})))
            continue
        if max_age is not None and age > max_age:
            outcomes.append((segment, 0, _Outcome(
                Status.MISSING, f"evidence stale: the window ended {_days(age)} before evaluation, max_age is "
                f"{format_duration(max_age)}", {})))
            continue
        with evaluation_time(at):
            outcome = run(rule, _Snapshot(system, bundle, previous, segment))
            consecutive = 1 if outcome.status is Status.BREACH else 0
            if outcome.status is Status.BREACH and rule.rule.sustained > 1:
                consecutive = _consecutive_breaches(rule, system, bundle, history, segment, rule.rule.sustained, run)
                if consecutive < rule.rule.sustained:
                    outcome = _Outcome(Status.WARN, f"{outcome.explanation}; held in {consecutive} of "
                                       f"{rule.rule.sustained} consecutive bundles required to breach",
                                       outcome.observed)
        outcomes.append((segment, consecutive, outcome))
    return outcomes


def _days(delta: datetime.timedelta) -> str:
    days = delta.total_seconds() / 86400
    return f"{days:.1f} days"


def _adjacent(earlier: EvidenceBundle, later: EvidenceBundle) -> bool:
    """Whether `earlier`'s window ends where `later`'s starts, give or take a day or a tenth of a window."""
    slack = max(datetime.timedelta(days=1), (later.window_end - later.window_start) / 10)
    return abs(later.window_start - earlier.window_end) <= slack


def _consecutive_breaches(rule: CompiledRule, system: AISystem, current: EvidenceBundle,
                          history: Sequence[EvidenceBundle], segment: str | None, needed: int, run: Runner) -> int:
    count = 1
    later = current
    for index, earlier in enumerate(history[: needed - 1]):
        before = history[index + 1] if index + 1 < len(history) else None
        if not _adjacent(earlier, later):
            break  # a missing window breaks the run: consecutive means consecutive windows
        if segment is not None and segment not in earlier.segments:
            break
        later = earlier
        if run(rule, _Snapshot(system, earlier, before, segment)).status is not Status.BREACH:
            break
        count += 1
    return count


def _finding(rule: CompiledRule, policy: CompiledPolicy, bundle: EvidenceBundle, at: datetime.datetime,
             segment: str | None, consecutive: int, outcome: _Outcome) -> Finding:
    return Finding(
        system_id=bundle.system_id, policy=policy.policy.id, policy_version=policy.policy.version,
        policy_digest=policy.digest, rule=rule.rule.id, title=rule.rule.title, segment=segment,
        status=outcome.status, severity=rule.rule.severity, bundle_digest=_derived(bundle).digest,
        model_version=bundle.model_version, window_start=bundle.window_start, window_end=bundle.window_end,
        measurable_at=_measurable_at(bundle), evaluated_at=at, condition=rule.breach_text,
        observed=outcome.observed, thresholds=rule.thresholds,
        consecutive=consecutive, sustained=rule.rule.sustained, controls=rule.rule.controls,
        explanation=outcome.explanation, remediation=rule.rule.remediation)


def _measurable_at(bundle: EvidenceBundle) -> datetime.datetime | None:
    """When late labels made the window measurable, if after its end (so MTTD runs from then, not earlier)."""
    sufficient = bundle.provenance.labels_sufficient_at if bundle.provenance is not None else None
    return sufficient if sufficient is not None and sufficient > bundle.window_end else None


def applicable(policies: Iterable[CompiledPolicy], system: AISystem) -> list[CompiledPolicy]:
    """The policies whose ``applies_to`` selects `system`."""
    return [p for p in policies if p.policy.applies_to.matches(system)]


_Item = TypeVar("_Item")


def in_window_order(items: Sequence[_Item], bundle_of: Callable[[_Item], EvidenceBundle]) -> list[_Item]:
    """`items` by their bundle's window end, ties broken by the bundle's digest.

    Digests (a canonical serialization and a hash each) are computed only for ties, so ordering a
    system's whole history stays cheap when it is done once per bundle.
    """
    ordered = sorted(items, key=lambda item: bundle_of(item).window_end)
    start = 0
    for index in range(1, len(ordered) + 1):
        if index == len(ordered) or bundle_of(ordered[index]).window_end != bundle_of(ordered[start]).window_end:
            if index - start > 1:
                ordered[start:index] = sorted(ordered[start:index], key=lambda item: bundle_of(item).digest())
            start = index
    return ordered


def history_for(bundle: EvidenceBundle, bundles: Iterable[EvidenceBundle]) -> list[EvidenceBundle]:
    """Bundles of the same system whose window ended before this one's, most recent first."""
    earlier = [b for b in bundles if b.system_id == bundle.system_id and b.window_end < bundle.window_end]
    return in_window_order(earlier, lambda b: b)[::-1]


def evaluate_bundle(system: AISystem, bundle: EvidenceBundle, policies: Iterable[CompiledPolicy],
                    at: datetime.datetime, previous: Iterable[EvidenceBundle] = ()) -> list[Finding]:
    """Evaluate one bundle against every applicable policy. Never raises on bad evidence values.

    Args:
        system: the registered system the bundle measures.
        bundle: the evidence.
        policies: compiled policies; those that do not apply to `system` are skipped.
        at: the evaluation time; timezone-aware.
        previous: earlier bundles of the system, in any order (others are ignored).

    Returns:
        Findings ordered by policy, rule (as written) and segment.
    """
    if bundle.system_id != system.id:
        raise ValueError(f"bundle of {bundle.system_id!r} evaluated as system {system.id!r}")
    history = history_for(bundle, previous)
    findings: list[Finding] = []
    for policy in sorted(applicable(policies, system), key=lambda p: p.policy.id):
        for rule in policy.rules:
            findings.extend(evaluate_rule(rule, policy, system, bundle, at, history))
    return findings


def findings_json(findings: Sequence[Finding]) -> str:
    """Deterministic JSON for findings: sorted keys, ISO timestamps, stable float text."""
    return json.dumps([f.model_dump(mode="json") for f in findings], sort_keys=True, indent=2,
                      ensure_ascii=False, allow_nan=False)
