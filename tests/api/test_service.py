"""The service end to end: authentication, submission with receipts, who-asked records, idempotency,
pagination, problem+json, health and metrics, and `verify` over what the service wrote."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from charter.api.problems import PROBLEM_MEDIA_TYPE
from charter.authority import SignedStatement
from charter.ledger import verify_ledger
from charter.ledger.auditor import check_receipt
from charter.ledger.records import format_time
from charter.submission import BUNDLE
from charter.tokens import revoke_token
from tests.api.conftest import PERSONAS, Served, issue_tokens
from tests.conftest import REPO
from tests.unit.ledger.helpers import key_of, populate


def _problem(response: object, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    assert body["status"] == status and str(body["type"]).startswith("tag:charter,2026:problem:")
    return body


@pytest.mark.parametrize(("header", "why"), [
    (None, "no credential"),
    ("Basic dXNlcjpwYXNz", "Bearer"),
    ("Bearer ", "Bearer"),
    ("Bearer chtr_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "unknown"),
    ("Bearer chtr_garbage", "malformed"),
    ("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbmEuY29zdGEifQ.", "OpenID Connect"),
])
def test_unauthenticated_requests_get_401_problems(served: Served, header: str | None, why: str) -> None:
    headers = {"Authorization": header} if header is not None else {}
    body = _problem(served.client.get("/v1/whoami", headers=headers), 401)
    assert why.lower() in str(body["detail"]).lower()


def test_a_revoked_or_expired_token_no_longer_authenticates(served: Served) -> None:
    token = served.tokens["owner"]
    assert served.client.get("/v1/whoami", headers=served.headers("owner")).status_code == 200
    token_id = token.split("_")[1]
    revoke_token(served.ledger, token_id, "laptop lost", key_of(PERSONAS["owner"]))
    _problem(served.client.get("/v1/whoami", headers=served.headers("owner")), 401)
    short = issue_tokens(served.ledger)["committee"]
    served.populated.ledger.clock.now += datetime.timedelta(days=91)  # type: ignore[attr-defined]
    _problem(served.client.get("/v1/whoami", headers={"Authorization": f"Bearer {short}"}), 401)


def test_whoami_says_what_the_ledger_makes_the_caller(served: Served) -> None:
    me = served.client.get("/v1/whoami", headers=served.headers("owner")).json()
    assert me["principal"] == "maria.keller" and me["method"] == "token"
    assert me["owns"] == ["fraud-detector"] and "system_owner" in me["roles"]
    auditor = served.client.get("/v1/whoami", headers=served.headers("auditor")).json()
    assert auditor["roles"] == ["auditor"]


def test_a_pipeline_submits_a_bundle_and_the_entry_records_who_asked(served: Served) -> None:
    response = served.client.post("/v1/bundles", content=served.signed_bundle(),
                                  headers=served.headers("owner", **{"X-Request-Id": "ci-run-42"}))
    assert response.status_code == 201, response.text
    assert response.headers["X-Request-Id"] == "ci-run-42"
    result = response.json()
    receipt = result["receipt"]
    entry = served.ledger.entry(receipt["seq"])
    assert entry is not None and entry.type == BUNDLE
    assert check_receipt(receipt, served.ledger.origin, served.ledger.log_key.public)  # type: ignore[union-attr]
    via = entry.document()["via"]
    assert via == {"principal": "maria.keller", "method": "token", "request_id": "ci-run-42",
                   "token_id": served.tokens["owner"].split("_")[1]}
    # the findings and the incidents the bundle opened came back with it, with their deadlines
    assert result["findings"] and all(f["system_id"] == "fraud-detector" for f in result["findings"])
    for notice in result["incidents"]:
        assert notice["due_at"] is None or notice["due_at"].endswith("Z")
    again = served.client.post("/v1/bundles", content=served.signed_bundle(), headers=served.headers("owner"))
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["receipt"] == receipt
    report = verify_ledger(served.ledger, served.ledger.log_key.public)  # type: ignore[union-attr]
    assert report.ok, [str(p) for p in report.problems]


def test_a_bundle_signed_by_someone_else_is_refused_even_for_the_owner(served: Served) -> None:
    size = served.ledger.size()
    body = _problem(served.client.post("/v1/bundles", content=served.signed_bundle(signer="tom.berger"),
                                       headers=served.headers("owner")), 403)
    assert "maria.keller" in json.dumps(body)
    assert served.ledger.size() == size


@pytest.mark.parametrize(("content", "code", "path"), [
    (b"{", "json_syntax", None),
    (b"[]", "bundle_schema", "$"),
    (b'{"system_id": "fraud-detector"}', "bundle_schema", "$"),
])
def test_bad_bundles_get_422_with_the_json_path(served: Served, content: bytes, code: str, path: str | None) -> None:
    size = served.ledger.size()
    body = _problem(served.client.post("/v1/bundles", content=content, headers=served.headers("owner")), 422)
    errors = body["errors"]
    assert isinstance(errors, list) and errors[0]["code"] == code
    if path is not None:
        assert str(errors[0]["path"]).startswith(path)
    assert served.ledger.size() == size


def test_an_oversized_body_is_refused_before_it_is_read(served: Served) -> None:
    body = _problem(served.client.post("/v1/bundles", content=b" " * (9 * 1024 * 1024),
                                       headers=served.headers("owner")), 413)
    assert "limit" in str(body["detail"])


def test_idempotency_key_replays_the_first_reply_and_refuses_reuse(served: Served) -> None:
    headers = served.headers("owner", **{"Idempotency-Key": "submit-2026-06"})
    first = served.client.post("/v1/bundles", content=served.signed_bundle(), headers=headers)
    assert first.status_code == 201
    size = served.ledger.size()
    second = served.client.post("/v1/bundles", content=served.signed_bundle(), headers=headers)
    assert second.status_code == 201 and second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json() and served.ledger.size() == size
    other = served.signed_bundle(REPO / "evidence" / "fraud-detector-2026-05.json")
    body = _problem(served.client.post("/v1/bundles", content=other, headers=headers), 422)
    assert body["errors"][0]["path"] == "header:Idempotency-Key"  # type: ignore[index]
    # keys are per principal: the same key from another caller is a new request
    assert served.client.post("/v1/reports/verify", content=b"x",
                              headers=served.headers("auditor", **{"Idempotency-Key": "submit-2026-06"})
                              ).status_code == 200


def test_findings_and_entries_page_by_seq(served: Served) -> None:
    seen: list[int] = []
    cursor = None
    while True:
        url = "/v1/findings?system=fraud-detector&limit=7" + (f"&cursor={cursor}" if cursor else "")
        page = served.client.get(url, headers=served.headers("owner")).json()
        seen += [item["seq"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(set(seen)) and len(seen) > 7
    everything = served.client.get("/v1/findings?system=fraud-detector&limit=500", headers=served.headers("owner"))
    assert [item["seq"] for item in everything.json()["items"]] == seen
    breaches = served.client.get("/v1/findings?status=breach&limit=500", headers=served.headers("committee")).json()
    assert breaches["items"] and all(item["status"] == "breach" for item in breaches["items"])
    entries = served.client.get("/v1/ledger/entries?limit=3&cursor=1", headers=served.headers("auditor")).json()
    assert [item["seq"] for item in entries["items"]] == [2, 3, 4] and entries["next_cursor"] == "4"


def test_an_owner_reads_only_their_systems(served: Served) -> None:
    systems = served.client.get("/v1/systems", headers=served.headers("owner")).json()
    assert [s["id"] for s in systems] == ["fraud-detector"]
    incidents = served.client.get("/v1/incidents", headers=served.headers("owner")).json()["items"]
    assert incidents and {i["system"] for i in incidents} == {"fraud-detector"}


def test_query_validation_names_the_parameter(served: Served) -> None:
    body = _problem(served.client.get("/v1/findings?limit=0", headers=served.headers("committee")), 422)
    assert body["errors"][0]["path"] == "query:limit"  # type: ignore[index]
    body = _problem(served.client.get("/v1/findings?since=yesterday", headers=served.headers("committee")), 422)
    assert body["errors"][0]["path"] == "query:since"  # type: ignore[index]


def test_health_readiness_and_metrics(served: Served) -> None:
    assert served.client.get("/healthz").json() == {"status": "ok"}
    ready = served.client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["ledger_size"] == served.ledger.size()
    served.client.get("/v1/whoami", headers=served.headers("owner"))
    text = served.client.get("/metrics").text
    assert 'charter_http_requests_total{method="GET",route="/v1/whoami",status="200"}' in text
    assert "charter_open_incidents" in text and "charter_ledger_size" in text


def test_the_openapi_document_is_3_1_and_lists_the_routes(served: Served) -> None:
    document = served.client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    for path in ("/v1/bundles", "/v1/statements", "/v1/incidents/{incident_id}/transitions", "/v1/findings",
                 "/v1/ledger/proofs/inclusion/{seq}", "/v1/reports/verify"):
        assert path in document["paths"]


def test_a_database_that_refuses_connections_is_a_503_to_retry_not_a_500(served: Served,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The load test found it: with PostgreSQL's connection slots exhausted, the driver's OperationalError
    escaped as a 500 "internal error", although nothing was appended and a retry may succeed."""
    from sqlalchemy.exc import OperationalError

    def refuse(*args: object, **kwargs: object) -> int:
        raise OperationalError("connect", {}, Exception("FATAL: sorry, too many clients already"))

    monkeypatch.setattr(served.ledger, "size", refuse)
    response = served.client.post("/v1/bundles", content=served.signed_bundle(), headers=served.headers("owner"))
    body = _problem(response, 503)
    assert body["type"] == "tag:charter,2026:problem:database_unavailable"
    assert response.headers["Retry-After"] == "1" and "too many clients" not in response.text


def test_a_serious_classification_through_the_service_pages_the_reporting_role_at_once(
        db_url: str, tmp_path: Path) -> None:
    """As `charter incidents classify` does: legal is paged when the classification lands, not at the next tick."""
    from charter.incidents import CLASSIFIED, classification_statement
    from charter.tokens import create_token
    from tests.api.conftest import serve
    from tests.unit.test_incidents import Clock
    from tests.unit.test_incidents_art73 import LEGAL, _validated_claims

    populated = populate(db_url, bundles=0)
    clock = Clock()
    populated.ledger.clock = clock
    incident = _validated_claims((populated, clock))
    token = create_token(populated.ledger, "carla.rossi", ["act", "read"], clock.now + datetime.timedelta(days=30),
                         key_of("carla.rossi"))[1]
    statement = SignedStatement.sign(populated.ledger.origin, CLASSIFIED, classification_statement(
        incident.id, serious=True, note="unlawful age disparity", ground="c", aware_at="2026-06-06T15:00:00+00:00"),
        key_of("carla.rossi"), format_time(clock.now))
    log = tmp_path / "notifications.log"
    with serve(populated, tmp_path, notifications_log=log) as client:
        response = client.post("/v1/statements", json=statement.to_dict(),
                               headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 201, response.text
        assert any(LEGAL in line for line in response.json()["paged"])
        me = client.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"}).json()
        assert me["origin"] == populated.ledger.origin
    assert LEGAL in log.read_text(encoding="utf-8")


@pytest.mark.parametrize("query", ["since=0001-01-01T00:00:00%2B14:00", "until=9999-12-31T23:59:59-14:00"])
def test_times_at_the_edge_of_the_calendar_are_refused_not_crashed(served: Served, query: str) -> None:
    body = _problem(served.client.get(f"/v1/findings?{query}", headers=served.headers("committee")), 422)
    assert str(body["errors"][0]["path"]).startswith("query:")  # type: ignore[index]


@pytest.mark.parametrize("value", ["NaN", "1" + "0" * 30])
def test_a_statement_that_is_not_canonical_json_is_refused_with_its_path(served: Served, value: str) -> None:
    text = ('{"log": "x", "type": "incident.transition", "key_id": "k", "signature": "s", '
            f'"statement": {{"actor": "maria.keller", "signed_at": "2026-07-01T00:00:00Z", "n": {value}}}}}')
    size = served.ledger.size()
    response = served.client.post("/v1/statements", content=text, headers={
        **served.headers("owner"), "Content-Type": "application/json"})
    assert 400 <= response.status_code < 500 and response.status_code != 401, response.text
    assert served.ledger.size() == size


def test_an_incident_one_may_not_read_looks_like_one_that_does_not_exist(served: Served) -> None:
    incident = served.client.get("/v1/incidents?system=fraud-detector",
                                 headers=served.headers("committee")).json()["items"][0]["id"]
    hidden = _problem(served.client.get(f"/v1/incidents/{incident}", headers=served.headers("outsider")), 404)
    missing = _problem(served.client.get("/v1/incidents/INC-00000000", headers=served.headers("outsider")), 404)
    assert "fraud-detector" not in json.dumps(hidden) and hidden["type"] == missing["type"]



def test_a_transition_of_an_incident_one_may_not_read_is_refused_as_if_it_did_not_exist(served: Served) -> None:
    """The transition route answered 409 with the incident's state where GET answers 404."""
    from charter.incidents import TRANSITION, transition_statement
    from charter.tokens import create_token

    incident = served.client.get("/v1/incidents?system=fraud-detector",
                                 headers=served.headers("committee")).json()["items"][0]["id"]
    # the claims model's owner: a registered key and the first-line role, but not fraud-detector's owner
    token = create_token(served.ledger, "tom.berger", ["act", "read"],
                         served.ledger.clock() + datetime.timedelta(days=30), key_of(PERSONAS["admin"]))[1]
    headers = {"Authorization": f"Bearer {token}"}
    assert served.client.get(f"/v1/incidents/{incident}", headers=headers).status_code == 404
    size = served.ledger.size()
    bodies = []
    for target in (incident, "INC-00000000"):
        statement = served.statement(TRANSITION, transition_statement(target, "close", "done"), "tom.berger")
        for path in (f"/v1/incidents/{target}/transitions", "/v1/statements"):
            bodies.append(_problem(served.client.post(path, json=statement, headers=headers), 404))
    assert {str(body["type"]) for body in bodies} == {"tag:charter,2026:problem:unknown_incident"}
    assert "fraud-detector" not in json.dumps(bodies[:2]) and "state" not in json.dumps(bodies[:2])
    assert served.ledger.size() == size

def test_a_claim_left_without_reply_is_freed_and_a_conflict_is_not_kept(served: Served) -> None:
    from sqlalchemy import insert

    from charter.api.idempotency import STALE_CLAIM, fingerprint
    from charter.ledger.schema import api_request

    body = served.signed_bundle()
    old = format_time(served.ledger.clock() - STALE_CLAIM - datetime.timedelta(minutes=1))
    with served.ledger.engine.begin() as connection:  # a worker claimed the key, then died
        connection.execute(insert(api_request).values(principal="maria.keller", idempotency_key="died",
                                                      fingerprint=fingerprint("POST", "/v1/bundles", body),
                                                      status=None, response=None, created_at=old))
    response = served.client.post("/v1/bundles", content=body,
                                  headers=served.headers("owner", **{"Idempotency-Key": "died"}))
    assert response.status_code == 201, response.text
