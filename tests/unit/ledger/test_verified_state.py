"""Resuming verification from the log-signed verified state (issue 11, item 21): what it spares and misses."""

from __future__ import annotations

import datetime
import json
from typing import Any

from sqlalchemy import update

from charter.kpis import builtin_catalog
from charter.ledger import NewEntry
from charter.ledger.schema import ledger_meta
from charter.ledger.verified import load_verified_state
from charter.ledger.verify import verify_ledger
from charter.report import bind
from charter.submission import default_compiler
from tests.unit.ledger.helpers import (
    Populated,
    drop_guards,
    edit_payload,
    populate,
    read_rows,
    rechain,
    transaction_start,
    write_rows,
)

AS_OF = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)


def _bound(db_url: str) -> Populated:
    """A populated ledger bound once (as a report does), then grown by a few entries."""
    populated = populate(db_url, bundles=3)
    bind(populated.ledger, populated.log_key.public, AS_OF, default_compiler(builtin_catalog()))
    populated.ledger.append([NewEntry("note", {"i": i}, f"note:{i}") for i in range(5)])
    return populated


def test_verify_resumes_after_the_state_and_reads_only_new_entries(db_url: str) -> None:
    populated = _bound(db_url)
    state = load_verified_state(populated.ledger, populated.log_key.public)
    assert state is not None
    report = verify_ledger(populated.ledger, populated.log_key.public, resume=True)
    assert report.ok and report.resumed_from == state["size"] and report.entries == state["size"] + 5
    assert "vouched for by the log-signed state" in report.summary()
    full = verify_ledger(populated.ledger, populated.log_key.public)
    assert full.ok and full.resumed_from is None and full.entries == report.entries


def test_a_second_binding_resumes_and_extends_the_signed_tree(db_url: str) -> None:
    populated = _bound(db_url)
    first = load_verified_state(populated.ledger, populated.log_key.public)
    state = bind(populated.ledger, populated.log_key.public, AS_OF, default_compiler(builtin_catalog()))
    binding = state.binding
    second = load_verified_state(populated.ledger, populated.log_key.public)
    assert first is not None and second is not None
    assert second["size"] == first["size"] + 5 and binding.checkpoint_size == second["size"]
    assert second["full_pass"] == first["full_pass"]  # the chain of passes still descends from the full one
    assert "vouched for" in state.verification  # what this run read; the report's own text does not vary


def test_damage_after_the_state_is_found_when_resuming(db_url: str) -> None:
    populated = _bound(db_url)
    engine = populated.ledger.engine
    drop_guards(engine)
    rows = read_rows(engine)
    rows[-2] = edit_payload(rows[-2], i=99)
    write_rows(engine, rechain(rows, len(rows) - 2))
    report = verify_ledger(populated.ledger, populated.log_key.public, resume=True)
    assert not report.ok and report.first_bad_seq == transaction_start(engine, len(rows) - 2)


def test_damage_below_the_state_is_found_only_by_a_full_pass(db_url: str) -> None:
    """The documented limit: the state vouches for what it covers; verify --full reads it all."""
    populated = _bound(db_url)
    engine = populated.ledger.engine
    drop_guards(engine)
    rows = read_rows(engine)
    rows[3] = edit_payload(rows[3], tampered=True)
    write_rows(engine, rows)  # stored hash no longer matches the body
    assert verify_ledger(populated.ledger, populated.log_key.public, resume=True).ok
    full = verify_ledger(populated.ledger, populated.log_key.public)
    assert not full.ok and full.first_bad_seq == 3


def _edit_state(populated: Populated, change: Any) -> None:
    with populated.ledger.engine.begin() as connection:
        value = json.loads(connection.execute(ledger_meta.select().where(ledger_meta.c.name == "verified_state"))
                           .one().value)
        change(value)
        connection.execute(update(ledger_meta).where(ledger_meta.c.name == "verified_state")
                           .values(value=json.dumps(value)))


def test_a_forged_state_is_ignored(db_url: str) -> None:
    populated = _bound(db_url)

    def skip_ahead(value: dict[str, Any]) -> None:
        value["state"]["keys"] = {}  # e.g. hide a key registration from the verifier

    _edit_state(populated, skip_ahead)
    assert load_verified_state(populated.ledger, populated.log_key.public) is None
    report = verify_ledger(populated.ledger, populated.log_key.public, resume=True)
    assert report.ok and report.resumed_from is None  # a full pass instead


def test_truncation_below_the_state_is_reported(db_url: str) -> None:
    populated = _bound(db_url)
    state = load_verified_state(populated.ledger, populated.log_key.public)
    assert state is not None
    engine = populated.ledger.engine
    drop_guards(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM checkpoint")
    rows = read_rows(engine)[: state["size"] - 2]
    write_rows(engine, rows)
    report = verify_ledger(populated.ledger, populated.log_key.public, resume=True)
    assert not report.ok and any(p.kind == "truncated" for p in report.problems)


def test_a_state_recorded_before_classifications_were_folded_does_not_claim_to_know_them() -> None:
    # Review B3: an older verified state lacks the Art. 73 fold; resuming from it must not read that as
    # "no system is high-risk" (every serious classification after it would be named wrongly).
    from charter.ledger.auditor import Authority

    current = Authority("example.org/log")
    current.eu_high_risk = {"claims-approval": True}
    current.incident_systems = {"INC-00000001": "claims-approval"}
    resumed = Authority("example.org/log")
    resumed.resume(current.to_state())
    assert (resumed.eu_high_risk, resumed.incident_systems) == (current.eu_high_risk, current.incident_systems)
    older = {k: v for k, v in current.to_state().items() if k not in ("eu_high_risk", "incident_systems")}
    resumed.resume(older)
    assert resumed.eu_high_risk is None and resumed.incident_systems is None
    twin = resumed.copy()
    assert twin.eu_high_risk is None and twin.incident_systems is None
    payload = {"incident_id": "INC-00000001", "serious": True, "actor": "carla.rossi"}
    resumed.escalation_members = {"carla.rossi": ["risk_compliance"]}
    assert resumed._check_incident_classified(9, "carla.rossi", payload) is None
    current.escalation_members = {"carla.rossi": ["risk_compliance"]}
    current.eu_high_risk = {"claims-approval": False}
    problem = current._check_incident_classified(9, "carla.rossi", payload)
    assert problem is not None and problem.seq == 9 and "claims-approval is not high-risk" in problem.detail


def test_a_state_recorded_before_the_art_73_fold_is_not_resumed_from(db_url: str) -> None:
    """Review L1: a log-signed state that lacks the fold would leave the Art. 73 rule off from there on.

    Such a state (as an older Charter recorded it, signed by the log key) is set aside: the next pass
    reads every entry, and the state it records knows the fold, so the pass after it resumes again.
    """
    from charter.ledger.auditor import canonical_json
    from charter.ledger.verified import VERIFIED_CONTEXT

    populated = _bound(db_url)
    assert load_verified_state(populated.ledger, populated.log_key.public) is not None

    def as_an_older_version_recorded_it(value: dict[str, Any]) -> None:
        for name in ("eu_high_risk", "incident_systems"):
            value["state"]["authority"].pop(name)
        value["signature"] = populated.log_key.sign(VERIFIED_CONTEXT, canonical_json(value["state"]))

    _edit_state(populated, as_an_older_version_recorded_it)
    assert load_verified_state(populated.ledger, populated.log_key.public) is None
    report = verify_ledger(populated.ledger, populated.log_key.public, resume=True)
    assert report.ok and report.resumed_from is None  # a full pass
    bind(populated.ledger, populated.log_key.public, AS_OF, default_compiler(builtin_catalog()))
    state = load_verified_state(populated.ledger, populated.log_key.public)
    assert state is not None and state["authority"]["incident_systems"] is not None
    assert verify_ledger(populated.ledger, populated.log_key.public, resume=True).resumed_from == state["size"]


def test_a_state_recorded_before_pending_keys_is_not_resumed_from(db_url: str) -> None:
    """Review L1 (helper-33): an older Charter folds a pending key as registered; its state must not be trusted."""
    from charter.ledger.auditor import canonical_json
    from charter.ledger.verified import VERIFIED_CONTEXT

    populated = _bound(db_url)

    def as_an_older_version_recorded_it(value: dict[str, Any]) -> None:
        value["state"]["authority"].pop("pending_keys")
        value["signature"] = populated.log_key.sign(VERIFIED_CONTEXT, canonical_json(value["state"]))

    _edit_state(populated, as_an_older_version_recorded_it)
    assert load_verified_state(populated.ledger, populated.log_key.public) is None
    assert verify_ledger(populated.ledger, populated.log_key.public, resume=True).resumed_from is None
