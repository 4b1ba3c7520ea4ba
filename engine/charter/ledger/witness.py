"""Witnesses and published checkpoints: what keeps the holder of the log key honest.

The log key signs checkpoints, so whoever holds it (and the database) can truncate or rewrite the
ledger and sign new checkpoints that fit the new history; `charter verify` on the database alone
cannot tell. Two things held elsewhere can:

* **Published checkpoints.** `publish_checkpoints` writes every signed checkpoint to a directory
  meant to live outside the log operator's reach (a git repository, object storage with retention)
  as ``<size:012d>.note``, with ``<size:012d>.proof`` holding the RFC 9162 consistency proof from the
  checkpoint published before it. A note is never replaced by a different one of the same size:
  that would be equivocation, and it is refused.
* **Witness cosignatures** (C2SP tlog-cosignature, Ed25519 ``cosignature/v1``). A witness holds its
  own key and a state file recording, per log origin, the size and root of the last checkpoint it
  cosigned. `cosign` checks the log's signature (pinned key), then a consistency proof from that
  last checkpoint (C2SP tlog-witness ``add-checkpoint`` rules), refuses rollback and inconsistency,
  and only then appends its cosignature line.

`check_published` compares the ledger with the published notes and the witnesses' cosignatures:
a published checkpoint larger than the ledger means truncation, one whose root the ledger's first
``size`` entries do not have means rewriting (and re-signing), a note the pinned key did not sign or
a required witness that never cosigned is reported too.

Cosignature byte formats (C2SP tlog-cosignature, Ed25519 section; signed-note for the line syntax):

* key ID: ``SHA-256(name || 0x0A || 0x04 || 32-byte public key)[:4]``
* signed message: ``"cosignature/v1\\n" || "time " || decimal(timestamp) || "\\n" || note body``, the
  body being the checkpoint text up to and including the newline before the blank line
* signature line: ``"— " || name || " " || base64(key ID || uint64_be(timestamp) || Ed25519 signature)``
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..errors import CharterError
from . import merkle
from .auditor import CompactRange, NoteError, Problem, note_key_hash, open_checkpoint
from .keys import SigningKey
from .notes import Checkpoint
from .store import Ledger

__all__ = [
    "COSIGNATURE_HEADER",
    "ConsistencyProof",
    "Cosignature",
    "PublishedNote",
    "WitnessKey",
    "WitnessState",
    "check_published",
    "cosign",
    "cosignature_key_id",
    "cosignature_message",
    "find_cosignature",
    "ledger_prefix_roots",
    "load_proof",
    "load_witness_public_key",
    "make_cosignature",
    "note_body",
    "publish_checkpoints",
    "published_problems",
    "read_published",
]

_DASH = "\u2014"
COSIGNATURE_HEADER = b"cosignature/v1\n"
#: Signature type byte of Ed25519 cosignatures (C2SP tlog-cosignature; signed-note's type table).
COSIGNATURE_TYPE = 0x04
#: The tlog-witness protocol bounds a consistency proof to 63 hashes (enough for 2^63 leaves).
MAX_PROOF_HASHES = 63
MAX_TIMESTAMP = 2**63 - 1
#: A note is a few hundred bytes; with many cosignatures a few kilobytes.
MAX_NOTE_BYTES = 1024 * 1024
STATE_FORMAT = "charter-witness-state/v1"
_NOTE_NAME = re.compile(r"(\d{12})\.note")
_VKEY = re.compile(r"([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)")


# -- cosignatures ---------------------------------------------------------------------------------


def cosignature_key_id(name: str, public: bytes) -> bytes:
    """``SHA-256(name || 0x0A || 0x04 || public)[:4]``: the key ID of an Ed25519 cosigner."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([COSIGNATURE_TYPE]) + public).digest()[:4]


def cosignature_message(body: str, timestamp: int) -> bytes:
    """What an Ed25519 cosigner signs: the header line, the time line, then the note body."""
    return COSIGNATURE_HEADER + f"time {timestamp}\n".encode() + body.encode()


def note_body(note: str) -> str:
    """The body of a signed note: its text up to and including the newline before the blank line.

    Raises:
        NoteError: the note has no blank line before its signatures.
    """
    body, sep, _ = note.partition("\n\n")
    if not sep:
        raise NoteError("no blank line between body and signatures")
    return body + "\n"


def _signature_lines(note: str) -> list[str]:
    return [line for line in note.partition("\n\n")[2].split("\n") if line]


@dataclass(frozen=True)
class WitnessKey:
    """A witness's public identity: its name (the signature line's key name) and Ed25519 key."""

    name: str
    public: bytes

    @property
    def key_id(self) -> bytes:
        """The 4-byte cosignature key ID."""
        return cosignature_key_id(self.name, self.public)

    @property
    def vkey(self) -> str:
        """The signed-note verifier key: ``name+hex key ID+base64(0x04 || public key)``."""
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(bytes([COSIGNATURE_TYPE]) + self.public).decode()}"


@dataclass(frozen=True)
class Cosignature:
    """A verified cosignature: `witness` cosigned the note's body at `timestamp` (POSIX seconds)."""

    witness: WitnessKey
    timestamp: int


def make_cosignature(body: str, key: SigningKey, timestamp: int) -> str:
    """The note signature line by which `key` (named by its principal) cosigns `body` at `timestamp`.

    Raises:
        ValueError: a timestamp outside 0..2^63-1.
    """
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise ValueError(f"timestamp {timestamp} is outside 0..2^63-1")
    signature = key.private.sign(cosignature_message(body, timestamp))
    blob = cosignature_key_id(key.principal, key.public) + timestamp.to_bytes(8, "big") + signature
    return f"{_DASH} {key.principal} {base64.b64encode(blob).decode()}"


def find_cosignature(note: str, witness: WitnessKey) -> Cosignature | None:
    """The witness's cosignature on `note`, if the note carries one (lines of other keys are ignored).

    Raises:
        NoteError: a line with the witness's name and key ID whose signature does not verify, or
            that is malformed: a note signed in the witness's name that the witness did not sign.
    """
    body = note_body(note)
    found: Cosignature | None = None
    for line in _signature_lines(note):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH or parts[1] != witness.name:
            continue
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except ValueError:
            continue
        if blob[:4] != witness.key_id:
            continue
        if len(blob) != 4 + 8 + 64:
            raise NoteError(f"a cosignature by {witness.name} is {len(blob)} bytes, not 76")
        timestamp = int.from_bytes(blob[4:12], "big")
        if timestamp > MAX_TIMESTAMP:
            raise NoteError(f"a cosignature by {witness.name} has a timestamp beyond 2^63-1")
        try:
            Ed25519PublicKey.from_public_bytes(witness.public).verify(blob[12:], cosignature_message(body, timestamp))
        except InvalidSignature as exc:
            raise NoteError(f"the cosignature by {witness.name} does not verify") from exc
        if found is None or timestamp > found.timestamp:
            found = Cosignature(witness, timestamp)
    return found


def load_witness_public_key(path: Path) -> WitnessKey:
    """A witness public key from a ``.pub`` file (``NAME BASE64``, as keygen writes) or a vkey file.

    Raises:
        CharterError: ``key_file`` when the file holds neither.
    """
    from .._sources import read_text
    from .keys import load_public_key_file

    try:
        text = read_text(path, 64 * 1024).strip()
    except CharterError as exc:
        raise CharterError.single("key_file", f"cannot read key file: {exc.diagnostics[0].message}",
                                  file=str(path)) from exc
    match = _VKEY.fullmatch(text)
    if match is None:
        name, public = load_public_key_file(path)
        return WitnessKey(name, public)
    name, key_id, encoded = match.groups()
    try:
        material = base64.b64decode(encoded, validate=True)
    except ValueError as exc:
        raise CharterError.single("key_file", "the vkey's key is not base64", file=str(path)) from exc
    if len(material) != 33 or material[0] != COSIGNATURE_TYPE:
        raise CharterError.single("key_file", "not an Ed25519 cosignature vkey (type 0x04, 32-byte key)",
                                  file=str(path))
    key = WitnessKey(name, material[1:])
    if key.key_id.hex() != key_id:
        raise CharterError.single("key_file", "the vkey's key ID does not match its name and key", file=str(path))
    return key


# -- witness state --------------------------------------------------------------------------------


@dataclass
class LogRecord:
    """What a witness remembers of one log: its pinned key and the last checkpoint it cosigned."""

    log_key: bytes
    size: int
    root: bytes
    note: str
    timestamp: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"log_key": base64.b64encode(self.log_key).decode(), "size": self.size,
                "root": base64.b64encode(self.root).decode(), "note": self.note, "time": self.timestamp}


@dataclass
class WitnessState:
    """A witness's memory: per log origin, the last checkpoint it cosigned. One JSON file per witness."""

    witness: str
    logs: dict[str, LogRecord] = field(default_factory=dict)

    def to_json(self) -> str:
        """The file's text."""
        return json.dumps({"format": STATE_FORMAT, "witness": self.witness,
                           "logs": {origin: record.to_dict() for origin, record in sorted(self.logs.items())}},
                          indent=2, sort_keys=True) + "\n"

    @classmethod
    def load(cls, path: Path, witness: str) -> WitnessState:
        """The state in `path`, or an empty one for `witness` when the file does not exist yet.

        Raises:
            CharterError: ``witness_state`` for a file that is not a state, or another witness's.
        """
        if not path.exists():
            return cls(witness)
        from .._sources import read_text

        def bad(message: str) -> CharterError:
            return CharterError.single("witness_state", message, file=str(path))

        try:
            document = json.loads(read_text(path, 16 * 1024 * 1024))
        except ValueError as exc:
            raise bad(f"not JSON: {exc}") from exc
        if not isinstance(document, dict) or document.get("format") != STATE_FORMAT:
            raise bad(f"not a witness state (format {STATE_FORMAT!r} expected)")
        if document.get("witness") != witness:
            raise bad(f"this is the state of witness {document.get('witness')!r}, not {witness!r}")
        logs: dict[str, LogRecord] = {}
        try:
            for origin, record in dict(document["logs"]).items():
                logs[str(origin)] = LogRecord(base64.b64decode(record["log_key"], validate=True), int(record["size"]),
                                              base64.b64decode(record["root"], validate=True), str(record["note"]),
                                              int(record["time"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(f"malformed log record: {exc!r}") from exc
        return cls(witness, logs)

    def save(self, path: Path) -> None:
        """Write the state atomically (a temporary file in the same directory, then a rename)."""
        write_atomically(path, self.to_json())


def write_atomically(path: Path, text: str, *, replace: bool = True) -> bool:
    """Write `text` to `path` through a temporary file and a rename, so readers never see half a file.

    Args:
        replace: when false, an existing `path` is left alone and False is returned.

    Raises:
        CharterError: ``write_failed`` when the directory cannot be written.
    """
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            if replace:
                os.replace(temporary, path)
            else:
                try:
                    os.link(temporary, path)  # fails if `path` exists: never overwrites
                except FileExistsError:
                    return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
    except OSError as exc:
        raise CharterError.single("write_failed", f"cannot write: {exc.strerror or exc}",
                                  file=str(exc.filename or path)) from exc
    return True


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (a lock file beside the data), for read-check-write sequences."""
    import fcntl

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a")
    except OSError as exc:
        raise CharterError.single("write_failed", f"cannot open the lock file: {exc.strerror or exc}",
                                  file=str(path)) from exc
    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# -- consistency proofs and cosigning -------------------------------------------------------------


@dataclass(frozen=True)
class ConsistencyProof:
    """An RFC 9162 consistency proof from a tree of `old_size` leaves to one of `new_size`."""

    old_size: int
    new_size: int
    hashes: tuple[bytes, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form `charter ledger consistency` prints (without the notes)."""
        return {"old_size": self.old_size, "new_size": self.new_size,
                "hashes": [base64.b64encode(h).decode() for h in self.hashes]}


def parse_proof(document: Any, file: str | None = None) -> ConsistencyProof:
    """A proof from its JSON form (``old_size``, ``new_size``, base64 ``hashes``).

    Raises:
        CharterError: ``witness_proof`` when it is malformed.
    """
    try:
        old_size, new_size = document["old_size"], document["new_size"]
        if type(old_size) is not int or type(new_size) is not int or not 0 <= old_size <= new_size:
            raise ValueError(f"sizes {old_size!r} -> {new_size!r} are not 0 <= old <= new")
        hashes = tuple(base64.b64decode(h, validate=True) for h in document["hashes"])
        if any(len(h) != 32 for h in hashes):
            raise ValueError("a hash is not 32 bytes")
        if len(hashes) > MAX_PROOF_HASHES:
            raise ValueError(f"{len(hashes)} hashes, more than {MAX_PROOF_HASHES}")
    except (KeyError, TypeError, ValueError) as exc:
        raise CharterError.single("witness_proof", f"not a consistency proof: {exc}", file=file) from exc
    return ConsistencyProof(old_size, new_size, hashes)


def load_proof(path: Path) -> ConsistencyProof:
    """Read a proof file as `charter ledger consistency` or `charter checkpoint publish` writes it.

    Raises:
        CharterError: ``witness_proof`` (or a read error) for anything else.
    """
    from .._sources import read_text

    try:
        document = json.loads(read_text(path, MAX_NOTE_BYTES))
    except ValueError as exc:
        raise CharterError.single("witness_proof", f"not JSON: {exc}", file=str(path)) from exc
    return parse_proof(document, str(path))


def _refuse(code: str, message: str, file: str | None) -> CharterError:
    return CharterError.single(code, message, file=file)


def cosign(note: str, proof: ConsistencyProof | None, witness_key: SigningKey, state: WitnessState,
           log_key: bytes, origin: str, timestamp: int, *, file: str | None = None) -> str:
    """Cosign a checkpoint after checking it extends the last one this witness cosigned for its log.

    The checks are those of C2SP tlog-witness ``add-checkpoint``: the log's signature by the pinned
    key; the proof's old size equal to the size last cosigned for the origin (0 if none); a new
    size not below it (no rollback); equal sizes with equal roots; otherwise an RFC 9162 consistency
    proof from the recorded root to the note's root. On success `state` records the checkpoint
    (the caller saves it before handing the note out) and the note is returned with this witness's
    cosignature line appended (replacing an earlier one of its own).

    Args:
        note: the checkpoint note, signed by the log (and possibly cosigned by others).
        proof: from the last cosigned size to the note's; None or empty when nothing was cosigned yet.
        witness_key: the witness's private key; its principal is the witness's name.
        state: the witness's state; updated in place.
        log_key: the log's public key as the witness pinned it.
        origin: the log's origin as the witness pinned it.
        timestamp: the cosignature time (POSIX seconds).
        file: where the note came from, for error locations.

    Raises:
        CharterError: ``witness_bad_note`` (not signed by the pinned key for the pinned origin),
            ``witness_log_key_changed``, ``witness_rollback``, ``witness_old_size`` (the proof does
            not start where the witness left off), ``witness_conflict`` (the size last cosigned, with
            another root), ``witness_inconsistent`` (the proof does not verify), ``witness_proof``.
    """
    try:
        checkpoint = open_checkpoint(note, origin, log_key)
    except NoteError as exc:
        raise _refuse("witness_bad_note", f"refusing to cosign: {exc}", file) from exc
    if checkpoint.size == 0:
        raise _refuse("witness_bad_note", "refusing to cosign the empty tree", file)
    record = state.logs.get(origin)
    if record is not None and record.log_key != log_key:
        raise _refuse("witness_log_key_changed", f"this witness pinned another key for {origin}; a log key change "
                      "must be made in the witness state deliberately, not by presenting a note", file)
    last_size = record.size if record is not None else 0
    proof = proof or ConsistencyProof(last_size, checkpoint.size, ())
    if checkpoint.size < last_size:
        raise _refuse("witness_rollback", f"refusing to cosign size {checkpoint.size}: this witness already "
                      f"cosigned size {last_size} of {origin}; a log never shrinks (rollback or truncation)", file)
    if proof.old_size != last_size:
        raise _refuse("witness_old_size", f"the proof starts at size {proof.old_size}, but the last checkpoint "
                      f"this witness cosigned for {origin} has size {last_size}; get a proof with "
                      f"`charter ledger consistency {last_size} {checkpoint.size}`", file)
    if proof.new_size != checkpoint.size:
        raise _refuse("witness_proof", f"the proof ends at size {proof.new_size}, the note has size "
                      f"{checkpoint.size}", file)
    if record is None:
        if proof.hashes:
            raise _refuse("witness_proof", "a proof from size 0 must be empty", file)
    elif checkpoint.size == last_size:
        if checkpoint.root != record.root:
            raise _refuse("witness_conflict", f"size {last_size} of {origin} was cosigned with another root: the "
                          "log shows two different histories (equivocation)", file)
        if proof.hashes:
            raise _refuse("witness_proof", "equal sizes need an empty proof", file)
    else:
        try:
            merkle.verify_consistency(last_size, checkpoint.size, record.root, checkpoint.root, list(proof.hashes))
        except merkle.ProofError as exc:
            raise _refuse("witness_inconsistent", f"refusing to cosign size {checkpoint.size}: it is not consistent "
                          f"with size {last_size} cosigned before ({exc}); the log rewrote its history", file) from exc
    line = make_cosignature(note_body(note), witness_key, timestamp)
    cosigned = _with_line(note, witness_key, line)
    state.logs[origin] = LogRecord(log_key, checkpoint.size, checkpoint.root, cosigned, timestamp)
    return cosigned


def _with_line(note: str, key: SigningKey, line: str) -> str:
    """`note` with `line` appended and any earlier line of the same cosigner key removed."""
    witness = WitnessKey(key.principal, key.public)
    kept = [existing for existing in _signature_lines(note) if not _by(existing, witness)]
    return note_body(note) + "\n" + "".join(f"{existing}\n" for existing in [*kept, line])


# -- publishing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedNote:
    """A note file of a published directory (its text, or why it could not be read)."""

    path: Path
    size: int
    text: str | None
    error: str | None = None


def note_path(directory: Path, size: int) -> Path:
    """``DIR/<size:012d>.note``."""
    return directory / f"{size:012d}.note"


def proof_path(directory: Path, size: int) -> Path:
    """``DIR/<size:012d>.proof``: the consistency proof from the previously published checkpoint."""
    return directory / f"{size:012d}.proof"


def read_published(directory: Path) -> list[PublishedNote]:
    """The note files of a published directory, by size.

    Raises:
        CharterError: ``published_dir`` when the directory does not exist.
    """
    from .._sources import read_text

    if not directory.is_dir():
        raise CharterError.single("published_dir", "not a directory of published checkpoints", file=str(directory))
    notes = []
    for path in sorted(directory.iterdir()):
        match = _NOTE_NAME.fullmatch(path.name)
        if match is None:
            continue
        try:
            notes.append(PublishedNote(path, int(match.group(1)), read_text(path, MAX_NOTE_BYTES)))
        except CharterError as exc:
            notes.append(PublishedNote(path, int(match.group(1)), None, exc.diagnostics[0].message))
    return notes


def ledger_prefix_roots(ledger: Ledger, sizes: Sequence[int]) -> tuple[int, dict[int, bytes], dict[int, bytes]]:
    """In one snapshot: the head size, the Merkle root of the first `size` entries for each size that
    exists, and the ledger's own stored checkpoints (size -> root)."""
    wanted = sorted({s for s in sizes if s > 0})
    roots: dict[int, bytes] = {}
    with ledger.snapshot() as connection:
        head, _, _ = ledger.snapshot_head(connection)
        stored = {size: root for size, root, _ in ledger.snapshot_checkpoints(connection)}
        limit = min(max(wanted, default=0), head)
        tree = CompactRange()
        position = 0
        for leaf in ledger.leaf_hashes(limit, connection) if limit else []:
            tree.append(leaf)
            while position < len(wanted) and wanted[position] == tree.size:
                roots[wanted[position]] = tree.root()
                position += 1
    return head, roots, stored


def check_published(origin: str, log_key: bytes, notes: Sequence[PublishedNote], ledger_size: int,
                    roots: Mapping[int, bytes], witnesses: Sequence[WitnessKey] = (),
                    stored: Mapping[int, bytes] | None = None) -> list[Problem]:
    """What the published notes and their cosignatures say is wrong with a ledger.

    Args:
        origin: the pinned origin.
        log_key: the pinned log public key.
        notes: from `read_published`.
        ledger_size: the number of entries the ledger has.
        roots: the ledger's Merkle root of its first ``size`` entries, for the published sizes it has.
        witnesses: witnesses whose cosignature is required (on at least one published checkpoint).
        stored: the ledger's own signed checkpoints (size -> root), compared for equivocation.
    """
    problems: list[Problem] = []
    newest_cosigned: dict[WitnessKey, int] = {}
    for published in notes:
        where = published.path.name
        if published.text is None:
            problems.append(Problem(None, "published_invalid", f"{where}: {published.error}"))
            continue
        try:
            checkpoint = open_checkpoint(published.text, origin, log_key)
        except NoteError as exc:
            kind = "published_wrong_key" if _signed_by_other_key(published.text, origin, log_key) else \
                "published_invalid"
            detail = ("signed in the log's name by a key other than the pinned one (the log key was replaced, or "
                      "this note is forged)" if kind == "published_wrong_key" else str(exc))
            problems.append(Problem(None, kind, f"{where}: {detail}"))
            continue
        if checkpoint.size != published.size:
            problems.append(Problem(None, "published_invalid", f"{where}: the note is of size {checkpoint.size}"))
            continue
        problems.extend(_compare(checkpoint, where, ledger_size, roots, stored or {}))
        for witness in witnesses:
            try:
                cosignature = find_cosignature(published.text, witness)
            except NoteError as exc:
                problems.append(Problem(None, "bad_cosignature", f"{where}: {exc}"))
                continue
            if cosignature is not None:
                newest_cosigned[witness] = max(newest_cosigned.get(witness, 0), checkpoint.size)
    for witness in witnesses:
        if witness not in newest_cosigned:
            problems.append(Problem(None, "missing_cosignature", f"no published checkpoint carries a valid "
                                    f"cosignature of the required witness {witness.name} ({witness.key_id.hex()})"))
    return problems


def _compare(checkpoint: Checkpoint, where: str, ledger_size: int, roots: Mapping[int, bytes],
             stored: Mapping[int, bytes]) -> list[Problem]:
    size = checkpoint.size
    if size > ledger_size:
        return [Problem(ledger_size, "truncated", f"{where}: a published checkpoint covers {size} entries, the "
                        f"ledger has only {ledger_size}: entries were removed")]
    problems = []
    if size not in roots:
        problems.append(Problem(None, "truncated", f"{where}: a published checkpoint covers {size} entries, the "
                                "ledger's entries stop before that"))
    elif roots[size] != checkpoint.root:
        problems.append(Problem(None, "checkpoint_mismatch", f"{where}: the ledger's first {size} entries do not "
                                "have the published root: history was rewritten (and re-signed)"))
    if size in stored and stored[size] != checkpoint.root:
        problems.append(Problem(None, "equivocation", f"{where}: the ledger holds a validly signed checkpoint of "
                                f"size {size} with another root than the published one"))
    return problems


def _signed_by_other_key(note: str, origin: str, log_key: bytes) -> bool:
    """Whether `note` carries a line in the log's name under a key hash other than the pinned key's."""
    wanted = note_key_hash(origin, log_key)
    for line in _signature_lines(note):
        parts = line.split(" ")
        if len(parts) == 3 and parts[1] == origin:
            with contextlib.suppress(ValueError):
                if base64.b64decode(parts[2], validate=True)[:4] != wanted:
                    return True
    return False


def published_problems(ledger: Ledger, log_key: bytes, directory: Path,
                       witnesses: Sequence[WitnessKey] = ()) -> tuple[list[Problem], list[PublishedNote]]:
    """`check_published` for a ledger and a published directory; also returns the notes read."""
    notes = read_published(directory)
    head, roots, stored = ledger_prefix_roots(ledger, [n.size for n in notes])
    return check_published(ledger.origin, log_key, notes, head, roots, witnesses, stored), notes


def publish_checkpoints(ledger: Ledger, directory: Path) -> list[int]:
    """Write every signed checkpoint of the ledger to `directory`; return the sizes newly written.

    Each is ``<size:012d>.note`` with, from the second on, ``<size:012d>.proof`` (the consistency
    proof from the previous checkpoint, for witnesses that have no database access). Publishing is
    idempotent; a note already there with the same body (perhaps with cosignatures added) is kept.
    Before writing, the notes already published must agree with the ledger.

    Raises:
        CharterError: ``equivocation`` when a published note of the same size has another body, or
            ``inconsistent_history`` when the published notes contradict the ledger (truncated,
            rewritten, or signed by another key); nothing is written then.
    """
    public = base64.b64decode(ledger.meta()["log_public_key"])
    with locked(directory / ".lock"):
        existing = read_published(directory)
        head, roots, stored = ledger_prefix_roots(ledger, [n.size for n in existing])
        problems = check_published(ledger.origin, public, existing, head, roots, (), stored)
        checkpoints = ledger.checkpoints()
        ours = {size: note for size, _, note in checkpoints}
        clashes = [p for p in existing if p.text is not None and p.size in ours and _body_or_none(p.text)
                   != note_body(ours[p.size])]
        if clashes:
            raise CharterError([CharterError.single(
                "equivocation", f"a different note of size {p.size} is already published: refusing to publish two "
                "histories", file=str(p.path)).diagnostics[0] for p in clashes])
        if problems:
            raise CharterError([CharterError.single("inconsistent_history", f"the published checkpoints contradict "
                                                    f"the ledger: {p}", file=str(directory)).diagnostics[0]
                                for p in problems])
        published = {p.size for p in existing}
        missing = [size for size, _, _ in checkpoints if size not in published or
                   (size != checkpoints[0][0] and not proof_path(directory, size).exists())]
        if not missing:
            return []
        leaves = ledger.leaf_hashes(max(missing))
        written = []
        previous = 0
        for size, _, note in checkpoints:
            if size in missing:
                if previous:
                    hashes = merkle.consistency_proof(previous, leaves[:size])
                    proof = ConsistencyProof(previous, size, tuple(hashes))
                    write_atomically(proof_path(directory, size), json.dumps(proof.to_dict(), indent=2) + "\n",
                                     replace=False)
                if size not in published:
                    if not write_atomically(note_path(directory, size), note, replace=False):
                        raise CharterError.single("equivocation", "a note of this size appeared while publishing",
                                                  file=str(note_path(directory, size)))
                    written.append(size)
            previous = size
    return written


def _body_or_none(text: str) -> str | None:
    try:
        return note_body(text)
    except NoteError:
        return None


def add_cosignature_to_published(directory: Path, size: int, cosigned: str, witness: WitnessKey) -> None:
    """Replace ``DIR/<size>.note`` by `cosigned`, keeping cosignature lines other witnesses added meanwhile.

    Raises:
        CharterError: ``equivocation`` when the published note's body differs from the cosigned one.
    """
    from .._sources import read_text

    path = note_path(directory, size)
    with locked(directory / ".lock"):
        current = read_text(path, MAX_NOTE_BYTES)
        if _body_or_none(current) != note_body(cosigned):
            raise CharterError.single("equivocation", "the published note changed under the witness: another body "
                                      "of the same size", file=str(path))
        ours = _signature_lines(cosigned)
        others = [line for line in _signature_lines(current) if line not in ours and not _by(line, witness)]
        write_atomically(path, note_body(cosigned) + "\n" + "".join(f"{line}\n" for line in [*ours, *others]))


def _by(line: str, witness: WitnessKey) -> bool:
    """Whether a signature line is in the witness's name under its cosignature key ID."""
    parts = line.split(" ")
    if len(parts) != 3 or parts[1] != witness.name:
        return False
    try:
        return base64.b64decode(parts[2], validate=True)[:4] == witness.key_id
    except ValueError:
        return False
