"""`charter.client.ServiceClient` over a simulated network: retries, idempotency keys, problems as errors."""

from __future__ import annotations

import httpx
import pytest

from charter.client import ServiceClient
from charter.errors import CharterError

TOKEN = "chtr_0123456789abcdef_" + "s" * 43
URL = "http://charter.test"


def client(handler: object) -> ServiceClient:
    return ServiceClient(URL, TOKEN, transport=httpx.MockTransport(handler))  # type: ignore[arg-type]


def test_a_post_that_lost_its_connection_is_sent_once_more_with_the_same_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            raise httpx.ConnectError("connection reset", request=request)
        return httpx.Response(201, json={"seq": 7})

    assert client(handler).post_json("/v1/statements", {"a": 1}) == (201, {"seq": 7})
    assert len(seen) == 2
    assert seen[0].headers["Idempotency-Key"] == seen[1].headers["Idempotency-Key"]
    assert seen[0].headers["Authorization"] == f"Bearer {TOKEN}" and seen[1].headers["X-Request-Id"]


def test_a_problem_keeps_its_codes_messages_and_paths() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, headers={"content-type": "application/problem+json"}, json={
            "type": "tag:charter,2026:problem:forbidden", "title": "forbidden", "status": 403,
            "detail": "no", "errors": [{"code": "forbidden", "message": "administrators may not decide",
                                        "path": "$.statement.actor"}]})

    with pytest.raises(CharterError) as raised:
        client(handler).post_json("/v1/statements", {})
    [diagnostic] = raised.value.diagnostics
    assert (diagnostic.code, diagnostic.message, diagnostic.location.path) == (
        "forbidden", "administrators may not decide", "$.statement.actor")


def test_an_unauthenticated_answer_without_items_is_unauthenticated() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, text="nope")

    with pytest.raises(CharterError) as raised:
        client(handler).get("/v1/whoami")
    assert raised.value.diagnostics[0].code == "unauthenticated"


@pytest.mark.parametrize("failure", ["down", "500"])
def test_an_outage_is_service_unavailable_naming_the_url_not_the_token(failure: str) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if failure == "down":
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(500, headers={"content-type": "application/problem+json"},
                              json={"type": "tag:charter,2026:problem:internal_error", "detail": "failed"})

    with pytest.raises(CharterError) as raised:
        client(handler).get("/v1/incidents")
    [diagnostic] = raised.value.diagnostics
    assert diagnostic.code == "service_unavailable" and f"{URL}/v1/incidents" in diagnostic.message
    assert TOKEN not in str(raised.value)
    assert len(calls) == (2 if failure == "down" else 1)


def test_a_damaged_ledger_is_not_mistaken_for_an_outage() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"content-type": "application/problem+json"}, json={
            "type": "tag:charter,2026:problem:ledger_damaged", "detail": "x",
            "errors": [{"code": "ledger_damaged", "message": "the stored file no longer matches"}]})

    with pytest.raises(CharterError) as raised:
        client(handler).download("/v1/reports/3/file")
    assert raised.value.diagnostics[0].code == "ledger_damaged"


def test_listings_follow_their_cursors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        return httpx.Response(200, json={"items": [1, 2], "next_cursor": "2"} if cursor is None
                              else {"items": [3], "next_cursor": None})

    assert client(handler).get_all("/v1/incidents") == [1, 2, 3]


def test_plain_http_to_another_machine_is_refused_before_the_token_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    from charter.cli.remote import remote_client

    monkeypatch.setenv("CHARTER_URL", "http://charter.example.com:8080")
    monkeypatch.setenv("CHARTER_TOKEN", "chtr_0123456789abcdef_secret")
    with pytest.raises(CharterError) as refused:
        remote_client(None)
    assert "https" in str(refused.value) and "secret" not in str(refused.value)
    monkeypatch.setenv("CHARTER_URL", "http://127.0.0.1:8080")
    client = remote_client(None)
    assert client is not None
    client.close()
