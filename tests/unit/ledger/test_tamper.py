"""The tamper matrix: direct SQL edits by an insider without the log key, on SQLite and PostgreSQL.

Every attack inside the checkpointed range is detected and the verifier names the first bad seq. The
log signs one receipt per append transaction (a range receipt over the Merkle root of its entries),
so an attack that rehashes the chain after an edit is located at the first entry of the transaction
that holds it; a plain edit is still located at the entry. Truncating the tail that no checkpoint
covers at a transaction boundary is undetectable by design; the verifier must say so instead of
claiming more than it can. Cutting inside a transaction leaves entries without a receipt.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError

from charter.ledger import Ledger, SigningKey, make_checkpoint, verify_ledger
from charter.ledger.checkpoints import checkpoint_due
from charter.ledger.schema import checkpoint, ledger_entry, ledger_receipt
from tests.unit.ledger.helpers import (
    ORIGIN,
    Populated,
    copy_sqlite,
    drop_guards,
    edit_payload,
    new_ledger,
    populate,
    read_rows,
    rechain,
    transaction_ends,
    transaction_start,
    write_rows,
)

CHECKPOINT = 60
TARGET = 30


@pytest.fixture
def victim(db_url: str) -> Populated:
    populated = populate(db_url)
    assert populated.ledger.size() > CHECKPOINT + 10
    make_checkpoint(populated.ledger, CHECKPOINT)
    drop_guards(populated.ledger.engine)
    return populated


def _verify(victim: Populated) -> Any:
    return verify_ledger(victim.ledger, victim.log_key.public)


def test_untouched_ledger_verifies_and_states_its_uncovered_tail(victim: Populated) -> None:
    report = _verify(victim)
    assert report.ok, report.problems
    assert report.covered == CHECKPOINT
    assert f"entries {CHECKPOINT}..{report.entries - 1} are not covered" in report.summary()


def _edit_in_place(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows[TARGET] = edit_payload(rows[TARGET], tampered=True)
    return rows


def _edit_and_rehash(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return rechain(_edit_in_place(rows), TARGET)


def _delete(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return rows[:TARGET] + rows[TARGET + 1:]


def _delete_and_rehash(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return rechain(_delete(rows), TARGET)


def _insert_replayed_and_rehash(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    replayed = {**rows[TARGET], "submission_id": "replayed"}
    return rechain([*rows[:TARGET + 1], replayed, *rows[TARGET + 1:]], TARGET + 1)


def _swap(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows[TARGET], rows[TARGET + 1] = {**rows[TARGET + 1], "seq": TARGET}, {**rows[TARGET], "seq": TARGET + 1}
    return rows


def _swap_and_rehash(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return rechain(_swap(rows), TARGET)


#: attack -> (tamper, where it shows: the entry, or the first entry of its transaction, and the kind)
ATTACKS: dict[str, tuple[Callable[[list[dict[str, Any]]], list[dict[str, Any]]], str, str]] = {
    "edit in place": (_edit_in_place, "entry", "hash_mismatch"),
    "edit and rehash the rest": (_edit_and_rehash, "transaction", "bad_receipt"),
    "delete": (_delete, "entry", "missing_entry"),
    "delete and rehash": (_delete_and_rehash, "transaction", "bad_receipt"),
    "insert a replayed entry and rehash": (_insert_replayed_and_rehash, "transaction", "bad_receipt"),
    "swap": (_swap, "entry", "seq_mismatch"),
    "swap and rehash": (_swap_and_rehash, "transaction", "bad_receipt"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attack_is_detected_at_the_first_bad_seq(victim: Populated, attack: str) -> None:
    tamper, where, kind = ATTACKS[attack]
    engine = victim.ledger.engine
    first_bad = TARGET if where == "entry" else transaction_start(engine, TARGET)
    rows = tamper(read_rows(engine))
    # A careful attacker also moves the head, except for "delete" which leaves a gap on purpose.
    write_rows(engine, rows, head_size=len(rows))
    report = _verify(victim)
    assert not report.ok
    assert report.first_bad_seq == first_bad
    assert kind in {p.kind for p in report.problems if p.seq == first_bad}, report.problems


# -- who asked through the API (`via`): part of the hashed record, so an edit of it breaks the hash ---------


def _asked_through_the_api(victim: Populated) -> int:
    """Append a signed change asked for with a token (its entry records the via); its seq."""
    import datetime

    from charter.ledger.store import recording_via
    from charter.tokens import create_token, revoke_token

    owner = victim.owner_keys["maria.keller"]
    expires = victim.ledger.clock.now + datetime.timedelta(days=30)  # type: ignore[attr-defined]
    created, _ = create_token(victim.ledger, "maria.keller", ["act"], expires, owner)
    token_id = created.payload["token_id"]
    with recording_via({"principal": "maria.keller", "method": "token", "request_id": "r1", "token_id": token_id}):
        asked = revoke_token(victim.ledger, token_id, "rotated", owner)
    assert asked.via is not None and _verify(victim).ok
    return asked.seq


VIA_EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "another principal": lambda body: body["via"].update(principal="tom.berger"),
    "another token": lambda body: body["via"].update(token_id="0123456789abcdef"),
    "via removed": lambda body: body.pop("via"),
}


@pytest.mark.parametrize("rehash", [False, True], ids=["in place", "rehashed"])
@pytest.mark.parametrize("edit", list(VIA_EDITS))
def test_a_via_edited_after_the_fact_is_detected(victim: Populated, tmp_path: Path, edit: str, rehash: bool) -> None:
    import json
    import subprocess
    import sys

    import rfc8785

    from charter.ledger.export import export_ledger

    seq = _asked_through_the_api(victim)
    engine = victim.ledger.engine
    rows = read_rows(engine)
    body = json.loads(rows[seq]["body"])
    VIA_EDITS[edit](body)
    rows[seq] = {**rows[seq], "body": rfc8785.dumps(body)}
    if rehash:
        rows = rechain(rows, seq)
    write_rows(engine, rows)
    first_bad, kind = (transaction_start(engine, seq), "bad_receipt") if rehash else (seq, "hash_mismatch")
    report = _verify(victim)
    assert report.first_bad_seq == first_bad and kind in {p.kind for p in report.problems if p.seq == first_bad}
    export_ledger(victim.ledger, tmp_path / "export")
    offline = subprocess.run([sys.executable, "-I", str(tmp_path / "export" / "verify.py"), str(tmp_path / "export"),
                              "--log-key", victim.ledger.meta()["log_key_id"]], capture_output=True, text=True,
                             check=False)
    # An export has no stored record hash beside the body: offline, the log's receipt is what breaks.
    start = transaction_start(engine, seq)
    assert offline.returncode == 1 and f"seq {start}: bad_receipt" in offline.stdout, offline.stdout


def _boundary(engine: Any, above: int) -> int:
    """The first transaction boundary (a ledger size) above `above`."""
    return next(end for end in transaction_ends(engine) if end > above)


def test_truncation_below_a_checkpoint_is_detected(victim: Populated) -> None:
    engine = victim.ledger.engine
    cut = max(end for end in transaction_ends(engine) if end < CHECKPOINT)
    write_rows(engine, read_rows(engine)[:cut])
    report = _verify(victim)
    assert [(p.seq, p.kind) for p in report.problems] == [(cut, "truncated")]


def test_cutting_inside_a_transaction_leaves_entries_without_a_receipt(victim: Populated) -> None:
    engine = victim.ledger.engine
    end = _boundary(engine, CHECKPOINT + 1)
    write_rows(engine, read_rows(engine)[:end - 1])
    report = _verify(victim)
    assert [p.kind for p in report.problems] == ["missing_receipt"]
    assert report.first_bad_seq == transaction_start(engine, end - 2)


def test_truncating_the_uncovered_tail_is_not_detectable_and_is_reported_as_uncovered(victim: Populated) -> None:
    # Negative control: the exposure window of a log is the tail after its last checkpoint.
    engine = victim.ledger.engine
    cut = _boundary(engine, CHECKPOINT)
    write_rows(engine, read_rows(engine)[:cut])
    report = _verify(victim)
    assert report.ok, report.problems
    assert report.covered == CHECKPOINT
    assert f"entries {CHECKPOINT}..{cut - 1} are not covered by any checkpoint" in report.summary()


def test_an_auditor_held_checkpoint_covers_what_the_database_lost(victim: Populated) -> None:
    engine = victim.ledger.engine
    held = make_checkpoint(victim.ledger)  # the auditor keeps this note outside the database
    with engine.begin() as connection:
        connection.execute(checkpoint.delete().where(checkpoint.c.size == held.size))
    cut = _boundary(engine, CHECKPOINT)
    write_rows(engine, read_rows(engine)[:cut])
    report = verify_ledger(victim.ledger, victim.log_key.public, [held.note])
    assert [(p.seq, p.kind) for p in report.problems] == [(cut, "truncated")]


def test_head_that_disagrees_with_the_entries(victim: Populated) -> None:
    engine = victim.ledger.engine
    rows = read_rows(engine)
    cut = transaction_start(engine, len(rows) - 1)  # drop the last transaction whole
    write_rows(engine, rows[:cut], head_size=cut)
    with engine.begin() as connection:
        from charter.ledger.schema import ledger_head

        connection.execute(update(ledger_head).values(size=len(rows)))
    report = _verify(victim)
    assert [(p.seq, p.kind) for p in report.problems] == [(cut, "head_mismatch")]


def test_a_fork_is_refused_at_write_time(victim: Populated) -> None:
    rows = read_rows(victim.ledger.engine)
    child = {**rows[TARGET + 1], "seq": 10_000, "submission_id": "fork", "record_hash": b"\x07" * 32}
    with pytest.raises(IntegrityError), victim.ledger.engine.begin() as connection:
        connection.execute(insert(ledger_entry).values(**child))
    assert _verify(victim).ok


def test_rewrite_from_genesis_with_another_log_key(victim: Populated, tmp_path: Path) -> None:
    # The attacker rebuilds the whole history with a key of their own and re-signs the checkpoints.
    forged = new_ledger(f"sqlite:///{tmp_path / 'forged.db'}", SigningKey.generate(ORIGIN), trust_root=False)
    rows = read_rows(victim.ledger.engine)
    for row in rows:
        forged.append([_as_new_entry(row)])
    make_checkpoint(forged, CHECKPOINT)
    engine = victim.ledger.engine
    write_rows(engine, read_rows(forged.engine))
    with forged.engine.connect() as connection:
        receipts = [dict(r._mapping) for r in connection.execute(ledger_receipt.select())]
    with engine.begin() as connection:  # the victim fixture dropped the append-only guards
        connection.execute(ledger_receipt.delete())
        connection.execute(insert(ledger_receipt), receipts)
        connection.execute(checkpoint.delete())
        connection.execute(insert(checkpoint), [{"size": s, "root_hash": r, "note": n, "issued_at": "x"}
                                               for s, r, n in forged.checkpoints()])
    report = _verify(victim)
    assert report.first_bad_seq == 0
    assert {p.kind for p in report.problems} >= {"checkpoint_invalid", "bad_receipt"}


def _as_new_entry(row: dict[str, Any]) -> Any:
    import json

    from charter.ledger import NewEntry

    body = json.loads(row["body"])
    return NewEntry(row["entry_type"], body["payload"], row["submission_id"], row["subject"], row["key_id"],
                    body.get("sig"))


def test_tampered_checkpoint_row_is_reported(victim: Populated) -> None:
    with victim.ledger.engine.begin() as connection:
        connection.execute(update(checkpoint).values(root_hash=b"\x00" * 32,
                                                     note=checkpoint.c.note + "extra line\n"))
    report = _verify(victim)
    assert [p.kind for p in report.problems] == ["checkpoint_invalid"]


def test_append_only_guard_refuses_updates(db_url: str) -> None:
    populated = populate(db_url, bundles=1)
    with pytest.raises(Exception, match="append-only"), populated.ledger.engine.begin() as connection:
        connection.execute(update(ledger_entry).where(ledger_entry.c.seq == 0).values(subject="x"))


def test_checkpoint_cadence(db_url: str) -> None:
    populated = populate(db_url, bundles=1)
    assert checkpoint_due(populated.ledger, 10)
    make_checkpoint(populated.ledger)
    assert not checkpoint_due(populated.ledger, 10)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Populated]:
    url = f"sqlite:///{tmp_path_factory.mktemp('pristine') / 'ledger.db'}"
    populated = populate(url, bundles=2)
    make_checkpoint(populated.ledger)
    populated.ledger.engine.dispose()
    return url, populated


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_byte_change_of_any_body_is_detected(pristine: tuple[str, Populated], tmp_path_factory: Any,
                                                         data: st.DataObject) -> None:
    url, populated = pristine
    copy = Ledger.open(copy_sqlite(url, tmp_path_factory.mktemp("copy") / "ledger.db"))
    drop_guards(copy.engine)
    rows = read_rows(copy.engine)
    seq = data.draw(st.integers(0, len(rows) - 1), label="seq")
    body = bytes(rows[seq]["body"])
    index = data.draw(st.integers(0, len(body) - 1), label="byte")
    value = data.draw(st.integers(0, 255).filter(lambda b: b != body[index]), label="value")
    with copy.engine.begin() as connection:
        connection.execute(update(ledger_entry).where(ledger_entry.c.seq == seq).values(
            body=body[:index] + bytes([value]) + body[index + 1:]))
    report = verify_ledger(copy, populated.log_key.public)
    assert not report.ok
    assert report.first_bad_seq == seq


# -- forced past the rules by an insider who holds the log key: the rules, not the hashes, must name it ------


def _claims_incident(populated: Populated) -> Any:
    """The claims model's fairness breach, investigated and validated (not EU high-risk), with the clock in June."""
    from tests.unit.ledger.helpers import validated_claims_incident

    return validated_claims_incident(populated, high_risk=False)


def _force_serious(populated: Populated, incident: Any, monkeypatch: pytest.MonkeyPatch, aware_at: str) -> int:
    """Append the validator's serious classification past Charter's rules and the store's check; its seq."""
    import charter.incidents
    from charter.incidents import classify
    from tests.unit.ledger.helpers import key_of, unchecked

    with monkeypatch.context() as patch, unchecked():
        patch.setattr(charter.incidents, "_high_risk_problem", lambda *args: None)
        entry = classify(populated.ledger, incident.id, key_of("carla.rossi"), "rights", serious=True, ground="c",
                         aware_at=aware_at)
    return entry.seq


def _verify_offline(populated: Populated, directory: Path) -> Any:
    import subprocess
    import sys

    from charter.ledger.export import export_ledger

    export_ledger(populated.ledger, directory)
    return subprocess.run([sys.executable, "-I", str(directory / "verify.py"), str(directory),
                           "--log-key", populated.ledger.meta()["log_key_id"]], capture_output=True, text=True,
                          check=False)


@pytest.mark.parametrize("history", ["never high-risk", "high-risk, then reclassified"])
def test_a_serious_classification_of_a_system_not_eu_high_risk_is_named_by_the_exported_verifier(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, history: str) -> None:
    # Review B3: Art. 73 applies to EU high-risk systems under the classification in force; the
    # standalone verifier folds the registrations, so it names such an entry as `charter verify` does.
    from charter.incidents import classify
    from charter.submission import register_system, systems_in_ledger
    from tests.unit.ledger.helpers import key_of, register_high_risk

    populated = populate(db_url, bundles=0)
    earlier = None
    if history != "never high-risk":
        register_high_risk(populated.ledger)
        incident = _claims_incident(populated)
        earlier = classify(populated.ledger, incident.id, key_of("carla.rossi"), "rights", serious=True, ground="c",
                           aware_at="2026-06-06T12:00:00+00:00").seq  # in force then: lawful, and stays so
        current = systems_in_ledger(populated.ledger)["claims-approval"]
        register_system(populated.ledger, current.model_copy(update={"eu_ai_act": current.eu_ai_act.model_copy(  # type: ignore[union-attr]
            update={"annex_iii": None, "reasoning": "Not high-risk: motor claims are outside Annex III 5(c)."})}),
            key_of("ben.okafor"))
        seq = _force_serious(populated, incident, monkeypatch, "2026-06-06T13:00:00+00:00")
    else:
        incident = _claims_incident(populated)
        seq = _force_serious(populated, incident, monkeypatch, "2026-06-06T12:00:00+00:00")
    report = verify_ledger(populated.ledger, populated.log_key.public)
    named = [p.seq for p in report.problems if p.kind == "not_authorized"]
    assert named == [seq], report.problems  # once, though both the standalone rule and Charter's name it
    offline = _verify_offline(populated, tmp_path / "export")
    assert offline.returncode == 1, offline.stdout
    assert f"seq {seq}: not_authorized: incident.classified  of {incident.id} by 'carla.rossi': claims-approval is " \
        "not high-risk under its EU AI Act classification in force" in offline.stdout, offline.stdout
    assert earlier is None or f"seq {earlier}:" not in offline.stdout


def test_a_triage_that_finds_no_serious_incident_needs_no_high_risk_system(db_url: str, tmp_path: Path) -> None:
    from charter.incidents import classify
    from tests.unit.ledger.helpers import key_of

    populated = populate(db_url, bundles=0)
    incident = _claims_incident(populated)
    classify(populated.ledger, incident.id, key_of("carla.rossi"), "no harm to rights", serious=False)
    assert verify_ledger(populated.ledger, populated.log_key.public).ok
    assert _verify_offline(populated, tmp_path / "export").returncode == 0
