"""`charter incidents classify` and `file-report`, as typed: Art. 73 from the validator's triage to legal's filing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.cli.test_authority_cli import CLAIMS, _refused, cli, size
from tests.conftest import REPO
from tests.governed import governed_ledger

CARLA, TOM, ERIC = (f".charter/keys/{name}.key" for name in ("carla.rossi", "tom.berger", "eric.dubois"))


@pytest.fixture(scope="module")
def governed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("art73")
    governed_ledger(directory)
    at = json.loads(CLAIMS.read_text())["measured_at"]
    assert cli(directory, "submit", str(CLAIMS), "--key", TOM, "--at", at)[0] == 1
    return directory


def _incident(directory: Path, rule: str) -> str:
    _, out, _ = cli(directory, "incidents", "list", "--format", "json")
    return next(i["id"] for i in json.loads(out) if i["rule"] == rule)


def _register_claims_as_high_risk(directory: Path) -> None:
    """The registrar records the claims model as EU high-risk (Annex III 5(c)), as `charter systems register` does."""
    document = yaml.safe_load((REPO / "evidence" / "systems.yaml").read_text())
    claims = next(s for s in document["systems"] if s["id"] == "claims-approval")
    claims["eu_ai_act"]["annex_iii"] = {"area": 5, "point": "c", "reasoning": "Test: life and health insurance."}
    (directory / "high-risk.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    code, out, err = cli(directory, "systems", "register", "high-risk.yaml", "--key", ".charter/keys/ben.okafor.key")
    assert code == 0, out + err


def test_classify_page_file_show_and_measure(governed: Path) -> None:
    incident = _incident(governed, "core.fairness/approval-parity")
    # Review L2: the claims model is not EU high-risk as registered, so Art. 73 does not apply to it.
    err = _refused(governed, "not_high_risk", "incidents", "classify", incident, "--key", CARLA, "--serious",
                   "--ground", "c", "--aware-at", "now", "--note", "Unlawful age disparity in claim approvals")
    assert "claims-approval is not high-risk" in err and "--not-serious" in err
    _register_claims_as_high_risk(governed)
    _refused(governed, "usage", "incidents", "classify", incident, "--key", CARLA, "--note", "x")  # say which
    _refused(governed, "not_authorized", "incidents", "classify", incident, "--key", TOM, "--note", "mine",
             "--serious", "--ground", "c", "--aware-at", "now")
    _refused(governed, "usage", "incidents", "classify", incident, "--key", CARLA, "--note", "x", "--serious",
             "--ground", "c", "--aware-at", "2026-06-06T15:00:00")  # no timezone
    _refused(governed, "not_classified", "incidents", "file-report", incident, "--key", ERIC, "--authority", "BaFin",
             "--reference", "AI-1", "--kind", "initial", "--filed-at", "now")
    code, out, err = cli(governed, "incidents", "classify", incident, "--key", CARLA, "--serious", "--ground", "c",
                         "--aware-at", "now", "--note", "Unlawful age disparity in claim approvals")
    assert code == 0, err
    assert "serious incident (Art. 3(49)(c))" in out and "report due" in out and "(default, P15D" in out
    assert "paged regulatory_reporting: eric.dubois (1 notifications sent)" in out
    code, out, _ = cli(governed, "escalate", "--now", "now")  # pages the chain, and legal not twice
    assert code == 0
    pages = [json.loads(line) for line in (governed / ".charter" / "notifications.log").read_text().splitlines()]
    legal = [p for p in pages if p["recipient"] == "eric.dubois"]
    assert len(legal) == 1 and legal[0]["incident"] == incident and legal[0]["serious_incident"]["ground"] == "c"
    _refused(governed, "not_authorized", "incidents", "file-report", incident, "--key", CARLA, "--authority", "BaFin",
             "--reference", "AI-1", "--kind", "initial", "--filed-at", "now")
    _refused(governed, "usage", "incidents", "file-report", incident, "--key", ERIC, "--authority", "BaFin",
             "--reference", "AI-1", "--kind", "interim", "--filed-at", "now")
    code, out, err = cli(governed, "incidents", "file-report", incident, "--key", ERIC, "--authority",
                         "BaFin (market surveillance)", "--reference", "AI-2026-0042", "--kind", "initial",
                         "--filed-at", "now")
    assert code == 0 and "filed in time" in out, err
    code, out, _ = cli(governed, "incidents", "show", incident)
    assert code == 0
    text = re.sub(r"\s+", " ", out)
    assert "serious incident (EU AI Act Art. 3(49)(c): the infringement of obligations under Union law" in text
    assert "first report filed in time" in text and "AI-2026-0042" in text and "initial report filed" in text
    code, out, _ = cli(governed, "incidents", "show", incident, "--format", "json")
    shown = json.loads(out)["classification"]
    assert shown["status"] == "on_time" and shown["basis"] == "default" and shown["filings"][0]["kind"] == "initial"
    code, out, _ = cli(governed, "metrics", "--format", "json")
    measured = json.loads(out)
    assert measured["reporting"]["portfolio"] == {"serious": 1, "on_time": 1, "late": 0, "pending": 0, "overdue": 0}
    assert measured["scopes"]["portfolio"]["time_to_filing"]["n"] == 1
    code, out, _ = cli(governed, "metrics")
    assert code == 0 and "Serious incidents (EU AI Act Art. 73)" in out and "time_to_filing" in out
    assert cli(governed, "verify", "--full")[0] == 0


def test_a_triage_signed_away_from_the_log_is_appended_by_the_operator(governed: Path) -> None:
    incident = _incident(governed, "core.fairness/fairness-gap")
    code, _, err = cli(governed, "incidents", "classify", incident, "--key", CARLA, "--not-serious", "--note",
                       "within the lawful actuarial basis", "--sign-only", "triage.json", "--ledger-key",
                       "/nonexistent/ledger.key")
    assert code == 0, err
    before = size(governed)
    code, out, _ = cli(governed, "ledger", "accept", "triage.json")
    assert code == 0 and "recorded at seq" in out and size(governed) == before + 1
    _, out, _ = cli(governed, "incidents", "show", incident, "--format", "json")
    assert json.loads(out)["classification"]["serious"] is False


def test_the_old_severity_trigger_is_refused_with_the_reason(governed: Path) -> None:
    document = yaml.safe_load((REPO / "policies" / "escalation.yaml").read_text())
    document["regulatory"].update({"severities": ["critical"], "tiers": ["high"]})
    (governed / "old-escalation.yaml").write_text(yaml.safe_dump(document))
    code, _, err = cli(governed, "escalation", "check", "--file", "old-escalation.yaml")
    assert code == 2 and "charter incidents classify" in err and "$.regulatory" in err
