"""Regression tests for the core engine's review findings: determinism, exactness, hostile input."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from charter._sources import parse_json_strict, parse_yaml
from charter.bundle import EvidenceBundle
from charter.errors import CharterError
from charter.evaluate import Status, evaluate_bundle, findings_json
from charter.kpis import KpiCatalog
from charter.policy import PolicySet
from charter.registry import AISystem
from tests.conftest import REPO

Compile = Callable[[dict[str, Any]], PolicySet]
SYSTEM = AISystem(id="s", name="S", owner="o", risk_tier="high", kind="classifier", region="eu")


def _policy(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"id": "p", "version": "1.0.0", "title": "t", "owner": "o",
            "rules": [{"title": "t", "severity": "high", **r} for r in rules]}


def _bundle(catalog: KpiCatalog, kpis: dict[str, float], segments: dict[str, Any] | None = None,
            month: int = 1) -> EvidenceBundle:
    start = datetime.datetime(2026, month, 1, tzinfo=datetime.UTC)
    end = datetime.datetime(2026, month + 1, 1, tzinfo=datetime.UTC)
    return EvidenceBundle.from_data({"system_id": "s", "model_version": "1", "window_start": start, "window_end": end,
                                     "measured_at": end, "kpis": kpis, "segments": segments or {},
                                     "submitter": "o"}, catalog)


def test_peer_means_do_not_depend_on_segment_order(catalog: KpiCatalog, compile_policy: Compile) -> None:
    policies = compile_policy(_policy({"id": "ord", "scope": "segments", "dimension": "age",
                                       "when": "approval_rate < peers.approval_rate"})).policies
    values = {"age:a": 0.2, "age:b": 0.1, "age:c": 0.2, "age:d": 0.3}
    forward = {k: {"approval_rate": v} for k, v in values.items()}
    backward = {k: forward[k] for k in reversed(list(forward))}
    a, b = _bundle(catalog, {"recall": 0.9}, forward), _bundle(catalog, {"recall": 0.9}, backward)
    assert a.digest() == b.digest()
    assert findings_json(evaluate_bundle(SYSTEM, a, policies, a.measured_at)) == \
        findings_json(evaluate_bundle(SYSTEM, b, policies, b.measured_at))


def test_set_literals_print_the_same_in_every_process(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "p.yaml").write_text(json.dumps(_policy(
        {"id": "sets", "when": "recall < 0.95 and system.region in {'eu', 'us', 'asia', 'global'}"})))
    systems = tmp_path / "systems.yaml"
    systems.write_text(json.dumps({"systems": [{"id": "fraud-detector", "name": "F", "owner": "o",
                                                "risk_tier": "high", "kind": "classifier", "region": "eu"}]}))
    outputs = set()
    for seed in ("1", "2", "3"):
        result = subprocess.run([sys.executable, "-m", "charter", "evaluate", str(REPO / "evidence" /
                                 "fraud-detector-2026-03.json"), "--policies", str(policies), "--systems",
                                 str(systems), "--format", "json"], capture_output=True, text=True, check=False,
                                env={**os.environ, "PYTHONHASHSEED": seed})
        assert result.returncode == 1, result.stderr
        outputs.add(result.stdout)
    assert len(outputs) == 1


def test_infinite_peer_mean_does_not_break_json(catalog: KpiCatalog, compile_policy: Compile) -> None:
    policies = compile_policy(_policy({"id": "big", "scope": "segments",
                                       "when": "latency_p95_ms > 2 * peers.latency_p95_ms"})).policies
    segments = {f"region:{r}": {"latency_p95_ms": 1e308} for r in ("a", "b", "c")}
    bundle = _bundle(catalog, {"recall": 0.9}, segments)
    json.loads(findings_json(evaluate_bundle(SYSTEM, bundle, policies, bundle.measured_at)))


def test_sustained_needs_consecutive_windows(catalog: KpiCatalog, compile_policy: Compile) -> None:
    policies = compile_policy(_policy({"id": "r", "kpi": "recall", "min": 0.8, "sustained": 2})).policies
    april, june = _bundle(catalog, {"recall": 0.5}, month=4), _bundle(catalog, {"recall": 0.5}, month=6)
    finding = evaluate_bundle(SYSTEM, june, policies, june.measured_at, [april])[0]
    assert (finding.status, finding.consecutive) == (Status.WARN, 1)
    may = _bundle(catalog, {"recall": 0.5}, month=5)
    assert evaluate_bundle(SYSTEM, june, policies, june.measured_at, [april, may])[0].status is Status.BREACH


@pytest.mark.parametrize("text", ['[' * 100_000, '{"a": ' + "1" * 5000 + "}"])
def test_hostile_json_is_a_located_error(text: str) -> None:
    with pytest.raises(CharterError):
        parse_json_strict(text, "x.json")


@pytest.mark.parametrize("text", [
    "description: &a [*a]\n",
    "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 8)),
])
def test_hostile_yaml_is_a_located_error(text: str) -> None:
    with pytest.raises(CharterError) as info:
        parse_yaml(text, "p.yaml")
    assert info.value.code == "yaml_syntax"


def test_deeply_nested_expression_is_a_lint_error(compile_policy: Compile) -> None:
    with pytest.raises(CharterError) as info:
        compile_policy(_policy({"id": "deep", "when": "not " * 490 + "recall > 0"}))
    assert info.value.code in {"expression_syntax", "expression_type"}


def test_fractional_durations_are_refused(compile_policy: Compile) -> None:
    with pytest.raises(CharterError, match="whole number of seconds"):
        compile_policy(_policy({"id": "r", "kpi": "recall", "min": 0.5, "max_age": "PT1.5S"}))


def test_policy_tests_with_invalid_systems_or_segments_fail_cleanly(tmp_path: Path, catalog: KpiCatalog,
                                                                     compiler: Any) -> None:
    from charter.policy.testing import PolicyTestRunner, find_test_files
    from tests.conftest import write_yaml

    write_yaml(tmp_path / "p.yaml", _policy({"id": "floor", "kpi": "recall", "min": 0.5},
                                            {"id": "seg", "scope": "segments", "kpi": "recall", "min": 0.5}))
    write_yaml(tmp_path / "p_test.yaml", {"cases": [
        {"name": "bad id", "system": {"id": "Bad ID"}, "kpis": {"recall": 0.9}, "expect": {"floor": "pass"}},
        {"name": "bad baseline", "system": {"baseline": {"recall": float("inf")}}, "kpis": {"recall": 0.9},
         "expect": {"floor": "pass"}},
        {"name": "old", "window_end": "0001-01-02T00:00:00Z", "kpis": {"recall": 0.9}, "expect": {"floor": "pass"}},
        {"name": "typo", "kpis": {"recall": 0.9}, "segments": {"age:a": {"recall": 0.9}},
         "expect": {"seg@age:nope": "not_applicable"}},
    ]})
    report = PolicyTestRunner(compiler.compile_files([tmp_path / "p.yaml"]), catalog).run(find_test_files(tmp_path))
    assert [(r.name, r.error.code if r.error else None) for r in report.results] == [
        ("bad id", "test_schema"), ("bad baseline", "test_schema"), ("old", "test_schema"),
        ("typo", "unknown_segment")]
