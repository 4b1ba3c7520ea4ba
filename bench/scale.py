"""Scale lines for hostile-sized input: bundles with many segments, escalation graphs with many roles.

Each line reports the time per item at N and at N/10 measured in the same run, and their ratio: about
1 means linear, 10 would mean quadratic (machines here are noisy; the ratio is what to read).

    python bench/scale.py [--segments 10000] [--roles 10000] [--json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import tempfile
import time
from pathlib import Path

from charter.bundle import EvidenceBundle
from charter.escalation import load_escalation
from charter.evaluate import evaluate_bundle
from charter.frameworks import load_frameworks
from charter.kpis import builtin_catalog
from charter.policy import PolicyCompiler, policy_files
from charter.registry import SystemRegistry

REPO = Path(__file__).resolve().parent.parent
CLAIMS = REPO / "evidence" / "claims-approval-2026-05.json"


def segment_bundle(count: int) -> str:
    """The claims bundle with `count` age groups, each with an approval rate."""
    rng = random.Random(count)
    data = json.loads(CLAIMS.read_text())
    data["segments"] = {f"age:g{i}": {"approval_rate": round(rng.uniform(0.6, 0.8), 4)} for i in range(count)}
    return json.dumps(data)


def chain_escalation(count: int) -> str:
    """An escalation.yaml whose `count` roles form one chain r0 -> r1 -> ...; it passes every check."""
    lines = ["version: 1", "entry: r0", "roles:"]
    for i in range(count):
        lines += [f"  r{i}:", f"    title: Role {i}", f"    members: [p{i}.x]", f"    authority: {min(100, i + 1)}"]
    lines.append("edges:")
    lines += [f"  - {{from: r{i}, to: r{i + 1}, severities: [critical, high, medium, low, info], timeout: PT1H}}"
              for i in range(count - 1)]
    lines += ["stages:",
              "  - severities: [critical, high, medium, low, info]",
              "    investigate: {responsible: [r0], accountable: r0}",
              "    validate: {responsible: [r1], accountable: r1}",
              "    decide: {responsible: [r2], accountable: r2}",
              "    deadlines: {acknowledge: P1D, investigate: P5D, validate: P5D, decide: P10D}",
              "decisions:", "  rollback: {min_authority: r0}", "  suspend: {min_authority: r0}",
              "  retrain: {min_authority: r1}", "  adjust_policy: {min_authority: r1}",
              "  accept_risk: {min_authority: r2, max_duration: P90D}", "  compensate: {min_authority: r2}",
              "tiers:", f"  high: {{timeout_factor: 0.5, separation_of_duties: true, must_reach: "
              f"{{critical: r{count - 1}, high: r{count - 1}}}}}"]
    return "\n".join(lines) + "\n"


def time_segments(count: int) -> float:
    """Seconds to validate and evaluate one bundle of `count` segments with the shipped packs."""
    catalog = builtin_catalog()
    policies = PolicyCompiler(catalog, load_frameworks()).compile_files(policy_files(REPO / "policies")).policies
    system = SystemRegistry.from_file(REPO / "evidence" / "systems.yaml", catalog)["claims-approval"]
    text = segment_bundle(count)
    at = datetime.datetime.fromisoformat(json.loads(text)["measured_at"].replace("Z", "+00:00"))
    start = time.perf_counter()
    bundle = EvidenceBundle.from_json(text, catalog, file="bench.json")
    evaluate_bundle(system, bundle, policies, at, [])
    return time.perf_counter() - start


def time_roles(count: int) -> float:
    """Seconds to load and validate an escalation chain of `count` roles."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "escalation.yaml"
        path.write_text(chain_escalation(count))
        start = time.perf_counter()
        load_escalation(path)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=10_000)
    parser.add_argument("--roles", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {}
    for name, measure, size in (("segments", time_segments, args.segments), ("roles", time_roles, args.roles)):
        small, large = measure(size // 10), measure(size)
        results[name] = {"n": size, "seconds": round(large, 3), "seconds_at_n_over_10": round(small, 3),
                         "per_item_ratio": round((large / size) / (small / (size // 10)), 2)}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, line in results.items():
        print(f"{name}: {line['n']:,} in {line['seconds']} s; {line['n'] // 10:,} in {line['seconds_at_n_over_10']} s; "
              f"per-item cost ratio {line['per_item_ratio']} (1 = linear, 10 = quadratic)")


if __name__ == "__main__":
    main()
