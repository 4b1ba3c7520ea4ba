"""CI formats: `policy test --format junit`, `policy lint --format sarif`, `evaluate --format sarif`."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charter.ci_output import artifact_location, junit_xml, lint_sarif
from charter.errors import Diagnostic, Location
from charter.policy.testing import CaseResult, Mismatch, TestReport
from tests.conftest import REPO, run_cli, write_yaml

EVIDENCE = REPO / "evidence"


def _sarif_schema() -> Path | None:
    """SARIF 2.1.0's JSON schema (OASIS): not in this repository; looked for in $CHARTER_SARIF_SCHEMA and in
    shared/reference/sarif beside the repository."""
    candidates = [Path(os.environ["CHARTER_SARIF_SCHEMA"])] if os.environ.get("CHARTER_SARIF_SCHEMA") else []
    candidates.append(REPO.parent / "shared" / "reference" / "sarif" / "2.1.0" / "sarif-schema-2.1.0.json")
    return next((c for c in candidates if c.is_file()), None)


def _check_sarif(log: dict[str, Any]) -> dict[str, Any]:
    """The log's one run, after checking what every consumer needs (and the OASIS schema, when at hand)."""
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-schema-2.1.0.json")
    (run,) = log["runs"]
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert rules == sorted(set(rules))
    for result in run["results"]:
        assert rules[result["ruleIndex"]] == result["ruleId"] and result["message"]["text"]
        assert result["level"] in ("error", "warning", "note", "none")
    errors = _schema_errors(log)
    assert not errors, errors
    return run


def _schema_errors(log: dict[str, Any]) -> list[str]:
    schema = _sarif_schema()
    if schema is None:
        return []
    import jsonschema

    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in
            jsonschema.Draft4Validator(json.loads(schema.read_text(encoding="utf-8"))).iter_errors(log)]


def test_the_schema_check_can_fail() -> None:
    if _sarif_schema() is None:
        pytest.skip("SARIF 2.1.0 schema not found: set CHARTER_SARIF_SCHEMA or add shared/reference/sarif/2.1.0")
    log = lint_sarif([Diagnostic("c", "m", Location(file="p.yaml", line=3))], [], REPO)
    assert _schema_errors(log) == []
    log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] = 0
    assert any("startLine" in error for error in _schema_errors(log))


def _report(*results: CaseResult, rules: tuple[str, ...] = ("p/a", "p/b")) -> TestReport:
    tested: dict[str, set[str]] = {}
    for result in results:
        for rule, status in result.checked:
            tested.setdefault(rule, set()).add(status)
    return TestReport(list(results), list(rules), tested)


# -- JUnit ------------------------------------------------------------------------------------------


def test_junit_counts_failures_and_errors_per_file_and_names_each_mismatch() -> None:
    report = _report(
        CaseResult("policies/p_test.yaml", 3, "passes", checked=[("p/a", "pass")]),
        CaseResult("policies/p_test.yaml", 9, "fails", [Mismatch("p/a", "breach", "pass", "recall < 0.8 is false")],
                   checked=[("p/a", "breach")]),
        CaseResult("policies/q_test.yaml", 2, "cannot run",
                   error=Diagnostic("unknown_rule", "no rule p/zz", Location(file="policies/q_test.yaml", line=4))))
    root = ET.fromstring(junit_xml(report))
    assert (root.tag, root.get("tests"), root.get("failures"), root.get("errors")) == ("testsuites", "3", "1", "1")
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert list(suites) == ["policies/p_test.yaml", "policies/q_test.yaml"]
    assert (suites["policies/p_test.yaml"].get("tests"), suites["policies/p_test.yaml"].get("failures")) == ("2", "1")
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert cases["passes"].find("failure") is None and cases["passes"].get("line") == "3"
    failure = cases["fails"].find("failure")
    assert failure is not None and failure.text == "p/a: expected breach, got pass - recall < 0.8 is false"
    assert failure.get("message") == "1 expectation did not hold: p/a"
    error = cases["cannot run"].find("error")
    assert error is not None and error.get("type") == "unknown_rule" and "policies/q_test.yaml:4" in (error.text or "")
    assert cases["fails"].get("classname") == "p_test" and cases["fails"].get("file") == "policies/p_test.yaml"
    # p/b was never exercised: a property of the run, not a failed test
    properties = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert properties["charter.rules_not_exercised"] == "p/b"


def test_junit_of_no_case_is_an_empty_run() -> None:
    root = ET.fromstring(junit_xml(_report()))
    assert root.get("tests") == "0" and not list(root)


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=40), explanation=st.text(max_size=40))
def test_junit_stays_well_formed_whatever_a_case_is_called(name: str, explanation: str) -> None:
    """Case names and explanations come from YAML: XML 1.0's forbidden characters (NUL, most controls,
    lone surrogates, U+FFFE) are shown escaped, never written raw into a document no CI could read."""
    report = _report(CaseResult("t_test.yaml", 1, name, [Mismatch("p/a", "pass", "breach", explanation)]))
    case = ET.fromstring(junit_xml(report).encode("utf-8", "surrogatepass")).find("testsuite/testcase")
    assert case is not None
    allowed = all(ch in "\t\n\r" or "\x20" <= ch <= "\ud7ff" or "\ue000" <= ch <= "\ufffd" or ch >= "\U00010000"
                  for ch in name)
    if allowed:
        assert case.get("name") == name
    else:
        assert "\\u" in (case.get("name") or "")


def test_policy_test_cli_writes_junit_and_keeps_its_exit_code(tmp_path: Path) -> None:
    shipped = run_cli("policy", "test", "policies", "--format", "junit")
    assert shipped.returncode == 0, shipped.stderr
    root = ET.fromstring(shipped.stdout)
    assert int(root.get("tests") or 0) > 100 and root.get("failures") == "0" and root.get("errors") == "0"
    assert {s.get("name") for s in root.iter("testsuite")} == {
        str(p.relative_to(REPO)) for p in (REPO / "policies").rglob("*_test.yaml")}

    write_yaml(tmp_path / "p.yaml", {"id": "p", "version": "1.0.0", "title": "t", "owner": "o", "rules": [
        {"id": "floor", "title": "t", "severity": "high", "kpi": "recall", "min": 0.8,
         "controls": ["nist-ai-rmf:MEASURE-2.3"]}]})
    write_yaml(tmp_path / "p_test.yaml", {"policy": "p", "now": "2026-01-02T00:00:00Z", "cases": [
        {"name": "low recall breaches", "kpis": {"recall": 0.7}, "expect": {"floor": "pass"}}]})
    failing = run_cli("policy", "test", str(tmp_path), "--format", "junit")
    assert failing.returncode == 1, failing.stderr
    failure = ET.fromstring(failing.stdout).find("testsuite/testcase/failure")
    assert failure is not None and "floor: expected pass, got breach - recall < 0.8" in (failure.text or "")


# -- SARIF: policy lint -----------------------------------------------------------------------------


def test_lint_sarif_places_each_error_at_its_file_line_and_column(tmp_path: Path) -> None:
    policy = {"id": "p", "version": "1.0.0", "title": "t", "owner": "o", "rules": [
        {"id": "a", "title": "t", "severity": "high", "when": "recal < 0.8"},
        {"id": "c", "title": "t", "severity": "low", "kpi": "recall", "min": 0.5, "controls": ["nist-ai-rmf:NOPE-1"]}]}
    path = write_yaml(tmp_path / "policies" / "p.yaml", policy)
    result = run_cli("policy", "lint", "policies", "--format", "sarif", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    run = _check_sarif(json.loads(result.stdout))
    by_rule = {r["ruleId"]: r for r in run["results"]}
    assert {"unknown_symbol", "unknown_control"} <= set(by_rule)
    symbol = by_rule["unknown_symbol"]
    assert symbol["level"] == "error" and "did you mean 'recall'" in symbol["message"]["text"]
    physical = symbol["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"] == {"uri": "policies/p.yaml", "uriBaseId": "%SRCROOT%"}
    line = next(i + 1 for i, text in enumerate(path.read_text().splitlines()) if "recal <" in text)
    assert physical["region"]["startLine"] == line
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == tmp_path.resolve().as_uri() + "/"


def test_lint_sarif_of_the_shipped_policies_is_clean_and_strict_warnings_are_errors(tmp_path: Path) -> None:
    clean = run_cli("policy", "lint", "policies", "--format", "sarif")
    assert clean.returncode == 0, clean.stderr
    assert _check_sarif(json.loads(clean.stdout))["results"] == []

    write_yaml(tmp_path / "p.yaml", {"id": "p", "version": "1.0.0", "title": "t", "owner": "o", "rules": [
        {"id": "r", "title": "t", "severity": "high", "kpi": "recall", "min": 0.5,
         "controls": ["nist-ai-rmf:MEASURE-2.3"]}]})  # no escalation.yaml beside it: a warning
    warned = run_cli("policy", "lint", str(tmp_path), "--format", "sarif")
    assert warned.returncode == 0, warned.stderr
    (warning,) = [r for r in _check_sarif(json.loads(warned.stdout))["results"] if r["ruleId"] == "no_escalation"]
    assert warning["level"] == "warning"
    strict = run_cli("policy", "lint", str(tmp_path), "--format", "sarif", "--strict")
    assert strict.returncode == 1
    assert {r["level"] for r in _check_sarif(json.loads(strict.stdout))["results"]} == {"error"}


def test_lint_sarif_refuses_explain_compile() -> None:
    result = run_cli("policy", "lint", "policies", "--format", "sarif", "--explain-compile")
    assert result.returncode == 2 and "--explain-compile" in result.stderr and not result.stdout


def test_lint_sarif_without_a_location_and_with_hostile_text(tmp_path: Path) -> None:
    log = lint_sarif([Diagnostic("boom", "a \x00 \ud800 message"),
                      Diagnostic("at_rule", "m", Location(rule="p/r", path="$.rules[0].when"))], [], tmp_path)
    run = _check_sarif(json.loads(json.dumps(log)))
    assert "locations" not in run["results"][0]
    assert run["results"][1]["locations"] == [{"logicalLocations": [{"fullyQualifiedName": "p/r"}]}]
    assert run["results"][1]["message"]["text"] == "m (rule p/r $.rules[0].when)"


def test_artifact_locations_are_relative_under_the_root_and_file_uris_elsewhere(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    assert artifact_location("dir with space/p#1.yaml", root) == {
        "uri": "dir%20with%20space/p%231.yaml", "uriBaseId": "%SRCROOT%"}
    assert artifact_location(str(root / "a.yaml"), root) == {"uri": "a.yaml", "uriBaseId": "%SRCROOT%"}
    outside = tmp_path / "elsewhere" / "b.yaml"
    assert artifact_location(str(outside), root) == {"uri": outside.resolve().as_uri()}
    assert artifact_location("../up.yaml", root) == {"uri": (tmp_path / "up.yaml").resolve().as_uri()}


# -- SARIF: evaluate --------------------------------------------------------------------------------


def test_evaluate_sarif_has_a_result_per_failing_finding_at_its_bundle() -> None:
    bundle = EVIDENCE / "claims-approval-2026-05.json"
    findings = json.loads(run_cli("evaluate", str(bundle), "--format", "json", "--all").stdout)
    result = run_cli("evaluate", "evidence/claims-approval-2026-05.json", "--format", "sarif")
    assert result.returncode == 1, result.stderr
    run = _check_sarif(json.loads(result.stdout))
    failing = [f for f in findings if f["status"] != "pass"]
    assert len(run["results"]) == len(failing) > 0
    parity = next(r for r in run["results"] if r["ruleId"] == "core.fairness/approval-parity")
    expected = next(f for f in failing if f["rule"] == "approval-parity")
    assert parity["level"] == "error" and parity["kind"] == "fail"
    assert parity["message"]["text"].startswith(f"breach (high): {expected['explanation']}")
    assert parity["properties"]["observed"] == expected["observed"]
    assert parity["properties"]["controls"] == expected["controls"]
    (location,) = parity["locations"]
    assert location["physicalLocation"]["artifactLocation"] == {
        "uri": "evidence/claims-approval-2026-05.json", "uriBaseId": "%SRCROOT%"}
    assert location["logicalLocations"] == [
        {"fullyQualifiedName": "claims-approval[age:18-25]/core.fairness/approval-parity"}]

    everything = _check_sarif(json.loads(run_cli("evaluate", str(bundle), "--format", "sarif", "--all").stdout))
    assert len(everything["results"]) == len(findings)
    assert {(r["kind"], r["level"]) for r in everything["results"] if r["properties"]["status"] == "pass"} == {
        ("pass", "none")}


def test_evaluate_sarif_of_a_bundle_that_does_not_fail_has_no_error() -> None:
    """January's fraud bundle passes (exit 0); the override-rate jump has no earlier window to compare
    with, so its evidence is missing: a warning in SARIF, as it does not fail the evaluation."""
    result = run_cli("evaluate", str(EVIDENCE / "fraud-detector-2026-01.json"), "--format", "sarif")
    assert result.returncode == 0, result.stderr
    results = _check_sarif(json.loads(result.stdout))["results"]
    assert {(r["properties"]["status"], r["level"]) for r in results} == {("missing", "warning")}


@pytest.mark.parametrize("month, rule", [("2026-06", "core.performance/recall-floor")])
def test_evaluate_sarif_places_every_bundle_of_several(month: str, rule: str) -> None:
    files = sorted(str(p.relative_to(REPO)) for p in EVIDENCE.glob("fraud-detector-*.json"))
    run = _check_sarif(json.loads(run_cli("evaluate", *files, "--format", "sarif").stdout))
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]}
    assert f"evidence/fraud-detector-{month}.json" in uris and uris <= set(files)
    assert any(r["ruleId"] == rule for r in run["results"])
