"""Back-testing: the fast status path reproduces recorded findings, and threshold changes show up as changes."""

from __future__ import annotations

import dataclasses
import datetime
import json
import shutil
from pathlib import Path

import pytest

from charter.backtest import StatusEvaluator, backtest, stored_bundles
from charter.evaluate import evaluate_bundle, history_for
from charter.frameworks import load_frameworks
from charter.kpis import builtin_catalog
from charter.policy import PolicyCompiler, policy_files
from charter.policy.compiler import CompiledPolicy
from charter.submission import systems_in_ledger
from tests.conftest import REPO, run_cli
from tests.golden.scenario import Scenario, build_scenario


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return build_scenario(f"sqlite:///{tmp_path_factory.mktemp('backtest') / 'ledger.db'}")


def _candidate(tmp_path: Path, edits: dict[str, tuple[str, str]]) -> tuple[CompiledPolicy, ...]:
    """The shipped policies with textual edits: relative file -> (old text, new text)."""
    directory = tmp_path / "candidate"
    shutil.copytree(REPO / "policies", directory)
    for name, (old, new) in edits.items():
        path = directory / name
        text = path.read_text()
        assert old in text, f"{old!r} not in {name}"
        path.write_text(text.replace(old, new, 1))
    compiler = PolicyCompiler(builtin_catalog(), load_frameworks())
    return compiler.compile_files(policy_files(directory)).policies


def test_fast_statuses_equal_the_findings_evaluate_bundle_makes(scenario: Scenario) -> None:
    registry = systems_in_ledger(scenario.ledger)
    stored = stored_bundles(scenario.ledger)
    evaluator = StatusEvaluator(scenario.policies.policies)
    bundles = [s.bundle for s in stored]
    compared = 0
    for item in stored:
        system = registry[item.bundle.system_id]
        history = history_for(item.bundle, bundles)
        findings = evaluate_bundle(system, item.bundle, scenario.policies.policies, item.evaluated_at, bundles)
        expected = {(f.system_id, f.rule_ref, f.segment): (f.status, f.severity.value) for f in findings}
        assert evaluator.statuses(system, item.bundle, item.evaluated_at, history) == expected
        compared += len(expected)
    assert compared > 400 and {s for s, _ in expected.values()} >= {"pass"}


def test_the_shared_bundle_namespace_equals_the_evaluators(scenario: Scenario) -> None:
    from charter.evaluate import _Snapshot

    registry = systems_in_ledger(scenario.ledger)
    stored = stored_bundles(scenario.ledger)
    evaluator = StatusEvaluator(scenario.policies.policies)
    bundles = [s.bundle for s in stored]
    for item in stored:
        history = history_for(item.bundle, bundles)
        for segment in (None, *item.bundle.segments):
            snap = _Snapshot(registry[item.bundle.system_id], item.bundle, history[0] if history else None, segment)
            assert snap.namespace(evaluator._views) == snap.namespace()


def test_recorded_statuses_come_from_the_summary_or_from_the_findings(scenario: Scenario) -> None:
    from charter.backtest import recorded_statuses

    stored = stored_bundles(scenario.ledger)
    assert all(s.summary is not None and len(s.summary) == s.findings for s in stored)
    summarised = recorded_statuses(scenario.ledger, stored)
    without = [dataclasses.replace(s, summary=None) for s in stored]  # as in a ledger older than the summary
    assert recorded_statuses(scenario.ledger, without) == summarised


def test_the_recorded_policies_reproduce_every_recorded_status(scenario: Scenario) -> None:
    size = scenario.ledger.size()
    report = backtest(scenario.ledger, scenario.policies.policies)
    assert report.bundles == len(stored_bundles(scenario.ledger)) and report.bundles > 10
    assert report.rule_evaluations > 400
    assert all(before == after for before, after in report.transitions)  # nothing moved
    assert sum(report.transitions.values()) == report.rule_evaluations
    assert {before for before, _ in report.transitions} >= {"pass", "warn", "breach"}
    assert not report.breaches_appeared and not report.breaches_disappeared and not report.severity_changed
    assert scenario.ledger.size() == size  # nothing written


def test_backtest_reads_both_backends_alike(db_url: str, tmp_path: Path) -> None:
    """SQLite and PostgreSQL: the streamed reads, exact-id reads and counts give the same back-test."""
    scenario = build_scenario(db_url)
    policies = _candidate(tmp_path, {"core/performance.yaml": ("    min: 0.75\n", "    min: 0.83\n")})
    report = backtest(scenario.ledger, policies)
    assert report.bundles == scenario.ledger.count_entries(("bundle",)) > 10
    assert [(c.system, c.rule, c.recorded) for c in report.breaches_appeared] == [
        ("fraud-detector", "core.performance/recall-floor", "warn")]
    unsummarised = [dataclasses.replace(s, summary=None) for s in stored_bundles(scenario.ledger)]
    from charter.backtest import recorded_lines

    assert recorded_lines(scenario.ledger, unsummarised) == {s.seq: s.summary
                                                             for s in stored_bundles(scenario.ledger)}


def test_a_tighter_threshold_and_a_new_severity_show_as_changes(scenario: Scenario, tmp_path: Path) -> None:
    policies = _candidate(tmp_path, {
        "core/performance.yaml": ("    min: 0.75\n", "    min: 0.83\n"),
        "generative/quality.yaml": ("    max: 0.05\n    warn: 0.03\n", "    max: 0.5\n    warn: 0.4\n"),
    })
    policies = tuple(p for p in policies if p.policy.id != "core.regional")  # a policy withdrawn
    report = backtest(scenario.ledger, policies)
    appeared = {(c.system, c.rule, c.recorded) for c in report.breaches_appeared}
    assert ("fraud-detector", "core.performance/recall-floor", "warn") in appeared
    disappeared = {(c.system, c.rule, c.candidate) for c in report.breaches_disappeared}
    assert ("turbine-maintenance", "core.regional/regional-recall-floor", "absent") in disappeared
    assert ("customer-chatbot", "generative.quality/hallucination-rate", "pass") in disappeared
    assert ("customer-chatbot", "generative.quality/hallucination-rate", None) in report.incidents_disappeared
    assert report.transitions[("breach", "absent")] >= 1 and report.transitions[("warn", "breach")] >= 1
    assert report.by_rule[("core.performance/recall-floor", "breach appeared")] >= 1


def test_each_bundle_is_judged_as_its_system_was_registered_then(tmp_path: Path) -> None:
    from charter.registry import SystemKind
    from charter.submission import register_system
    from tests.golden.scenario import fixed_key

    scenario = build_scenario(f"sqlite:///{tmp_path / 'ledger.db'}")
    fraud = systems_in_ledger(scenario.ledger)["fraud-detector"]
    register_system(scenario.ledger, fraud.model_copy(update={"kind": SystemKind.REGRESSOR}),  # after its bundles
                    fixed_key("ben.okafor"))
    report = backtest(scenario.ledger, scenario.policies.policies)
    assert not report.breaches_appeared and not report.breaches_disappeared
    assert all(before == after for before, after in report.transitions)


def test_worker_processes_give_the_same_report(scenario: Scenario, tmp_path: Path) -> None:
    policies = _candidate(tmp_path, {"core/performance.yaml": ("    min: 0.75\n", "    min: 0.83\n")})
    one = backtest(scenario.ledger, policies)
    seen: list[tuple[int, int]] = []
    two = backtest(scenario.ledger, policies, jobs=2, parallel_from=0, progress=lambda d, t: seen.append((d, t)))
    assert two.to_dict() == one.to_dict() and one.breaches_appeared
    assert seen and seen[-1][0] == seen[-1][1] == len(stored_bundles(scenario.ledger))


def test_since_and_system_narrow_what_is_re_evaluated(scenario: Scenario) -> None:
    everything = backtest(scenario.ledger, scenario.policies.policies)
    since = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)
    recent = backtest(scenario.ledger, scenario.policies.policies, since=since)
    one = backtest(scenario.ledger, scenario.policies.policies, system="fraud-detector")
    assert 0 < recent.bundles < everything.bundles and one.systems == 1 and 0 < one.bundles < everything.bundles
    assert not recent.breaches_appeared and not one.breaches_appeared  # history still comes from earlier bundles


def test_cli_backtest_reports_changes_and_writes_nothing(tmp_path: Path) -> None:
    assert run_cli("demo", cwd=tmp_path).returncode == 0
    ledger = ("--db", "sqlite:///.charter/demo/ledger.db", "--ledger-key", ".charter/demo/ledger.key")
    database = tmp_path / ".charter" / "demo" / "ledger.db"
    before = database.read_bytes()
    same = run_cli("backtest", "--policies", str(REPO / "policies"), "--fail-on-change", *ledger, cwd=tmp_path)
    assert same.returncode == 0 and "exactly the recorded statuses" in same.stdout, same.stderr
    shutil.copytree(REPO / "policies", tmp_path / "candidate")
    performance = tmp_path / "candidate" / "core" / "performance.yaml"
    performance.write_text(performance.read_text().replace("    min: 0.75\n", "    min: 0.83\n", 1))
    changed = run_cli("backtest", "--policies", "candidate", "--format", "json", "--fail-on-change", *ledger,
                      cwd=tmp_path)
    assert changed.returncode == 1, changed.stderr
    document = json.loads(changed.stdout)
    assert any(c["rule"] == "core.performance/recall-floor" for c in document["breaches_appeared"])
    bad = run_cli("backtest", "--policies", "candidate", "--system", "nope", *ledger, cwd=tmp_path)
    assert bad.returncode == 2 and "not registered" in bad.stderr
    assert database.read_bytes() == before


_HISTORY_POLICY = """\
id: t.history
version: 1.0.0
title: Rules that read history
owner: o
applies_to:
  risk_tiers: [high]
rules:
  - id: drop
    title: Recall drops against the previous bundle, twice running
    severity: high
    when: previous.recall - recall > 0.1
    sustained: 2
    controls: [iso-42001:A.6.2.4]
  - id: degradation
    title: Recall below the baseline, twice running
    severity: high
    when: baseline.recall - recall > 0.1
    sustained: 2
    controls: [iso-42001:A.6.2.4]
  - id: drop-once
    title: Recall drops against the previous bundle
    severity: low
    when: previous.recall - recall > 0.1
    controls: [iso-42001:A.6.2.4]
  - id: floor
    title: Recall floor
    severity: medium
    kpi: recall
    min: 0.6
    controls: [iso-42001:A.6.2.4]
"""


def test_history_is_what_the_ledger_held_at_submission(tmp_path: Path) -> None:
    """Backfilled windows, a resubmitted window and a re-registration: the recorded policies change nothing."""
    from charter.cli.demo import demo_governance
    from charter.ledger import Ledger
    from charter.registry import AISystem, SystemRegistry
    from charter.submission import register_system, submit_bundle
    from tests.golden.scenario import fixed_key
    from tests.unit.ledger.helpers import StepClock

    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "history.yaml").write_text(_HISTORY_POLICY)
    policies = PolicyCompiler(builtin_catalog(), load_frameworks()).compile_files(
        policy_files(tmp_path / "policies")).policies
    clock = StepClock()
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", log_key=fixed_key("log"), origin="t/ledger",
                         create=True, clock=clock)
    owner = fixed_key("owner")
    system = AISystem(id="s1", name="S", owner="owner", risk_tier="high", kind="classifier", baseline={"recall": 0.8})
    demo_governance(ledger, SystemRegistry({"s1": system}), policies, REPO / "policies" / "escalation.yaml",
                    make_key=fixed_key)

    def submit(month: int, recall: float, minutes: int = 0) -> None:
        start = datetime.datetime(2026, month, 1, tzinfo=datetime.UTC)
        end = datetime.datetime(2026, month + 1, 1, tzinfo=datetime.UTC)
        measured = end + datetime.timedelta(minutes=minutes)
        clock.now = measured + datetime.timedelta(hours=1)
        data = {"system_id": "s1", "model_version": "1", "window_start": start.isoformat(),
                "window_end": end.isoformat(), "measured_at": measured.isoformat(), "kpis": {"recall": recall},
                "submitter": "owner"}
        submit_bundle(ledger, json.dumps(data).encode(), builtin_catalog(), key=owner)

    submit(1, 0.72)
    submit(2, 0.85)
    submit(2, 0.70, minutes=5)  # the same window again, corrected
    submit(3, 0.55)
    submit(5, 0.40)  # April is missing for now: May's previous is March
    register_system(ledger, system.model_copy(update={"baseline": {"recall": 0.9}}), fixed_key("ben.okafor"))
    submit(4, 0.35)  # April, backfilled after May was judged without it
    submit(6, 0.74)
    report = backtest(ledger, policies)
    assert report.bundles == 7 and report.rule_evaluations == 28
    assert all(before == after for before, after in report.transitions), report.transitions
    assert report.transitions[("breach", "breach")] >= 3
    since = backtest(ledger, policies, since=datetime.datetime(2026, 5, 1, tzinfo=datetime.UTC))
    assert since.bundles == 3 and not since.incidents_appeared and not since.breaches_appeared
    (tmp_path / "policies" / "history.yaml").write_text(_HISTORY_POLICY.replace("min: 0.6", "min: 0.8"))
    tighter = PolicyCompiler(builtin_catalog(), load_frameworks()).compile_files(
        policy_files(tmp_path / "policies")).policies
    june = backtest(ledger, tighter, since=datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC))
    assert [(c.rule, c.recorded, c.candidate) for c in june.breaches_appeared] == [
        ("t.history/floor", "pass", "breach")]
    assert june.incidents_appeared == []  # the floor breached before June: its incident key is not new
