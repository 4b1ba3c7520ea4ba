"""Signed submissions: keys, owners, revocation, idempotency, findings linked to bundles, replay."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from charter.errors import CharterError
from charter.ledger import SigningKey, verify_ledger
from charter.ledger.auditor import POLICY_PUBLISHED, check_receipt
from charter.ledger.schema import ledger_entry
from charter.submission import (
    BUNDLE,
    FINDING,
    bundle_message,
    key_records,
    parse_summary_line,
    replay,
    revoke_key,
    sign_bundle_data,
    submit_bundle,
    summary_line,
    systems_in_ledger,
)
from tests.conftest import REPO
from tests.unit.ledger.helpers import CATALOG, COMPILER, Populated, drop_guards, populate, unchecked

CLAIMS = REPO / "evidence" / "claims-approval-2026-05.json"


@pytest.fixture
def loaded(db_url: str) -> Populated:
    return populate(db_url, bundles=2)


def _submit(populated: Populated, data: dict[str, Any] | bytes, key: SigningKey | None = None) -> Any:
    text = data if isinstance(data, bytes) else json.dumps(data).encode()
    return submit_bundle(populated.ledger, text, CATALOG, key=key, file="b.json")


def _refused(populated: Populated, data: dict[str, Any] | bytes, key: SigningKey | None, code: str) -> None:
    size = populated.ledger.size()
    with pytest.raises(CharterError) as info:
        _submit(populated, data, key)
    assert info.value.code == code, str(info.value)
    assert populated.ledger.size() == size  # nothing appended


def test_submission_links_findings_to_bundle_and_policy_and_signs_a_receipt(loaded: Populated) -> None:
    result = _submit(loaded, CLAIMS.read_bytes(), loaded.owner_keys["tom.berger"])
    receipt = result.receipt
    # One signature covers the whole submission (its range); the bundle's receipt adds its inclusion proof.
    assert receipt.range is not None and receipt.range["first"] <= receipt.seq < receipt.range["size"]
    assert check_receipt(receipt.to_dict(), loaded.ledger.origin, loaded.log_key.public)
    forged = {**receipt.to_dict(), "record_hash": "00" * 32}
    assert not check_receipt(forged, loaded.ledger.origin, loaded.log_key.public)
    assert not check_receipt(receipt.to_dict(), loaded.ledger.origin, SigningKey.generate("x").public)
    for entry in result.finding_entries[:3]:  # every entry of the transaction has its own checkable receipt
        document = loaded.ledger.receipt_for(entry.seq)
        assert document is not None and document["signature"] == receipt.signature
        assert check_receipt(document, loaded.ledger.origin, loaded.log_key.public)
    assert len(result.finding_entries) == len(result.findings) > 0
    for entry in result.finding_entries:
        refs = entry.payload["refs"]
        assert refs["bundle"] == {"seq": receipt.seq, "record_hash": receipt.record_hash}
        policy_entry = loaded.ledger.entry(refs["policy"]["seq"])
        assert policy_entry is not None and policy_entry.type == POLICY_PUBLISHED
        assert policy_entry.payload["digest"] == refs["policy"]["digest"] == entry.payload["policy_digest"]
    assert verify_ledger(loaded.ledger, loaded.log_key.public).ok


def test_resubmission_is_idempotent(loaded: Populated) -> None:
    first = _submit(loaded, CLAIMS.read_bytes(), loaded.owner_keys["tom.berger"])
    size = loaded.ledger.size()
    again = _submit(loaded, CLAIMS.read_bytes(), loaded.owner_keys["tom.berger"])
    assert again.duplicate and again.receipt == first.receipt
    assert [f.model_dump() for f in again.findings] == [f.model_dump() for f in first.findings]
    assert loaded.ledger.size() == size


def test_presigned_bundle_is_accepted_without_a_key(loaded: Populated) -> None:
    signed = sign_bundle_data(json.loads(CLAIMS.read_text()), loaded.owner_keys["tom.berger"])
    assert _submit(loaded, signed).receipt.seq > 0


def test_unsigned_bundle_is_refused(loaded: Populated) -> None:
    _refused(loaded, CLAIMS.read_bytes(), None, "unsigned_bundle")


def test_bundle_changed_after_signing_is_refused(loaded: Populated) -> None:
    signed = sign_bundle_data(json.loads(CLAIMS.read_text()), loaded.owner_keys["tom.berger"])
    signed["kpis"]["fairness_gap"] = 0.01
    _refused(loaded, signed, None, "bad_signature")


def test_signature_without_the_domain_prefix_is_refused(loaded: Populated) -> None:
    data = json.loads(CLAIMS.read_text())
    key = loaded.owner_keys["tom.berger"]
    data["signature"] = {"key_id": key.key_id, "value": key.sign(b"", bundle_message(data))}
    _refused(loaded, data, None, "bad_signature")


def test_signature_replayed_onto_another_bundle_is_refused(loaded: Populated) -> None:
    key = loaded.owner_keys["tom.berger"]
    original = sign_bundle_data(json.loads(CLAIMS.read_text()), key)
    other = json.loads(CLAIMS.read_text())
    other["window_start"], other["window_end"] = "2026-06-01T00:00:00Z", "2026-07-01T00:00:00Z"
    other["measured_at"] = "2026-07-02T00:00:00Z"
    other["signature"] = original["signature"]
    _refused(loaded, other, None, "bad_signature")


def test_wrong_owner_is_refused(loaded: Populated) -> None:
    _refused(loaded, CLAIMS.read_bytes(), loaded.owner_keys["maria.keller"], "wrong_owner")


def test_unregistered_key_is_refused(loaded: Populated) -> None:
    _refused(loaded, CLAIMS.read_bytes(), SigningKey.generate("tom.berger"), "unknown_key")


def test_revoked_key_is_refused_from_the_revocation_on(loaded: Populated) -> None:
    key = loaded.owner_keys["tom.berger"]
    revoke_key(loaded.ledger, key.key_id, "laptop stolen", key)
    assert key_records(loaded.ledger)[key.key_id].revoked_seq is not None
    _refused(loaded, CLAIMS.read_bytes(), key, "revoked_key")
    with pytest.raises(CharterError):
        revoke_key(loaded.ledger, key.key_id, "again", key)
    assert verify_ledger(loaded.ledger, loaded.log_key.public).ok


def test_unregistered_system_is_refused(loaded: Populated) -> None:
    data = json.loads(CLAIMS.read_text())
    data["system_id"] = "ghost"
    _refused(loaded, data, loaded.owner_keys["tom.berger"], "unknown_system")


def test_invalid_bundle_is_refused_with_its_path(loaded: Populated) -> None:
    text = CLAIMS.read_text().replace('"recall": 0.86', '"recall": NaN')
    size = loaded.ledger.size()
    with pytest.raises(CharterError) as info:
        _submit(loaded, text.encode(), loaded.owner_keys["tom.berger"])
    assert info.value.location.path == "$.kpis.recall"
    assert loaded.ledger.size() == size


def test_verifier_flags_a_bundle_by_a_key_revoked_before_it(loaded: Populated) -> None:
    # Forge what the refusal above prevents: a bundle entry appended after its key's revocation.
    from charter.ledger import NewEntry

    key = loaded.owner_keys["tom.berger"]
    revoke_key(loaded.ledger, key.key_id, "rotation", key)
    data = json.loads(CLAIMS.read_text())
    signature = key.sign(b"charter-bundle/v1\n", bundle_message(data))
    forged = [NewEntry(BUNDLE, data, "forged", "claims-approval", key.key_id, signature)]
    with pytest.raises(CharterError) as refused:  # the store asks the verifier's rule before it appends
        loaded.ledger.append(forged)
    assert refused.value.code == "revoked_key"
    with unchecked():
        loaded.ledger.append(forged)
    report = verify_ledger(loaded.ledger, loaded.log_key.public)
    assert [p.kind for p in report.problems] == ["revoked_key"]


def test_replay_rederives_stored_findings(loaded: Populated) -> None:
    result = _submit(loaded, CLAIMS.read_bytes(), loaded.owner_keys["tom.berger"])
    outcome = replay(loaded.ledger, result.receipt.seq, CATALOG, COMPILER)
    assert outcome.matches and len(outcome.stored) == len(result.findings)


def test_replay_reports_a_stored_finding_that_was_altered(loaded: Populated) -> None:
    result = _submit(loaded, CLAIMS.read_bytes(), loaded.owner_keys["tom.berger"])
    target = result.finding_entries[0]
    body = json.loads(target.body)
    body["payload"]["status"] = "pass" if body["payload"]["status"] != "pass" else "breach"
    drop_guards(loaded.ledger.engine)
    import rfc8785

    with loaded.ledger.engine.begin() as connection:
        connection.execute(update(ledger_entry).where(ledger_entry.c.seq == target.seq).values(
            body=rfc8785.dumps(body)))
    outcome = replay(loaded.ledger, result.receipt.seq, CATALOG, COMPILER)
    assert not outcome.matches
    assert "status" in outcome.differences()[0]


def test_the_evaluation_sums_up_its_findings_and_replay_checks_the_summary(loaded: Populated) -> None:
    result = _submit(loaded, CLAIMS.read_bytes(), loaded.owner_keys["tom.berger"])
    evaluation = next(e for e in loaded.ledger.entries(types=("evaluation",)) if e.seq == result.receipt.seq + 1)
    summary = evaluation.payload["statuses"]
    assert [parse_summary_line(line) for line in summary] == [
        (f.rule_ref, f.segment, f.status.value, f.severity.value) for f in result.findings]
    assert any("@age:18-25 " in line for line in summary) and len(summary) == len(result.findings) > 1
    assert replay(loaded.ledger, result.receipt.seq, CATALOG, COMPILER).matches
    body = json.loads(evaluation.body)
    ref, segment, status, severity = parse_summary_line(summary[0])
    body["payload"]["statuses"][0] = summary_line(ref, segment, "breach" if status != "breach" else "pass", severity)
    drop_guards(loaded.ledger.engine)
    import rfc8785

    with loaded.ledger.engine.begin() as connection:
        connection.execute(update(ledger_entry).where(ledger_entry.c.seq == evaluation.seq).values(
            body=rfc8785.dumps(body)))
    outcome = replay(loaded.ledger, result.receipt.seq, CATALOG, COMPILER)
    assert not outcome.matches and outcome.stored == outcome.replayed
    assert "status summary" in outcome.differences()[-1]


def test_registry_lives_in_the_ledger(loaded: Populated) -> None:
    systems = systems_in_ledger(loaded.ledger)
    assert set(systems) == {"fraud-detector", "claims-approval", "turbine-maintenance", "customer-chatbot",
                            "procurement-agent"}
    assert base64.b64decode(loaded.ledger.meta()["log_public_key"]) == loaded.log_key.public
    assert sum(1 for e in loaded.ledger.entries(types=(FINDING,))) > 0


def test_schema_written_by_a_newer_charter_is_refused(db_url: str, tmp_path: Path) -> None:
    populated = populate(db_url, bundles=0)
    with populated.ledger.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    from charter.ledger import Ledger

    with pytest.raises(CharterError) as info:
        Ledger.open(db_url)
    assert info.value.code == "schema_too_new"


def test_opening_with_another_log_key_is_refused(db_url: str) -> None:
    populate(db_url, bundles=0)
    from charter.ledger import Ledger

    with pytest.raises(CharterError) as info:
        Ledger.open(db_url, log_key=SigningKey.generate("x"))
    assert info.value.code == "wrong_log_key"
