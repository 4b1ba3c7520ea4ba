"""Back-testing: what a candidate policy version would have found on the evidence already in the ledger.

A risk team changes a threshold and wants to know, before publishing, which breaches and incidents
would have appeared, disappeared or changed severity. `backtest` re-evaluates every stored bundle
against the candidate policies as `charter submit` judged it (at the time it was evaluated, with
the history the ledger held then and its system as registered then) and compares the statuses with
the summary of the findings recorded then. Nothing is written. Systems are independent, so they are
taken one at a time (memory stays that of one system) and, on a large ledger, split between worker
processes.

Evaluation takes the fast path: each policy's rules run as one generated function per namespace
(`compile_policy`), statuses only, no explanations; a rule the compiled code cannot decide is
judged by the same code `charter submit` uses. The control flow (segments, freshness, sustained
breaches) is `evaluate.rule_outcomes` itself, so a back-test of the recorded policies reproduces
the recorded statuses exactly.
"""

from __future__ import annotations

import bisect
import concurrent.futures
import datetime
import gc
import multiprocessing
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ._gc import collector_paused
from ._sources import SourceMap
from .bundle import EvidenceBundle
from .errors import CharterError
from .evaluate import (
    NamespaceViews,
    Status,
    _freeze,
    _Outcome,
    _run,
    _Snapshot,
    applicable,
    in_window_order,
    rule_outcomes,
)
from .frameworks import FrameworkSet
from .kpis import KpiCatalog
from .ledger.auditor import SYSTEM_REGISTERED
from .ledger.store import Ledger
from .policy.compile import BREACH, MISSING, PASS, REFERENCE, WARN, PolicyProgram, RuleSlot, compile_policy
from .policy.compiler import CompiledPolicy, CompiledRule, PolicyCompiler
from .policy.context import evaluation_time
from .policy.expressions import symbols_used
from .policy.model import Scope
from .registry import AISystem
from .submission import BUNDLE, EVALUATION, FINDING, parse_summary_line, summary_line
from .validation import collect_validation_errors

_STATUSES = {PASS: "pass", WARN: "warn", BREACH: "breach", MISSING: "missing"}
_OUTCOMES = {code: _Outcome(Status(status), "", {}) for code, status in _STATUSES.items()}

Key = tuple[str, str, str | None]  # (system, policy/rule, segment)
_EMPTY = _freeze({})


@dataclass(frozen=True)
class _Programs:
    """One policy's rules compiled per scope: the bundle's own values, and each segment's."""

    policy: CompiledPolicy
    bundle: PolicyProgram
    segments: PolicyProgram
    index: dict[str, tuple[bool, int]]  # rule id -> (segment scope, slot)
    #: per rule: (rule, policy/rule, severity, slot, judged directly on the bundle's values in one window,
    #: max_age, its summary line per status)
    plan: tuple[tuple[CompiledRule, str, str, int, bool, datetime.timedelta | None, dict[str, str]], ...]
    reads_clock: bool  # some rule reads $now or $today, so its result depends on the evaluation time


def _slot(rule: CompiledRule) -> RuleSlot:
    needs = [(ref.where, ref.kpi) for ref in sorted(rule.needs, key=str)]
    return RuleSlot(needs=needs, breach=rule.breach, warn=rule.warn)


def _programs(policy: CompiledPolicy) -> _Programs:
    scoped = {False: [r for r in policy.rules if r.rule.scope is not Scope.SEGMENTS],
              True: [r for r in policy.rules if r.rule.scope is Scope.SEGMENTS]}
    index = {r.rule.id: (segment, i) for segment, rules in scoped.items() for i, r in enumerate(rules)}
    clock = any(scope == "built-in" for r in policy.rules for condition in (r.breach, r.warn) if condition is not None
                for scope, _ in symbols_used(condition.statement))
    plan = tuple((r, r.ref, r.rule.severity.value, index[r.rule.id][1],
                  r.rule.scope is not Scope.SEGMENTS and r.rule.sustained == 1, r.rule.max_age or policy.policy.max_age,
                  {status.value: summary_line(r.ref, None, status.value, r.rule.severity.value) for status in Status})
                 for r in policy.rules)
    return _Programs(policy, compile_policy([_slot(r) for r in scoped[False]], "bundle_rules"),
                     compile_policy([_slot(r) for r in scoped[True]], "segment_rules"), index, plan, clock)


class StatusEvaluator:
    """Statuses of every applicable rule for one bundle, as `evaluate_bundle` would give them, fast."""

    def __init__(self, policies: Sequence[CompiledPolicy]) -> None:
        self.policies = sorted(policies, key=lambda p: p.policy.id)
        self._programs = {p.digest: _programs(p) for p in self.policies}
        self._codes: dict[tuple[Any, ...], list[int]] = {}
        self._namespaces: dict[tuple[int, int, int, str | None], Any] = {}
        self._applies: dict[str, tuple[AISystem, list[CompiledPolicy]]] = {}
        self._systems: dict[str, tuple[AISystem, Any, Any]] = {}
        self._kpi_views: dict[int, tuple[EvidenceBundle, Any]] = {}
        self.reference_calls = 0
        self.raised = 0  # reference evaluations that ended in an exception (they may leave cycles)

    def _applicable(self, system: AISystem) -> list[CompiledPolicy]:
        known = self._applies.get(system.id)
        if known is None or known[0] is not system:
            known = self._applies[system.id] = (system, applicable(self.policies, system))
        return known[1]

    def _views(self, snap: _Snapshot) -> NamespaceViews:
        """The namespace's read-only parts, shared between the bundles of a system (see `NamespaceViews`)."""
        system = self._systems.get(snap.system.id)
        if system is None or system[0] is not snap.system:
            system = self._systems[snap.system.id] = (snap.system, _freeze(snap.system.rule_view()),
                                                      _freeze(snap.system.baseline))
        return NamespaceViews(system[1], system[2], self._kpis(snap.bundle),
                              self._kpis(snap.previous) if snap.previous is not None else _EMPTY)

    def _kpis(self, bundle: EvidenceBundle) -> Any:
        known = self._kpi_views.get(id(bundle))
        if known is None or known[0] is not bundle:
            known = self._kpi_views[id(bundle)] = (bundle, _freeze(bundle.kpis))
        return known[1]

    def forget(self) -> None:
        """Drop the per-bundle caches (call between systems: they are keyed by object identity)."""
        self._codes.clear()
        self._namespaces.clear()
        self._kpi_views.clear()

    def _codes_for(self, programs: _Programs, snap: _Snapshot, segment_scope: bool,
                   at: datetime.datetime) -> list[int]:
        # the namespace depends on the system as registered and on the previous bundle, not only the bundle
        spaces = (id(snap.bundle), id(snap.previous), id(snap.system), snap.segment)
        key = (*spaces, programs.policy.digest, at if programs.reads_clock else None)
        codes = self._codes.get(key)
        if codes is None:
            namespace = self._namespaces.get(spaces)
            if namespace is None:
                namespace = self._namespaces[spaces] = snap.namespace(self._views)
            program = programs.segments if segment_scope else programs.bundle
            codes = self._codes[key] = program.run(namespace)
        return codes

    def _runner(self, programs: _Programs, at: datetime.datetime) -> Callable[[CompiledRule, _Snapshot], _Outcome]:
        def run(rule: CompiledRule, snap: _Snapshot) -> _Outcome:
            segment_scope, slot = programs.index[rule.rule.id]
            code = self._codes_for(programs, snap, segment_scope, at)[slot]
            return self._reference(rule, snap) if code == REFERENCE else _OUTCOMES[code]
        return run

    def _reference(self, rule: CompiledRule, snap: _Snapshot) -> _Outcome:
        """Judge a rule the compiled code could not decide by the submission path, which also words its errors."""
        self.reference_calls += 1
        outcome = _run(rule, snap)
        self.raised += outcome.status is Status.ERROR or outcome.status is Status.MISSING
        return outcome

    def statuses(self, system: AISystem, bundle: EvidenceBundle, at: datetime.datetime,
                 history: Sequence[EvidenceBundle]) -> dict[Key, tuple[str, str]]:
        """(system, policy/rule, segment) -> (status, severity) for one bundle, as plain strings."""
        lines, _ = self.lines(system, bundle, at, history)
        return {(system.id, ref, segment): (status, severity)
                for ref, segment, status, severity in map(parse_summary_line, lines)}

    def lines(self, system: AISystem, bundle: EvidenceBundle, at: datetime.datetime,
              history: Sequence[EvidenceBundle]) -> tuple[list[str], list[str]]:
        """The bundle's status summary as `charter submit` would record it, and the statuses alone.

        Lines are in the order `evaluate_bundle` makes findings, the order of the evaluation entry's
        summary (`submission.status_summary`), so an unchanged bundle compares as one list equality.
        Rules judged on the bundle's own values in one window (no segments, no sustained breach)
        take a direct path; the others go through `rule_outcomes`, the evaluator's own control flow.
        """
        out: list[str] = []
        statuses: list[str] = []
        previous = history[0] if history else None
        snap = _Snapshot(system, bundle, previous, None)
        age = at - bundle.window_end
        not_yet = at < bundle.measured_at
        with evaluation_time(at):
            for policy in self._applicable(system):
                programs = self._programs[policy.digest]
                run = self._runner(programs, at)
                codes: list[int] | None = None
                for rule, ref, severity, slot, direct, max_age, texts in programs.plan:
                    if not direct:
                        for segment, _, outcome in rule_outcomes(rule, policy, system, bundle, at, history, run):
                            out.append(summary_line(ref, segment, outcome.status.value, severity))
                            statuses.append(outcome.status.value)
                        continue
                    if not_yet or (max_age is not None and age > max_age):
                        status = "missing"
                    else:
                        if codes is None:
                            codes = self._codes_for(programs, snap, False, at)
                        code = codes[slot]
                        status = self._reference(rule, snap).status.value if code == REFERENCE else _STATUSES[code]
                    out.append(texts[status])
                    statuses.append(status)
        return out, statuses


@dataclass(frozen=True)
class StoredBundle:
    """A bundle as stored in the ledger, with the time it was evaluated and its findings' ids."""

    seq: int
    submission_id: str
    bundle: EvidenceBundle
    evaluated_at: datetime.datetime
    findings: int
    #: what was recorded: the evaluation entry's summary lines (None in ledgers written before it existed)
    summary: list[str] | None = None


@dataclass
class Change:
    """One (system, rule, segment) on one bundle whose status differs between recorded and candidate."""

    system: str
    rule: str
    segment: str | None
    window_end: str
    seq: int = field(metadata={"doc": "the bundle's ledger seq"})
    recorded: str
    candidate: str
    recorded_severity: str | None
    candidate_severity: str | None


@dataclass
class BacktestReport:
    """What the candidate policies would have changed."""

    bundles: int = 0
    systems: int = 0
    rule_evaluations: int = 0
    reference_calls: int = 0
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    breaches_appeared: list[Change] = field(default_factory=list)
    breaches_disappeared: list[Change] = field(default_factory=list)
    severity_changed: list[Change] = field(default_factory=list)
    incidents_appeared: list[Key] = field(default_factory=list)
    incidents_disappeared: list[Key] = field(default_factory=list)
    by_rule: Counter[tuple[str, str]] = field(default_factory=Counter)  # (rule, kind) -> count

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        def changes(items: list[Change]) -> list[dict[str, Any]]:
            return [vars(c) for c in items]

        return {
            "bundles": self.bundles, "systems": self.systems, "rule_evaluations": self.rule_evaluations,
            "reference_calls": self.reference_calls,
            "transitions": [{"recorded": r, "candidate": c, "count": n}
                            for (r, c), n in sorted(self.transitions.items())],
            "breaches_appeared": changes(self.breaches_appeared),
            "breaches_disappeared": changes(self.breaches_disappeared),
            "severity_changed": changes(self.severity_changed),
            "incidents_appeared": [{"system": s, "rule": r, "segment": g} for s, r, g in self.incidents_appeared],
            "incidents_disappeared": [{"system": s, "rule": r, "segment": g}
                                      for s, r, g in self.incidents_disappeared],
            "by_rule": [{"rule": rule, "change": kind, "count": n} for (rule, kind), n in sorted(self.by_rule.items())],
        }


def stored_bundles(ledger: Ledger, system: str | None = None) -> list[StoredBundle]:
    """Every stored bundle (of `system`) with its evaluation time and recorded statuses, in ledger order."""
    evaluations: dict[str, Any] = {}
    bundles = []
    for seq, entry_type, submission_id, payload in ledger.stream_payloads((BUNDLE, EVALUATION), system):
        if entry_type == EVALUATION:
            evaluations[submission_id.split(":", 1)[1]] = payload
            continue
        # Stored bundles passed the schema and the KPI catalog when they were submitted, and `charter
        # verify` proves they are unchanged; re-checking the catalog here would only refuse history
        # that a later catalog no longer describes.
        try:
            bundles.append((seq, submission_id, EvidenceBundle.model_validate(payload)))
        except ValidationError as exc:
            raise CharterError(collect_validation_errors(exc, None, code="bundle_schema",
                                                         file=f"ledger entry {seq}")) from exc
    stored = []
    for seq, submission_id, bundle in bundles:
        evaluation = evaluations.get(submission_id, {})
        text = evaluation.get("evaluated_at")
        # without a recorded evaluation time, judge the bundle as of when it was measured
        at = datetime.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else bundle.measured_at
        stored.append(StoredBundle(seq, submission_id, bundle, at, int(evaluation.get("findings", 0)),
                                   evaluation.get("statuses")))
    return stored


def recorded_lines(ledger: Ledger, bundles: Sequence[StoredBundle]) -> dict[int, list[str]]:
    """Bundle seq -> the status summary recorded at submission (`submission.status_summary` lines).

    The evaluation entry's summary answers for most bundles; the findings themselves are read for
    bundles evaluated before the summary was recorded.
    """
    out: dict[int, list[str]] = {b.seq: b.summary for b in bundles if b.summary is not None}
    unsummarised = [b for b in bundles if b.summary is None]
    ids = [f"{FINDING}:{b.submission_id}:{i}" for b in unsummarised for i in range(b.findings)]
    found: dict[str, Any] = {entry.submission_id: entry.payload for entry in ledger.by_submissions(ids)}
    for item in unsummarised:
        lines = []
        for index in range(item.findings):
            p = found.get(f"{FINDING}:{item.submission_id}:{index}")
            if p is not None:
                lines.append(summary_line(f"{p['policy']}/{p['rule']}", p.get("segment"), p["status"], p["severity"]))
        out[item.seq] = lines
    return out


def recorded_statuses(ledger: Ledger, bundles: Sequence[StoredBundle]) -> dict[int, dict[Key, tuple[str, str]]]:
    """Bundle seq -> key -> (status, severity) recorded at submission (see `recorded_lines`)."""
    system_of = {b.seq: b.bundle.system_id for b in bundles}
    return {seq: {(system_of[seq], ref, segment): (status, severity)
                  for ref, segment, status, severity in map(parse_summary_line, lines)}
            for seq, lines in recorded_lines(ledger, bundles).items()}


def backtest(ledger: Ledger, policies: Sequence[CompiledPolicy], *,
             since: datetime.datetime | None = None, system: str | None = None,
             progress: Callable[[int, int], None] | None = None, chunk: int = 500, jobs: int = 1,
             parallel_from: int = 20_000, catalog: KpiCatalog | None = None,
             frameworks: FrameworkSet | None = None) -> BacktestReport:
    """Compare the candidate `policies` with the findings recorded for the stored bundles.

    Args:
        ledger: the ledger to read (nothing is written).
        policies: the candidate policy set.
        since: only bundles whose window ends at or after this time (earlier ones still serve as history).
        system: only this system.
        progress: called now and then with (bundles read, bundles in the ledger).
        chunk: bundles whose recorded findings are read per query.
        jobs: worker processes; systems are independent, so a large ledger is split between them.
        parallel_from: below this many bundles one process is quicker than starting workers.
        catalog: the KPI catalog the policies were compiled with (workers compile them again).
        frameworks: the control catalogs they were compiled with.
    """
    registrations = _registrations(ledger)
    systems = [system] if system is not None else sorted(registrations)
    total = ledger.count_entries((BUNDLE,), system)
    depth = 1 + max((r.rule.sustained for p in policies for r in p.rules), default=1)
    if jobs > 1 and len(systems) > 1 and total >= parallel_from:
        parts = _in_workers(ledger, policies, systems, since, chunk, depth, jobs, total, progress, catalog,
                            frameworks)
    else:
        run = _Run(ledger, registrations, StatusEvaluator(policies), since, chunk, depth)
        tick = (lambda read: progress(read, total)) if progress is not None else None
        with collector_paused():  # one system at a time: memory stays that of one system's history
            for system_id in systems:
                run.system(system_id, tick)
                if tick is not None:
                    tick(run.read)
        run.report.reference_calls = run.evaluator.reference_calls
        parts = [run.outcome()]
    return _merge(parts)


@dataclass
class _Part:
    """What one process found: its share of the report and the incident keys it saw breach."""

    report: BacktestReport
    recorded_breaches: set[Key]
    candidate_breaches: set[Key]
    breached_before: set[Key]
    read: int


def _merge(parts: Sequence[_Part]) -> BacktestReport:
    report = BacktestReport()
    recorded: set[Key] = set()
    candidate: set[Key] = set()
    before: set[Key] = set()
    for part in parts:
        piece = part.report
        report.bundles += piece.bundles
        report.systems += piece.systems
        report.rule_evaluations += piece.rule_evaluations
        report.reference_calls += piece.reference_calls
        report.transitions.update(piece.transitions)
        report.by_rule.update(piece.by_rule)
        report.breaches_appeared += piece.breaches_appeared
        report.breaches_disappeared += piece.breaches_disappeared
        report.severity_changed += piece.severity_changed
        recorded |= part.recorded_breaches
        candidate |= part.candidate_breaches
        before |= part.breached_before
    for changes in (report.breaches_appeared, report.breaches_disappeared, report.severity_changed):
        changes.sort(key=lambda c: (c.system, c.rule, c.segment or "", c.window_end, c.seq))
    report.incidents_appeared = sorted(candidate - recorded - before, key=_key_order)
    report.incidents_disappeared = sorted(recorded - candidate, key=_key_order)
    return report


_WORKER: dict[str, Any] = {}


def _worker_start(url: str, documents: list[tuple[Any, str]], catalog: KpiCatalog, frameworks: FrameworkSet,
                  since: datetime.datetime | None, chunk: int, depth: int) -> None:
    """Open the ledger and compile the candidate policies once per worker process."""
    compiled = PolicyCompiler(catalog, frameworks).compile_documents(
        [(document, SourceMap(file)) for document, file in documents])
    ledger = Ledger.open(url, read_only=True)
    _WORKER.update(ledger=ledger, policies=compiled.policies, registrations=_registrations(ledger), since=since,
                   chunk=chunk, depth=depth)


def _worker_systems(system_ids: list[str]) -> _Part:
    """Back-test some systems in a worker process."""
    run = _Run(_WORKER["ledger"], _WORKER["registrations"], StatusEvaluator(_WORKER["policies"]), _WORKER["since"],
               _WORKER["chunk"], _WORKER["depth"])
    with collector_paused():
        for system_id in system_ids:
            run.system(system_id)
    run.report.reference_calls = run.evaluator.reference_calls
    return run.outcome()


def _in_workers(ledger: Ledger, policies: Sequence[CompiledPolicy], systems: list[str],
                since: datetime.datetime | None, chunk: int, depth: int, jobs: int, total: int,
                progress: Callable[[int, int], None] | None, catalog: KpiCatalog | None,
                frameworks: FrameworkSet | None) -> list[_Part]:
    """Split the systems between `jobs` processes (spawned: no database connection is shared)."""
    from .frameworks import load_frameworks
    from .kpis import builtin_catalog

    catalog = catalog if catalog is not None else builtin_catalog()
    frameworks = frameworks if frameworks is not None else load_frameworks()
    documents = [(p.policy.model_dump(mode="json"), p.file) for p in policies]
    url = ledger.engine.url.render_as_string(hide_password=False)
    batches = [systems[i:i + 8] for i in range(0, len(systems), 8)]
    parts: list[_Part] = []
    read = 0
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_start,
                                                initargs=(url, documents, catalog, frameworks, since, chunk,
                                                          depth)) as pool:
        for part in pool.map(_worker_systems, batches):
            parts.append(part)
            read += part.read
            if progress is not None:
                progress(read, total)
    return parts


@dataclass
class _Run:
    """The state of one back-test as it walks the systems."""

    ledger: Ledger
    registrations: dict[str, list[tuple[int, AISystem]]]
    evaluator: StatusEvaluator
    since: datetime.datetime | None
    chunk: int
    depth: int
    report: BacktestReport = field(default_factory=BacktestReport)
    recorded_breaches: set[Key] = field(default_factory=set)
    candidate_breaches: set[Key] = field(default_factory=set)
    breached_before: set[Key] = field(default_factory=set)  # recorded breaches before `since`
    read: int = 0

    def outcome(self) -> _Part:
        """What this run found, for merging."""
        return _Part(self.report, self.recorded_breaches, self.candidate_breaches, self.breached_before, self.read)

    def system(self, system_id: str, progress: Callable[[int], None] | None = None) -> None:
        """Re-evaluate one system's bundles in scope, each with its history, and compare."""
        items = _in_window_order(stored_bundles(self.ledger, system_id))
        ends = [b.bundle.window_end for b in items]
        scoped = [b for b in items if self.since is None or b.bundle.window_end >= self.since]
        before = [b for b in items if self.since is not None and b.bundle.window_end < self.since]
        if before:  # an incident key that breached before the window is not new when it breaches in it
            for lines in recorded_lines(self.ledger, before).values():
                self.breached_before.update((system_id, ref, segment) for ref, segment, status, _
                                            in map(parse_summary_line, lines) if status == "breach")
        self.read += len(items) - len(scoped)
        self.report.bundles += len(scoped)
        self.report.systems += bool(scoped)
        self.evaluator.forget()
        raised = self.evaluator.raised
        for start in range(0, len(scoped), self.chunk):
            part = scoped[start:start + self.chunk]
            recorded = recorded_lines(self.ledger, part)
            for item in part:
                history = _history(items, bisect.bisect_left(ends, item.bundle.window_end), item.seq, self.depth)
                registered = _as_registered(self.registrations[system_id], item.seq)
                candidate, statuses = self.evaluator.lines(registered, item.bundle, item.evaluated_at, history)
                _compare(self.report, item, recorded[item.seq], candidate, statuses, self.recorded_breaches,
                         self.candidate_breaches)
                self.report.rule_evaluations += len(candidate)
                self.read += 1
                if progress is not None and self.read % 250 == 0:
                    progress(self.read)
        # The collector is paused during the run, and a rule that errors on rule-engine leaves a few
        # cycles behind: collect this system's young objects then (not the whole heap, which may be large).
        if self.evaluator.raised != raised:
            gc.collect(0)


def _history(items: Sequence[StoredBundle], earlier: int, seq: int, depth: int) -> list[EvidenceBundle]:
    """The bundle's history as `charter submit` saw it: earlier windows already in the ledger, latest first.

    `items` are in window order and `earlier` counts those whose window ends before this one; a
    bundle submitted later (a backfill) was not there when this one was evaluated.
    """
    history: list[EvidenceBundle] = []
    for index in range(earlier - 1, -1, -1):
        if items[index].seq < seq:
            history.append(items[index].bundle)
            if len(history) == depth:
                break
    return history


def _registrations(ledger: Ledger) -> dict[str, list[tuple[int, AISystem]]]:
    """Every registration of every system, in ledger order: a bundle is judged as its system stood then."""
    out: dict[str, list[tuple[int, AISystem]]] = defaultdict(list)
    for seq, _, _, payload in ledger.stream_payloads((SYSTEM_REGISTERED,)):
        system = AISystem.model_validate(payload["system"])
        out[system.id].append((seq, system))
    return out


def _as_registered(registrations: list[tuple[int, AISystem]], seq: int) -> AISystem:
    """The system as registered before entry `seq` (its submission checked it was registered)."""
    index = bisect.bisect_left(registrations, seq, key=lambda item: item[0])
    return registrations[max(index - 1, 0)][1]


def _in_window_order(items: list[StoredBundle]) -> list[StoredBundle]:
    """By window end, ties broken by digest, as `history_for` orders them."""
    return in_window_order(items, lambda stored: stored.bundle)


def _key_order(key: Key) -> tuple[str, str, str]:
    return key[0], key[1], key[2] or ""


_TRANSITION_NAMES: dict[tuple[str, str], str] = {}


def _transition(before: str, now: str) -> str:
    name = _TRANSITION_NAMES.get((before, now))
    if name is None:
        name = _TRANSITION_NAMES[(before, now)] = f"{before} -> {now}"
    return name


def _compare(report: BacktestReport, item: StoredBundle, recorded_lines: list[str], candidate_lines: list[str],
             candidate_statuses: list[str], recorded_breaches: set[Key], candidate_breaches: set[Key]) -> None:
    system = item.bundle.system_id
    transitions = report.transitions
    if recorded_lines == candidate_lines:  # the usual case: count, nothing to list
        for status in set(candidate_statuses):
            transitions[(status, status)] += candidate_statuses.count(status)
        if "breach" in candidate_statuses:
            for line, status in zip(candidate_lines, candidate_statuses, strict=True):
                if status == "breach":
                    ref, segment, _, _ = parse_summary_line(line)
                    recorded_breaches.add((system, ref, segment))
                    candidate_breaches.add((system, ref, segment))
        return
    recorded = [parse_summary_line(line) for line in recorded_lines]
    candidate = [parse_summary_line(line) for line in candidate_lines]
    pairs: list[tuple[Key, tuple[str, Any], tuple[str, Any]]] = []
    if len(recorded) == len(candidate) and all(
            r[0] == c[0] and r[1] == c[1] for r, c in zip(recorded, candidate, strict=True)):
        for r, c in zip(recorded, candidate, strict=True):  # the same findings, some with another status
            if r != c:
                pairs.append(((system, r[0], r[1]), (r[2], r[3]), (c[2], c[3])))
                continue
            transitions[(r[2], r[2])] += 1
            if r[2] == "breach":
                recorded_breaches.add((system, r[0], r[1]))
                candidate_breaches.add((system, r[0], r[1]))
    else:  # rules or segments differ: match by key
        recorded_by_key = {(system, r[0], r[1]): (r[2], r[3]) for r in recorded}
        candidate_by_key = {(system, c[0], c[1]): (c[2], c[3]) for c in candidate}
        pairs = [(key, recorded_by_key.get(key, ("absent", None)), candidate_by_key.get(key, ("absent", None)))
                 for key in recorded_by_key.keys() | candidate_by_key.keys()]
    window = item.bundle.window_end.isoformat()
    for key, (before, before_severity), (now, now_severity) in pairs:
        transitions[(before, now)] += 1
        if before == "breach":
            recorded_breaches.add(key)
        if now == "breach":
            candidate_breaches.add(key)
        if before == now and (before != "breach" or before_severity == now_severity):
            continue
        change = Change(key[0], key[1], key[2], window, item.seq, before, now, before_severity, now_severity)
        if now == "breach" and before != "breach":
            report.breaches_appeared.append(change)
            report.by_rule[(key[1], "breach appeared")] += 1
        elif before == "breach" and now != "breach":
            report.breaches_disappeared.append(change)
            report.by_rule[(key[1], "breach disappeared")] += 1
        elif before == now == "breach":
            report.severity_changed.append(change)
            report.by_rule[(key[1], "severity changed")] += 1
        else:
            report.by_rule[(key[1], _transition(before, now))] += 1


def summary_rows(report: BacktestReport) -> Iterable[tuple[str, int]]:
    """The headline counts, for printing."""
    yield "bundles re-evaluated", report.bundles
    yield "rule results compared", report.rule_evaluations
    yield "breaches that would appear", len(report.breaches_appeared)
    yield "breaches that would disappear", len(report.breaches_disappeared)
    yield "breaches whose severity would change", len(report.severity_changed)
    yield "incident keys that would appear", len(report.incidents_appeared)
    yield "incident keys that would disappear", len(report.incidents_disappeared)
