"""Step-up sign-in as the proof of a transition: live through the service, and offline in `charter verify`.

A real identity provider's part is played with real keys (RSA, P-256, Ed25519) and real signed ID
tokens; the provider's key set is handed to the verifier directly (no network), as the archived
set is to the offline check.
"""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from fastapi.testclient import TestClient

from charter.api.oidc import OIDCSettings, OIDCVerifier
from charter.authority import (
    Administrator,
    GovernanceConfig,
    IdentityProvider,
    StepUpStatement,
    nonce_of,
    update_governance,
)
from charter.cli.demo import DEMO_ADMINS, DEMO_ROLES
from charter.incidents import transition, transition_statement
from charter.ledger import make_checkpoint, verify_ledger
from charter.ledger.auditor import step_up_problem
from charter.ledger.records import format_time
from charter.ledger.store import Ledger
from tests.api.conftest import serve
from tests.unit.ledger.helpers import Populated, key_of, populate, unchecked

ISSUER = "https://idp.example"
AUDIENCE = "charter"
PROVIDER = {"issuer": ISSUER, "audience": AUDIENCE, "principal_claim": "preferred_username", "leeway_seconds": 30}


def _jwk(public: Any, kid: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(jwt.algorithms.get_default_algorithms()[
        "RS256" if isinstance(public, rsa.RSAPublicKey) else "ES256" if isinstance(public, ec.EllipticCurvePublicKey)
        else "EdDSA"].to_jwk(public))
    return {**document, "kid": kid, "use": "sig"}


@dataclass
class Provider:
    """An identity provider: keys by algorithm, and its key set."""

    keys: dict[str, Any]

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [_jwk(key.public_key(), alg) for alg, key in self.keys.items()]}

    def id_token(self, principal: str, *, nonce: str | None, alg: str = "RS256", at: datetime.datetime | None = None,
                 **changes: Any) -> str:
        moment = int((at or datetime.datetime.now(datetime.UTC)).timestamp())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": f"sub-{principal}", "preferred_username": principal,
                  "iat": moment - 5, "exp": moment + 600, **({"nonce": nonce} if nonce is not None else {}),
                  **changes}
        return jwt.encode(claims, self.keys[alg], algorithm=alg, headers={"kid": alg})


@pytest.fixture(scope="module")
def provider() -> Provider:
    return Provider({"RS256": rsa.generate_private_key(65537, 2048), "ES256": ec.generate_private_key(ec.SECP256R1()),
                     "EdDSA": ed25519.Ed25519PrivateKey.generate()})


def _trust(populated: Populated, provider: Provider) -> None:
    admins = [Administrator(principal=n, public_key=base64.b64encode(key_of(n).public).decode()) for n in DEMO_ADMINS]
    config = GovernanceConfig(administrators=admins, threshold=2, roles=DEMO_ROLES,
                              identity_providers=[IdentityProvider(**PROVIDER, jwks=provider.jwks)])
    update_governance(populated.ledger, config, [key_of(DEMO_ADMINS[0]), key_of(DEMO_ADMINS[1])])


@pytest.fixture
def stepped(db_url: str, tmp_path: Path, provider: Provider) -> Iterator[tuple[Populated, TestClient]]:
    populated = populate(db_url, bundles=5)
    # ID tokens are checked live against the wall clock: the ledger's clock runs at wall-clock time here
    populated.ledger.clock.now = datetime.datetime.now(datetime.UTC)  # type: ignore
    _trust(populated, provider)
    make_checkpoint(populated.ledger)
    settings = OIDCSettings(issuer=ISSUER, audience=AUDIENCE, jwks_uri=f"{ISSUER}/jwks",
                            principal_claim="preferred_username")
    verifier = OIDCVerifier(settings, fetch_json=lambda url: provider.jwks)
    with serve(populated, tmp_path, oidc=verifier) as client:
        yield populated, client


def _challenge(client: TestClient, incident: str, bearer: dict[str, str], **transition: Any
               ) -> tuple[dict[str, Any], str]:
    """The statement and nonce the service gives for a transition to be proven by a step-up sign-in."""
    response = client.post(f"/v1/incidents/{incident}/transitions/challenge", json=transition, headers=bearer)
    assert response.status_code == 200, response.text
    return response.json()["statement"], response.json()["nonce"]


def _incident(ledger: Ledger) -> str:
    from charter.incidents import load_book

    return next(i.id for i in load_book(ledger).incidents.values() if i.system_id == "fraud-detector")


def test_a_step_up_sign_in_proves_a_transition_live_and_offline(stepped: tuple[Populated, TestClient],
                                                                 provider: Provider) -> None:
    populated, client = stepped
    incident = _incident(populated.ledger)
    bearer = {"Authorization": f"Bearer {provider.id_token('maria.keller', nonce=None)}"}
    statement, nonce = _challenge(client, incident, bearer, action="acknowledge", note="on it")
    assert statement["actor"] == "maria.keller" and nonce == nonce_of(populated.ledger.origin, statement)
    proof = provider.id_token("maria.keller", nonce=nonce, alg="ES256")
    response = client.post(f"/v1/incidents/{incident}/transitions/step-up",
                           json={"statement": statement, "id_token": proof}, headers=bearer)
    assert response.status_code == 201, response.text
    entry = populated.ledger.entry(response.json()["seq"])
    assert entry is not None and entry.key_id is None
    assert entry.payload["proof"] == {"method": "oidc", "id_token": proof}
    assert entry.via == {"principal": "maria.keller", "method": "oidc", "request_id": entry.via["request_id"],
                         "issuer": ISSUER, "subject": "sub-maria.keller"}
    report = verify_ledger(populated.ledger, populated.log_key.public)
    assert report.ok, [str(p) for p in report.problems]


def test_the_service_refuses_a_sign_in_made_for_another_change_or_person(stepped: tuple[Populated, TestClient],
                                                                        provider: Provider) -> None:
    populated, client = stepped
    incident = _incident(populated.ledger)
    bearer = {"Authorization": f"Bearer {provider.id_token('maria.keller', nonce=None)}"}
    statement, _ = _challenge(client, incident, bearer, action="acknowledge", note="on it")
    size = populated.ledger.size()
    wrong_nonce = provider.id_token("maria.keller", nonce="0" * 64)
    response = client.post(f"/v1/incidents/{incident}/transitions/step-up",
                           json={"statement": statement, "id_token": wrong_nonce}, headers=bearer)
    assert response.status_code == 401 and "nonce" in response.json()["detail"]
    someone_else = provider.id_token("tom.berger", nonce=nonce_of(populated.ledger.origin, statement))
    response = client.post(f"/v1/incidents/{incident}/transitions/step-up",
                           json={"statement": statement, "id_token": someone_else}, headers=bearer)
    assert response.status_code == 403
    assert populated.ledger.size() == size


def _forge(populated: Populated, provider: Provider, **token_changes: Any) -> None:
    """Append, as an insider skipping the checks, an acknowledgement with a step-up proof built from `token_changes`."""
    ledger = populated.ledger
    incident = _incident(ledger)
    statement = {**transition_statement(incident, "acknowledge", "forged"), "actor": "maria.keller",
                 "signed_at": format_time(ledger.clock())}
    nonce = token_changes.pop("nonce", nonce_of(ledger.origin, statement))
    alg = token_changes.pop("alg", "RS256")
    signing = token_changes.pop("signing", provider)
    principal = token_changes.pop("principal", "maria.keller")
    token = token_changes.pop("token", None) or signing.id_token(principal, nonce=nonce, alg=alg,
                                                                 at=ledger.clock.now, **token_changes)  # type: ignore
    signer = StepUpStatement.of(ledger.origin, statement, token)
    with unchecked():
        transition(ledger, incident, "acknowledge", signer, "forged")


@pytest.mark.parametrize(("changes", "why"), [
    ({"principal": "tom.berger"}, "not the actor"),
    ({"nonce": "f" * 64}, "nonce"),
    ({"aud": "another-api"}, "audience"),
    ({"iss": "https://evil.example"}, "issuer"),
    ({"exp": 1_000_000_000}, "expired"),
    ({"signing": "attacker"}, "pinned"),  # a key set of the appender's own: the configuration pins the provider's
    ({"exp": 10**400}, "numbers"),
    ({"token": "eyJhbGciOiJub25lIiwia2lkIjoiUlMyNTYifQ.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlIn0."}, "algorithm"),
])
def test_verify_names_a_forged_step_up_proof(db_url: str, provider: Provider, changes: dict[str, Any],
                                            why: str) -> None:
    populated = populate(db_url, bundles=5)
    _trust(populated, provider)
    if changes.get("signing") == "attacker":
        changes["signing"] = Provider({"RS256": rsa.generate_private_key(65537, 2048)})
    _forge(populated, provider, **changes)
    report = verify_ledger(populated.ledger, populated.log_key.public)
    assert not report.ok
    assert any(p.kind == "bad_proof" and why in p.detail for p in report.problems), [str(p) for p in report.problems]


def test_a_provider_not_in_the_governance_configuration_proves_nothing(db_url: str, provider: Provider) -> None:
    populated = populate(db_url, bundles=5)  # no identity provider configured
    ledger = populated.ledger
    incident = _incident(ledger)
    statement = {**transition_statement(incident, "acknowledge", "on it"), "actor": "maria.keller",
                 "signed_at": format_time(ledger.clock())}
    token = provider.id_token("maria.keller", nonce=nonce_of(ledger.origin, statement), at=ledger.clock.now)  # type: ignore
    size = ledger.size()
    from charter.errors import CharterError

    with pytest.raises(CharterError) as refused:
        transition(ledger, incident, "acknowledge", StepUpStatement.of(ledger.origin, statement, token), "on it")
    assert refused.value.code == "bad_proof" and "not an identity provider" in str(refused.value)
    assert ledger.size() == size


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_step_up_problem_accepts_each_algorithm_and_refuses_hs256(provider: Provider, alg: str) -> None:
    at = datetime.datetime.now(datetime.UTC)
    token = provider.id_token("ana", nonce="n", alg=alg, at=at)
    proof = {"method": "oidc", "id_token": token}
    pinned = [{**PROVIDER, "jwks": provider.jwks}]
    assert step_up_problem(proof, pinned, "ana", "n", at) is None
    public_pem = _jwk(provider.keys["RS256"].public_key(), "RS256")["n"].encode()
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","kid":"RS256"}').rstrip(b"=").decode()
    body = token.split(".")[1]
    import hashlib
    import hmac

    forged = f"{header}.{body}." + base64.urlsafe_b64encode(hmac.new(public_pem, f"{header}.{body}".encode(),
                                                                      hashlib.sha256).digest()).rstrip(b"=").decode()
    assert "algorithm" in str(step_up_problem({**proof, "id_token": forged}, pinned, "ana", "n", at))


def test_a_committee_decision_proven_by_step_up_is_counted_as_such_in_reports(
        stepped: tuple[Populated, TestClient], provider: Provider) -> None:
    """Validation by key signature, decision by a step-up sign-in: the report says how each decision was proven."""
    from charter.incidents import load_book
    from charter.report import bind, build

    populated, client = stepped
    ledger = populated.ledger
    incident = next(i for i in load_book(ledger).incidents.values()
                    if i.system_id == "fraud-detector" and i.severity.value == "high")
    transition(ledger, incident.id, "acknowledge", key_of("maria.keller"), "on it")
    transition(ledger, incident.id, "investigate", key_of("maria.keller"), "drift")
    transition(ledger, incident.id, "validate", key_of("carla.rossi"), "confirmed")
    bearer = {"Authorization": f"Bearer {provider.id_token('anna.schmidt', nonce=None)}"}
    statement, nonce = _challenge(client, incident.id, bearer, action="decide", note="retrain now",
                                  decision=["retrain"])
    response = client.post(f"/v1/incidents/{incident.id}/transitions/step-up", headers=bearer, json={
        "statement": statement, "id_token": provider.id_token("anna.schmidt", nonce=nonce, alg="EdDSA")})
    assert response.status_code == 201, response.text
    timeline = load_book(ledger).incidents[incident.id].timeline
    assert [(e["event"], e.get("proof")) for e in timeline if e["event"] in ("validate", "decide")] == [
        ("validate", "key signature"), ("decide", "step-up sign-in")]
    make_checkpoint(ledger)
    from charter.kpis import builtin_catalog
    from charter.submission import default_compiler

    compiler = default_compiler(builtin_catalog())
    state = bind(ledger, populated.log_key.public, ledger.clock(), compiler)
    document = build(state, "iso-42001", compiler.frameworks)
    assert document.figures.decisions_by_proof.get("step-up sign-in") == 1
    assert verify_ledger(ledger, populated.log_key.public).ok


def test_the_step_up_id_token_in_the_ledger_is_no_bearer_credential(stepped: tuple[Populated, TestClient],
                                                                    provider: Provider) -> None:
    """Governance roles read entries; the ID token recorded as a proof must not log anyone in."""
    _, client = stepped
    bound = provider.id_token("maria.keller", nonce="f" * 64)
    response = client.get("/v1/whoami", headers={"Authorization": f"Bearer {bound}"})
    assert response.status_code == 401 and "nonce" in response.json()["detail"]
