"""Evaluation: statuses, sustained breaches, freshness, explanations, determinism."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any

import pytest

from charter.bundle import EvidenceBundle
from charter.evaluate import Finding, Status, evaluate_bundle, findings_json, history_for
from charter.kpis import KpiCatalog
from charter.policy import PolicySet
from charter.registry import AISystem

UTC = datetime.UTC
SYSTEM = AISystem(id="s", name="S", owner="o", risk_tier="high", kind="classifier",
                  tags=("payments",), baseline={"recall": 0.9})


def _bundle(catalog: KpiCatalog, month: int, **kpis: float) -> EvidenceBundle:
    start = datetime.datetime(2026, month, 1, tzinfo=UTC)
    end = datetime.datetime(2026, month + 1, 1, tzinfo=UTC)
    return EvidenceBundle.from_data({"system_id": "s", "model_version": "1", "window_start": start,
                                     "window_end": end, "measured_at": end, "kpis": kpis,
                                     "submitter": "o"}, catalog)


def _policy(*rules: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"id": "p", "version": "1.0.0", "title": "t", "owner": "o", **fields,
            "rules": [{"title": "t", "severity": "high", **r} for r in rules]}


Compile = Callable[[dict[str, Any]], PolicySet]


def _only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


def test_sustained_breach_needs_consecutive_failures(catalog: KpiCatalog, compile_policy: Compile) -> None:
    policies = compile_policy(_policy({"id": "r", "kpi": "recall", "min": 0.8, "sustained": 3})).policies
    months = [_bundle(catalog, m, recall=v) for m, v in [(1, 0.7), (2, 0.9), (3, 0.7), (4, 0.7), (5, 0.7)]]
    statuses = []
    for bundle in months:
        finding = _only(evaluate_bundle(SYSTEM, bundle, policies, bundle.window_end, months))
        statuses.append((finding.status, finding.consecutive))
    assert statuses == [(Status.WARN, 1), (Status.PASS, 0), (Status.WARN, 1), (Status.WARN, 2), (Status.BREACH, 3)]


def test_explanation_names_the_deciding_subexpression(catalog: KpiCatalog, compile_policy: Compile) -> None:
    policies = compile_policy(_policy(
        {"id": "r", "when": "recall < 0.8 and (precision > 0.95 or f1 < 0.6)"})).policies
    bundle = _bundle(catalog, 1, recall=0.5, precision=0.9, f1=0.55)
    finding = _only(evaluate_bundle(SYSTEM, bundle, policies, bundle.window_end))
    assert finding.status is Status.BREACH
    assert finding.explanation == "recall < 0.8 (recall = 0.5) and f1 < 0.6 (f1 = 0.55)"
    assert finding.observed == {"f1": 0.55, "precision": 0.9, "recall": 0.5}


def test_pass_explains_the_values_seen(catalog: KpiCatalog, compile_policy: Compile) -> None:
    policies = compile_policy(_policy({"id": "r", "when": "baseline.recall - recall > 0.1"})).policies
    bundle = _bundle(catalog, 1, recall=0.85)
    finding = _only(evaluate_bundle(SYSTEM, bundle, policies, bundle.window_end))
    assert finding.status is Status.PASS
    assert finding.explanation == "baseline.recall - recall > 0.1 (baseline.recall = 0.9, recall = 0.85) is false"


def test_missing_kpi_is_its_own_finding(catalog: KpiCatalog, compile_policy: Compile) -> None:
    policies = compile_policy(_policy({"id": "r", "when": "recall < 0.8 and precision < 0.5"})).policies
    bundle = _bundle(catalog, 1, recall=0.5)
    finding = _only(evaluate_bundle(SYSTEM, bundle, policies, bundle.window_end))
    assert finding.status is Status.MISSING and "precision" in finding.explanation


def test_stale_evidence_is_missing_and_now_is_the_evaluation_time(catalog: KpiCatalog,
                                                                   compile_policy: Compile) -> None:
    policies = compile_policy(_policy({"id": "floor", "kpi": "recall", "min": 0.5, "max_age": "P10D"},
                                      {"id": "fresh", "when": '$now - bundle.window_end > t"P10D"'})).policies
    bundle = _bundle(catalog, 1, recall=0.9)
    fresh = {f.rule: f.status for f in evaluate_bundle(SYSTEM, bundle, policies, bundle.window_end)}
    late = evaluate_bundle(SYSTEM, bundle, policies, bundle.window_end + datetime.timedelta(days=20))
    assert fresh == {"floor": Status.PASS, "fresh": Status.PASS}
    assert {f.rule: f.status for f in late} == {"floor": Status.MISSING, "fresh": Status.BREACH}
    assert "20.0 days" in late[0].explanation and "P10D" in late[0].explanation


def test_reads_shared_by_a_bundle_s_rules_follow_the_evaluation_time(catalog: KpiCatalog,
                                                                      compile_policy: Compile) -> None:
    """Operand values are read once per namespace and evaluation time: `$now` is read again at another time."""
    from charter import evaluate

    policies = compile_policy(_policy({"id": "fresh", "when": '$now - bundle.window_end > t"P10D"'},
                                      {"id": "floor", "when": "recall < 0.8 or recall < baseline.recall"},
                                      {"id": "drop", "when": "baseline.recall - recall > 0.01"})).policies
    bundle = _bundle(catalog, 1, recall=0.85)
    times = [bundle.window_end + datetime.timedelta(days=days) for days in (0, 20, 0, 5)]
    times.append(times[-1].astimezone(datetime.timezone(datetime.timedelta(hours=1))))  # the same instant, elsewhere

    def fresh(at: datetime.datetime) -> list[Finding]:
        evaluate._NAMESPACES.clear()
        return evaluate_bundle(SYSTEM, bundle, policies, at)

    alone = [fresh(at) for at in times]
    shared = [evaluate_bundle(SYSTEM, bundle, policies, at) for at in times]  # caches kept between times
    assert shared == alone
    assert [f.observed["$now"] for f in (findings[0] for findings in shared)] == [at.isoformat() for at in times]
    assert shared[1][0].status is Status.BREACH and shared[0][0].status is Status.PASS


def test_policies_that_do_not_apply_produce_no_findings(catalog: KpiCatalog, compile_policy: Compile) -> None:
    policies = compile_policy(_policy({"id": "r", "kpi": "recall", "min": 0.5},
                                      applies_to={"tags": ["chatbot"]})).policies
    bundle = _bundle(catalog, 1, recall=0.1)
    assert evaluate_bundle(SYSTEM, bundle, policies, bundle.window_end) == []


def test_bundle_for_another_system_is_refused(catalog: KpiCatalog, compile_policy: Compile) -> None:
    policies = compile_policy(_policy({"id": "r", "kpi": "recall", "min": 0.5})).policies
    other = SYSTEM.model_copy(update={"id": "t"})
    with pytest.raises(ValueError):
        evaluate_bundle(other, _bundle(catalog, 1, recall=0.9), policies, datetime.datetime(2026, 3, 1, tzinfo=UTC))


def test_history_is_earlier_bundles_of_the_same_system_newest_first(catalog: KpiCatalog) -> None:
    bundles = [_bundle(catalog, m, recall=0.9) for m in (3, 1, 2, 4)]
    history = history_for(bundles[0], bundles)
    assert [b.window_start.month for b in history] == [2, 1]


def test_findings_json_is_deterministic_and_sorted(catalog: KpiCatalog, compile_policy: Compile) -> None:
    policies = compile_policy(_policy({"id": "b", "kpi": "recall", "min": 0.5},
                                      {"id": "a", "kpi": "precision", "min": 0.5})).policies
    bundle = _bundle(catalog, 1, recall=0.9, precision=0.1)
    first = findings_json(evaluate_bundle(SYSTEM, bundle, policies, bundle.window_end))
    second = findings_json(evaluate_bundle(SYSTEM, bundle, policies, bundle.window_end))
    assert first == second
    assert [f["rule"] for f in json.loads(first)] == ["b", "a"]  # rule order as written
