"""Request bodies: the size limit holds before anything reads or authenticates, and JSON bodies are
parsed by the same strict parser as `charter ledger accept` (duplicate keys, content types)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from charter.api.problems import PROBLEM_MEDIA_TYPE
from charter.ledger import Ledger
from charter.tokens import create_token
from tests.api.conftest import serve
from tests.unit.ledger.helpers import key_of, populate

LIMIT = 4096
#: every route whose body is JSON read by the service itself
JSON_ROUTES = ["/v1/statements", "/v1/incidents/INC-1/transitions", "/v1/incidents/INC-1/transitions/challenge",
               "/v1/incidents/INC-1/transitions/step-up", "/v1/reports", "/v1/bundles", "/v1/reports/verify"]


@pytest.fixture
def small(tmp_path: Path) -> Iterator[tuple[TestClient, Ledger, str]]:
    """A service with a 4 KiB body limit and a token for an administrator."""
    populated = populate(f"sqlite:///{tmp_path / 'ledger.db'}", bundles=0)
    ledger = populated.ledger
    token = create_token(ledger, "ana.costa", ["read", "act", "submit"],
                         ledger.clock() + datetime.timedelta(days=30), key_of("ana.costa"))[1]
    with serve(populated, tmp_path, max_body_bytes=LIMIT) as client:
        yield client, ledger, token
    ledger.engine.dispose()


def _problem(response: object, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    return body


@pytest.mark.parametrize("route", JSON_ROUTES)
def test_an_oversized_body_is_refused_before_authentication(small: tuple[TestClient, Ledger, str],
                                                            route: str) -> None:
    client, _, _ = small
    # no credentials at all: a 401 here would mean the body was accepted for reading first
    declared = _problem(client.post(route, content=b"{" + b" " * LIMIT + b"}",
                                    headers={"Content-Type": "application/json"}), 413)
    assert "limit is 4096" in str(declared["detail"])
    assert str(declared["instance"]).startswith("urn:charter:request:")  # logged and counted like any request

    def chunks() -> Iterator[bytes]:  # streamed: no Content-Length, the server must count
        for _ in range(8):
            yield b" " * 1024

    streamed = client.post(route, content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in {k.lower() for k in streamed.request.headers}
    assert "exceeds 4096" in str(_problem(streamed, 413)["detail"])


def test_a_body_under_the_limit_still_reaches_authentication(small: tuple[TestClient, Ledger, str]) -> None:
    client, _, _ = small
    _problem(client.post("/v1/statements", content=b"{}", headers={"Content-Type": "application/json"}), 401)


def test_a_duplicate_key_in_a_statement_is_refused_with_its_path(small: tuple[TestClient, Ledger, str]) -> None:
    client, ledger, token = small
    text = ('{"log": "x", "type": "incident.transition", "key_id": "k", "signature": "s", '
            '"statement": {"actor": "ana.costa", "note": "a", "note": "b"}}')
    size = ledger.size()
    body = _problem(client.post("/v1/statements", content=text, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"}), 422)
    assert body["errors"][0] == {"code": "duplicate_key", "path": "$.statement.note",  # type: ignore[index]
                                 "message": "duplicate key 'note' in a JSON object"}
    assert ledger.size() == size


@pytest.mark.parametrize(("value", "code", "path"), [
    ("NaN", "non_finite_number", "$.statement.n"),
    ("1e400", "non_finite_number", "$.statement.n"),
    ('"\\ud800"', "encoding", "$.statement.n"),
])
def test_values_json_cannot_sign_are_refused_where_they_are(small: tuple[TestClient, Ledger, str], value: str,
                                                            code: str, path: str) -> None:
    client, _, token = small
    text = ('{"log": "x", "type": "incident.transition", "key_id": "k", "signature": "s", '
            f'"statement": {{"actor": "ana.costa", "n": {value}}}}}')
    body = _problem(client.post("/v1/statements", content=text, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"}), 422)
    assert (body["errors"][0]["code"], body["errors"][0]["path"]) == (code, path)  # type: ignore[index]


def test_a_missing_field_is_named_by_its_path(small: tuple[TestClient, Ledger, str]) -> None:
    client, _, token = small
    body = _problem(client.post("/v1/reports", json={"formats": [5]},
                                headers={"Authorization": f"Bearer {token}"}), 422)
    paths = {item["path"] for item in body["errors"]}  # type: ignore[attr-defined]
    assert paths == {"$.framework", "$.formats[0]"}


@pytest.mark.parametrize("route", ["/v1/statements", "/v1/incidents/INC-1/transitions", "/v1/reports"])
def test_a_body_that_is_not_json_by_its_content_type_gets_415(small: tuple[TestClient, Ledger, str],
                                                              route: str) -> None:
    client, _, token = small
    body = _problem(client.post(route, content=json.dumps({"framework": "iso-42001"}), headers={
        "Authorization": f"Bearer {token}", "Content-Type": "text/plain"}), 415)
    assert body["errors"][0]["path"] == "header:Content-Type"  # type: ignore[index]


def test_the_openapi_document_still_describes_the_json_bodies(small: tuple[TestClient, Ledger, str]) -> None:
    client, _, _ = small
    paths = client.get("/openapi.json").json()["paths"]
    schema = paths["/v1/statements"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["required"]) == {"log", "type", "statement", "key_id", "signature"}
    assert "framework" in paths["/v1/reports"]["post"]["requestBody"]["content"]["application/json"]["schema"][
        "properties"]
    # the transitions route takes the same signed statement
    assert paths["/v1/incidents/{incident_id}/transitions"]["post"]["requestBody"] == \
        paths["/v1/statements"]["post"]["requestBody"]


def test_a_signed_statement_with_a_mistyped_field_is_a_422_with_its_path_not_a_500(
        small: tuple[TestClient, Ledger, str]) -> None:
    from charter.authority import SignedStatement
    from charter.ledger.records import format_time

    client, ledger, token = small
    statement = SignedStatement.sign(ledger.origin, "key.revoked", {"key_id": "k", "reason": None},
                                     key_of("ana.costa"), format_time(ledger.clock()))
    size = ledger.size()
    body = _problem(client.post("/v1/statements", json=statement.to_dict(),
                                headers={"Authorization": f"Bearer {token}"}), 422)
    assert body["errors"][0]["path"] == "$.statement.reason"  # type: ignore[index]
    assert ledger.size() == size


def test_activating_what_is_in_force_is_a_200_naming_the_entry_in_force_not_a_500(
        small: tuple[TestClient, Ledger, str]) -> None:
    """`charter ledger accept` says "already in force or recorded" and exits 0; the service answers alike."""
    from charter._sources import load_yaml_file
    from charter.authority import SignedStatement, escalation_statement
    from charter.cli.demo import DEMO_ROLES
    from charter.ledger.auditor import ESCALATION_ACTIVATED
    from charter.ledger.records import format_time
    from tests.unit.ledger.helpers import ESCALATION

    client, ledger, _ = small
    approver = DEMO_ROLES["policy_approver"][0]
    token = create_token(ledger, approver, ["act"], ledger.clock() + datetime.timedelta(days=30),
                         key_of(approver))[1]
    in_force = ledger.authority().escalation_seq
    document, _ = load_yaml_file(ESCALATION)
    statement = SignedStatement.sign(ledger.origin, ESCALATION_ACTIVATED, escalation_statement(document, in_force),
                                     key_of(approver), format_time(ledger.clock()))
    size = ledger.size()
    response = client.post("/v1/statements", json=statement.to_dict(), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["duplicate"] is True and result["unchanged"] is True and result["seq"] == in_force
    assert result["receipt"]["seq"] == in_force and ledger.size() == size
