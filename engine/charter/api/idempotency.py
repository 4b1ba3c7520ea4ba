"""``Idempotency-Key`` on POST: a retried request gets the first reply, never a second effect.

The first request with a key claims it (a row with no reply yet, under the database's primary key
on principal and key, so two workers cannot both claim it), runs, and stores its reply. A retry with
the same key and the same request (method, path, body digest) gets the stored reply; with another
request it is refused (422), and while the first is still running, the retry is told so (409).
Replies of 5xx and 409 are not kept: the client may retry those. A claim left without a reply for
`STALE_CLAIM` (its process died) is freed for the next retry. Keys are per principal, so one caller
cannot read another's replies by guessing their keys.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import CharterError
from ..ledger.records import format_time
from ..ledger.schema import api_request
from ..ledger.store import Ledger

__all__ = ["MAX_KEY_LENGTH", "Reply", "idempotent"]

MAX_KEY_LENGTH = 255
#: a claim with no reply after this long belongs to a request that will never answer (its process died)
STALE_CLAIM = datetime.timedelta(minutes=10)


@dataclass(frozen=True)
class Reply:
    """A reply to keep: status and JSON body."""

    status: int
    body: bytes
    replayed: bool = False


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What identifies a request for its key: method, path and the body's digest."""
    return hashlib.sha256(json.dumps([method, path, hashlib.sha256(body).hexdigest()]).encode()).hexdigest()


def _check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
        raise CharterError.single("invalid_request", f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII "
                                  "characters", path="header:Idempotency-Key")


def idempotent(ledger: Ledger, principal: str, key: str | None, request_fingerprint: str, ttl_hours: int,
               run: Callable[[], Reply]) -> Reply:
    """Run `run` once per (principal, key); without a key, just run it.

    Raises:
        CharterError: ``idempotency_key_reused`` (422) for the same key with another request;
            ``idempotency_in_flight`` (409) while the first request with the key is running.
    """
    if key is None:
        return run()
    _check_key(key)
    now = ledger.clock()
    expired = format_time(now - datetime.timedelta(hours=ttl_hours))
    where = (api_request.c.principal == principal) & (api_request.c.idempotency_key == key)
    with ledger.engine.begin() as connection:
        connection.execute(delete(api_request).where(api_request.c.created_at < expired))
        try:
            connection.execute(insert(api_request).values(principal=principal, idempotency_key=key,
                                                          fingerprint=request_fingerprint, status=None,
                                                          response=None, created_at=format_time(now)))
            claimed = True
        except IntegrityError:
            claimed = False
    if not claimed:
        with ledger.engine.connect() as connection:
            row = connection.execute(select(api_request).where(where)).one_or_none()
        if row is None:  # it expired or failed between our insert and this read: the key is free again
            return idempotent(ledger, principal, key, request_fingerprint, ttl_hours, run)
        if row.fingerprint != request_fingerprint:
            raise CharterError.single("idempotency_key_reused", "this Idempotency-Key was used for another request "
                                      "(method, path or body differ); use a new key for a new request",
                                      path="header:Idempotency-Key")
        if row.status is None and row.created_at < format_time(now - STALE_CLAIM):
            # the process answering it died (or could not store its reply): free the key for this retry
            with ledger.engine.begin() as connection:
                connection.execute(delete(api_request).where(where & (api_request.c.created_at == row.created_at)
                                                             & api_request.c.status.is_(None)))
            return idempotent(ledger, principal, key, request_fingerprint, ttl_hours, run)
        if row.status is None:
            raise CharterError.single("idempotency_in_flight", "the first request with this Idempotency-Key is "
                                      "still being answered; retry later", path="header:Idempotency-Key")
        return Reply(int(row.status), bytes(row.response), replayed=True)
    try:
        reply = run()
    except CharterError as exc:
        from .problems import charter_error_response

        response = charter_error_response(None, exc)
        if response.status_code >= 500 or response.status_code == 409:  # try again later: keep nothing
            _release(ledger, where)
            raise
        _store(ledger, where, Reply(response.status_code, bytes(response.body)))
        raise
    except BaseException:
        _release(ledger, where)
        raise
    if reply.status >= 500 or reply.status == 409:
        _release(ledger, where)
    else:
        _store(ledger, where, reply)
    return reply


def _store(ledger: Ledger, where: object, reply: Reply) -> None:
    with ledger.engine.begin() as connection:
        connection.execute(update(api_request).where(where).values(status=reply.status,  # type: ignore[arg-type]
                                                                   response=reply.body))


def _release(ledger: Ledger, where: object) -> None:
    with ledger.engine.begin() as connection:
        connection.execute(delete(api_request).where(where))  # type: ignore[arg-type]
