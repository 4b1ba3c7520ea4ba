"""The FastAPI application: middleware (request id, logs, metrics), health, and the /v1 routes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from .. import __version__
from ..errors import CharterError
from ..ledger.store import Ledger
from .bodies import BodyLimit
from .models import Health, Readiness
from .observability import LATENCY, REQUESTS, Timer, configure_logging, metrics_text, new_request_id
from .oidc import OIDCVerifier
from .problems import install_handlers, problem_response
from .routes import router
from .service import Service
from .settings import ServiceSettings, settings_from_environment
from .stepup import router as step_up_router

__all__ = ["app_from_environment", "create_app"]

_log = logging.getLogger("charter.api")


def create_app(settings: ServiceSettings, *, ledger: Ledger | None = None,
               oidc: OIDCVerifier | None = None) -> FastAPI:
    """The service over the ledger `settings` name (or `ledger`, already open with its log key).

    Args:
        settings: what to serve and how.
        ledger: an open ledger to serve instead of opening `settings.database_url` (tests).
        oidc: an OpenID Connect verifier instead of one built from `settings.oidc` (tests).
    """
    service = Service(settings, ledger=ledger, oidc=oidc)
    app = FastAPI(title="Charter", version=__version__, description=(
        "Policy-as-code governance for AI performance: submit signed evidence, act on incidents with signed "
        "transitions, read findings and incidents, issue and verify audit-readiness reports, and prove the "
        "ledger. Every error is an RFC 9457 problem (application/problem+json)."),
        openapi_url="/openapi.json", docs_url="/docs", redoc_url=None)
    app.state.service = service
    install_handlers(app)
    # Added before `observe`, so it runs inside it: a 413 still gets a request id, a log line and metrics.
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request.state.request_id = new_request_id(request.headers.get("x-request-id"))
        timer = Timer()
        try:
            response = await call_next(request)
        except Exception:  # the exception handlers answer; this is only reached if one of them fails
            _log.exception("unhandled", extra={"request_id": request.state.request_id})
            response = problem_response(request, 500, "internal_error", "the request failed inside Charter")
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        REQUESTS.labels(request.method, template, str(response.status_code)).inc()
        LATENCY.labels(request.method, template).observe(timer.seconds())
        response.headers["X-Request-Id"] = request.state.request_id
        caller = getattr(request.state, "caller", None)
        _log.info("request", extra={"request_id": request.state.request_id, "method": request.method,
                                    "path": request.url.path, "status": response.status_code,
                                    "duration_ms": round(timer.seconds() * 1000, 2),
                                    "principal": caller.principal if caller else None,
                                    "auth": caller.method if caller else None})
        return response

    @app.get("/healthz", response_model=Health, tags=["operations"])
    def healthz() -> Health:
        """Liveness: the process answers."""
        return Health()

    @app.get("/readyz", response_model=Readiness, tags=["operations"],
             responses={503: {"description": "The database or the ledger is unavailable"}})
    def readyz(request: Request) -> Response:
        """Readiness: the database answers and the ledger's head is readable."""
        try:
            size, head, _ = service.ledger.head()
        except CharterError as exc:
            return problem_response(request, 503, "not_ready", exc.diagnostics[0].message)
        except Exception as exc:  # a database driver error: not ready, say which
            return problem_response(request, 503, "not_ready", f"the ledger database does not answer: "
                                    f"{type(exc).__name__}")
        return JSONResponse(Readiness(status="ready", ledger_size=size, head_hash=head.hex()).model_dump())

    @app.get("/metrics", tags=["operations"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus exposition"}})
    def metrics() -> Response:
        """Prometheus metrics: requests, latencies, appends, verifications, ledger size, open incidents by stage."""
        return Response(metrics_text(service.open_incidents_by_stage),
                        media_type="text/plain; version=0.0.4; charset=utf-8")

    app.include_router(router)
    app.include_router(step_up_router)
    return app


def app_from_environment() -> FastAPI:
    """The application of a uvicorn worker started by `charter serve` (settings from the environment)."""
    configure_logging()
    return create_app(settings_from_environment())
