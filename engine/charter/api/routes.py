"""The ``/v1`` routes: each authenticates, authorizes (`charter.access`), and calls the library.

Writes run inside `recording_via`, so every entry a request appends records the principal, how
they authenticated and the request id; the change itself is signed by the caller's own key (a
bundle by the system owner's, a statement by its actor's), which the ledger checks on append.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel

from ..access import INCIDENT_CHANGES, Caller, Operation, authorize, may_read_system, standing_of, visible_systems
from ..errors import CharterError
from ..incidents import CLASSIFIED
from ..ledger.records import Entry
from ..ledger.store import recording_via
from .bodies import json_body_schema, json_model
from .idempotency import Reply, fingerprint, idempotent
from .models import (
    BundleResult,
    CheckpointItem,
    ConsistencyProofModel,
    EntryItem,
    EntryPage,
    FindingPage,
    IncidentDetail,
    IncidentMetrics,
    IncidentPage,
    InclusionProofModel,
    KeyItem,
    LedgerHead,
    PendingKeyItem,
    PolicySetInForce,
    ReportIssue,
    ReportItem,
    ReportVerdictModel,
    SignedStatementIn,
    StatementResult,
    SystemItem,
    TokenItem,
    VerifyResult,
    WaiverItem,
    WhoAmI,
)
from .observability import APPENDS, VERIFY_RESULTS
from .problems import PROBLEM_MEDIA_TYPE, Problem
from .service import Service

__all__ = ["router"]

MAX_PAGE = 500
In = TypeVar("In", bound=BaseModel)
_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": text}
    for status, text in ((401, "Not authenticated"), (403, "Not allowed"), (404, "Not found"),
                         (409, "Conflicts with the ledger's state"), (413, "Body too large"),
                         (415, "The body is not JSON"), (422, "Invalid request"),
                         (503, "A dependency is unavailable"))}

router = APIRouter(prefix="/v1", responses=_PROBLEMS)

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255,
                                              description="Retrying a POST with the same key returns the first "
                                                          "reply instead of acting twice.")]
Cursor = Annotated[str | None, Query(max_length=20, pattern=r"^[0-9]{1,18}$",
                                     description="The `next_cursor` of the previous page.")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


def service_of(request: Request) -> Service:
    """The process's service state."""
    service: Service = request.app.state.service
    return service


def caller_of(request: Request) -> Caller:
    """Authenticate the request (dependency of every /v1 route)."""
    service = service_of(request)
    caller = service.authenticator.authenticate(request.headers.get("authorization"), request.state.request_id)
    request.state.caller = caller
    return caller


Authenticated = Annotated[Caller, Depends(caller_of)]
ServiceDep = Annotated[Service, Depends(service_of)]


async def _body(request: Request, service: Service) -> bytes:
    """The request body, refused past the configured size before it is all read.

    `bodies.BodyLimit` has already refused an oversized body before the application saw it; this
    check stays so a route is bounded even where the middleware is not installed.
    """
    limit = service.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise CharterError.single("body_too_large", f"the body has {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise CharterError.single("body_too_large", f"the body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request, service: Service, model: type[In]) -> tuple[bytes, In]:
    """The raw body (bounded) and the same body parsed strictly and validated as `model`."""
    body = await _body(request, service)
    return body, json_model(body, request.headers.get("content-type"), model)


def _write(service: Service, caller: Caller, request: Request, key: str | None, body: bytes,
           run: Callable[[], tuple[int, Any]]) -> Response:
    """Run a write once per Idempotency-Key, inside `recording_via`, then sign a checkpoint when one is due."""

    def once() -> Reply:
        with recording_via(caller.via()):
            status, value = run()
        return Reply(status, json.dumps(value, sort_keys=True).encode())

    reply = idempotent(service.ledger, caller.principal, key, fingerprint(request.method, request.url.path, body),
                       service.settings.idempotency_hours, once)
    if not reply.replayed:
        service.after_append()
    headers = {"Idempotent-Replayed": "true"} if reply.replayed else {}
    media = PROBLEM_MEDIA_TYPE if reply.status >= 400 else "application/json"
    return Response(reply.body, status_code=reply.status, media_type=media, headers=headers)


def _receipt(service: Service, entry: Entry) -> dict[str, Any]:
    from ..submission import Receipt

    return Receipt.of(service.ledger, entry).to_dict()


def _page(items: list[Any], limit: int, cursor_of: Callable[[Any], int]) -> dict[str, Any]:
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next_cursor": str(cursor_of(items[-1])) if more and items else None}


def _parse_time(text: str | None, name: str) -> datetime.datetime | None:
    if text is None:
        return None
    from ..ledger.records import format_time

    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        format_time(moment.astimezone(datetime.UTC))
    except (ValueError, OverflowError) as exc:
        raise CharterError.single("invalid_request", f"{name} is not an ISO 8601 time: {text[:40]!r}",
                                  path=f"query:{name}") from exc
    if moment.tzinfo is None:
        raise CharterError.single("invalid_request", f"{name} needs a time zone (e.g. Z)", path=f"query:{name}")
    return moment


# -- who am I ----------------------------------------------------------------------------------------------------


@router.get("/whoami", response_model=WhoAmI, tags=["identity"])
def whoami(caller: Authenticated, service: ServiceDep) -> WhoAmI:
    """The authenticated caller and their standing in the ledger."""
    standing = authorize(service.ledger, caller, Operation.WHOAMI)
    return WhoAmI(principal=caller.principal, origin=service.ledger.origin, method=caller.method,
                  scopes=sorted(caller.scopes),
                  token_id=caller.token_id, issuer=caller.issuer, subject=caller.subject,
                  roles=standing.labels(), owns=sorted(standing.owns))


# -- bundles and statements --------------------------------------------------------------------------------------


@router.post("/bundles", status_code=201, response_model=BundleResult, tags=["evidence"],
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": {"type": "object", "description": "A signed evidence bundle (`charter schema bundle`)."}}}}})
async def submit_bundle(request: Request, caller: Authenticated, service: ServiceDep,
                        idempotency_key: IdempotencyKey = None) -> Response:
    """Submit a signed evidence bundle of a system you own: it is evaluated by the policy set in force and
    appended with its findings and the incidents it opens, and you get its signed receipt.

    The bundle must be signed by one of your registered keys (`charter submit --bundle-only` signs
    one). Resubmitting the same bundle returns its first receipt (`duplicate: true`, status 200).
    """
    body = await _body(request, service)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_submit_bundle, service, caller, request, idempotency_key, body)


def _submit_bundle(service: Service, caller: Caller, request: Request, key: str | None, body: bytes) -> Response:
    from ..submission import prepare_bundle, submit_bundle

    prepared = prepare_bundle(body, service.catalog, file="request body")
    authorize(service.ledger, caller, Operation.SUBMIT_BUNDLE, system=prepared.bundle.system_id)

    def run() -> tuple[int, Any]:
        result = submit_bundle(service.ledger, prepared, service.catalog, compiler=service.compiler)
        if not result.duplicate:
            APPENDS.labels("bundle").inc()
        return (200 if result.duplicate else 201), {
            "receipt": result.receipt.to_dict(), "duplicate": result.duplicate,
            "findings": [f.model_dump(mode="json") for f in result.findings],
            "incidents": [n.to_dict() for n in result.incidents]}

    return _write(service, caller, request, key, body, run)


def _accept_statement(service: Service, caller: Caller, request: Request, key: str | None, body: bytes,
                      statement_in: SignedStatementIn, *, incident: str | None = None) -> Response:
    from ..authority import SignedStatement
    from ..incidents import TRANSITION
    from ..statements import accept, holding_entry

    statement = SignedStatement.from_dict(statement_in.model_dump(), "request body")
    if incident is not None and (statement.type != TRANSITION or statement.statement.get("incident_id") != incident):
        raise CharterError.single("invalid_request", f"this route takes an incident.transition statement for "
                                  f"{incident}", path="$.statement.incident_id")
    authorize(service.ledger, caller, Operation.ACT, entry_type=statement.type)
    hidden = statement.type in INCIDENT_CHANGES and incident_hidden(service, caller,
                                                                     statement.statement.get("incident_id"))
    actor = statement.statement.get("actor")
    if actor != caller.principal:
        raise CharterError.single("forbidden", f"the statement is signed as {actor!r}, but you authenticated as "
                                  f"{caller.principal!r}: hand in only changes you signed yourself",
                                  path="$.statement.actor")

    def run() -> tuple[int, Any]:
        with refused_as_unknown(statement.statement.get("incident_id") if hidden else None):
            entry = accept(service.ledger, statement)
        duplicate = entry is None
        unchanged = False
        if entry is None:
            # recorded before, or (an activation of what is in force) nothing to change: as `charter ledger
            # accept` says "already in force or recorded" and exits 0, answer 200 with the entry that holds it
            unchanged = service.ledger.by_submission(statement.submission_id) is None
            entry = holding_entry(service.ledger, statement)
            if entry is None:
                raise CharterError.single("invalid_request", f"the {statement.type} statement changes nothing in "
                                          "the ledger", path="$.statement")
        else:
            APPENDS.labels(statement.type).inc()
        result = {"seq": entry.seq, "type": entry.type, "record_hash": entry.record_hash.hex(),
                  "submission_id": entry.submission_id, "duplicate": duplicate, "receipt": _receipt(service, entry)}
        if unchanged:
            result["unchanged"] = True
        if not duplicate and entry.type == CLASSIFIED and entry.payload.get("serious"):
            result["paged"] = _page_reporting(service, str(entry.payload["incident_id"]))
        return (200 if duplicate else 201), result

    return _write(service, caller, request, key, body, run)


def incident_hidden(service: Service, caller: Caller, incident_id: object) -> bool:
    """Whether `incident_id` names an incident the caller may not read (GET answers 404 for it)."""
    if not isinstance(incident_id, str):
        return False  # the statement's own checks refuse it, with the field's path
    with service.incidents() as book:
        incident = book.incidents.get(incident_id)
    return incident is not None and not may_read_system(standing_of(service.ledger, caller.principal),
                                                        incident.system_id)


@contextmanager
def refused_as_unknown(hidden_incident: object) -> Iterator[None]:
    """Turn a refused change of an incident the caller may not read into GET's 404 for it.

    The refusal (its state, a transition it cannot take) would confirm the incident exists to someone
    the service does not show it to. A change the ledger accepts is not hidden: whoever may make it
    learns nothing they may not know (a first-line colleague acting for an owner outside the role).
    """
    try:
        yield
    except CharterError:
        if hidden_incident is None:
            raise
        raise CharterError.single("unknown_incident", f"no incident {hidden_incident!r} you may read") from None


def _page_reporting(service: Service, incident_id: str) -> list[str]:
    """Page the Art. 73 reporting role at once about a serious incident, as `charter incidents classify` does.

    A failed delivery does not undo the classification: `charter escalate` retries it.
    """
    from ..authority import active_escalation
    from ..notify import page_reporting

    report = page_reporting(service.ledger, active_escalation(service.ledger)[0], incident_id, service.notifier)
    return [*report.notified, *(f"failed: {line}" for line in report.failed)]


@router.post("/statements", status_code=201, response_model=StatementResult, tags=["governance"],
             openapi_extra=json_body_schema(SignedStatementIn))
async def submit_statement(request: Request, caller: Authenticated, service: ServiceDep,
                           idempotency_key: IdempotencyKey = None) -> Response:
    """Hand in a governance change you signed (`--sign-only` writes them): keys, systems, policy
    publication and activation, escalation, applicability, evidence (documents, attestations, test
    results, events), incident transitions, classifications and filings, API tokens.

    The ledger checks your signature, your key's registration and the role the change needs, exactly
    as `charter ledger accept` does. A statement already recorded returns its entry (status 200).
    """
    body, statement = await json_body(request, service, SignedStatementIn)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_accept_statement, service, caller, request, idempotency_key, body, statement)


# -- systems, findings, incidents, waivers, keys, tokens, policies ------------------------------------------------


def _systems(service: Service) -> dict[str, Any]:
    from ..submission import systems_in_ledger

    return dict(systems_in_ledger(service.ledger))


@router.get("/systems", response_model=list[SystemItem], tags=["systems"])
def list_systems(caller: Authenticated, service: ServiceDep) -> list[SystemItem]:
    """Registered systems with their registration and EU AI Act classification (yours only, unless you hold a
    governance role)."""
    standing = authorize(service.ledger, caller, Operation.READ_CATALOG)
    visible = visible_systems(standing)
    return [SystemItem(id=system_id, registration=system.model_dump(mode="json"))
            for system_id, system in _systems(service).items() if visible is None or system_id in visible]


@router.get("/systems/{system_id}", response_model=SystemItem, tags=["systems"])
def get_system(system_id: Annotated[str, PathParam(max_length=255)], caller: Authenticated,
               service: ServiceDep) -> SystemItem:
    """One registered system."""
    authorize(service.ledger, caller, Operation.READ_SYSTEM, system=system_id)
    system = _systems(service).get(system_id)
    if system is None:
        raise CharterError.single("unknown_system", f"system {system_id!r} is not registered")
    return SystemItem(id=system_id, registration=system.model_dump(mode="json"))


def _readable(service: Service, caller: Caller, system: str | None) -> frozenset[str] | None:
    """The systems a listing may show: one named system (if allowed), or all the caller may read."""
    if system is not None:
        authorize(service.ledger, caller, Operation.READ_SYSTEM, system=system)
        return frozenset({system})
    standing = standing_of(service.ledger, caller.principal)
    if standing.staff or not standing.owns:
        authorize(service.ledger, caller, Operation.READ_GOVERNANCE)  # refuses a principal with no role and no system
        return None
    authorize(service.ledger, caller, Operation.READ_CATALOG)  # the scope check: owners see their own systems
    return standing.owns


@router.get("/findings", response_model=FindingPage, tags=["evidence"])
def list_findings(caller: Authenticated, service: ServiceDep,
                  system: Annotated[str | None, Query(max_length=255)] = None,
                  rule: Annotated[str | None, Query(max_length=255, description="policy/rule or rule id")] = None,
                  status: Annotated[str | None, Query(pattern="^(pass|breach|no_data)$")] = None,
                  since: Annotated[str | None, Query(max_length=64, description="evaluated at or after")] = None,
                  until: Annotated[str | None, Query(max_length=64, description="evaluated before")] = None,
                  cursor: Cursor = None, limit: Limit = 100) -> dict[str, Any]:
    """Recorded findings, oldest first, filtered by system, rule, status and evaluation time."""
    from ..submission import FINDING

    readable = _readable(service, caller, system)
    start = int(cursor) + 1 if cursor else 0
    low, high = _parse_time(since, "since"), _parse_time(until, "until")
    items: list[dict[str, Any]] = []
    for entry in service.ledger.entries(start, types=[FINDING], subject=system):
        if readable is not None and entry.subject not in readable:
            continue
        p = entry.payload
        if rule is not None and rule not in (p.get("rule"), f"{p.get('policy')}/{p.get('rule')}"):
            continue
        if status is not None and p.get("status") != status:
            continue
        evaluated = datetime.datetime.fromisoformat(str(p.get("evaluated_at")))
        if (low is not None and evaluated < low) or (high is not None and evaluated >= high):
            continue
        items.append({"seq": entry.seq, **{k: p.get(k) for k in (
            "system_id", "policy", "policy_version", "rule", "title", "segment", "status", "severity",
            "window_start", "window_end", "evaluated_at", "observed", "thresholds", "controls", "explanation")}})
        if len(items) > limit:
            break
    return _page(items, limit, lambda item: int(item["seq"]))


def _incident_row(incident: Any) -> dict[str, Any]:
    from ..incidents import stage_deadline
    from ..ledger.records import format_time

    due = stage_deadline(None, incident)
    return {"id": incident.id, "seq": int(incident.timeline[0]["seq"]) if incident.timeline else 0,
            "system": incident.system_id, "rule": incident.rule, "segment": incident.segment,
            "severity": incident.severity.value, "tier": incident.tier.value, "state": incident.state.value,
            "opened_at": incident.opened_at, "level": incident.level, "escalated_to": list(incident.escalated_to),
            "decisions": list(incident.decisions),
            "next": {"step": due[0], "due_at": format_time(due[1])} if due else None}


@router.get("/incidents", response_model=IncidentPage, tags=["incidents"])
def list_incidents(caller: Authenticated, service: ServiceDep,
                   system: Annotated[str | None, Query(max_length=255)] = None,
                   state: Annotated[str | None, Query(
                       pattern="^(open|acknowledged|investigating|validated|decided|resolved|closed)$")] = None,
                   cursor: Cursor = None, limit: Limit = 100) -> dict[str, Any]:
    """Incidents in the order they were opened, with the step each waits for and its deadline."""
    readable = _readable(service, caller, system)
    after = int(cursor) if cursor else -1
    with service.incidents() as book:
        rows = [_incident_row(i) for i in book.incidents.values()
                if (readable is None or i.system_id in readable) and (state is None or i.state.value == state)]
    rows = sorted((r for r in rows if r["seq"] > after), key=lambda r: r["seq"])
    return _page(rows[:limit + 1], limit, lambda row: int(row["seq"]))


@router.get("/incidents/{incident_id}", response_model=IncidentDetail, tags=["incidents"])
def get_incident(incident_id: Annotated[str, PathParam(max_length=255)], caller: Authenticated,
                 service: ServiceDep) -> dict[str, Any]:
    """An incident: the breaches behind it, its timeline of transitions, its Art. 73 triage."""
    with service.incidents() as book:
        incident = book.incidents.get(incident_id)
        if incident is None:
            authorize(service.ledger, caller, Operation.READ_CATALOG)
            raise CharterError.single("unknown_incident", f"no incident {incident_id!r}")
        try:
            authorize(service.ledger, caller, Operation.READ_SYSTEM, system=incident.system_id)
        except CharterError as refused:
            if refused.code != "forbidden" or "scope" in str(refused):
                raise
            # as for an id that does not exist: a refusal would confirm the incident and name its system
            raise CharterError.single("unknown_incident", f"no incident {incident_id!r} you may read") from None
        return {**_incident_row(incident), "title": incident.title, "findings": list(incident.findings),
                "timeline": list(incident.timeline), "classification": incident.classification}


@router.post("/incidents/{incident_id}/transitions", status_code=201, response_model=StatementResult,
             tags=["incidents"], openapi_extra=json_body_schema(SignedStatementIn))
async def transition_incident(incident_id: Annotated[str, PathParam(max_length=255)],
                              request: Request, caller: Authenticated, service: ServiceDep,
                              idempotency_key: IdempotencyKey = None) -> Response:
    """Acknowledge, investigate, validate, decide, resolve or close an incident: a transition signed by you
    (`charter incidents ACTION --sign-only`). Validations and decisions are proven by your signature
    over the exact transition; the escalation configuration in force decides whether your role may take it."""
    body, statement = await json_body(request, service, SignedStatementIn)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_accept_statement, service, caller, request, idempotency_key, body, statement,
                                   incident=incident_id)


@router.get("/waivers", response_model=list[WaiverItem], tags=["incidents"])
def list_waivers(caller: Authenticated, service: ServiceDep) -> list[WaiverItem]:
    """Accepted risks: the breaches they cover open no incident until they expire."""
    readable = _readable(service, caller, None)
    with service.incidents() as book:
        return [WaiverItem(id=w.id, incident_id=w.incident_id, system=w.system_id, rule=w.rule, segment=w.segment,
                           owner=w.owner, granted_at=w.granted_at, expires_at=w.expires_at)
                for w in book.waivers if readable is None or w.system_id in readable]


@router.get("/keys", response_model=list[KeyItem], tags=["identity"])
def list_keys(caller: Authenticated, service: ServiceDep) -> list[KeyItem]:
    """Registered keys (public halves only)."""
    from ..submission import key_records

    authorize(service.ledger, caller, Operation.READ_GOVERNANCE)
    return [KeyItem(key_id=r.key_id, principal=r.principal, added_seq=r.added_seq, revoked_seq=r.revoked_seq,
                    reason=r.reason) for r in key_records(service.ledger).values()]


@router.get("/keys/pending", response_model=list[PendingKeyItem], tags=["identity"])
def list_pending_keys(caller: Authenticated, service: ServiceDep) -> list[PendingKeyItem]:
    """Keys awaiting administrators' approval (they sign nothing yet): who approved each, and how many must."""
    from ..submission import pending_keys

    authorize(service.ledger, caller, Operation.READ_GOVERNANCE)
    return [PendingKeyItem(key_id=w.key_id, principal=str(w.principal), approved_by=list(w.approvers),
                           needed=w.needed) for w in pending_keys(service.ledger)]


@router.get("/tokens", response_model=list[TokenItem], tags=["identity"])
def list_tokens(caller: Authenticated, service: ServiceDep) -> list[TokenItem]:
    """API tokens (never their secrets): your own, or everyone's for an administrator or auditor."""
    from ..tokens import token_index

    standing = authorize(service.ledger, caller, Operation.READ_TOKENS)
    everyone = standing.administrator or standing.auditor
    now = service.ledger.clock()
    items = []
    for record in token_index(service.ledger).records():
        if not everyone and record.principal != caller.principal:
            continue
        status = "revoked" if record.revoked_seq is not None else "expired" if record.expires_at <= now else "active"
        items.append(TokenItem(token_id=record.token_id, principal=record.principal, scopes=list(record.scopes),
                               expires_at=record.expires_at.isoformat(), created_seq=record.created_seq,
                               revoked_seq=record.revoked_seq, status=status))
    return items


@router.get("/policies", response_model=PolicySetInForce, tags=["policies"])
def policies_in_force(caller: Authenticated, service: ServiceDep) -> PolicySetInForce:
    """The policy set in force (each version's digest and where it was published) and the escalation
    configuration in force: what every bundle submitted now is judged by."""
    from ..authority import active_policies

    authorize(service.ledger, caller, Operation.READ_CATALOG)
    active = active_policies(service.ledger, service.compiler)
    escalation = service.ledger.authority().escalation_seq
    return PolicySetInForce(activation_seq=active.activation_seq, escalation_seq=escalation, policies=[
        {"id": p.policy.id, "version": p.policy.version, "digest": p.digest,  # type: ignore[misc]
         "published_seq": active.published[p.digest]} for p in active.policy_set.policies])


@router.get("/metrics/incidents", response_model=IncidentMetrics, tags=["incidents"])
def incident_metrics(caller: Authenticated, service: ServiceDep,
                     system: Annotated[str | None, Query(max_length=255)] = None) -> dict[str, Any]:
    """MTTD, MTTA, time to decision, MTTR and Art. 73 filing times (median, p90, counts), per system and overall."""
    from ..incidents import metrics

    readable = _readable(service, caller, system)
    with service.incidents() as book:
        chosen = [i for i in book.incidents.values() if readable is None or i.system_id in readable]
        return metrics(chosen, service.ledger.clock()).to_dict()


# -- reports ----------------------------------------------------------------------------------------------------


_REPORT_NAME = re.compile(r"[A-Za-z0-9._-]{1,200}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _report_file(service: Service, sha256: str, name: str) -> Path:
    """Where the service keeps a report file: by its content, so the file is in place before its entry lands."""
    return service.settings.reports_dir / f"{sha256}-{name}"


def _stored_report(service: Service, entry: Entry) -> Path | None:
    """The file this service keeps of an issued report (None if it did not issue it or the file went)."""
    name, sha256 = str(entry.payload.get("name")), str(entry.payload.get("sha256"))
    if _REPORT_NAME.fullmatch(name) is None or _SHA256.fullmatch(sha256) is None:
        return None
    # reports issued before files were kept by content were kept by the seq of their entry
    for path in (_report_file(service, sha256, name), service.settings.reports_dir / f"{entry.seq}-{name}"):
        if path.is_file():
            return path
    return None


@router.get("/reports", response_model=list[ReportItem], tags=["reports"])
def list_reports(caller: Authenticated, service: ServiceDep) -> list[ReportItem]:
    """Issued report files, newest last."""
    from ..report import REPORT_ISSUED

    authorize(service.ledger, caller, Operation.READ_REPORTS)
    items = []
    for entry in service.ledger.entries(types=[REPORT_ISSUED]):
        p = entry.payload
        name = str(p.get("name"))
        kept = _stored_report(service, entry) is not None
        items.append(ReportItem(seq=entry.seq, name=name, format=str(p.get("format")), framework=p.get("framework"),
                                sha256=str(p.get("sha256")), issued_at=str(p.get("issued_at")),
                                download=f"/v1/reports/{entry.seq}/file" if kept else None))
    return items


@router.post("/reports", status_code=201, response_model=list[ReportItem], tags=["reports"],
             openapi_extra=json_body_schema(ReportIssue),
             responses={507: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}},
                              "description": "The report files could not be stored; nothing was issued"}})
async def issue_report(request: Request, caller: Authenticated, service: ServiceDep,
                       idempotency_key: IdempotencyKey = None) -> Response:
    """Issue an audit-readiness report: verified, bound to a signed checkpoint, each file recorded in the ledger
    with its SHA-256 (auditors, administrators and policy approvers)."""
    body, spec = await json_body(request, service, ReportIssue)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_issue_report, service, caller, request, idempotency_key, body, spec)


def _issue_report(service: Service, caller: Caller, request: Request, key: str | None, body: bytes,
                  spec: ReportIssue) -> Response:
    from ..report import FORMATS as REPORT_FORMATS
    from ..report import SUFFIXES, issue_report

    authorize(service.ledger, caller, Operation.ISSUE_REPORT)
    from ..frameworks import REPORT_FRAMEWORKS as frameworks

    if spec.framework not in frameworks:
        raise CharterError.single("invalid_request", f"framework must be one of {', '.join(frameworks)}",
                                  path="$.framework")
    for index, fmt in enumerate(spec.formats):
        if fmt not in REPORT_FORMATS or spec.formats.count(fmt) > 1:
            raise CharterError.single("invalid_request", f"formats are distinct among {', '.join(REPORT_FORMATS)}",
                                      path=f"$.formats[{index}]")
    as_of = _parse_time(spec.at, "at") if spec.at else service.ledger.clock()
    assert as_of is not None
    # the Z in the name says UTC: a time given in another zone is named by its UTC time
    stem = f"{spec.framework}-{spec.system or 'portfolio'}-{as_of.astimezone(datetime.UTC).strftime('%Y%m%dT%H%M%SZ')}"
    names = {fmt: stem + SUFFIXES[fmt] for fmt in (*spec.formats, "oscal-poam")}

    def run() -> tuple[int, Any]:
        from contextlib import ExitStack

        from ..publishing import ReportFile

        # As `charter report`: each file is in place before the entries are appended, and taken back if
        # appending fails, so a report's files and its report.issued entries land together or not at all.
        with ExitStack() as stack:

            def publish(rendition: str, text: str | None) -> None:
                if text is not None:  # None: nothing open, no plan of action; the store keeps no file to withdraw
                    data = text.encode()
                    target = _report_file(service, hashlib.sha256(data).hexdigest(), names[rendition])
                    stack.enter_context(ReportFile(target)).publish(data)

            issued = issue_report(service.ledger, service.log_public_key, spec.framework, spec.formats,
                                  service.compiler, as_of=as_of, names=names, publish=publish, system=spec.system)
        items = []
        for (rendition, _, name), entry in zip(issued.files, issued.entries, strict=True):
            APPENDS.labels("report.issued").inc()
            items.append({"seq": entry.seq, "name": name, "format": rendition, "framework": spec.framework,
                          "sha256": entry.payload["sha256"], "issued_at": entry.payload["issued_at"],
                          "download": f"/v1/reports/{entry.seq}/file"})
        return 201, items

    return _write(service, caller, request, key, body, run)


@router.get("/reports/{seq}/file", tags=["reports"], response_class=FileResponse,
            responses={200: {"content": {"text/html": {}, "text/markdown": {}, "application/json": {}},
                             "description": "The report file as issued"}})
def download_report(seq: Annotated[int, PathParam(ge=0, le=2**62)], caller: Authenticated,
                    service: ServiceDep) -> FileResponse:
    """Download an issued report file, byte for byte as recorded in the ledger."""
    from ..report import REPORT_ISSUED

    authorize(service.ledger, caller, Operation.READ_REPORTS)
    entry = service.ledger.entry(seq)
    if entry is None or entry.type != REPORT_ISSUED:
        raise CharterError.single("unknown_report", f"entry {seq} is not an issued report")
    name = str(entry.payload.get("name"))
    path = _stored_report(service, entry)
    if path is None:
        raise CharterError.single("unknown_report", f"the report of entry {seq} was not issued by this service "
                                  "(or its file was removed); its issuer holds it")
    if hashlib.sha256(path.read_bytes()).hexdigest() != entry.payload.get("sha256"):
        raise CharterError.single("ledger_damaged", f"the stored file of report {seq} no longer matches its "
                                  "recorded SHA-256")
    media = {"html": "text/html", "md": "text/markdown"}.get(str(entry.payload.get("format")), "application/json")
    return FileResponse(path, media_type=media, filename=name)


@router.post("/reports/verify", response_model=ReportVerdictModel, tags=["reports"],
             openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {
                 "schema": {"type": "string", "format": "binary"}}}}})
async def verify_report(request: Request, caller: Authenticated, service: ServiceDep) -> ReportVerdictModel:
    """Verify a report file (the request body, any format): issued in this ledger, bound to a signed
    checkpoint, every citation proven, and rebuilt byte for byte."""
    body = await _body(request, service)
    from starlette.concurrency import run_in_threadpool

    def run() -> ReportVerdictModel:
        from ..report import verify_report as verify

        authorize(service.ledger, caller, Operation.VERIFY_REPORT)
        verdict = verify(service.ledger, service.log_public_key, body, service.compiler)
        return ReportVerdictModel(ok=verdict.ok, checked=verdict.checked, problems=verdict.problems)

    return await run_in_threadpool(run)


# -- the ledger -------------------------------------------------------------------------------------------------


@router.get("/ledger/head", response_model=LedgerHead, tags=["ledger"])
def ledger_head(caller: Authenticated, service: ServiceDep) -> LedgerHead:
    """The ledger's size, head hash and newest signed checkpoint."""
    from ..ledger.checkpoints import latest_checkpoint

    authorize(service.ledger, caller, Operation.READ_LEDGER)
    size, head, _ = service.ledger.head()
    latest = latest_checkpoint(service.ledger)
    return LedgerHead(origin=service.ledger.origin, size=size, head_hash=head.hex(),
                      checkpoint=latest[2] if latest else None)


@router.get("/ledger/verify", response_model=VerifyResult, tags=["ledger"])
def verify_ledger(caller: Authenticated, service: ServiceDep,
                  full: Annotated[bool, Query(description="Read every entry again.")] = False) -> VerifyResult:
    """Verify the ledger as `charter verify` does: bytes, hashes, chain, signatures, authority, checkpoints."""
    from ..ledger import verify_ledger as verify

    authorize(service.ledger, caller, Operation.READ_LEDGER)
    report = verify(service.ledger, service.log_public_key, resume=not full)
    VERIFY_RESULTS.labels("ok" if report.ok else "failed").inc()
    return VerifyResult(ok=report.ok, summary=report.summary(), entries=report.entries,
                        problems=[str(p) for p in report.problems])


@router.get("/ledger/checkpoints", response_model=list[CheckpointItem], tags=["ledger"])
def list_checkpoints(caller: Authenticated, service: ServiceDep) -> list[CheckpointItem]:
    """Signed checkpoints, oldest first."""
    authorize(service.ledger, caller, Operation.READ_LEDGER)
    return [CheckpointItem(size=size, root_hash=root.hex(), note=note)
            for size, root, note in service.ledger.checkpoints()]


def _entry_item(entry: Entry) -> dict[str, Any]:
    return {"seq": entry.seq, "type": entry.type, "record_hash": entry.record_hash.hex(), "body": entry.document()}


@router.get("/ledger/entries", response_model=EntryPage, tags=["ledger"])
def list_entries(caller: Authenticated, service: ServiceDep, cursor: Cursor = None, limit: Limit = 100,
                 type: Annotated[str | None, Query(max_length=64, description="Only entries of this type.")] = None,
                 ) -> dict[str, Any]:
    """Entries in seq order, with their bodies as stored."""
    authorize(service.ledger, caller, Operation.READ_LEDGER)
    start = int(cursor) + 1 if cursor else 0
    items: list[dict[str, Any]] = []
    entries: Iterator[Entry] = service.ledger.entries(start, types=[type] if type else (), batch=limit + 1)
    for entry in entries:
        items.append(_entry_item(entry))
        if len(items) > limit:
            break
    return _page(items, limit, lambda item: int(item["seq"]))


@router.get("/ledger/entries/{seq}", response_model=EntryItem, tags=["ledger"])
def get_entry(seq: Annotated[int, PathParam(ge=0, le=2**62)], caller: Authenticated,
              service: ServiceDep) -> dict[str, Any]:
    """One entry, with its body as stored and its record hash."""
    authorize(service.ledger, caller, Operation.READ_LEDGER)
    entry = service.ledger.entry(seq)
    if entry is None:
        raise CharterError.single("no_entry", f"there is no entry {seq}")
    return _entry_item(entry)


@router.get("/ledger/proofs/inclusion/{seq}", response_model=InclusionProofModel, tags=["ledger"])
def inclusion_proof(seq: Annotated[int, PathParam(ge=0, le=2**62)], caller: Authenticated, service: ServiceDep,
                    size: Annotated[int | None, Query(ge=1, le=2**62, description="Checkpoint size (default: newest)")]
                    = None) -> dict[str, Any]:
    """An RFC 9162 inclusion proof of an entry against a signed checkpoint."""
    from ..ledger import prove_inclusion

    authorize(service.ledger, caller, Operation.READ_LEDGER)
    return prove_inclusion(service.ledger, seq, size).to_dict()


@router.get("/ledger/proofs/consistency", response_model=ConsistencyProofModel, tags=["ledger"])
def consistency_proof(caller: Authenticated, service: ServiceDep,
                      old: Annotated[int, Query(ge=1, le=2**62)], new: Annotated[int, Query(ge=1, le=2**62)]
                      ) -> dict[str, Any]:
    """An RFC 9162 consistency proof between two signed checkpoints."""
    from ..ledger import prove_consistency

    authorize(service.ledger, caller, Operation.READ_LEDGER)
    return prove_consistency(service.ledger, old, new)
