"""`charter audit EXPORT_DIR` end to end on the demo ledger's export: exit codes 0, 1, 2 and 3."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from charter.ledger import SigningKey
from charter.ledger.auditor import document_digest
from tests.conftest import run_cli
from tests.unit.test_audit import breach_finding, flip_status, reseal_export

DEMO = ".charter/demo"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo-cli")
    assert run_cli("demo", cwd=root).returncode == 0
    exported = run_cli("ledger", "export", "export", "--db", f"sqlite:///{DEMO}/ledger.db", "--ledger-key",
                       f"{DEMO}/ledger.key", cwd=root)
    assert exported.returncode == 0, exported.stderr
    return root


def audit(root: Path, *args: str) -> tuple[int, str, str]:
    result = run_cli("audit", *args, cwd=root)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout, result.stderr


def test_the_demo_export_audits_clean_with_the_pinned_key(demo: Path) -> None:
    code, out, _ = audit(demo, "export", "--log-key", f"{DEMO}/ledger.pub")
    assert code == 0, out
    assert "bundles audited" in out and "every recorded verdict re-derived identically" in out
    key = base64.b64encode(SigningKey.load(demo / DEMO / "ledger.key").public).decode()
    code, out, _ = audit(demo, "export", "--log-key", key, "--format", "json")
    report = json.loads(out)
    assert code == 0 and report["exit_code"] == 0 and report["anchor"] == "log_key"
    assert report["bundles"] == 20 and report["findings_rederived"] == report["findings_stored"] > 0
    assert report["verdicts_differing"] == 0 and report["integrity"]["ok"]


def test_without_an_anchor_the_result_is_unanchored_never_a_pass(demo: Path) -> None:
    code, out, err = audit(demo, "export")
    assert code == 3
    assert "UNANCHORED" in err and "trust_root.json" in err and "UNANCHORED" in out
    code, out, _ = audit(demo, "export", "--format", "json")
    assert code == 3 and json.loads(out)["anchor"] == "unanchored" and json.loads(out)["exit_code"] == 3
    held = sorted((demo / "export" / "checkpoints").glob("*.note"))[-1]
    shutil.copy(held, demo / "held.note")
    code, out, err = audit(demo, "export", "--checkpoint", "held.note")
    assert code == 0 and "anchored by a held checkpoint" in out and "UNANCHORED" not in err


def test_a_forgery_re_signed_with_the_log_key_exits_1_naming_the_bundle(demo: Path) -> None:
    finding_seq, bundle_seq = breach_finding(demo)
    reseal_export(demo / "export", demo / "forged", finding_seq, flip_status,
                  SigningKey.load(demo / DEMO / "ledger.key"))
    code, out, _ = audit(demo, "forged", "--log-key", f"{DEMO}/ledger.pub")
    assert code == 1
    assert "OK:" in out  # integrity holds: only re-derivation can tell
    row = next(line for line in out.splitlines() if line.strip().startswith(f"│ {bundle_seq} "))
    assert "pass" in row and "breach" in row and "status" in row
    code, out, _ = audit(demo, "forged", "--log-key", f"{DEMO}/ledger.pub", "--format", "json")
    report = json.loads(out)
    assert code == 1 and report["verdicts_differing"] == 1
    assert report["differences"][0] | {"rule": None, "system": None, "segment": None} == {
        "seq": bundle_seq, "index": report["differences"][0]["index"], "stored": "pass", "rederived": "breach",
        "fields": ["status"], "rule": None, "system": None, "segment": None}


def test_an_export_that_does_not_verify_is_not_audited(demo: Path) -> None:
    finding_seq, _ = breach_finding(demo)
    reseal_export(demo / "export", demo / "outsider", finding_seq, flip_status, SigningKey.generate("mallory"))
    code, out, _ = audit(demo, "outsider", "--log-key", f"{DEMO}/ledger.pub")
    assert code == 1 and "integrity: FAILED at first bad seq" in out and "bundles audited" not in out
    first = int(out.split("integrity: FAILED at first bad seq ")[1].split(":")[0])
    assert first <= finding_seq
    code, out, _ = audit(demo, "outsider", "--log-key", f"{DEMO}/ledger.pub", "--format", "json")
    assert code == 1 and json.loads(out)["integrity"]["first_bad_seq"] == first
    # the pinned key is not the export's: nothing verifies
    other = base64.b64encode(SigningKey.generate("other.example/log").public).decode()
    code, out, err = audit(demo, "export", "--log-key", other)
    assert code == 1 and "another log key" in err and "FAILED" in out


def test_bad_input_exits_2_with_file_and_line(demo: Path) -> None:
    broken = demo / "broken"
    shutil.copytree(demo / "export", broken)
    lines = (broken / "entries.jsonl").read_text().splitlines(keepends=True)
    lines[41] = '{"seq": 41, "body": \n'
    (broken / "entries.jsonl").write_text("".join(lines))
    code, _, err = audit(demo, "broken", "--log-key", f"{DEMO}/ledger.pub")
    assert code == 2 and "broken/entries.jsonl:42" in err and "export_malformed" in err
    assert audit(demo, "no-such-dir")[0] == 2
    (broken / "trust_root.json").unlink()
    code, _, err = audit(demo, "broken")
    assert code == 2 and "trust_root.json" in err
    code, _, err = audit(demo, "export", "--log-key", "not-a-key")
    assert code == 2 and "--log-key" in err


def test_custom_kpis_come_from_the_policy_directory(demo: Path) -> None:
    rows = [json.loads(line) for line in (demo / "export" / "entries.jsonl").read_text().splitlines()]
    seq = next(row["seq"] for row in rows
               if json.loads(base64.b64decode(row["body"]))["type"] == "policy.published")

    def custom(payload: dict[str, Any]) -> None:
        rules = payload["document"]["rules"]
        rules[0] = {**{k: v for k, v in rules[0].items() if k in ("id", "title", "severity", "controls")},
                    "kpi": "house_metric", "min": 0.5}

    # An insider with the log key, the policy author's and the approver's keys: integrity and authority
    # hold, so only re-deriving the verdicts can tell.
    bodies = [json.loads(base64.b64decode(row["body"])) for row in rows]
    original = bodies[seq]["payload"]
    edited = json.loads(json.dumps(original))
    custom(edited)
    old, new = original["digest"], document_digest(edited["document"])
    activation = next(b["seq"] for b in bodies if b["type"] == "policy.activated")

    def reactivate(payload: dict[str, Any]) -> None:
        payload["policies"] = sorted(new if d == old else d for d in payload["policies"])

    def repoint(payload: dict[str, Any]) -> None:
        payload["policy_seqs"] = {(new if d == old else d): s for d, s in payload["policy_seqs"].items()}
        for item in payload["policies"]:
            item["digest"] = new if item["digest"] == old else item["digest"]

    def refind(payload: dict[str, Any]) -> None:
        if payload["policy_digest"] == old:
            payload["policy_digest"] = payload["refs"]["policy"]["digest"] = new

    later = tuple((b["seq"], repoint if b["type"] == "evaluation" else refind, None) for b in bodies
                  if (b["type"] == "evaluation" and old in b["payload"]["policy_seqs"])
                  or (b["type"] == "finding" and b["payload"].get("policy_digest") == old))
    reseal_export(demo / "export", demo / "custom", seq, custom, SigningKey.load(demo / DEMO / "ledger.key"),
                  SigningKey.load(demo / DEMO / "keys" / "carla.rossi.key"),
                  ((activation, reactivate, SigningKey.load(demo / DEMO / "keys" / "omar.haddad.key")), *later))
    code, out, _ = audit(demo, "custom", "--log-key", f"{DEMO}/ledger.pub")
    assert code == 2 and "recorded policy version cannot be compiled" in out and f"ledger seq {seq}" in out
    assert "house_metric" in out
    policies = demo / "house-policies"
    policies.mkdir()
    (policies / "kpis.yaml").write_text("kpis:\n  - {id: house_metric, name: House metric, category: technical, "
                                        "unit: ratio, direction: higher, min: 0, max: 1, "
                                        "description: A house metric.}\n")
    code, out, _ = audit(demo, "custom", "--log-key", f"{DEMO}/ledger.pub", "--policies", str(policies))
    assert code == 1 and "cannot be compiled" not in out  # compiled now; the edited rule gives other verdicts
