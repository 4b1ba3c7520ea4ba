"""Who is calling: an API token (pipelines, scripts) or an OpenID Connect bearer token (people).

Both arrive as ``Authorization: Bearer ...``. Charter's API tokens are recognisable by their
``chtr_`` prefix and are checked against the argon2id hashes recorded in the ledger; anything
else is taken as a JWT from the configured identity provider. Without a provider configured, only
API tokens authenticate. Every refusal is a 401 that says why, without echoing the credential.
"""

from __future__ import annotations

from ..access import SCOPES, Caller
from ..errors import CharterError
from ..ledger.store import Ledger
from .oidc import OIDCVerifier

__all__ = ["TOKEN_PREFIX", "Authenticator"]

TOKEN_PREFIX = "chtr_"
#: a bearer credential longer than this is refused before it is parsed
MAX_CREDENTIAL = 16 * 1024


class Authenticator:
    """Turns an ``Authorization`` header into a `Caller`, or refuses."""

    def __init__(self, ledger: Ledger, oidc: OIDCVerifier | None) -> None:
        self.ledger = ledger
        self.oidc = oidc

    def authenticate(self, authorization: str | None, request_id: str) -> Caller:
        """The caller a request's ``Authorization`` header proves.

        Raises:
            CharterError: ``unauthenticated`` (401) for a missing, malformed, unknown, expired or
                revoked credential; ``oidc_provider`` (503) when the identity provider cannot be reached.
        """
        from ..tokens import token_index

        if not authorization:
            raise CharterError.single("unauthenticated", "no credential: send Authorization: Bearer <API token or "
                                      "OpenID Connect token>")
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise CharterError.single("unauthenticated", "the Authorization header must be 'Bearer <token>'")
        if len(credential) > MAX_CREDENTIAL:
            raise CharterError.single("unauthenticated", "the bearer token is too long to be a credential")
        if credential.startswith(TOKEN_PREFIX):
            record = token_index(self.ledger).authenticate(credential, self.ledger.clock())
            return Caller(record.principal, "token", frozenset(record.scopes), token_id=record.token_id,
                          request_id=request_id)
        if self.oidc is None:
            raise CharterError.single("unauthenticated", "not a Charter API token, and this service has no OpenID "
                                      "Connect provider configured")
        identity = self.oidc.verify(credential)
        if "nonce" in identity.claims:
            # a step-up sign-in's ID token is recorded in the ledger, readable by governance roles: it
            # proves one transition and must never work as a login
            raise CharterError.single("unauthenticated", "an ID token bound to a nonce (a step-up sign-in) is not a "
                                      "bearer credential")
        return Caller(identity.principal, "oidc", frozenset(SCOPES), issuer=identity.issuer,
                      subject=identity.subject, request_id=request_id)
