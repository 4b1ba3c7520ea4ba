"""A client of Charter's service (`charter serve`): what the CLI calls when ``CHARTER_URL`` is set.

Every answer that is not a success becomes a `CharterError`: a problem+json refusal keeps the
server's codes, messages and JSON paths, so the CLI prints it like a local error; an unreachable
server or a 5xx is ``service_unavailable``, naming the URL and never the credential.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from .errors import CharterError, Diagnostic, Location

__all__ = ["ServiceClient"]

_PROBLEM = "application/problem+json"
#: how much of a non-JSON error body a message quotes
_QUOTE = 300
#: 5xx problems that are no outage but the server's ledger failing a check: kept, so the CLI exits 1 as locally
_KEPT = frozenset({"ledger_damaged"})


class ServiceClient:
    """Calls one Charter service with one bearer credential (an API token or an OpenID Connect token).

    Args:
        url: the service's base URL (``http://127.0.0.1:8080``), without ``/v1``.
        token: the bearer credential; it is sent in the Authorization header only and never appears
            in an error message.
        timeout: seconds to wait for connecting and for each read.
        transport: an httpx transport in place of the network (tests that simulate failures).
    """

    def __init__(self, url: str, token: str, timeout: float = 30, *,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout, follow_redirects=False, transport=transport,
                                  headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET `path` and return its JSON body.

        Raises:
            CharterError: the server's refusal (its problem's codes), or ``service_unavailable``.
        """
        query = {k: v for k, v in (params or {}).items() if v is not None}
        response = self._send("GET", path, params=query)
        return _json(response, self.url)

    def get_all(self, path: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Every item of a paged listing (``{items, next_cursor}``), following the cursors."""
        items: list[Any] = []
        query = dict(params or {})
        while True:
            page = self.get(path, query)
            items.extend(page["items"])
            if not page.get("next_cursor"):
                return items
            query["cursor"] = page["next_cursor"]

    def post_json(self, path: str, value: Any, idempotency_key: str | None = None) -> tuple[int, Any]:
        """POST `value` as JSON; returns the status and the JSON reply.

        The request carries an Idempotency-Key (`idempotency_key`, else a new one), and is sent once
        more with the same key if the connection failed: the service acts on it at most once.

        Raises:
            CharterError: the server's refusal, or ``service_unavailable``.
        """
        body = json.dumps(value).encode()
        return self.post_bytes(path, body, "application/json", idempotency_key)

    def post_bytes(self, path: str, data: bytes, content_type: str,
                   idempotency_key: str | None = None) -> tuple[int, Any]:
        """POST raw bytes (a signed bundle as written, a report file); see `post_json`."""
        headers = {"Content-Type": content_type, "Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        response = self._send("POST", path, content=data, headers=headers)
        return response.status_code, _json(response, self.url)

    def download(self, path: str) -> bytes:
        """GET `path` and return its body as bytes (a report file).

        Raises:
            CharterError: the server's refusal, or ``service_unavailable``.
        """
        return self._send("GET", path, headers={"Accept": "*/*"}).content

    def _send(self, method: str, path: str, **options: Any) -> httpx.Response:
        headers = {"X-Request-Id": uuid.uuid4().hex, **options.pop("headers", {})}
        where = f"{self.url}{path}"
        # One retry on a connection failure: a GET is safe to repeat, and a POST carries the same
        # Idempotency-Key, so a request that did reach the service is answered, not applied, again.
        for attempt in (1, 2):
            try:
                response = self._http.request(method, path, headers=headers, **options)
                break
            except httpx.TimeoutException as exc:
                if attempt == 2 or not isinstance(exc, httpx.ConnectTimeout):
                    raise _unavailable(where, f"no answer within the timeout ({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                if attempt == 2:
                    raise _unavailable(where, f"cannot connect ({_reason(exc)})") from None
        if response.status_code >= 400:
            raise _refusal(response, where)
        return response


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[:_QUOTE]


def _unavailable(where: str, why: str) -> CharterError:
    return CharterError.single("service_unavailable", f"the Charter service at {where} is unavailable: {why}")


def _json(response: httpx.Response, url: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise _unavailable(str(response.request.url.copy_with(query=None)),
                           f"status {response.status_code} with a body that is not JSON") from None


def _refusal(response: httpx.Response, where: str) -> CharterError:
    """The `CharterError` of a 4xx or 5xx answer: a problem's own items, else the status."""
    problem: dict[str, Any] = {}
    if response.headers.get("content-type", "").split(";")[0].strip() in (_PROBLEM, "application/json"):
        try:
            parsed = response.json()
        except ValueError:
            parsed = None
        problem = parsed if isinstance(parsed, dict) else {}
    detail = str(problem.get("detail") or response.text[:_QUOTE] or response.reason_phrase)
    request_id = response.headers.get("x-request-id")
    diagnostics = []
    for item in problem.get("errors") or []:
        if isinstance(item, dict) and item.get("code") and item.get("message"):
            line = item.get("line")
            diagnostics.append(Diagnostic(str(item["code"]), str(item["message"]), Location(
                file=item.get("file"), line=line if isinstance(line, int) else None, path=item.get("path"))))
    if response.status_code >= 500 and not (diagnostics and all(d.code in _KEPT for d in diagnostics)):
        code = str(problem.get("type", "")).rpartition(":")[2] or f"http_{response.status_code}"
        quoted = f" (request {request_id})" if request_id else ""
        return _unavailable(where, f"{response.status_code} {code}: {detail}{quoted}")
    if not diagnostics:
        code = str(problem.get("type", "")).rpartition(":")[2] or {401: "unauthenticated", 403: "forbidden",
                                                                   404: "not_found"}.get(response.status_code,
                                                                                         "service_refused")
        diagnostics.append(Diagnostic(code, f"{detail} (HTTP {response.status_code} from {where})"))
    return CharterError(diagnostics)
