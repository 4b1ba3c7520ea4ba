"""The ledger commands end to end, in a fresh working directory, as an operator would run them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import REPO, run_cli

EVIDENCE = REPO / "evidence"


def test_operator_flow(tmp_path: Path) -> None:
    def cli(*args: str) -> tuple[int, str, str]:
        result = run_cli(*args, cwd=tmp_path)
        assert "Traceback" not in result.stderr
        return result.returncode, result.stdout, result.stderr

    assert cli("verify")[0] == 2  # no ledger yet: bad input, not a crash
    init = ["--governance", "governance.yaml", "--admin-key", ".charter/keys/ana.costa.key"]
    assert cli("keys", "generate", "ana.costa")[0] == 0
    assert cli("ledger", "init", *init)[0] == 2  # no governance file yet
    assert cli("governance", "new", "--admin", ".charter/keys/ana.costa.pub", "--threshold", "1",
               "--role", "system_registrar=ana.costa")[0] == 0
    code, out, _ = cli("ledger", "init", "--origin", "acme.example/charter", *init)
    assert code == 0 and "ready" in out
    assert cli("ledger", "init", "--origin", "acme.example/charter", *init)[0] == 2  # the trust root is set once
    assert (tmp_path / ".charter" / "ledger.key").stat().st_mode & 0o777 == 0o600
    assert cli("keys", "generate", "tom.berger")[0] == 0
    assert cli("keys", "generate", "tom.berger")[0] == 2  # never overwrite a key
    assert cli("keys", "generate", "maria.keller")[0] == 0
    for owner in ("tom.berger", "maria.keller"):
        assert cli("keys", "request", f".charter/keys/{owner}.key")[0] == 0
    requests = (".charter/keys/tom.berger.request.json", ".charter/keys/maria.keller.request.json")
    code, _, err = cli("keys", "register", *requests, "--key", ".charter/keys/tom.berger.key")
    assert code == 2 and "unknown_key" in err  # an unregistered key registers nothing
    assert cli("keys", "register", *requests, "--key", ".charter/keys/ana.costa.key")[0] == 0
    assert cli("systems", "register", str(EVIDENCE / "systems.yaml"), "--key", ".charter/keys/ana.costa.key")[0] == 0
    code, out, _ = cli("systems", "list", "--format", "json")
    assert {s["id"] for s in json.loads(out)} == {"fraud-detector", "claims-approval", "turbine-maintenance",
                                                  "customer-chatbot", "procurement-agent"}

    claims = str(EVIDENCE / "claims-approval-2026-05.json")
    code, _, err = cli("submit", claims, "--key", ".charter/keys/maria.keller.key")
    assert code == 2 and "wrong_owner" in err
    code, _, err = cli("submit", claims)
    assert code == 2 and "unsigned_bundle" in err
    code, _, err = cli("submit", claims, "--key", ".charter/keys/tom.berger.key")
    assert code == 2 and "no_active_policies" in err  # nothing is in force yet: nothing is judged
    assert cli("governance", "update", "governance.yaml", "--admin-key", ".charter/keys/ana.costa.key")[0] == 0
    (tmp_path / "g2.yaml").write_text((tmp_path / "governance.yaml").read_text().replace(
        "roles:\n", "roles:\n  policy_author: [maria.keller]\n  policy_approver: [ana.costa]\n"))
    assert cli("governance", "update", "g2.yaml", "--admin-key", ".charter/keys/ana.costa.key")[0] == 0
    assert cli("policy", "publish", "--key", ".charter/keys/maria.keller.key")[0] == 0
    assert cli("policy", "activate", "--key", ".charter/keys/maria.keller.key")[0] == 2  # no approver
    assert cli("policy", "activate", "--key", ".charter/keys/ana.costa.key")[0] == 0
    assert cli("escalation", "activate", "--key", ".charter/keys/ana.costa.key")[0] == 0
    code, out, _ = cli("submit", claims, "--key", ".charter/keys/tom.berger.key", "--format", "json")
    assert code == 1  # the fairness breach
    receipt = json.loads(out)[0]["receipt"]
    code, out, _ = cli("submit", claims, "--key", ".charter/keys/tom.berger.key", "--format", "json")
    assert json.loads(out)[0]["receipt"] == receipt and json.loads(out)[0]["duplicate"]

    assert cli("replay", str(receipt["seq"]))[0] == 0
    code, out, _ = cli("ledger", "checkpoint")
    assert code == 0 and out.startswith("acme.example/charter\n")
    code, out, _ = cli("ledger", "prove", str(receipt["seq"]))
    assert json.loads(out)["leaf_index"] == receipt["seq"]
    code, out, _ = cli("ledger", "show", str(receipt["seq"]))
    assert json.loads(out)["body"]["type"] == "bundle"
    code, out, _ = cli("verify")
    assert code == 0 and "OK:" in out and "anchored by checkpoint" in out
    assert cli("ledger", "export", "audit")[0] == 0
    assert (tmp_path / "audit" / "verify.py").is_file()

    key_id = next(line for line in cli("keys", "list")[1].splitlines() if "tom.berger" in line).split()[1]
    assert cli("keys", "revoke", key_id, "--reason", "rotation", "--key", ".charter/keys/maria.keller.key")[0] == 2
    assert cli("keys", "revoke", key_id, "--reason", "rotation", "--key", ".charter/keys/tom.berger.key")[0] == 0
    other = json.loads(Path(claims).read_text())
    other["window_start"], other["window_end"] = "2026-06-01T00:00:00Z", "2026-07-01T00:00:00Z"
    other["measured_at"] = "2026-07-02T00:00:00Z"
    (tmp_path / "june.json").write_text(json.dumps(other))
    code, _, err = cli("submit", "june.json", "--key", ".charter/keys/tom.berger.key")
    assert code == 2 and "revoked_key" in err


def test_demo_runs_the_loop_on_a_fresh_ledger_and_verifies(tmp_path: Path) -> None:
    for _ in range(2):  # a second run starts from scratch again
        result = run_cli("demo", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert "verify: OK:" in result.stdout
    assert "core.fairness/approval-parity [age:18-25]" in result.stdout
    assert "core.regional/regional-recall-floor [region:asia]" in result.stdout
    verify = run_cli("verify", "--db", "sqlite:///.charter/demo/ledger.db", "--ledger-key", ".charter/demo/ledger.key",
                     cwd=tmp_path)
    assert verify.returncode == 0 and "OK:" in verify.stdout


def test_incident_commands_on_the_demo_ledger(tmp_path: Path) -> None:
    assert run_cli("demo", cwd=tmp_path).returncode == 0
    ledger = ("--db", "sqlite:///.charter/demo/ledger.db", "--ledger-key", ".charter/demo/ledger.key")
    result = run_cli("incidents", "list", "--format", "json", *ledger, cwd=tmp_path)
    incidents = json.loads(result.stdout)
    claims = next(i for i in incidents if i["rule"] == "core.fairness/approval-parity")
    assert claims["state"] == "closed" and claims["decisions"] == ["compensate", "retrain"]
    fraud = next(i for i in incidents if i["rule"] == "core.performance/recall-floor")
    assert fraud["escalated_to"][:2] == ["risk_compliance", "governance_committee"]
    only_closed = run_cli("incidents", "list", "--state", "closed", "--system", "claims-approval", "--format", "json",
                          *ledger, cwd=tmp_path)
    assert [i["id"] for i in json.loads(only_closed.stdout)] == [claims["id"]]
    by_role = run_cli("incidents", "list", "--role", "executive", "--format", "json", *ledger, cwd=tmp_path)
    assert fraud["id"] in {i["id"] for i in json.loads(by_role.stdout)}
    show = run_cli("incidents", "show", claims["id"], *ledger, cwd=tmp_path)
    assert "anna.schmidt (governance_committee)" in show.stdout
    metrics = json.loads(run_cli("metrics", "--format", "json", *ledger, cwd=tmp_path).stdout)
    assert metrics["scopes"]["claims-approval"]["time_to_decision"]["n"] == 1 and metrics["rejected"] == []
    plan = json.loads(run_cli("escalation", "plan", "--severity", "high", "--tier", "high", "--format", "json",
                              "--policies", str(REPO / "policies"), cwd=tmp_path).stdout)
    assert [step["role"] for step in plan["plan"]][:2] == ["model_owner", "risk_compliance"]
    refused = run_cli("incidents", "validate", fraud["id"], "--key", ".charter/demo/keys/maria.keller.key",
                      "--note", "mine", *ledger, cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
