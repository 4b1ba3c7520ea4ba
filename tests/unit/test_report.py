"""Audit-readiness reports: golden files, scores by their formula, ledger binding, issuing, HTML in a real browser."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
from pathlib import Path
from typing import Any

import pytest

from charter.errors import CharterError
from charter.report import REPORT_ISSUED, ReportDocument, bind, build_report, issue, render
from charter.report.model import POINTS
from tests.conftest import REPO, run_cli
from tests.golden.scenario import FRAMEWORKS, GOLDEN, GOLDEN_FORMATS, Scenario, build_scenario, render_all
from tests.unit.ledger.helpers import drop_guards


@pytest.fixture
def scenario(db_url: str) -> Scenario:
    return build_scenario(db_url)


@pytest.fixture(scope="module")
def sqlite_scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return build_scenario(f"sqlite:///{tmp_path_factory.mktemp('report') / 'ledger.db'}")


def _document(scenario: Scenario, framework: str = "eu-ai-act", **kwargs: Any) -> ReportDocument:
    snapshot, binding = bind(scenario.ledger, scenario.log_key.public)
    return build_report(snapshot, framework, scenario.frameworks, scenario.policies.policies, scenario.graph, binding,
                        kwargs.pop("as_of", scenario.as_of), **kwargs)


def test_reports_match_the_golden_files_on_both_backends(scenario: Scenario) -> None:
    texts = render_all(scenario)
    assert sorted(texts) == sorted(f"{f}.{fmt}" for f in FRAMEWORKS for fmt in GOLDEN_FORMATS)
    for name, text in texts.items():
        expected = (GOLDEN / name).read_text(encoding="utf-8")
        assert text == expected, f"{name} differs from its golden file; review, then python -m tests.golden.regenerate"


def test_json_report_follows_the_published_schema(sqlite_scenario: Scenario) -> None:
    document = _document(sqlite_scenario)
    parsed = ReportDocument.model_validate_json(render(document, "json", sqlite_scenario.graph))
    assert parsed == document
    schema = json.loads(run_cli("schema", "report").stdout)
    assert {"framework", "ledger", "scores", "controls", "gaps", "portfolio", "trends"} <= set(schema["properties"])


def test_scores_follow_the_printed_formula(sqlite_scenario: Scenario) -> None:
    document = _document(sqlite_scenario)
    for control in document.controls:
        if control.coverage == "covered":
            pairs = sum(r.systems for r in control.summaries)
            assert control.score == pytest.approx(sum(r.points for r in control.summaries) / pairs, abs=1e-4)
            assert all(p.points < 1.0 for p in control.attention)
            assert len(control.attention) == pairs - sum(r.counts.get("pass", 0) for r in control.summaries)
        elif control.coverage == "gap":
            assert control.score == 0.0 and not control.rules
    applicable = [c for c in document.controls if c.coverage != "not_applicable"]
    expected = sum(c.score or 0.0 for c in applicable) / len(applicable)
    assert document.scores.framework.readiness == pytest.approx(expected, abs=1e-3)
    assert document.scores.framework.coverage == pytest.approx(
        sum(c.coverage != "gap" for c in document.controls) / len(document.controls), abs=1e-4)
    assert document.scores.overall == pytest.approx(
        statistics.fmean(s.readiness for s in document.scores.frameworks.values()), abs=1e-4)
    assert "framework readiness = sum of control scores" in document.scores.formula
    assert [len(document.controls), document.scores.framework.assessed] == [31, 31]


def test_pair_points_reflect_governance_of_each_breach(sqlite_scenario: Scenario) -> None:
    pairs = {(p.system, p.rule): p for c in _document(sqlite_scenario).controls for p in c.attention}
    decided = pairs[("claims-approval", "core.fairness/approval-parity")]
    assert (decided.status, decided.points) == ("breach", POINTS["breach_governed"]) and "decided" in decided.note
    waived = pairs[("fraud-detector", "core.performance/recall-degradation")]
    assert waived.points == POINTS["breach_governed"] and "risk accepted until" in waived.note
    open_breach = pairs[("fraud-detector", "core.performance/recall-floor")]
    assert (open_breach.status, open_breach.points) == ("breach", POINTS["breach_open"])
    assert all(p.status != "pass" for p in pairs.values())


def test_stale_evidence_scores_zero_and_is_listed_as_a_gap(sqlite_scenario: Scenario) -> None:
    import datetime

    later = sqlite_scenario.as_of + datetime.timedelta(days=400)
    document = _document(sqlite_scenario, as_of=later)
    pairs = [p for c in document.controls for p in c.attention]
    assert pairs and all(not p.fresh and p.points == 0.0 for p in pairs)
    assert all(set(r.counts) <= {"stale", "no_evidence"} for c in document.controls for r in c.summaries)
    assert document.scores.framework.readiness == 0.0 and document.portfolio.monitoring_coverage == 0.0
    assert {r.system for r in document.gaps.rules_without_current_evidence} == set(document.systems)
    assert "core.performance" in document.gaps.policies_without_current_evidence


def test_a_report_for_one_system_holds_only_that_system(sqlite_scenario: Scenario) -> None:
    document = _document(sqlite_scenario, system="claims-approval")
    assert document.systems == ["claims-approval"] and list(document.scores.systems) == ["claims-approval"]
    assert {p.system for c in document.controls for p in c.attention} == {"claims-approval"}
    assert all(r.systems <= 1 for c in document.controls for r in c.summaries)
    assert {t.system for t in document.trends} <= {"claims-approval"}


def test_report_is_bound_to_a_signed_checkpoint_and_its_issue_is_a_ledger_entry(scenario: Scenario) -> None:
    size = scenario.ledger.size()
    document = _document(scenario)
    assert document.ledger.checkpoint_size == size and document.ledger.verified
    assert f"\n{size}\n" in document.ledger.checkpoint_note
    text = render(document, "md", scenario.graph)
    entry = issue(scenario.ledger, document, "md", text, "eu-ai-act.md")
    assert entry.type == REPORT_ISSUED and entry.seq == size
    import hashlib

    assert entry.payload["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert entry.payload["checkpoint"] == {"size": size, "root": document.ledger.checkpoint_root}
    assert issue(scenario.ledger, document, "md", text, "eu-ai-act.md").seq == entry.seq  # idempotent
    assert scenario.ledger.size() == size + 1


def test_a_tampered_ledger_gets_no_report(scenario: Scenario) -> None:
    from sqlalchemy import update

    from charter.ledger.schema import ledger_entry

    drop_guards(scenario.ledger.engine)
    with scenario.ledger.engine.begin() as connection:
        connection.execute(update(ledger_entry).where(ledger_entry.c.seq == 5).values(entry_type="bundle"))
    with pytest.raises(CharterError) as info:
        _document(scenario)
    assert info.value.code == "ledger_damaged" and "5" in str(info.value)


def test_html_escapes_policy_text(sqlite_scenario: Scenario) -> None:
    document = _document(sqlite_scenario)
    control = document.controls[0].model_copy(update={"title": "<script>alert(1)</script>"})
    hostile = document.model_copy(update={"controls": [control, *document.controls[1:]]})
    html = render(hostile, "html", sqlite_scenario.graph)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_html_report_renders_in_headless_chromium(sqlite_scenario: Scenario, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium for this test")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    html = render(_document(sqlite_scenario), "html", sqlite_scenario.graph)
    for external in ('src="http', "src='http", 'href="http', "url(http", "<script", "<link"):
        assert external not in html  # self-contained: no external asset, no script
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120, check=True)
    assert 'id="control-table"' in dom.stdout and dom.stdout.count('class="trend"') >= 3
    assert 'class="escalation"' in dom.stdout
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line
               or "Failed to load resource" in line]
    assert console == []
    shot = tmp_path / "report.png"
    subprocess.run([browser, *flags, "--window-size=1200,2400", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000  # a blank page compresses to a few kB


def test_cli_report_writes_issues_and_refuses_bad_input(tmp_path: Path) -> None:
    assert run_cli("demo", cwd=tmp_path).returncode == 0
    ledger = ("--db", "sqlite:///.charter/demo/ledger.db", "--ledger-key", ".charter/demo/ledger.key")
    demo_reports = sorted(p.name for p in (tmp_path / ".charter" / "demo" / "reports").iterdir())
    assert demo_reports == sorted(f"{f}.{fmt}" for f in FRAMEWORKS for fmt in ("html", "md", "json"))
    result = run_cli("report", "--framework", "nist-ai-rmf", "--format", "json", "-o", "out/nist.json",
                     "--at", "2026-07-05T00:00:00Z", "--policies", str(REPO / "policies"), *ledger, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "out" / "nist.json").read_text())
    assert document["framework"] == "nist-ai-rmf" and document["ledger"]["verified"] is True
    assert "issued at seq" in result.stdout
    assert oct((tmp_path / "out" / "nist.json").stat().st_mode & 0o777) != oct(0o600)
    for args, message in [(("--framework", "iso-42001", "--system", "nope"), "not registered"),
                          (("--framework", "sox"), "sox"),
                          (("--framework", "iso-42001", "--at", "yesterday"), "ISO 8601")]:
        bad = run_cli("report", *args, "-o", "x.md", "--policies", str(REPO / "policies"), *ledger, cwd=tmp_path)
        assert bad.returncode == 2 and message in bad.stderr + bad.stdout, bad.stderr
        assert not (tmp_path / "x.md").exists()
    empty = run_cli("report", "--framework", "iso-42001", "-o", "y.md", "--db", "sqlite:///empty.db",
                    "--ledger-key", ".charter/demo/ledger.key", cwd=tmp_path)
    assert empty.returncode == 2 and not (tmp_path / "y.md").exists()
