"""The authorization matrix: every persona against every endpoint, allowed or refused as `charter.access` says.

Each row names an endpoint and the personas allowed to use it; every other persona must get a 403
problem (never a 2xx, never a 5xx). The personas hold full-scope tokens, so what is tested here is
their standing in the ledger; scopes are tested separately below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from charter.access import OPERATIONS, Operation
from charter.api.problems import PROBLEM_MEDIA_TYPE
from charter.incidents import TRANSITION, transition_statement
from tests.api.conftest import PERSONAS, Served

STAFF = {"admin", "auditor", "approver", "committee"}
EVERYONE = set(PERSONAS)
REPORTERS = {"admin", "auditor", "approver"}


def _first_report_seq(served: Served) -> int:
    """The seq of a report issued by the auditor (once per served ledger)."""
    if served.report_seq is not None:
        return served.report_seq
    response = served.client.post("/v1/reports", json={"framework": "iso-42001", "formats": ["json"]},
                                  headers=served.headers("auditor"))
    assert response.status_code == 201, response.text
    served.report_seq = int(response.json()[0]["seq"])
    return served.report_seq


#: (label, allowed personas, request maker: served -> (method, path, keyword arguments))
Request = Callable[[Served], tuple[str, str, dict[str, Any]]]
MATRIX: list[tuple[str, set[str], Request]] = [
    ("whoami", EVERYONE, lambda s: ("GET", "/v1/whoami", {})),
    ("policies in force", EVERYONE, lambda s: ("GET", "/v1/policies", {})),
    ("systems (filtered to one's own)", EVERYONE, lambda s: ("GET", "/v1/systems", {})),
    ("tokens (one's own)", EVERYONE, lambda s: ("GET", "/v1/tokens", {})),
    ("own system", STAFF | {"owner"}, lambda s: ("GET", "/v1/systems/fraud-detector", {})),
    ("someone else's system", STAFF, lambda s: ("GET", "/v1/systems/claims-approval", {})),
    ("findings", STAFF | {"owner"}, lambda s: ("GET", "/v1/findings", {})),
    ("findings of own system", STAFF | {"owner"}, lambda s: ("GET", "/v1/findings?system=fraud-detector", {})),
    ("findings of another system", STAFF, lambda s: ("GET", "/v1/findings?system=claims-approval", {})),
    ("incidents", STAFF | {"owner"}, lambda s: ("GET", "/v1/incidents", {})),
    ("incidents of another system", STAFF, lambda s: ("GET", "/v1/incidents?system=customer-chatbot", {})),
    ("waivers", STAFF | {"owner"}, lambda s: ("GET", "/v1/waivers", {})),
    ("incident metrics", STAFF | {"owner"}, lambda s: ("GET", "/v1/metrics/incidents", {})),
    ("keys", STAFF, lambda s: ("GET", "/v1/keys", {})),
    ("keys awaiting approval", STAFF, lambda s: ("GET", "/v1/keys/pending", {})),
    ("ledger head", STAFF, lambda s: ("GET", "/v1/ledger/head", {})),
    ("ledger verify", STAFF, lambda s: ("GET", "/v1/ledger/verify", {})),
    ("checkpoints", STAFF, lambda s: ("GET", "/v1/ledger/checkpoints", {})),
    ("entries", STAFF, lambda s: ("GET", "/v1/ledger/entries?limit=5", {})),
    ("one entry", STAFF, lambda s: ("GET", "/v1/ledger/entries/0", {})),
    ("inclusion proof", STAFF, lambda s: ("GET", "/v1/ledger/proofs/inclusion/1", {})),
    ("reports", STAFF, lambda s: ("GET", "/v1/reports", {})),
    ("issue a report", REPORTERS,
     lambda s: ("POST", "/v1/reports", {"json": {"framework": "nist-ai-rmf", "formats": ["md"]}})),
    ("download a report", STAFF, lambda s: ("GET", f"/v1/reports/{_first_report_seq(s)}/file", {})),
    ("verify a report", REPORTERS,
     lambda s: ("POST", "/v1/reports/verify", {"content": s.client.get(
         f"/v1/reports/{_first_report_seq(s)}/file", headers=s.headers("auditor")).content})),
    ("submit the owner's bundle", {"owner"},
     lambda s: ("POST", "/v1/bundles", {"content": s.signed_bundle(),
                                        "headers": {"Content-Type": "application/json"}})),
]


def _incident_of(served: Served, system: str = "fraud-detector") -> str:
    response = served.client.get(f"/v1/incidents?system={system}", headers=served.headers("admin"))
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert items, f"the fixture opened no incident on {system}"
    return str(items[0]["id"])


@pytest.mark.parametrize("persona", sorted(PERSONAS))
def test_every_persona_against_every_endpoint(served: Served, persona: str) -> None:
    outcomes = []
    for label, allowed, make in MATRIX:
        method, path, kwargs = make(served)
        headers = {**kwargs.pop("headers", {}), **served.headers(persona)}
        response = served.client.request(method, path, headers=headers, **kwargs)
        expected = "allowed" if persona in allowed else "refused"
        got = "allowed" if response.status_code < 300 else "refused" if response.status_code == 403 else \
            f"status {response.status_code}: {response.text[:300]}"
        if expected == "refused" and response.status_code == 403:
            assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
            assert PERSONAS[persona] in response.json()["detail"] or "scope" in response.json()["detail"]
        outcomes.append((label, expected, got))
    wrong = [o for o in outcomes if o[1] != o[2]]
    assert not wrong, f"{persona}: " + "; ".join(f"{label}: expected {e}, got {g}" for label, e, g in wrong)


def test_every_operation_is_in_the_table() -> None:
    assert set(OPERATIONS) == set(Operation)


@pytest.mark.parametrize(("persona", "status"), [("owner", 201), ("admin", 403), ("auditor", 403),
                                                 ("outsider", 404)])
def test_who_may_acknowledge_an_incident(served: Served, persona: str, status: int) -> None:
    """The owner acknowledges; an administrator (separation of duties), an auditor (acts on nothing) and a
    principal without a role are refused, each with a statement they signed themselves (the last as GET
    refuses her: there is no incident she may read)."""
    incident = _incident_of(served)
    principal = PERSONAS[persona]
    body = served.statement(TRANSITION, transition_statement(incident, "acknowledge", "seen, on it"), principal)
    size = served.ledger.size()
    response = served.client.post(f"/v1/incidents/{incident}/transitions", json=body,
                                  headers=served.headers(persona))
    assert response.status_code == status, response.text
    assert served.ledger.size() > size if status == 201 else served.ledger.size() == size


def test_a_statement_signed_by_someone_else_is_refused(served: Served) -> None:
    """Holding maria's signed statement does not let the committee member hand it in as theirs."""
    incident = _incident_of(served)
    body = served.statement(TRANSITION, transition_statement(incident, "acknowledge", "seen"), "maria.keller")
    response = served.client.post("/v1/statements", json=body, headers=served.headers("committee"))
    assert response.status_code == 403
    assert response.json()["errors"][0]["path"] == "$.statement.actor"


@pytest.mark.parametrize(("scopes", "method", "path", "allowed"), [
    (("read",), "GET", "/v1/incidents", True),
    (("read",), "POST", "/v1/bundles", False),
    (("submit",), "POST", "/v1/bundles", True),
    (("submit",), "GET", "/v1/incidents", False),
    (("act",), "POST", "/v1/bundles", False),
    # whoami is open to any authenticated principal, whatever the credential's scope (the remote CLI asks it)
    (("act",), "GET", "/v1/whoami", True),
    (("submit",), "GET", "/v1/whoami", True),
    (("act",), "GET", "/v1/tokens", False),
])
def test_token_scopes_limit_what_a_token_can_do(served: Served, scopes: tuple[str, ...], method: str, path: str,
                                                allowed: bool) -> None:
    from tests.api.conftest import issue_tokens

    token = issue_tokens(served.ledger, scopes)["owner"]
    kwargs: dict[str, Any] = {"content": served.signed_bundle()} if method == "POST" else {}
    response = served.client.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
    assert (response.status_code < 300) is allowed, response.text
    if not allowed:
        assert response.status_code == 403 and "scope" in response.json()["detail"]


def test_keys_awaiting_approval_are_listed_until_enough_administrators_approved(served: Served) -> None:
    """`GET /v1/keys/pending` (and `charter keys pending`): a first key approved by one of the two
    administrators it needs is listed with its approver; once the second approved, it is registered."""
    from charter.authority import KeyRequest
    from charter.ledger import SigningKey
    from charter.ledger.auditor import KEY_ADDED
    from charter.submission import key_statement, register_key
    from tests.unit.ledger.helpers import key_of

    newcomer = SigningKey.generate("nina.berg")
    request = KeyRequest.of(newcomer, served.ledger.origin)
    body = served.statement(KEY_ADDED, key_statement(request), PERSONAS["admin"])
    response = served.client.post("/v1/statements", json=body, headers=served.headers("admin"))
    assert response.status_code == 201, response.text
    pending = served.client.get("/v1/keys/pending", headers=served.headers("auditor"))
    assert pending.status_code == 200 and pending.json() == [
        {"key_id": newcomer.key_id, "principal": "nina.berg", "approved_by": [PERSONAS["admin"]], "needed": 2}]
    keys = served.client.get("/v1/keys", headers=served.headers("auditor")).json()
    assert newcomer.key_id not in {k["key_id"] for k in keys}  # it signs nothing yet
    register_key(served.ledger, request, key_of("ben.okafor"))
    assert served.client.get("/v1/keys/pending", headers=served.headers("auditor")).json() == []
    keys = served.client.get("/v1/keys", headers=served.headers("auditor")).json()
    assert newcomer.key_id in {k["key_id"] for k in keys}
