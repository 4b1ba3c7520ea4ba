"""Step-up sign-in for incident transitions: a person proves a validation or decision with their
identity provider instead of a key.

1. ``POST /v1/incidents/{id}/transitions/challenge`` returns the transition statement (actor: the
   caller, signing time: now) and its digest, the ``nonce`` to sign in with.
2. The person signs in again at the provider with that nonce (OpenID Connect ``prompt=login``).
3. ``POST /v1/incidents/{id}/transitions/step-up`` hands in the statement and the ID token. The
   service checks the token against the provider now, and the ledger appends the transition with
   the ID token; `charter verify` checks offline, against the provider keys the governance
   configuration pins, that this person signed in for this very transition
   (`charter.ledger.auditor.step_up_problem`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from ..access import Caller, Operation, authorize
from ..authority import StepUpStatement, nonce_of
from ..errors import CharterError
from ..incidents import TRANSITION, transition, transition_statement
from ..ledger.records import format_time
from .bodies import json_body_schema
from .models import StatementResult
from .observability import APPENDS
from .routes import (
    _PROBLEMS,
    Authenticated,
    IdempotencyKey,
    ServiceDep,
    _receipt,
    _write,
    incident_hidden,
    json_body,
    refused_as_unknown,
)
from .service import Service

__all__ = ["router"]

router = APIRouter(prefix="/v1", responses=_PROBLEMS)


class TransitionRequest(BaseModel):
    """The transition to be proven: action, rationale, decisions, waiver length."""

    model_config = ConfigDict(extra="forbid")
    action: str = Field(max_length=40)
    note: str = Field(min_length=1, max_length=4000)
    decision: list[str] = Field(default_factory=list, max_length=10)
    expires: str | None = Field(default=None, max_length=40)


class Challenge(BaseModel):
    """What to sign in for: the exact statement, and its digest as the sign-in's nonce."""

    model_config = ConfigDict(extra="forbid")
    statement: dict[str, Any]
    nonce: str


class StepUpIn(BaseModel):
    """The statement of a challenge and the ID token of the sign-in made with its nonce."""

    model_config = ConfigDict(extra="forbid")
    statement: dict[str, Any]
    id_token: str = Field(min_length=1, max_length=16 * 1024)


IncidentId = Annotated[str, PathParam(max_length=255)]


def _verifier(service: Service) -> Any:
    verifier = service.authenticator.oidc
    if verifier is None:
        raise CharterError.single("no_identity_provider", "this service has no OpenID Connect provider configured: "
                                  "prove transitions with your key's signature instead")
    return verifier


@router.post("/incidents/{incident_id}/transitions/challenge", response_model=Challenge, tags=["incidents"],
             openapi_extra=json_body_schema(TransitionRequest))
async def challenge(incident_id: IncidentId, request: Request, caller: Authenticated,
                    service: ServiceDep) -> Challenge:
    """The statement a step-up sign-in proves, with you as its actor, and the nonce to sign in with."""
    _, request_body = await json_body(request, service, TransitionRequest)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_challenge, service, caller, incident_id, request_body)


def _challenge(service: Service, caller: Caller, incident_id: str, request_body: TransitionRequest) -> Challenge:
    _verifier(service)
    authorize(service.ledger, caller, Operation.ACT, entry_type=TRANSITION)
    fields = transition_statement(incident_id, request_body.action, request_body.note, request_body.decision,
                                  request_body.expires)
    statement = {**fields, "actor": caller.principal, "signed_at": format_time(service.ledger.clock())}
    return Challenge(statement=statement, nonce=nonce_of(service.ledger.origin, statement))


@router.post("/incidents/{incident_id}/transitions/step-up", status_code=201, response_model=StatementResult,
             tags=["incidents"], openapi_extra=json_body_schema(StepUpIn))
async def step_up(incident_id: IncidentId, request: Request, caller: Authenticated,
                  service: ServiceDep, idempotency_key: IdempotencyKey = None) -> Response:
    """Record a transition proven by a step-up sign-in whose nonce is the transition's digest."""
    body, proof = await json_body(request, service, StepUpIn)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_step_up, service, caller, request, idempotency_key, body, incident_id, proof)


def _step_up(service: Service, caller: Caller, request: Request, key: str | None, body: bytes, incident_id: str,
             proof: StepUpIn) -> Response:
    verifier = _verifier(service)
    authorize(service.ledger, caller, Operation.ACT, entry_type=TRANSITION)
    hidden = incident_hidden(service, caller, incident_id)
    statement = proof.statement
    if statement.get("incident_id") != incident_id:
        raise CharterError.single("invalid_request", f"the statement is not about incident {incident_id}",
                                  path="$.statement.incident_id")
    if statement.get("actor") != caller.principal:
        raise CharterError.single("forbidden", f"the statement names {statement.get('actor')!r} as its actor, but "
                                  f"you authenticated as {caller.principal!r}", path="$.statement.actor")
    try:
        nonce = nonce_of(service.ledger.origin, statement)
    except (ValueError, TypeError, RecursionError) as exc:
        raise CharterError.single("invalid_request", f"the statement is not canonical JSON (RFC 8785): {exc}",
                                  path="$.statement") from exc
    identity = verifier.verify_id_token(proof.id_token, nonce)
    if identity.principal != caller.principal:
        raise CharterError.single("forbidden", f"the step-up sign-in is {identity.principal!r}'s, not yours",
                                  path="$.id_token")
    signer = StepUpStatement.of(service.ledger.origin, statement, proof.id_token)
    fields = signer.fields()

    def run() -> tuple[int, Any]:
        with refused_as_unknown(incident_id if hidden else None):
            entry = transition(service.ledger, incident_id, str(fields.get("action")), signer,
                               str(fields.get("note")), fields.get("decision", ()), fields.get("expires"))
        APPENDS.labels(TRANSITION).inc()
        return 201, {"seq": entry.seq, "type": entry.type, "record_hash": entry.record_hash.hex(),
                     "submission_id": entry.submission_id, "duplicate": False, "receipt": _receipt(service, entry)}

    return _write(service, caller, request, key, body, run)
