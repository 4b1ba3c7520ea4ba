"""Regression tests for issue 11: silent failures, hostile input and terminal use, as a user meets them.

Each test reproduces one finding of the hardening review through the real command line and fails
on the code before its fix.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli, write_yaml
from tests.governed import governance_args, governed_ledger

EVIDENCE = REPO / "evidence"
CLAIMS = EVIDENCE / "claims-approval-2026-05.json"
FRAUD_APRIL = EVIDENCE / "fraud-detector-2026-04.json"


def cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = run_cli(*args, cwd=tmp_path, env=env)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout, result.stderr


@pytest.fixture
def ledger_dir(tmp_path: Path) -> Path:
    """A working directory with a governed ledger: the demo's trust root, keys, systems, policies in force."""
    governed_ledger(tmp_path)
    return tmp_path


def _size(directory: Path) -> int:
    code, out, _ = cli(directory, "ledger", "show", "0")
    assert code == 0
    code, out, _ = cli(directory, "verify")
    return int(out.split("OK: ")[1].split()[0])


# -- silent failures ---------------------------------------------------------------------------------


def test_submit_refuses_without_an_escalation_configuration_in_force(tmp_path: Path) -> None:
    governed_ledger(tmp_path, activate_escalation=False)
    policies = tmp_path / "governance"
    shutil.copytree(REPO / "policies", policies)
    (policies / "escalation.yaml").unlink()
    before = _size(tmp_path)
    code, _, err = cli(tmp_path, "submit", str(CLAIMS), "--key", ".charter/keys/tom.berger.key")
    assert code == 2 and "no_escalation" in err and "open no incident" in err
    assert _size(tmp_path) == before  # nothing written
    code, out, err = cli(tmp_path, "policy", "lint", str(policies))
    assert code == 0 and "no_escalation" in err and "1 warnings" in out
    code, out, err = cli(tmp_path, "policy", "lint", str(policies), "--strict")
    assert code == 1 and "ok:" not in out and "failed (--strict)" in out


def test_submit_says_which_incidents_it_opened_and_who_is_paged(ledger_dir: Path) -> None:
    at = json.loads(CLAIMS.read_text())["measured_at"]
    code, out, _ = cli(ledger_dir, "submit", str(CLAIMS), "--key", ".charter/keys/tom.berger.key", "--format", "json",
                       "--at", at)
    assert code == 1
    incidents = json.loads(out)[0]["incidents"]
    assert {i["action"] for i in incidents} == {"opened"}
    opened = next(i for i in incidents if i["rule"] == "core.fairness/approval-parity")
    assert opened["segment"] == "age:18-25" and opened["state"] == "open"
    assert opened["next_step"] == "acknowledge" and opened["due_at"].endswith("Z")
    assert any("tom.berger" in p["members"] for p in opened["paged"])
    for month, action in (("04", "opened"), ("05", "attached")):
        bundle = EVIDENCE / f"fraud-detector-2026-{month}.json"
        code, out, _ = cli(ledger_dir, "submit", str(bundle), "--key", ".charter/keys/maria.keller.key",
                           "--at", json.loads(bundle.read_text())["measured_at"])
        assert code == 1 and "Incidents" in out and f" {action}: fraud-detector" in out and "paged:" in out


def test_lint_strict_with_warnings_does_not_say_ok(tmp_path: Path) -> None:
    policies = tmp_path / "p"
    shutil.copytree(REPO / "policies", policies)
    (policies / "escalation.yaml").unlink()  # a warning: submit would refuse
    code, out, err = cli(tmp_path, "policy", "lint", str(policies), "--strict")
    assert "warning" in err and code == 1 and "ok:" not in out


def test_evaluate_names_the_missing_bundle_not_the_registry(tmp_path: Path) -> None:
    code, _, err = cli(tmp_path, "evaluate", "missing.json")
    assert code == 2 and "missing.json" in err and "systems.yaml" not in err


def test_auc_suggests_roc_auc(tmp_path: Path) -> None:
    data = json.loads(CLAIMS.read_text())
    data["kpis"]["auc"] = 0.8
    (tmp_path / "b.json").write_text(json.dumps(data))
    code, _, err = cli(tmp_path, "evaluate", "b.json", "--systems", str(EVIDENCE / "systems.yaml"))
    assert code == 2 and "did you mean 'roc_auc'" in err


@pytest.mark.parametrize("command", [("evaluate", "b.json", "--systems", str(EVIDENCE / "systems.yaml")),
                                     ("submit", "b.json", "--key", ".charter/keys/tom.berger.key")])
def test_bundle_errors_give_line_and_column(ledger_dir: Path, command: tuple[str, ...]) -> None:
    data = json.loads(CLAIMS.read_text())
    data["kpis"]["approval_rate"] = 7
    (ledger_dir / "b.json").write_text(json.dumps(data, indent=2))
    line, column = next((i, text.index("7") + 1) for i, text in
                        enumerate((ledger_dir / "b.json").read_text().splitlines(), 1) if '"approval_rate": 7' in text)
    code, _, err = cli(ledger_dir, *command)
    assert code == 2 and f"b.json:{line}:{column} $.kpis.approval_rate" in err


def test_coverage_counts_every_segment_expectation(tmp_path: Path) -> None:
    code, out, _ = cli(tmp_path, "policy", "test", str(REPO / "policies"), "--format", "json")
    assert code == 0
    statuses = json.loads(out)["coverage"]["statuses"]
    assert "breach" in statuses["core.fairness/approval-parity"]


def test_policy_test_with_an_unknown_status_is_bad_input(tmp_path: Path) -> None:
    policies = tmp_path / "p"
    shutil.copytree(REPO / "policies", policies)
    write_yaml(policies / "bad_test.yaml", {"policy": "core.fairness", "cases": [
        {"name": "x", "kpis": {"approval_rate": 0.7}, "expect": {"approval-parity": "exploded"}}]})
    code, _, err = cli(tmp_path, "policy", "test", str(policies))
    assert code == 2 and "bad_test.yaml" in err and "exploded" in err


# -- hostile input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ("evaluate", "/dev/zero"),
    ("evaluate", str(CLAIMS), "--systems", "/dev/zero"),
    ("verify", "--checkpoint", "/dev/zero"),
    ("submit", "/dev/zero"),
])
def test_devices_are_refused_at_once(ledger_dir: Path, args: tuple[str, ...]) -> None:
    code, _, err = cli(ledger_dir, *args)
    assert code == 2 and "not_a_file" in err and "/dev/zero" in err


def test_a_fifo_is_refused_without_hanging(ledger_dir: Path) -> None:
    fifo = ledger_dir / "bundle.json"
    os.mkfifo(fifo)
    code, _, err = cli(ledger_dir, "evaluate", str(fifo))
    assert code == 2 and "FIFO" in err
    policies = ledger_dir / "p"
    shutil.copytree(REPO / "policies", policies)
    os.mkfifo(policies / "x.yaml")
    os.mkfifo(policies / "x_test.yaml")
    assert cli(ledger_dir, "policy", "lint", str(policies))[0] == 0
    assert cli(ledger_dir, "policy", "test", str(policies))[0] == 0


def test_input_size_is_capped_and_configurable(tmp_path: Path) -> None:
    (tmp_path / "b.json").write_bytes(CLAIMS.read_bytes() + b" " * 5000)
    code, _, err = cli(tmp_path, "--max-input-bytes", "4000", "evaluate", "b.json",
                       "--systems", str(EVIDENCE / "systems.yaml"))
    assert code == 2 and "file_too_large" in err
    code, _, err = cli(tmp_path, "evaluate", "b.json", "--systems", str(EVIDENCE / "systems.yaml"),
                       env={"CHARTER_MAX_INPUT_BYTES": "4000"})
    assert code == 2 and "file_too_large" in err


def test_submit_is_all_or_nothing(ledger_dir: Path) -> None:
    bad = ledger_dir / "bad.json"
    bad.write_text("{not json")
    before = _size(ledger_dir)
    code, _, err = cli(ledger_dir, "submit", str(CLAIMS), str(bad), "--key", ".charter/keys/tom.berger.key")
    assert code == 2 and "bad.json" in err
    assert _size(ledger_dir) == before


def test_long_values_are_not_echoed_whole_and_controls_are_escaped(tmp_path: Path) -> None:
    data = json.loads(CLAIMS.read_text())
    data["model_version"] = 7
    data["segments"]["\x1b[31mage:evil\u202e"] = {"approval_rate": 0.5}
    data["system_id"] = "x" * 1_000_000
    (tmp_path / "b.json").write_text(json.dumps(data))
    code, out, err = cli(tmp_path, "evaluate", "b.json", "--systems", str(EVIDENCE / "systems.yaml"))
    assert code == 2
    assert len(err) < 20_000
    assert "\x1b" not in err + out and "\u202e" not in err + out


def test_read_only_commands_never_write(tmp_path: Path) -> None:
    import sqlite3

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("create table customers (id integer)")
    before = other.read_bytes()
    empty = tmp_path / "empty.db"
    empty.touch()
    assert cli(tmp_path, "ledger", "init", "--db", f"sqlite:///{tmp_path / 'real.db'}",
               *governance_args(tmp_path))[0] == 0
    for url, code_expected in ((f"sqlite:///{other}", "not_a_ledger"), (f"sqlite:///{empty}", "ledger_missing"),
                               (f"sqlite:///{tmp_path / 'nowhere' / 'x.db'}", "ledger_missing")):
        for command in (("verify",), ("keys", "list"), ("incidents", "list"), ("systems", "list")):
            code, _, err = cli(tmp_path, *command, "--db", url)
            assert code == 2 and code_expected in err, (command, url, err)
    assert other.read_bytes() == before
    assert empty.stat().st_size == 0
    assert not (tmp_path / "nowhere").exists()
    assert not any(p.name.startswith(("other.db-", "empty.db-")) for p in tmp_path.iterdir())


@pytest.mark.parametrize("url", ["postgresql+psycopg2://u@127.0.0.1/x", "sqlite+pysqlcipher:///x.db"])
def test_missing_database_driver_is_a_located_error(tmp_path: Path, url: str) -> None:
    code, _, err = cli(tmp_path, "ledger", "init", "--db", url, *governance_args(tmp_path))
    assert code == 2 and "database_driver" in err


def test_key_names_cannot_escape_their_folder(tmp_path: Path) -> None:
    code, _, err = cli(tmp_path, "keys", "generate", "a/../../escaped", "--out", "keys/x")
    assert code == 2 and "bad_principal" in err
    assert not list(tmp_path.rglob("escaped*"))


def test_foreign_key_algorithms_are_located_errors(tmp_path: Path) -> None:
    code, _, err = cli(tmp_path, "evaluate", str(CLAIMS))  # warm-up: nothing to do with keys
    code, _, err = cli(tmp_path, "submit", str(CLAIMS), "--key", str(REPO / "tests" / "data" / "keys" / "sm2.key"))
    assert code == 2 and "key_file" in err and "Ed25519" in err


def test_keys_generate_into_a_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        code, _, err = cli(tmp_path, "keys", "generate", "someone", "--out", str(folder / "sub"))
        if os.geteuid() != 0:
            assert code == 2 and "key_file" in err
    finally:
        folder.chmod(0o755)


def test_export_to_an_existing_file_is_refused(ledger_dir: Path) -> None:
    (ledger_dir / "taken").write_text("x")
    code, _, err = cli(ledger_dir, "ledger", "export", "taken")
    assert code == 2 and "export_target" in err


def test_custom_kpi_redefining_a_builtin_is_located(tmp_path: Path) -> None:
    policies = tmp_path / "p"
    shutil.copytree(REPO / "policies", policies)
    write_yaml(policies / "kpis.yaml", {"kpis": [{"id": "recall", "name": "Recall", "category": "technical",
                                                 "unit": "ratio", "direction": "higher", "description": "x"}]})
    code, _, err = cli(tmp_path, "policy", "lint", str(policies))
    assert code == 2 and "kpis.yaml:" in err and "kpi_redefined" in err


def test_long_origin_names_the_origin(tmp_path: Path) -> None:
    code, _, err = cli(tmp_path, "ledger", "init", "--origin", "o" * 10_000, *governance_args(tmp_path))
    assert code == 2 and "--origin" in err and "10000 characters" in err and len(err) < 2000


def test_lone_surrogate_submitter_is_a_located_error(ledger_dir: Path) -> None:
    data = json.loads(CLAIMS.read_text())
    text = json.dumps(data).replace('"submitter": "tom.berger"', '"submitter": "\\ud800"')
    (ledger_dir / "s.json").write_text(text)
    code, _, err = cli(ledger_dir, "submit", "s.json", "--key", ".charter/keys/tom.berger.key")
    assert code == 2 and "s.json" in err


# -- terminal use ------------------------------------------------------------------------------------


def test_ids_are_never_truncated_at_80_columns(ledger_dir: Path) -> None:
    narrow = {"COLUMNS": "80"}
    at = json.loads(CLAIMS.read_text())["measured_at"]
    assert cli(ledger_dir, "submit", str(CLAIMS), "--key", ".charter/keys/tom.berger.key", "--at", at)[0] == 1
    code, out, _ = cli(ledger_dir, "keys", "list", "--format", "json")
    key_ids = [k["key_id"] for k in json.loads(out)]
    code, out, _ = cli(ledger_dir, "keys", "list", env=narrow)
    assert code == 0 and all(key_id in out for key_id in key_ids)
    code, out, _ = cli(ledger_dir, "incidents", "list", "--format", "json")
    incident_ids = [i["id"] for i in json.loads(out)]
    assert incident_ids
    code, out, _ = cli(ledger_dir, "incidents", "list", env=narrow)
    assert code == 0 and all(i in out for i in incident_ids) and "…" not in out.split("\n", 3)[-1].split("│")[1]
    code, out, _ = cli(ledger_dir, "systems", "list", env=narrow)
    assert "turbine-maintenance" in out and "procurement-agent" in out


def test_record_layout_on_a_narrow_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    from charter.cli import common

    buffer = io.StringIO()
    terminal = Console(file=buffer, width=40, force_terminal=True, no_color=True, highlight=False)
    monkeypatch.setattr(common, "out", terminal)
    long_id = "ed25519:" + "ab" * 32
    common.print_listing("Keys", ["key id", "principal", "note"], [[long_id, "tom.berger", "x" * 30]], ids={"key id"})
    text = buffer.getvalue()
    assert long_id in text.replace("\n", "") and "key id: " + long_id[:20] in text


def test_incidents_show_gives_the_breaching_values_and_thresholds(ledger_dir: Path) -> None:
    at = json.loads(CLAIMS.read_text())["measured_at"]
    code, out, _ = cli(ledger_dir, "submit", str(CLAIMS), "--key", ".charter/keys/tom.berger.key", "--at", at,
                       "--format", "json")
    incident = next(i for i in json.loads(out)[0]["incidents"] if i["rule"] == "core.fairness/approval-parity")
    code, out, _ = cli(ledger_dir, "incidents", "show", incident["incident_id"], "--format", "json")
    shown = json.loads(out)
    assert code == 0 and shown["findings"][0]["observed"]["approval_rate"] == 0.61
    assert "peers.approval_rate" in shown["findings"][0]["condition"]
    code, out, _ = cli(ledger_dir, "incidents", "show", incident["incident_id"])
    assert "approval_rate = 0.61" in out and "Timeline" in out


@pytest.mark.parametrize("command", [(), ("submit",), ("report",), ("policy", "lint"), ("verify",),
                                     ("incidents", "list"), ("evaluate",)])
def test_help_shows_no_bool_placeholder_and_rewraps(tmp_path: Path, command: tuple[str, ...]) -> None:
    code, out, _ = cli(tmp_path, *command, "--help", env={"COLUMNS": "80"})
    assert code == 0 and "<bool>" not in out
    assert all(len(line) <= 80 for line in out.splitlines())


def test_control_characters_in_notes_and_ids_are_escaped(ledger_dir: Path) -> None:
    code, _, err = cli(ledger_dir, "incidents", "show", "INC-\x1b[2Jx\u202e")
    assert code == 2 and "\x1b" not in err and "\u202e" not in err and "\\x1b" in err

