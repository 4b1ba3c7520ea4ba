#!/usr/bin/env python3
"""Charter ledger auditor: verifies a ledger from its entries, checkpoints and pinned log key.

This file is deliberately self-contained: it imports only the standard library, ``cryptography``
and ``rfc8785``, so an auditor can run it on an export (``charter ledger export DIR``) with neither
the database nor the rest of Charter:

    python verify.py EXPORT_DIR [--checkpoint NOTE_FILE]...

Charter's own ``charter verify`` runs the same code over the database. Checks, streamed in constant
memory: every body is canonical JSON (RFC 8785; ``rfc8785`` is the reference, with a faster
standard-library path where it provably gives the same bytes) of the right log; sequence numbers are
dense from 0; each body names the previous record hash; each record hash is SHA-256(0x00 || body)
and is covered by the log's receipt signature (one per append transaction, over the Merkle root of
its entries; ledgers written before range receipts carry one per entry); bundles are signed by a key
registered to the system's owner and valid at that sequence number (keys are added and revoked by
ledger entries); receipt times never go back; checkpoint notes are signed by the pinned log key and
their roots match the entries. Entries after the last matching checkpoint are reported as not
covered: their absence could not be detected.
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import json
import math
import re
import sys
from collections.abc import Iterable, Iterator
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


def parse_body(body: bytes) -> dict[str, Any]:
    """Strictly parse an entry body (UTF-8 JSON object, no duplicate keys, finite numbers).

    Raises:
        ValueError: for anything that is not such an object, including nesting too deep to parse.
    """
    try:
        value = json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicates,
                           parse_constant=_reject_constant, parse_float=_finite)
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc
    if not isinstance(value, dict):
        raise ValueError("a body is a JSON object")
    return value


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


@dataclass
class _Key:
    principal: str
    public: bytes
    added: int
    revoked: int | None = None


class Verifier:
    """Streams entries in order and checks everything that can be checked.

    Args:
        origin: the pinned log origin.
        log_public_key: the pinned raw Ed25519 public key of the log.
        checkpoint_notes: checkpoint notes to check against (any order; invalid ones are problems).
        check_signatures: also check receipt and submitter signatures (the expensive part).
    """

    def __init__(self, origin: str, log_public_key: bytes, checkpoint_notes: Iterable[str] = (),
                 check_signatures: bool = True) -> None:
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
        self._keys: dict[str, _Key] = {}
        self._owners: dict[str, str] = {}
        self._last_received = ""
        self._stopped = False
        self._receipts = ReceiptTracker(origin, log_public_key)

    def _problem(self, seq: int | None, kind: str, detail: str) -> None:
        self.report.problems.append(Problem(seq, kind, detail))

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
                "keys": {key_id: [k.principal, base64.b64encode(k.public).decode(), k.added, k.revoked]
                         for key_id, k in sorted(self._keys.items())},
                "owners": dict(sorted(self._owners.items())),
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
        self._keys = {key_id: _Key(str(principal), base64.b64decode(public), int(added),
                                   None if revoked is None else int(revoked))
                      for key_id, (principal, public, added, revoked) in state["keys"].items()}
        self._owners = {str(system): str(owner) for system, owner in state["owners"].items()}
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

    def feed(self, entry: StoredEntry) -> None:
        """Check the next entry. After damage that breaks the chain, later entries are not judged."""
        if self._stopped:
            return
        expected = self._range.size
        if entry.seq != expected:
            kind = "missing_entry" if entry.seq > expected else "duplicate_seq"
            self._stop(expected, kind, f"expected seq {expected}, found {entry.seq}")
            return
        record_hash = leaf_hash(entry.body)
        if entry.record_hash is not None and entry.record_hash != record_hash:
            self._stop(entry.seq, "hash_mismatch", "the stored record hash is not SHA-256(0x00 || body)")
            return
        if self.check_signatures:
            damage = self._receipts.feed(entry.seq, record_hash, entry.receipt, entry.range_receipt)
            if damage is not None:
                self._stop(damage.seq, damage.kind, damage.detail)
                return
        try:
            body = parse_body(entry.body)
        except (ValueError, UnicodeDecodeError) as exc:
            self._stop(entry.seq, "malformed_body", str(exc))
            return
        try:
            canonical = canonical_json(body)
        except Exception as exc:  # rfc8785 raises its own errors for values outside JSON's domain
            self._stop(entry.seq, "malformed_body", f"cannot be canonicalized: {exc}")
            return
        if canonical != entry.body:
            self._stop(entry.seq, "not_canonical", "the stored bytes are not the canonical form of the body")
            return
        if body.get("log") != self.origin:
            self._stop(entry.seq, "wrong_origin", f"entry of log {body.get('log')!r}")
            return
        if type(body.get("seq")) is not int or body["seq"] != entry.seq:
            self._stop(entry.seq, "seq_mismatch", f"body says seq {body.get('seq')!r}")
            return
        if body.get("v") != 1 or not isinstance(body.get("type"), str) or not isinstance(
                body.get("submission_id"), str):
            self._stop(entry.seq, "malformed_body", "missing or mistyped v, type or submission_id")
            return
        if body.get("prev") != self._prev.hex():
            opened = self._receipts.open
            if opened is not None and opened < entry.seq:
                # Both are in one transaction whose receipt is only checked at its end: the earlier
                # entry is the first that may have been altered.
                self._stop(entry.seq - 1, "chain_broken", f"entry {entry.seq} does not name this entry's record "
                           "hash: this entry was altered (or the next one was)")
            else:
                self._stop(entry.seq, "chain_broken", "the body does not name the previous record hash")
            return
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
                    return

    def _check_content(self, seq: int, body: dict[str, Any]) -> None:
        kind = body.get("type")
        payload = body.get("payload")
        if not isinstance(payload, dict):
            self._problem(seq, "malformed_body", "payload is not an object")
            return
        if kind == "key.added":
            key_id = str(payload.get("key_id"))
            try:
                public = base64.b64decode(str(payload.get("public_key")), validate=True)
            except ValueError:
                self._problem(seq, "malformed_body", "public key is not base64")
                return
            if "ed25519:" + hashlib.sha256(public).hexdigest() != key_id:
                self._problem(seq, "malformed_body", "key id does not match the public key")
            self._keys.setdefault(key_id, _Key(str(payload.get("principal")), public, seq))
        elif kind == "key.revoked":
            key = self._keys.get(str(payload.get("key_id")))
            if key is None:
                self._problem(seq, "unknown_key", "revocation of a key that was never added")
            elif key.revoked is None:
                key.revoked = seq
        elif kind == "system.registered":
            self._owners[str(payload.get("id"))] = str(payload.get("owner"))
        elif kind == "bundle":
            self._check_bundle(seq, body, payload)

    def _check_bundle(self, seq: int, body: dict[str, Any], payload: dict[str, Any]) -> None:
        key_id = str(body.get("key_id"))
        key = self._keys.get(key_id)
        if key is None or key.added >= seq:
            self._problem(seq, "unknown_key", f"bundle signed by {key_id}, which was not registered before it")
            return
        if key.revoked is not None and key.revoked < seq:
            self._problem(seq, "revoked_key", f"bundle signed by {key_id}, revoked at seq {key.revoked}")
            return
        owner = self._owners.get(str(payload.get("system_id")))
        if owner != key.principal:
            self._problem(seq, "wrong_owner", f"signed by {key.principal!r}, but the system's owner is {owner!r}")
        if self.check_signatures and not verify_signature(key.public, BUNDLE_CONTEXT, canonical_json(payload),
                                                          str(body.get("sig"))):
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
                   claimed_size: int | None = None) -> Report:
    """Verify a whole ledger streamed as `entries`, in sequence order."""
    verifier = Verifier(origin, log_public_key, checkpoint_notes, check_signatures)
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


def main(argv: list[str] | None = None) -> int:
    """Verify an export directory; exit 0 when it verifies, 1 when it does not, 2 on bad input."""
    parser = argparse.ArgumentParser(description="Verify an exported Charter ledger offline.")
    parser.add_argument("export_dir", type=Path)
    parser.add_argument("--checkpoint", type=Path, action="append", default=[],
                        help="a checkpoint note you hold yourself (may be repeated)")
    parser.add_argument("--no-signatures", action="store_true", help="skip signature checks (faster)")
    parser.add_argument("--log-key", help="the log's public key (base64) as you obtained it out of band; "
                        "without it the export's own trust_root.json is trusted")
    parser.add_argument("--origin", help="the log's origin as you know it; default: the export's")
    args = parser.parse_args(argv)
    try:
        trust, entries, notes = read_export(args.export_dir)
        notes += [p.read_text(encoding="utf-8") for p in args.checkpoint]
        exported_key = base64.b64decode(str(trust["log_public_key"]), validate=True)
        public = base64.b64decode(args.log_key, validate=True) if args.log_key else exported_key
        origin = args.origin or str(trust["origin"])
        if public != exported_key or origin != trust["origin"]:
            print("warning: the export's trust_root.json names another key or origin than the one you pinned",
                  file=sys.stderr)
        print(f"pinned log key ed25519:{hashlib.sha256(public).hexdigest()} "
              f"({'given' if args.log_key else 'from the export: compare it with your own copy'}), origin {origin}")
        report = verify_entries(entries, origin, public, notes, not args.no_signatures)
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        print(f"error: cannot read the export: {exc}", file=sys.stderr)
        return 2
    for problem in report.problems:
        print(problem)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
