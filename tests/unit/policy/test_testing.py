"""The policy test runner (`charter policy test`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from charter.errors import CharterError
from charter.kpis import KpiCatalog
from charter.policy import PolicyCompiler
from charter.policy.testing import PolicyTestRunner, TestReport, find_test_files
from tests.conftest import REPO, write_yaml

POLICY = {"id": "p.one", "version": "1.0.0", "title": "t", "owner": "o", "applies_to": {"tags": ["people"]},
          "rules": [{"id": "floor", "title": "t", "severity": "high", "kpi": "recall", "min": 0.5},
                    {"id": "parity", "title": "t", "severity": "high", "scope": "segments",
                     "when": "approval_rate < 0.9 * peers.approval_rate"}]}


def _run(tmp_path: Path, compiler: PolicyCompiler, catalog: KpiCatalog, cases: list[dict[str, Any]],
         run: str | None = None, **file_fields: Any) -> TestReport:
    write_yaml(tmp_path / "p.yaml", POLICY)
    write_yaml(tmp_path / "p_test.yaml", {**file_fields, "cases": cases})
    policy_set = compiler.compile_files([tmp_path / "p.yaml"])
    return PolicyTestRunner(policy_set, catalog).run(find_test_files(tmp_path), run)


def test_shipped_policy_tests_pass_and_cover_every_rule(compiler: PolicyCompiler, catalog: KpiCatalog) -> None:
    from charter.policy import policy_files

    policy_set = compiler.compile_files(policy_files(REPO / "policies"))
    report = PolicyTestRunner(policy_set, catalog).run(find_test_files(REPO / "policies"))
    assert report.ok, [(r.name, r.mismatches, r.error) for r in report.failed]
    assert report.uncovered == []


def test_default_system_matches_the_policy_under_test(tmp_path: Path, compiler: PolicyCompiler,
                                                       catalog: KpiCatalog) -> None:
    report = _run(tmp_path, compiler, catalog, [
        {"name": "applies", "kpis": {"recall": 0.2}, "expect": {"floor": "breach"}},
        {"name": "other tags", "system": {"tags": []}, "kpis": {"recall": 0.2}, "expect": {"floor": "not_applicable"}},
    ], policy="p.one")
    assert report.ok


def test_segment_expectations_and_worst_status(tmp_path: Path, compiler: PolicyCompiler, catalog: KpiCatalog) -> None:
    segments = {"age:young": {"approval_rate": 0.5}, "age:old": {"approval_rate": 0.8}}
    report = _run(tmp_path, compiler, catalog, [
        {"name": "worst", "kpis": {"recall": 0.9}, "segments": segments, "expect": {"parity": "breach"}},
        {"name": "per segment", "kpis": {"recall": 0.9}, "segments": segments,
         "expect": {"parity@age:old": "pass", "p.one/parity@age:young": "breach"}},
    ], policy="p.one")
    assert report.ok, [r.mismatches for r in report.results]


def test_full_bundle_form(tmp_path: Path, compiler: PolicyCompiler, catalog: KpiCatalog) -> None:
    bundle = {"system_id": "x", "model_version": "1", "window_start": "2026-01-01T00:00:00Z",
              "window_end": "2026-02-01T00:00:00Z", "measured_at": "2026-02-01T00:00:00Z",
              "kpis": {"recall": 0.3}, "submitter": "me"}
    report = _run(tmp_path, compiler, catalog, [{"name": "b", "bundle": bundle, "expect": {"floor": "breach"}}],
                  policy="p.one")
    assert report.ok


def test_mismatch_and_bad_case_are_reported_not_raised(tmp_path: Path, compiler: PolicyCompiler,
                                                        catalog: KpiCatalog) -> None:
    report = _run(tmp_path, compiler, catalog, [
        {"name": "wrong", "kpis": {"recall": 0.2}, "expect": {"floor": "pass"}},
        {"name": "typo", "kpis": {"recall": 0.2}, "expect": {"flor": "pass"}},
        {"name": "bad kpi", "kpis": {"recall": 2}, "expect": {"floor": "pass"}},
    ], policy="p.one")
    by_name = {r.name: r for r in report.results}
    assert [(m.expected, m.actual) for m in by_name["wrong"].mismatches] == [("pass", "breach")]
    assert by_name["typo"].error is not None and by_name["typo"].error.code == "unknown_rule"
    bad_kpi = by_name["bad kpi"].error
    assert bad_kpi is not None and bad_kpi.code == "kpi_out_of_range"
    assert bad_kpi.location.path == "$.cases[2].kpis.recall" and bad_kpi.location.line is not None
    assert not report.ok and report.uncovered == ["p.one/parity"]


def test_run_filter_and_no_tests(tmp_path: Path, compiler: PolicyCompiler, catalog: KpiCatalog) -> None:
    cases = [{"name": "alpha", "kpis": {"recall": 0.9}, "expect": {"floor": "pass"}}]
    assert [r.name for r in _run(tmp_path, compiler, catalog, cases, run="alp", policy="p.one").results] == ["alpha"]
    empty = _run(tmp_path, compiler, catalog, cases, run="zzz", policy="p.one")
    assert empty.results == [] and not empty.ok
    with pytest.raises(CharterError):
        _run(tmp_path, compiler, catalog, cases, run="(", policy="p.one")


def test_invalid_test_file_is_located(tmp_path: Path, compiler: PolicyCompiler, catalog: KpiCatalog) -> None:
    with pytest.raises(CharterError) as info:
        _run(tmp_path, compiler, catalog, [{"name": "x", "kpis": {"recall": 0.9}, "expect": {}}], policy="p.one")
    assert info.value.code == "test_schema" and info.value.location.path == "$.cases[0].expect"


def test_unknown_expected_status_is_bad_input_not_a_failed_case(tmp_path: Path, compiler: PolicyCompiler,
                                                                catalog: KpiCatalog) -> None:
    """An expectation no evaluation can meet is a broken test file (exit 2), not a failing test (exit 1)."""
    with pytest.raises(CharterError) as info:
        _run(tmp_path, compiler, catalog, [{"name": "s", "kpis": {"recall": 0.2}, "expect": {"floor": "red"}}],
             policy="p.one")
    assert info.value.code == "test_schema" and info.value.location.path == "$.cases[0].expect.floor"
    assert info.value.location.line is not None


def test_coverage_keeps_every_segment_expectation_of_a_case(tmp_path: Path, compiler: PolicyCompiler,
                                                            catalog: KpiCatalog) -> None:
    segments = {"age:young": {"approval_rate": 0.5}, "age:old": {"approval_rate": 0.8}}
    report = _run(tmp_path, compiler, catalog, [
        {"name": "both segments", "kpis": {"recall": 0.9}, "segments": segments,
         "expect": {"parity@age:young": "breach", "parity@age:old": "pass"}}], policy="p.one")
    assert report.ok
    assert report.statuses_tested["p.one/parity"] == {"breach", "pass"}
