"""Back-testing a 40-rule policy over a year of daily bundles, per phase, against baselines in the same run.

Builds a SQLite ledger of N systems with D daily bundles each, appended in bulk as `charter submit`
stores them: the bundle and its evaluation entry with the status summary (the 14.6 million finding
entries are left out; back-testing reads the summaries), then times `charter backtest`'s work:

- read: every bundle entry from SQLite, parsed and validated into an `EvidenceBundle`;
- evaluate: the candidate policy (40 rules) on every bundle with its history, compiled, statuses only;
- total: `backtest()` end to end (read, evaluate, and the comparison with what is recorded), with
  `--jobs` worker processes (default: one per core) and again in one process.

The recorded statuses are those of the same 40 rules; the candidate tightens the recall floor, so
the comparison finds real changes.

Baselines measured in the same run: a bare ``SELECT body`` with ``json.loads`` of the bundle entries
(the floor for reading), and rule-engine's own ``Rule.evaluate`` of the same 40 conditions on a
sample of the namespaces (the speed-up of the compiled path over the interpreter).

Target (issue 6): 1,000 systems x 365 days (365,000 bundles x 40 rules) from SQLite in under 30 s.

    python bench/backtest.py [--systems 1000] [--days 365] [--jobs N] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import os
import random
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from charter._data import builtin_dir
from charter.authority import active_escalation
from charter.backtest import StatusEvaluator, backtest, stored_bundles
from charter.bundle import EvidenceBundle
from charter.cli.demo import demo_governance
from charter.evaluate import _Snapshot, evaluate_bundle
from charter.frameworks import load_frameworks
from charter.incidents import INCIDENT_TYPES, IncidentBook, apply, incident_entries
from charter.kpis import builtin_catalog
from charter.ledger import Ledger, SigningKey
from charter.ledger.records import NewEntry
from charter.ledger.schema import ledger_entry
from charter.policy import PolicyCompiler, policy_files
from charter.policy.compiler import CompiledPolicy
from charter.policy.context import evaluation_time
from charter.registry import AISystem, SystemRegistry
from charter.submission import BUNDLE, EVALUATION, FINDING, sign_bundle_data, status_summary

BASE = {"recall": 0.9, "precision": 0.86, "f1": 0.88, "roc_auc": 0.93, "pr_auc": 0.72, "accuracy": 0.91,
        "human_override_rate": 0.05, "latency_p95_ms": 150.0, "latency_p50_ms": 60.0, "approval_rate": 0.7,
        "monitoring_coverage": 0.96, "audit_readiness": 0.92, "data_drift_psi": 0.08, "fairness_gap": 0.03,
        "cost_per_prediction": 0.002, "throughput_rps": 120.0, "explainability_coverage": 0.9, "mttd_hours": 6.0,
        "mttr_hours": 20.0, "cpu_utilization": 0.55}

#: 40 rules shaped like the shipped packs: floors and ceilings, drift against the baseline and the
#: previous window, ratios, compound conditions, membership and a freshness check
RULES = [
    ("recall-floor", "kpi: recall\n    min: 0.80\n    warn: 0.85"),
    ("precision-floor", "kpi: precision\n    min: 0.78\n    warn: 0.82"),
    ("f1-floor", "kpi: f1\n    min: 0.80\n    warn: 0.84"),
    ("roc-auc-floor", "kpi: roc_auc\n    min: 0.85\n    warn: 0.88"),
    ("pr-auc-floor", "kpi: pr_auc\n    min: 0.60\n    warn: 0.65"),
    ("accuracy-floor", "kpi: accuracy\n    min: 0.85\n    warn: 0.88"),
    ("override-ceiling", "kpi: human_override_rate\n    max: 0.15\n    warn: 0.10"),
    ("latency-p95", "kpi: latency_p95_ms\n    max: 300\n    warn: 220"),
    ("latency-p50", "kpi: latency_p50_ms\n    max: 120\n    warn: 90"),
    ("monitoring-coverage", "kpi: monitoring_coverage\n    min: 0.90\n    warn: 0.93"),
    ("audit-readiness", "kpi: audit_readiness\n    min: 0.85\n    warn: 0.88"),
    ("drift-psi", "kpi: data_drift_psi\n    max: 0.25\n    warn: 0.15"),
    ("fairness-gap", "kpi: fairness_gap\n    max: 0.10\n    warn: 0.07"),
    ("cost-ceiling", "kpi: cost_per_prediction\n    max: 0.004\n    warn: 0.003"),
    ("throughput-floor", "kpi: throughput_rps\n    min: 60\n    warn: 80"),
    ("explainability", "kpi: explainability_coverage\n    min: 0.80\n    warn: 0.85"),
    ("mttd", "kpi: mttd_hours\n    max: 24\n    warn: 12"),
    ("mttr", "kpi: mttr_hours\n    max: 72\n    warn: 48"),
    ("cpu", "kpi: cpu_utilization\n    max: 0.90\n    warn: 0.80"),
    ("approval-band", "kpi: approval_rate\n    min: 0.5\n    max: 0.9"),
    ("recall-degradation", "when: baseline.recall - recall > 0.05\n    warn_when: baseline.recall - recall > 0.03"),
    ("precision-degradation", "when: baseline.precision - precision > 0.05"),
    ("f1-degradation", "when: baseline.f1 - f1 > 0.06"),
    ("recall-drop", "when: previous.recall - recall > 0.04"),
    ("precision-drop", "when: previous.precision - precision > 0.04"),
    ("override-rise", "when: human_override_rate - previous.human_override_rate > 0.03"),
    ("latency-rise", "when: latency_p95_ms > 1.5 * baseline.latency_p95_ms"),
    ("cost-rise", "when: cost_per_prediction > 1.5 * baseline.cost_per_prediction"),
    ("drift-rise", "when: data_drift_psi > 2 * previous.data_drift_psi and data_drift_psi > 0.1"),
    ("precision-recall-balance", "when: precision / recall > 1.25 or recall / precision > 1.25"),
    ("f1-consistency", "when: f1 > 0.0 and (precision + recall) / 2 - f1 > 0.05"),
    ("auc-gap", "when: roc_auc - pr_auc > 0.35"),
    ("high-tier-override", "when: system.risk_tier == \"high\" and human_override_rate < 0.01"),
    ("high-tier-recall", "when: system.risk_tier in [\"high\", \"unacceptable\"] and recall < 0.85"),
    ("minimal-tier-latency", "when: system.risk_tier == \"minimal\" and latency_p95_ms > 250"),
    ("classifier-auc", "when: system.kind == \"classifier\" and roc_auc < 0.88"),
    ("stale-window", "when: $now - bundle.window_end > t\"P3D\""),
    ("coverage-and-readiness", "when: monitoring_coverage < 0.92 and audit_readiness < 0.9"),
    ("fairness-and-approval", "when: fairness_gap > 0.05 and approval_rate < 0.6"),
    ("mttr-vs-mttd", "when: mttr_hours > 5 * mttd_hours"),
]


#: the candidate tightens one floor, as a risk team would before publishing
CANDIDATE_EDIT = ("kpi: recall\n    min: 0.80\n    warn: 0.85", "kpi: recall\n    min: 0.84\n    warn: 0.87")


def policy_text() -> str:
    """The 40-rule policy as YAML."""
    # a rule gated on the system passes for other systems whatever the evidence: lint allows it only as support
    rules = "".join(f"  - id: {rule_id}\n    title: {rule_id}\n    severity: {('high', 'medium', 'low')[n % 3]}\n"
                    f"    {body}\n    {'supporting_controls' if 'system.' in body else 'controls'}: "
                    "[iso-42001:A.6.2.6]\n" for n, (rule_id, body) in enumerate(RULES))
    return textwrap.dedent("""\
        id: bench.kpis
        version: 1.0.0
        title: Forty KPI rules
        owner: bench
        applies_to: {}
        rules:
        """) + rules


def compile_bench_policy(folder: Path, edit: tuple[str, str] | None = None) -> tuple[CompiledPolicy, ...]:
    """The policy compiled as `charter backtest --policies` would, with an optional textual edit."""
    folder.mkdir(parents=True, exist_ok=True)
    text = policy_text()
    if edit is not None:
        assert edit[0] in text
        text = text.replace(*edit)
    (folder / "bench.yaml").write_text(text)
    return PolicyCompiler(builtin_catalog(), load_frameworks()).compile_files(policy_files(folder)).policies


def build_ledger(url: str, systems: int, days: int, recorded: tuple[CompiledPolicy, ...],
                 seed: int = 5, submitted: bool = False, log_key: SigningKey | None = None) -> Ledger:
    """Systems and their daily bundles, each with the evaluation entry `charter submit` writes for it.

    The evaluation entries carry the status summary of the `recorded` policies (computed with the
    compiled evaluator), which is what a back-test compares against; the individual finding
    entries are left out (14.6 million of them at full scale).

    With `submitted`, the ledger holds everything `charter submit` writes, so that it verifies and
    every finding can be replayed (bench/audit.py): the owner's registered key, the published
    policy version, signed bundles, evaluation entries citing their bundle and policy, one
    entry per finding, from `evaluate_bundle` itself, and the incident entries its breaches cause
    (`incidents.incident_entries`, as `charter submit` writes them, so `charter audit` re-derives
    them). The bundles are the same either way.
    """
    rng = random.Random(seed)
    log_key = log_key or SigningKey.generate("bench.example/ledger")
    ledger = Ledger.open(url, log_key=log_key, origin="bench.example/ledger", create=True)
    fleet = [AISystem(id=f"sys-{n:04d}", name=f"System {n}", owner="maria.keller", kind="classifier",
                      risk_tier=("high", "limited", "minimal")[n % 3],
                      baseline={"recall": 0.9, "precision": 0.86, "f1": 0.88, "latency_p95_ms": 150.0,
                                "cost_per_prediction": 0.002}) for n in range(systems)]
    # The authority set-up every ledger starts with: trust root, keys, systems, the policy in force.
    keys = demo_governance(ledger, SystemRegistry({s.id: s for s in fleet}), recorded,
                           builtin_dir("policies") / "escalation.yaml")
    signer = keys["maria.keller"]
    published = {digest: int(record[3]) for digest, record in ledger.authority().policies.items()}
    evaluator = StatusEvaluator(recorded)
    graph, _ = active_escalation(ledger)
    book = IncidentBook()
    earlier: dict[str, list[EvidenceBundle]] = {s.id: [] for s in fleet}
    drift = {s.id: rng.uniform(0.0, 0.0003) for s in fleet}
    start = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    for day in range(days):
        window_start = start + datetime.timedelta(days=day)
        window_end = window_start + datetime.timedelta(days=1)
        measured = window_end + datetime.timedelta(hours=2)
        batch: list[Any] = []
        for system in fleet:
            kpis = {k: round(max(0.0, v - drift[system.id] * day + rng.uniform(-0.03, 0.03)), 4) if v <= 1
                    else round(v * rng.uniform(0.7, 1.6), 1) for k, v in BASE.items()}
            payload = {"system_id": system.id, "model_version": "1.0.0", "window_start": window_start.isoformat(),
                       "window_end": window_end.isoformat(), "measured_at": measured.isoformat(), "kpis": kpis,
                       "submitter": system.owner}
            bundle = EvidenceBundle.model_validate(payload)
            history = earlier[system.id][::-1]
            earlier[system.id] = [*earlier[system.id][-2:], bundle]
            submission = f"bundle:bench:{system.id}:{day}"
            if submitted:
                batch.append(_submission(system, payload, bundle, measured, history, recorded, published, signer,
                                         submission))
                continue
            lines, _ = evaluator.lines(system, bundle, measured, history)
            batch.append(NewEntry(BUNDLE, payload, submission, subject=system.id))
            batch.append(NewEntry(EVALUATION, {"evaluated_at": measured.isoformat(), "findings": len(lines),
                                               "statuses": lines}, f"evaluation:{submission}", subject=system.id))
        evaluator.forget()
        if submitted:
            _append_submissions(ledger, batch, graph, book)
        else:
            ledger.append(batch)
    return ledger


def _append_submissions(ledger: Ledger, batch: list[Any], graph: Any, book: IncidentBook) -> None:
    """Append one day's submissions in one transaction, each followed by the incident entries its breaches cause."""

    def build(_next_seq: int) -> list[NewEntry]:
        entries: list[NewEntry] = []
        for make in batch:
            entries += make(len(entries), book, graph, ledger.stamp())
        return entries

    for entry in ledger.append(build):
        if entry.type in INCIDENT_TYPES:
            apply(book, entry)


def _submission(system: AISystem, payload: dict[str, Any], bundle: EvidenceBundle, at: datetime.datetime,
                history: list[EvidenceBundle], policies: tuple[CompiledPolicy, ...], published: dict[str, int],
                signer: SigningKey, submission: str) -> Any:
    """(offset in the batch, incident book, graph, stamp) -> the entries `submit_bundle` appends for one bundle."""
    signature = sign_bundle_data(payload, signer)["signature"]
    findings = evaluate_bundle(system, bundle, policies, at, history)

    def entries(offset: int, book: IncidentBook, graph: Any, stamp: datetime.datetime) -> list[NewEntry]:
        made = _submission_entries(system, payload, signature, findings, at, policies, published, submission, offset)

        def finding_ref(done: list[Any], index: int) -> dict[str, Any]:
            return {"seq": done[offset + 2 + index].seq, "record_hash": done[offset + 2 + index].record_hash.hex()}

        breaches = [(i, f.model_dump(mode="json")) for i, f in enumerate(findings) if f.status.value == "breach"]
        return made + incident_entries(book, graph, system, breaches, stamp, finding_ref)

    return entries


def _submission_entries(system: AISystem, payload: dict[str, Any], signature: dict[str, Any], findings: list[Any],
                        at: datetime.datetime, policies: tuple[CompiledPolicy, ...], published: dict[str, int],
                        submission: str, offset: int) -> list[NewEntry]:
    """The bundle, evaluation and finding entries of one submission, citing the bundle within the batch."""

    def bundle_ref(done: list[Any]) -> dict[str, Any]:
        return {"seq": done[offset].seq, "record_hash": done[offset].record_hash.hex()}

    def finding(index: int) -> Any:
        data = findings[index].model_dump(mode="json")
        return lambda done: {**data, "refs": {"bundle": bundle_ref(done), "policy": {
            "digest": data["policy_digest"], "seq": published[data["policy_digest"]]}}}

    policy_list = [{"id": p.policy.id, "version": p.policy.version, "digest": p.digest} for p in policies]
    return [NewEntry(BUNDLE, payload, submission, subject=system.id, key_id=signature["key_id"],
                     signature=signature["value"]),
            NewEntry(EVALUATION, lambda done: {
                "bundle": bundle_ref(done), "evaluated_at": at.isoformat(), "policies": policy_list,
                "policy_seqs": {p["digest"]: published[p["digest"]] for p in policy_list},
                "findings": len(findings), "statuses": status_summary(findings)},
                f"evaluation:{submission}", subject=system.id),
            *(NewEntry(FINDING, finding(i), f"finding:{submission}:{i}", subject=system.id)
              for i in range(len(findings)))]


def raw_read(ledger: Ledger) -> tuple[float, int]:
    """Seconds to SELECT and json.loads every bundle body: the floor any reader pays."""
    started = time.perf_counter()
    count = 0
    with ledger.engine.connect() as connection:
        for (body,) in connection.execute(select(ledger_entry.c.body).where(ledger_entry.c.entry_type == BUNDLE)):
            json.loads(body)
            count += 1
    return time.perf_counter() - started, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--reference-sample", type=int, default=300,
                        help="namespaces on which rule-engine's own evaluation is timed")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes for the back-test")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        recorded = compile_bench_policy(Path(folder) / "recorded")
        policies = compile_bench_policy(Path(folder) / "candidate", CANDIDATE_EDIT)
        rules = [r for p in policies for r in p.rules]
        started = time.perf_counter()
        ledger = build_ledger(f"sqlite:///{Path(folder) / 'ledger.db'}", args.systems, args.days, recorded)
        setup = time.perf_counter() - started

        gc.collect()
        started = time.perf_counter()
        report = backtest(ledger, policies, jobs=args.jobs)
        total = time.perf_counter() - started
        started = time.perf_counter()
        single = backtest(ledger, policies, jobs=1)
        one_process = time.perf_counter() - started
        assert single.to_dict() == report.to_dict(), "worker processes changed the result"

        raw_seconds, bundles = raw_read(ledger)
        started = time.perf_counter()
        stored = stored_bundles(ledger)
        read = time.perf_counter() - started

        # evaluation alone, on the bundles already read (history as backtest builds it)
        from charter.submission import systems_in_ledger

        registry = systems_in_ledger(ledger)
        evaluator = StatusEvaluator(policies)
        by_system: dict[str, list[Any]] = {}
        for item in stored:
            by_system.setdefault(item.bundle.system_id, []).append(item.bundle)
        started = time.perf_counter()
        results = 0
        for system_id, items in by_system.items():
            evaluator.forget()
            for index, bundle in enumerate(items):
                history = items[max(0, index - 2):index][::-1]
                results += len(evaluator.lines(registry[system_id], bundle, bundle.measured_at, history)[0])
        evaluate = time.perf_counter() - started

        sample = stored[: args.reference_sample]
        started = time.perf_counter()
        checked = 0
        for item in sample:
            items = by_system[item.bundle.system_id]
            position = items.index(item.bundle)
            previous = items[position - 1] if position else None
            namespace = _Snapshot(registry[item.bundle.system_id], item.bundle, previous, None).namespace()
            with evaluation_time(item.bundle.measured_at):
                for rule in rules:
                    with contextlib.suppress(Exception):  # timing only; absent evidence raises here
                        rule.breach.evaluate(namespace)
                    checked += 1
        reference = time.perf_counter() - started
        ledger.engine.dispose()

    compiled_rate = results / evaluate if evaluate else 0.0
    reference_rate = checked / reference if reference else 0.0
    result = {
        "systems": args.systems, "days": args.days, "bundles": bundles, "rules": len(rules),
        "setup_s": round(setup, 1), "raw_read_s": round(raw_seconds, 2), "read_validated_s": round(read, 2),
        "read_vs_raw_x": round(read / raw_seconds, 2) if raw_seconds else None,
        "evaluate_s": round(evaluate, 2), "rule_results": results,
        "compiled_rule_results_per_s": round(compiled_rate),
        "rule_engine_conditions_per_s": round(reference_rate),
        "compiled_vs_rule_engine_x": round(compiled_rate / reference_rate, 1) if reference_rate else None,
        "jobs": args.jobs, "backtest_total_s": round(total, 2), "backtest_one_process_s": round(one_process, 2),
        "reference_calls": report.reference_calls,
        "breaches_appeared": len(report.breaches_appeared), "breaches_disappeared": len(report.breaches_disappeared),
        "target_s": 30.0, "within_target": total < 30.0,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:32} {value}")


if __name__ == "__main__":
    main()
