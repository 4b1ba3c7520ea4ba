"""API tokens: how pipelines and scripts authenticate to Charter's service, recorded in the ledger.

A token is shown once, as ``chtr_<token_id>_<secret>``; the ledger keeps only its argon2id hash,
principal, scopes and expiry, in a ``token.created`` statement signed by the principal or an
administrator (`charter.ledger.auditor.Authority` checks it, here and in `verify`); a signed
``token.revoked`` ends it. `token_index` answers "whose token is this?" for each request.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import re
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import Argon2Error, InvalidHashError

from .authority import Signer, signed_entry
from .errors import CharterError
from .ledger.auditor import TOKEN_CREATED, TOKEN_REVOKED, TOKEN_SCOPES
from .ledger.keys import check_principal
from .ledger.records import Entry, NewEntry, format_time
from .ledger.store import Ledger

__all__ = ["TOKEN_PREFIX", "TokenIndex", "TokenRecord", "create_token", "parse_token", "record_token",
           "revoke_token", "token_index", "token_statement"]

#: what every presented token starts with (so secret scanners and people recognise one)
TOKEN_PREFIX = "chtr_"
#: the token text: prefix, 16 hex digits of lookup id, 32 random bytes in unpadded urlsafe base64 (43 characters)
_TOKEN = re.compile(r"chtr_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_SECRET_BYTES = 32

# argon2id at OWASP's minimum recommendation (m=19 MiB, t=2, p=1). The secret is 256 random bits,
# so no amount of hashing cost is what stops guessing it: the hash only keeps a stolen database
# from yielding usable tokens, which any preimage-resistant hash does. The cost is paid by the
# service on every first sight of a token (about 40 ms and 19 MiB per verification, per worker),
# so we take the least that the standard accepts rather than a higher setting that buys nothing.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
#: sha256 of presented texts that verified once -> their token id (bounded; see `TokenIndex.authenticate`)
_MAX_VERIFIED_CACHE = 10_000


@dataclass(frozen=True)
class TokenRecord:
    """A token as the ledger records it (never its secret or hash)."""

    token_id: str
    principal: str
    scopes: tuple[str, ...]
    expires_at: datetime.datetime
    created_seq: int
    revoked_seq: int | None

    def status(self, at: datetime.datetime) -> str:
        """``revoked``, ``expired`` (at `at`) or ``active``."""
        if self.revoked_seq is not None:
            return "revoked"
        return "expired" if at >= self.expires_at else "active"


def parse_token(presented: str) -> tuple[str, str]:
    """The (token id, secret) of a presented token text.

    Raises:
        CharterError: ``unauthenticated`` when the text is not a Charter token.
    """
    match = _TOKEN.fullmatch(presented) if isinstance(presented, str) else None
    if match is None:
        raise CharterError.single("unauthenticated", "malformed token: expected chtr_<16 hex digits>_<43 "
                                  "base64url characters>")
    return match.group(1), match.group(2)


def _check_scopes(scopes: Sequence[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(TOKEN_SCOPES))
    if not scopes or unknown:
        detail = f"; unknown: {', '.join(unknown)}" if unknown else ""
        raise CharterError.single("token_request", f"a token needs at least one scope among "
                                  f"{', '.join(TOKEN_SCOPES)}{detail}")
    return sorted(set(scopes))


def token_statement(principal: str, scopes: Sequence[str], expires_at: datetime.datetime
                    ) -> tuple[dict[str, Any], str]:
    """A new token for `principal`: the fields of its ``token.created`` statement, and the token text.

    The text is shown once and never stored: the statement carries its argon2id hash.

    Raises:
        CharterError: ``token_request`` for an unknown scope, none, or an expiry without a timezone;
            ``principal`` for a malformed principal.
    """
    if expires_at.tzinfo is None:
        raise CharterError.single("token_request", "the expiry needs a timezone")
    token_id = secrets.token_hex(8)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(_SECRET_BYTES)).rstrip(b"=").decode()
    text = f"{TOKEN_PREFIX}{token_id}_{secret}"
    fields = {"token_id": token_id, "principal": check_principal(principal), "scopes": _check_scopes(scopes),
              "expires_at": format_time(expires_at), "hash": _HASHER.hash(text)}
    return fields, text


def record_token(ledger: Ledger, fields: dict[str, Any], signer: Signer) -> Entry:
    """Append a ``token.created`` statement with these fields (from `token_statement`), signed by `signer`.

    Raises:
        CharterError: what `Authority.check` refuses: a signer who is neither the principal nor an
            administrator (or holds the auditor role), a reused token id, an expiry not after the
            signing time or more than 366 days after it, a malformed hash or scope.
    """
    def build(next_seq: int) -> list[NewEntry]:
        return [signed_entry(ledger, TOKEN_CREATED, fields, signer, subject=str(fields.get("principal")),
                             size=next_seq)]
    return ledger.append(build)[0]


def create_token(ledger: Ledger, principal: str, scopes: Sequence[str], expires_at: datetime.datetime,
                 signer: Signer) -> tuple[Entry, str]:
    """Create and record a token for `principal`, as `signer` (the principal or an administrator).

    Returns:
        The ``token.created`` entry, and the token text (show it once; it is not kept anywhere).

    Raises:
        CharterError: see `token_statement` and `record_token`.
    """
    fields, text = token_statement(principal, scopes, expires_at)
    return record_token(ledger, fields, signer), text


def revoke_token(ledger: Ledger, token_id: str, reason: str, signer: Signer) -> Entry:
    """Revoke a token from the next seq on, as its principal or an administrator.

    Raises:
        CharterError: ``unknown_token`` or ``token_revoked`` (already revoked), or what the authority refuses;
            an id or reason that is not a string, or a reason over `MAX_TEXT` characters.
    """
    from .validation import statement_text

    statement_text(token_id, "token_id")
    statement_text(reason, "reason")

    def build(next_seq: int) -> list[NewEntry]:
        known = ledger.authority(next_seq).tokens.get(token_id)
        if known is None:
            raise CharterError.single("unknown_token", f"no token {token_id} was created in this ledger")
        if known[4] is not None:
            raise CharterError.single("token_revoked", f"token {token_id} was already revoked at seq {known[4]}")
        return [signed_entry(ledger, TOKEN_REVOKED, {"token_id": token_id, "reason": reason}, signer,
                             subject=str(known[0]), size=next_seq)]
    return ledger.append(build)[0]


def _record(token_id: str, known: list[Any]) -> TokenRecord:
    return TokenRecord(token_id, str(known[0]), tuple(known[1]), datetime.datetime.fromisoformat(known[2]),
                       int(known[3]), None if known[4] is None else int(known[4]))


class TokenIndex:
    """The tokens of one ledger, as its authority state folds them (only entries the rule allowed).

    Use `token_index` to get the one for a ledger: it refreshes the index when the ledger grew.

    Args:
        ledger: the ledger whose tokens to index.
    """

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._lock = threading.Lock()
        self._size = -1
        self._records: dict[str, TokenRecord] = {}
        self._hashes: dict[str, str] = {}
        #: sha256 of a presented text -> token id, for texts whose argon2id hash verified once
        self._verified: dict[bytes, str] = {}

    def refresh(self) -> None:
        """Read what the ledger appended since the last refresh (one size query when nothing was)."""
        size = self._ledger.size()
        if size == self._size:
            return
        with self._lock:
            if size == self._size:
                return
            tokens = self._ledger.authority(size).tokens
            # Build, then swap whole dicts: concurrent readers see the old state or the new one.
            records = {token_id: _record(token_id, known) for token_id, known in tokens.items()}
            self._hashes = {token_id: str(known[5]) for token_id, known in tokens.items()}
            self._records, self._size = records, size

    def records(self) -> list[TokenRecord]:
        """Every token ever created, by the seq that created it."""
        return sorted(self._records.values(), key=lambda r: r.created_seq)

    def authenticate(self, presented: str, at: datetime.datetime) -> TokenRecord:
        """The token a caller presented, if it is one of this ledger's, its secret right, and live at `at`.

        The argon2id verification is costly, so a presented text that verified once is remembered
        (by its SHA-256, in this process); revocation and expiry are checked on every call. The
        message says only whether the text was malformed, expired, or unknown or revoked: a wrong
        secret reads like an unknown token.

        Raises:
            CharterError: ``unauthenticated``.
        """
        token_id, _ = parse_token(presented)
        record, stored = self._records.get(token_id), self._hashes.get(token_id)
        if record is None or stored is None or record.revoked_seq is not None:
            raise CharterError.single("unauthenticated", "unknown or revoked token")
        digest = hashlib.sha256(presented.encode()).digest()
        if self._verified.get(digest) != token_id:
            try:
                _HASHER.verify(stored, presented)
            except (Argon2Error, InvalidHashError):
                raise CharterError.single("unauthenticated", "unknown or revoked token") from None
            if len(self._verified) >= _MAX_VERIFIED_CACHE:
                self._verified.clear()  # rare: a process sees few distinct tokens; dropping all is simplest
            self._verified[digest] = token_id
        if at >= record.expires_at:
            raise CharterError.single("unauthenticated", "expired token")
        return record


def token_index(ledger: Ledger) -> TokenIndex:
    """The token index of `ledger`, refreshed if the ledger grew; cheap enough to call per request."""
    index = ledger.kept("tokens.index", lambda: TokenIndex(ledger))
    index.refresh()
    return index
