"""Authority: each attack of the insider review is refused at the command, or named by verify when forced in.

Refusals go through the library, as the CLI and the service call it: exit 2 there, nothing written.
Forced entries stand for an insider who holds the database and the log key and appends without
the checks (a patched Charter, or SQL with re-signed receipts): the chain and receipts are then
valid, and only the authority rule can tell, so `verify` must name the first unauthorized seq.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from charter.authority import (
    Administrator,
    GovernanceConfig,
    KeyRequest,
    activate_escalation,
    activate_policies,
    publish_policies,
    update_governance,
)
from charter.errors import CharterError
from charter.incidents import load_book, transition
from charter.ledger import SigningKey, verify_ledger
from charter.ledger.export import export_ledger
from charter.submission import register_key, register_system, revoke_key, submit_bundle, systems_in_ledger
from tests.conftest import REPO
from tests.unit.ledger.helpers import (
    CATALOG,
    CLAIMS,
    POLICIES,
    Populated,
    claims_measured_at,
    key_of,
    populate,
    refused,
    submit_claims,
    unchecked,
    validated_claims_incident,
)

ADMIN, REGISTRAR, AUTHOR, APPROVER = "ana.costa", "ben.okafor", "carla.rossi", "omar.haddad"


@pytest.fixture
def world(db_url: str) -> Populated:
    return populate(db_url, bundles=0)


def _refused(populated: Populated, code: str, action: Callable[[], Any]) -> None:
    refused(populated, code, action)
    assert verify_ledger(populated.ledger, populated.log_key.public).ok


_unchecked = unchecked


_submit_claims = submit_claims


def _first_unauthorized(populated: Populated) -> tuple[int | None, str]:
    report = verify_ledger(populated.ledger, populated.log_key.public, resume=False)
    assert not report.ok
    first = min(report.problems, key=lambda p: (p.seq is None, p.seq or 0))
    return first.seq, first.kind


# -- refused at the command -------------------------------------------------------------------------


def test_a_key_cannot_be_registered_in_someone_elses_name(world: Populated) -> None:
    stranger = SigningKey.generate("maria.keller")  # claims to be the fraud model's owner
    request = KeyRequest.of(stranger, world.ledger.origin)
    _refused(world, "not_authorized", lambda: register_key(world.ledger, request, key_of("tom.berger")))
    forged = KeyRequest(request.principal, stranger.public, key_of("maria.keller").sign(b"x", b"y"))
    with pytest.raises(CharterError) as info:  # a request without proof of possession does not parse
        KeyRequest.from_dict(forged.to_dict(world.ledger.origin), world.ledger.origin)
    assert info.value.code == "no_possession"
    other_log = KeyRequest.of(stranger, "another.example/ledger").to_dict("another.example/ledger")
    with pytest.raises(CharterError):
        KeyRequest.from_dict(other_log, world.ledger.origin)


def test_a_key_registered_to_one_principal_cannot_be_given_to_another(world: Populated) -> None:
    taken = key_of("tom.berger")
    request = KeyRequest("maria.keller", taken.public,
                         KeyRequest.of(taken, world.ledger.origin, "maria.keller").possession)
    _refused(world, "key_registered", lambda: register_key(world.ledger, request, key_of(ADMIN)))


def test_only_the_owner_or_an_administrator_revokes_a_key(world: Populated) -> None:
    victim = key_of("maria.keller")
    _refused(world, "not_authorized", lambda: revoke_key(world.ledger, victim.key_id, "spite", key_of("tom.berger")))
    assert revoke_key(world.ledger, victim.key_id, "leaver", key_of(ADMIN)).payload["actor"] == ADMIN


def test_a_system_cannot_be_reowned_by_its_would_be_owner(world: Populated) -> None:
    fraud = systems_in_ledger(world.ledger)["fraud-detector"]
    hijacked = fraud.model_copy(update={"owner": "tom.berger"})
    _refused(world, "not_authorized", lambda: register_system(world.ledger, hijacked, key_of("tom.berger")))
    entry = register_system(world.ledger, hijacked, key_of(REGISTRAR))  # the registrar may
    assert entry is not None and systems_in_ledger(world.ledger)["fraud-detector"].owner == "tom.berger"


def test_a_second_document_under_a_published_version_is_refused(world: Populated) -> None:
    policy = POLICIES.policies[0]
    relaxed = policy.policy.model_dump(mode="json")
    relaxed["title"] = relaxed["title"] + " (relaxed)"
    _refused(world, "policy_conflict", lambda: publish_policies(
        world.ledger, [(policy.policy.id, policy.policy.version, relaxed)], key_of(AUTHOR)))


def test_authors_propose_and_approvers_activate_someone_elses_work(world: Populated) -> None:
    policy = POLICIES.policies[0]
    bumped = {**policy.policy.model_dump(mode="json"), "version": "9.9.9"}
    _refused(world, "not_authorized", lambda: publish_policies(world.ledger, [(policy.policy.id, "9.9.9", bumped)],
                                                               key_of("tom.berger")))
    published = publish_policies(world.ledger, [(policy.policy.id, "9.9.9", bumped)], key_of(AUTHOR))
    digest = published[0].payload["digest"]
    _refused(world, "not_authorized", lambda: activate_policies(world.ledger, [digest], key_of(AUTHOR)))
    # Someone who is both author and approver may not activate what they wrote themselves.
    config = world.ledger.authority().config
    assert config is not None
    both = GovernanceConfig.model_validate({**config, "roles": {**config["roles"],
                                                                "policy_approver": [AUTHOR, APPROVER]}})
    update_governance(world.ledger, both, [key_of(ADMIN), key_of("ben.okafor")])
    _refused(world, "separation_of_duties", lambda: activate_policies(world.ledger, [digest], key_of(AUTHOR)))
    assert activate_policies(world.ledger, [digest], key_of(APPROVER)) is not None


def test_the_governance_configuration_changes_only_with_its_threshold(world: Populated) -> None:
    config = world.ledger.authority().config
    assert config is not None
    intruder = SigningKey.generate("mallory")
    takeover = GovernanceConfig(administrators=[Administrator(principal="mallory", public_key=base64.b64encode(
        intruder.public).decode())], threshold=1)
    _refused(world, "not_authorized", lambda: update_governance(world.ledger, takeover, [intruder]))
    _refused(world, "not_authorized", lambda: update_governance(world.ledger, takeover, [intruder, key_of(ADMIN)]))
    update_governance(world.ledger, takeover, [intruder, key_of(ADMIN), key_of("ben.okafor")])  # 2 of 3, and mallory
    assert set(world.ledger.authority().admins()) == {"mallory"}


def test_incident_actors_are_their_keys_and_need_a_role(world: Populated) -> None:
    _submit_claims(world)
    incident = next(iter(load_book(world.ledger).incidents.values()))
    intruder = SigningKey.generate("intruder")
    _refused(world, "unknown_key", lambda: transition(world.ledger, incident.id, "acknowledge", intruder, "mine"))
    for admin in (ADMIN, "ben.okafor"):  # a first key: key_approvals (the demo's threshold, 2) administrators
        register_key(world.ledger, KeyRequest.of(intruder, world.ledger.origin), key_of(admin))
    _refused(world, "not_authorized", lambda: transition(world.ledger, incident.id, "acknowledge", intruder, "mine"))
    entry = transition(world.ledger, incident.id, "acknowledge", key_of("tom.berger"), "on it")
    assert entry.payload["actor"] == "tom.berger" and entry.key_id == key_of("tom.berger").key_id


def test_submissions_are_judged_by_what_is_in_force(world: Populated) -> None:
    relaxed = POLICIES.policies[0].policy.model_dump(mode="json")
    relaxed["version"] = "1.0.1"
    for rule in relaxed["rules"]:
        rule.update({k: 0.0 for k in ("min", "warn") if rule.get(k) is not None})
    publish_policies(world.ledger, [(relaxed["id"], "1.0.1", relaxed)], key_of(AUTHOR))  # proposed only
    result = _submit_claims(world)
    evaluation = next(world.ledger.entries(result.bundle_entry.seq + 1, result.bundle_entry.seq + 2))
    active = world.ledger.authority().active_policies
    assert sorted(evaluation.payload["policy_seqs"]) == sorted(active)
    assert evaluation.payload["policy_activation"] == world.ledger.authority().active_policies_seq


# -- forced in: verify names the first unauthorized entry ------------------------------------------


def test_forced_key_registration_by_a_non_administrator_is_named(world: Populated) -> None:
    stranger = SigningKey.generate("maria.keller")
    with _unchecked():
        entry = register_key(world.ledger, KeyRequest.of(stranger, world.ledger.origin), key_of("tom.berger"))
    assert _first_unauthorized(world) == (entry.seq, "not_authorized")


def test_forced_reowning_is_named(world: Populated) -> None:
    fraud = systems_in_ledger(world.ledger)["fraud-detector"]
    with _unchecked():
        entry = register_system(world.ledger, fraud.model_copy(update={"owner": "tom.berger"}), key_of("tom.berger"))
    assert entry is not None and _first_unauthorized(world) == (entry.seq, "not_authorized")


def test_forced_self_activation_is_named(world: Populated) -> None:
    policy = POLICIES.policies[0]
    bumped = {**policy.policy.model_dump(mode="json"), "version": "9.9.9"}
    digest = publish_policies(world.ledger, [(policy.policy.id, "9.9.9", bumped)], key_of(AUTHOR))[0].payload["digest"]
    with _unchecked():
        entry = activate_policies(world.ledger, [digest], key_of(AUTHOR))
    assert entry is not None and _first_unauthorized(world) == (entry.seq, "not_authorized")


def _forced_owner_decision(world: Populated, monkeypatch: pytest.MonkeyPatch, *decision: Any) -> Any:
    """The model owner decides a validated high-severity incident, forced past the command's and the store's rule."""
    import charter.incidents

    _submit_claims(world)
    incident = next(i for i in load_book(world.ledger).incidents.values() if i.severity.value == "high")
    transition(world.ledger, incident.id, "investigate", key_of("tom.berger"), "looking")
    transition(world.ledger, incident.id, "validate", key_of("carla.rossi"), "confirmed")
    monkeypatch.setattr(charter.incidents, "authorize_transition", lambda *args: "governance_committee")
    with _unchecked():
        entry = transition(world.ledger, incident.id, "decide", key_of("tom.berger"), "fine", *decision)
    monkeypatch.undo()
    return entry


def test_forced_decision_by_the_model_owner_is_named_by_charter_verify(world: Populated,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    entry = _forced_owner_decision(world, monkeypatch, ["accept_risk"], "P30D")
    # The owner holds an escalation role, so the standalone check (role membership) passes; Charter's
    # own rule (who decides a high-severity incident) names it.
    seq, kind = _first_unauthorized(world)
    assert (seq, kind) == (entry.seq, "not_authorized")


def test_an_edited_actor_breaks_the_signature(world: Populated) -> None:
    from tests.unit.ledger.helpers import drop_guards, edit_payload, read_rows, rechain, write_rows

    _submit_claims(world)
    incident = next(iter(load_book(world.ledger).incidents.values()))
    entry = transition(world.ledger, incident.id, "acknowledge", key_of("tom.berger"), "on it")
    engine = world.ledger.engine
    drop_guards(engine)
    rows = read_rows(engine)
    rows[entry.seq] = edit_payload(rows[entry.seq], note="nothing to see")
    write_rows(engine, rechain(rows, entry.seq))
    report = verify_ledger(world.ledger, world.log_key.public, resume=False)
    assert report.first_bad_seq is not None and report.first_bad_seq <= entry.seq


def test_entry_zero_must_be_the_trust_root(tmp_path: Path) -> None:
    from charter.ledger import NewEntry
    from tests.unit.ledger.helpers import new_ledger

    ledger = new_ledger(f"sqlite:///{tmp_path / 'l.db'}", trust_root=False)
    with pytest.raises(CharterError) as info:
        ledger.append([NewEntry("note", {}, "n")])
    assert info.value.code == "no_trust_root" and ledger.size() == 0
    assert ledger.log_key is not None
    with _unchecked():
        ledger.append([NewEntry("note", {}, "n")])
    report = verify_ledger(ledger, ledger.log_key.public)
    assert [(p.seq, p.kind) for p in report.problems] == [(0, "no_trust_root")]


def test_a_body_nested_past_the_verifiers_limit_is_refused_on_append(tmp_path: Path) -> None:
    """The log never writes an entry its own verifier would call malformed (nested too deeply)."""
    from charter.ledger import NewEntry
    from charter.ledger.auditor import MAX_BODY_DEPTH
    from tests.unit.ledger.helpers import new_ledger

    ledger = new_ledger(f"sqlite:///{tmp_path / 'l.db'}")
    deep: Any = 1
    for _ in range(MAX_BODY_DEPTH - 2):  # the body and its payload are the two levels above the lists
        deep = [deep]
    size = ledger.size()
    with _unchecked(), pytest.raises(CharterError) as info:
        ledger.append([NewEntry("note", {"deep": [deep]}, "n")])
    assert info.value.code == "body_too_deep" and ledger.size() == size
    with _unchecked():
        ledger.append([NewEntry("note", {"deep": deep}, "n")])  # at the limit: written, and it verifies
    assert ledger.log_key is not None
    assert verify_ledger(ledger, ledger.log_key.public).ok


# -- the exported verifier needs an anchor ----------------------------------------------------------


def _verify_export(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-I", str(directory / "verify.py"), str(directory), *args],
                          capture_output=True, text=True, check=False)


def test_the_exported_verifier_is_unanchored_without_a_key_or_checkpoint_you_hold(world: Populated,
                                                                                  tmp_path: Path) -> None:
    from charter.ledger import make_checkpoint

    make_checkpoint(world.ledger)
    export_ledger(world.ledger, tmp_path / "export")
    unanchored = _verify_export(tmp_path / "export")
    assert unanchored.returncode == 3 and "UNANCHORED" in unanchored.stdout
    fingerprint = world.ledger.meta()["log_key_id"]
    assert _verify_export(tmp_path / "export", "--log-key", fingerprint).returncode == 0
    held = tmp_path / "held.note"
    held.write_text(world.ledger.checkpoints()[-1][2])
    assert _verify_export(tmp_path / "export", "--checkpoint", str(held)).returncode == 0


def test_history_rewritten_under_a_new_log_key_fails_with_the_pinned_anchor(world: Populated,
                                                                            tmp_path: Path) -> None:
    from charter.ledger import make_checkpoint

    _submit_claims(world)
    make_checkpoint(world.ledger)
    fingerprint = world.ledger.meta()["log_key_id"]
    held = tmp_path / "held.note"
    held.write_text(world.ledger.checkpoints()[-1][2])
    # The attacker replays the whole history into a new ledger under a key of their own.
    forged = populate(f"sqlite:///{tmp_path / 'forged.db'}", bundles=0)
    make_checkpoint(forged.ledger)
    export_ledger(forged.ledger, tmp_path / "forged")
    assert _verify_export(tmp_path / "forged").returncode == 3  # self-consistent, but nothing anchors it
    pinned = _verify_export(tmp_path / "forged", "--log-key", fingerprint)
    assert pinned.returncode == 1 and "not the log you pinned" in pinned.stdout
    raw = base64.b64encode(world.log_key.public).decode()
    assert _verify_export(tmp_path / "forged", "--log-key", raw).returncode == 1  # its receipts are not ours
    origin_of_forgery = json.loads((tmp_path / "forged" / "trust_root.json").read_text())["origin"]
    assert origin_of_forgery == world.ledger.origin  # same name: only the anchor tells them apart
    assert _verify_export(tmp_path / "forged", "--checkpoint", str(held)).returncode == 1


def test_exported_head_and_checkpoint_rows_are_checked(world: Populated, tmp_path: Path) -> None:
    from charter.ledger import make_checkpoint

    make_checkpoint(world.ledger)
    export_ledger(world.ledger, tmp_path / "export")
    fingerprint = world.ledger.meta()["log_key_id"]
    head_file = tmp_path / "export" / "head.json"
    head = json.loads(head_file.read_text())
    head["checkpoints"][0]["root"] = "00" * 32
    head_file.write_text(json.dumps(head))
    result = _verify_export(tmp_path / "export", "--log-key", fingerprint)
    assert result.returncode == 1 and "checkpoint_row_mismatch" in result.stdout
    head = json.loads(head_file.read_text())
    head["checkpoints"] = []
    head["size"] += 5
    head_file.write_text(json.dumps(head))
    result = _verify_export(tmp_path / "export", "--log-key", fingerprint)
    assert result.returncode == 1 and "head_mismatch" in result.stdout


def test_activating_an_escalation_configuration_needs_an_approver(world: Populated) -> None:
    import yaml

    document = yaml.safe_load((REPO / "policies" / "escalation.yaml").read_text())
    document["roles"]["model_owner"]["members"].append("eve")
    _refused(world, "not_authorized", lambda: activate_escalation(world.ledger, document, key_of("tom.berger")))
    assert activate_escalation(world.ledger, document, key_of(APPROVER)) is not None


# -- changes signed away from the log -----------------------------------------------------------------


def test_a_statement_signed_elsewhere_is_checked_like_one_signed_here(world: Populated) -> None:
    from charter.authority import SignedStatement
    from charter.ledger.auditor import KEY_REVOKED
    from charter.statements import accept
    from charter.submission import revocation_statement

    victim = key_of("maria.keller")
    at = "2026-01-01T00:00:00.000Z"
    statement = SignedStatement.sign(world.ledger.origin, KEY_REVOKED, revocation_statement(victim.key_id, "leaver"),
                                     key_of(ADMIN), at)
    forged = SignedStatement(statement.log, statement.type, {**statement.statement, "reason": "other"},
                             statement.key_id, statement.signature)
    _refused(world, "bad_signature", lambda: accept(world.ledger, forged))
    elsewhere = SignedStatement.sign("another.example/ledger", KEY_REVOKED,
                                     revocation_statement(victim.key_id, "leaver"), key_of(ADMIN), at)
    _refused(world, "statement_mismatch", lambda: accept(world.ledger, elsewhere))
    impostor = SignedStatement.sign(world.ledger.origin, KEY_REVOKED, revocation_statement(victim.key_id, "x"),
                                    SigningKey.generate(ADMIN), at)  # the name, not the registered key
    _refused(world, "unknown_key", lambda: accept(world.ledger, impostor))
    entry = accept(world.ledger, statement)
    assert entry is not None and entry.payload["actor"] == ADMIN and entry.key_id == key_of(ADMIN).key_id
    assert accept(world.ledger, statement) is None  # handed in twice: recorded once
    assert verify_ledger(world.ledger, world.log_key.public).ok


# -- what the review found: each hole is closed ------------------------------------------------------


def _two_of_three(populated: Populated, config: GovernanceConfig) -> None:
    update_governance(populated.ledger, config, [key_of(ADMIN), key_of("ben.okafor")])


def test_a_rotated_administrator_key_stops_counting(world: Populated) -> None:
    config = world.ledger.authority().config
    assert config is not None
    fresh = SigningKey.generate(ADMIN)
    rotated = GovernanceConfig.model_validate({**config, "administrators": [
        {**a, "public_key": base64.b64encode(fresh.public).decode()} if a["principal"] == ADMIN else a
        for a in config["administrators"]]})
    update_governance(world.ledger, rotated, [key_of(ADMIN), key_of("ben.okafor"), fresh])
    thief = SigningKey.generate("omar.haddad")
    request = KeyRequest.of(thief, world.ledger.origin)
    _refused(world, "revoked_key", lambda: register_key(world.ledger, request, key_of(ADMIN)))  # the old key
    with _unchecked():  # forced in, it is named
        from charter.ledger import NewEntry
        from charter.submission import key_statement

        entry = world.ledger.append([NewEntry("key.added", {**key_statement(request), "actor": ADMIN,
                                                            "signed_at": "2026-01-01T00:00:00.000Z"}, "x",
                                              key_id=key_of(ADMIN).key_id, signature="")])[0]
    assert _first_unauthorized(world)[0] == entry.seq


def test_keys_of_administrators_change_only_with_the_configuration(world: Populated) -> None:
    request = KeyRequest.of(SigningKey.generate("ben.okafor"), world.ledger.origin)
    _refused(world, "not_authorized", lambda: register_key(world.ledger, request, key_of(ADMIN)))


def test_a_revoked_administrator_key_approves_nothing(world: Populated) -> None:
    config = world.ledger.authority().config
    assert config is not None
    revoke_key(world.ledger, key_of("ben.okafor").key_id, "laptop stolen", key_of("ben.okafor"))
    thief = SigningKey.generate("thief")
    keeps_revoked = GovernanceConfig.model_validate({**config, "administrators": [
        *config["administrators"], {"principal": "thief", "public_key": base64.b64encode(thief.public).decode()}]})
    _refused(world, "key_revoked", lambda: update_governance(world.ledger, keeps_revoked,
                                                             [key_of("ben.okafor"), key_of("chen.li"), thief]))
    takeover = GovernanceConfig.model_validate({**config, "administrators": [
        *(a for a in config["administrators"] if a["principal"] != "ben.okafor"),
        {"principal": "thief", "public_key": base64.b64encode(thief.public).decode()}]})
    _refused(world, "not_authorized", lambda: update_governance(world.ledger, takeover,
                                                                [key_of("ben.okafor"), key_of("chen.li"), thief]))


def test_a_replayed_or_stale_statement_is_refused(world: Populated) -> None:
    from charter.ledger import NewEntry

    activation = next(world.ledger.entries(types=("policy.activated",)))
    config = world.ledger.authority().config
    assert config is not None
    _two_of_three(world, GovernanceConfig.model_validate(config))  # the configuration moves on
    signature = json.loads(activation.body)["sig"]
    _refused(world, "malformed_body", lambda: world.ledger.append([NewEntry(  # under another submission id
        activation.type, activation.payload, activation.submission_id + "x", key_id=activation.key_id,
        signature=signature)]))
    _refused(world, "replayed_statement", lambda: world.ledger.append([NewEntry(
        activation.type, activation.payload, activation.submission_id, key_id=activation.key_id,
        signature=signature)]))
    genesis = world.ledger.entry(0)
    assert genesis is not None
    _refused(world, "replayed_statement", lambda: world.ledger.append([NewEntry(
        genesis.type, genesis.payload, genesis.submission_id)]))


def test_forged_reopening_and_widened_waivers_are_named(world: Populated) -> None:
    from charter.ledger import NewEntry

    _submit_claims(world)
    incident = next(i for i in load_book(world.ledger).incidents.values() if i.severity.value == "high")
    forged = {"incident_id": incident.id, "action": "reopen", "from": "open", "to": "decided", "actor": "charter",
              "role": "system", "note": "x", "decision": ["accept_risk"], "deadline": None}
    _refused(world, "malformed_body", lambda: world.ledger.append([NewEntry("incident.transition", forged, "f1")]))
    transition(world.ledger, incident.id, "investigate", key_of("tom.berger"), "looking")
    transition(world.ledger, incident.id, "validate", key_of("carla.rossi"), "confirmed")
    transition(world.ledger, incident.id, "decide", key_of("anna.schmidt"), "accept", ["accept_risk"], "P30D")
    waiver = next(world.ledger.entries(types=("waiver.granted",)))
    widened = {**waiver.payload, "waiver_id": "WVR-x", "expires_at": "2999-01-01T00:00:00.000Z"}
    with _unchecked():
        decision = transition(world.ledger, incident.id, "resolve", key_of("tom.berger"), "done")
        entry = world.ledger.append([NewEntry("waiver.granted", widened, "w2", subject=incident.system_id)])[0]
    assert decision.seq == entry.seq - 1
    report = verify_ledger(world.ledger, world.log_key.public, resume=False)
    assert entry.seq in {p.seq for p in report.problems}
    assert verify_ledger(world.ledger, world.log_key.public, resume=False).first_bad_seq == entry.seq


def test_a_malformed_activation_is_reported_not_a_crash(world: Populated) -> None:
    from charter.ledger import NewEntry

    with _unchecked():
        entry = world.ledger.append([NewEntry("policy.activated", {"policies": 5, "actor": ADMIN,
                                                                   "signed_at": "x"}, "bad")])[0]
    assert _first_unauthorized(world)[0] == entry.seq


def test_only_normalized_policy_documents_are_published(world: Populated) -> None:
    from charter.policy.model import Policy

    policy = POLICIES.policies[0]
    normal = {**policy.policy.model_dump(mode="json"), "version": "9.9.8"}
    # The same policy with a defaulted field left out: valid, but not the form whose digest findings cite.
    document = next(d for d in ({k: v for k, v in normal.items() if k != left} for left in normal)
                    if _valid(Policy, d) and d != normal)
    _refused(world, "policy_not_normalized", lambda: publish_policies(world.ledger, [(policy.policy.id, "9.9.8",
                                                                                      document)], key_of(AUTHOR)))


def test_without_signatures_a_pinned_key_anchors_nothing(world: Populated, tmp_path: Path) -> None:
    export_ledger(world.ledger, tmp_path / "export")
    fingerprint = world.ledger.meta()["log_key_id"]
    assert _verify_export(tmp_path / "export", "--log-key", fingerprint).returncode == 0
    assert _verify_export(tmp_path / "export", "--log-key", fingerprint, "--no-signatures").returncode == 3


def test_charter_is_the_logs_name_not_a_principal() -> None:
    from charter.ledger.keys import check_principal

    with pytest.raises(CharterError):
        check_principal("charter")


def _valid(model: Any, document: dict[str, Any]) -> bool:
    try:
        return model.model_validate(document).model_dump(mode="json") is not None
    except ValueError:
        return False


def test_a_forced_change_changes_nothing_for_later_appends(world: Populated) -> None:
    # The insider forces a key for a made-up approver in; the store folds as verify does, so the key is unknown.
    impostor = SigningKey.generate("omar.haddad")
    with _unchecked():
        register_key(world.ledger, KeyRequest.of(impostor, world.ledger.origin), key_of("tom.berger"))
    fresh = type(world.ledger)(world.ledger.engine, world.ledger.origin, world.ledger.log_key)
    assert impostor.key_id not in fresh.authority().keys
    size = fresh.size()
    with pytest.raises(CharterError) as info:
        activate_policies(fresh, [p.digest for p in POLICIES.policies[:1]], impostor)
    assert info.value.code == "unknown_key" and fresh.size() == size


def test_a_second_key_needs_the_endorsement_of_the_first(world: Populated) -> None:
    second = SigningKey.generate("tom.berger")
    # An administrator alone cannot add a key in the name of someone who already has one.
    _refused(world, "no_endorsement", lambda: register_key(world.ledger, KeyRequest.of(second, world.ledger.origin),
                                                           key_of(ADMIN)))
    stranger = SigningKey.generate("tom.berger")
    forged = KeyRequest.of(second, world.ledger.origin, endorse_with=stranger)  # endorsed by a key not his
    _refused(world, "no_endorsement", lambda: register_key(world.ledger, forged, key_of(ADMIN)))
    endorsed = KeyRequest.of(second, world.ledger.origin, endorse_with=key_of("tom.berger"))
    parsed = KeyRequest.from_dict(endorsed.to_dict(world.ledger.origin), world.ledger.origin)
    assert register_key(world.ledger, parsed, key_of(ADMIN)).payload["endorsement"]["key_id"] == \
        key_of("tom.berger").key_id
    assert verify_ledger(world.ledger, world.log_key.public, resume=False).ok


def test_charter_audit_judges_transitions_the_exported_verifier_cannot(world: Populated, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from charter.audit import ExportedLedger, audit, read_export
    from tests.unit.ledger.helpers import COMPILER

    entry = _forced_owner_decision(world, monkeypatch, ["retrain"])
    export_ledger(world.ledger, tmp_path / "export")
    assert _verify_export(tmp_path / "export", "--log-key", world.ledger.meta()["log_key_id"]).returncode == 0
    export = read_export(tmp_path / "export")
    result = audit(ExportedLedger(export.entries, export.origin), CATALOG, COMPILER)
    assert [(p.seq, p.kind) for p in result.unauthorized] == [(entry.seq, "not_authorized")]
    assert not result.differences


# -- typed evidence: documents, attestations, withdrawals ---------------------------------------------

EVIDENCE_ATTESTER = "anna.schmidt"


def _evidence_fields(kind: str, /, **changes: Any) -> dict[str, Any]:
    import datetime

    from charter.evidence import attestation_fields, document_fields, event_fields
    from charter.evidence import test_result_fields as result_fields

    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    if kind == "document":
        return {**document_fields(name="AI policy", version="1", sha256="ab" * 32, uri="https://x.example/p",
                                  owner=EVIDENCE_ATTESTER, review_by="2027-01-01", controls=["iso-42001:A.2.2"]),
                **changes}
    done = datetime.datetime(2025, 12, 1, tzinfo=datetime.UTC)  # before the ledger's clock: it has happened
    if kind == "test_result":
        return {**result_fields(name="bias audit", method="fairlearn", performed_at=done, outcome="passed",
                                summary="parity holds", valid_until=done + datetime.timedelta(days=90),
                                controls=["iso-42001:A.2.2"]), **changes}
    if kind == "event":
        return {**event_fields(kind="management_review", title="Q4 review", occurred_at=done,
                               next_due=done + datetime.timedelta(days=365), controls=["iso-42001:A.2.2"]),
                **changes}
    return {**attestation_fields(statement="in place", controls=["iso-42001:A.2.2"], valid_from=start,
                                 valid_until=start + datetime.timedelta(days=30)), **changes}


def test_forced_organisation_wide_evidence_without_the_role_is_named(world: Populated) -> None:
    from charter.evidence import record_attestation, record_document

    with _unchecked():
        entry = record_document(world.ledger, _evidence_fields("document"), key_of("tom.berger"))
    assert _first_unauthorized(world) == (entry.seq, "not_authorized")
    with _unchecked():  # after it: an owner attesting for a system they do not own is named too
        later = record_attestation(world.ledger, _evidence_fields("attestation", systems=["fraud-detector"]),
                                   key_of("tom.berger"))
    report = verify_ledger(world.ledger, world.log_key.public, resume=False)
    assert [(p.seq, p.kind) for p in report.problems] == [(entry.seq, "not_authorized"),
                                                          (later.seq, "not_authorized")]


def test_forced_evidence_for_an_unregistered_system_or_document_is_named(world: Populated) -> None:
    from charter.evidence import record_attestation

    with _unchecked():
        entry = record_attestation(world.ledger, _evidence_fields("attestation", systems=["ghost"]),
                                   key_of(EVIDENCE_ATTESTER))
    assert _first_unauthorized(world) == (entry.seq, "unknown_system")


def test_forced_attestation_citing_an_unrecorded_document_is_named(world: Populated) -> None:
    from charter.evidence import record_attestation

    with _unchecked():
        entry = record_attestation(world.ledger, _evidence_fields("attestation", documents=["cd" * 32]),
                                   key_of(EVIDENCE_ATTESTER))
    assert _first_unauthorized(world) == (entry.seq, "unknown_document")


def test_forced_withdrawal_by_a_stranger_is_named_and_changes_nothing(world: Populated) -> None:
    from charter.evidence import evidence_index, record_attestation, withdraw_evidence

    attested = record_attestation(world.ledger, _evidence_fields("attestation"), key_of(EVIDENCE_ATTESTER))
    with _unchecked():
        entry = withdraw_evidence(world.ledger, f"att:{attested.seq}", "spite", key_of("tom.berger"))
    assert _first_unauthorized(world) == (entry.seq, "not_authorized")
    # The forced withdrawal folded nothing: the attester may still withdraw it (and only once).
    fresh = type(world.ledger)(world.ledger.engine, world.ledger.origin, world.ledger.log_key)
    assert fresh.authority().evidence[str(attested.seq)][3] is None
    withdraw_evidence(fresh, f"att:{attested.seq}", "superseded", key_of(EVIDENCE_ATTESTER))
    assert evidence_index(fresh).items[0].withdrawal_reason == "spite"  # the index reads what is recorded
    with pytest.raises(CharterError) as info:
        withdraw_evidence(fresh, f"att:{attested.seq}", "again", key_of(EVIDENCE_ATTESTER))
    assert info.value.code == "evidence_withdrawn"


@pytest.mark.parametrize("changes", [
    {"valid_until": "2025-12-01T00:00:00.000Z"},  # ends before it starts
    {"statement": "x" * 20_001},
    {"documents": ["not-hex"]},
    {"controls": []},
    {"extra": "smuggled"},
])
def test_forced_malformed_attestations_are_named(world: Populated, changes: dict[str, Any]) -> None:
    from charter.ledger import NewEntry
    from charter.ledger.auditor import ACTION_CONTEXT, EVIDENCE_ATTESTATION, action_message, statement_id

    statement = {**_evidence_fields("attestation"), **changes, "actor": EVIDENCE_ATTESTER,
                 "signed_at": "2026-01-01T00:00:00.000Z"}
    signature = key_of(EVIDENCE_ATTESTER).sign(ACTION_CONTEXT, action_message(world.ledger.origin,
                                                                              EVIDENCE_ATTESTATION, statement))
    new = NewEntry(EVIDENCE_ATTESTATION, statement, statement_id(world.ledger.origin, EVIDENCE_ATTESTATION, statement),
                   key_id=key_of(EVIDENCE_ATTESTER).key_id, signature=signature)
    _refused(world, "malformed_body", lambda: world.ledger.append([new]))
    with _unchecked():
        entry = world.ledger.append([new])[0]
    assert _first_unauthorized(world) == (entry.seq, "malformed_body")


def _forced_evidence(populated: Populated, kind: str, who: str, /, **changes: Any) -> Any:
    """Evidence appended as an insider would, past both the field checks and the authority rule."""
    from charter.authority import signed_entry
    entry_type = f"evidence.{kind}"
    with _unchecked():
        return populated.ledger.append(lambda size: [signed_entry(
            populated.ledger, entry_type, _evidence_fields(kind, **changes), key_of(who), size=size)])[0]


#: evidence the rule refuses whoever records it with its system's owner's key: the tamper matrix of review M1
FORCED_EVIDENCE = {
    # the owner of claims-approval documents or attests the AI policy of his own system
    "owner_organisation_level": ({"systems": ["claims-approval"]}, "not_authorized"),
    "owner_mixed_levels": ({"systems": ["claims-approval"], "controls": ["iso-42001:A.6.2.6", "iso-42001:5.2"]},
                           "not_authorized"),
    "paragraph_not_in_catalog": ({"systems": ["claims-approval"], "controls": ["eu-ai-act:art-10(9)"]},
                                 "unknown_control"),
    "clause_nothing_scores": ({"systems": ["claims-approval"], "controls": ["iso-42001:9.2"]}, "unknown_control"),
    "unknown_control": ({"systems": ["claims-approval"], "controls": ["iso-42001:A.99"]}, "unknown_control"),
}


@pytest.mark.parametrize("kind", ["document", "attestation", "test_result", "event"])
@pytest.mark.parametrize("forgery", list(FORCED_EVIDENCE))
def test_forced_evidence_of_organisation_level_or_uncatalogued_controls_is_named(
        world: Populated, tmp_path: Path, forgery: str, kind: str) -> None:
    from charter.audit import read_export, verify_export

    changes, problem = FORCED_EVIDENCE[forgery]
    # A system-level control of his own system is his to evidence: the rule is about the control.
    allowed = _forced_evidence(world, kind, "tom.berger", systems=["claims-approval"],
                               controls=["iso-42001:A.6.2.6"])
    assert verify_ledger(world.ledger, world.log_key.public, resume=False).ok, allowed.seq
    entry = _forced_evidence(world, kind, "tom.berger", **changes)
    assert _first_unauthorized(world) == (entry.seq, problem)
    export_ledger(world.ledger, tmp_path / "export")
    export = read_export(tmp_path / "export")
    report = verify_export(export, export.public_key)
    assert [(p.seq, p.kind) for p in report.problems] == [(entry.seq, problem)]  # charter audit
    fingerprint = world.ledger.meta()["log_key_id"]
    result = _verify_export(tmp_path / "export", "--log-key", fingerprint)  # with the export's controls.json
    assert result.returncode == 1 and f"seq {entry.seq}: {problem}" in result.stdout, result.stdout
    (tmp_path / "export" / "controls.json").rename(tmp_path / "held-controls.json")  # an auditor's own copy
    result = _verify_export(tmp_path / "export", "--log-key", fingerprint, "--controls",
                            str(tmp_path / "held-controls.json"))
    assert result.returncode == 1 and f"seq {entry.seq}: {problem}" in result.stdout, result.stdout
    # without a controls file it still tells: the policy activation recorded the catalog the evidence is judged by
    result = _verify_export(tmp_path / "export", "--log-key", fingerprint)
    assert result.returncode == 1 and f"seq {entry.seq}: {problem}" in result.stdout, result.stdout
    assert "no controls file" in result.stderr


def test_a_ledger_that_recorded_no_catalog_is_judged_by_the_catalog_at_hand(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ledgers activated before catalogs were recorded: the catalog the verifier holds decides, and without one
    the exported verifier says it cannot tell."""
    import charter.frameworks

    with monkeypatch.context() as patched:  # the demo set-up as an older Charter did it: no catalog recorded
        patched.setattr(charter.frameworks, "builtin_control_catalog", lambda: None)
        legacy = populate(f"sqlite:///{tmp_path / 'legacy.db'}", bundles=0)
    assert legacy.ledger.authority().recorded_controls == {}
    entry = _forced_evidence(legacy, "document", "tom.berger", systems=["claims-approval"])
    assert _first_unauthorized(legacy) == (entry.seq, "not_authorized")  # charter verify: the built-in catalogs
    export_ledger(legacy.ledger, tmp_path / "export")
    fingerprint = legacy.ledger.meta()["log_key_id"]
    result = _verify_export(tmp_path / "export", "--log-key", fingerprint)
    assert result.returncode == 1 and f"seq {entry.seq}: not_authorized" in result.stdout, result.stdout
    (tmp_path / "export" / "controls.json").unlink()
    result = _verify_export(tmp_path / "export", "--log-key", fingerprint)
    assert result.returncode == 0 and "no controls file" in result.stderr, result.stdout


@pytest.mark.parametrize("kind", ["test_result", "event"])
def test_forced_tests_and_events_are_named(world: Populated, tmp_path: Path, kind: str) -> None:
    from charter.audit import read_export, verify_export

    # signed by someone who may not (organisation-wide, without the evidence attester role)
    entry = _forced_evidence(world, kind, "tom.berger")
    assert _first_unauthorized(world) == (entry.seq, "not_authorized")
    # dated after the ledger received it, and of a kind or outcome outside the vocabulary
    start = "performed_at" if kind == "test_result" else "occurred_at"
    future = _forced_evidence(world, kind, EVIDENCE_ATTESTER, **{start: "2026-02-01T00:00:00.000Z"})
    vocabulary = {"outcome": "mostly"} if kind == "test_result" else {"kind": "party"}
    odd = _forced_evidence(world, kind, EVIDENCE_ATTESTER, **vocabulary)
    report = verify_ledger(world.ledger, world.log_key.public, resume=False)
    assert [(p.seq, p.kind) for p in report.problems] == [(entry.seq, "not_authorized"),
                                                          (future.seq, "evidence_in_future"),
                                                          (odd.seq, "malformed_body")]
    export_ledger(world.ledger, tmp_path / "export")
    export = read_export(tmp_path / "export")
    assert [p.seq for p in verify_export(export, export.public_key).problems] == [entry.seq, future.seq, odd.seq]
    result = _verify_export(tmp_path / "export", "--log-key", world.ledger.meta()["log_key_id"])
    assert result.returncode == 1 and f"seq {entry.seq}: not_authorized" in result.stdout
    assert f"seq {future.seq}: evidence_in_future" in result.stdout, result.stdout


def test_evidence_is_checked_by_the_exported_verifier(world: Populated, tmp_path: Path) -> None:
    from charter.evidence import record_document

    record_document(world.ledger, _evidence_fields("document"), key_of(EVIDENCE_ATTESTER))
    with _unchecked():
        entry = record_document(world.ledger, _evidence_fields("document", version="2"), key_of("tom.berger"))
    export_ledger(world.ledger, tmp_path / "export")
    result = _verify_export(tmp_path / "export", "--log-key", world.ledger.meta()["log_key_id"])
    assert result.returncode == 1 and f"seq {entry.seq}: not_authorized" in result.stdout


# -- Art. 73: classifications and reports forced past the command -----------------------------------


def _validated_claims(populated: Populated, *, high_risk: bool = True) -> Any:
    return validated_claims_incident(populated, high_risk=high_risk)


def _classify(populated: Populated, incident: Any, who: str) -> Any:
    from charter.incidents import classify

    return classify(populated.ledger, incident.id, key_of(who), "rights", serious=True, ground="c",
                    aware_at="2026-06-06T12:00:00+00:00")


def _file(populated: Populated, incident: Any, who: str) -> Any:
    from charter.incidents import file_report

    return file_report(populated.ledger, incident.id, key_of(who), authority="BaFin", reference="AI-1",
                       kind="initial", filed_at="2026-06-06T14:00:00+00:00")


@pytest.mark.parametrize("forgery", ["owner_classifies", "validator_files", "filed_unclassified",
                                     "deadline_lengthened", "filed_before_awareness", "serious_not_high_risk"])
def test_forced_art73_entries_are_named_by_charter_verify(world: Populated, monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path, forgery: str) -> None:
    import charter.incidents

    incident = _validated_claims(world, high_risk=forgery != "serious_not_high_risk")
    real_classification = charter.incidents.authorize_classification
    real_deadline = charter.incidents.reporting_deadline
    if forgery in ("validator_files", "filed_before_awareness"):
        _classify(world, incident, "carla.rossi")
    if forgery == "serious_not_high_risk":  # review L2: a serious incident of a system not EU high-risk
        monkeypatch.setattr(charter.incidents, "_high_risk_problem", lambda *args: None)
        # The log's own authority check knows the rule too (review B3): only an insider past it lands this.
        with pytest.raises(CharterError) as refused:
            _classify(world, incident, "carla.rossi")
        assert refused.value.code == "not_authorized" and "not high-risk" in str(refused.value)
        with _unchecked():
            entry = _classify(world, incident, "carla.rossi")
    elif forgery == "owner_classifies":  # the model owner classifies the incident he investigated
        monkeypatch.setattr(charter.incidents, "authorize_classification",
                            lambda graph, i, _who, statement, now, system: real_classification(
                                graph, i, "carla.rossi", statement, now, system))
        entry = _classify(world, incident, "tom.berger")
    elif forgery == "deadline_lengthened":  # the validator's classification records 30 more days
        import datetime

        def later(*args: Any) -> dict[str, str]:
            due = real_deadline(*args)
            moved = datetime.datetime.fromisoformat(due["due_at"].replace("Z", "+00:00")) + datetime.timedelta(30)
            return {**due, "due_at": moved.strftime("%Y-%m-%dT%H:%M:%S.000Z")}

        monkeypatch.setattr(charter.incidents, "reporting_deadline", later)
        entry = _classify(world, incident, "carla.rossi")
    else:
        monkeypatch.setattr(charter.incidents, "authorize_filing", lambda *args: "regulatory_reporting")
        who = "carla.rossi" if forgery == "validator_files" else "eric.dubois"
        if forgery == "filed_before_awareness":
            from charter.incidents import file_report

            entry = file_report(world.ledger, incident.id, key_of(who), authority="BaFin", reference="AI-1",
                                kind="initial", filed_at="2026-06-06T11:00:00+00:00")
        else:
            entry = _file(world, incident, who)
    monkeypatch.undo()
    # Every actor holds an escalation role, so the standalone check (role membership) passes;
    # Charter's own rule (who classifies, who files, what deadline) names the entry.
    assert _first_unauthorized(world) == (entry.seq, "not_authorized")
    if forgery in ("owner_classifies", "serious_not_high_risk"):
        from charter.audit import ExportedLedger, audit, read_export
        from tests.unit.ledger.helpers import COMPILER

        export_ledger(world.ledger, tmp_path / "export")
        offline = _verify_export(tmp_path / "export", "--log-key", world.ledger.meta()["log_key_id"])
        if forgery == "owner_classifies":  # who validates depends on the graph: Charter's own rule alone
            assert offline.returncode == 0, offline.stdout
        else:  # the registrations say the system is not high-risk: the exported verifier names it too
            assert offline.returncode == 1 and f"seq {entry.seq}: not_authorized: incident.classified" in \
                offline.stdout and "claims-approval is not high-risk" in offline.stdout, offline.stdout
        export = read_export(tmp_path / "export")
        result = audit(ExportedLedger(export.entries, export.origin), CATALOG, COMPILER)
        assert [(p.seq, p.kind) for p in result.unauthorized] == [(entry.seq, "not_authorized")]


def test_a_filing_by_someone_outside_the_escalation_roles_is_named_by_the_exported_verifier(
        world: Populated, tmp_path: Path) -> None:
    incident = _validated_claims(world)
    _classify(world, incident, "carla.rossi")
    _refused(world, "not_authorized", lambda: _file(world, incident, "ben.okafor"))  # an administrator, not legal
    with _unchecked():
        import charter.incidents

        original = charter.incidents.authorize_filing
        charter.incidents.authorize_filing = lambda *args: "regulatory_reporting"  # type: ignore[assignment]
        try:
            entry = _file(world, incident, "ben.okafor")
        finally:
            charter.incidents.authorize_filing = original
    assert _first_unauthorized(world) == (entry.seq, "not_authorized")
    export_ledger(world.ledger, tmp_path / "export")
    result = _verify_export(tmp_path / "export", "--log-key", world.ledger.meta()["log_key_id"])
    assert result.returncode == 1 and "not_authorized" in result.stdout


def test_a_classification_and_a_filing_land_once(world: Populated) -> None:
    from charter.ledger import NewEntry

    incident = _validated_claims(world)
    for entry in (_classify(world, incident, "carla.rossi"), _file(world, incident, "eric.dubois")):
        signature = json.loads(entry.body)["sig"]
        _refused(world, "replayed_statement", lambda e=entry, s=signature: world.ledger.append([NewEntry(
            e.type, e.payload, e.submission_id, key_id=e.key_id, signature=s)]))
    assert verify_ledger(world.ledger, world.log_key.public, resume=False).ok


# -- the auditor role and separation of duties (issue 14) --------------------------------------------


def _with_auditor(world: Populated, auditor: str) -> None:
    """Give `auditor` the auditor role, approved by two of the demo's three administrators."""
    config = world.ledger.authority().config
    assert config is not None
    roles = {**config["roles"], "auditor": [auditor]}
    update_governance(world.ledger, GovernanceConfig(administrators=config["administrators"],
                                                     threshold=config["threshold"], roles=roles),
                      [key_of(ADMIN), key_of("ben.okafor")])


def test_an_auditor_signs_no_governance_change(world: Populated) -> None:
    import datetime

    from charter.tokens import create_token, revoke_token

    _with_auditor(world, AUTHOR)
    policy = POLICIES.policies[0].policy
    document = {**policy.model_dump(mode="json"), "version": "99.0.0"}
    size = world.ledger.size()
    with pytest.raises(CharterError) as info:
        publish_policies(world.ledger, [(policy.id, "99.0.0", document)], key_of(AUTHOR))
    assert info.value.code == "not_authorized" and "auditors act on nothing" in str(info.value)
    assert world.ledger.size() == size
    expires = world.ledger.clock.now + datetime.timedelta(days=30)  # type: ignore[attr-defined]
    _refused(world, "not_authorized", lambda: create_token(world.ledger, AUTHOR, ["read"], expires, key_of(AUTHOR)))
    _refused(world, "not_authorized", lambda: revoke_key(world.ledger, key_of(AUTHOR).key_id, "left", key_of(AUTHOR)))
    # An administrator issues the auditor's read token; the auditor may not even revoke it.
    entry, _ = create_token(world.ledger, AUTHOR, ["read"], expires, key_of(ADMIN))
    _refused(world, "not_authorized",
             lambda: revoke_token(world.ledger, entry.payload["token_id"], "done", key_of(AUTHOR)))
    with _unchecked():
        forced = publish_policies(world.ledger, [(policy.id, "99.0.0", document)], key_of(AUTHOR))[0]
    assert _first_unauthorized(world) == (forced.seq, "not_authorized")


def test_an_administrator_may_not_hold_the_auditor_role(world: Populated) -> None:
    _refused(world, "malformed_config", lambda: _with_auditor(world, ADMIN))


def test_an_administrator_decides_no_incident(world: Populated) -> None:
    import yaml

    # The escalation configuration names an administrator in the second line: the rule still refuses.
    document = yaml.safe_load((REPO / "policies" / "escalation.yaml").read_text())
    document["roles"]["risk_compliance"]["members"].append(ADMIN)
    activate_escalation(world.ledger, document, key_of(APPROVER))
    _submit_claims(world)
    incident = next(i for i in load_book(world.ledger).incidents.values() if i.rule == "core.fairness/approval-parity")
    transition(world.ledger, incident.id, "investigate", key_of("tom.berger"), "proxy feature")
    _refused(world, "not_authorized", lambda: transition(world.ledger, incident.id, "validate", key_of(ADMIN), "ok"))
    with _unchecked():
        forced = transition(world.ledger, incident.id, "validate", key_of(ADMIN), "ok")
    seq, kind = _first_unauthorized(world)
    assert (seq, kind) == (forced.seq, "not_authorized")
    report = verify_ledger(world.ledger, world.log_key.public, resume=False)
    assert any("separation of duties" in p.detail for p in report.problems if p.seq == forced.seq)


def test_a_fresh_process_knows_which_system_each_incident_is_of(db_url: str) -> None:
    """Review M1: the log's own Art. 73 rule folds incident openings, so a CLI run or another API worker
    judges a serious classification as the process that appended the opening does."""
    from charter.ledger import Ledger

    populated = populate(db_url, bundles=6)
    writer = populated.ledger.authority().incident_systems
    assert writer
    fresh = Ledger.open(db_url, log_key=populated.log_key, origin=populated.ledger.origin)
    assert fresh.authority().incident_systems == writer


# -- a first key takes key_approvals administrators -----------------------------------------------------


def test_a_first_key_waits_for_key_approvals_administrators(world: Populated) -> None:
    from charter.submission import key_approval

    newcomer = SigningKey.generate("dana.white")
    request = KeyRequest.of(newcomer, world.ledger.origin)
    assert world.ledger.authority().key_approvals() == 2  # the demo's configuration: its threshold
    first = register_key(world.ledger, request, key_of(ADMIN))
    status = key_approval(world.ledger, newcomer.key_id)
    assert (status.registered, status.approvers, status.needed) == (False, (ADMIN,), 2)
    assert "1 more" in status.describe()
    assert newcomer.key_id not in world.ledger.authority().keys  # pending: it signs nothing yet
    _refused(world, "unknown_key", lambda: revoke_key(world.ledger, key_of("tom.berger").key_id, "x", newcomer))
    size = world.ledger.size()
    assert register_key(world.ledger, request, key_of(ADMIN)).seq == first.seq and world.ledger.size() == size
    second = register_key(world.ledger, request, key_of("ben.okafor"))
    record = world.ledger.authority().keys[newcomer.key_id]
    assert (record[0], record[2]) == ("dana.white", second.seq)
    assert key_approval(world.ledger, newcomer.key_id).registered
    assert verify_ledger(world.ledger, world.log_key.public, resume=False).ok


def test_one_administrator_cannot_take_over_an_owner_by_revoking_his_key(world: Populated) -> None:
    """Revoke the owner's only key, then register one of your own in his name: it stays pending, signs nothing."""
    from charter.submission import key_approval

    revoke_key(world.ledger, key_of("tom.berger").key_id, "compromise (so the insider says)", key_of(ADMIN))
    impostor = SigningKey.generate("tom.berger")
    register_key(world.ledger, KeyRequest.of(impostor, world.ledger.origin), key_of(ADMIN))
    assert not key_approval(world.ledger, impostor.key_id).registered
    at = claims_measured_at()
    _refused(world, "unknown_key", lambda: submit_bundle(world.ledger, CLAIMS.read_bytes(), CATALOG, key=impostor,
                                                         at=at))
    # Forced in past the store's check, a change signed with the key is named by verify: it was never registered.
    from charter.ledger.auditor import ACTION_CONTEXT, KEY_REVOKED, action_message, statement_id
    from charter.ledger.records import NewEntry

    statement = {"key_id": key_of(APPROVER).key_id, "reason": "signed with the pending key", "actor": "tom.berger",
                 "signed_at": "2026-06-02T00:00:00Z"}
    with _unchecked():
        forced = world.ledger.append([NewEntry(
            KEY_REVOKED, statement, statement_id(world.ledger.origin, KEY_REVOKED, statement), subject=APPROVER,
            key_id=impostor.key_id, signature=impostor.sign(ACTION_CONTEXT, action_message(
                world.ledger.origin, KEY_REVOKED, statement)))])[0]
    assert _first_unauthorized(world) == (forced.seq, "unknown_key")


def test_a_second_approval_by_the_same_administrator_is_refused_and_named(world: Populated) -> None:
    newcomer = SigningKey.generate("dana.white")
    request = KeyRequest.of(newcomer, world.ledger.origin)
    register_key(world.ledger, request, key_of(ADMIN))
    # A second statement of the same administrator (another signing time) counts once: refused at the log...
    from charter.authority import signed_entry
    from charter.ledger.auditor import KEY_ADDED
    from charter.submission import key_statement

    def again(next_seq: int) -> list[Any]:
        return [signed_entry(world.ledger, KEY_ADDED, key_statement(request), key_of(ADMIN),
                             subject="dana.white", size=next_seq)]

    _refused(world, "already_approved", lambda: world.ledger.append(again))
    # ...and named by verify when forced in; the key stays pending for every verifier.
    with _unchecked():
        forced = world.ledger.append(again)[0]
    assert _first_unauthorized(world) == (forced.seq, "already_approved")
    fresh = type(world.ledger)(world.ledger.engine, world.ledger.origin, world.ledger.log_key)
    assert newcomer.key_id not in fresh.authority().keys


def test_key_approvals_is_recorded_bounded_and_absent_means_one() -> None:
    from charter.ledger.auditor import Authority, _config_problem

    admins = [Administrator(principal=name, public_key=base64.b64encode(key_of(name).public).decode())
              for name in ("ana.costa", "ben.okafor", "chen.li")]
    assert GovernanceConfig(administrators=admins, threshold=2).document()["key_approvals"] == 2
    assert GovernanceConfig(administrators=admins, threshold=2, key_approvals=3).document()["key_approvals"] == 3
    with pytest.raises(CharterError) as info:
        GovernanceConfig(administrators=admins, threshold=2, key_approvals=4).document()
    assert info.value.diagnostics[0].location.path == "$.key_approvals"
    document = GovernanceConfig(administrators=admins, threshold=2).document()
    assert _config_problem({**document, "key_approvals": 0}) is not None
    assert _config_problem({**document, "key_approvals": "2"}) is not None
    older = {k: v for k, v in document.items() if k != "key_approvals"}  # recorded before key_approvals existed
    assert _config_problem(older) is None
    authority = Authority("test.example/log")
    authority.config = older
    assert authority.key_approvals() == 1


def test_one_administrator_cannot_revoke_the_others_keys(world: Populated) -> None:
    """Else revoking two of three would leave a 2-of-3 configuration that nobody can ever change again."""
    ben = key_of("ben.okafor").key_id
    _refused(world, "not_authorized", lambda: revoke_key(world.ledger, ben, "sabotage", key_of(ADMIN)))
    with _unchecked():
        forced = revoke_key(world.ledger, ben, "sabotage", key_of(ADMIN))
    assert _first_unauthorized(world) == (forced.seq, "not_authorized")


def test_an_administrator_may_still_revoke_a_principals_key_and_their_own(world: Populated) -> None:
    assert revoke_key(world.ledger, key_of("chen.li").key_id, "laptop stolen", key_of("chen.li")).seq
    assert revoke_key(world.ledger, key_of("tom.berger").key_id, "leaver", key_of("ben.okafor")).seq
    assert verify_ledger(world.ledger, world.log_key.public, resume=False).ok


# -- the review of key_approvals (helper-33) ---------------------------------------------------------------


def test_a_key_in_another_base64_spelling_is_refused(world: Populated) -> None:
    """Review M1: a non-canonical base64 of the same 32 bytes would let string comparisons of keys be evaded."""
    from charter.authority import signed_entry
    from charter.ledger.auditor import KEY_ADDED
    from charter.submission import key_statement

    newcomer = SigningKey.generate("dana.white")
    fields = key_statement(KeyRequest.of(newcomer, world.ledger.origin))
    canonical_text = fields["public_key"]
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".index(canonical_text[-2])
    other = canonical_text[:-2] + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[last ^ 1] + "="
    assert base64.b64decode(other) == base64.b64decode(canonical_text) and other != canonical_text

    def spelled(next_seq: int) -> list[Any]:
        return [signed_entry(world.ledger, KEY_ADDED, {**fields, "public_key": other}, key_of(ADMIN),
                             subject="dana.white", size=next_seq)]

    _refused(world, "malformed_body", lambda: world.ledger.append(spelled))
    with _unchecked():
        forced = world.ledger.append(spelled)[0]
    assert _first_unauthorized(world) == (forced.seq, "malformed_body")


def test_lockout_warnings_name_configurations_one_administrator_can_block() -> None:
    """Review M2: with every administrator needed, one who withholds (or revokes keys) blocks for good."""
    def config(count: int, threshold: int, key_approvals: int | None = None) -> GovernanceConfig:
        return GovernanceConfig(administrators=[
            Administrator(principal=name, public_key=base64.b64encode(key_of(name).public).decode())
            for name in ("ana.costa", "ben.okafor", "chen.li")[:count]], threshold=threshold,
            key_approvals=key_approvals)

    assert config(3, 2).lockout_warnings() == []
    assert config(1, 1).lockout_warnings() == []
    two_of_two = config(2, 2).lockout_warnings()
    assert len(two_of_two) == 2 and "change of the configuration" in two_of_two[0] and "first key" in two_of_two[1]
    only_keys = config(3, 2, key_approvals=3).lockout_warnings()
    assert len(only_keys) == 1 and "every new identity" in only_keys[0]


def test_an_endorsed_request_registers_even_after_the_same_administrator_approved_it_unendorsed(
        world: Populated) -> None:
    """Review L2: the idempotency shortcut applies to first keys only; an endorsement needs one administrator."""
    first = SigningKey.generate("dana.white")
    for admin in (ADMIN, "ben.okafor"):
        register_key(world.ledger, KeyRequest.of(first, world.ledger.origin), key_of(admin))
    second = SigningKey.generate("dana.white")
    with pytest.raises(CharterError) as info:  # unendorsed: a second key needs the endorsement of the first
        register_key(world.ledger, KeyRequest.of(second, world.ledger.origin), key_of(ADMIN))
    assert info.value.code == "no_endorsement"
    endorsed = KeyRequest.of(second, world.ledger.origin, endorse_with=first)
    entry = register_key(world.ledger, endorsed, key_of(ADMIN))
    assert world.ledger.authority().keys[second.key_id][2] == entry.seq
    assert verify_ledger(world.ledger, world.log_key.public, resume=False).ok


def test_a_statement_that_cannot_land_is_refused_not_reported_as_another_entry(world: Populated) -> None:
    """Review L2: `ledger accept` and the API must not answer a statement with an earlier entry of another one."""
    from charter.authority import SignedStatement
    from charter.ledger.auditor import KEY_ADDED
    from charter.statements import accept
    from charter.submission import key_statement

    newcomer = SigningKey.generate("dana.white")
    fields = key_statement(KeyRequest.of(newcomer, world.ledger.origin))

    def statement(admin: str, at: str) -> SignedStatement:
        return SignedStatement.sign(world.ledger.origin, KEY_ADDED, fields, key_of(admin), at)

    landed = accept(world.ledger, statement(ADMIN, "2026-06-01T00:00:00Z"))
    assert landed is not None
    _refused(world, "already_approved", lambda: accept(world.ledger, statement(ADMIN, "2026-06-01T00:00:01Z")))
    assert accept(world.ledger, statement("ben.okafor", "2026-06-01T00:00:02Z")) is not None
    assert newcomer.key_id in world.ledger.authority().keys
    _refused(world, "key_registered", lambda: accept(world.ledger, statement("chen.li", "2026-06-01T00:00:03Z")))


def test_a_configuration_that_needs_fewer_approvals_completes_the_keys_that_have_enough(world: Populated) -> None:
    """Review L3: lowering key_approvals must not strand a key its approvers can no longer complete."""
    from charter.submission import key_approval

    newcomer = SigningKey.generate("dana.white")
    register_key(world.ledger, KeyRequest.of(newcomer, world.ledger.origin), key_of(ADMIN))
    assert not key_approval(world.ledger, newcomer.key_id).registered
    config = GovernanceConfig.model_validate({**world.ledger.authority().config, "key_approvals": 1})
    entry = update_governance(world.ledger, config, [key_of(ADMIN), key_of("ben.okafor")])
    assert world.ledger.authority().keys[newcomer.key_id][2] == entry.seq
    assert verify_ledger(world.ledger, world.log_key.public, resume=False).ok


def test_an_administrators_tokens_are_theirs_alone(world: Populated) -> None:
    """Review L4: as with keys, no administrator creates or revokes another administrator's token."""
    import datetime

    from charter.tokens import create_token, revoke_token

    expires = datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC)
    _refused(world, "not_authorized", lambda: create_token(world.ledger, "ben.okafor", ["act"], expires,
                                                           key_of(ADMIN)))
    created, _ = create_token(world.ledger, "ben.okafor", ["act"], expires, key_of("ben.okafor"))
    token_id = created.payload["token_id"]
    _refused(world, "not_authorized", lambda: revoke_token(world.ledger, token_id, "spite", key_of(ADMIN)))
    assert revoke_token(world.ledger, token_id, "rotation", key_of("ben.okafor")).seq
    owner_token, _ = create_token(world.ledger, "tom.berger", ["act"], expires, key_of(ADMIN))  # still allowed
    assert owner_token.payload["principal"] == "tom.berger"
    assert verify_ledger(world.ledger, world.log_key.public, resume=False).ok


class _Silent:
    """A notifier that delivers nothing (the escalation entries are what these tests look at)."""

    def send(self, channel: Any, recipient: str, message: dict[str, Any]) -> None:
        """Deliver nothing."""


def test_an_escalation_is_judged_like_a_transition(world: Populated) -> None:
    """Review (H): a paged role may act on the incident, so an escalation forged by a holder of the log key
    (a role outside the incident's chain, or before its deadline) let anyone in that role validate or decide,
    and verify passed it. `charter verify` now asks whether `charter escalate` would have written it then."""
    from charter.incidents import ESCALATED
    from charter.ledger import NewEntry

    _submit_claims(world)
    incident = next(i for i in load_book(world.ledger).incidents.values()
                    if i.rule == "core.fairness/approval-parity")
    with _unchecked():  # minutes after opening, to a role outside the chain
        forged = world.ledger.append([NewEntry(ESCALATED, {
            "incident_id": incident.id, "level": 1, "role": "regulatory_reporting", "reason": "x", "round": 0},
            f"escalate:{incident.id}:0:1", subject=incident.system_id)])[0]
    seq, kind = _first_unauthorized(world)
    assert (seq, kind) == (forged.seq, "not_authorized")
    problem = next(p for p in verify_ledger(world.ledger, world.log_key.public, resume=False).problems
                   if p.seq == forged.seq)
    assert "'regulatory_reporting' at level 1" in problem.detail and "nobody" in problem.detail
    # the role it names was not paged: a step taken on its strength is named too
    from charter.incidents import transition

    transition(world.ledger, incident.id, "investigate", key_of("tom.berger"), "looking")
    with _unchecked():
        step = transition(world.ledger, incident.id, "validate", key_of("eric.dubois"), "as the paged role")
    named = {(p.seq, p.kind) for p in verify_ledger(world.ledger, world.log_key.public, resume=False).problems}
    assert (step.seq, "not_authorized") in named


def test_escalations_charter_escalate_writes_verify(world: Populated) -> None:
    import datetime as dt

    from charter.authority import active_escalation
    from charter.notify import tick

    _submit_claims(world)
    graph, _ = active_escalation(world.ledger)
    world.ledger.clock.now += dt.timedelta(days=30)  # type: ignore[attr-defined]
    report = tick(world.ledger, graph, world.ledger.clock.now, _Silent())  # type: ignore[attr-defined]
    assert report.escalated
    assert verify_ledger(world.ledger, world.log_key.public, resume=False).ok


def test_a_stale_approval_does_not_register_a_second_key_when_approvals_are_lowered(world: Populated) -> None:
    """Review M5: a rogue administrator approves a key of their own in dana's name (pending, 1 of 2); dana's real
    key is registered; a later configuration needing one approval must not register the rogue key unendorsed."""
    from charter.submission import key_approval

    rogue, real = SigningKey.generate("dana.white"), SigningKey.generate("dana.white")
    register_key(world.ledger, KeyRequest.of(rogue, world.ledger.origin), key_of(ADMIN))
    for admin in (ADMIN, "ben.okafor"):
        register_key(world.ledger, KeyRequest.of(real, world.ledger.origin), key_of(admin))
    config = GovernanceConfig.model_validate({**world.ledger.authority().config, "key_approvals": 1})
    update_governance(world.ledger, config, [key_of(ADMIN), key_of("ben.okafor")])
    authority = world.ledger.authority()
    assert real.key_id in authority.keys and rogue.key_id not in authority.keys
    assert not key_approval(world.ledger, rogue.key_id).registered
    assert verify_ledger(world.ledger, world.log_key.public, resume=False).ok


def test_an_auditor_hands_in_no_evidence_even_for_a_system_they_own(world: Populated) -> None:
    """Review M4: auditors act on nothing; a bundle is a change of governance state like any other."""
    config = world.ledger.authority().config
    roles = {**config["roles"], "auditor": [*config["roles"].get("auditor", []), "tom.berger"]}
    update_governance(world.ledger, GovernanceConfig.model_validate({**config, "roles": roles}),
                      [key_of(ADMIN), key_of("ben.okafor")])
    _refused(world, "not_authorized", lambda: _submit_claims(world))
    with _unchecked():
        forced = _submit_claims(world)
    assert _first_unauthorized(world) == (forced.bundle_entry.seq, "not_authorized")


def test_entries_forced_in_without_their_fields_are_named_not_a_traceback(world: Populated) -> None:
    """Review M7: log-key entries missing the fields the log writes crashed verify, `incidents list` and
    `escalate` with a KeyError; a registrar-signed registration that describes no system crashed `systems list`."""
    from charter.authority import signed_entry
    from charter.incidents import ESCALATED
    from charter.ledger import NewEntry
    from charter.ledger.auditor import SYSTEM_REGISTERED

    _submit_claims(world)
    incident = next(iter(load_book(world.ledger).incidents.values()))
    with _unchecked():
        bare = world.ledger.append([NewEntry(ESCALATED, {"incident_id": incident.id}, "bare", subject="x")])[0]
    assert [s for s, _ in load_book(world.ledger).malformed] == [bare.seq]  # folded as nothing, no traceback
    kinds = {(p.seq, p.kind) for p in verify_ledger(world.ledger, world.log_key.public, resume=False).problems}
    # named as an escalation `charter escalate` would not have written (it is refused before it is folded)
    assert (bare.seq, "not_authorized") in kinds

    registered = systems_in_ledger(world.ledger)["claims-approval"]
    with _unchecked():
        hollow = world.ledger.append(lambda next_seq: [signed_entry(
            world.ledger, SYSTEM_REGISTERED, {"system": {"id": "claims-approval", "owner": "tom.berger"}},
            key_of(REGISTRAR), subject="claims-approval", size=next_seq)])[0]
    assert systems_in_ledger(world.ledger)["claims-approval"] == registered  # it registers nothing
    problems = [p for p in verify_ledger(world.ledger, world.log_key.public, resume=False).problems
                if p.seq == hollow.seq]
    assert [p.kind for p in problems] == ["malformed_body"] and "$.system." in problems[0].detail


def test_a_submitter_cannot_choose_an_evaluation_time_that_buries_a_breach(world: Populated,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Review M3: judged before it was measured, every rule reads "not yet available" and no incident opens.
    `--at` may not be earlier than the bundle's measurement; verify names an evaluation forced in earlier."""
    import datetime as dt

    import charter.submission
    from charter.submission import EVALUATION

    measured = claims_measured_at()
    early = measured - dt.timedelta(days=200)
    _refused(world, "bad_time", lambda: submit_bundle(world.ledger, CLAIMS.read_bytes(), CATALOG,
                                                      key=key_of("tom.berger"), at=early))
    monkeypatch.setattr(charter.submission, "_check_evaluation_time", lambda *args: None)
    forced = submit_bundle(world.ledger, CLAIMS.read_bytes(), CATALOG, key=key_of("tom.berger"), at=early)
    assert not forced.incidents and {f.status.value for f in forced.findings} == {"missing"}
    evaluation = next(world.ledger.entries(forced.bundle_entry.seq, None, types=(EVALUATION,)))
    problems = verify_ledger(world.ledger, world.log_key.public, resume=False).problems
    assert [(p.seq, p.kind) for p in problems] == [(evaluation.seq, "bad_evaluation_time")]
