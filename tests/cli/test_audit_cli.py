"""`charter audit EXPORT_DIR` end to end on the demo ledger's export: exit codes 0, 1, 2 and 3."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable
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
    assert "bundles audited" in out and "every recorded verdict and incident entry re-derived identically" in out
    key = base64.b64encode(SigningKey.load(demo / DEMO / "ledger.key").public).decode()
    code, out, _ = audit(demo, "export", "--log-key", key, "--format", "json")
    report = json.loads(out)
    assert code == 0 and report["exit_code"] == 0 and report["anchor"] == "log_key"
    assert report["bundles"] == 20 and report["findings_rederived"] == report["findings_stored"] > 0
    assert report["verdicts_differing"] == 0 and report["integrity"]["ok"]
    # the incidents the demo's breaches opened, attached and reopened are re-derived as recorded
    assert report["incidents_differing"] == 0 and report["incident_differences"] == []
    assert report["incident_entries_rederived"] == report["incident_entries_stored"] > 0


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


def _findings_by_bundle(root: Path) -> dict[int, list[dict[str, Any]]]:
    """Each bundle's finding entries (whole bodies) in the demo export, in order."""
    rows = [json.loads(base64.b64decode(json.loads(line)["body"]))
            for line in (root / "export" / "entries.jsonl").read_text().splitlines()]
    out: dict[int, list[dict[str, Any]]] = {}
    for body in rows:
        if body["type"] == "finding":
            out.setdefault(body["payload"]["refs"]["bundle"]["seq"], []).append(body)
    return out


def _first(root: Path, test: Callable[[dict[str, Any]], bool]) -> tuple[int, int, int]:
    """(bundle seq, finding index, finding seq) of the first finding whose payload passes `test`."""
    for bundle, findings in _findings_by_bundle(root).items():
        for index, finding in enumerate(findings):
            if test(finding["payload"]):
                return bundle, index, finding["seq"]
    raise AssertionError("the demo has no such finding")


def _bump_observed(payload: dict[str, Any]) -> None:
    name = sorted(k for k, v in payload["observed"].items() if isinstance(v, float))[0]
    payload["observed"][name] += 0.125


def _bump_threshold(payload: dict[str, Any]) -> None:
    name = sorted(payload["thresholds"])[0]
    payload["thresholds"][name] = payload["thresholds"][name] / 2 + 0.01


def _audited_json(root: Path, export: str) -> dict[str, Any]:
    code, out, _ = audit(root, export, "--log-key", f"{DEMO}/ledger.pub", "--format", "json")
    report = json.loads(out)
    assert code == 1 and report["exit_code"] == 1, out
    return report


@pytest.mark.parametrize(("name", "pick", "edit", "field"), [
    ("observed", lambda p: any(isinstance(v, float) for v in p["observed"].values()), _bump_observed, "observed"),
    ("explanation", lambda p: bool(p["explanation"]),
     lambda p: p.update(explanation=p["explanation"] + " (edited)"), "explanation"),
    ("threshold", lambda p: bool(p["thresholds"]), _bump_threshold, "thresholds"),
])
def test_a_changed_finding_field_exits_1_naming_the_bundle_and_field(demo: Path, name: str,
                                                                     pick: Callable[[dict[str, Any]], bool],
                                                                     edit: Callable[[dict[str, Any]], None],
                                                                     field: str) -> None:
    bundle, index, seq = _first(demo, pick)
    reseal_export(demo / "export", demo / f"changed-{name}", seq, edit, SigningKey.load(demo / DEMO / "ledger.key"))
    report = _audited_json(demo, f"changed-{name}")
    assert report["integrity"]["ok"]  # resealed with the log key: only re-derivation can tell
    assert [(d["seq"], d["index"], d["fields"]) for d in report["differences"]] == [(bundle, index, [field])]
    assert report["differences"][0]["stored"] == report["differences"][0]["rederived"] != "absent"


def test_a_missing_finding_exits_1_naming_the_bundle(demo: Path) -> None:
    bundle, findings = next(iter(_findings_by_bundle(demo).items()))
    last = findings[-1]

    def detach(payload: dict[str, Any]) -> None:  # the last finding no longer belongs to its bundle
        payload["refs"]["bundle"]["seq"] = bundle - 1

    reseal_export(demo / "export", demo / "missing", last["seq"], detach, SigningKey.load(demo / DEMO / "ledger.key"))
    report = _audited_json(demo, "missing")
    assert report["integrity"]["ok"]
    assert [(d["seq"], d["index"], d["stored"], d["rederived"]) for d in report["differences"]] == [
        (bundle, len(findings) - 1, "absent", last["payload"]["status"])]
    code, out, _ = audit(demo, "missing", "--log-key", f"{DEMO}/ledger.pub")
    assert code == 1 and any(line.strip().startswith(f"│ {bundle} ") for line in out.splitlines())


def test_an_extra_finding_exits_1_naming_the_bundle(demo: Path) -> None:
    rows = [json.loads(base64.b64decode(json.loads(line)["body"]))
            for line in (demo / "export" / "entries.jsonl").read_text().splitlines()]
    # a bundle whose last finding is followed by an entry of the same subject: that entry becomes a finding
    bundle, findings = next((b, f) for b, f in _findings_by_bundle(demo).items()
                            if rows[f[-1]["seq"] + 1].get("subject") == f[-1]["subject"]
                            and rows[f[-1]["seq"] + 1]["type"] != "bundle")
    last, follower = findings[-1], rows[findings[-1]["seq"] + 1]

    def forge(document: dict[str, Any]) -> None:
        received = document["received_at"]
        document.clear()
        document.update(json.loads(json.dumps(last)), received_at=received)

    reseal_export(demo / "export", demo / "extra", follower["seq"], forge, SigningKey.load(demo / DEMO / "ledger.key"),
                  whole=True)
    report = _audited_json(demo, "extra")
    assert report["integrity"]["ok"]
    extra = [(d["seq"], d["index"], d["stored"], d["rederived"]) for d in report["differences"] if d["seq"] == bundle]
    assert extra == [(bundle, len(findings), last["payload"]["status"], "absent")]


def test_a_tampered_bundle_exits_1_naming_it(demo: Path) -> None:
    rows = [json.loads(base64.b64decode(json.loads(line)["body"]))
            for line in (demo / "export" / "entries.jsonl").read_text().splitlines()]
    bundle = next(body for body in rows if body["type"] == "bundle")

    def better(payload: dict[str, Any]) -> None:
        name = sorted(k for k, v in payload["kpis"].items() if isinstance(v, float))[0]
        payload["kpis"][name] = round(payload["kpis"][name] / 2 + 0.25, 4)

    # resealed with the log key, but the submitter's signature no longer matches the bundle
    reseal_export(demo / "export", demo / "tampered", bundle["seq"], better,
                  SigningKey.load(demo / DEMO / "ledger.key"))
    code, out, _ = audit(demo, "tampered", "--log-key", f"{DEMO}/ledger.pub")
    assert code == 1 and f"integrity: FAILED at first bad seq {bundle['seq']}" in out and "bad_signature" in out
    report = _audited_json(demo, "tampered")
    assert report["integrity"]["first_bad_seq"] == bundle["seq"] and "differences" not in report
