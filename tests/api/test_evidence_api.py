"""Test results and events handed in through the service (`POST /v1/statements`), on SQLite and PostgreSQL:
the same rule as `charter ledger accept`, refusals are problem+json 4xx and write nothing."""

from __future__ import annotations

import datetime
from typing import Any

from charter.evidence import event_fields, evidence_index
from charter.evidence import test_result_fields as result_fields  # not collected as a test
from charter.ledger import verify_ledger
from charter.ledger.auditor import EVIDENCE_EVENT, EVIDENCE_TEST_RESULT, EVIDENCE_WITHDRAWN
from tests.api.conftest import PERSONAS, Served

#: the served ledger's clock reads 2026-07-01: what is recorded happened before
DONE = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


def _test(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"name": "robustness test", "method": "adversarial transactions (red team)",
                              "performed_at": DONE, "outcome": "passed", "summary": "Recall held above 0.9.",
                              "valid_until": DONE + 180 * DAY, "controls": ["iso-42001:A.6.2.4"],
                              "systems": ["fraud-detector"]}
    fields.update(changes)
    return result_fields(**fields)


def _event(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"kind": "internal_audit", "title": "Internal audit of the AI management system",
                              "occurred_at": DONE, "next_due": DONE + 365 * DAY, "controls": ["iso-42001:9.2.1"]}
    fields.update(changes)
    return event_fields(**fields)


def _post(served: Served, persona: str, entry_type: str, fields: dict[str, Any]) -> Any:
    statement = served.statement(entry_type, fields, PERSONAS[persona])
    return served.client.post("/v1/statements", json=statement, headers=served.headers(persona))


def test_a_test_result_and_an_event_are_recorded_once(served: Served) -> None:
    response = _post(served, "owner", EVIDENCE_TEST_RESULT, _test())  # the fraud detector's owner
    assert response.status_code == 201, response.text
    seq = response.json()["seq"]
    assert response.json()["type"] == EVIDENCE_TEST_RESULT
    response = _post(served, "approver", EVIDENCE_EVENT, _event())  # an evidence attester
    assert response.status_code == 201, response.text
    index = evidence_index(served.ledger)
    assert index.get(f"test:{seq}") is not None and index.get(f"evt:{response.json()['seq']}") is not None
    withdrawal = _post(served, "owner", EVIDENCE_WITHDRAWN, {"seq": seq, "reason": "wrong data set"})
    assert withdrawal.status_code == 201, withdrawal.text
    assert verify_ledger(served.ledger, served.populated.log_key.public, resume=False).ok


def test_the_same_signed_statement_lands_once(served: Served) -> None:
    statement = served.statement(EVIDENCE_TEST_RESULT, _test(), PERSONAS["owner"])
    first = served.client.post("/v1/statements", json=statement, headers=served.headers("owner"))
    second = served.client.post("/v1/statements", json=statement, headers=served.headers("owner"))
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["duplicate"] is True and second.json()["seq"] == first.json()["seq"]


def _refused(served: Served, persona: str, entry_type: str, fields: dict[str, Any], status: int, code: str) -> None:
    size = served.ledger.size()
    response = _post(served, persona, entry_type, fields)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith(code), response.json()
    assert served.ledger.size() == size  # nothing written


def test_refusals_are_problems_and_write_nothing(served: Served) -> None:
    # someone else's system; an organisation-level control without the evidence attester role
    _refused(served, "owner", EVIDENCE_TEST_RESULT, _test(systems=["claims-approval"]), 403, "not_authorized")
    _refused(served, "owner", EVIDENCE_EVENT, _event(systems=["fraud-detector"]), 403, "not_authorized")
    # dated after the ledger receives it
    later = datetime.datetime(2026, 8, 1, tzinfo=datetime.UTC)
    _refused(served, "owner", EVIDENCE_TEST_RESULT, _test(performed_at=later, valid_until=later + DAY), 422,
             "evidence_in_future")
    # outside the vocabulary, or citing what the catalogs do not list
    _refused(served, "owner", EVIDENCE_TEST_RESULT, {**_test(), "outcome": "mostly"}, 422, "malformed_body")
    _refused(served, "approver", EVIDENCE_EVENT, {**_event(), "kind": "party"}, 422, "malformed_body")
    _refused(served, "approver", EVIDENCE_EVENT, {**_event(), "controls": ["iso-42001:9.2"]}, 404, "unknown_control")
    _refused(served, "approver", EVIDENCE_EVENT, _event(documents=["cd" * 32]), 422, "unknown_document")
    # an auditor acts on nothing
    size = served.ledger.size()
    statement = served.statement(EVIDENCE_EVENT, _event(), PERSONAS["auditor"])
    response = served.client.post("/v1/statements", json=statement, headers=served.headers("auditor"))
    assert response.status_code == 403 and served.ledger.size() == size
