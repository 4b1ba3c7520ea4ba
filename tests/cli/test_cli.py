"""The `charter` command end to end: exit codes, output formats, and the stories of the demo."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import REPO, run_cli, write_yaml

EVIDENCE = REPO / "evidence"


def _findings(*bundles: str, extra: tuple[str, ...] = ()) -> list[dict[str, object]]:
    result = run_cli("evaluate", *bundles, "--format", "json", *extra)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def test_fraud_recall_warns_then_breaches_from_the_month_it_crosses_the_floor() -> None:
    bundles = sorted(str(p) for p in EVIDENCE.glob("fraud-detector-*.json"))
    findings = _findings(*bundles)
    by_month = {f["window_start"][:7]: f for f in findings if f["rule"] == "recall-floor"}
    assert [by_month[m]["status"] for m in sorted(by_month)] == ["pass", "pass", "warn", "breach", "breach", "breach"]
    april = by_month["2026-04"]
    assert april["observed"] == {"recall": 0.73}
    assert "recall < 0.75" in april["explanation"] and "recall = 0.73" in april["explanation"]
    assert "eu-ai-act:art-15(3)" in april["controls"]
    precision = [f["status"] for f in findings if f["rule"] == "precision-floor"]
    assert precision == ["pass"] * 6


def test_claims_model_breaches_fairness_for_young_claimants_only() -> None:
    findings = _findings(str(EVIDENCE / "claims-approval-2026-05.json"))
    parity = {f["segment"]: f for f in findings if f["rule"] == "approval-parity"}
    assert parity["age:18-25"]["status"] == "breach"
    assert {s: f["status"] for s, f in parity.items() if s != "age:18-25"} == {
        "age:26-40": "pass", "age:41-65": "pass", "age:66+": "pass"}
    assert parity["age:18-25"]["observed"] == {"approval_rate": 0.61, "peers.approval_rate": 0.72}
    assert parity["age:18-25"]["controls"]


def test_maintenance_model_breaches_in_asia_only() -> None:
    findings = _findings(str(EVIDENCE / "turbine-maintenance-2026-06.json"))
    regional = {f["segment"]: f["status"] for f in findings if f["rule"] == "regional-recall-floor"}
    assert regional == {"region:asia": "breach", "region:europe": "pass", "region:north-america": "pass"}


def test_evaluate_exit_codes() -> None:
    assert run_cli("evaluate", str(EVIDENCE / "fraud-detector-2026-01.json")).returncode == 0
    assert run_cli("evaluate", str(EVIDENCE / "fraud-detector-2026-06.json")).returncode == 1


def test_evaluate_json_is_byte_identical_across_runs() -> None:
    args = ("evaluate", *sorted(str(p) for p in EVIDENCE.glob("*.json")), "--format", "json", "--all")
    assert run_cli(*args).stdout == run_cli(*args).stdout


def test_evaluate_at_a_later_time_reports_stale_evidence() -> None:
    findings = _findings(str(EVIDENCE / "fraud-detector-2026-01.json"), extra=("--at", "2026-06-01T00:00:00Z"))
    statuses = {f["rule"]: f["status"] for f in findings}
    assert statuses["recall-floor"] == "missing"
    assert statuses["evidence-fresh"] == "breach"


def test_nan_bundle_exits_2_with_json_path_and_no_traceback(tmp_path: Path) -> None:
    text = (EVIDENCE / "fraud-detector-2026-01.json").read_text().replace('"recall": 0.9,', '"recall": NaN,')
    bundle = tmp_path / "nan.json"
    bundle.write_text(text)
    result = run_cli("evaluate", str(bundle), "--systems", str(EVIDENCE / "systems.yaml"))
    assert result.returncode == 2
    assert "$.kpis.recall" in result.stderr and "non_finite_number" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_unregistered_system_is_bad_input(tmp_path: Path) -> None:
    data = json.loads((EVIDENCE / "fraud-detector-2026-01.json").read_text())
    data["system_id"] = "ghost"
    bundle = tmp_path / "ghost.json"
    bundle.write_text(json.dumps(data))
    result = run_cli("evaluate", str(bundle), "--systems", str(EVIDENCE / "systems.yaml"))
    assert result.returncode == 2
    assert "'ghost' is not registered" in result.stderr


def test_missing_bundle_file_is_bad_input(tmp_path: Path) -> None:
    result = run_cli("evaluate", str(tmp_path / "nope.json"), "--systems", str(EVIDENCE / "systems.yaml"))
    assert result.returncode == 2 and "no such file" in result.stderr


def test_lint_passes_on_the_shipped_policies() -> None:
    result = run_cli("policy", "lint", "policies")
    assert result.returncode == 0, result.stderr
    assert "ok:" in result.stdout


def test_lint_explains_which_conditions_fall_back_to_rule_engine(tmp_path: Path) -> None:
    policy = {"id": "p", "version": "1.0.0", "title": "t", "owner": "o", "rules": [
        {"id": "compiled", "title": "t", "severity": "high", "when": "baseline.recall - recall > 0.05",
         "controls": ["nist-ai-rmf:MEASURE-2.3"]},
        {"id": "powered", "title": "t", "severity": "low", "when": "recall ** 2 < 0.5",
         "warn_when": "$abs(recall - 0.8) > 0.1", "controls": ["nist-ai-rmf:MEASURE-2.3"]}]}
    write_yaml(tmp_path / "p.yaml", policy)
    result = run_cli("policy", "lint", str(tmp_path), "--explain-compile")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "p/powered when: the operator 'pow' (**)" in text and "p/powered warn_when: the function $abs()" in text
    assert "p/compiled" not in text and "compiled to Python: 1 of 3 conditions; 2 evaluated by rule-engine" in text
    shipped = run_cli("policy", "lint", "policies", "--explain-compile")
    assert "0 evaluated by rule-engine" in " ".join(shipped.stdout.split())


def test_lint_names_file_line_and_symbol_of_an_unknown_kpi(tmp_path: Path) -> None:
    policy = {"id": "p", "version": "1.0.0", "title": "t", "owner": "o",
              "rules": [{"id": "r", "title": "t", "severity": "high", "when": "recal < 0.8"}]}
    path = write_yaml(tmp_path / "p.yaml", policy)
    result = run_cli("policy", "lint", str(tmp_path))
    assert result.returncode == 2
    line = next(i + 1 for i, text in enumerate(path.read_text().splitlines()) if "when:" in text)
    assert f"{path}:{line}" in result.stderr
    assert "'recal'" in result.stderr and "did you mean 'recall'" in result.stderr


def test_lint_names_file_and_line_of_a_system_gated_primary_mapping(tmp_path: Path) -> None:
    # Review B4: the rule passes for every system but high-risk ones, whatever its evidence says.
    policy = {"id": "p", "version": "1.0.0", "title": "t", "owner": "o", "rules": [
        {"id": "r", "title": "t", "severity": "medium",
         "when": 'system.risk_tier == "high" and human_override_rate < 0.005',
         "controls": ["eu-ai-act:art-14(4)(b)"]}]}
    path = write_yaml(tmp_path / "p.yaml", policy)
    result = run_cli("policy", "lint", str(tmp_path))
    assert result.returncode == 2, result.stdout
    line = next(i + 1 for i, text in enumerate(path.read_text().splitlines()) if "controls:" in text)
    assert f"{path}:{line}" in result.stderr and "[system_gated_primary]" in result.stderr
    policy["rules"][0]["supporting_controls"] = policy["rules"][0].pop("controls")
    write_yaml(path, policy)
    assert run_cli("policy", "lint", str(tmp_path)).returncode == 0


def test_lint_reports_every_error_of_a_file_at_once(tmp_path: Path) -> None:
    policy = {"id": "p", "version": "1.0.0", "title": "t", "owner": "o", "rules": [
        {"id": "a", "title": "t", "severity": "high", "when": "recal < 0.8"},
        {"id": "b", "title": "t", "severity": "loud", "kpi": "recall", "min": 0.5},
        {"id": "c", "title": "t", "severity": "low", "kpi": "recall", "min": 0.5, "controls": ["nist-ai-rmf:NOPE-1"]},
    ]}
    write_yaml(tmp_path / "p.yaml", policy)
    result = run_cli("policy", "lint", str(tmp_path))
    assert result.returncode == 2
    for code in ("unknown_symbol", "policy_schema", "unknown_control"):
        assert f"[{code}]" in result.stderr
    assert "3 problems found" in result.stderr


def test_policy_test_passes_on_the_shipped_packs() -> None:
    result = run_cli("policy", "test", "policies", "--coverage")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    assert "not exercised" not in result.stdout


def _pack_with_test(tmp_path: Path, expected: str) -> Path:
    write_yaml(tmp_path / "p.yaml", {"id": "p", "version": "1.0.0", "title": "t", "owner": "o", "rules": [
        {"id": "floor", "title": "t", "severity": "high", "kpi": "recall", "min": 0.5},
        {"id": "untested", "title": "t", "severity": "low", "kpi": "precision", "min": 0.5}]})
    write_yaml(tmp_path / "p_test.yaml", {"cases": [
        {"name": "low recall", "kpis": {"recall": 0.2}, "expect": {"floor": expected}},
        {"name": "high recall", "kpis": {"recall": 0.9}, "expect": {"floor": "pass"}}]})
    return tmp_path


def test_policy_test_fails_on_a_wrong_expectation_and_lists_untested_rules(tmp_path: Path) -> None:
    result = run_cli("policy", "test", str(_pack_with_test(tmp_path, "pass")))
    assert result.returncode == 1
    assert "FAIL low recall" in result.stdout
    assert "expected pass, got breach" in result.stdout
    assert "p/untested" in result.stdout


def test_policy_test_json_and_run_filter(tmp_path: Path) -> None:
    result = run_cli("policy", "test", str(_pack_with_test(tmp_path, "breach")), "--format", "json",
                     "--run", "^high")
    report = json.loads(result.stdout)
    assert result.returncode == 0
    assert [c["name"] for c in report["cases"]] == ["high recall"]
    assert report["coverage"]["uncovered"] == ["p/untested"]


def test_policy_test_fails_when_no_test_ran(tmp_path: Path) -> None:
    result = run_cli("policy", "test", str(_pack_with_test(tmp_path, "breach")), "--run", "nothing-matches")
    assert result.returncode == 1
    assert "no test ran" in result.stdout


def test_kpis_lists_every_category_as_json() -> None:
    result = run_cli("kpis", "--format", "json")
    kpis = json.loads(result.stdout)
    assert {k["category"] for k in kpis} == {"technical", "business", "trust", "operational", "generative", "agentic"}
    agentic = json.loads(run_cli("kpis", "--category", "agentic", "--format", "json").stdout)
    assert agentic and all(k["category"] == "agentic" for k in agentic)


def test_schema_prints_json_schema_for_bundles_and_policies() -> None:
    bundle = json.loads(run_cli("schema", "bundle").stdout)
    assert {"system_id", "kpis", "window_end"} <= set(bundle["properties"])
    policy = json.loads(run_cli("schema", "policy").stdout)
    assert "rules" in policy["properties"]


def test_usage_errors_exit_2() -> None:
    assert run_cli("no-such-command").returncode == 2
    assert run_cli("schema", "nothing").returncode == 2
    result = run_cli("evaluate", str(EVIDENCE / "fraud-detector-2026-01.json"), "--at", "yesterday")
    assert result.returncode == 2 and "--at" in result.stderr
