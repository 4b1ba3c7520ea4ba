"""schemathesis against the generated OpenAPI document: no 5xx, every response matches its schema.

The real application runs in-process (ASGI) over a served ledger (tests/api/conftest.py) on SQLite
and on PostgreSQL. Each operation is called with generated valid and invalid requests, authenticated
with a committee member's full-scope token (every read is allowed, so the responses exercised are the
successful ones) and with the fraud detector owner's (whose refusals must be documented problems too).
Hypothesis is derandomized and bounded, so a CI run is reproducible and takes well under two minutes.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import Served

#: examples per operation and generation mode: enough to reach the edge values, few enough for CI
EXAMPLES = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(params=["committee", "owner"])
def persona(request: pytest.FixtureRequest) -> str:
    """Who calls: staff (sees everything) and a system owner (refused much of it)."""
    return str(request.param)


@pytest.fixture
def api_schema(served: Served) -> Any:
    """The application's own OpenAPI document, served in-process."""
    return schemathesis.openapi.from_asgi("/openapi.json", served.client.app)


def _failures(schema: Any, headers: dict[str, str]) -> list[str]:
    """Run every operation with valid and invalid generated requests; what each failing one found."""
    found: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=False,
                      suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate, Phase.shrink])
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                case.call_and_validate(headers=headers, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:  # nothing to make invalid (no parameters, no body): the positive run covers it
                continue
            except (AssertionError, BaseExceptionGroup) as exc:  # a failure group naming what it found
                found.append(f"{operation.label} ({mode.value}): {exc}")
    return found


def test_every_operation_answers_as_documented(api_schema: Any, served: Served, persona: str) -> None:
    failures = _failures(api_schema, served.headers(persona))
    assert not failures, "\n\n".join(failures)


# -- what generated requests rarely reach: successful answers about real objects ----------------------------------


def _incident_of(served: Served) -> str:
    items = served.client.get("/v1/incidents?system=fraud-detector", headers=served.headers("committee")).json()
    return str(items["items"][0]["id"])


def test_successful_answers_about_real_objects_match_their_schemas(api_schema: Any, served: Served) -> None:
    """Random ids seldom name a real incident, report or signed statement, so these requests are made by hand:
    a submitted bundle (new and duplicate), a signed transition, an issued, downloaded and verified report,
    an incident, both proofs and the incident metrics; each answer is validated against the document."""
    from charter.incidents import TRANSITION, transition_statement
    from charter.ledger import make_checkpoint

    # after the June bundle's measurement, so the report may cite it
    served.ledger.clock.now = datetime.datetime(2026, 7, 3, tzinfo=datetime.UTC)  # type: ignore[attr-defined]
    staff = served.headers("auditor")
    incident = _incident_of(served)
    old = served.ledger.size()
    acknowledge = served.statement(TRANSITION, transition_statement(incident, "acknowledge", "seen"), "maria.keller")
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/bundles", {"content": served.signed_bundle(), "headers": served.headers("owner")}),
        ("POST", "/v1/bundles", {"content": served.signed_bundle(), "headers": served.headers("owner")}),
        ("POST", f"/v1/incidents/{incident}/transitions", {"json": acknowledge, "headers": served.headers("owner")}),
        ("POST", "/v1/statements", {"json": acknowledge, "headers": served.headers("owner")}),
        ("GET", f"/v1/incidents/{incident}", {"headers": staff}),
        ("GET", "/v1/incidents?limit=2", {"headers": staff}),
        ("GET", "/v1/findings?limit=2", {"headers": staff}),
        ("GET", "/v1/ledger/entries?limit=2", {"headers": staff}),
        ("GET", "/v1/metrics/incidents", {"headers": staff}),
        ("GET", "/v1/systems/fraud-detector", {"headers": staff}),
        ("POST", "/v1/reports", {"json": {"framework": "iso-42001", "formats": ["json"]},
                                 "headers": served.headers("auditor")}),
    ]
    answers = []
    for method, path, kwargs in calls:
        response = served.client.request(method, path, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.text}"
        answers.append((method, path, response))
    make_checkpoint(served.ledger)
    new = served.ledger.size()
    seq = answers[-1][2].json()[0]["seq"]
    report = served.client.get(f"/v1/reports/{seq}/file", headers=staff)
    for method, path, kwargs in [
        ("GET", "/v1/ledger/proofs/inclusion/1", {}),
        ("GET", f"/v1/ledger/proofs/consistency?old={old}&new={new}", {}),
        ("GET", f"/v1/reports/{seq}/file", {}),
        ("POST", "/v1/reports/verify", {"content": report.content}),
    ]:
        response = served.client.request(method, path, headers=staff, **kwargs)
        assert response.status_code == 200, f"{method} {path}: {response.text}"
        answers.append((method, path, response))
    for method, path, response in answers:
        template = next(p for p in api_schema.raw_schema["paths"] if _matches(p, path.split("?")[0]))
        api_schema[template][method].validate_response(response)


def _matches(template: str, path: str) -> bool:
    import re

    return re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path) is not None


# -- regressions: what the generated requests found ---------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/statements", "/v1/reports", "/v1/incidents/INC-1/transitions"])
def test_a_body_that_is_not_utf8_is_a_422_problem_not_an_undocumented_400(served: Served, path: str) -> None:
    """schemathesis: ``POST /v1/statements -d '\\xff~\\xc3<7'`` got FastAPI's bare 400 "There was an error
    parsing the body", which no operation documents."""
    response = served.client.post(path, content=b"\xff~\xc3<7", headers=served.headers(
        "committee", **{"Content-Type": "application/json"}))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    # read by the strict parser `charter ledger accept` and /v1/bundles use: it says which byte is not UTF-8
    assert response.json()["errors"] == [{"code": "encoding", "message": "not UTF-8 (invalid start byte at byte 0)",
                                          "path": "$"}]


def test_a_json_syntax_error_is_located_at_the_body_not_at_an_array_index(served: Served) -> None:
    """FastAPI locates a JSON syntax error as ``("body", 12)``, which read as ``$[12]``: an array index."""
    response = served.client.post("/v1/reports", content=b'{"framework":', headers=served.headers(
        "auditor", **{"Content-Type": "application/json"}))
    assert response.status_code == 422, response.text
    (problem,) = response.json()["errors"]
    assert problem["code"] == "json_syntax" and problem["path"] == "$" and "column 14" in problem["message"]
