"""A correctly signed statement with a field of the wrong JSON type (or free text too long) is refused
with the field's path, by the library `charter ledger accept` and ``POST /v1/statements`` share, and
by the CLI with exit 2 instead of a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from charter.authority import SignedStatement
from charter.incidents import CLASSIFIED, REPORT_FILED, TRANSITION
from charter.ledger.auditor import KEY_REVOKED, TOKEN_REVOKED
from charter.ledger.records import format_time
from charter.statements import accept
from charter.validation import MAX_TEXT
from tests.governed import ORIGIN, governed_cli, governed_ledger, ledger_size
from tests.unit.ledger.helpers import Populated, key_of, populate, refused

INCIDENT = "INC-00000001"
TRANSITION_OK = {"incident_id": INCIDENT, "action": "acknowledge", "note": "seen"}
CLASSIFIED_OK = {"incident_id": INCIDENT, "serious": False, "note": "not serious"}
FILED_OK = {"incident_id": INCIDENT, "kind": "initial", "authority": "BaFin", "reference": "R-1",
            "filed_at": "2026-06-07T00:00:00Z"}

#: (entry type, fields, the path refused)
MISTYPED = [
    (TRANSITION, {**TRANSITION_OK, "note": 5}, "$.statement.note"),
    (TRANSITION, {**TRANSITION_OK, "note": "x" * 30_000}, "$.statement.note"),
    (TRANSITION, {**TRANSITION_OK, "action": ["acknowledge"]}, "$.statement.action"),
    (TRANSITION, {**TRANSITION_OK, "decision": "accept_risk"}, "$.statement.decision"),
    (TRANSITION, {**TRANSITION_OK, "decision": [5]}, "$.statement.decision"),
    (TRANSITION, {**TRANSITION_OK, "decision": ["accept_risk"], "expires": 30}, "$.statement.expires"),
    (CLASSIFIED, {**CLASSIFIED_OK, "note": 5}, "$.statement.note"),
    (CLASSIFIED, {**CLASSIFIED_OK, "serious": "no"}, "$.statement.serious"),
    (CLASSIFIED, {**CLASSIFIED_OK, "serious": True, "ground": "c", "aware_at": 1780000000},
     "$.statement.aware_at"),
    (CLASSIFIED, {**CLASSIFIED_OK, "serious": True, "ground": "c", "widespread": 1,
                  "aware_at": "2026-06-06T15:00:00Z"}, "$.statement.widespread"),
    (REPORT_FILED, {**FILED_OK, "authority": 5}, "$.statement.authority"),
    (REPORT_FILED, {**FILED_OK, "reference": ["R-1"]}, "$.statement.reference"),
    (REPORT_FILED, {**FILED_OK, "filed_at": 5}, "$.statement.filed_at"),
    (KEY_REVOKED, {"key_id": "k", "reason": None}, "$.statement.reason"),
    (TOKEN_REVOKED, {"token_id": "t", "reason": None}, "$.statement.reason"),
]


@pytest.fixture
def populated(tmp_path: Path) -> Populated:
    return populate(f"sqlite:///{tmp_path / 'ledger.db'}", bundles=0)


def _signed(populated: Populated, entry_type: str, fields: dict[str, Any],
            signer: str = "ana.costa") -> SignedStatement:
    return SignedStatement.sign(populated.ledger.origin, entry_type, fields, key_of(signer),
                                format_time(populated.ledger.clock()))


@pytest.mark.parametrize(("entry_type", "fields", "path"), MISTYPED)
def test_a_mistyped_field_is_refused_with_its_path(populated: Populated, entry_type: str, fields: dict[str, Any],
                                                    path: str) -> None:
    error = refused(populated, "invalid_field", lambda: accept(populated.ledger, _signed(populated, entry_type,
                                                                                         fields)))
    assert error.diagnostics[0].location.path == path


def test_a_note_as_long_as_the_limit_is_read_and_one_past_it_is_not(populated: Populated) -> None:
    # at the limit the note passes the field check and is refused for what it is about (no such incident)
    at_limit = _signed(populated, TRANSITION, {**TRANSITION_OK, "note": "x" * MAX_TEXT})
    refused(populated, "unknown_incident", lambda: accept(populated.ledger, at_limit))
    past = _signed(populated, TRANSITION, {**TRANSITION_OK, "note": "x" * (MAX_TEXT + 1)})
    assert "at most 4,000" in str(refused(populated, "invalid_field", lambda: accept(populated.ledger, past)))


def test_the_cli_refuses_a_mistyped_statement_with_exit_2_not_a_traceback(tmp_path: Path) -> None:
    governed_ledger(tmp_path)
    statement = SignedStatement.sign(ORIGIN, TRANSITION, {**TRANSITION_OK, "note": 5}, key_of("tom.berger"),
                                     "2026-06-01T00:00:00Z")
    (tmp_path / "bad.json").write_text(json.dumps([statement.to_dict()]), encoding="utf-8")
    before = ledger_size(tmp_path)
    code, out, err = governed_cli(tmp_path, "ledger", "accept", "bad.json")
    assert code == 2 and "$.statement.note" in err and "must be a string" in err, out + err
    assert "Traceback" not in err and ledger_size(tmp_path) == before
