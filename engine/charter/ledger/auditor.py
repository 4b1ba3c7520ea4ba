#!/usr/bin/env python3
"""Charter ledger auditor: verifies a ledger from its entries, checkpoints and pinned log key.

This file is deliberately self-contained: it imports only the standard library, ``cryptography``
and ``rfc8785``, so an auditor can run it on an export (``charter ledger export DIR``) with neither
the database nor the rest of Charter:

    python verify.py EXPORT_DIR --log-key ed25519:FINGERPRINT [--checkpoint NOTE_FILE]...

It trusts only what you hold: the log key's fingerprint you obtained out of band, or a checkpoint
note you kept. Without either it still checks everything, but reports ``unanchored`` and exits 3,
because a history rewritten under a new key would be just as consistent with the key it carries.

Charter's own ``charter verify`` runs the same code over the database. Checks, streamed in constant
memory: every body is canonical JSON (RFC 8785; ``rfc8785`` is the reference, with a faster
standard-library path where it provably gives the same bytes) of the right log; sequence numbers are
dense from 0; each body names the previous record hash; each record hash is SHA-256(0x00 || body)
and is covered by the log's receipt signature (one per append transaction, over the Merkle root of
its entries; ledgers written before range receipts carry one per entry); bundles are signed by a key
registered to the system's owner and valid at that sequence number (keys are added and revoked by
ledger entries); receipt times never go back; checkpoint notes are signed by the pinned log key and
their roots match the entries. Entries after the last matching checkpoint are reported as not
covered: their absence could not be detected. Authority: entry 0 is the governance configuration,
and every change of governance state is signed by a key registered to an actor whose role, under
the configuration then in force, allows it (`Authority`); a key no key of its principal endorses
counts only once ``key_approvals`` administrators have each approved it; the export's head and checkpoint rows must
agree with the entries and notes. An entry written through Charter's API records who asked for it
(``via``: the authenticated principal, how, and the request id); a token named there must have been
valid at that entry, issued to that principal and scoped for the write, and a signed entry must be
signed by that principal's key.
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ZERO_HASH = bytes(32)
EMPTY_ROOT = hashlib.sha256(b"").digest()
BUNDLE_CONTEXT = b"charter-bundle/v1\n"
RECEIPT_CONTEXT = b"charter-receipt/v1\n"
RANGE_RECEIPT_CONTEXT = b"charter-receipt/v2\n"
_DASH = "\u2014"


_MAX_SAFE_INT = 2**53 - 1
_RFC3339_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _in_fast_profile(value: Any) -> bool:
    """Whether the standard library's sorted, compact JSON is byte-identical to RFC 8785 for `value`.

    That holds for null, booleans, strings, integers within +-(2^53 - 1), non-integral floats with
    1e-4 <= |x| < 1e15 (where Python's shortest repr and ECMAScript's number-to-string agree), and
    objects whose keys are below U+D800 (so code-point order equals UTF-16 order). Anything else
    takes the reference implementation. A property test holds the two paths to equality.
    """
    # Iterative, with exact-type checks first: this runs on every body appended, and the common case
    # is a few dozen plain dicts, strings and floats. Subclasses take the general checks below.
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is str or item is None or kind is bool:
            continue
        if kind is dict:
            for key, child in item.items():
                if not (isinstance(key, str) and (key.isascii() or max(key) < "\ud800")):
                    return False
                pending.append(child)
        elif kind is float:
            if item.is_integer() or not 1e-4 <= abs(item) < 1e15:
                return False
        elif kind is int:
            if not -_MAX_SAFE_INT <= item <= _MAX_SAFE_INT:
                return False
        elif kind is list or kind is tuple:
            pending.extend(item)
        elif not _in_fast_profile_general(item):
            return False
    return True


def _in_fast_profile_general(value: Any) -> bool:
    """`_in_fast_profile` by `isinstance`, for subclasses of the JSON types (enums, say)."""
    if value is None or isinstance(value, bool | str):
        return True
    if isinstance(value, int):
        return -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT
    if isinstance(value, float):
        return not value.is_integer() and 1e-4 <= abs(value) < 1e15
    if isinstance(value, dict):
        return all(isinstance(k, str) and (k.isascii() or max(k) < "\ud800") and _in_fast_profile(v)
                   for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_in_fast_profile(v) for v in value)
    return False


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON: a fast standard-library path inside its proven profile, else ``rfc8785``."""
    if _in_fast_profile(value):
        try:
            return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: let the reference implementation reject it
    return rfc8785.dumps(value)


def leaf_hash(body: bytes) -> bytes:
    """SHA-256(0x00 || body)."""
    return hashlib.sha256(b"\x00" + body).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def receipt_message(origin: str, seq: int, record_hash: bytes) -> bytes:
    """What the log signed per entry before range receipts: canonical ``{origin, seq, record_hash}``."""
    return canonical_json({"log": origin, "record_hash": record_hash.hex(), "seq": seq})


def range_receipt_message(origin: str, first: int, size: int, root: bytes) -> bytes:
    """What the log signs for one append transaction: entries ``first..size-1`` have Merkle root `root`.

    One signature per transaction instead of one per entry; an entry's own receipt is this plus
    an RFC 6962 inclusion proof of its record hash (leaf ``seq - first``) in the range's tree.
    """
    return canonical_json({"first": first, "log": origin, "root": root.hex(), "size": size})


@functools.lru_cache(maxsize=256)
def _public_key(public: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(public)


def verify_signature(public: bytes, context: bytes, message: bytes, signature_b64: str) -> bool:
    """Whether `signature_b64` is a valid Ed25519 signature by `public` over ``context || message``."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        _public_key(public).verify(signature, context + message)
    except (InvalidSignature, ValueError):
        return False
    return True


class CompactRange:
    """Incremental RFC 6962 root: the roots of the perfect subtrees covering the leaves so far."""

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[bytes] = []

    def append(self, leaf: bytes) -> None:
        """Add the next leaf hash."""
        self._stack.append(leaf)
        self.size += 1
        for _ in range((self.size & -self.size).bit_length() - 1):
            right = self._stack.pop()
            self._stack.append(node_hash(self._stack.pop(), right))

    @property
    def frontier(self) -> list[bytes]:
        """The roots of the perfect subtrees covering the leaves, largest first: enough to extend the tree."""
        return list(self._stack)

    @classmethod
    def resume(cls, size: int, frontier: list[bytes]) -> CompactRange:
        """A range of `size` leaves continued from its `frontier` (one root per set bit of `size`).

        Raises:
            ValueError: the frontier does not fit `size`.
        """
        if size < 0 or len(frontier) != bin(size).count("1") or any(len(h) != 32 for h in frontier):
            raise ValueError(f"a frontier of {len(frontier)} hashes cannot describe {size} leaves")
        resumed = cls()
        resumed.size = size
        resumed._stack = list(frontier)
        return resumed

    def root(self) -> bytes:
        """The root of all leaves so far."""
        if not self._stack:
            return EMPTY_ROOT
        result = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            result = node_hash(left, result)
        return result


def inclusion_root(leaf: bytes, index: int, size: int, proof: Iterable[bytes]) -> bytes:
    """The root an RFC 9162 inclusion proof leads to from `leaf` at `index` in a tree of `size` (section 2.1.3.2).

    Raises:
        ValueError: the proof cannot belong to such a tree.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn = index, size - 1
    result = leaf
    for sibling in proof:
        if len(sibling) != 32:
            raise ValueError("a proof hash is not 32 bytes")
        if sn == 0:
            raise ValueError("the proof is longer than the tree is deep")
        if fn % 2 == 1 or fn == sn:
            result = node_hash(sibling, result)
            while fn % 2 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("the proof is shorter than the tree is deep")
    return result


def check_receipt(receipt: dict[str, Any], origin: str, log_public_key: bytes) -> bool:
    """Whether a receipt (as ``charter submit`` prints it) is the pinned log's promise for its entry.

    A per-entry receipt is a signature over ``{log, seq, record_hash}``; a range receipt is the
    signature over its transaction's Merkle root plus the entry's inclusion proof in that range.
    """
    try:
        seq, record_hash = int(receipt["seq"]), bytes.fromhex(str(receipt["record_hash"]))
        if receipt.get("log") != origin:
            return False
        covering = receipt.get("range")
        if covering is None:
            return verify_signature(log_public_key, RECEIPT_CONTEXT, receipt_message(origin, seq, record_hash),
                                    str(receipt["signature"]))
        first, size, root = int(covering["first"]), int(covering["size"]), bytes.fromhex(str(covering["root"]))
        proof = [base64.b64decode(h, validate=True) for h in receipt["proof"]]
        if inclusion_root(record_hash, seq - first, size - first, proof) != root:
            return False
        return verify_signature(log_public_key, RANGE_RECEIPT_CONTEXT, range_receipt_message(origin, first, size, root),
                                str(receipt["signature"]))
    except (KeyError, TypeError, ValueError):
        return False


# -- checkpoints (C2SP signed notes) --------------------------------------------------------------


class NoteError(ValueError):
    """A checkpoint note that is malformed or not validly signed."""


def note_key_hash(name: str, public: bytes) -> bytes:
    """The 4-byte key hash naming a key in a signed note."""
    return hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4]


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint: the first `size` entries of `origin` have Merkle root `root`."""

    origin: str
    size: int
    root: bytes
    note: str


def open_checkpoint(note: str, origin: str, public: bytes) -> Checkpoint:
    """Parse a checkpoint note and check the pinned log key's signature on it.

    Raises:
        NoteError: what is wrong with the note.
    """
    body, sep, signatures = note.partition("\n\n")
    if not sep:
        raise NoteError("no blank line between body and signatures")
    body += "\n"
    lines = body.split("\n")[:-1]
    if len(lines) != 3:
        raise NoteError(f"a checkpoint body has 3 lines, this one has {len(lines)}")
    if any(ord(ch) < 0x20 for line in lines for ch in line):
        raise NoteError("control characters in the body")
    note_origin, size_text, root_text = lines
    if note_origin != origin:
        raise NoteError(f"origin {note_origin!r} is not the pinned origin {origin!r}")
    if not (size_text.isascii() and size_text.isdigit()) or (size_text != "0" and size_text.startswith("0")):
        raise NoteError(f"size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except ValueError as exc:
        raise NoteError("root is not base64") from exc
    if len(root) != 32:
        raise NoteError("root is not 32 bytes")
    wanted = note_key_hash(origin, public)
    verified = False
    for line in signatures.splitlines():
        if not line:
            continue
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH:
            raise NoteError(f"malformed signature line {line!r}")
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except ValueError as exc:
            raise NoteError("signature is not base64") from exc
        if parts[1] != origin or blob[:4] != wanted:
            continue  # a signature by some other key is not ours to judge
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(blob[4:], body.encode())
        except InvalidSignature as exc:
            raise NoteError("the log key's signature does not verify") from exc
        verified = True
    if not verified:
        raise NoteError("no signature by the pinned log key")
    return Checkpoint(origin, int(size_text), root, note)


def checkpoint_row_problems(rows: Iterable[tuple[int, bytes, str]], origin: str, public: bytes) -> list[Problem]:
    """Stored checkpoint rows ``(size, root, note)`` whose columns differ from the signed note they keep.

    The note is what is signed; a row whose size or root column says otherwise misleads anyone who
    reads the columns (a report's binding, a proof's tree size) instead of the note.
    """
    problems = []
    for size, root, note in rows:
        try:
            signed = open_checkpoint(note, origin, public)
        except NoteError:
            continue  # the verifier reports the note itself
        if (signed.size, signed.root) != (size, root):
            problems.append(Problem(None, "checkpoint_row_mismatch", f"the checkpoint row of size {size} stores "
                                    "a size or root its signed note does not have"))
    return problems


# -- entry bodies ---------------------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number overflows")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


#: The deepest nesting of objects and arrays an entry body may have. Charter writes bodies a few
#: levels deep (the log refuses deeper ones when appending); the limit is explicit so that a verdict
#: never depends on how deep the verifying process's own stack is (the parser counts its recursion
#: against it, so a body nested ~980 deep parsed in one process and not in a forked one).
MAX_BODY_DEPTH = 200
_STRING_OR_BRACKET = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def nested_too_deeply(body: bytes, limit: int = MAX_BODY_DEPTH) -> bool:
    """Whether the JSON text `body` nests objects and arrays more than `limit` deep (brackets in strings
    do not count); quick for the usual body, which has fewer brackets in all than the limit."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(body):
        token = match.group()
        if token == b"[" or token == b"{":
            depth += 1
            if depth > limit:
                return True
        elif token == b"]" or token == b"}":
            depth -= 1
    return False


def _refuse_deep(body: bytes) -> None:
    if nested_too_deeply(body):
        raise ValueError(f"nested too deeply (more than {MAX_BODY_DEPTH} levels)")


def parse_body(body: bytes) -> dict[str, Any]:
    """Strictly parse an entry body (UTF-8 JSON object, no duplicate keys, finite numbers).

    Raises:
        ValueError: for anything that is not such an object, including nesting deeper than
            `MAX_BODY_DEPTH`.
    """
    _refuse_deep(body)
    try:
        value = json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicates,
                           parse_constant=_reject_constant, parse_float=_finite)
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc
    if not isinstance(value, dict):
        raise ValueError("a body is a JSON object")
    return value


class _OutsideFastProfile(ValueError):
    """A number the fast path does not vouch for (raised by its parse hooks, caught by it)."""


def _fast_float(text: str) -> float:
    # Python writes exponents (1e-05, 1e+16) and integral floats (1.0) unlike RFC 8785; only
    # non-integral floats below 1e15 in plain notation (so at least 1e-4) stay on the fast path.
    value = float(text)
    if "e" in text or "E" in text or value.is_integer() or not abs(value) < 1e15:
        raise _OutsideFastProfile(text)
    return value


def _fast_int(text: str) -> int:
    value = int(text)
    if not -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
        raise _OutsideFastProfile(text)
    return value


_FAST_DECODER = json.JSONDecoder(parse_float=_fast_float, parse_int=_fast_int)
_FAST_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
#: characters whose UTF-16 order may differ from their code-point order (keys sort by UTF-16 in RFC 8785)
_ORDER_MAY_DIFFER = re.compile("[\ud800-\U0010ffff]")


def parse_canonical_fast(body: bytes) -> dict[str, Any] | None:
    """The body parsed, when its bytes are provably canonical (RFC 8785); None when not proven.

    The standard library's C parser reads the body and its C encoder writes the value back, sorted
    and compact; the body is accepted only when those bytes are exactly the body's, every number is
    an integer within +-(2^53 - 1) or a non-integral float below 1e15 written without exponent (the
    parse hooks), and no character is U+D800 or above. Then the value is in `_in_fast_profile`,
    where `canonical_json` is that same standard-library serialisation: the body is its canonical
    form, and `parse_body` gives the same value. Duplicate keys, whitespace, escapes other than the
    canonical ones, other number spellings, NaN and infinities never survive the round trip. None
    sends the caller to `parse_body` and `canonical_json`, which accept or refuse exactly as before;
    a property test holds the two paths to agreement.
    """
    if nested_too_deeply(body):
        return None
    try:
        text = body.decode("utf-8")
        if not text.isascii() and _ORDER_MAY_DIFFER.search(text) is not None:
            return None
        value = _FAST_DECODER.decode(text)
        if type(value) is not dict or _FAST_ENCODER.encode(value).encode("utf-8") != body:
            return None
    except (ValueError, UnicodeError, RecursionError):  # _OutsideFastProfile and JSONDecodeError included
        return None
    return value


def parse_canonical(body: bytes) -> tuple[dict[str, Any], bool]:
    """Parse an entry body, and say whether its bytes are its canonical form (RFC 8785).

    `parse_canonical_fast` where it proves the answer, else `parse_body` and `canonical_json`.

    Raises:
        ValueError: the body does not parse (`parse_body`'s errors) or cannot be canonicalized.
    """
    fast = parse_canonical_fast(body)
    if fast is not None:
        return fast, True
    value = parse_body(body)
    try:
        canonical = canonical_json(value)
    except Exception as exc:  # rfc8785 raises its own errors for values outside JSON's domain
        raise _Uncanonicalizable(f"cannot be canonicalized: {exc}") from exc
    return value, canonical == body


class _Uncanonicalizable(ValueError):
    """A body that parses but has no canonical form (a big integer, say)."""


# -- authority ------------------------------------------------------------------------------------

ACTION_CONTEXT = b"charter-action/v1\n"
POSSESSION_CONTEXT = b"charter-key-possession/v1\n"
ENDORSEMENT_CONTEXT = b"charter-key-endorsement/v1\n"

GOVERNANCE_CONFIG = "governance.config"
KEY_ADDED = "key.added"
KEY_REVOKED = "key.revoked"
SYSTEM_REGISTERED = "system.registered"
POLICY_PUBLISHED = "policy.published"
POLICY_ACTIVATED = "policy.activated"
ESCALATION_ACTIVATED = "escalation.activated"
APPLICABILITY_ACTIVATED = "applicability.activated"
INCIDENT_TRANSITION = "incident.transition"
INCIDENT_OPENED = "incident.opened"
WAIVER_GRANTED = "waiver.granted"
EVIDENCE_DOCUMENT = "evidence.document"
EVIDENCE_ATTESTATION = "evidence.attestation"
EVIDENCE_WITHDRAWN = "evidence.withdrawn"
#: a named test or assessment performed on systems (bias audit, robustness test, drill), with its outcome
EVIDENCE_TEST_RESULT = "evidence.test_result"
#: a recorded occurrence showing a process ran (management review, internal audit, training, ...)
EVIDENCE_EVENT = "evidence.event"
#: an incident's validator classifies it as an EU AI Act serious incident (Art. 3(49)), or records that it is not
INCIDENT_CLASSIFIED = "incident.classified"
#: the reporting role records an Art. 73 report filed with a market surveillance authority
INCIDENT_REPORT_FILED = "incident.report_filed"
#: an API token issued to a principal (its argon2id hash, scopes and expiry), and its revocation
TOKEN_CREATED = "token.created"
TOKEN_REVOKED = "token.revoked"
BUNDLE = "bundle"
#: the actor the log names for what it does on its own (reopening an incident when a breach recurs)
AUTOMATIC_ACTOR = "charter"

#: roles of the governance configuration, and what each may do
AUTHORITY_ROLES = {"policy_author": "publish policy versions",
                   "policy_approver": "activate policy sets, escalation configurations and statements of "
                                      "applicability",
                   "system_registrar": "register systems, change their owner and classification",
                   "evidence_attester": "attest process controls and record documents, test results and events",
                   "auditor": "read everything, issue and verify reports; acts on nothing"}
#: entry types signed by an actor and accepted only under the configuration in force
SIGNED_ACTIONS = (KEY_ADDED, KEY_REVOKED, SYSTEM_REGISTERED, POLICY_PUBLISHED, POLICY_ACTIVATED,
                  ESCALATION_ACTIVATED, INCIDENT_TRANSITION, INCIDENT_CLASSIFIED, INCIDENT_REPORT_FILED,
                  EVIDENCE_DOCUMENT, EVIDENCE_ATTESTATION, EVIDENCE_TEST_RESULT, EVIDENCE_EVENT, EVIDENCE_WITHDRAWN,
                  APPLICABILITY_ACTIVATED, TOKEN_CREATED, TOKEN_REVOKED)
#: the role each signed action needs (key changes and transitions have rules of their own)
_ROLE_FOR = {SYSTEM_REGISTERED: "system_registrar", POLICY_PUBLISHED: "policy_author",
             POLICY_ACTIVATED: "policy_approver", ESCALATION_ACTIVATED: "policy_approver",
             APPLICABILITY_ACTIVATED: "policy_approver"}
#: payload fields the log adds when it appends a signed statement: not part of what the actor signed
DERIVED_FIELDS = {GOVERNANCE_CONFIG: ("approvals",),
                  INCIDENT_TRANSITION: ("from", "to", "role", "deadline", "proof"),
                  INCIDENT_CLASSIFIED: ("role", "reporting"), INCIDENT_REPORT_FILED: ("role",)}
#: entry types whose payload changes the authority state (the rest are only checked)
AUTHORITY_INPUTS = (GOVERNANCE_CONFIG, KEY_ADDED, KEY_REVOKED, SYSTEM_REGISTERED, POLICY_PUBLISHED,
                    POLICY_ACTIVATED, ESCALATION_ACTIVATED, APPLICABILITY_ACTIVATED,
                    EVIDENCE_DOCUMENT, EVIDENCE_ATTESTATION, EVIDENCE_TEST_RESULT, EVIDENCE_EVENT, EVIDENCE_WITHDRAWN,
                    TOKEN_CREATED, TOKEN_REVOKED, INCIDENT_OPENED)


def statement_of(entry_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """What the actor signed: the payload without the fields the log derived when appending it."""
    derived = DERIVED_FIELDS.get(entry_type, ())
    return {k: v for k, v in payload.items() if k not in derived}


def action_message(origin: str, entry_type: str, statement: dict[str, Any]) -> bytes:
    """The bytes an actor signs (after ``ACTION_CONTEXT``): the log, the entry type and the statement.

    Binding the log and the type means a signature given for one log or one kind of change is
    useless for another.
    """
    return canonical_json({"log": origin, "statement": statement, "type": entry_type})


def statement_id(origin: str, entry_type: str, statement: dict[str, Any]) -> str:
    """The submission id of the entry carrying a signed statement: its type and the digest of what was signed."""
    return f"{entry_type}:{hashlib.sha256(action_message(origin, entry_type, statement)).hexdigest()}"


#: the JWS algorithms a step-up ID token may be signed with (asymmetric only: see `check_step_up`)
STEP_UP_ALGORITHMS = ("RS256", "ES256", "EdDSA")
#: bounds on a step-up proof: an ID token is a few KiB, a provider's key set a few keys
MAX_ID_TOKEN = 16 * 1024
MAX_JWKS_KEYS = 20


def _b64url(text: str) -> bytes:
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _jwk_public(jwk: dict[str, Any], alg: str) -> Any:
    """The public key of a JWK fit for `alg`, or None (wrong type, curve or use)."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if jwk.get("use", "sig") != "sig" or jwk.get("alg", alg) != alg:
        return None
    if alg == "RS256" and jwk.get("kty") == "RSA":
        n, e = int.from_bytes(_b64url(str(jwk.get("n"))), "big"), int.from_bytes(_b64url(str(jwk.get("e"))), "big")
        return rsa.RSAPublicNumbers(e, n).public_key() if n.bit_length() >= 2048 else None
    if alg == "ES256" and jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
        x, y = _b64url(str(jwk.get("x"))), _b64url(str(jwk.get("y")))
        return ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"),
                                             ec.SECP256R1()).public_key()
    if alg == "EdDSA" and jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
        return Ed25519PublicKey.from_public_bytes(_b64url(str(jwk.get("x"))))
    return None


def _jws_valid(key: Any, alg: str, signing_input: bytes, signature: bytes) -> bool:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    try:
        if alg == "RS256":
            key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        elif alg == "ES256":
            if len(signature) != 64:
                return False
            der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
            key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
        else:
            key.verify(signature, signing_input)
    except (InvalidSignature, ValueError):
        return False
    return True


def _plausible_time(value: float) -> bool:
    try:
        return math.isfinite(value) and abs(value) < 1e15  # seconds since 1970: far beyond any real token
    except OverflowError:  # an int too large for a float
        return False


def step_up_problem(proof: Any, providers: Any, actor: str, nonce: str, at: datetime.datetime) -> str | None:
    """Why a step-up proof does not show that `actor` signed in for this very change at `at`, or None.

    The proof is ``{"method": "oidc", "id_token": JWS}``, recorded in the entry. The ID token must be
    issued by an identity provider the governance configuration in force names, signed (RS256,
    ES256 or EdDSA; never ``none`` or HS*) by one of the keys the configuration pins for that
    provider, for its audience, valid at `at`, with the ``nonce`` the digest of the change, and name
    `actor` in the provider's principal claim. The keys come from the configuration, which only
    the administrators' threshold changes, never from the entry: whoever appends cannot bring keys
    of their own, and the check needs neither the provider nor the network.
    """
    if not isinstance(proof, dict) or set(proof) != {"method", "id_token"} or proof["method"] != "oidc":
        return "a step-up proof is {method: oidc, id_token}"
    token = proof["id_token"]
    if not isinstance(token, str) or len(token) > MAX_ID_TOKEN or token.count(".") != 2:
        return "the ID token is not a compact JWS"
    head, body, sig = token.split(".")
    try:
        header, claims, signature = json.loads(_b64url(head)), json.loads(_b64url(body)), _b64url(sig)
    except (ValueError, RecursionError):
        return "the ID token does not decode"
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return "the ID token's header or claims are not JSON objects"
    provider = next((p for p in providers if isinstance(p, dict) and p.get("issuer") == claims.get("iss")), None) \
        if isinstance(providers, list) else None
    if provider is None:
        return f"the ID token's issuer {str(claims.get('iss'))[:100]!r} is not an identity provider of the " \
               "governance configuration in force"
    jwks = provider.get("jwks")
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        return "the configuration pins no keys for this identity provider"
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in STEP_UP_ALGORITHMS or "crit" in header:
        return f"the ID token's algorithm is not one of {', '.join(STEP_UP_ALGORITHMS)}"
    candidates = [k for k in keys if kid is None or k.get("kid") == kid]
    if kid is None and len(keys) != 1:
        return "the ID token names no key id and the provider has several pinned keys"
    try:
        valid = any(key is not None and _jws_valid(key, str(alg), f"{head}.{body}".encode(), signature)
                    for key in (_jwk_public(k, str(alg)) for k in candidates))
    except (ValueError, TypeError, OverflowError):
        valid = False
    if not valid:
        return "the ID token's signature is not valid under the provider's keys pinned in the configuration"
    audience = claims.get("aud")
    if provider.get("audience") not in (audience if isinstance(audience, list) else [audience]):
        return "the ID token was not issued for the configured audience"
    leeway = int(provider.get("leeway_seconds", 30))
    moment = at.timestamp()
    times = {name: claims.get(name) for name in ("exp", "iat", "nbf")}
    if any(v is not None and (type(v) not in (int, float) or not _plausible_time(v)) for v in times.values()) \
            or times["exp"] is None or times["iat"] is None:
        return "the ID token's exp, iat and nbf must be numbers (exp and iat required)"
    if moment > float(times["exp"]) + leeway:
        return "the ID token had expired when the change was recorded"
    if float(times["iat"]) - leeway > moment or (times["nbf"] is not None
                                                 and float(times["nbf"]) - leeway > moment):
        return "the ID token was issued after the change was recorded"
    if claims.get("nonce") != nonce:
        return "the ID token's nonce is not this change's digest: the sign-in was not made for it"
    named = claims.get(str(provider.get("principal_claim", "sub")))
    if named != actor:
        return f"the ID token names {str(named)[:100]!r}, not the actor {actor!r}"
    return None


def possession_message(origin: str, principal: str, key_id: str) -> bytes:
    """What a new key signs (after ``POSSESSION_CONTEXT``) to prove its holder asked to register it."""
    return canonical_json({"key_id": key_id, "log": origin, "principal": principal})


def key_id_for(public: bytes) -> str:
    """``ed25519:`` and the hex SHA-256 of a raw public key."""
    return "ed25519:" + hashlib.sha256(public).hexdigest()


def document_digest(document: Any) -> str:
    """Hex SHA-256 of the canonical JSON of a recorded document (a policy version, an escalation configuration)."""
    return hashlib.sha256(canonical_json(document)).hexdigest()


#: the fields of the log's own reopening of an incident, and nothing else
_AUTOMATIC_REOPEN = frozenset({"incident_id", "action", "from", "to", "actor", "role", "note", "deadline"})


def _automatic_reopen(entry_type: str, payload: dict[str, Any], key_id: str | None) -> bool:
    """The log's own reopening of a resolved or closed incident whose breach recurred.

    Only that: no decision, no other state (`charter verify` re-derives that the incident was
    resolved or closed; `charter audit` that the breach recurred).
    """
    return (entry_type == INCIDENT_TRANSITION and key_id is None and set(payload) == _AUTOMATIC_REOPEN
            and payload.get("actor") == AUTOMATIC_ACTOR and payload.get("action") == "reopen"
            and payload.get("role") == "system" and payload.get("from") in ("resolved", "closed")
            and payload.get("to") == "open")


def controls_of(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The control catalog a policy activation recorded (empty without one); None when malformed.

    The catalog is ``{"digest": sha256 of {"citable", "organisation"}, "citable": [ref, ...],
    "organisation": [control, ...]}``: the `ControlCatalog` the activated policies were compiled with,
    which the evidence rule then judges by, instead of whatever catalogs the verifier has at hand.
    """
    if "controls" not in payload:
        return {}
    recorded = payload["controls"]
    if not isinstance(recorded, dict) or set(recorded) != {"digest", "citable", "organisation"}:
        return None
    lists = {name: recorded[name] for name in ("citable", "organisation")}
    if not all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in lists.values()):
        return None
    if document_digest(lists) != recorded["digest"]:
        return None
    return dict(recorded)


def custom_kpis_of(payload: dict[str, Any]) -> dict[str, Any] | None:
    """Custom KPI id -> definition of a policy activation (empty without a catalog); None when malformed.

    The catalog is ``{"digest": sha256 of document, "document": {"kpis": [definition, ...]}}``, each
    definition an object with a string ``id``, each id once.
    """
    if "kpis" not in payload:
        return {}
    recorded = payload["kpis"]
    if not isinstance(recorded, dict) or set(recorded) != {"digest", "document"}:
        return None
    document = recorded["document"]
    if not isinstance(document, dict) or set(document) != {"kpis"} or not isinstance(document["kpis"], list):
        return None
    listed = document["kpis"]
    if document_digest(document) != recorded.get("digest"):
        return None
    catalog: dict[str, Any] = {}
    for definition in listed:
        kpi_id = definition.get("id") if isinstance(definition, dict) else None
        if not isinstance(kpi_id, str) or kpi_id in catalog:
            return None
        catalog[kpi_id] = definition
    return catalog


def _stale(seq: int, payload: dict[str, Any], in_force: int | None, what: str) -> Problem | None:
    """A statement that replaces another than the one in force: signed before a later change, or replayed."""
    if payload.get("supersedes") == in_force:
        return None
    return Problem(seq, "stale_statement", f"the statement replaces the {what} of seq {payload.get('supersedes')!r}, "
                   f"but the one in force is of seq {in_force}")


def _pinned_keys_problem(jwks: Any) -> str | None:
    """What is wrong with an identity provider's pinned key set, if anything."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not 1 <= len(keys) <= MAX_JWKS_KEYS or not all(
            isinstance(k, dict) and isinstance(k.get("kty"), str) for k in keys):
        return f"jwks must hold 1 to {MAX_JWKS_KEYS} public keys"
    if any(k.get(private) is not None for k in keys for private in ("d", "p", "q", "k")):
        return "jwks holds private or symmetric key material"
    return None


def _config_problem(config: Any) -> str | None:
    """What is wrong with a governance configuration's shape, if anything."""
    if not isinstance(config, dict):
        return "the configuration is not an object"
    admins = config.get("administrators")
    if not isinstance(admins, list) or not admins:
        return "administrators must be a non-empty list"
    names = set()
    for admin in admins:
        if not isinstance(admin, dict) or not isinstance(admin.get("principal"), str):
            return "each administrator needs a principal and a public_key"
        try:
            if len(base64.b64decode(str(admin.get("public_key")), validate=True)) != 32:
                return f"administrator {admin['principal']!r} has no 32-byte public key"
        except ValueError:
            return f"administrator {admin['principal']!r} has a public key that is not base64"
        names.add(admin["principal"])
    if len(names) != len(admins):
        return "an administrator is listed twice"
    threshold = config.get("threshold")
    if type(threshold) is not int or not 1 <= threshold <= len(admins):
        return f"threshold must be an integer from 1 to {len(admins)}"
    key_approvals = config.get("key_approvals", 1)
    if type(key_approvals) is not int or not 1 <= key_approvals <= len(admins):
        return f"key_approvals must be an integer from 1 to {len(admins)}"
    roles = config.get("roles")
    if not isinstance(roles, dict) or set(roles) - set(AUTHORITY_ROLES):
        return f"roles must be an object with keys among {', '.join(AUTHORITY_ROLES)}"
    if not all(isinstance(m, list) and all(isinstance(x, str) for x in m) for m in roles.values()):
        return "each role lists principals (strings)"
    providers = config.get("identity_providers", [])
    if not isinstance(providers, list) or not all(
            isinstance(p, dict) and isinstance(p.get("issuer"), str) and isinstance(p.get("audience"), str)
            and isinstance(p.get("principal_claim", "sub"), str) and type(p.get("leeway_seconds", 30)) is int
            and 0 <= p.get("leeway_seconds", 30) <= 300 and _pinned_keys_problem(p.get("jwks")) is None
            and set(p) <= {"issuer", "audience", "principal_claim", "leeway_seconds", "jwks"} for p in providers):
        return ("identity_providers lists {issuer, audience, principal_claim, leeway_seconds (0 to 300), jwks "
                f"(the provider's public keys, 1 to {MAX_JWKS_KEYS})}} objects")
    if len({p["issuer"] for p in providers}) != len(providers):
        return "an identity provider is listed twice"
    # Auditors act on nothing, administrators approve changes of this very configuration: not one person.
    auditing = sorted(names & set(roles.get("auditor", [])))
    if auditing:
        return f"administrators may not hold the auditor role: {', '.join(auditing)}"
    return None


#: bounds on evidence statements: a statement is a paragraph or a page, not a document's bytes
MAX_EVIDENCE_TEXT = 20_000
MAX_EVIDENCE_FIELD = 500
MAX_EVIDENCE_URI = 2048
MAX_EVIDENCE_ITEMS = 200
_SHA256 = re.compile(r"[0-9a-f]{64}")
_DATE = re.compile(r"\d{4}-\d\d-\d\d")
#: what a test result may conclude: only ``passed`` shows a control operating, ``failed`` is a nonconformity
TEST_OUTCOMES = ("passed", "failed", "inconclusive")
#: the kinds of process events (ISO/IEC 42001 9.2 internal audit, 9.3 management review, EU AI Act Art. 4
#: AI literacy training, Art. 72 post-market monitoring review, ...)
EVENT_KINDS = ("management_review", "internal_audit", "training", "drill", "monitoring_review", "communication",
               "other")
#: the longest a test result or an event counts as current: one ISO/IEC 42001 certification cycle (three
#: years, a leap day included); older ones show nothing of how a process runs today
MAX_EVIDENCE_VALIDITY = datetime.timedelta(days=1096)
_EVIDENCE_FIELDS = {
    EVIDENCE_DOCUMENT: {"name", "version", "sha256", "uri", "owner", "review_by", "controls", "systems"},
    EVIDENCE_ATTESTATION: {"statement", "controls", "systems", "valid_from", "valid_until", "documents"},
    EVIDENCE_TEST_RESULT: {"name", "method", "performed_at", "outcome", "summary", "artifact", "valid_until",
                           "controls", "systems"},
    EVIDENCE_EVENT: {"kind", "title", "occurred_at", "next_due", "participants", "documents", "controls", "systems"},
    EVIDENCE_WITHDRAWN: {"seq", "reason"},
}
#: when each kind of evidence starts and stops counting (the field names)
EVIDENCE_PERIOD = {EVIDENCE_ATTESTATION: ("valid_from", "valid_until"),
                   EVIDENCE_TEST_RESULT: ("performed_at", "valid_until"), EVIDENCE_EVENT: ("occurred_at", "next_due")}


def _text_problem(name: str, value: Any, limit: int) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return f"{name} must be a non-empty string"
    if len(value) > limit:
        return f"{name} has {len(value):,} characters, at most {limit:,} are allowed"
    return None


def _list_problem(name: str, value: Any, minimum: int) -> str | None:
    if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= MAX_EVIDENCE_FIELD
                                              for v in value):
        return f"{name} must be a list of non-empty strings of at most {MAX_EVIDENCE_FIELD} characters"
    if not minimum <= len(value) <= MAX_EVIDENCE_ITEMS:
        return f"{name} lists {len(value)} items; {minimum} to {MAX_EVIDENCE_ITEMS} are allowed"
    if len(set(value)) != len(value):
        return f"{name} lists an item twice"
    return None


def evidence_shape_problem(entry_type: str, statement: dict[str, Any]) -> str | None:
    """What is wrong with the shape of a document, attestation, test result, event or withdrawal statement.

    The rule the log applies before appending and `verify` after: field names, types and bounds,
    digests, dates, a closed vocabulary of test outcomes and event kinds, and a validity period that
    ends after it starts (at most `MAX_EVIDENCE_VALIDITY` for test results and events). Whether the controls exist in
    the catalogs is Charter's own check (this file has no catalogs).
    """
    fields = set(statement) - {"actor", "signed_at"}
    expected = _EVIDENCE_FIELDS[entry_type]
    if fields != expected:
        return (f"a {entry_type} statement has the fields {', '.join(sorted(expected))}; this one has "
                f"{', '.join(sorted(fields)) or 'none'}")
    if entry_type == EVIDENCE_WITHDRAWN:
        if type(statement["seq"]) is not int or statement["seq"] < 0:
            return "seq must be the sequence number of the evidence withdrawn"
        return _text_problem("reason", statement["reason"], MAX_EVIDENCE_FIELD)
    problem = _list_problem("controls", statement["controls"], 1) or _list_problem("systems", statement["systems"], 0)
    if problem is not None:
        return problem
    if entry_type == EVIDENCE_DOCUMENT:
        for name, limit in (("name", MAX_EVIDENCE_FIELD), ("version", MAX_EVIDENCE_FIELD),
                            ("owner", MAX_EVIDENCE_FIELD), ("uri", MAX_EVIDENCE_URI)):
            problem = _text_problem(name, statement[name], limit)
            if problem is not None:
                return problem
        if not isinstance(statement["sha256"], str) or not _SHA256.fullmatch(statement["sha256"]):
            return "sha256 must be 64 lowercase hex digits"
        review_by = statement["review_by"]
        if not isinstance(review_by, str) or not _DATE.fullmatch(review_by):
            return "review_by must be a date (YYYY-MM-DD)"
        try:
            datetime.date.fromisoformat(review_by)
        except ValueError:
            return f"review_by {review_by!r} is no calendar date"
        return None
    problem = _period_problem(entry_type, statement)
    if problem is not None:
        return problem
    if entry_type == EVIDENCE_TEST_RESULT:
        return _test_result_problem(statement)
    if entry_type == EVIDENCE_EVENT:
        problem = _text_problem("title", statement["title"], MAX_EVIDENCE_FIELD) or _list_problem(
            "participants", statement["participants"], 0)
        if problem is not None:
            return problem
        if statement["kind"] not in EVENT_KINDS:
            return f"kind {str(statement['kind'])[:80]!r} is not one of {', '.join(EVENT_KINDS)}"
    else:
        problem = _text_problem("statement", statement["statement"], MAX_EVIDENCE_TEXT)
        if problem is not None:
            return problem
    documents = statement["documents"]
    if _list_problem("documents", documents, 0) is not None or not all(_SHA256.fullmatch(d) for d in documents):
        return f"documents must list distinct sha256 digests (64 lowercase hex digits), at most {MAX_EVIDENCE_ITEMS}"
    return None


def _period_problem(entry_type: str, statement: dict[str, Any]) -> str | None:
    """An attestation's, test result's or event's period: RFC 3339 times, the end after the start; a test
    result or an event counts for at most `MAX_EVIDENCE_VALIDITY` (an attestation names its own period)."""
    start_name, end_name = EVIDENCE_PERIOD[entry_type]
    start, end = statement[start_name], statement[end_name]
    if not all(isinstance(t, str) and _RFC3339_MS.fullmatch(t) for t in (start, end)):
        return f"{start_name} and {end_name} must be RFC 3339 UTC times with milliseconds"
    if end <= start:
        return f"{end_name} {end} is not after {start_name} {start}"
    if entry_type != EVIDENCE_ATTESTATION:
        try:
            span = datetime.datetime.fromisoformat(end.replace("Z", "+00:00")) - datetime.datetime.fromisoformat(
                start.replace("Z", "+00:00"))
        except ValueError:
            return f"{start_name} or {end_name} is no calendar time"
        if span > MAX_EVIDENCE_VALIDITY:
            return (f"{end_name} {end} is {span.days} days after {start_name} {start}; at most "
                    f"{MAX_EVIDENCE_VALIDITY.days} days are allowed")
    return None


def _test_result_problem(statement: dict[str, Any]) -> str | None:
    for name, limit in (("name", MAX_EVIDENCE_FIELD), ("method", MAX_EVIDENCE_FIELD), ("summary", MAX_EVIDENCE_TEXT)):
        problem = _text_problem(name, statement[name], limit)
        if problem is not None:
            return problem
    if statement["outcome"] not in TEST_OUTCOMES:
        return f"outcome {str(statement['outcome'])[:80]!r} is not one of {', '.join(TEST_OUTCOMES)}"
    artifact = statement["artifact"]
    if artifact is None:
        return None
    if not isinstance(artifact, dict) or set(artifact) != {"sha256", "uri"}:
        return "artifact must be null or an object with the fields sha256 and uri"
    if not isinstance(artifact["sha256"], str) or not _SHA256.fullmatch(artifact["sha256"]):
        return "artifact.sha256 must be 64 lowercase hex digits"
    return _text_problem("artifact.uri", artifact["uri"], MAX_EVIDENCE_URI)


# -- API tokens and the record of who asked (`via`) -------------------------------------------------

#: what a token may be used for: reading only, submitting bundles, or any change its principal may make
TOKEN_SCOPES = ("read", "submit", "act")
#: the longest a token lives: a year (366 days, for leap years)
MAX_TOKEN_DAYS = 366
#: how far a token statement's signing time may run ahead of the log's clock: the lifetime is also
#: counted from the entry's received_at (the signer chooses signed_at, the log does not), and an
#: honest signer's clock may be this much ahead of the log's without its token being refused
TOKEN_CLOCK_SKEW = datetime.timedelta(hours=1)
_TOKEN_ID = re.compile(r"[0-9a-f]{16}")
#: an argon2id PHC string: ``$argon2id$v=19$m=...,t=...,p=...$salt$hash`` (unpadded standard base64)
_ARGON2ID_PHC = re.compile(r"\$argon2id\$v=19\$m=[1-9][0-9]{0,9},t=[1-9][0-9]{0,4},p=[1-9][0-9]{0,3}"
                           r"\$[A-Za-z0-9+/]{11,128}\$[A-Za-z0-9+/]{16,512}")
_TOKEN_FIELDS = {TOKEN_CREATED: {"token_id", "principal", "scopes", "expires_at", "hash"},
                 TOKEN_REVOKED: {"token_id", "reason"}}
#: what a bundle submission appends (`charter.submission`, `charter.incidents`): all a ``submit`` token may write,
#: besides the log's own reopening of an incident whose breach recurred
SUBMIT_SCOPE_TYPES = (BUNDLE, "evaluation", "finding", "incident.opened", "incident.finding")
VIA_METHODS = ("token", "oidc")
_VIA_FIELDS = {"token": {"principal", "method", "request_id", "token_id"},
               "oidc": {"principal", "method", "request_id", "issuer", "subject"}}
#: the longest string a via field may hold (principals, issuers and subjects are short; this only bounds abuse)
MAX_VIA_FIELD = 500


def token_shape_problem(entry_type: str, statement: dict[str, Any]) -> str | None:
    """What is wrong with the shape of a token.created or token.revoked statement, if anything.

    Field names and types, the token id (16 lowercase hex digits), scopes (a sorted, non-empty subset
    of `TOKEN_SCOPES` without repeats), the expiry (RFC 3339 UTC with milliseconds, after the signing
    time and at most `MAX_TOKEN_DAYS` after it) and the hash (an argon2id PHC string).
    """
    fields = set(statement) - {"actor", "signed_at"}
    expected = _TOKEN_FIELDS[entry_type]
    if fields != expected:
        return (f"a {entry_type} statement has the fields {', '.join(sorted(expected))}; this one has "
                f"{', '.join(sorted(fields)) or 'none'}")
    if not isinstance(statement["token_id"], str) or not _TOKEN_ID.fullmatch(statement["token_id"]):
        return "token_id must be 16 lowercase hex digits"
    if entry_type == TOKEN_REVOKED:
        return _text_problem("reason", statement["reason"], MAX_EVIDENCE_FIELD)
    problem = _text_problem("principal", statement["principal"], MAX_EVIDENCE_FIELD)
    if problem is not None:
        return problem
    scopes = statement["scopes"]
    if (not isinstance(scopes, list) or not scopes or not all(s in TOKEN_SCOPES for s in scopes)
            or scopes != sorted(set(scopes))):
        return f"scopes must be a sorted, non-empty list of distinct scopes among {', '.join(TOKEN_SCOPES)}"
    expires, signed = statement["expires_at"], statement.get("signed_at")
    if not all(isinstance(t, str) and _RFC3339_MS.fullmatch(t) for t in (expires, signed)):
        return "expires_at and signed_at must be RFC 3339 UTC times with milliseconds"
    try:
        # "+00:00" rather than "Z": this file also runs offline, on Pythons older than 3.11.
        lifetime = (datetime.datetime.fromisoformat(str(expires).replace("Z", "+00:00"))
                    - datetime.datetime.fromisoformat(str(signed).replace("Z", "+00:00")))
    except ValueError:
        return f"expires_at {expires!r} or signed_at {signed!r} is no calendar time"
    if lifetime <= datetime.timedelta(0):
        return f"expires_at {expires} is not after signed_at {signed}"
    if lifetime > datetime.timedelta(days=MAX_TOKEN_DAYS):
        return f"expires_at {expires} is more than {MAX_TOKEN_DAYS} days after signed_at {signed}"
    if not isinstance(statement["hash"], str) or not _ARGON2ID_PHC.fullmatch(statement["hash"]):
        return "hash must be an argon2id PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash)"
    return None


def via_shape_problem(via: Any) -> str | None:
    """What is wrong with the shape of a via record (who asked for an entry through the API), if anything.

    ``{principal, method, request_id}`` plus ``token_id`` for method ``token``, or ``issuer`` and
    ``subject`` for method ``oidc``; every value a non-empty string of at most `MAX_VIA_FIELD` characters.
    """
    if not isinstance(via, dict):
        return "via must be an object"
    method = via.get("method")
    if method not in VIA_METHODS:
        return f"via method must be one of {', '.join(VIA_METHODS)}, not {method!r}"
    expected = _VIA_FIELDS[method]
    if set(via) != expected:
        return f"a via of method {method} has the fields {', '.join(sorted(expected))}; this one has " \
               f"{', '.join(sorted(map(str, via)))}"
    for name in sorted(expected):
        problem = _text_problem(f"via {name}", via[name], MAX_VIA_FIELD)
        if problem is not None:
            return problem
    if method == "token" and not _TOKEN_ID.fullmatch(via["token_id"]):
        return "via token_id must be 16 lowercase hex digits"
    return None


_PARAGRAPH_TAIL = re.compile(r"(\([0-9a-z]+\))+$")


def eu_high_risk(classification: Any) -> bool | None:
    """Whether a recorded EU AI Act classification (a system registration's ``eu_ai_act``) is high-risk.

    High-risk under Art 6(2) (an Annex III use not exempt under Art 6(3)) or Art 6(1) (an Annex I
    product); None when no classification is recorded. The standalone twin of Charter's
    ``EUClassification.high_risk``, read from the recorded JSON (a test keeps the two in step).
    """
    if not isinstance(classification, dict):
        return None
    if classification.get("annex_iii") is not None and classification.get("exemption_6_3") is None:
        return True
    return classification.get("annex_i") is not None


def art73_system_problem(system_id: str, registered: bool, high_risk: bool | None) -> str | None:
    """Why an incident of `system_id` may not be classified a serious incident under Art. 73, or None.

    The one wording of the rule for Charter (`charter.incidents.authorize_classification`) and this
    verifier: Art. 73 applies to high-risk AI systems, judged by the classification in force when
    the classification is recorded.
    """
    if not registered:
        return f"{system_id} is not registered in this ledger"
    if high_risk is None:
        return f"{system_id} has no EU AI Act classification recorded, so it is not known to be high-risk"
    if not high_risk:
        return f"{system_id} is not high-risk under its EU AI Act classification in force"
    return None


#: how a refused serious classification ends, after `art73_system_problem`'s reason
ART73_HIGH_RISK_ONLY = "Art. 73 serious-incident reporting applies to high-risk AI systems"


def recorded_refusal(entry_type: str, payload: dict[str, Any], reason: str) -> str:
    """How `charter verify` and this verifier name an incident entry that the rule of its kind refuses."""
    return (f"{entry_type} {payload.get('action', '')} of {payload.get('incident_id')} by "
            f"{payload.get('actor', payload.get('owner'))!r}: {reason}")


def control_of(ref: str) -> str:
    """The control a reference names, without its paragraph: ``eu-ai-act:art-10(2)`` -> ``eu-ai-act:art-10``."""
    return _PARAGRAPH_TAIL.sub("", ref)


@dataclass(frozen=True)
class ControlCatalog:
    """What the evidence rule needs to know of the framework catalogs, handed to `Authority` by its caller
    (the store, `charter verify`, `charter audit`, or the standalone verifier's ``--controls`` file): the rule
    reads no catalog itself.

    Args:
        citable: every reference evidence may cite, exactly as written: each control reports assess
            (``iso-42001:A.2.2``) and each paragraph the catalog lists for it (``eu-ai-act:art-10(2)``).
        organisation: the controls (without paragraph) of organisation scope, such as ISO/IEC 42001
            clauses 4-10 and the AI policy (A.2.2): only an evidence attester may evidence them.
    """

    citable: frozenset[str]
    organisation: frozenset[str]

    def to_dict(self) -> dict[str, list[str]]:
        """JSON form (an export's ``controls.json``)."""
        return {"citable": sorted(self.citable), "organisation": sorted(self.organisation)}

    @classmethod
    def from_dict(cls, data: Any) -> ControlCatalog:
        """Parse `to_dict`'s form.

        Raises:
            ValueError: not an object of two lists of strings.
        """
        if not isinstance(data, dict) or not all(isinstance(data.get(k), list) and all(
                isinstance(v, str) for v in data[k]) for k in ("citable", "organisation")):
            raise ValueError("a controls file is an object with the lists 'citable' and 'organisation'")
        return cls(frozenset(data["citable"]), frozenset(data["organisation"]))


class Authority:
    """Who may change governance state, folded from the ledger entry by entry.

    The one rule for both sides: the log asks `check` before it appends a signed change (and
    refuses it when a problem comes back), and the verifier asks it again for every stored entry.
    Seq 0 is the trust root: a governance configuration naming the administrators, their keys, a
    threshold of them needed to change it, and who holds each authority role.

    Args:
        origin: the log's origin (signed statements bind it).
        check_signatures: also check actors' signatures (roles are checked either way).
        controls: the catalogs' citable and organisation-level controls, or a function that gives them
            when the first evidence entry is judged (loading catalogs costs a ledger without evidence
            nothing); without it (the standalone verifier given no ``--controls``), what evidence cites
            and its organisation scope go unchecked.
    """

    def __init__(self, origin: str, check_signatures: bool = True,
                 controls: ControlCatalog | Callable[[], ControlCatalog] | None = None) -> None:
        self.origin = origin
        self.check_signatures = check_signatures
        self.controls = controls
        self.config: dict[str, Any] | None = None
        self.config_seq: int | None = None
        #: key id -> [principal, base64 public key, seq added, seq revoked or None]
        self.keys: dict[str, list[Any]] = {}
        #: key id -> [principal, base64 public key, {administrator: seq of their approval}]: a key no key of its
        #: principal endorsed, approved by fewer administrators than the configuration's ``key_approvals``
        self.pending_keys: dict[str, list[Any]] = {}
        self.owners: dict[str, str] = {}
        #: digest -> [policy id, version, author, seq published]
        self.policies: dict[str, list[Any]] = {}
        #: "id@version" -> digest
        self.versions: dict[str, str] = {}
        #: digests of the active policy set, and the seq that activated it
        self.active_policies: list[str] = []
        self.active_policies_seq: int | None = None
        #: custom KPI id -> its normalized definition, as the policy activations recorded them (they only grow)
        self.custom_kpis: dict[str, Any] = {}
        #: the control catalog the latest activation that recorded one recorded (`controls_of`), and its seq;
        #: empty: none recorded, so evidence is judged by the catalog the caller gives (`controls`)
        self.recorded_controls: dict[str, Any] = {}
        self.recorded_controls_seq: int | None = None
        #: (digest, catalog) of `recorded_controls` as a `ControlCatalog`, built once per recorded catalog
        self._recorded_catalog: tuple[str, ControlCatalog] | None = None
        #: principal -> escalation roles, in the active escalation configuration, and its seq
        self.escalation_members: dict[str, list[str]] = {}
        self.escalation_seq: int | None = None
        #: framework id -> seq of the applicability document (SoA, target profile) in force
        self.applicability_seqs: dict[str, int] = {}
        #: the previous entry's (seq, type, payload): a waiver must follow the decision that grants it
        self.last: list[Any] | None = None
        #: submission ids (digests) of the signed statements recorded: each lands once
        self.statements: set[str] = set()
        #: str(seq) of each recorded document, attestation, test result or event -> [type, actor, a document's
        #: sha256 or None, seq withdrawn or None]
        self.evidence: dict[str, list[Any]] = {}
        #: token id -> [principal, scopes, expires_at, seq created, seq revoked or None, argon2id hash]
        self.tokens: dict[str, list[Any]] = {}
        #: system id -> EU AI Act high-risk under its classification in force (None: none recorded), and
        #: incident id -> its system id: what the Art. 73 rule needs. None in a state resumed from before
        #: they were folded: the rule then cannot be checked from that state on (a full pass checks it).
        self.eu_high_risk: dict[str, bool | None] | None = {}
        self.incident_systems: dict[str, str] | None = {}

    # -- state ----------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """JSON form, to resume from (see `Verifier.state`)."""
        state = {name: getattr(self, name) for name in _AUTHORITY_STATE}
        state["statements"] = sorted(self.statements)
        return state

    def resume(self, state: dict[str, Any]) -> None:
        """Take the state `to_state` returned."""
        for name in _AUTHORITY_STATE:
            # A state recorded before tokens existed knows none: its ledger had no token entries to fold.
            # One recorded before classifications were folded does not know them (None), which is not the
            # same as knowing there are none.
            default: dict[str, Any] | None = None if name in UNKNOWN_IN_OLDER_STATE or name.endswith("_seq") else {}
            value = state.get(name, default) if name in _LATER_STATE else state[name]
            setattr(self, name, json.loads(json.dumps(value)))
        self.statements = set(self.statements)

    def copy(self) -> Authority:
        """An independent copy: folding entries into it leaves this one as it was (readers may hold it)."""
        twin = Authority(self.origin, self.check_signatures, self.controls)
        twin.__dict__.update(self.__dict__)
        twin.keys = {key_id: list(key) for key_id, key in self.keys.items()}
        twin.pending_keys = {key_id: [pending[0], pending[1], dict(pending[2])]
                             for key_id, pending in self.pending_keys.items()}
        for name in ("owners", "policies", "versions", "escalation_members", "applicability_seqs", "custom_kpis",
                     "eu_high_risk", "incident_systems"):
            value = getattr(self, name)
            setattr(twin, name, None if value is None else dict(value))
        twin.active_policies = list(self.active_policies)
        twin.statements = set(self.statements)
        twin.evidence = {seq: list(record) for seq, record in self.evidence.items()}
        twin.tokens = {token_id: list(record) for token_id, record in self.tokens.items()}
        return twin

    def admins(self, seq: int | None = None) -> dict[str, bytes]:
        """Administrator -> raw public key, under the configuration in force; with `seq`, only keys still
        valid at `seq` (an administrator whose key was revoked approves nothing until a new one is configured)."""
        if self.config is None:
            return {}
        admins = {a["principal"]: base64.b64decode(a["public_key"]) for a in self.config["administrators"]}
        if seq is None:
            return admins
        return {name: public for name, public in admins.items() if self.key_valid_at(key_id_for(public), seq)}

    def _add_key(self, seq: int, payload: dict[str, Any]) -> None:
        """Fold an administrator's approval of a key: registered once endorsed, or approved by enough of them.

        A key its principal's own keys do not endorse (their first, or one after all of theirs were
        revoked) waits until ``key_approvals`` administrators have approved it, so that no single
        administrator can make an identity for someone, nor take one over by revoking its keys first.
        """
        key_id, principal = str(payload.get("key_id")), str(payload.get("principal"))
        if key_id in self.keys:
            return
        pending = self.pending_keys.setdefault(key_id, [principal, str(payload.get("public_key")), {}])
        pending[2].setdefault(str(payload.get("actor")), seq)
        if self.principal_keys(principal, seq) or len(self.key_approvers(key_id, seq)) >= self.key_approvals():
            self._register_pending(key_id, seq)

    def _register_pending(self, key_id: str, seq: int) -> None:
        """A pending key becomes registered at `seq`."""
        principal, public, _ = self.pending_keys.pop(key_id)
        self.keys[key_id] = [principal, public, seq, None]

    def admin_key_ids(self) -> set[str]:
        """The key ids of the administrators' keys in the configuration in force."""
        return _admin_key_ids(self.config)

    def holders(self, role: str) -> list[str]:
        """The principals holding an authority role under the configuration in force."""
        return list((self.config or {}).get("roles", {}).get(role, []))

    def key_valid_at(self, key_id: str, seq: int) -> bool:
        """Whether `key_id` was added before `seq` and not revoked before it."""
        key = self.keys.get(key_id)
        return key is not None and key[2] < seq and (key[3] is None or key[3] >= seq)

    def key_approvals(self) -> int:
        """How many administrators must approve a key its principal's own keys do not endorse.

        A configuration recorded before ``key_approvals`` existed needs one, as its keys were registered.
        """
        return int((self.config or {}).get("key_approvals", 1))

    def principal_keys(self, principal: str, seq: int) -> list[str]:
        """The ids of `principal`'s keys valid at `seq`."""
        return [kid for kid, key in self.keys.items() if key[0] == principal and self.key_valid_at(kid, seq)]

    def key_approvers(self, key_id: str, seq: int) -> list[str]:
        """The administrators (in force at `seq`) whose approvals of the pending key `key_id` still count."""
        pending = self.pending_keys.get(key_id)
        admins = self.admins(seq)
        return sorted(name for name in (pending[2] if pending is not None else {}) if name in admins)

    # -- the rule -------------------------------------------------------------------------------

    def check(self, seq: int, entry_type: str, payload: dict[str, Any], key_id: str | None,
              signature: str | None, submission_id: str | None = None, *, via: dict[str, Any] | None = None,
              received_at: str | None = None) -> Problem | None:
        """The authority problem of an entry about to stand at `seq`, or None when it is allowed.

        A signed statement's submission id must be its digest (`statement_id`), and a digest already
        recorded is refused: a statement lands once, however often it is handed in again. An entry
        written through the API carries `via` (who asked, and how they authenticated; see `check_via`),
        judged at the entry's `received_at`; an entry without one (the local CLI) is judged as before.
        """
        problem = self._check_entry(seq, entry_type, payload, key_id, signature, submission_id, received_at)
        if problem is None and via is not None:
            problem = self.check_via(seq, entry_type, payload, key_id, via, received_at)
        return problem

    def check_via(self, seq: int, entry_type: str, payload: dict[str, Any], key_id: str | None, via: Any,
                  received_at: str | None) -> Problem | None:
        """The problem of an entry's via record, or None when it proves who asked for the entry.

        The shape (`via_shape_problem`); for a token: created before `seq`, not revoked before it, not
        expired at `received_at`, issued to via's principal, with a scope that allows this entry type
        (``read``: nothing; ``submit``: what a bundle submission appends; ``act``: anything). An entry
        signed by a key must be signed by via's principal: the API's caller is the actor, not someone
        relaying another's signature. Entries derived in the same transaction carry the same via and
        have no key, so only the token is checked for them.
        """
        problem = via_shape_problem(via)
        if problem is not None:
            return Problem(seq, "malformed_via", problem)
        principal = via["principal"]
        if via["method"] == "token":
            token_id = via["token_id"]
            token = self.tokens.get(token_id)
            if token is None or token[3] >= seq:
                return Problem(seq, "unknown_token", f"the entry was written with token {token_id}, which was not "
                               "created before it")
            if token[4] is not None and token[4] < seq:
                return Problem(seq, "token_revoked", f"the entry was written with token {token_id}, revoked at seq "
                               f"{token[4]}")
            if not isinstance(received_at, str) or received_at >= token[2]:
                return Problem(seq, "token_expired", f"the entry was written at {received_at} with token {token_id}, "
                               f"which expired at {token[2]}")
            if token[0] != principal:
                return Problem(seq, "unauthenticated_actor", f"the entry names {principal!r} as who asked, but "
                               f"token {token_id} is {token[0]!r}'s")
            if not any(_scope_allows(scope, entry_type, payload, key_id) for scope in token[1]):
                return Problem(seq, "token_scope", f"token {token_id} has the scopes {', '.join(token[1])}, which "
                               f"do not allow writing a {entry_type} entry")
        if entry_type == INCIDENT_TRANSITION and key_id is None and "proof" in payload \
                and payload.get("actor") != principal:
            return Problem(seq, "unauthenticated_actor", f"the transition was proven by {payload.get('actor')!r}'s "
                           f"sign-in but asked for by {principal!r}")
        if key_id is not None and (entry_type in SIGNED_ACTIONS or entry_type == BUNDLE):
            key = self.keys.get(key_id)
            if key is not None and key[0] != principal:
                return Problem(seq, "unauthenticated_actor", f"the {entry_type} entry is signed by {key[0]!r}'s key "
                               f"but was asked for by {principal!r}, who authenticated: one may not act in "
                               "another's name")
        return None

    def _check_entry(self, seq: int, entry_type: str, payload: dict[str, Any], key_id: str | None,
                     signature: str | None, submission_id: str | None,
                     received_at: str | None = None) -> Problem | None:
        if seq == 0 and entry_type != GOVERNANCE_CONFIG:
            return Problem(0, "no_trust_root", "entry 0 must be the governance configuration (the trust root)")
        if entry_type == BUNDLE:
            return self._bundle_problem(seq, key_id, payload)
        if entry_type in (GOVERNANCE_CONFIG, *SIGNED_ACTIONS) and not _automatic_reopen(entry_type, payload, key_id):
            try:
                expected = statement_id(self.origin, entry_type, statement_of(entry_type, payload))
            except Exception:  # rfc8785 rejects values outside JSON's domain with its own errors
                return Problem(seq, "malformed_body", "the statement cannot be canonicalized")
            if submission_id is not None and submission_id != expected:
                return Problem(seq, "malformed_body", "the submission id is not the signed statement's digest")
            if expected in self.statements:
                return Problem(seq, "replayed_statement", f"this {entry_type} statement was already recorded")
        if entry_type == GOVERNANCE_CONFIG:
            return self._check_config(seq, payload)
        if entry_type == WAIVER_GRANTED:
            return self._check_waiver(seq, payload)
        if entry_type not in SIGNED_ACTIONS or _automatic_reopen(entry_type, payload, key_id):
            return None
        statement = statement_of(entry_type, payload)
        actor = statement.get("actor")
        key = self.keys.get(str(key_id))
        if not isinstance(actor, str) or not isinstance(statement.get("signed_at"), str):
            return Problem(seq, "unsigned_change", f"{entry_type} names no actor or signing time")
        if entry_type == INCIDENT_TRANSITION and key_id is None and "proof" in payload:
            # proven by a step-up sign-in bound to this very transition instead of a key signature
            try:
                moment = datetime.datetime.fromisoformat(str(received_at or statement["signed_at"]).replace(
                    "Z", "+00:00"))
            except ValueError:
                return Problem(seq, "malformed_body", "the transition's time does not parse")
            why = step_up_problem(payload["proof"], (self.config or {}).get("identity_providers", []), actor,
                                  statement_id(self.origin, entry_type, statement), moment)
            if why is not None:
                return Problem(seq, "bad_proof", f"{entry_type} by {actor!r}: {why}")
        elif key is None or not self.key_valid_at(str(key_id), seq):
            return Problem(seq, "unknown_key", f"{entry_type} by {actor!r} is signed by {key_id}, which is not "
                           "a registered key valid at this seq")
        elif key[0] != actor:
            return Problem(seq, "wrong_actor", f"{entry_type} claims actor {actor!r} but is signed by "
                           f"{key[0]!r}'s key")
        elif self.check_signatures and not verify_signature(base64.b64decode(key[1]), ACTION_CONTEXT,
                                                            action_message(self.origin, entry_type, statement),
                                                            str(signature)):
            return Problem(seq, "bad_signature", f"{actor!r}'s signature does not match the {entry_type} statement")
        if actor in self.holders("auditor"):
            return Problem(seq, "not_authorized", f"{actor!r} holds the auditor role, and auditors act on nothing: "
                           f"they may sign no {entry_type} (they {AUTHORITY_ROLES['auditor'].split(';')[0]})")
        role = _ROLE_FOR.get(entry_type)
        if role is not None and actor not in self.holders(role):
            return Problem(seq, "not_authorized", f"{actor!r} does not hold {role} (needed to {AUTHORITY_ROLES[role]}) "
                           f"under the governance configuration of seq {self.config_seq}")
        if entry_type in (EVIDENCE_TEST_RESULT, EVIDENCE_EVENT):
            return self._check_evidence_occurrence(seq, entry_type, actor, payload, received_at)
        if entry_type == TOKEN_CREATED:
            return self._check_token_created(seq, actor, payload, received_at)
        return getattr(self, "_check_" + entry_type.replace(".", "_"), lambda *_: None)(seq, actor, payload)

    def _bundle_problem(self, seq: int, key_id: str | None, payload: dict[str, Any]) -> Problem | None:
        """Who may hand in evidence: a key registered to the system's owner, valid at `seq`, of no auditor.

        The signature itself is checked by the verifier (`Verifier._check_bundle`) and, before the
        append, by the submission that verified it.
        """
        key = self.keys.get(str(key_id))
        if key is None or key[2] >= seq:
            return Problem(seq, "unknown_key", f"bundle signed by {key_id}, which was not registered before it")
        if key[3] is not None and key[3] < seq:
            return Problem(seq, "revoked_key", f"bundle signed by {key_id}, revoked at seq {key[3]}")
        owner = self.owners.get(str(payload.get("system_id")))
        if owner != key[0]:
            return Problem(seq, "wrong_owner", f"signed by {key[0]!r}, but the system's owner is {owner!r}")
        if key[0] in self.holders("auditor"):
            return Problem(seq, "not_authorized", f"{key[0]!r} holds the auditor role, and auditors act on nothing: "
                           "they may hand in no evidence, not even for a system they own")
        return None

    def _check_config(self, seq: int, payload: dict[str, Any]) -> Problem | None:
        config = payload.get("config")
        problem = _config_problem(config)
        if problem is not None:
            return Problem(seq, "malformed_config", problem)
        assert isinstance(config, dict)
        message = action_message(self.origin, GOVERNANCE_CONFIG, statement_of(GOVERNANCE_CONFIG, payload))
        approvals = payload.get("approvals")
        if not isinstance(approvals, list):
            return Problem(seq, "malformed_config", "approvals must be a list")
        new_admins = {a["principal"]: base64.b64decode(a["public_key"]) for a in config["administrators"]}
        current = self.admins(seq)
        if self.config is None and seq != 0:
            return Problem(seq, "no_trust_root", "a governance configuration after entry 0 with none before it")
        if self.config is not None and seq == 0:
            return Problem(seq, "malformed_config", "the trust root is already set")
        stale = _stale(seq, payload, self.config_seq, "governance configuration")
        if stale is not None:
            return stale
        revoked = [name for name, public in new_admins.items() if any(
            key_id_for(public) == key_id and key[3] is not None for key_id, key in self.keys.items())]
        if revoked:
            return Problem(seq, "key_revoked", f"the configuration names revoked keys for {', '.join(revoked)}")
        # An administrator who rotates their own key approves with the old key, the new one, or both.
        approved: dict[str, set[str]] = {"new": set(), "current": set()}
        for approval in approvals:
            if not isinstance(approval, dict):
                return Problem(seq, "malformed_config", "each approval is an object")
            principal = str(approval.get("principal"))
            valid = False
            for label, admins in (("new", new_admins), ("current", current)):
                public = admins.get(principal)
                if public is not None and (not self.check_signatures or verify_signature(
                        public, ACTION_CONTEXT, message, str(approval.get("signature")))):
                    approved[label].add(principal)
                    valid = True
            if not valid:
                return Problem(seq, "not_authorized", f"{principal!r}'s approval of the configuration is not a valid "
                               "signature of an administrator")
        needed = [("the new configuration's", "new", new_admins, config["threshold"])]
        if self.config is not None:
            needed.insert(0, ("the configuration in force's", "current", current, self.config["threshold"]))
        for label, which, admins, threshold in needed:
            if len(approved[which]) < threshold:
                return Problem(seq, "not_authorized", f"the configuration needs {threshold} of {label} "
                               f"administrators ({', '.join(sorted(admins))}); {len(approved[which])} approved it")
        return None

    def _check_key_added(self, seq: int, actor: str, payload: dict[str, Any]) -> Problem | None:
        if actor not in self.admins():
            return Problem(seq, "not_authorized", f"{actor!r} registered a key but is no administrator")
        principal, key_id = payload.get("principal"), str(payload.get("key_id"))
        try:
            public = base64.b64decode(str(payload.get("public_key")), validate=True)
        except ValueError:
            return Problem(seq, "malformed_body", "public key is not base64")
        if key_id_for(public) != key_id or not isinstance(principal, str):
            return Problem(seq, "malformed_body", "key id does not match the public key, or no principal")
        if len(public) != 32 or base64.b64encode(public).decode() != payload.get("public_key"):
            # One key, one spelling: rules that compare keys must not be evaded by another base64 of the same bytes.
            return Problem(seq, "malformed_body", "the public key is not the canonical base64 of 32 bytes")
        if key_id in self.keys:
            return Problem(seq, "key_registered", f"key {key_id} is already registered to {self.keys[key_id][0]!r}")
        if principal in self.admins():
            return Problem(seq, "not_authorized", f"{principal!r} is an administrator: their keys change only with "
                           "the governance configuration, under its threshold")
        message = possession_message(self.origin, principal, key_id)
        if self.check_signatures and not verify_signature(public, POSSESSION_CONTEXT, message,
                                                          str(payload.get("possession"))):
            return Problem(seq, "no_possession", f"no proof that {principal!r} holds the key {key_id}")
        # A principal who already has a key consents to another: one of their keys endorses the request,
        # so no administrator alone can add a key in the name of someone already known.
        current = {kid: self.keys[kid] for kid in self.principal_keys(principal, seq)}
        pending = self.pending_keys.get(key_id)
        if pending is not None and pending[0] != principal:
            return Problem(seq, "key_registered", f"key {key_id} awaits approval for {pending[0]!r}, not "
                           f"{principal!r}")
        if not current and actor in self.key_approvers(key_id, seq):
            return Problem(seq, "already_approved", f"{actor!r} already approved key {key_id} of {principal!r} at "
                           f"seq {pending[2][actor] if pending else '?'}: it needs {self.key_approvals()} "
                           "different administrators")
        if current:
            endorsement = payload.get("endorsement")
            if not isinstance(endorsement, dict):
                endorsement = {}
            endorser = current.get(str(endorsement.get("key_id")))
            if endorser is None or (self.check_signatures and not verify_signature(
                    base64.b64decode(endorser[1]), ENDORSEMENT_CONTEXT, message, str(endorsement.get("signature")))):
                return Problem(seq, "no_endorsement", f"{principal!r} already has a key: another one needs the "
                               "endorsement of one they hold")
        return None

    def _check_key_revoked(self, seq: int, actor: str, payload: dict[str, Any]) -> Problem | None:
        key = self.keys.get(str(payload.get("key_id")))
        if key is None:
            return Problem(seq, "unknown_key", "revocation of a key that was never added")
        if actor != key[0] and actor not in self.admins():
            return Problem(seq, "not_authorized", f"{actor!r} revoked {key[0]!r}'s key: only its owner or an "
                           "administrator may")
        if actor != key[0] and str(payload.get("key_id")) in self.admin_key_ids():
            # Else one administrator could revoke the others' keys until the threshold can never be met again.
            return Problem(seq, "not_authorized", f"{actor!r} revoked administrator {key[0]!r}'s key: an "
                           "administrator's key is revoked by its holder, or replaced by a configuration change "
                           "under the threshold")
        if key[3] is not None:
            return Problem(seq, "key_revoked", f"the key was already revoked at seq {key[3]}")
        return None

    def _check_policy_published(self, seq: int, actor: str, payload: dict[str, Any]) -> Problem | None:
        document, digest = payload.get("document"), payload.get("digest")
        if not isinstance(document, dict) or document_digest(document) != digest:
            return Problem(seq, "malformed_body", "the policy digest is not the SHA-256 of its document")
        version = f"{document.get('id')}@{document.get('version')}"
        if (document.get("id"), document.get("version")) != (payload.get("id"), payload.get("version")):
            return Problem(seq, "malformed_body", "the policy id or version differs from its document's")
        if self.versions.get(version, digest) != digest:
            return Problem(seq, "policy_conflict", f"{version} was already published at seq "
                           f"{self.policies[self.versions[version]][3]} with another document; publish a new version")
        return None

    def _check_policy_activated(self, seq: int, actor: str, payload: dict[str, Any]) -> Problem | None:
        stale = _stale(seq, payload, self.active_policies_seq, "policy set")
        if stale is not None:
            return stale
        digests = payload.get("policies")
        if not isinstance(digests, list) or not digests or not all(isinstance(d, str) for d in digests):
            return Problem(seq, "malformed_body", "an activation lists the digests of its policy versions")
        for digest in digests:
            if digest not in self.policies:
                return Problem(seq, "unknown_policy", f"policy version {digest} was never published")
            if digest not in self.active_policies and self.policies[digest][2] == actor:
                return Problem(seq, "separation_of_duties", f"{actor!r} authored {self.policies[digest][0]} "
                               f"{self.policies[digest][1]} and may not also activate it")
        recorded = controls_of(payload)
        if recorded is None:
            return Problem(seq, "malformed_body", "an activation's control catalog is an object with the lists "
                           "citable and organisation and the SHA-256 digest of the two")
        if recorded and self.recorded_controls:
            dropped = sorted(set(self.recorded_controls["organisation"]) - set(recorded["organisation"]))
            if dropped:
                return Problem(seq, "control_scope_narrowed", f"the activation's control catalog no longer makes "
                               f"{', '.join(dropped[:5])}{' ...' if len(dropped) > 5 else ''} organisation-level, "
                               f"as the one recorded at seq {self.recorded_controls_seq} did: organisation-level "
                               "controls are only added")
        return self._check_custom_kpis(seq, payload)

    def _check_custom_kpis(self, seq: int, payload: dict[str, Any]) -> Problem | None:
        """An activation's custom KPI catalog: its digest, and every KPI recorded before kept unchanged.

        Bundles already judged were read with those definitions; changing or dropping one would judge
        history by another catalog than the one it was recorded under.
        """
        catalog = custom_kpis_of(payload)
        if catalog is None:
            return Problem(seq, "malformed_body", "an activation's custom KPI catalog is an object with the "
                           "SHA-256 digest of its document, whose kpis list each definition once by id")
        for kpi_id, definition in sorted(self.custom_kpis.items()):
            if catalog.get(kpi_id) != definition:
                change = "drops" if kpi_id not in catalog else "changes"
                return Problem(seq, "custom_kpi_changed", f"the activation {change} custom KPI {kpi_id!r}, recorded "
                               "by an earlier activation; custom KPIs are only added (give a changed one a new id)")
        return None

    def _check_escalation_activated(self, seq: int, actor: str, payload: dict[str, Any]) -> Problem | None:
        stale = _stale(seq, payload, self.escalation_seq, "escalation configuration")
        if stale is not None:
            return stale
        document = payload.get("document")
        if not isinstance(document, dict) or document_digest(document) != payload.get("digest"):
            return Problem(seq, "malformed_body", "the escalation digest is not the SHA-256 of its document")
        return None

    def _check_applicability_activated(self, seq: int, actor: str, payload: dict[str, Any]) -> Problem | None:
        framework, document = payload.get("framework"), payload.get("document")
        if not isinstance(framework, str) or not isinstance(document, dict) or document.get("framework") != framework:
            return Problem(seq, "malformed_body", "an applicability activation names its framework and document")
        stale = _stale(seq, payload, self.applicability_seqs.get(framework), f"{framework} applicability document")
        if stale is not None:
            return stale
        if document_digest(document) != payload.get("digest"):
            return Problem(seq, "malformed_body", "the applicability digest is not the SHA-256 of its document")
        return None

    def _check_incident_transition(self, seq: int, actor: str, payload: dict[str, Any]) -> Problem | None:
        # Which role may take which step depends on the incident and the escalation graph: `charter
        # verify` re-checks that with Charter's own rule; without Charter, membership is what can be checked.
        if actor in self.admins():
            # Separation of duties: administrators run systems, keys and tokens; deciding incidents,
            # classifying them and filing their reports is for others, so no one holds both powers.
            return Problem(seq, "not_authorized", f"{actor!r} is an administrator, and administrators may not make "
                           "incident transitions, classifications or report filings (separation of duties)")
        if actor not in self.escalation_members:
            return Problem(seq, "not_authorized", f"{actor!r} holds no role in the escalation configuration in "
                           f"force (seq {self.escalation_seq})")
        return None

    def _check_incident_classified(self, seq: int, actor: str, payload: dict[str, Any]) -> Problem | None:
        # Only the incident's validators may classify it, and only the reporting role files: both depend
        # on the incident and the graph, which `charter verify` re-checks; here, membership, as for transitions.
        problem = self._check_incident_transition(seq, actor, payload)
        if problem is not None or payload.get("serious") is not True:
            return problem
        # Art. 73 needs a system EU high-risk under the classification in force at this seq; the
        # registrations say which, so this is checked here too, not only by `charter verify`.
        if self.eu_high_risk is None or self.incident_systems is None:
            return None  # resumed from a state that did not record them
        system_id = self.incident_systems.get(str(payload.get("incident_id")))
        if system_id is None:
            return None  # of no incident: `charter verify` names it; an export's entries say no more
        why = art73_system_problem(system_id, system_id in self.eu_high_risk, self.eu_high_risk.get(system_id))
        if why is None:
            return None
        return Problem(seq, "not_authorized", recorded_refusal(INCIDENT_CLASSIFIED, payload,
                                                              f"{why}: {ART73_HIGH_RISK_ONLY}"))

    def _check_incident_report_filed(self, seq: int, actor: str, payload: dict[str, Any]) -> Problem | None:
        return self._check_incident_transition(seq, actor, payload)

    def _check_waiver(self, seq: int, payload: dict[str, Any]) -> Problem | None:
        last = self.last
        granted = (last is not None and last[0] == seq - 1 and last[1] == INCIDENT_TRANSITION
                   and isinstance(last[2].get("decision"), list) and "accept_risk" in last[2]["decision"]
                   and last[2].get("incident_id") == payload.get("incident_id")
                   and last[2].get("actor") == payload.get("owner"))
        if not granted:
            return Problem(seq, "not_authorized", "a waiver that no accept_risk decision right before it granted")
        return None

    def _check_evidence_document(self, seq: int, actor: str, payload: dict[str, Any]) -> Problem | None:
        problem = evidence_shape_problem(EVIDENCE_DOCUMENT, statement_of(EVIDENCE_DOCUMENT, payload))
        if problem is not None:
            return Problem(seq, "malformed_body", problem)
        return self._evidence_scope_problem(seq, actor, payload)

    def _check_evidence_attestation(self, seq: int, actor: str, payload: dict[str, Any]) -> Problem | None:
        problem = evidence_shape_problem(EVIDENCE_ATTESTATION, statement_of(EVIDENCE_ATTESTATION, payload))
        if problem is not None:
            return Problem(seq, "malformed_body", problem)
        return self._documents_problem(seq, "attestation", payload) or self._evidence_scope_problem(seq, actor, payload)

    def _check_evidence_occurrence(self, seq: int, entry_type: str, actor: str, payload: dict[str, Any],
                                   received_at: str | None) -> Problem | None:
        """A test result or an event: its shape, the documents an event cites, a time no later than the
        entry's receipt (what is recorded has happened), then the rule every evidence follows."""
        problem = evidence_shape_problem(entry_type, statement_of(entry_type, payload))
        if problem is not None:
            return Problem(seq, "malformed_body", problem)
        start_name = EVIDENCE_PERIOD[entry_type][0]
        # A receipt that is not a time is the verifier's own finding (malformed_body) on this entry.
        if isinstance(received_at, str) and payload[start_name] > received_at:
            what = "a test is recorded once performed" if entry_type == EVIDENCE_TEST_RESULT else \
                "an event is recorded once it happened"
            return Problem(seq, "evidence_in_future", f"{start_name} {payload[start_name]} is after the entry's "
                           f"receipt {received_at}: {what}")
        cited = self._documents_problem(seq, "event", payload) if entry_type == EVIDENCE_EVENT else None
        return cited or self._evidence_scope_problem(seq, actor, payload)

    def _documents_problem(self, seq: int, what: str, payload: dict[str, Any]) -> Problem | None:
        """Documents an attestation or event cites must be recorded and not withdrawn."""
        recorded = {record[2] for record in self.evidence.values()
                    if record[0] == EVIDENCE_DOCUMENT and record[3] is None}
        for digest in payload["documents"]:
            if digest not in recorded:
                return Problem(seq, "unknown_document", f"the {what} cites document sha256 {digest}, which "
                               "is not recorded (or was withdrawn) in this ledger")
        return None

    def _evidence_scope_problem(self, seq: int, actor: str, payload: dict[str, Any]) -> Problem | None:
        """Evidence cites controls the catalogs list, exactly (paragraph included). Organisation-wide
        evidence, and evidence of an organisation-level control, needs an evidence attester; other
        evidence scoped to systems may also come from the owner of every system it names."""
        organisation: list[str] = []
        catalog, whose = self._control_catalog()
        if catalog is not None:
            for index, ref in enumerate(payload["controls"]):
                if ref not in catalog.citable:
                    return Problem(seq, "unknown_control", f"controls[{index}] {ref[:80]!r} is not a control (or "
                                   f"paragraph) {whose} list and reports assess")
            organisation = [ref for ref in payload["controls"] if control_of(ref) in catalog.organisation]
        systems = payload["systems"]
        unknown = [s for s in systems if s not in self.owners]
        if unknown:
            return Problem(seq, "unknown_system", f"the evidence names systems not registered in this ledger: "
                           f"{', '.join(unknown)}")
        if actor in self.holders("evidence_attester"):
            return None
        role = f"evidence_attester (needed to {AUTHORITY_ROLES['evidence_attester']})"
        if not systems:
            return Problem(seq, "not_authorized", f"{actor!r} does not hold {role} under the governance "
                           f"configuration of seq {self.config_seq}, and organisation-wide evidence needs it")
        if organisation:
            what = "is an organisation-level control" if len(organisation) == 1 else \
                "are organisation-level controls"
            return Problem(seq, "not_authorized", f"{actor!r} does not hold {role} under the governance "
                           f"configuration of seq {self.config_seq}, and {', '.join(organisation)} {what}: "
                           "owning a system does not make its owner the one to evidence it")
        foreign = [s for s in systems if self.owners[s] != actor]
        if foreign:
            return Problem(seq, "not_authorized", f"{actor!r} neither holds {role} nor owns "
                           f"{', '.join(foreign)}")
        return None

    def _control_catalog(self) -> tuple[ControlCatalog | None, str]:
        """The catalog evidence is judged by, and how a problem names it: the one the policy activation in
        force recorded, else the one the caller gave (a ledger whose activations recorded none)."""
        if self.recorded_controls:
            cached = self._recorded_catalog
            if cached is None or cached[0] != self.recorded_controls["digest"]:
                cached = self._recorded_catalog = (self.recorded_controls["digest"], ControlCatalog(
                    frozenset(self.recorded_controls["citable"]), frozenset(self.recorded_controls["organisation"])))
            return cached[1], ("the control catalog recorded by the policy activation of seq "
                               f"{self.recorded_controls_seq}")
        if callable(self.controls):
            self.controls = self.controls()
        return self.controls, "the catalogs"

    def _check_evidence_withdrawn(self, seq: int, actor: str, payload: dict[str, Any]) -> Problem | None:
        problem = evidence_shape_problem(EVIDENCE_WITHDRAWN, statement_of(EVIDENCE_WITHDRAWN, payload))
        if problem is not None:
            return Problem(seq, "malformed_body", problem)
        record = self.evidence.get(str(payload["seq"]))
        if record is None:
            return Problem(seq, "unknown_evidence", f"seq {payload['seq']} records no document, attestation, test "
                           "result or event")
        if record[3] is not None:
            return Problem(seq, "evidence_withdrawn", f"the evidence of seq {payload['seq']} was already withdrawn "
                           f"at seq {record[3]}")
        if actor != record[1] and actor not in self.admins():
            return Problem(seq, "not_authorized", f"{actor!r} may not withdraw {record[1]!r}'s evidence: only its "
                           "attester or recorder, or an administrator, may")
        return None

    def _check_token_created(self, seq: int, actor: str, payload: dict[str, Any],
                             received_at: str | None = None) -> Problem | None:
        problem = token_shape_problem(TOKEN_CREATED, statement_of(TOKEN_CREATED, payload))
        if problem is not None:
            return Problem(seq, "malformed_body", problem)
        if isinstance(received_at, str):
            # signed_at is the signer's word: a statement dated years ahead would otherwise live years from now
            try:
                lifetime = (datetime.datetime.fromisoformat(str(payload["expires_at"]).replace("Z", "+00:00"))
                            - datetime.datetime.fromisoformat(received_at.replace("Z", "+00:00")))
            except ValueError:
                return Problem(seq, "malformed_body", f"received_at {received_at!r} is no calendar time")
            if lifetime > datetime.timedelta(days=MAX_TOKEN_DAYS) + TOKEN_CLOCK_SKEW:
                return Problem(seq, "token_lifetime", f"token {payload['token_id']} expires at "
                               f"{payload['expires_at']}, more than {MAX_TOKEN_DAYS} days after the entry was "
                               f"received ({received_at}); its signing time {payload.get('signed_at')} is the "
                               "signer's claim")
        if actor != payload["principal"] and actor not in self.admins():
            return Problem(seq, "not_authorized", f"{actor!r} created a token for {payload['principal']!r}: only the "
                           "token's principal or an administrator may")
        if actor != payload["principal"] and payload["principal"] in self.admins():
            return Problem(seq, "not_authorized", f"{actor!r} created a token for administrator "
                           f"{payload['principal']!r}: an administrator's tokens are created by their holder only")
        if payload["token_id"] in self.tokens:
            return Problem(seq, "token_registered", f"token {payload['token_id']} was already created at seq "
                           f"{self.tokens[payload['token_id']][3]}")
        return None

    def _check_token_revoked(self, seq: int, actor: str, payload: dict[str, Any]) -> Problem | None:
        problem = token_shape_problem(TOKEN_REVOKED, statement_of(TOKEN_REVOKED, payload))
        if problem is not None:
            return Problem(seq, "malformed_body", problem)
        token = self.tokens.get(payload["token_id"])
        if token is None:
            return Problem(seq, "unknown_token", f"revocation of token {payload['token_id']}, which was never created")
        if actor != token[0] and actor not in self.admins():
            return Problem(seq, "not_authorized", f"{actor!r} revoked {token[0]!r}'s token: only its principal or an "
                           "administrator may")
        if actor != token[0] and token[0] in self.admins():
            return Problem(seq, "not_authorized", f"{actor!r} revoked administrator {token[0]!r}'s token: an "
                           "administrator's tokens are revoked by their holder only; a configuration that drops the "
                           "administrator takes their powers")
        if token[4] is not None:
            return Problem(seq, "token_revoked", f"token {payload['token_id']} was already revoked at seq {token[4]}")
        return None

    # -- folding --------------------------------------------------------------------------------

    def apply(self, seq: int, entry_type: str, payload: dict[str, Any], submission_id: str | None = None) -> None:
        """Fold an entry that `check` allowed into the state (the verifier does not fold refused ones)."""
        self.last = [seq, entry_type, payload if entry_type == INCIDENT_TRANSITION else {}]
        if submission_id is not None and entry_type in (GOVERNANCE_CONFIG, *SIGNED_ACTIONS):
            self.statements.add(submission_id)
        if entry_type == GOVERNANCE_CONFIG and _config_problem(payload.get("config")) is None:
            for dropped in self.admin_key_ids() - _admin_key_ids(payload["config"]):
                key = self.keys.get(dropped)
                if key is not None and key[3] is None:
                    key[3] = seq  # a key the new configuration drops (rotated, or its holder left) is revoked
            self.config, self.config_seq = payload["config"], seq
            for admin in payload["config"]["administrators"]:
                key_id = key_id_for(base64.b64decode(admin["public_key"]))
                self.keys.setdefault(key_id, [admin["principal"], admin["public_key"], seq, None])
            for key_id in sorted(self.pending_keys):
                # A configuration that needs fewer approvals completes the first keys that already have enough.
                # A principal who has had a key registered since consents to another only by endorsing it: a
                # stale approval must not register a key in their name unendorsed (review M5).
                if key_id not in self.keys and not self.principal_keys(self.pending_keys[key_id][0], seq + 1) \
                        and len(self.key_approvers(key_id, seq + 1)) >= self.key_approvals():
                    self._register_pending(key_id, seq)
        elif entry_type == KEY_ADDED:
            self._add_key(seq, payload)
        elif entry_type == KEY_REVOKED:
            key = self.keys.get(str(payload.get("key_id")))
            if key is not None and key[3] is None:
                key[3] = seq
        elif entry_type == SYSTEM_REGISTERED:
            system = payload.get("system")
            if isinstance(system, dict):
                self.owners[str(system.get("id"))] = str(system.get("owner"))
                if self.eu_high_risk is not None:
                    self.eu_high_risk[str(system.get("id"))] = eu_high_risk(system.get("eu_ai_act"))
        elif entry_type == INCIDENT_OPENED:
            if self.incident_systems is not None and isinstance(payload.get("incident_id"), str):
                # the first opening decides: a second one forged under the same id cannot re-map the incident
                self.incident_systems.setdefault(payload["incident_id"], str(payload.get("system_id")))
        elif entry_type == POLICY_PUBLISHED:
            digest = str(payload.get("digest"))
            self.policies.setdefault(digest, [str(payload.get("id")), str(payload.get("version")),
                                              str(payload.get("actor")), seq])
            self.versions.setdefault(f"{payload.get('id')}@{payload.get('version')}", digest)
        elif entry_type == POLICY_ACTIVATED:
            policies = payload.get("policies")
            self.active_policies = [str(d) for d in policies] if isinstance(policies, list) else []
            self.active_policies_seq = seq
            self.custom_kpis = custom_kpis_of(payload) or {}
            recorded = controls_of(payload)
            if recorded:  # an activation recording no catalog keeps the one recorded before
                self.recorded_controls, self.recorded_controls_seq = recorded, seq
        elif entry_type == ESCALATION_ACTIVATED:
            members: dict[str, list[str]] = {}
            document = payload.get("document")
            roles = document.get("roles") if isinstance(document, dict) else None
            for role, spec in sorted(roles.items()) if isinstance(roles, dict) else []:
                listed = spec.get("members") if isinstance(spec, dict) else None
                for member in listed if isinstance(listed, list) else []:
                    members.setdefault(str(member), []).append(str(role))
            self.escalation_members, self.escalation_seq = members, seq
        elif entry_type in (EVIDENCE_DOCUMENT, EVIDENCE_ATTESTATION, EVIDENCE_TEST_RESULT, EVIDENCE_EVENT):
            sha256 = payload.get("sha256") if entry_type == EVIDENCE_DOCUMENT else None
            self.evidence[str(seq)] = [entry_type, str(payload.get("actor")), sha256, None]
        elif entry_type == EVIDENCE_WITHDRAWN:
            record = self.evidence.get(str(payload.get("seq")))
            if record is not None and record[3] is None:
                record[3] = seq
        elif entry_type == APPLICABILITY_ACTIVATED and isinstance(payload.get("framework"), str):
            self.applicability_seqs[payload["framework"]] = seq
        elif entry_type == TOKEN_CREATED:
            scopes = payload.get("scopes")
            self.tokens.setdefault(str(payload.get("token_id")), [
                str(payload.get("principal")), [str(s) for s in scopes] if isinstance(scopes, list) else [],
                str(payload.get("expires_at")), seq, None, str(payload.get("hash"))])
        elif entry_type == TOKEN_REVOKED:
            token = self.tokens.get(str(payload.get("token_id")))
            if token is not None and token[4] is None:
                token[4] = seq


_AUTHORITY_STATE = ("config", "config_seq", "keys", "owners", "policies", "versions", "active_policies",
                    "active_policies_seq", "escalation_members", "escalation_seq", "last", "statements",
                    "evidence", "applicability_seqs", "tokens", "custom_kpis", "recorded_controls",
                    "recorded_controls_seq", "eu_high_risk", "incident_systems", "pending_keys")
#: state added after verified states were first recorded: an older state lacks it (an older ledger had
#: no pending keys: before ``key_approvals`` every key was registered by one administrator)
_LATER_STATE = frozenset({"tokens", "custom_kpis", "recorded_controls", "recorded_controls_seq", "eu_high_risk",
                          "incident_systems", "pending_keys"})
#: later state an older state cannot stand for by an empty default (entries of its kind were folded
#: before, just not recorded)
UNKNOWN_IN_OLDER_STATE = frozenset({"eu_high_risk", "incident_systems"})


def _admin_key_ids(config: dict[str, Any] | None) -> set[str]:
    """The key ids of a governance configuration's administrators."""
    return {key_id_for(base64.b64decode(a["public_key"])) for a in (config or {}).get("administrators", [])}


def _scope_allows(scope: str, entry_type: str, payload: dict[str, Any], key_id: str | None) -> bool:
    """Whether a token of `scope` may write an entry of `entry_type`."""
    if scope == "act":
        return True
    if scope == "submit":
        return entry_type in SUBMIT_SCOPE_TYPES or _automatic_reopen(entry_type, payload, key_id)
    return False


# -- the verifier ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredEntry:
    """One entry as stored: its position, exact body bytes and the log's receipt signature."""

    seq: int
    body: bytes
    receipt: str  # the per-entry receipt of older ledgers; empty where a range receipt covers the entry
    record_hash: bytes | None = None  # as stored beside the body, when the store keeps a copy
    range_receipt: RangeReceipt | None = None  # on the last entry of an append transaction


@dataclass(frozen=True)
class RangeReceipt:
    """The log's signature over the Merkle root of entries ``first`` to the entry that carries it."""

    first: int
    root: bytes
    signature: str


@dataclass(frozen=True)
class Problem:
    """One kind of damage, at the first sequence number where it shows."""

    seq: int | None
    kind: str
    detail: str

    def __str__(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else "ledger"
        return f"{where}: {self.kind}: {self.detail}"


@dataclass
class Report:
    """What verification found."""

    origin: str
    entries: int = 0
    checkpoints: list[int] = field(default_factory=list)  # sizes whose root matched
    problems: list[Problem] = field(default_factory=list)
    signatures_checked: bool = True
    #: entries below this were not read now: a log-signed verified state vouches for them (see `Verifier.resume`)
    resumed_from: int | None = None
    #: when the verified state's chain of passes last read every entry, and how many there were then
    full_pass: tuple[int, str] | None = None

    @property
    def ok(self) -> bool:
        """No damage found."""
        return not self.problems

    @property
    def covered(self) -> int:
        """Entries anchored by a matching checkpoint: their removal or rewriting would be detected."""
        return max(self.checkpoints, default=0)

    @property
    def first_bad_seq(self) -> int | None:
        """The lowest sequence number at which damage shows."""
        seqs = [p.seq for p in self.problems if p.seq is not None]
        return min(seqs) if seqs else None

    def summary(self) -> str:
        """One paragraph for people."""
        if not self.ok:
            first = min(self.problems, key=lambda p: (p.seq is None, p.seq or 0))
            return f"FAILED: {first} ({len(self.problems)} problems in all)"
        tail = self.entries - self.covered
        text = f"OK: {self.entries} entries verified"
        if self.covered:
            text += f"; entries 0..{self.covered - 1} are anchored by checkpoint {self.covered}"
        if tail:
            start = self.covered
            text += (f"; entries {start}..{self.entries - 1} are not covered by any checkpoint yet, so their "
                     "truncation or rewriting by someone holding the log key would not be detected")
        if not self.signatures_checked:
            text += "; signatures were not checked"
        if self.resumed_from:
            full = (f"; the last pass over every entry read {self.full_pass[0]} entries at {self.full_pass[1]}"
                    if self.full_pass else "")
            text += (f"; entries {self.resumed_from}..{self.entries - 1} were read now and entries "
                     f"0..{self.resumed_from - 1} are vouched for by the log-signed state of an earlier "
                     f"verification{full} (verify --full reads them all again)")
        return text


class ReceiptTracker:
    """Checks the log's receipts entry by entry, in seq order: one rule for the verifier and the checkpoint signer.

    A per-entry receipt (ledgers written before range receipts) is checked at once; a range receipt
    when the entry that closes its append transaction arrives, over the Merkle root of the range.

    Args:
        origin: the log's origin.
        log_public_key: the log's raw Ed25519 public key.
    """

    def __init__(self, origin: str, log_public_key: bytes) -> None:
        self.origin = origin
        self.log_key = log_public_key
        #: first seq of the append transaction whose range receipt is still to come, if any
        self.open: int | None = None
        self._range = CompactRange()

    def feed(self, seq: int, record_hash: bytes, receipt: str, closing: RangeReceipt | None) -> Problem | None:
        """Take the next entry; the damage its receipt (or its transaction's) shows, if any."""
        if receipt:
            if self.open is not None:
                return Problem(self.open, "missing_receipt", f"entries {self.open}..{seq - 1} carry no receipt of "
                               "the log")
            if not verify_signature(self.log_key, RECEIPT_CONTEXT, receipt_message(self.origin, seq, record_hash),
                                    receipt):
                return Problem(seq, "bad_receipt", "the log's receipt signature does not match this body at this "
                               "position: the entry was altered, inserted or moved")
            return None
        if self.open is None:
            self.open, self._range = seq, CompactRange()
        self._range.append(record_hash)
        if closing is None:
            return None
        first, self.open = self.open, None
        if closing.first != first or closing.root != self._range.root() or not verify_signature(
                self.log_key, RANGE_RECEIPT_CONTEXT, range_receipt_message(self.origin, first, seq + 1, closing.root),
                closing.signature):
            return Problem(first, "bad_receipt", f"the log's receipt for entries {first}..{seq} does not match them: "
                           "an entry was altered, inserted or moved")
        return None

    def unclosed(self, size: int) -> Problem | None:
        """At the end of `size` entries: the transaction left without its receipt, if any."""
        if self.open is None:
            return None
        return Problem(self.open, "missing_receipt", f"entries {self.open}..{size - 1} carry no receipt of the log")


class Verifier:
    """Streams entries in order and checks everything that can be checked.

    Args:
        origin: the pinned log origin.
        log_public_key: the pinned raw Ed25519 public key of the log.
        checkpoint_notes: checkpoint notes to check against (any order; invalid ones are problems).
        check_signatures: also check receipt and submitter signatures (the expensive part).
    """

    def __init__(self, origin: str, log_public_key: bytes, checkpoint_notes: Iterable[str] = (),
                 check_signatures: bool = True,
                 controls: ControlCatalog | Callable[[], ControlCatalog] | None = None) -> None:
        self.report = Report(origin, signatures_checked=check_signatures)
        self.origin = origin
        self.log_key = log_public_key
        self.check_signatures = check_signatures
        self._checkpoints: dict[int, Checkpoint] = {}
        for note in checkpoint_notes:
            try:
                checkpoint = open_checkpoint(note, origin, log_public_key)
            except NoteError as exc:
                self._problem(None, "checkpoint_invalid", str(exc))
                continue
            held = self._checkpoints.get(checkpoint.size)
            if held and held.root != checkpoint.root:
                self._problem(None, "equivocation", f"two validly signed checkpoints of size {checkpoint.size} "
                              "with different roots: the log showed different histories")
            self._checkpoints[checkpoint.size] = checkpoint
        empty = self._checkpoints.pop(0, None)
        if empty is not None and empty.root != EMPTY_ROOT:
            self._problem(None, "checkpoint_mismatch", "a signed checkpoint of the empty log has a non-empty root")
        self._pending = sorted(self._checkpoints)
        self._range = CompactRange()
        self._prev = ZERO_HASH
        self.authority = Authority(origin, check_signatures, controls)
        self._last_received = ""
        self._stopped = False
        self._receipts = ReceiptTracker(origin, log_public_key)

    def _problem(self, seq: int | None, kind: str, detail: str) -> None:
        self.report.problems.append(Problem(seq, kind, detail))

    @property
    def last_hash(self) -> bytes | None:
        """The record hash of the last entry verified, if any."""
        return self._prev if self._range.size else None

    @property
    def stopped(self) -> bool:
        """Whether damage broke the chain, so that later entries were not judged."""
        return self._stopped

    @property
    def root(self) -> bytes:
        """The Merkle root of the entries verified so far."""
        return self._range.root()

    def state(self) -> dict[str, Any]:
        """What this verifier knows after the entries it was fed, to resume from later (`resume`).

        Only a clean pass with signatures checked has a state worth keeping.

        Raises:
            ValueError: the pass found problems or skipped signatures.
        """
        if self._stopped or self.report.problems or not self.check_signatures or self._receipts.open is not None:
            raise ValueError("only a clean verification with signatures checked can be resumed from")
        return {"log": self.origin, "size": self._range.size, "root": self._range.root().hex(),
                "frontier": [h.hex() for h in self._range.frontier], "prev": self._prev.hex(),
                "last_received": self._last_received,
                "authority": self.authority.to_state(),
                "checkpoints": sorted(self.report.checkpoints)}

    def resume(self, state: dict[str, Any]) -> None:
        """Continue from a `state` recorded after an earlier clean pass over its first ``size`` entries.

        The caller vouches for the state (Charter keeps it signed by the log key): entries below its
        size are not read again, so a body rewritten there is found only by a full pass. Checkpoints
        the verifier was given up to that size must be among those the state verified.

        Raises:
            ValueError: the state is malformed, of another log, or does not fit the checkpoints given.
        """
        if self._range.size or state.get("log") != self.origin:
            raise ValueError("a state resumes a fresh verifier of the same log")
        size = int(state["size"])
        self._range = CompactRange.resume(size, [bytes.fromhex(h) for h in state["frontier"]])
        if self._range.root().hex() != state["root"]:
            raise ValueError("the state's frontier does not give its root")
        self._prev = bytes.fromhex(state["prev"])
        self._last_received = str(state["last_received"])
        self.authority.resume(state["authority"])
        verified = {int(c) for c in state["checkpoints"]}
        for checkpoint_size in [c for c in self._pending if c <= size]:
            if checkpoint_size == size and self._checkpoints[checkpoint_size].root != self._range.root():
                raise ValueError(f"the checkpoint of {size} entries does not have the state's root")
            if checkpoint_size < size and checkpoint_size not in verified:
                raise ValueError(f"the checkpoint of {checkpoint_size} entries was not verified with the state")
            self._pending.remove(checkpoint_size)
            self.report.checkpoints.append(checkpoint_size)
        self.report.entries = size
        self.report.resumed_from = size

    def feed(self, entry: StoredEntry) -> dict[str, Any] | None:
        """Check the next entry, and return its body parsed (None when it was not parsed).

        After damage that breaks the chain, later entries are not judged (nor parsed). The body is
        returned whenever it parsed, even when a later check failed; callers share it (do not modify it).
        """
        if self._stopped:
            return None
        expected = self._range.size
        if entry.seq != expected:
            kind = "missing_entry" if entry.seq > expected else "duplicate_seq"
            self._stop(expected, kind, f"expected seq {expected}, found {entry.seq}")
            return None
        record_hash = leaf_hash(entry.body)
        if entry.record_hash is not None and entry.record_hash != record_hash:
            self._stop(entry.seq, "hash_mismatch", "the stored record hash is not SHA-256(0x00 || body)")
            return None
        if self.check_signatures:
            damage = self._receipts.feed(entry.seq, record_hash, entry.receipt, entry.range_receipt)
            if damage is not None:
                self._stop(damage.seq, damage.kind, damage.detail)
                return None
        try:
            body, canonical = parse_canonical(entry.body)
        except (ValueError, UnicodeDecodeError) as exc:
            self._stop(entry.seq, "malformed_body", str(exc))
            return None
        if not canonical:
            self._stop(entry.seq, "not_canonical", "the stored bytes are not the canonical form of the body")
            return body
        if body.get("log") != self.origin:
            self._stop(entry.seq, "wrong_origin", f"entry of log {body.get('log')!r}")
            return body
        if type(body.get("seq")) is not int or body["seq"] != entry.seq:
            self._stop(entry.seq, "seq_mismatch", f"body says seq {body.get('seq')!r}")
            return body
        if body.get("v") != 1 or not isinstance(body.get("type"), str) or not isinstance(
                body.get("submission_id"), str):
            self._stop(entry.seq, "malformed_body", "missing or mistyped v, type or submission_id")
            return body
        if body.get("prev") != self._prev.hex():
            opened = self._receipts.open
            if opened is not None and opened < entry.seq:
                # Both are in one transaction whose receipt is only checked at its end: the earlier
                # entry is the first that may have been altered.
                self._stop(entry.seq - 1, "chain_broken", f"entry {entry.seq} does not name this entry's record "
                           "hash: this entry was altered (or the next one was)")
            else:
                self._stop(entry.seq, "chain_broken", "the body does not name the previous record hash")
            return body
        received = body.get("received_at")
        if not isinstance(received, str) or not _RFC3339_MS.fullmatch(received):
            self._problem(entry.seq, "malformed_body", f"received_at {received!r} is not an RFC 3339 UTC time")
        elif received < self._last_received:
            self._problem(entry.seq, "time_went_back", f"received_at {received!r} is before {self._last_received!r}")
        else:
            self._last_received = received
        self._check_content(entry.seq, body)
        self._range.append(record_hash)
        self._prev = record_hash
        self.report.entries = self._range.size
        while self._pending and self._pending[0] <= self._range.size:
            size = self._pending.pop(0)
            if size == self._range.size:
                if self._range.root() == self._checkpoints[size].root:
                    self.report.checkpoints.append(size)
                else:
                    self._stop(None, "checkpoint_mismatch", f"the first {size} entries do not have the root of "
                               "the signed checkpoint: history was rewritten")
                    return body
        return body

    def _check_content(self, seq: int, body: dict[str, Any]) -> None:
        kind = str(body.get("type"))
        payload = body.get("payload")
        if not isinstance(payload, dict):
            self._problem(seq, "malformed_body", "payload is not an object")
            return
        submission_id = body.get("submission_id")
        if "via" in body and body["via"] is None:
            problem: Problem | None = Problem(seq, "malformed_via", "via must be an object")
        else:
            problem = self.authority.check(seq, kind, payload, body.get("key_id"), body.get("sig"), submission_id,
                                           via=body.get("via"), received_at=body.get("received_at"))
        if problem is not None:
            self.report.problems.append(problem)
            self.authority.last = [seq, kind, {}]  # an unauthorized change changes nothing
            return
        if kind == BUNDLE:
            self._check_bundle(seq, body, payload)
        self.authority.apply(seq, kind, payload, submission_id)

    def _check_bundle(self, seq: int, body: dict[str, Any], payload: dict[str, Any]) -> None:
        # the key, its owner and role were judged by `Authority._bundle_problem`; the signature is left
        key = self.authority.keys[str(body.get("key_id"))]
        if self.check_signatures and not verify_signature(base64.b64decode(key[1]), BUNDLE_CONTEXT,
                                                          canonical_json(payload), str(body.get("sig"))):
            self._problem(seq, "bad_signature", "the submitter's signature does not match the bundle")

    def _stop(self, seq: int | None, kind: str, detail: str) -> None:
        self._problem(seq, kind, detail)
        self._stopped = True

    def finish(self, claimed_size: int | None = None) -> Report:
        """Close the stream: checkpoints beyond the end mean entries were removed.

        Args:
            claimed_size: the size the store claims (its head), when it has one.
        """
        if not self._stopped:
            size = self._range.size
            unclosed = self._receipts.unclosed(size)
            if unclosed is not None:
                self.report.problems.append(unclosed)
            if claimed_size is not None and claimed_size != size:
                self._problem(size, "head_mismatch", f"the head claims {claimed_size} entries, {size} were found")
            for pending in self._pending:
                self._problem(size, "truncated", f"a signed checkpoint covers {pending} entries, only {size} exist")
        return self.report


def verify_entries(entries: Iterable[StoredEntry], origin: str, log_public_key: bytes,
                   checkpoint_notes: Iterable[str] = (), check_signatures: bool = True,
                   claimed_size: int | None = None,
                   controls: ControlCatalog | Callable[[], ControlCatalog] | None = None) -> Report:
    """Verify a whole ledger streamed as `entries`, in sequence order."""
    verifier = Verifier(origin, log_public_key, checkpoint_notes, check_signatures, controls)
    for entry in entries:
        verifier.feed(entry)
    return verifier.finish(claimed_size)


# -- export directory -----------------------------------------------------------------------------


def read_export(directory: Path) -> tuple[dict[str, Any], Iterator[StoredEntry], list[str]]:
    """Trust root, entries and checkpoint notes of an export written by ``charter ledger export``."""
    trust = json.loads((directory / "trust_root.json").read_text(encoding="utf-8"))

    if not isinstance(trust, dict):
        raise ValueError("trust_root.json is not an object")

    def entries() -> Iterator[StoredEntry]:
        with (directory / "entries.jsonl").open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    batch = row.get("range_receipt")
                    yield StoredEntry(int(row["seq"]), base64.b64decode(row["body"], validate=True),
                                      str(row["receipt"]), None,
                                      RangeReceipt(int(batch["first"]), base64.b64decode(batch["root"], validate=True),
                                                   str(batch["signature"])) if batch else None)
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    raise ValueError(f"entries.jsonl line {number} is malformed: {exc!r}") from exc

    notes = []
    for path in sorted((directory / "checkpoints").glob("*.note")):
        try:
            notes.append(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            notes.append(f"unreadable note {path.name}\n")  # reported as checkpoint_invalid
    return trust, entries(), notes


def read_head(directory: Path) -> dict[str, Any] | None:
    """The database's head row and checkpoint rows as exported (``head.json``), if the export has them."""
    path = directory / "head.json"
    if not path.exists():
        return None
    head = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(head, dict):
        raise ValueError("head.json is not an object")
    return head


def head_problems(head: dict[str, Any], report: Report, last_hash: bytes | None, origin: str,
                  public: bytes) -> list[Problem]:
    """What the exported head and checkpoint rows say that the entries and notes do not (as `charter verify`)."""
    problems = []
    size = int(head["size"])
    if size != report.entries:
        problems.append(Problem(report.entries, "head_mismatch", f"the head claims {size} entries, "
                                f"{report.entries} were found"))
    elif last_hash is not None and head.get("head_hash") != last_hash.hex():
        problems.append(Problem(size - 1, "head_mismatch", "the head row's hash is not the last entry's"))
    rows = [(int(r["size"]), bytes.fromhex(str(r["root"])), str(r["note"])) for r in head.get("checkpoints", [])]
    return problems + checkpoint_row_problems(rows, origin, public)


#: exit code of a verification that found nothing wrong but had no trust anchor of its own
UNANCHORED = 3


def _pinned_key(given: str, exported: bytes) -> bytes | None:
    """The log key from ``--log-key`` (base64 of the raw key, or the ``ed25519:HEX`` fingerprint of the
    exported one); None when a fingerprint is not the exported key's."""
    if given.startswith("ed25519:"):
        return exported if given == key_id_for(exported) else None
    return base64.b64decode(given, validate=True)


def main(argv: list[str] | None = None) -> int:
    """Verify an export directory; exit 0 when it verifies against a trust anchor you hold, 1 when it does
    not verify, 2 on bad input, 3 when it verifies but nothing you hold anchors it (``unanchored``)."""
    import argparse

    parser = argparse.ArgumentParser(description="Verify an exported Charter ledger offline.")
    parser.add_argument("export_dir", type=Path)
    parser.add_argument("--checkpoint", type=Path, action="append", default=[],
                        help="a checkpoint note you hold yourself (may be repeated); it anchors the log key")
    parser.add_argument("--no-signatures", action="store_true", help="skip signature checks (faster)")
    parser.add_argument("--log-key", help="the log's public key as you obtained it out of band: base64 of the raw "
                        "key, or its fingerprint ed25519:HEX. Without it (or a held checkpoint) the export's own "
                        "trust_root.json is all there is, and the result is 'unanchored' (exit 3)")
    parser.add_argument("--origin", help="the log's origin as you know it; default: the export's")
    parser.add_argument("--controls", type=Path, help="the catalogs' citable and organisation-level controls "
                        "(JSON, as the export's controls.json) for evidence recorded before any policy activation "
                        "recorded its control catalog (later evidence is judged by the recorded one); default: the "
                        "export's controls.json. Without either, what such evidence cites and who may evidence "
                        "organisation-level controls go unchecked")
    args = parser.parse_args(argv)
    try:
        trust, entries, notes = read_export(args.export_dir)
        head = read_head(args.export_dir)
        held = [p.read_text(encoding="utf-8") for p in args.checkpoint]
        exported_key = base64.b64decode(str(trust["log_public_key"]), validate=True)
        pinned = _pinned_key(args.log_key, exported_key) if args.log_key else exported_key
        if pinned is None:
            print(f"FAILED: the export's log key {key_id_for(exported_key)} is not "
                  f"{args.log_key}: this is not the log you pinned")
            return 1
        public = pinned
        origin = args.origin or str(trust["origin"])
        if public != exported_key or origin != trust["origin"]:
            print("warning: the export's trust_root.json names another key or origin than the one you pinned",
                  file=sys.stderr)
        # A pinned key anchors only what it was used to check: without signatures it checks nothing.
        anchored = bool(args.log_key or held) and not args.no_signatures
        print(f"log key {key_id_for(public)} "
              f"({'pinned by you' if args.log_key else 'held checkpoint' if held else 'from the export itself'}), "
              f"origin {origin}")
        controls_file = args.controls or args.export_dir / "controls.json"
        controls = ControlCatalog.from_dict(json.loads(controls_file.read_text(encoding="utf-8"))) \
            if args.controls or controls_file.exists() else None
        if controls is None:
            print("warning: no controls file: evidence recorded under a policy activation that recorded its "
                  "control catalog is judged by that catalog; other evidence goes unchecked for what it cites "
                  "and who may evidence organisation-level controls", file=sys.stderr)
        verifier = Verifier(origin, public, notes + held, not args.no_signatures, controls)
        for entry in entries:
            verifier.feed(entry)
        report = verifier.finish(int(head["size"]) if head else None)
        if head is not None and not verifier.stopped:
            report.problems.extend(head_problems(head, report, verifier.last_hash, origin, public))
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        print(f"error: cannot read the export: {exc}", file=sys.stderr)
        return 2
    for problem in report.problems:
        print(problem)
    print(report.summary())
    if not report.ok:
        return 1
    if not anchored:
        print("UNANCHORED: nothing you hold anchors this export. It is consistent with the log key it carries, "
              "but a history rewritten under a new key would be too. Pin the key you obtained out of band "
              "(--log-key ed25519:HEX) or give a checkpoint you hold (--checkpoint FILE).")
        return UNANCHORED
    return 0


if __name__ == "__main__":
    sys.exit(main())
