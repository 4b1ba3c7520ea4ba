"""Test results and events: recorded under the authority rule of all typed evidence, dated no later than their
receipt, read back with statuses over time, withdrawn like documents and attestations."""

from __future__ import annotations

import datetime
import hashlib
from typing import Any

import pytest

from charter.authority import SignedStatement
from charter.errors import CharterError
from charter.evidence import (
    event_fields,
    evidence_index,
    record_document,
    record_event,
    record_test_result,
    withdraw_evidence,
)
from charter.evidence import test_result_fields as result_fields  # not collected as a test
from charter.frameworks import FrameworkSet
from charter.ledger import verify_ledger
from charter.ledger.auditor import EVIDENCE_EVENT, EVIDENCE_TEST_RESULT, evidence_shape_problem
from charter.statements import accept
from tests.unit.ledger.helpers import Populated, key_of, populate, refused

_refused = refused  # the action raises with the code and writes nothing

ATTESTER, OWNER, ADMIN, OTHER_OWNER = "anna.schmidt", "tom.berger", "ana.costa", "maria.keller"
#: before the ledger's clock (2026-01-01): what is recorded has happened
DONE = datetime.datetime(2025, 12, 1, tzinfo=datetime.UTC)
REPORT = hashlib.sha256(b"bias audit report").hexdigest()
MINUTES = hashlib.sha256(b"management review minutes").hexdigest()
#: a system-level control (the owner of a system may evidence it) and an organisation-level one
MONITORING, REVIEW = "iso-42001:A.6.2.6", "iso-42001:9.3.1"
DAY = datetime.timedelta(days=1)


@pytest.fixture
def world(db_url: str) -> Populated:
    return populate(db_url, bundles=0)


def _test(frameworks: FrameworkSet, **changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"name": "bias audit", "method": "fairlearn MetricFrame, age bands", "performed_at": DONE,
                              "outcome": "passed", "summary": "Approval parity within 0.03 across age bands.",
                              "valid_until": DONE + 180 * DAY, "controls": [MONITORING], "systems": ["claims-approval"],
                              "artifact_sha256": REPORT, "artifact_uri": "https://x.example/bias-audit.pdf",
                              "frameworks": frameworks}
    fields.update(changes)
    return result_fields(**fields)


def _event(frameworks: FrameworkSet, **changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"kind": "management_review", "title": "Management review Q4", "occurred_at": DONE,
                              "next_due": DONE + 365 * DAY, "controls": [REVIEW], "participants": [ADMIN, ATTESTER],
                              "frameworks": frameworks}
    fields.update(changes)
    return event_fields(**fields)


def test_test_results_and_events_are_recorded_and_indexed(world: Populated, frameworks: FrameworkSet) -> None:
    tested = record_test_result(world.ledger, _test(frameworks), key_of(OWNER), frameworks)
    record_document(world.ledger, {"name": "Minutes", "version": "1", "sha256": MINUTES, "uri": "https://x.example/m",
                                   "owner": ATTESTER, "review_by": "2030-01-01", "controls": [REVIEW], "systems": []},
                    key_of(ATTESTER), frameworks)
    held = record_event(world.ledger, _event(frameworks, documents=[MINUTES]), key_of(ATTESTER), frameworks)
    index = evidence_index(world.ledger)
    test, event = index.get(f"test:{tested.seq}"), index.get(f"evt:{held.seq}")
    assert test is not None and event is not None
    assert (test.kind, test.title, test.outcome, test.method, test.actor) == (
        "test_result", "bias audit", "passed", "fairlearn MetricFrame, age bands", OWNER)
    assert (test.sha256, test.uri, test.valid_from, test.valid_until) == (
        REPORT, "https://x.example/bias-audit.pdf", "2025-12-01T00:00:00.000Z", "2026-05-30T00:00:00.000Z")
    assert (event.kind, event.event_kind, event.title, event.participants, event.documents) == (
        "event", "management_review", "Management review Q4", (ADMIN, ATTESTER), (MINUTES,))
    assert index.for_control(MONITORING, "claims-approval") == [test]
    assert index.for_control(MONITORING, "fraud-detector") == []  # scoped to claims-approval
    assert index.for_control(REVIEW, "fraud-detector") == [index.items[1], event]  # organisation-wide
    assert test.to_dict()["outcome"] == "passed" and event.to_dict()["event_kind"] == "management_review"
    assert verify_ledger(world.ledger, world.log_key.public, resume=False).ok


def test_statuses_over_time_and_withdrawal(world: Populated, frameworks: FrameworkSet) -> None:
    entry = record_test_result(world.ledger, _test(frameworks, artifact_sha256=None, artifact_uri=None),
                               key_of(OWNER), frameworks)
    record_event(world.ledger, _event(frameworks), key_of(ATTESTER), frameworks)
    test, event = evidence_index(world.ledger).items
    assert test.sha256 is None and test.uri is None
    assert test.status_at(DONE - DAY) == "not_yet_valid"
    assert test.status_at(DONE) == "current"
    assert test.status_at(DONE + 180 * DAY) == "expired"  # valid_until is exclusive: re-run by then
    assert event.status_at(DONE + 364 * DAY) == "current"
    assert event.status_at(DONE + 365 * DAY) == "expired"  # the next review was due
    withdrawal = withdraw_evidence(world.ledger, f"test:{entry.seq}", "wrong data set", key_of(OWNER))
    withdrawn = evidence_index(world.ledger).get(f"test:{entry.seq}")
    assert withdrawn is not None and withdrawn.withdrawn_seq == withdrawal.seq
    assert withdrawn.status_at(datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC)) == "withdrawn"
    _refused(world, "unknown_evidence", lambda: withdraw_evidence(world.ledger, f"evt:{entry.seq}x", "no",
                                                                  key_of(ADMIN)))
    _refused(world, "unknown_evidence", lambda: withdraw_evidence(world.ledger, f"att:{entry.seq + 1}", "no",
                                                                  key_of(ADMIN)))
    withdraw_evidence(world.ledger, f"evt:{entry.seq + 1}", "held twice", key_of(ADMIN))  # an administrator may
    assert verify_ledger(world.ledger, world.log_key.public, resume=False).ok


# -- authority: the rule of all typed evidence -------------------------------------------------------


def test_an_owner_records_tests_of_system_level_controls_of_their_own_systems_only(
        world: Populated, frameworks: FrameworkSet) -> None:
    _refused(world, "not_authorized", lambda: record_test_result(
        world.ledger, _test(frameworks, systems=["fraud-detector"]), key_of(OWNER), frameworks))
    error = _refused(world, "not_authorized", lambda: record_test_result(
        world.ledger, _test(frameworks, controls=[MONITORING, "iso-42001:A.2.2"]), key_of(OWNER), frameworks))
    assert "organisation-level" in str(error) and "evidence_attester" in str(error)
    _refused(world, "not_authorized", lambda: record_test_result(  # organisation-wide
        world.ledger, _test(frameworks, systems=[]), key_of(OWNER), frameworks))
    _refused(world, "unknown_system", lambda: record_test_result(
        world.ledger, _test(frameworks, systems=["ghost"]), key_of(ATTESTER), frameworks))
    record_test_result(world.ledger, _test(frameworks), key_of(OWNER), frameworks)
    record_test_result(world.ledger, _test(frameworks, systems=["fraud-detector"]), key_of(ATTESTER), frameworks)


def test_an_organisation_level_event_needs_an_evidence_attester(world: Populated, frameworks: FrameworkSet) -> None:
    for who in (OWNER, ADMIN):
        error = _refused(world, "not_authorized", lambda w=who: record_event(  # type: ignore[misc]
            world.ledger, _event(frameworks), key_of(w), frameworks))
        assert "evidence_attester" in str(error)
    _refused(world, "not_authorized", lambda: record_event(
        world.ledger, _event(frameworks, systems=["claims-approval"]), key_of(OWNER), frameworks))
    _refused(world, "unknown_document", lambda: record_event(
        world.ledger, _event(frameworks, documents=[MINUTES]), key_of(ATTESTER), frameworks))
    record_event(world.ledger, _event(frameworks), key_of(ATTESTER), frameworks)


def test_a_time_after_the_receipt_is_refused_by_the_ledger(world: Populated, frameworks: FrameworkSet) -> None:
    later = datetime.datetime(2026, 2, 1, tzinfo=datetime.UTC)  # the ledger's clock reads January
    error = _refused(world, "evidence_in_future", lambda: record_test_result(
        world.ledger, _test(frameworks, performed_at=later, valid_until=later + DAY), key_of(OWNER), frameworks))
    assert "performed_at 2026-02-01T00:00:00.000Z" in str(error)
    _refused(world, "evidence_in_future", lambda: record_event(
        world.ledger, _event(frameworks, occurred_at=later, next_due=later + DAY), key_of(ATTESTER), frameworks))


def test_a_statement_signed_elsewhere_lands_once(world: Populated, frameworks: FrameworkSet) -> None:
    statement = SignedStatement.sign(world.ledger.origin, EVIDENCE_TEST_RESULT, _test(frameworks), key_of(OWNER),
                                     "2025-12-02T00:00:00.000Z")
    entry = accept(world.ledger, statement)
    assert entry is not None and entry.type == EVIDENCE_TEST_RESULT
    assert accept(world.ledger, statement) is None
    forged = SignedStatement(statement.log, statement.type, {**statement.statement, "outcome": "failed"},
                             statement.key_id, statement.signature)
    _refused(world, "bad_signature", lambda: accept(world.ledger, forged))
    bogus = SignedStatement.sign(world.ledger.origin, EVIDENCE_EVENT, {**_event(frameworks), "kind": "party"},
                                 key_of(ATTESTER), "2025-12-02T00:00:00.000Z")
    _refused(world, "malformed_body", lambda: accept(world.ledger, bogus))


# -- hostile input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "code"), [
    ({"outcome": "mostly"}, "evidence_field"),
    ({"name": " "}, "evidence_field"),
    ({"summary": "x" * 30_000}, "evidence_too_long"),
    ({"valid_until": DONE}, "evidence_period"),
    ({"valid_until": DONE + 1097 * DAY}, "evidence_period"),  # at most three years
    ({"performed_at": datetime.datetime(2025, 12, 1)}, "usage"),  # no timezone
    ({"artifact_uri": None}, "evidence_field"),  # a digest without a place
    ({"artifact_sha256": "abc"}, "bad_digest"),
    ({"controls": ["iso-42001:A.99"]}, "unknown_control"),
    ({"controls": []}, "evidence_controls"),
])
def test_bad_test_results_are_refused_before_signing(frameworks: FrameworkSet, changes: dict[str, Any],
                                                     code: str) -> None:
    with pytest.raises(CharterError) as info:
        _test(frameworks, **changes)
    assert code in {d.code for d in info.value.diagnostics}, str(info.value)[:500]
    assert all(d.location.path for d in info.value.diagnostics)


@pytest.mark.parametrize(("changes", "code"), [
    ({"kind": "party"}, "evidence_field"),
    ({"title": ""}, "evidence_field"),
    ({"next_due": DONE - DAY}, "evidence_period"),
    ({"next_due": DONE + 1100 * DAY}, "evidence_period"),
    ({"participants": ["../etc"]}, "evidence_field"),
    ({"documents": ["not-a-digest"]}, "bad_digest"),
])
def test_bad_events_are_refused_before_signing(frameworks: FrameworkSet, changes: dict[str, Any], code: str) -> None:
    with pytest.raises(CharterError) as info:
        _event(frameworks, **changes)
    assert code in {d.code for d in info.value.diagnostics}, str(info.value)[:500]


def test_a_time_in_the_future_is_refused_before_signing(frameworks: FrameworkSet) -> None:
    with pytest.raises(CharterError) as info:
        _test(frameworks, now=DONE - DAY)
    assert [d.code for d in info.value.diagnostics] == ["evidence_in_future"]
    assert _event(frameworks, now=DONE)["occurred_at"] == "2025-12-01T00:00:00.000Z"  # now itself is allowed


@pytest.mark.parametrize(("entry_type", "changes", "needle"), [
    (EVIDENCE_TEST_RESULT, {"outcome": "passed-ish"}, "outcome"),
    (EVIDENCE_TEST_RESULT, {"artifact": {"sha256": "ab" * 32}}, "artifact"),
    (EVIDENCE_TEST_RESULT, {"artifact": {"sha256": "AB" * 32, "uri": "u"}}, "artifact.sha256"),
    (EVIDENCE_TEST_RESULT, {"performed_at": "2025-12-01"}, "RFC 3339"),
    (EVIDENCE_TEST_RESULT, {"valid_until": "2029-01-01T00:00:00.000Z"}, "at most 1096 days"),
    (EVIDENCE_EVENT, {"kind": "party"}, "kind"),
    (EVIDENCE_EVENT, {"participants": "everyone"}, "participants"),
    (EVIDENCE_EVENT, {"next_due": "2025-11-01T00:00:00.000Z"}, "not after"),
    (EVIDENCE_EVENT, {"extra": 1}, "fields"),
])
def test_the_shape_rule_names_what_is_wrong(frameworks: FrameworkSet, entry_type: str, changes: dict[str, Any],
                                            needle: str) -> None:
    fields = _test(frameworks) if entry_type == EVIDENCE_TEST_RESULT else _event(frameworks)
    assert evidence_shape_problem(entry_type, fields) is None
    problem = evidence_shape_problem(entry_type, {**fields, **changes})
    assert problem is not None and needle in problem, problem
