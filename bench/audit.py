"""Auditing an export of the back-test benchmark's ledger, against the back-test of that ledger in the same run.

Builds the ledger of bench/backtest.py (N systems, D daily bundles, the 40-rule policy) as
`charter submit` leaves it (``build_ledger(submitted=True)``: registered key, published policy,
signed bundles, evaluation entries and one entry per finding), then times in the same run:

- backtest: `charter backtest`'s work with the candidate policy, with ``--jobs`` workers and in one
  process: read the bundles and evaluation entries from the database and evaluate statuses only (no
  explanations, no integrity checks);
- export: ``charter ledger export``;
- audit (``audit_total_s``): what ``charter audit EXPORT --jobs N`` does after parsing its options:
  read the export and run `charter.audit.audit_export`, which verifies it (hashes, chain, receipts
  and Merkle roots, submitter signatures, checkpoints, authority) in a forked process while the
  replay's workers re-derive every finding (explanations and observed values included, compared
  with the recorded ones) and the incident entries they cause;
- the same one step after the other in one process (``one_process_*``): read, verify, index,
  replay; it must find exactly what the audit found;
- reading all entries (``read_all_entries_s``): read the export and parse every body, nothing more;
- charter verify (``verify_export_s``): the standalone verifier (`auditor.read_export` and
  `auditor.verify_entries`, what the exported verify.py runs) over the same export;
- full findings (``full_findings_evaluation_s``): `evaluate_bundle` alone over every bundle, its
  inputs read beforehand: what any audit that re-derives full findings pays at the least.

Target: the audit takes at most 2x the back-test plus the standalone verifier, in the same run
(``audit_vs_backtest_plus_verify_x``, ``within_target``): re-deriving every verdict costs at most
about as much again as checking integrity, which an auditor runs anyway.

Issue 12 first asked for at most 2x the back-test alone (``audit_vs_backtest_x``,
``within_first_target``). No audit can meet that here, and the run shows why: the back-test reads
the bundles and evaluation entries (about 1 in 20 of the entries) and evaluates statuses only, while
the audit must check every entry and re-derive every finding's full record. The standalone verifier
alone takes ``verify_export_vs_backtest_x`` times the back-test, and evaluating full findings alone,
with nothing read or checked, ``full_findings_vs_backtest_one_process_x`` times. All are timed in one
run, so the ratios hold on any machine; no test asserts a time. To show how replay's cost grows
with history, the one-process replay is also split into the first and second half of the bundles
(10-50% and 50-90% of the way; bundles are appended day by day, so later ones have longer
histories): a ratio near 1 is linear, near 2 or more grows with history.

    python bench/audit.py [--systems 20] [--days 365] [--jobs N] [--json]
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import tempfile
import time
from pathlib import Path

# bench/ is on the path when this file runs as a script: the ledger is bench/backtest.py's own
from backtest import CANDIDATE_EDIT, build_ledger, compile_bench_policy

from charter.audit import ExportedLedger, audit, audit_export, read_export, verify_export
from charter.backtest import backtest
from charter.bundle import EvidenceBundle
from charter.evaluate import evaluate_bundle
from charter.frameworks import load_frameworks
from charter.kpis import KpiCatalog, builtin_catalog
from charter.ledger import SigningKey, auditor, export_ledger
from charter.ledger.auditor import SYSTEM_REGISTERED
from charter.policy import PolicyCompiler
from charter.policy.compiler import CompiledPolicy
from charter.registry import AISystem
from charter.submission import EVALUATION

TARGET_X = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", type=int, default=20)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes for the back-test")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        recorded = compile_bench_policy(root / "recorded")
        candidate = compile_bench_policy(root / "candidate", CANDIDATE_EDIT)
        log_key = SigningKey.generate("bench.example/ledger")
        started = time.perf_counter()
        ledger = build_ledger(f"sqlite:///{root / 'ledger.db'}", args.systems, args.days, recorded, submitted=True,
                              log_key=log_key)
        setup = time.perf_counter() - started

        gc.collect()
        started = time.perf_counter()
        report = backtest(ledger, candidate, jobs=args.jobs)  # workers only where backtest itself would use them
        backtest_s = time.perf_counter() - started
        started = time.perf_counter()
        backtest(ledger, candidate, jobs=1)
        backtest_one_s = time.perf_counter() - started

        started = time.perf_counter()
        entries = export_ledger(ledger, root / "export")
        export_s = time.perf_counter() - started
        ledger.engine.dispose()

        catalog = builtin_catalog()

        def prepare(_: ExportedLedger) -> tuple[KpiCatalog, PolicyCompiler]:
            return catalog, PolicyCompiler(catalog, load_frameworks())

        gc.collect()
        started = time.perf_counter()
        export = read_export(root / "export")
        both = audit_export(export, log_key.public, export.notes, prepare, jobs=args.jobs)
        total = time.perf_counter() - started
        assert both.report.ok and both.result is not None, both.report.summary()
        result = both.result
        assert not result.differences and not result.unreplayable and not result.incident_differences, result.to_dict()

        # the same, one step after the other in one process: where the time goes
        gc.collect()
        marks: list[tuple[int, float]] = []
        started = time.perf_counter()
        export = read_export(root / "export")
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        verified = verify_export(export, log_key.public, export.notes)
        verify_s = time.perf_counter() - started
        assert verified.ok, verified.summary()
        started = time.perf_counter()
        view = ExportedLedger(export.entries, export.origin, export.parsed)
        index_s = time.perf_counter() - started
        gc.collect()
        started = time.perf_counter()
        one_process = audit(view, catalog, PolicyCompiler(catalog, load_frameworks()), jobs=1,
                            progress=lambda done, _: marks.append((done, time.perf_counter())))
        replay_one_s = time.perf_counter() - started
        assert one_process.to_dict() == result.to_dict()

        evaluate_s = _evaluate_every_bundle(view, catalog, recorded)

        gc.collect()
        started = time.perf_counter()
        for item in read_export(root / "export").entries:
            json.loads(item.body)
        read_all_s = time.perf_counter() - started
        gc.collect()
        started = time.perf_counter()
        _, rows, notes = auditor.read_export(root / "export")
        alone = auditor.verify_entries(rows, export.origin, log_key.public, notes)
        verify_alone_s = time.perf_counter() - started
        assert alone.ok, alone.summary()

    one_process_total = read_s + verify_s + index_s + replay_one_s

    def at(share: float) -> float:
        return min((t for done, t in marks if done >= share * result.bundles), default=started + replay_one_s)

    # bundles 10-50% and 50-90% of the way: leaves out the first compile of the recorded policy
    first_half, second_half = at(0.5) - at(0.1), at(0.9) - at(0.5)
    out = {
        "systems": args.systems, "days": args.days, "bundles": result.bundles, "entries": entries,
        "findings_rederived": result.findings_rederived, "setup_s": round(setup, 1),
        "jobs": args.jobs, "backtest_s": round(backtest_s, 2), "backtest_one_process_s": round(backtest_one_s, 2),
        "backtest_bundles": report.bundles, "export_s": round(export_s, 2),
        "audit_total_s": round(total, 2),
        "one_process_read_s": round(read_s, 2), "one_process_verify_s": round(verify_s, 2),
        "one_process_index_s": round(index_s, 2), "one_process_replay_s": round(replay_one_s, 2),
        "one_process_total_s": round(one_process_total, 2),
        "replay_ms_per_bundle_one_process": round(1000 * replay_one_s / max(result.bundles, 1), 2),
        "replay_50_90pct_vs_10_50pct_x": round(second_half / first_half, 2) if first_half > 0 else None,
        "read_all_entries_s": round(read_all_s, 2), "verify_export_s": round(verify_alone_s, 2),
        "full_findings_evaluation_s": round(evaluate_s, 2),
        "audit_vs_backtest_x": round(total / backtest_s, 2),
        "verify_export_vs_backtest_x": round(verify_alone_s / backtest_s, 2),
        "full_findings_vs_backtest_one_process_x": round(evaluate_s / backtest_one_s, 2),
        "audit_vs_backtest_plus_reading_x": round(total / (backtest_s + read_all_s), 2),
        "audit_vs_backtest_plus_verify_x": round(total / (backtest_s + verify_alone_s), 2),
        "target_x": TARGET_X, "within_target": total <= TARGET_X * (backtest_s + verify_alone_s),
        "within_first_target": total <= TARGET_X * backtest_s,
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for key, value in out.items():
            print(f"{key:38} {value}")


def _evaluate_every_bundle(view: ExportedLedger, catalog: KpiCatalog, policies: tuple[CompiledPolicy, ...]) -> float:
    """Seconds `evaluate_bundle` takes to give every bundle's full findings, with nothing else timed.

    The bundles, their systems, histories and evaluation times are read beforehand; only the
    evaluation with explanations and observed values (what a finding records) is timed, in one
    process. Any audit that re-derives full findings pays at least this, so its ratio to the
    back-test (statuses only) bounds from below what an audit can reach against the back-test.
    """
    work = []
    histories: dict[str, list[EvidenceBundle]] = {}
    systems = {entry.subject: AISystem.model_validate(entry.payload["system"])
               for entry in view.entries(types=(SYSTEM_REGISTERED,))}
    evaluated = {entry.payload["bundle"]["seq"]: entry.payload["evaluated_at"]
                 for entry in view.entries(types=(EVALUATION,))}
    for seq in view.bundle_seqs():
        entry = view.entry(seq)
        assert entry is not None and entry.subject is not None
        bundle = EvidenceBundle.from_data(entry.payload, catalog)
        history = histories.setdefault(entry.subject, [])
        work.append((systems[entry.subject], bundle, datetime.datetime.fromisoformat(evaluated[seq]), list(history)))
        history.append(bundle)
    gc.collect()
    started = time.perf_counter()
    for system, bundle, at, history in work:
        evaluate_bundle(system, bundle, policies, at, history)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
