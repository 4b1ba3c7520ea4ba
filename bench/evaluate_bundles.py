"""Throughput of `evaluate_bundle` with the shipped policy packs, against a baseline in the same run.

Prints bundles per second for Charter's evaluator (rule-engine interpretation, explanations and
evidence checks included) and for a hand-written Python function computing the same threshold
statuses, and the ratio between them. Machines here are noisy, so only the ratio is meaningful.

    python bench/evaluate_bundles.py [--bundles 2000] [--json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import time
from collections.abc import Callable

from charter._data import builtin_dir
from charter.bundle import EvidenceBundle
from charter.evaluate import evaluate_bundle
from charter.frameworks import load_frameworks
from charter.kpis import builtin_catalog
from charter.policy import PolicyCompiler, policy_files
from charter.registry import AISystem

KPIS = ("recall", "precision", "f1", "roc_auc", "pr_auc", "human_override_rate")


def synthetic_bundles(count: int, seed: int = 7) -> list[EvidenceBundle]:
    """`count` bundles of one system with random KPI values, one per day."""
    rng = random.Random(seed)
    catalog = builtin_catalog()
    start = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    bundles = []
    for day in range(count):
        begin = start + datetime.timedelta(days=day)
        end = begin + datetime.timedelta(days=1)
        kpis = {k: round(rng.uniform(0.4, 1.0), 3) for k in KPIS}
        kpis["latency_p95_ms"] = round(rng.uniform(50, 700), 1)
        bundles.append(EvidenceBundle.from_data({
            "system_id": "bench", "model_version": "1", "window_start": begin, "window_end": end,
            "measured_at": end, "kpis": kpis, "submitter": "bench"}, catalog))
    return bundles


def baseline(bundle: EvidenceBundle) -> list[str]:
    """The threshold statuses of the core performance pack, written by hand."""
    k = bundle.kpis
    out = []
    for value, breach, warn, lower_is_bad in ((k["recall"], 0.75, 0.85, True), (k["precision"], 0.6, 0.7, True),
                                              (k["f1"], 0.6, 0.7, True), (k["roc_auc"], 0.75, 0.85, True),
                                              (k["pr_auc"], 0.4, 0.5, True), (k["latency_p95_ms"], 500, 300, False)):
        bad = value < breach if lower_is_bad else value > breach
        meh = value < warn if lower_is_bad else value > warn
        out.append("breach" if bad else "warn" if meh else "pass")
    return out


def timed(label: str, run: Callable[[], int]) -> tuple[str, float, int]:
    started = time.perf_counter()
    evaluations = run()
    return label, time.perf_counter() - started, evaluations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=int, default=2000)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    policies = PolicyCompiler(builtin_catalog(), load_frameworks()).compile_files(
        policy_files(builtin_dir("policies"))).policies
    system = AISystem(id="bench", name="B", owner="o", risk_tier="high", kind="classifier", baseline={"recall": 0.9})
    bundles = synthetic_bundles(args.bundles)

    def charter_run() -> int:
        findings = 0
        for i, bundle in enumerate(bundles):
            findings += len(evaluate_bundle(system, bundle, policies, bundle.measured_at, bundles[max(0, i - 2):i]))
        return findings

    def baseline_run() -> int:
        return sum(len(baseline(b)) for b in bundles)

    results = [timed("charter", charter_run), timed("hand-written baseline", baseline_run)]
    charter_seconds, base_seconds = results[0][1], results[1][1]
    report = {
        "bundles": len(bundles),
        "charter_bundles_per_s": round(len(bundles) / charter_seconds, 1),
        "charter_rule_evaluations_per_s": round(results[0][2] / charter_seconds, 1),
        "baseline_bundles_per_s": round(len(bundles) / base_seconds, 1),
        "charter_slower_than_baseline_x": round(charter_seconds / base_seconds, 1),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:34} {value}")


if __name__ == "__main__":
    main()
