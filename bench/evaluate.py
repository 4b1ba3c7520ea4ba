"""Rule evaluations per second: rule-engine, Charter's compiled paths and hand-written lambdas, in one run.

The rule set is 40 KPI governance rules shaped like the shipped packs (13 thresholds, 9 deltas
against baseline/previous/peers, 7 ratios, 6 compound and/or/not, 3 membership tests, 2 datetime
checks; 35 with a warning band) over KPI ids of the built-in catalog, on N synthetic bundles from a
seeded RNG, in the namespace shape Charter's evaluator builds. Values are drawn across each rule's
thresholds with 4 decimals (ratios; fewer for ms and money); a share of them (``--tie-rate``) is
rounded to 2, so that some land exactly on a threshold or delta and the near-call path (a float too
close to call, handed to rule-engine) is exercised. One rule evaluation is one rule's status: the
breach condition, then the warning condition if it did not breach. Paths:

- rule-engine: ``Rule.evaluate`` per condition (slow: timed on ``--reference-bundles`` bundles);
- compiled: ``CompiledCondition.run`` per condition (compiled Python with its rule-engine fallback built in);
- batched: one ``compile_policy`` function per bundle for all 40 rules; a REFERENCE code is
  evaluated by rule-engine inside the timed loop;
- lambda: the same conditions written by hand as Python lambdas over the namespace dict;
- cel: the Rust CEL binding (``common-expression-language``), per rule on one ``cel.Context`` per
  bundle, and batched as one program per bundle; regorus (Rego) is timed only where a port exists
  (none yet): both are skipped with a note when not installed.

Before timing, every path is run on every bundle (rule-engine too) and compared with rule-engine:
Charter's paths must agree on every evaluation (else the script exits 1). The lambdas and CEL use
float arithmetic, so they may differ from rule-engine's decimals on exact ties; such differences
are counted, and any outside the evaluations Charter sent to the near-call path also exits 1.

Each path is timed ``--repeats`` times, round-robin, with the garbage collector off; rates are the
median repeat (and the best), ratios the median of the per-repeat ratios of two paths (with their
range). Machines here are noisy, so the ratios measured in the same run are what counts. The
issue's targets, checked for the per-rule and the batched path: >= 5,000,000 rule evaluations/s on
one core, within 1.5x of the lambdas, >= 50x rule-engine's own evaluation. ``--breakdown`` adds
microseconds per rule evaluation by category; ``--profile`` adds cProfile of the compiled paths.

    python bench/evaluate.py [--bundles 10000] [--reference-bundles 1000] [--repeats 5] [--tie-rate 0.01]
                             [--breakdown] [--profile] [--json]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import gc
import io
import json
import math
import pstats
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import rule_engine

from charter.kpis import builtin_catalog
from charter.policy.compile import (
    BREACH,
    PASS,
    REFERENCE,
    WARN,
    CompiledCondition,
    PolicyProgram,
    RuleSlot,
    compile_condition,
    compile_policy,
)
from charter.policy.context import build_context, evaluation_time
from charter.policy.expressions import evidence_refs

Namespace = Mapping[str, Any]
Condition = Callable[[Namespace], Any]

NOW = datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.UTC)
P31D, P35D, P45D = (datetime.timedelta(days=d) for d in (31, 35, 45))
TARGET_RATE = 5_000_000
TARGET_VS_LAMBDA = 1.5
TARGET_VS_RULE_ENGINE = 50.0


@dataclass(frozen=True)
class BenchRule:
    """One rule: its conditions as rule-engine text, and the same conditions written by hand."""

    id: str
    category: str
    when: str
    warn_when: str | None
    fast_when: Condition
    fast_warn: Condition | None


def _rules() -> list[BenchRule]:
    r = BenchRule
    return [
        # thresholds (what `kpi: / min: / max: / warn:` rules compile to)
        r("recall-floor", "threshold", "recall < 0.75", "recall < 0.85",
          lambda n: n["recall"] < 0.75, lambda n: n["recall"] < 0.85),
        r("precision-floor", "threshold", "precision < 0.6", "precision < 0.7",
          lambda n: n["precision"] < 0.6, lambda n: n["precision"] < 0.7),
        r("f1-floor", "threshold", "f1 < 0.6", "f1 < 0.7",
          lambda n: n["f1"] < 0.6, lambda n: n["f1"] < 0.7),
        r("roc-auc-floor", "threshold", "roc_auc < 0.75", "roc_auc < 0.85",
          lambda n: n["roc_auc"] < 0.75, lambda n: n["roc_auc"] < 0.85),
        r("pr-auc-floor", "threshold", "pr_auc < 0.4", "pr_auc < 0.5",
          lambda n: n["pr_auc"] < 0.4, lambda n: n["pr_auc"] < 0.5),
        r("latency-p95", "threshold", "latency_p95_ms > 500", "latency_p95_ms > 300",
          lambda n: n["latency_p95_ms"] > 500, lambda n: n["latency_p95_ms"] > 300),
        r("fairness-gap", "threshold", "fairness_gap > 0.1", "fairness_gap > 0.05",
          lambda n: n["fairness_gap"] > 0.1, lambda n: n["fairness_gap"] > 0.05),
        r("hallucination-rate", "threshold", "hallucination_rate > 0.05", "hallucination_rate > 0.02",
          lambda n: n["hallucination_rate"] > 0.05, lambda n: n["hallucination_rate"] > 0.02),
        r("toxicity-rate", "threshold", "toxicity_rate > 0.01", None,
          lambda n: n["toxicity_rate"] > 0.01, None),
        r("monitoring-coverage", "threshold", "monitoring_coverage < 0.9", "monitoring_coverage < 0.95",
          lambda n: n["monitoring_coverage"] < 0.9, lambda n: n["monitoring_coverage"] < 0.95),
        r("input-drift", "threshold", "data_drift_psi > 0.25", "data_drift_psi > 0.1",
          lambda n: n["data_drift_psi"] > 0.25, lambda n: n["data_drift_psi"] > 0.1),
        r("safety-incidents", "threshold", "safety_incidents > 0", None,
          lambda n: n["safety_incidents"] > 0, None),
        r("regional-recall-eu", "threshold", "segments['region:eu']['recall'] < 0.75",
          "segments['region:eu']['recall'] < 0.82",
          lambda n: n["segments"]["region:eu"]["recall"] < 0.75,
          lambda n: n["segments"]["region:eu"]["recall"] < 0.82),
        # deltas against the baseline, the previous bundle, the peer groups, the whole bundle
        r("recall-degradation", "delta", "baseline.recall - recall > 0.15", "baseline.recall - recall > 0.05",
          lambda n: n["baseline"]["recall"] - n["recall"] > 0.15,
          lambda n: n["baseline"]["recall"] - n["recall"] > 0.05),
        r("precision-degradation", "delta", "baseline.precision - precision > 0.1",
          "baseline.precision - precision > 0.05",
          lambda n: n["baseline"]["precision"] - n["precision"] > 0.1,
          lambda n: n["baseline"]["precision"] - n["precision"] > 0.05),
        r("hallucination-increase", "delta", "hallucination_rate - baseline.hallucination_rate > 0.02",
          "hallucination_rate - baseline.hallucination_rate > 0.01",
          lambda n: n["hallucination_rate"] - n["baseline"]["hallucination_rate"] > 0.02,
          lambda n: n["hallucination_rate"] - n["baseline"]["hallucination_rate"] > 0.01),
        r("override-climb", "delta", "human_override_rate - previous.human_override_rate > 0.05",
          "human_override_rate - previous.human_override_rate > 0.025",
          lambda n: n["human_override_rate"] - n["previous"]["human_override_rate"] > 0.05,
          lambda n: n["human_override_rate"] - n["previous"]["human_override_rate"] > 0.025),
        r("actions-blocked-climbing", "delta", "actions_blocked_rate - previous.actions_blocked_rate > 0.015",
          "actions_blocked_rate - previous.actions_blocked_rate > 0.005",
          lambda n: n["actions_blocked_rate"] - n["previous"]["actions_blocked_rate"] > 0.015,
          lambda n: n["actions_blocked_rate"] - n["previous"]["actions_blocked_rate"] > 0.005),
        r("task-success-degradation", "delta", "baseline.task_success_rate - task_success_rate > 0.10",
          "baseline.task_success_rate - task_success_rate > 0.05",
          lambda n: n["baseline"]["task_success_rate"] - n["task_success_rate"] > 0.10,
          lambda n: n["baseline"]["task_success_rate"] - n["task_success_rate"] > 0.05),
        r("regional-gap", "delta", "peers.recall - recall > 0.10", "peers.recall - recall > 0.05",
          lambda n: n["peers"]["recall"] - n["recall"] > 0.10,
          lambda n: n["peers"]["recall"] - n["recall"] > 0.05),
        r("unauthorized-actions-rising", "delta", "unauthorized_actions > previous.unauthorized_actions", None,
          lambda n: n["unauthorized_actions"] > n["previous"]["unauthorized_actions"], None),
        r("segment-trails-whole", "delta", "bundle.kpis.recall - recall > 0.08", "bundle.kpis.recall - recall > 0.04",
          lambda n: n["bundle"]["kpis"]["recall"] - n["recall"] > 0.08,
          lambda n: n["bundle"]["kpis"]["recall"] - n["recall"] > 0.04),
        # ratios
        r("cost-per-prediction", "ratio", "cost_per_prediction > 1.5 * baseline.cost_per_prediction",
          "cost_per_prediction > 1.2 * baseline.cost_per_prediction",
          lambda n: n["cost_per_prediction"] > 1.5 * n["baseline"]["cost_per_prediction"],
          lambda n: n["cost_per_prediction"] > 1.2 * n["baseline"]["cost_per_prediction"]),
        r("cost-false-negatives", "ratio", "cost_false_negatives > 1.5 * baseline.cost_false_negatives",
          "cost_false_negatives > 1.2 * baseline.cost_false_negatives",
          lambda n: n["cost_false_negatives"] > 1.5 * n["baseline"]["cost_false_negatives"],
          lambda n: n["cost_false_negatives"] > 1.2 * n["baseline"]["cost_false_negatives"]),
        r("approval-parity", "ratio", "approval_rate < 0.90 * peers.approval_rate",
          "approval_rate < 0.95 * peers.approval_rate",
          lambda n: n["approval_rate"] < 0.90 * n["peers"]["approval_rate"],
          lambda n: n["approval_rate"] < 0.95 * n["peers"]["approval_rate"]),
        r("error-cost-balance", "ratio", "cost_false_negatives / cost_false_positives > 4",
          "cost_false_negatives / cost_false_positives > 3",
          lambda n: n["cost_false_negatives"] / n["cost_false_positives"] > 4,
          lambda n: n["cost_false_negatives"] / n["cost_false_positives"] > 3),
        r("latency-tail", "ratio", "latency_p95_ms / latency_p50_ms > 5", "latency_p95_ms / latency_p50_ms > 4",
          lambda n: n["latency_p95_ms"] / n["latency_p50_ms"] > 5,
          lambda n: n["latency_p95_ms"] / n["latency_p50_ms"] > 4),
        r("tokens-growth", "ratio", "tokens_per_response / previous.tokens_per_response > 1.25",
          "tokens_per_response / previous.tokens_per_response > 1.1",
          lambda n: n["tokens_per_response"] / n["previous"]["tokens_per_response"] > 1.25,
          lambda n: n["tokens_per_response"] / n["previous"]["tokens_per_response"] > 1.1),
        r("pr-auc-relative", "ratio", "pr_auc / baseline.pr_auc < 0.8", "pr_auc / baseline.pr_auc < 0.9",
          lambda n: n["pr_auc"] / n["baseline"]["pr_auc"] < 0.8,
          lambda n: n["pr_auc"] / n["baseline"]["pr_auc"] < 0.9),
        # compound and/or/not, string equality
        r("high-risk-oversight", "compound", 'system.risk_tier == "high" and human_override_rate < 0.005',
          'system.risk_tier == "high" and human_override_rate < 0.01',
          lambda n: n["system"]["risk_tier"] == "high" and n["human_override_rate"] < 0.005,
          lambda n: n["system"]["risk_tier"] == "high" and n["human_override_rate"] < 0.01),
        r("retraining-cadence", "compound", "retraining_frequency > 12",
          "retraining_frequency > 6 or retraining_frequency == 0",
          lambda n: n["retraining_frequency"] > 12,
          lambda n: n["retraining_frequency"] > 6 or n["retraining_frequency"] == 0),
        r("weak-classifier", "compound", "recall < 0.8 and precision < 0.7", "recall < 0.85 and precision < 0.75",
          lambda n: n["recall"] < 0.8 and n["precision"] < 0.7,
          lambda n: n["recall"] < 0.85 and n["precision"] < 0.75),
        r("incident-response", "compound", "mttd_hours > 24 or mttr_hours > 72", "mttd_hours > 12 or mttr_hours > 48",
          lambda n: n["mttd_hours"] > 24 or n["mttr_hours"] > 72,
          lambda n: n["mttd_hours"] > 12 or n["mttr_hours"] > 48),
        r("value-case", "compound", "roi < 0 or (roi < 0.25 and adoption_rate < 0.5)", "roi < 0.25",
          lambda n: n["roi"] < 0 or (n["roi"] < 0.25 and n["adoption_rate"] < 0.5), lambda n: n["roi"] < 0.25),
        r("drift-unwatched", "compound", "data_drift_psi > 0.1 and not (monitoring_coverage >= 0.95)", None,
          lambda n: n["data_drift_psi"] > 0.1 and not n["monitoring_coverage"] >= 0.95, None),
        # membership
        r("audit-readiness-by-tier", "membership", 'system.risk_tier in ["high", "limited"] and audit_readiness < 0.8',
          'system.risk_tier in ["high", "limited"] and audit_readiness < 0.9',
          lambda n: n["system"]["risk_tier"] in ("high", "limited") and n["audit_readiness"] < 0.8,
          lambda n: n["system"]["risk_tier"] in ("high", "limited") and n["audit_readiness"] < 0.9),
        r("jailbreaks", "membership", 'system.kind in ["generative", "agent"] and jailbreak_success_rate > 0.02',
          'system.kind in ["generative", "agent"] and jailbreak_success_rate > 0.01',
          lambda n: n["system"]["kind"] in ("generative", "agent") and n["jailbreak_success_rate"] > 0.02,
          lambda n: n["system"]["kind"] in ("generative", "agent") and n["jailbreak_success_rate"] > 0.01),
        r("people-explainability", "membership", '"affects-people" in system.tags and explainability_coverage < 0.8',
          '"affects-people" in system.tags and explainability_coverage < 0.9',
          lambda n: "affects-people" in n["system"]["tags"] and n["explainability_coverage"] < 0.8,
          lambda n: "affects-people" in n["system"]["tags"] and n["explainability_coverage"] < 0.9),
        # datetimes
        r("evidence-freshness", "datetime", '$now - bundle.window_end > t"P45D"', '$now - bundle.window_end > t"P35D"',
          lambda n: NOW - n["bundle"]["window_end"] > P45D, lambda n: NOW - n["bundle"]["window_end"] > P35D),
        r("window-length", "datetime", 'bundle.window_end - bundle.window_start > t"P31D"', None,
          lambda n: n["bundle"]["window_end"] - n["bundle"]["window_start"] > P31D, None),
    ]


# -- synthetic evidence ---------------------------------------------------------------------------

#: range of the synthetic values of each KPI (the rules' thresholds lie inside); counts are whole numbers
RANGES: dict[str, tuple[float, float]] = {
    "recall": (0.68, 1.0), "precision": (0.55, 0.95), "f1": (0.55, 0.95), "roc_auc": (0.7, 1.0),
    "pr_auc": (0.35, 0.8), "latency_p50_ms": (40.0, 160.0), "latency_p95_ms": (150.0, 700.0),
    "fairness_gap": (0.0, 0.12), "hallucination_rate": (0.0, 0.06), "toxicity_rate": (0.0, 0.012),
    "jailbreak_success_rate": (0.0, 0.03), "monitoring_coverage": (0.85, 1.0), "data_drift_psi": (0.0, 0.3),
    "explainability_coverage": (0.7, 1.0), "audit_readiness": (0.65, 1.0), "human_override_rate": (0.0, 0.08),
    "actions_blocked_rate": (0.0, 0.05), "task_success_rate": (0.7, 1.0), "cost_per_prediction": (0.01, 0.04),
    "cost_false_negatives": (500.0, 3000.0), "cost_false_positives": (200.0, 1200.0), "approval_rate": (0.5, 0.8),
    "tokens_per_response": (200.0, 600.0), "mttd_hours": (1.0, 30.0), "mttr_hours": (4.0, 90.0),
    "roi": (-0.1, 0.8), "adoption_rate": (0.3, 0.9),
}
COUNTS = {"safety_incidents": (0, 0, 0, 0, 0, 1, 2), "unauthorized_actions": (0, 0, 1, 1, 2, 3, 4),
          "retraining_frequency": (0, 1, 2, 3, 4, 6, 7, 12, 13)}
BASELINE_KPIS = ("recall", "precision", "hallucination_rate", "task_success_rate", "cost_per_prediction",
                 "cost_false_negatives", "pr_auc")


def _draw(rng: random.Random, kpi: str, tie_rate: float) -> float:
    """A value with 4 significant decimals of the range, or with 2 (landing on round numbers) at `tie_rate`."""
    if kpi in COUNTS:
        return float(rng.choice(COUNTS[kpi]))
    low, high = RANGES[kpi]
    digits = 1 - math.floor(math.log10(high - low))
    coarse = rng.random() < tie_rate
    return round(rng.uniform(low, high), digits if coarse else digits + 2) + 0.0


def _kpis(rng: random.Random, tie_rate: float, names: Sequence[str]) -> dict[str, float]:
    return {kpi: _draw(rng, kpi, tie_rate) for kpi in names}


def synthetic_namespaces(count: int, tie_rate: float, seed: int = 7) -> list[dict[str, Any]]:
    """`count` namespaces shaped like `charter.evaluate._Snapshot.namespace` builds them in segment scope."""
    rng = random.Random(seed)
    all_kpis = [*RANGES, *COUNTS]
    systems = []
    for n in range(20):
        baseline = {kpi: round(rng.uniform(*RANGES[kpi]), 2 - math.floor(math.log10(RANGES[kpi][1])))
                    for kpi in BASELINE_KPIS}
        systems.append(({"id": f"sys-{n:02d}", "name": f"System {n}", "owner": f"owner-{n % 4}",
                         "risk_tier": ("minimal", "limited", "high")[n % 3],
                         "kind": ("classifier", "generative", "agent", "ranker", "regressor")[n % 5],
                         "region": ("eu-west", "us-east", "ap-south")[n % 3], "status": "active",
                         "tags": ["affects-people", "multi-region"][: n % 3]}, baseline))
    out = []
    for _ in range(count):
        system, baseline = rng.choice(systems)
        whole = _kpis(rng, tie_rate, all_kpis)
        segment = _kpis(rng, tie_rate, all_kpis)
        # days before $now, some exactly on the freshness limits (timedeltas compare exactly: no near call)
        age = rng.choice((45, 35)) if rng.random() < tie_rate else rng.uniform(0, 60)
        window_end = NOW - datetime.timedelta(days=age)
        length = 31 if rng.random() < tie_rate else rng.choice((28, 30, 31.5, 32))
        bundle = {"system_id": system["id"], "model_version": "1.4.0", "submitter": system["owner"],
                  "window_start": window_end - datetime.timedelta(days=length), "window_end": window_end,
                  "measured_at": window_end + datetime.timedelta(hours=6), "kpis": MappingProxyType(whole)}
        segments = {f"region:{g}": MappingProxyType(_kpis(rng, tie_rate, ("recall", "approval_rate")))
                    for g in ("eu", "us", "apac")}
        ns: dict[str, Any] = dict(segment)
        ns["system"] = MappingProxyType(system)
        ns["bundle"] = MappingProxyType(bundle)
        ns["baseline"] = MappingProxyType(baseline)
        ns["previous"] = MappingProxyType(_kpis(rng, tie_rate, ("human_override_rate", "actions_blocked_rate",
                                                                 "unauthorized_actions", "tokens_per_response")))
        ns["segments"] = MappingProxyType(segments)
        ns["segment"] = MappingProxyType({"key": "region:eu", "dimension": "region", "group": "eu"})
        ns["peers"] = MappingProxyType(_kpis(rng, tie_rate, ("recall", "approval_rate")))
        out.append(ns)
    return out


# -- the paths --------------------------------------------------------------------------------------

Pairs = list[tuple[Condition, Condition | None]]
Parsed = list[tuple[rule_engine.Rule, rule_engine.Rule | None]]
Compiled = list[tuple[CompiledCondition, CompiledCondition | None]]


def per_rule(pairs: Pairs, bundles: Sequence[Namespace]) -> list[int]:
    """Status of every rule on every bundle, one condition call at a time (same loop for every engine)."""
    out: list[int] = []
    append = out.append
    for ns in bundles:
        for breach, warn in pairs:
            if breach(ns):
                append(BREACH)
            elif warn is not None and warn(ns):
                append(WARN)
            else:
                append(PASS)
    return out


def batched(program: PolicyProgram, reference: Parsed,
            bundles: Sequence[Namespace]) -> list[int]:
    """Status of every rule on every bundle, one generated function per bundle, rule-engine on REFERENCE."""
    out: list[int] = []
    run = program.run
    for ns in bundles:
        codes = run(ns)
        if REFERENCE in codes:
            for i, code in enumerate(codes):
                if code == REFERENCE:
                    breach, warn = reference[i]
                    codes[i] = (BREACH if breach.evaluate(ns) else
                                WARN if warn is not None and warn.evaluate(ns) else PASS)
        out += codes
    return out


def _cel_text(text: str) -> str:
    """The rule-engine condition in CEL: && || !, `now` for $now, durations in hours, numbers as doubles."""
    text = re.sub(r't"P(\d+)D"', lambda m: f'duration("{int(m.group(1)) * 24}h")', text)
    text = text.replace("$now", "now").replace(" and ", " && ").replace(" or ", " || ").replace("not (", "!(")
    return re.sub(r"(?<![\w.])(\d+)(?![\w.])", r"\1.0", text)


def _cel_context(cel: Any, ns: Namespace) -> Any:
    return cel.Context(variables={**ns, "now": NOW})


def cel_per_rule(cel: Any, programs: list[tuple[Any, Any]], bundles: Sequence[Namespace]) -> list[int]:
    out: list[int] = []
    append = out.append
    for ns in bundles:
        context = _cel_context(cel, ns)
        for breach, warn in programs:
            if breach.execute(context):
                append(BREACH)
            elif warn is not None and warn.execute(context):
                append(WARN)
            else:
                append(PASS)
    return out


def cel_batched(cel: Any, program: Any, bundles: Sequence[Namespace]) -> list[int]:
    out: list[int] = []
    for ns in bundles:
        out += program.execute(_cel_context(cel, ns))
    return out


@dataclass
class Path:
    """One way of evaluating the rules, and what was measured of it."""

    name: str
    label: str
    run: Callable[[Sequence[Namespace]], list[int]]
    bundles: Sequence[Namespace]  # timed on these (verified on all)
    exact: bool  # must agree with rule-engine on every evaluation (Charter's paths)
    seconds: list[float] = field(default_factory=list)  # per rule evaluation, one per repeat
    mismatches: int = 0
    outside_near_calls: int = 0


def _optional_engines(rules: list[BenchRule], subset: Sequence[Namespace], notes: list[str]) -> list[Path]:
    """CEL and Rego paths where their Python bindings are installed."""
    paths: list[Path] = []
    try:
        import cel  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        notes.append("cel (common-expression-language): not installed, skipped")
    else:
        programs = [(cel.compile(_cel_text(r.when)), cel.compile(_cel_text(r.warn_when)) if r.warn_when else None)
                    for r in rules]
        items = [f"(({_cel_text(r.when)}) ? {BREACH} : "
                 + (f"(({_cel_text(r.warn_when)}) ? {WARN} : {PASS}))" if r.warn_when else f"{PASS})")
                 for r in rules]
        program = cel.compile("[" + ", ".join(items) + "]")
        paths += [Path("cel", "CEL (Rust binding), per rule, one Context per bundle",
                       lambda b: cel_per_rule(cel, programs, b), subset, False),
                  Path("cel-batched", "CEL (Rust binding), one program per bundle",
                       lambda b: cel_batched(cel, program, b), subset, False)]
    try:
        import regorus  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except ImportError:
        notes.append("regorus (Rego): not installed, skipped")
    else:
        notes.append("regorus (Rego): installed, but this script has no Rego port of the rules yet, skipped")
    return paths


# -- measuring --------------------------------------------------------------------------------------

def _timed(run: Callable[[Sequence[Namespace]], list[int]], bundles: Sequence[Namespace]) -> float:
    """Seconds of one run over `bundles`, with the garbage collector off (as timeit does)."""
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        run(bundles)
        return time.perf_counter() - started
    finally:
        gc.enable()


def _measure(paths: Sequence[Path], repeats: int, rules: int) -> None:
    """Time every path `repeats` times, round-robin so that drift of the machine hits every path alike."""
    for path in paths:
        path.run(path.bundles[:50])  # warm up
    for _ in range(repeats):
        for path in paths:
            path.seconds.append(_timed(path.run, path.bundles) / (len(path.bundles) * rules))


def _near_calls(compiled: list[tuple[CompiledCondition, CompiledCondition | None]], bundles: Sequence[Namespace],
                expected: Sequence[int]) -> tuple[int, int]:
    """(condition evaluations, those whose compiled code raised: near calls) on the per-rule path."""
    evaluations = near = 0
    k = 0
    for ns in bundles:
        for breach, warn in compiled:
            conditions = (breach,) if warn is None or expected[k] == BREACH else (breach, warn)
            k += 1
            for condition in conditions:
                evaluations += 1
                if condition.fast is None:
                    continue
                try:
                    condition.fast(ns)
                except Exception:
                    near += 1
    return evaluations, near


def _breakdown(rules: list[BenchRule], parsed: Parsed, compiled: Compiled, slots: list[RuleSlot],
               bundles: Sequence[Namespace], subset: Sequence[Namespace], repeats: int) -> dict[str, dict[str, Any]]:
    """Microseconds per rule evaluation by category of rule, for each path."""
    out: dict[str, dict[str, Any]] = {}
    for category in dict.fromkeys(r.category for r in rules):
        index = [i for i, r in enumerate(rules) if r.category == category]
        paths = _charter_paths([rules[i] for i in index], [parsed[i] for i in index], [compiled[i] for i in index],
                               compile_policy([slots[i] for i in index]), bundles, subset)
        _measure(paths, repeats, len(index))
        out[category] = {"rules": len(index),
                         **{p.name: round(statistics.median(p.seconds) * 1e6, 3) for p in paths}}
    return out


def _profile(run: Callable[[Sequence[Namespace]], list[int]], bundles: Sequence[Namespace]) -> str:
    profiler = cProfile.Profile()
    profiler.runcall(run, bundles)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(15)
    return text.getvalue()


def _charter_paths(rules: list[BenchRule], parsed: Parsed, compiled: Compiled, program: PolicyProgram,
                   bundles: Sequence[Namespace], subset: Sequence[Namespace]) -> list[Path]:
    reference: Pairs = [(b.evaluate, w.evaluate if w else None) for b, w in parsed]
    charter: Pairs = [(b.run or b.evaluate, (w.run or w.evaluate) if w else None) for b, w in compiled]
    lambdas: Pairs = [(r.fast_when, r.fast_warn) for r in rules]
    return [
        Path("rule-engine", "rule-engine Rule.evaluate, per rule", lambda bs: per_rule(reference, bs), subset, True),
        Path("compiled", "Charter CompiledCondition.run, per rule", lambda bs: per_rule(charter, bs),
             bundles, True),
        Path("batched", "Charter compile_policy, one call per bundle", lambda bs: batched(program, parsed, bs),
             bundles, True),
        Path("lambda", "hand-written Python lambdas, per rule", lambda bs: per_rule(lambdas, bs), bundles, False),
    ]


def _ratio(paths: dict[str, Path], slow: str, fast: str) -> dict[str, float]:
    """How many times `slow` takes `fast`'s time per rule evaluation: median over the paired repeats, and range."""
    ratios = [a / b for a, b in zip(paths[slow].seconds, paths[fast].seconds, strict=True)]
    return {"median": round(statistics.median(ratios), 2), "min": round(min(ratios), 2),
            "max": round(max(ratios), 2)}


def _rate(x: float) -> str:
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=int, default=10_000)
    parser.add_argument("--reference-bundles", type=int, default=1000,
                        help="bundles on which rule-engine and CEL are timed (every bundle is still verified)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tie-rate", type=float, default=0.01,
                        help="share of values rounded to 2 significant decimals, so that some land on thresholds")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--breakdown", action="store_true", help="also time each category of rules on its own")
    parser.add_argument("--profile", action="store_true", help="also print cProfile of the compiled paths")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    rules = _rules()
    catalog = builtin_catalog()
    context = build_context(catalog)
    started = time.perf_counter()
    parsed: Parsed = [(rule_engine.Rule(r.when, context),
                       rule_engine.Rule(r.warn_when, context) if r.warn_when else None) for r in rules]
    parse_ms = (time.perf_counter() - started) * 1e3
    started = time.perf_counter()
    compiled: Compiled = [(compile_condition(b, "breach"), compile_condition(w, "warn") if w is not None else None)
                          for b, w in parsed]
    compile_ms = (time.perf_counter() - started) * 1e3
    kpi_ids = frozenset(catalog)
    slots = []
    for b, w in parsed:
        refs = evidence_refs(b.statement, kpi_ids) | (evidence_refs(w.statement, kpi_ids) if w else set())
        slots.append(RuleSlot(needs=[(ref.where, ref.kpi) for ref in sorted(refs, key=str)], breach=b, warn=w))
    started = time.perf_counter()
    program = compile_policy(slots)
    policy_ms = (time.perf_counter() - started) * 1e3
    fallen = [r.id for r, (b, w) in zip(rules, compiled, strict=True) if not b.compiled or (w and not w.compiled)]

    bundles = synthetic_namespaces(args.bundles, args.tie_rate, args.seed)
    subset = bundles[: min(args.reference_bundles, len(bundles))]
    notes: list[str] = []
    paths = _charter_paths(rules, parsed, compiled, program, bundles, subset) + _optional_engines(rules, subset, notes)
    by_name = {p.name: p for p in paths}

    with evaluation_time(NOW):
        # -- verification: every path on every bundle, against rule-engine
        expected = by_name["rule-engine"].run(bundles)
        raw = [code for ns in bundles for code in program.run(ns)]
        referred = {k for k, code in enumerate(raw) if code == REFERENCE}
        for path in paths[1:]:
            wrong = [k for k, (a, b) in enumerate(zip(path.run(bundles), expected, strict=True)) if a != b]
            path.mismatches = len(wrong)
            path.outside_near_calls = sum(1 for k in wrong if k not in referred)
        evaluations, near = _near_calls(compiled, bundles, expected)

        _measure(paths, args.repeats, len(rules))
        breakdown = _breakdown(rules, parsed, compiled, slots, bundles, subset, args.repeats) if args.breakdown \
            else None
        profiles = {name: _profile(by_name[name].run, bundles) for name in ("compiled", "batched")} \
            if args.profile else {}

    per_s = {p.name: 1 / statistics.median(p.seconds) for p in paths}
    ratios = {"compiled_vs_lambda_x": _ratio(by_name, "compiled", "lambda"),
              "batched_vs_lambda_x": _ratio(by_name, "batched", "lambda"),
              "compiled_speedup_vs_rule_engine_x": _ratio(by_name, "rule-engine", "compiled"),
              "batched_speedup_vs_rule_engine_x": _ratio(by_name, "rule-engine", "batched")}
    targets = {name: {
        f">= {TARGET_RATE / 1e6:g}M rules/s": per_s[name] >= TARGET_RATE,
        f"<= {TARGET_VS_LAMBDA:g}x lambda": ratios[f"{name}_vs_lambda_x"]["median"] <= TARGET_VS_LAMBDA,
        f">= {TARGET_VS_RULE_ENGINE:g}x rule-engine":
            ratios[f"{name}_speedup_vs_rule_engine_x"]["median"] >= TARGET_VS_RULE_ENGINE,
    } for name in ("compiled", "batched")}
    failed = [p.name for p in paths if (p.mismatches if p.exact else p.outside_near_calls)]
    breaches, warnings = expected.count(BREACH), expected.count(WARN)
    results: dict[str, Any] = {
        "rules": len(rules), "conditions": sum(1 + (r.warn_when is not None) for r in rules),
        "categories": {c: sum(r.category == c for r in rules) for c in dict.fromkeys(r.category for r in rules)},
        "bundles": len(bundles), "reference_bundles": len(subset), "repeats": args.repeats,
        "tie_rate": args.tie_rate, "seed": args.seed,
        "statuses": {"breach": breaches, "warn": warnings, "pass": len(expected) - breaches - warnings},
        "compile": {"parse_ms": round(parse_ms, 1), "compile_conditions_ms": round(compile_ms, 1),
                    "compile_policy_ms": round(policy_ms, 1), "rules_compiled": len(rules) - len(fallen),
                    "rules_on_rule_engine": fallen, "policy_fallbacks": program.fallbacks},
        "near_calls": {
            "per_rule_condition_evaluations": evaluations, "per_rule_near_calls": near,
            "per_rule_share": round(near / evaluations, 6) if evaluations else 0.0,
            "batched_rule_evaluations": len(raw), "batched_reference": len(referred),
            "batched_share": round(len(referred) / len(raw), 6) if raw else 0.0,
        },
        "paths": {p.name: {
            "label": p.label, "bundles": len(p.bundles), "rule_evaluations_per_repeat": len(p.bundles) * len(rules),
            "rules_per_s": round(per_s[p.name]), "best_rules_per_s": round(1 / min(p.seconds)),
            "us_per_bundle": round(statistics.median(p.seconds) * 1e6 * len(rules), 2),
            "x_lambda": round(per_s["lambda"] / per_s[p.name], 2), "mismatches": p.mismatches,
            **({} if p.exact else {"mismatches_outside_near_calls": p.outside_near_calls}),
        } for p in paths},
        "ratios": ratios, "targets": targets, "breakdown_us_per_rule": breakdown, "notes": notes,
        "verified": not failed,
    }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        _print(results, profiles)
    if failed:
        print(f"MISMATCH against rule-engine: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


def _print(results: dict[str, Any], profiles: dict[str, str]) -> None:
    print(f"{results['rules']} rules ({results['conditions']} conditions; {results['categories']}) x "
          f"{results['bundles']} bundles, rule-engine and CEL timed on {results['reference_bundles']}; "
          f"median of {results['repeats']}")
    print(f"statuses over all bundles: {results['statuses']}")
    print()
    header = (f"{'path':12} {'bundles':>7} {'rules/s':>9} {'best':>9} {'us/bundle':>10} {'x lambda':>9} "
              f"{'mismatches':>11}  what")
    print(header)
    print("-" * len(header))
    for name, p in results["paths"].items():
        mismatch = str(p["mismatches"])
        if "mismatches_outside_near_calls" in p:
            mismatch += f" ({p['mismatches_outside_near_calls']})"
        print(f"{name:12} {p['bundles']:>7} {_rate(p['rules_per_s']):>9} {_rate(p['best_rules_per_s']):>9} "
              f"{p['us_per_bundle']:>10.2f} "
              f"{p['x_lambda']:>9.2f} {mismatch:>11}  {p['label']}")
    print("rules/s and us/bundle: median of the repeats; best: the fastest repeat")
    print("mismatches: verdicts that differ from rule-engine's, over all bundles; for the float engines, in "
          "brackets, those\n  outside the evaluations Charter handed to rule-engine as near calls (must be 0)")
    print()
    print(f"{'ratio (paired repeats)':36} {'median':>7}  [min-max]")
    for key, value in results["ratios"].items():
        print(f"{key:36} {value['median']:>7}  [{value['min']}-{value['max']}]")
    print()
    compile_info, near = results["compile"], results["near_calls"]
    print(f"{'rules compiled':36} {compile_info['rules_compiled']} of {results['rules']}"
          + (f" (on rule-engine: {', '.join(compile_info['rules_on_rule_engine'])})"
             if compile_info["rules_on_rule_engine"] else ""))
    print(f"{'parse / compile / compile_policy ms':36} {compile_info['parse_ms']} / "
          f"{compile_info['compile_conditions_ms']} / {compile_info['compile_policy_ms']}")
    print(f"{'near calls, per rule (conditions)':36} {near['per_rule_near_calls']} of "
          f"{near['per_rule_condition_evaluations']} ({near['per_rule_share']:.4%})")
    print(f"{'REFERENCE codes, batched (rules)':36} {near['batched_reference']} of "
          f"{near['batched_rule_evaluations']} ({near['batched_share']:.4%})")
    print()
    print(f"{'targets':36} {'compiled':>8} {'batched':>8}")
    for check, ok in results["targets"]["compiled"].items():
        batched_ok = results["targets"]["batched"][check]
        print(f"{check:36} {'pass' if ok else 'FAIL':>8} {'pass' if batched_ok else 'FAIL':>8}")
    if results["breakdown_us_per_rule"]:
        print()
        names = [n for n in next(iter(results["breakdown_us_per_rule"].values())) if n != "rules"]
        print(f"{'us per rule evaluation':24}" + "".join(f"{n:>12}" for n in names))
        for category, row in results["breakdown_us_per_rule"].items():
            print(f"{category + ' (' + str(row['rules']) + ')':24}" + "".join(f"{row[n]:>12.3f}" for n in names))
    print()
    for note in results["notes"]:
        print(f"note: {note}")
    print(f"verified: {results['verified']}")
    for name, text in profiles.items():
        print(f"\n--- cProfile of the {name} path ---\n{text}")


if __name__ == "__main__":
    main()
