"""Request bodies: bounded before anything reads them, and JSON parsed by the library's strict parser.

`BodyLimit` is a pure ASGI middleware around the whole application. It refuses a body whose
declared Content-Length is over the limit at once, and reads any other body (chunked ones too)
up to the limit before the application sees the request, answering 413 the moment it is passed:
nothing (authentication, FastAPI's own parsing, a route) ever holds more than the limit.

`json_model` parses a JSON body the way ``charter ledger accept`` and ``/v1/bundles`` parse their
input (`charter._sources.parse_json_strict`: no duplicate keys, no NaN, no lone surrogates, bounded
numbers and nesting), then validates it with the route's pydantic model, so every refusal names the
JSON path of what is wrong.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._sources import parse_json_strict
from ..errors import CharterError
from ..validation import collect_validation_errors
from .problems import problem_response

__all__ = ["BodyLimit", "json_body_schema", "json_model"]

Model = TypeVar("Model", bound=BaseModel)


class BodyLimit:
    """Refuse request bodies over `limit` bytes with a 413 problem before the application reads them."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        """Wrap `app`; `limit` is the largest body in bytes."""
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the body (bounded) first, then hand the request on with the body replayed."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, send, f"the body has {int(declared)} bytes; the limit is {self.limit}")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the application see it
                replay = _replay(b"".join(chunks), receive, first=message)
                await self.app(scope, replay, send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                # stop reading here: the rest of the body is never buffered
                await self._refuse(scope, send, f"the body exceeds {self.limit} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _refuse(self, scope: Scope, send: Send, detail: str) -> None:
        response = problem_response(Request(scope), 413, "body_too_large", detail,
                                    headers={"Connection": "close"})
        await response(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def _replay(body: bytes, receive: Receive, *, first: Message | None = None) -> Receive:
    """A `receive` that gives the buffered body as one message, then defers to the server's (disconnects)."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    if first is not None:
        pending = [first]

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


_JSON_TYPES = ("application/json",)


def json_model(body: bytes, content_type: str | None, model: type[Model]) -> Model:
    """The request body as `model`, parsed strictly and validated; refusals carry JSON paths.

    A missing Content-Type is read as JSON (as FastAPI does); any other non-JSON type is refused.

    Raises:
        CharterError: ``unsupported_media_type`` (415); ``json_syntax``, ``duplicate_key``, ``encoding``,
            ``non_finite_number``, ``number_too_large`` from the strict parser; ``invalid_request`` for
            what the model refuses (422).
    """
    if content_type is not None:
        media = content_type.split(";")[0].strip().lower()
        if media not in _JSON_TYPES and not (media.startswith("application/") and media.endswith("+json")):
            raise CharterError.single("unsupported_media_type", f"the body must be application/json, not "
                                      f"{media[:80]!r}", path="header:Content-Type")
    try:
        data = parse_json_strict(body, None)
    except CharterError as exc:
        # a syntax or encoding error has a line, not a path: it is the body as a whole that is not JSON
        raise CharterError([d if d.location.path else dataclasses.replace(
            d, location=dataclasses.replace(d.location, path="$")) for d in exc.diagnostics]) from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise CharterError(collect_validation_errors(exc, None, code="invalid_request")) from exc


def json_body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The ``openapi_extra`` of a route that reads `model` itself: the OpenAPI document still describes it."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}
