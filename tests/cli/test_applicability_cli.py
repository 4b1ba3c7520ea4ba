"""`charter applicability activate|show` as typed: decisions explained, wrong actors and bad documents refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, run_cli
from tests.governed import governed_cli, governed_ledger, ledger_size

SOA = REPO / "policies" / "applicability" / "iso-42001.yaml"


cli, size = governed_cli, ledger_size


@pytest.fixture(scope="module")
def governed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("applicability")
    governed_ledger(directory)
    return directory


def _show(directory: Path, system: str, framework: str, *extra: str) -> dict[str, dict[str, str]]:
    code, out, err = cli(directory, "applicability", "show", "--system", system, "--framework", framework,
                         "--format", "json", *extra)
    assert code == 0, err
    return {c["control"]: c for c in json.loads(out)["controls"]}


def test_show_explains_eu_decisions(governed: Path) -> None:
    chatbot = _show(governed, "customer-chatbot", "eu-ai-act")
    assert chatbot["art-50"]["status"] == "applicable" and "50(1)" in chatbot["art-50"]["reason"]
    assert chatbot["art-50"]["applies_from"] == "2026-08-02"
    assert chatbot["art-9"]["status"] == "not_applicable"
    assert chatbot["art-99"]["status"] == "not_applicable" and "binds no operator" in chatbot["art-99"]["reason"]


def test_show_explains_statement_decisions_with_their_source(governed: Path) -> None:
    turbine = _show(governed, "turbine-maintenance", "iso-42001")
    assert turbine["A.7.3"]["status"] == "not_applicable" and turbine["A.7.3"]["source"].startswith("SoA v3 (seq ")
    # included for other systems only: not decided for this one, so presumed to apply (never silently excluded)
    assert turbine["A.10.4"]["status"] == "undetermined" and "does not decide it for" in turbine["A.10.4"]["reason"]
    assert turbine["6.1.3"]["status"] == "applicable"
    code, out, _ = cli(governed, "applicability", "show", "--system", "turbine-maintenance", "--framework",
                       "nist-ai-rmf")
    assert code == 0 and "MEASURE-2.2" in out and "not_applicable" in out


def test_show_refuses_unknown_systems_frameworks_and_times_before_registration(governed: Path) -> None:
    code, _, err = cli(governed, "applicability", "show", "--system", "ghost", "--framework", "eu-ai-act")
    assert code == 2 and "unknown_system" in err
    code, _, err = cli(governed, "applicability", "show", "--system", "customer-chatbot", "--framework", "sox")
    assert code == 2 and "unknown_framework" in err
    code, _, err = cli(governed, "applicability", "show", "--system", "customer-chatbot", "--framework",
                       "eu-ai-act", "--at", "2020-01-01T00:00:00Z")
    assert code == 2 and "was not registered" in err


def test_activate_needs_an_approver_and_writes_nothing_otherwise(governed: Path, tmp_path: Path) -> None:
    data = yaml.safe_load(SOA.read_text())
    data["version"] = "4"
    bumped = tmp_path / "soa.yaml"
    bumped.write_text(yaml.safe_dump(data, sort_keys=False))
    before = size(governed)
    code, _, err = cli(governed, "applicability", "activate", str(bumped), "--key", ".charter/keys/carla.rossi.key")
    assert code == 2 and "not_authorized" in err
    assert size(governed) == before
    code, out, err = cli(governed, "applicability", "activate", str(bumped), "--key",
                         ".charter/keys/omar.haddad.key")
    assert code == 0 and "SoA v4 for iso-42001 in force" in out, err
    assert size(governed) == before + 1
    code, out, _ = cli(governed, "applicability", "activate", str(bumped), "--key", ".charter/keys/omar.haddad.key")
    assert code == 0 and "already in force" in out
    assert _show(governed, "fraud-detector", "iso-42001")["A.7.3"]["source"].startswith("SoA v4")


def test_activate_refuses_a_bad_document_with_its_line(governed: Path, tmp_path: Path) -> None:
    text = SOA.read_text().replace("- id: A.7.3\n", "- id: A.7.33\n", 1)
    bad = tmp_path / "soa.yaml"
    bad.write_text(text)
    before = size(governed)
    code, _, err = cli(governed, "applicability", "activate", str(bad), "--key", ".charter/keys/omar.haddad.key")
    assert code == 2 and "unknown_control" in err and "undecided_control" in err
    line = text.splitlines().index("- id: A.7.33") + 1
    assert f"soa.yaml:{line}" in err
    assert size(governed) == before


def test_the_published_schema_describes_the_documents() -> None:
    """`charter schema applicability` is the model's schema: the demo documents fit it, a stray field does not."""
    result = run_cli("schema", "applicability")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["additionalProperties"] is False and set(schema["required"]) == {"framework", "version", "scope",
                                                                                   "decisions"}
    assert schema["properties"]["framework"]["enum"] == ["iso-42001", "nist-ai-rmf"]
    decision = schema["$defs"]["Decision"]
    assert set(decision["required"]) == {"id", "included", "justification"}
    for path in sorted((REPO / "policies" / "applicability").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        assert set(data) <= set(schema["properties"])
        assert all(set(d) <= set(decision["properties"]) for d in data["decisions"])


def test_an_approver_signs_offline_and_the_operator_accepts(governed: Path, tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "policies" / "applicability" / "nist-ai-rmf.yaml").read_text())
    data["version"] = str(data["version"]) + "1"
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump(data, sort_keys=False))
    before = size(governed)
    code, _, err = cli(governed, "applicability", "activate", str(profile), "--key",
                         ".charter/keys/omar.haddad.key", "--sign-only", str(tmp_path / "signed.json"))
    assert code == 0 and size(governed) == before, err  # signing writes nothing to the ledger
    code, _, err = cli(governed, "ledger", "accept", str(tmp_path / "signed.json"))
    assert code == 0 and size(governed) == before + 1, err
    cli(governed, "ledger", "accept", str(tmp_path / "signed.json"))
    assert size(governed) == before + 1  # a statement lands once
    shown = _show(governed, "customer-chatbot", "nist-ai-rmf")
    assert any(c["source"].startswith(f"profile v{data['version']}") or f"v{data['version']}" in c["source"]
               for c in shown.values())


def test_show_explains_the_gai_profile_by_kind(governed: Path) -> None:
    chatbot = _show(governed, "customer-chatbot", "nist-ai-600-1")
    assert len(chatbot) == 12 and {c["status"] for c in chatbot.values()} == {"applicable"}
    fraud = _show(governed, "fraud-detector", "nist-ai-600-1")
    confabulation = fraud["confabulation"]
    assert confabulation["status"] == "not_applicable" and "is a classifier" in confabulation["reason"]


def test_every_report_framework_is_offered_by_the_cli() -> None:
    """The CLI's choice of frameworks (known before anything heavy is imported) is the library's list."""
    from charter.cli.report_cmds import FrameworkName
    from charter.frameworks import REPORT_FRAMEWORKS, load_frameworks

    assert tuple(FrameworkName) == REPORT_FRAMEWORKS
    assert set(REPORT_FRAMEWORKS) == set(load_frameworks())
