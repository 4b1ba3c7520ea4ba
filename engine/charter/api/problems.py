"""RFC 9457 problem details: every refusal of the service, with the JSON path of each problem.

A `CharterError` carries diagnostics with stable codes; the code decides the HTTP status (401 for
an unauthenticated caller, 403 for a refused one, 404 for something that does not exist, 409 for a
conflict with the ledger's state, 413 for an oversized body, 415 for a body that is not JSON where
JSON is read, 503 when a dependency is down, 507 when a file could not be stored, 422 for everything
else wrong with the input).
Nothing internal leaks: a 500 says only that the request failed and which request id to quote.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import CharterError, Diagnostic

__all__ = ["PROBLEM_MEDIA_TYPE", "Problem", "ProblemItem", "install_handlers", "problem_response", "status_for"]

PROBLEM_MEDIA_TYPE = "application/problem+json"
_log = logging.getLogger("charter.api")

_UNAUTHENTICATED = {"unauthenticated"}
_FORBIDDEN = {"forbidden", "not_authorized", "wrong_actor", "wrong_owner", "unknown_key", "revoked_key",
              "key_revoked", "separation_of_duties", "unauthenticated_actor"}
_NOT_FOUND = {"unknown_system", "unknown_incident", "unknown_evidence", "no_entry", "no_checkpoint", "unknown_policy",
              "unknown_framework", "unknown_control", "no_bundle", "not_found", "unknown_report"}
_CONFLICT = {"append_conflict", "invalid_transition", "replayed_statement", "idempotency_in_flight", "ledger_busy",
             "already_reported", "key_registered", "inconsistent_history", "no_active_policies", "no_escalation",
             "no_policy", "checkpoint_size", "empty_ledger"}
_TOO_LARGE = {"file_too_large", "body_too_large"}
_UNSUPPORTED = {"unsupported_media_type"}
#: the service could not store what the request makes (a report file): not the caller's fault, and nothing landed
_STORAGE = {"write_failed"}
_UNAVAILABLE = {"database_unavailable", "oidc_provider", "ledger_damaged", "log_key_required", "not_ready"}


def status_for(code: str) -> int:
    """The HTTP status of a diagnostic code."""
    if code in _UNAUTHENTICATED:
        return 401
    if code in _FORBIDDEN:
        return 403
    if code in _NOT_FOUND:
        return 404
    if code in _CONFLICT:
        return 409
    if code in _TOO_LARGE:
        return 413
    if code in _UNSUPPORTED:
        return 415
    if code in _STORAGE:
        return 507
    if code in _UNAVAILABLE:
        return 503
    return 422


class ProblemItem(BaseModel):
    """One problem of the request: its code, message, and where (a JSON path into the body, or a parameter)."""

    code: str
    message: str
    path: str | None = Field(default=None, description="JSON path of the problem in the request body ($...), "
                             "or the query/path parameter, when known.")
    file: str | None = None
    line: int | None = None


class Problem(BaseModel):
    """An RFC 9457 problem details document."""

    type: str = Field(description="A URI naming the kind of problem (tag:charter,2026:problem:CODE).")
    title: str
    status: int
    detail: str
    instance: str | None = Field(default=None, description="The request id (quote it when reporting a problem).")
    errors: list[ProblemItem] = Field(default_factory=list)


def _item(diagnostic: Diagnostic) -> ProblemItem:
    location = diagnostic.location
    return ProblemItem(code=diagnostic.code, message=diagnostic.message, path=location.path,
                       file=location.file, line=location.line)


def problem_response(request: Request | None, status: int, code: str, detail: str,
                     errors: list[ProblemItem] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    """A problem+json response; `instance` is the request id."""
    request_id = getattr(request.state, "request_id", None) if request is not None else None
    body = Problem(type=f"tag:charter,2026:problem:{code}", title=code.replace("_", " "), status=status,
                   detail=detail, instance=f"urn:charter:request:{request_id}" if request_id else None,
                   errors=errors or [])
    extra = dict(headers or {})
    if status == 401:
        extra.setdefault("WWW-Authenticate", 'Bearer realm="charter"')
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=status,
                        media_type=PROBLEM_MEDIA_TYPE, headers=extra)


def charter_error_response(request: Request | None, exc: CharterError) -> JSONResponse:
    """The problem+json response of a `CharterError`: the first diagnostic sets the status."""
    first = exc.diagnostics[0] if exc.diagnostics else Diagnostic("bad_request", "bad request")
    status = status_for(first.code)
    detail = first.message if len(exc.diagnostics) == 1 else f"{len(exc.diagnostics)} problems; the first: " \
                                                             f"{first.message}"
    return problem_response(request, status, first.code, detail, [_item(d) for d in exc.diagnostics])


def _json_path(loc: tuple[Any, ...]) -> str:
    """FastAPI's error location (``("body", "items", 0, "id")``) as a JSON path (``$.items[0].id``)."""
    where, *rest = loc or ("body",)
    if where != "body":
        return f"{where}:{'.'.join(str(part) for part in rest)}"
    path = "$"
    for part in rest:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _validation_item(error: Any) -> ProblemItem:
    """One of FastAPI's validation errors as a problem; a JSON syntax error is located by character, not path."""
    loc = tuple(error.get("loc", ()))
    if error.get("type") == "json_invalid":
        position = loc[1] if len(loc) > 1 else "?"
        reason = (error.get("ctx") or {}).get("error", "invalid JSON")
        return ProblemItem(code="json_syntax", message=f"the body is not JSON: {reason} at character {position}",
                           path="$")
    return ProblemItem(code="invalid_request", message=str(error.get("msg", "invalid")), path=_json_path(loc))


def install_handlers(app: Any) -> None:
    """Make every error of `app` a problem+json response."""

    async def on_charter_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, CharterError)
        return charter_error_response(request, exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        items = [_validation_item(error) for error in exc.errors()]
        first = items[0] if items else ProblemItem(code="invalid_request", message="invalid request")
        return problem_response(request, 422, first.code, f"{first.path or 'the request'}: {first.message}", items)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400:  # FastAPI could not decode the body (not UTF-8): as malformed as bad JSON
            return problem_response(request, 422, "json_syntax", "the body is not JSON (UTF-8 text)",
                                    [ProblemItem(code="json_syntax", message="the body is not UTF-8 JSON", path="$")])
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthenticated", 403: "forbidden",
                413: "body_too_large", 415: "unsupported_media_type"}.get(exc.status_code, "http_error")
        return problem_response(request, exc.status_code, code, str(exc.detail),
                                headers=dict(exc.headers or {}))

    async def on_database_down(request: Request, exc: Exception) -> JSONResponse:
        # The driver could not connect or lost the connection (server down, connection slots exhausted):
        # the same request may succeed in a moment; bundles and signed statements land at most once.
        _log.warning("database unavailable: %s", type(exc).__name__,
                     extra={"request_id": getattr(request.state, "request_id", None)})
        return problem_response(request, 503, "database_unavailable", "the ledger database does not answer now; "
                                "retry shortly (a bundle or statement that did land is not recorded twice)",
                                headers={"Retry-After": "1"})

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        _log.exception("request failed", extra={"request_id": getattr(request.state, "request_id", None)})
        return problem_response(request, 500, "internal_error", "the request failed inside Charter; it may or may "
                                "not have been recorded: retry with the same Idempotency-Key, and quote the instance "
                                "when reporting it.")

    app.add_exception_handler(CharterError, on_charter_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(OperationalError, on_database_down)
    app.add_exception_handler(InterfaceError, on_database_down)
    app.add_exception_handler(Exception, on_unexpected)
