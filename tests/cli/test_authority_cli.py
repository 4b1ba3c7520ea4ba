"""The insider review's attacks, as typed at the command line: each is refused with exit 2 and writes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from charter.ledger import SigningKey
from tests.conftest import REPO
from tests.governed import ORIGIN, governed_cli, governed_ledger, ledger_size

EVIDENCE = REPO / "evidence"
CLAIMS = EVIDENCE / "claims-approval-2026-05.json"


cli, size = governed_cli, ledger_size


@pytest.fixture(scope="module")
def governed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("governed")
    governed_ledger(directory)
    at = json.loads(CLAIMS.read_text())["measured_at"]
    assert cli(directory, "submit", str(CLAIMS), "--key", ".charter/keys/tom.berger.key", "--at", at)[0] == 1
    return directory


def _refused(directory: Path, code: str, *args: str) -> str:
    before = size(directory)
    status, out, err = cli(directory, *args)
    assert status == 2 and code in err, (args, out, err)
    assert size(directory) == before  # nothing written
    return err


def test_a_key_in_someone_elses_name_is_refused(governed: Path) -> None:
    SigningKey.generate("maria.keller").save(governed / "impostor.key")
    assert cli(governed, "keys", "request", "impostor.key", "--out", "impostor.json")[0] == 0
    _refused(governed, "not_authorized", "keys", "register", "impostor.json", "--key", ".charter/keys/tom.berger.key")
    forged = json.loads((governed / "impostor.json").read_text())
    forged["principal"] = "tom.berger"  # the proof of possession was for maria.keller
    (governed / "forged.json").write_text(json.dumps(forged))
    _refused(governed, "no_possession", "keys", "register", "forged.json", "--key", ".charter/keys/ana.costa.key")


def test_reowning_a_system_is_refused(governed: Path) -> None:
    systems = (EVIDENCE / "systems.yaml").read_text().replace("owner: maria.keller", "owner: tom.berger")
    (governed / "hijack.yaml").write_text(systems)
    _refused(governed, "not_authorized", "systems", "register", "hijack.yaml", "--key", ".charter/keys/tom.berger.key")


def test_revoking_someone_elses_key_is_refused(governed: Path) -> None:
    _, out, _ = cli(governed, "keys", "list", "--format", "json")
    maria = next(k["key_id"] for k in json.loads(out) if k["principal"] == "maria.keller")
    _refused(governed, "not_authorized", "keys", "revoke", maria, "--reason", "spite", "--key",
             ".charter/keys/tom.berger.key")


def test_the_submitter_cannot_choose_relaxed_policies(governed: Path) -> None:
    relaxed = governed / "policies-relaxed"
    shutil.copytree(REPO / "policies", relaxed)
    fairness = relaxed / "core" / "fairness.yaml"
    fairness.write_text(fairness.read_text().replace("max: 0.10", "max: 0.90").replace("warn: 0.05", "warn: 0.80"))
    june = json.loads(CLAIMS.read_text())
    june["window_start"], june["window_end"] = "2026-06-01T00:00:00Z", "2026-07-01T00:00:00Z"
    june["measured_at"] = "2026-07-02T00:00:00Z"
    (governed / "june.json").write_text(json.dumps(june))
    _refused(governed, "policies_not_active", "submit", "june.json", "--key", ".charter/keys/tom.berger.key",
             "--policies", str(relaxed))
    # And publishing them under the same id and version is refused too: a version is its digest.
    _refused(governed, "policy_conflict", "policy", "publish", "--policies", str(relaxed), "--key",
             ".charter/keys/carla.rossi.key")


def test_deciding_as_the_committee_without_being_it_is_refused(governed: Path) -> None:
    _, out, _ = cli(governed, "incidents", "list", "--format", "json")
    incident = json.loads(out)[0]["id"]
    code, _, err = cli(governed, "incidents", "decide", incident, "--as", "anna.schmidt", "--note", "x",
                       "--decision", "accept_risk")
    assert code == 2 and "--as" in err  # a name typed on the command line says nothing any more
    _refused(governed, "invalid_transition", "incidents", "decide", incident, "--key",
             ".charter/keys/tom.berger.key", "--note", "fine", "--decision", "accept_risk", "--expires", "P30D")
    assert cli(governed, "incidents", "investigate", incident, "--key", ".charter/keys/tom.berger.key",
               "--note", "looking")[0] == 0
    assert cli(governed, "incidents", "validate", incident, "--key", ".charter/keys/carla.rossi.key",
               "--note", "confirmed")[0] == 0
    _refused(governed, "not_authorized", "incidents", "decide", incident, "--key", ".charter/keys/tom.berger.key",
             "--note", "fine", "--decision", "accept_risk", "--expires", "P30D")
    SigningKey.generate("anna.schmidt").save(governed / "not-annas.key")  # her name, not her registered key
    _refused(governed, "unknown_key", "incidents", "decide", incident, "--key", str(governed / "not-annas.key"),
             "--note", "fine", "--decision", "accept_risk", "--expires", "P30D")


def test_only_the_log_needs_the_log_key(governed: Path) -> None:
    code, out, _ = cli(governed, "submit", str(CLAIMS), "--key", ".charter/keys/tom.berger.key", "--bundle-only",
                       "signed.json", "--ledger-key", "/nonexistent/ledger.key")
    assert code == 0 and (governed / "signed.json").exists()
    code, out, _ = cli(governed, "submit", "signed.json", "--format", "json")  # the operator, without tom's key
    assert code == 1 and json.loads(out)[0]["duplicate"]  # the same bundle: the same receipt


def test_actors_sign_away_from_the_log_and_the_operator_appends(governed: Path) -> None:
    # A committee member signs without the log key or write access; the operator appends.
    _, out, _ = cli(governed, "incidents", "list", "--format", "json")
    incident = json.loads(out)[-1]["id"]
    code, _, _ = cli(governed, "incidents", "ack", incident, "--key", ".charter/keys/tom.berger.key", "--note",
                     "seen", "--sign-only", "ack.json", "--ledger-key", "/nonexistent/ledger.key")
    assert code == 0
    code, _, _ = cli(governed, "incidents", "ack", incident, "--key", ".charter/keys/carla.rossi.key", "--note",
                     "not mine to ack", "--sign-only", "wrong.json")
    assert code == 0  # signing is not judging: the log judges when it appends
    _refused(governed, "not_authorized", "ledger", "accept", "wrong.json")
    before = size(governed)
    code, out, _ = cli(governed, "ledger", "accept", "ack.json")
    assert code == 0 and "recorded at seq" in out and size(governed) == before + 1
    code, out, _ = cli(governed, "ledger", "accept", "ack.json")
    assert code == 0 and "already" in out and size(governed) == before + 1


def test_a_baseline_is_judged_by_the_kpis_the_ledger_recorded(governed: Path) -> None:
    """A registrar cannot bring KPI definitions of their own: a baseline names only KPIs in force."""
    systems = (EVIDENCE / "systems.yaml").read_text().replace(
        "baseline: {recall: 0.91,", "baseline: {fraud_capture_index: 0.5, recall: 0.91,", 1)
    assert "fraud_capture_index" in systems
    (governed / "custom-baseline.yaml").write_text(systems)
    # a kpis.yaml beside it changes nothing: the option that read one is gone, and the ledger recorded none
    (governed / "kpis.yaml").write_text("kpis:\n  fraud_capture_index:\n    name: Fraud capture index\n"
                                        "    unit: ratio\n    direction: higher_is_better\n    min: 0\n    max: 1\n")
    err = _refused(governed, "unknown_kpi", "systems", "register", "custom-baseline.yaml", "--key",
                   ".charter/keys/ben.okafor.key")
    assert "custom-baseline.yaml:" in err and "fraud_capture_index" in err
    out_of_range = (EVIDENCE / "systems.yaml").read_text().replace("baseline: {recall: 0.91,",
                                                                   "baseline: {recall: 1.7,", 1)
    (governed / "out-of-range.yaml").write_text(out_of_range)
    _refused(governed, "kpi_out_of_range", "systems", "register", "out-of-range.yaml", "--key",
             ".charter/keys/ben.okafor.key")


def test_a_signed_registration_with_an_unrecorded_kpi_is_refused_on_accept(governed: Path) -> None:
    """The check is the library's: a statement signed elsewhere, with a baseline no catalog in force knows,
    is refused when the log's operator accepts it, with the JSON path of the value."""
    from charter.authority import SignedStatement
    from charter.kpis import builtin_catalog
    from charter.ledger.auditor import SYSTEM_REGISTERED
    from charter.registry import SystemRegistry
    from charter.statements import write_statements
    from charter.submission import system_statement

    registry = SystemRegistry.from_file(EVIDENCE / "systems.yaml", builtin_catalog())
    system = registry["fraud-detector"]
    statement = system_statement(system)
    statement["system"]["baseline"]["fraud_capture_index"] = 0.5  # past the file's check, as a forged file would be
    signed = SignedStatement.sign(ORIGIN, SYSTEM_REGISTERED, statement,
                                  SigningKey.load(governed / ".charter" / "keys" / "ben.okafor.key"),
                                  "2026-07-01T00:00:00Z")
    write_statements(governed / "forged-baseline.json", [signed])
    err = _refused(governed, "unknown_kpi", "ledger", "accept", "forged-baseline.json")
    assert "$.system.baseline.fraud_capture_index" in err


def test_a_first_key_needs_two_administrators_at_the_command_line(governed: Path) -> None:
    """The governed ledger's configuration needs 2 of 3 administrators; one approval leaves the key pending."""
    SigningKey.generate("dana.white").save(governed / "dana.key")
    assert cli(governed, "keys", "request", "dana.key", "--out", "dana.json")[0] == 0
    status, out, _ = cli(governed, "keys", "register", "dana.json", "--key", ".charter/keys/ana.costa.key")
    assert status == 0 and "awaits approval: 1 of 2" in out and "ana.costa" in out
    _, listing, _ = cli(governed, "keys", "list")
    assert "awaiting approval" in listing and "dana.white" in listing
    _, keys, _ = cli(governed, "keys", "list", "--format", "json")
    assert "dana.white" not in {k["principal"] for k in json.loads(keys)}  # it signs nothing yet
    _, pending, _ = cli(governed, "keys", "pending", "--format", "json")
    dana = SigningKey.load(governed / "dana.key").key_id
    assert json.loads(pending) == [{"key_id": dana, "principal": "dana.white", "approved_by": ["ana.costa"],
                                    "needed": 2}]
    before = size(governed)
    status, out, _ = cli(governed, "keys", "register", "dana.json", "--key", ".charter/keys/ana.costa.key")
    assert status == 0 and "awaits approval: 1 of 2" in out and size(governed) == before  # counted once
    status, out, _ = cli(governed, "keys", "register", "dana.json", "--key", ".charter/keys/ben.okafor.key")
    assert status == 0 and "registered for dana.white" in out
    _, keys, _ = cli(governed, "keys", "list", "--format", "json")
    assert "dana.white" in {k["principal"] for k in json.loads(keys)}
    assert json.loads(cli(governed, "keys", "pending", "--format", "json")[1]) == []
    assert cli(governed, "keys", "pending")[1].strip() == "no key awaits approval"
