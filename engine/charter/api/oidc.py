"""OpenID Connect bearer tokens: a person's signed JWT from the configured provider, checked against its keys.

`verify_with_jwks` is the one verification, against a given key set at a given time (the offline verifier passes
the key set archived in the ledger); `OIDCVerifier` keeps the provider's key set fresh and calls it.
"""

from __future__ import annotations

import base64
import copy
import hmac
import json
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx
import jwt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .._text import echo
from ..errors import CharterError
from ..ledger.keys import check_principal
from ..validation import collect_validation_errors

__all__ = ["ALGORITHMS", "REQUIRED_CLAIMS", "OIDCIdentity", "OIDCSettings", "OIDCVerifier", "fetch_json",
           "verify_with_jwks"]

#: The algorithms a provider may sign with, and the key type (and curves) each needs. Only asymmetric ones:
#: with HS* the verifier would need the signing secret, and a verifier fed a public key as an HMAC secret
#: accepts tokens anyone can forge.
ALGORITHMS: dict[str, tuple[str, frozenset[str] | None]] = {
    "RS256": ("RSA", None), "RS384": ("RSA", None), "RS512": ("RSA", None),
    "PS256": ("RSA", None), "PS384": ("RSA", None), "PS512": ("RSA", None),
    "ES256": ("EC", frozenset({"P-256"})), "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}

#: Algorithm names worth quoting back in a refusal (any other header value might be anything).
_KNOWN_ALGORITHMS = frozenset(jwt.algorithms.get_default_algorithms())

#: Claims every accepted token carries.
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")

#: Bearer tokens with many group claims reach a few KiB; far more than that is not a token.
_MAX_TOKEN_CHARS = 64 * 1024
#: Discovery documents and key sets are a few KiB; a provider answering more is broken or hostile.
_MAX_DOCUMENT_BYTES = 1024 * 1024
_FETCH_TIMEOUT_SECONDS = 5.0
#: After a failed fetch (or a stale set), ask the provider again this often at most.
_RETRY_SECONDS = 10.0
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_SHOWABLE_KID = re.compile(r"[A-Za-z0-9._:+/=-]{1,80}")

FetchJson = Callable[[str], Any]


# -- configuration ---------------------------------------------------------------------------------


def _check_url(value: str, what: str) -> str:
    """`value` if it is an https URL (or http to this machine, for tests and local providers)."""
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError as exc:
        raise ValueError(f"{what} {echo(value, 100)} is not a URL") from exc
    if not host or parts.scheme not in {"https", "http"} or (parts.scheme == "http" and host not in _LOOPBACK):
        raise ValueError(f"{what} {echo(value, 100)} must be an https URL (http only for localhost, 127.0.0.1 "
                         "or ::1)")
    return value


class OIDCSettings(BaseModel):
    """Which OpenID provider's tokens this service accepts, and for whom they must be issued.

    Times are in seconds. Build from a mapping with `OIDCSettings.from_mapping` to get a `CharterError`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str = Field(description="The provider's issuer identifier; a token's `iss` must equal it exactly.")
    audience: str = Field(min_length=1, description="This service's client or API id; a token's `aud` must "
                                                   "include it.")
    jwks_uri: str | None = Field(None, description="Where the provider publishes its keys; None: from "
                                                   "`<issuer>/.well-known/openid-configuration`.")
    principal_claim: str = Field("sub", min_length=1, description="The claim whose value is the Charter principal.")
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "EdDSA"], min_length=1,
                                  description="Signature algorithms accepted; asymmetric only.")
    leeway_seconds: int = Field(30, ge=0, le=300, description="Clock skew tolerated on exp, nbf and iat.")
    jwks_refresh_seconds: int = Field(300, ge=1, description="Least time between key set fetches caused by a "
                                                            "token naming an unknown key id.")
    jwks_max_age_seconds: int = Field(3600, ge=1, description="Fetch the key set again when it is this old, so "
                                                             "a key the provider withdrew stops being trusted.")

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        _check_url(value, "issuer")
        parts = urlsplit(value)
        if parts.query or parts.fragment:
            raise ValueError("an issuer has no query or fragment (OpenID Connect Discovery 1.0 §2)")
        return value

    @field_validator("jwks_uri")
    @classmethod
    def _jwks_uri(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value, "jwks_uri")

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, value: list[str]) -> list[str]:
        for name in value:
            if name.lower() == "none":
                raise ValueError("algorithm 'none' means an unsigned token; it is never accepted")
            if name.upper().startswith("HS"):
                raise ValueError(f"algorithm {echo(name, 20)} is symmetric: it needs the provider's secret, and a "
                                 "verifier that treats a public key as that secret accepts forged tokens; use "
                                 "RS256, ES256 or EdDSA")
            if name not in ALGORITHMS:
                raise ValueError(f"unknown algorithm {echo(name, 20)}; known: {', '.join(ALGORITHMS)}")
        return list(dict.fromkeys(value))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> OIDCSettings:
        """Settings from a configuration mapping.

        Raises:
            CharterError: ``oidc_config``, one diagnostic per problem, located by JSON path.
        """
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise CharterError(collect_validation_errors(exc, None, code="oidc_config")) from exc


# -- the verification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OIDCIdentity:
    """Who a verified token says the bearer is: the Charter principal and the provider's own names."""

    principal: str
    issuer: str
    subject: str
    claims: dict[str, Any]


def _refuse(why: str) -> NoReturn:
    raise CharterError.single("unauthenticated", f"OpenID Connect token refused: {why}")


class _KeySetError(ValueError):
    """A key set that is not a JWKS; the caller decides whose fault that is."""


def _jwk_list(jwks: object) -> list[dict[str, Any]]:
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise _KeySetError("the key set is not a JSON object with a list of keys")
    keys: list[dict[str, Any]] = jwks["keys"]
    if not all(isinstance(k, dict) for k in keys):
        raise _KeySetError("the key set holds a key that is not a JSON object")
    return keys


def _fits(jwk: Mapping[str, Any], alg: str) -> bool:
    """Whether `jwk` may verify a signature made with `alg`: key type, curve, and the key's own limits."""
    kty, curves = ALGORITHMS[alg]
    return (jwk.get("kty") == kty and (curves is None or jwk.get("crv") in curves)
            and jwk.get("alg", alg) == alg and jwk.get("use", "sig") == "sig"
            and (not isinstance(jwk.get("key_ops"), list) or "verify" in jwk["key_ops"]))


def _usable(jwk: Mapping[str, Any], algorithms: list[str]) -> bool:
    return any(_fits(jwk, alg) for alg in algorithms)


def _show_kid(kid: str) -> str:
    return repr(kid) if _SHOWABLE_KID.fullmatch(kid) else f"(a key id of {len(kid)} characters)"


def _header(token: object, settings: OIDCSettings) -> tuple[str, str | None]:
    """The token's algorithm and key id, once its shape and header pass; nothing here is trusted yet."""
    if not isinstance(token, str):
        _refuse("the token is not text")
    if len(token) > _MAX_TOKEN_CHARS:
        _refuse(f"the token has {len(token):,} characters; at most {_MAX_TOKEN_CHARS:,} are accepted")
    parts = token.split(".")
    # The signature part may be empty only so that an unsigned token is refused for what it is (alg none).
    if len(parts) != 3 or not parts[0] or not parts[1] or not all(_SEGMENT.fullmatch(p) for p in parts):
        _refuse("malformed token: not three base64url parts separated by dots (a signed JWT)")
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (ValueError, RecursionError):
        _refuse("malformed token: its header is not base64url-encoded JSON")
    if not isinstance(header, dict):
        _refuse("malformed token: its header is not a JSON object")
    if "crit" in header:
        # Critical extensions change how the token must be processed; we implement none of them.
        _refuse("its header lists critical extensions (crit), which this service does not implement")
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        _refuse("its header names no algorithm (alg)")
    if alg.lower() == "none":
        _refuse("it is unsigned (alg none)")
    if alg not in settings.algorithms:
        shown = repr(alg) if alg in _KNOWN_ALGORITHMS else "an unknown algorithm"
        _refuse(f"algorithm {shown} is not allowed (allowed: {', '.join(settings.algorithms)})")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        _refuse("malformed token: its key id (kid) is not a string")
    return alg, kid


def _select_key(alg: str, kid: str | None, jwks: object, settings: OIDCSettings) -> jwt.PyJWK:
    """The provider key that must have signed a token with this `alg` and `kid`."""
    try:
        keys = _jwk_list(jwks)
    except _KeySetError as exc:
        _refuse(str(exc))
    if kid is not None:
        candidates = [k for k in keys if k.get("kid") == kid]
        if not candidates:
            _refuse(f"unknown key id {_show_kid(kid)}: the provider's key set ({len(keys)} keys) has no such key")
    else:
        candidates = [k for k in keys if _usable(k, settings.algorithms)]
        if len(candidates) != 1:
            # With several keys, guessing would let a token pick the key (and so the algorithm) it is checked with.
            _refuse(f"it names no key id (kid) and the provider's key set has {len(candidates)} usable keys")
    fitting = [k for k in candidates if _fits(k, alg)]
    if not fitting:
        kinds = ", ".join(sorted({str(k.get("kty")) for k in candidates}))
        _refuse(f"algorithm {alg} does not fit the key it names (key type {kinds}, "
                f"{ALGORITHMS[alg][0]} needed, or the key is not for {alg} signatures)")
    try:
        return jwt.PyJWK(fitting[0], algorithm=alg)
    except jwt.PyJWTError as exc:
        _refuse(f"the provider's key cannot verify {alg} signatures ({type(exc).__name__})")


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        _refuse(f"claim {name} is not a number of seconds")
    try:
        seconds = float(value)
    except OverflowError:
        _refuse(f"claim {name} is out of range")
    if not math.isfinite(seconds):
        _refuse(f"claim {name} is not a number of seconds")
    return seconds


def _instant(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return f"{seconds:.0f} s after 1970"


def _check_times(claims: Mapping[str, Any], now: float, leeway: int) -> None:
    exp = _number(claims, "exp")
    if exp <= now - leeway:
        _refuse(f"expired at {_instant(exp)} (leeway {leeway} s)")
    if claims.get("nbf") is not None:
        nbf = _number(claims, "nbf")
        if nbf > now + leeway:
            _refuse(f"not yet valid: not before {_instant(nbf)} (leeway {leeway} s)")
    iat = _number(claims, "iat")
    if iat > now + leeway:
        _refuse(f"not yet valid: issued in the future, at {_instant(iat)} (leeway {leeway} s)")


def _decode(token: str, key: jwt.PyJWK, settings: OIDCSettings) -> dict[str, Any]:
    """The claims, once signature, algorithm, issuer, audience and required claims pass."""
    try:
        # PyJWT checks exp, nbf and iat against its own reading of the clock, so `at` (an archived token's
        # time) could not be honoured: _check_times does those checks, with the leeway, for both uses.
        return jwt.decode(token, key=key, algorithms=settings.algorithms, audience=settings.audience,
                          issuer=settings.issuer,
                          options={"require": list(REQUIRED_CLAIMS), "verify_exp": False, "verify_nbf": False,
                                   "verify_iat": False, "enforce_minimum_key_length": True})
    except jwt.InvalidSignatureError:
        _refuse("bad signature: the token was not signed by the provider's key it names, or was altered")
    except jwt.MissingRequiredClaimError as exc:
        _refuse(f"missing claim {exc.claim}")
    except jwt.InvalidAudienceError:
        _refuse(f"wrong audience: the token is not issued for {settings.audience!r}")
    except jwt.InvalidIssuerError:
        _refuse(f"wrong issuer: the token was not issued by {settings.issuer!r}")
    except jwt.InvalidAlgorithmError:
        _refuse(f"algorithm not allowed (allowed: {', '.join(settings.algorithms)})")
    except jwt.InvalidKeyError:
        _refuse("the provider's key is too weak or of the wrong kind for the token's algorithm")
    except jwt.DecodeError:
        _refuse("malformed token: its payload or signature cannot be decoded")
    except jwt.exceptions.InvalidSubjectError:
        _refuse("claim sub is not a string")
    except jwt.PyJWTError as exc:
        # The library's message may quote token content; its class names the reason well enough.
        _refuse(f"invalid token ({type(exc).__name__})")


def verify_with_jwks(token: str, jwks: dict[str, Any], settings: OIDCSettings, nonce: str | None = None,
                     at: datetime | None = None) -> OIDCIdentity:
    """Verify a provider's signed JWT against a given key set, as of a given time.

    The one verification: `OIDCVerifier` calls it with the provider's current keys and the current time; the
    offline verifier with the key set archived in the ledger and the time the token was presented.

    Args:
        token: the compact JWS (``header.payload.signature``).
        jwks: the provider's JSON Web Key Set (``{"keys": [...]}``).
        settings: issuer, audience, algorithms, principal claim and leeway to check against.
        nonce: if given, the token's ``nonce`` claim must equal it (an ID token bound to a request).
        at: the time to check ``exp``, ``nbf`` and ``iat`` against (timezone-aware); default now.

    Returns:
        The identity: principal (from `settings.principal_claim`), issuer, subject and all claims.

    Raises:
        CharterError: ``unauthenticated``, naming why (never quoting the token).
        ValueError: `at` is a naive datetime.
    """
    if at is not None and at.tzinfo is None:
        raise ValueError("verify_with_jwks needs a timezone-aware time")
    alg, kid = _header(token, settings)
    key = _select_key(alg, kid, jwks, settings)
    claims = _decode(token, key, settings)
    _check_times(claims, (at or datetime.now(UTC)).timestamp(), settings.leeway_seconds)
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject:
        _refuse("claim sub is empty")
    claim = settings.principal_claim
    value = claims.get(claim)
    if value is None:
        _refuse(f"missing claim {claim}")
    if not isinstance(value, str):
        _refuse(f"claim {claim} (the principal) is not a string")
    try:
        principal = check_principal(value)
    except CharterError as exc:
        _refuse(f"claim {claim} is not a usable principal: {exc.diagnostics[0].message}")
    if nonce is not None:
        token_nonce = claims.get("nonce")
        if token_nonce is None:
            _refuse("missing claim nonce")
        # compare_digest on str needs ASCII; a non-ASCII nonce never equals a digest anyway.
        if (not isinstance(token_nonce, str) or not token_nonce.isascii() or not nonce.isascii()
                or not hmac.compare_digest(token_nonce, nonce)):
            _refuse("nonce does not match: the sign-in was not made for this request")
    return OIDCIdentity(principal=principal, issuer=claims["iss"], subject=subject, claims=claims)


# -- the provider's keys ---------------------------------------------------------------------------


def _provider_error(url: str, why: str) -> CharterError:
    return CharterError.single("oidc_provider", f"OpenID provider unusable: {url} {why}")


def fetch_json(url: str) -> Any:
    """GET `url` and parse its JSON answer: 5 s timeout, at most 1 MiB, no redirects.

    Raises:
        CharterError: ``oidc_provider`` if the provider is unreachable or answers anything but JSON.
    """
    started = time.monotonic()
    body = bytearray()
    try:
        with (httpx.Client(timeout=_FETCH_TIMEOUT_SECONDS, follow_redirects=False) as client,
              client.stream("GET", url, headers={"Accept": "application/json"}) as response):
            if response.status_code != 200:
                raise _provider_error(url, f"answered HTTP {response.status_code}")
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > _MAX_DOCUMENT_BYTES:
                    raise _provider_error(url, f"answered more than {_MAX_DOCUMENT_BYTES:,} bytes")
                if time.monotonic() - started > _FETCH_TIMEOUT_SECONDS:
                    raise _provider_error(url, f"took more than {_FETCH_TIMEOUT_SECONDS:.0f} s to answer")
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise _provider_error(url, f"is unreachable ({type(exc).__name__})") from exc
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise _provider_error(url, "did not answer JSON") from exc


_default_fetch: FetchJson = fetch_json


@dataclass(frozen=True)
class _KeyCache:
    jwks: dict[str, Any]
    kids: frozenset[str]
    loaded_at: float


class OIDCVerifier:
    """Verifies bearer and ID tokens of one provider, keeping its key set cached and fresh.

    The key set is fetched on first use, again when it is `jwks_max_age_seconds` old, and when a token names a
    key id it does not hold (a rotation), but never more often than every `jwks_refresh_seconds`, so tokens
    with made-up key ids cannot make us hammer the provider. Safe to share between threads.

    Args:
        settings: the provider and what its tokens must say.
        fetch_json: GET a URL and return its parsed JSON, raising ``CharterError("oidc_provider")`` on failure;
            default `fetch_json` (httpx).
        clock: monotonic seconds, for the refresh limits (tests pass their own).
    """

    def __init__(self, settings: OIDCSettings, fetch_json: FetchJson | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._fetch: FetchJson = fetch_json or _default_fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: _KeyCache | None = None
        self._fetched_at: float | None = None
        self._kid_refresh_at: float | None = None
        self._last_error: CharterError | None = None
        self._jwks_uri = settings.jwks_uri

    def verify(self, token: str) -> OIDCIdentity:
        """The identity a bearer token proves.

        Raises:
            CharterError: ``unauthenticated`` naming why the token is refused; ``oidc_provider`` if the
                provider's keys are needed and cannot be fetched.
        """
        return self._verify(token, None)

    def verify_id_token(self, token: str, nonce: str) -> OIDCIdentity:
        """The identity an ID token proves, if it was issued for `nonce` (a step-up sign-in for one request).

        Raises:
            CharterError: as `verify`; also ``unauthenticated`` if the ``nonce`` claim is missing or differs.
        """
        if not nonce:
            raise ValueError("verify_id_token needs a non-empty nonce")
        return self._verify(token, nonce)

    def jwks(self) -> dict[str, Any]:
        """A copy of the key set trusted now, as the provider published it (for archiving in the ledger).

        Raises:
            CharterError: ``oidc_provider`` if no key set could be fetched.
        """
        return copy.deepcopy(self._keys_for(None))

    def _verify(self, token: str, nonce: str | None) -> OIDCIdentity:
        _, kid = _header(token, self.settings)
        return verify_with_jwks(token, self._keys_for(kid), self.settings, nonce=nonce)

    def _keys_for(self, kid: str | None) -> dict[str, Any]:
        """The key set to check a token naming `kid` with, fetched again if that is due and allowed."""
        cache = self._cache
        if cache is not None and not self._stale(cache) and (kid is None or kid in cache.kids):
            return cache.jwks
        with self._lock:
            # Another thread may have fetched while this one waited.
            cache = self._cache
            now = self._clock()
            retry = min(self.settings.jwks_refresh_seconds, _RETRY_SECONDS)
            # Only a failed fetch holds back the next one; a successful one is limited by its own rules.
            may_retry = self._last_error is None or self._fetched_at is None or now - self._fetched_at >= retry
            if cache is None or self._stale(cache):
                due = may_retry
            elif kid is not None and kid not in cache.kids:
                # A rotation: the provider signs with a key published after our fetch. Anyone can send a
                # made-up kid, so this kind of refresh has its own, longer, limit.
                due = may_retry and (self._kid_refresh_at is None
                                     or now - self._kid_refresh_at >= self.settings.jwks_refresh_seconds)
                if due:
                    self._kid_refresh_at = now
            else:
                return cache.jwks
            if due:
                self._fetched_at = now
                try:
                    jwks = self._load()
                except CharterError as exc:
                    self._last_error = exc
                    # A stale set still holds the keys it held; only when there is none, or the token needs a key
                    # we could not fetch, is the provider's failure the answer.
                    if cache is None or (kid is not None and kid not in cache.kids):
                        raise
                    return cache.jwks
                self._last_error = None
                kids = frozenset(k["kid"] for k in jwks["keys"] if isinstance(k.get("kid"), str))
                self._cache = cache = _KeyCache(jwks, kids, now)
            if cache is None:
                assert self._last_error is not None  # no set and no fetch allowed: the last fetch failed
                raise self._last_error
            return cache.jwks

    def _stale(self, cache: _KeyCache) -> bool:
        return self._clock() - cache.loaded_at >= self.settings.jwks_max_age_seconds

    def _load(self) -> dict[str, Any]:
        """The provider's key set, checked to be a JWKS with at least one key for the allowed algorithms."""
        uri = self._jwks_uri or self._discover()
        document = self._fetch(uri)
        try:
            keys = _jwk_list(document)
        except _KeySetError as exc:
            raise _provider_error(uri, f"answered something else than a key set: {exc}") from exc
        if not any(_usable(k, self.settings.algorithms) for k in keys):
            raise _provider_error(uri, f"publishes no signing key for the allowed algorithms "
                                       f"({', '.join(self.settings.algorithms)})")
        return {"keys": copy.deepcopy(keys)}

    def _discover(self) -> str:
        """The provider's jwks_uri, from its discovery document (whose issuer must be ours)."""
        url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = self._fetch(url)
        if not isinstance(document, dict):
            raise _provider_error(url, "is not a JSON object")
        if document.get("issuer") != self.settings.issuer:
            # OpenID Connect Discovery 1.0 §4.3: a mismatch means this is not the provider we were configured for.
            raise _provider_error(url, f"names issuer {echo(document.get('issuer'), 100)}, not the configured "
                                       f"{self.settings.issuer!r}")
        uri = document.get("jwks_uri")
        try:
            self._jwks_uri = _check_url(uri, "jwks_uri") if isinstance(uri, str) else None
        except ValueError as exc:
            raise _provider_error(url, str(exc)) from exc
        if self._jwks_uri is None:
            raise _provider_error(url, "names no jwks_uri")
        return self._jwks_uri
