"""The ledger store: serialized, hash-chained appends and reads, behind a small interface.

Every append runs in one transaction: lock the head row, assign ``seq`` and ``prev`` from it, build
and hash the canonical bodies, sign a receipt per entry with the log key, insert, move the head.
Either all entries of a call land or none does. UNIQUE constraints on seq, previous hash and
submission id back the lock up: a race that slipped through would fail rather than fork.
"""

from __future__ import annotations

import base64
import contextvars
import dataclasses
import datetime
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import CharterError
from .auditor import (
    AUTHORITY_INPUTS,
    MAX_BODY_DEPTH,
    Authority,
    CompactRange,
    ControlCatalog,
    RangeReceipt,
    nested_too_deeply,
    via_shape_problem,
)
from .database import ensure_schema, make_engine, write_transaction
from .hashing import RANGE_RECEIPT_CONTEXT, ZERO_HASH, canonical, leaf_hash, range_receipt_message
from .keys import SigningKey, check_origin
from .records import Clock, Entry, NewEntry, format_time, row_to_entry, utc_now
from .records import LedgerReader as LedgerReader  # re-exported: Ledger is one of its implementations
from .schema import checkpoint, ledger_entry, ledger_head, ledger_meta, ledger_receipt

#: who asked for the entries appended now, through the API (see `recording_via`); None for the local CLI
_VIA: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("charter_via", default=None)
#: the ``received_at`` of the batch a builder passed to `Ledger.append` is building (see `Ledger.stamp`)
_STAMP: contextvars.ContextVar[str | None] = contextvars.ContextVar("charter_stamp", default=None)


def recording_via(via: dict[str, Any]) -> AbstractContextManager[None]:
    """While active, every entry `Ledger.append` writes records `via` in its body (who asked, and how).

    `via` is ``{principal, method: "token" | "oidc", request_id}`` plus ``token_id`` (method token)
    or ``issuer`` and ``subject`` (method oidc). It is part of the hashed record, not of any signed
    statement, so no signature changes; the auditor checks it (`Authority.check_via`) when the
    entry is appended and whenever the ledger is verified.

    Raises:
        CharterError: ``malformed_via`` when `via` does not have that shape.
    """
    problem = via_shape_problem(via)
    if problem is not None:
        raise CharterError.single("malformed_via", problem)
    return _recording(dict(via))


@contextmanager
def _recording(via: dict[str, Any]) -> Iterator[None]:
    token = _VIA.set(via)
    try:
        yield
    finally:
        _VIA.reset(token)


def _with_range_receipts(query: Any) -> Any:
    """`query` on entries, with the range receipt of the transaction each entry closes (if any)."""
    return query.add_columns(ledger_receipt.c.first_seq.label("range_first"),
                             ledger_receipt.c.root_hash.label("range_root"),
                             ledger_receipt.c.signature.label("range_signature")).outerjoin(
        ledger_receipt, ledger_receipt.c.last_seq == ledger_entry.c.seq)


_Kept = TypeVar("_Kept")


class Ledger:
    """A hash-chained ledger in one database.

    Args:
        engine: from `make_engine`.
        origin: the log's name, bound into every body and checkpoint.
        log_key: the log's private key; needed to append (receipts) and to sign checkpoints.
        clock: the source of ``received_at`` times.
    """

    def __init__(self, engine: Engine, origin: str, log_key: SigningKey | None, clock: Clock = utc_now) -> None:
        self.engine = engine
        self.origin = origin
        self.log_key = log_key
        self.clock = clock
        #: (size, the authority state folded from the first `size` entries): appends check against it
        self._authority_cache: tuple[int, Authority | None] = (0, None)
        #: read models kept between calls by the modules above (`kept`): incident book, token index, standings
        self._kept: dict[str, Any] = {}
        self._kept_lock = threading.Lock()
        #: the catalogs' controls the evidence rule checks against (`controls`); None: the built-in catalogs
        self._controls: ControlCatalog | None = None

    def kept(self, name: str, make: Callable[[], _Kept]) -> _Kept:
        """The read model `name` kept with this ledger object, made by `make` on first use.

        Modules above the store keep what they fold from the ledger here (and refresh it from the
        entries appended since), so it lives exactly as long as the ledger object it describes.
        """
        with self._kept_lock:
            if name not in self._kept:
                self._kept[name] = make()
            kept: _Kept = self._kept[name]
            return kept

    @property
    def controls(self) -> ControlCatalog:
        """The catalogs' citable and organisation-level controls the store hands the evidence rule: the
        built-in catalogs (those the evidence commands load) unless set (`use_controls`)."""
        if self._controls is None:
            from ..frameworks import builtin_control_catalog

            self._controls = builtin_control_catalog()
        return self._controls

    def use_controls(self, controls: ControlCatalog) -> None:
        """Judge evidence against `controls` from now on (and forget the authority state folded so far)."""
        self._controls = controls
        self._authority_cache = (0, None)

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, log_key: SigningKey | None = None, origin: str | None = None,
             create: bool = False, clock: Clock = utc_now, read_only: bool = False) -> Ledger:
        """Open (and with `create`, initialize) the ledger at `url`.

        With `read_only`, the database is opened so that nothing can be written to it (see
        `make_engine`) and no write lock is taken: readers never wait for writers.

        Raises:
            CharterError: a missing ledger, a newer schema, a log key that is not this ledger's,
                or an origin that differs from the stored one.
        """
        if origin is not None:
            check_origin(origin)
        if read_only and (create or log_key is not None):
            raise ValueError("a read-only ledger neither creates nor appends")
        engine = make_engine(url, read_only=read_only)
        ensure_schema(engine, create=create, read_only=read_only)
        with (engine.begin() if read_only else write_transaction(engine)) as connection:
            meta = {row.name: row.value for row in connection.execute(select(ledger_meta))}
            if not meta:
                if not create or log_key is None or origin is None:
                    raise CharterError.single("ledger_missing", "the ledger is not initialized; run "
                                              "`charter ledger init`")
                connection.execute(insert(ledger_meta), [
                    {"name": "origin", "value": origin},
                    {"name": "log_key_id", "value": log_key.key_id},
                    {"name": "log_public_key", "value": base64.b64encode(log_key.public).decode()},
                    {"name": "created_at", "value": format_time(clock())},
                ])
                connection.execute(insert(ledger_head).values(id=1, size=0, head_hash=ZERO_HASH,
                                                              last_received_at=""))
                meta = {"origin": origin, "log_key_id": log_key.key_id}
        if origin is not None and origin != meta["origin"]:
            raise CharterError.single("origin_mismatch", f"this ledger is {meta['origin']!r}, not {origin!r}")
        if log_key is not None and log_key.key_id != meta["log_key_id"]:
            raise CharterError.single("wrong_log_key", f"the log key {log_key.key_id} is not this ledger's "
                                      f"({meta['log_key_id']})")
        return cls(engine, meta["origin"], log_key, clock)

    def meta(self) -> dict[str, str]:
        """The stored log identity: origin, log key id and public key, creation time."""
        with self.engine.connect() as connection:
            return {row.name: row.value for row in connection.execute(select(ledger_meta))}

    # -- appending -----------------------------------------------------------------------------

    def append(self, entries: Sequence[NewEntry] | Callable[[int], Sequence[NewEntry]]) -> list[Entry]:
        """Append entries in one serialized transaction; all land or none does.

        Args:
            entries: what to append, in order; or a function called under the lock with the next
                seq that returns them. Such a builder sees the ledger as no other writer can change
                it, reads it through this object's read methods, and may raise to refuse the append.

        Raises:
            CharterError: ``duplicate_submission`` when a submission id is already in the ledger
                (callers wanting idempotency look it up first), or whatever the builder raises.
        """
        if self.log_key is None:
            raise CharterError.single("log_key_required", "appending needs the ledger's key (--ledger-key)")
        try:
            with write_transaction(self.engine) as connection:
                head = connection.execute(select(ledger_head).where(ledger_head.c.id == 1).with_for_update()).one()
                # Stamped before the builder runs, so what it derives from the time (incident
                # deadlines, the reopen window) is a function of the recorded received_at.
                received = max(format_time(self.clock()), head.last_received_at)
                if callable(entries):
                    stamp = _STAMP.set(received)
                    try:
                        batch = entries(head.size)
                    finally:
                        _STAMP.reset(stamp)
                else:
                    batch = entries
                if not batch:
                    return []
                via = _VIA.get()
                prev, seq = bytes(head.head_hash), head.size
                rows: list[dict[str, Any]] = []
                appended: list[Entry] = []
                tree = CompactRange()
                authority = self.authority(head.size).copy()  # readers may hold the cached state: never change it
                for new in batch:
                    payload = new.payload(appended) if callable(new.payload) else new.payload
                    problem = authority.check(seq, new.type, payload, new.key_id, new.signature, new.submission_id,
                                              via=via, received_at=received)
                    if problem is not None:
                        raise CharterError.single(problem.kind, problem.detail)
                    authority.apply(seq, new.type, payload, new.submission_id)
                    body_value: dict[str, Any] = {"v": 1, "log": self.origin, "seq": seq, "prev": prev.hex(),
                                                  "type": new.type, "received_at": received,
                                                  "submission_id": new.submission_id, "payload": payload}
                    if new.subject is not None:
                        body_value["subject"] = new.subject
                    if new.key_id is not None:
                        body_value["key_id"] = new.key_id
                    if new.signature is not None:
                        body_value["sig"] = new.signature
                    if via is not None:
                        body_value["via"] = via
                    body = canonical(body_value)
                    if nested_too_deeply(body):  # the verifier would call the entry malformed
                        raise CharterError.single("body_too_deep", f"the {new.type} entry nests objects and "
                                                  f"arrays more than {MAX_BODY_DEPTH} levels deep")
                    record_hash = leaf_hash(body)
                    tree.append(record_hash)
                    rows.append({"seq": seq, "prev_hash": prev, "record_hash": record_hash, "body": body,
                                 "entry_type": new.type, "submission_id": new.submission_id,
                                 "subject": new.subject, "key_id": new.key_id, "received_at": received,
                                 "receipt": ""})
                    appended.append(Entry(seq, prev, record_hash, body, new.type, new.submission_id, new.subject,
                                          new.key_id, received, ""))
                    prev, seq = record_hash, seq + 1
                # One signature for the transaction, over the Merkle root of its entries (a range
                # receipt): each entry's receipt is that plus its inclusion proof in the range.
                root = tree.root()
                signature = self.log_key.sign(RANGE_RECEIPT_CONTEXT,
                                              range_receipt_message(self.origin, head.size, seq, root))
                closing = RangeReceipt(head.size, root, signature)
                appended[-1] = dataclasses.replace(appended[-1], range_receipt=closing)
                connection.execute(insert(ledger_entry), rows)
                connection.execute(insert(ledger_receipt).values(last_seq=seq - 1, first_seq=head.size,
                                                                 root_hash=root, signature=signature))
                connection.execute(update(ledger_head).where(ledger_head.c.id == 1).values(
                    size=seq, head_hash=prev, last_received_at=received))
            authority.last = None  # a waiver must follow its decision in the same transaction
            self._authority_cache = (seq, authority)
        except IntegrityError as exc:
            raise CharterError.single("append_conflict", "the append collided with an existing entry (a submission "
                                      f"id already in the ledger, or a forked write): {exc.orig}") from exc
        return appended

    def authority(self, size: int | None = None) -> Authority:
        """Who may change governance state after the first `size` entries (default: all).

        Folded from the governance entries; a writer keeps the folded state between appends, so each
        append reads only the governance entries appended since. The caller must not change the
        result: it may be the cached state.
        """
        size = self.size() if size is None else size
        cached_size, cached = self._authority_cache  # one tuple: threads never see a size of another state
        if cached is not None and cached_size == size:
            return cached
        if cached is not None and cached_size < size:
            authority, start = cached.copy(), cached_size
        else:
            # The catalogs are read when the first evidence entry is judged, not before.
            authority, start = Authority(self.origin, controls=lambda: self.controls), 0
        for entry in self.entries(start, size, types=AUTHORITY_INPUTS):
            # As the verifier folds: an entry the rule refuses (forced in by someone who skipped it)
            # changes nothing, so what is appended next is judged as `verify` will judge it.
            body = entry.document()
            # A null via is malformed: the verifier names the entry and folds nothing from it.
            if body.get("via", {}) is not None and authority.check(
                    entry.seq, entry.type, body["payload"], entry.key_id, body.get("sig"), entry.submission_id,
                    via=body.get("via"), received_at=entry.received_at) is None:
                authority.apply(entry.seq, entry.type, body["payload"], entry.submission_id)
        authority.last = None
        if size >= cached_size:
            self._authority_cache = (size, authority)
        return authority

    def stamp(self) -> datetime.datetime:
        """The ``received_at`` the batch being built will carry; call it only from a builder `append` is running.

        A submission times the incidents its breaches open with it, so `charter audit` can re-derive
        their deadlines and reopen windows from the recorded entries alone.

        Raises:
            RuntimeError: outside a builder (a bug, not bad input).
        """
        received = _STAMP.get()
        if received is None:
            raise RuntimeError("Ledger.stamp() is only known while append runs a builder")
        return datetime.datetime.fromisoformat(received.replace("Z", "+00:00"))

    # -- reading -------------------------------------------------------------------------------

    def head(self) -> tuple[int, bytes, str]:
        """The head row: (size, record hash of the last entry, its received_at)."""
        with self.engine.connect() as connection:
            row = connection.execute(select(ledger_head).where(ledger_head.c.id == 1)).one()
        return int(row.size), bytes(row.head_hash), str(row.last_received_at)

    def size(self) -> int:
        """The number of entries (the head's size)."""
        with self.engine.connect() as connection:
            return int(connection.execute(select(ledger_head.c.size).where(ledger_head.c.id == 1)).scalar_one())

    def size_at(self, moment: datetime.datetime, stop: int | None = None) -> int:
        """How many entries the ledger held at `moment`: the seq of the first entry received after it.

        An entry received later cannot precede one received earlier in the chain, so the first entry
        stamped after `moment` ends the prefix even if a skewed clock stamped a later one earlier.
        """
        query = select(func.min(ledger_entry.c.seq)).where(ledger_entry.c.received_at > format_time(moment))
        if stop is not None:
            query = query.where(ledger_entry.c.seq < stop)
        with self.engine.connect() as connection:
            first_after = connection.execute(query).scalar_one()
        if first_after is not None:
            return int(first_after)
        return self.size() if stop is None else stop

    def entry(self, seq: int) -> Entry | None:
        """The entry at `seq`, if any (with the range receipt it closes, if it closes one)."""
        with self.engine.connect() as connection:
            row = connection.execute(_with_range_receipts(select(ledger_entry)).where(ledger_entry.c.seq == seq)
                                     ).one_or_none()
        return row_to_entry(row) if row else None

    def receipt_for(self, seq: int) -> dict[str, Any] | None:
        """The log's receipt for entry `seq` as a self-contained document (see `auditor.check_receipt`).

        A per-entry receipt of an older ledger is its signature; a range receipt is the signature over
        the transaction's Merkle root, the range, and the entry's inclusion proof in it.
        """
        from . import merkle

        entry = self.entry(seq)
        if entry is None:
            return None
        document: dict[str, Any] = {"log": self.origin, "seq": seq, "record_hash": entry.record_hash.hex(),
                                    "received_at": entry.received_at}
        if entry.receipt:
            return {**document, "signature": entry.receipt}
        with self.engine.connect() as connection:
            row = connection.execute(select(ledger_receipt).where(ledger_receipt.c.last_seq >= seq)
                                     .order_by(ledger_receipt.c.last_seq).limit(1)).one_or_none()
            if row is None or row.first_seq > seq:
                return None
            leaves = [bytes(h) for h in connection.execute(
                select(ledger_entry.c.record_hash).where(ledger_entry.c.seq >= row.first_seq,
                                                         ledger_entry.c.seq <= row.last_seq)
                .order_by(ledger_entry.c.seq)).scalars()]
        proof = merkle.inclusion_proof(seq - row.first_seq, leaves)
        return {**document, "signature": row.signature,
                "range": {"first": row.first_seq, "size": row.last_seq + 1, "root": bytes(row.root_hash).hex()},
                "proof": [base64.b64encode(h).decode() for h in proof]}

    def by_submission(self, submission_id: str) -> Entry | None:
        """The entry with this submission id, if any."""
        with self.engine.connect() as connection:
            row = connection.execute(select(ledger_entry).where(
                ledger_entry.c.submission_id == submission_id)).one_or_none()
        return row_to_entry(row) if row else None

    def entries(self, start: int = 0, stop: int | None = None, *, types: Sequence[str] = (),
                subject: str | None = None, batch: int = 2000) -> Iterator[Entry]:
        """Entries in seq order, fetched in batches so memory stays flat on any ledger size."""
        position = start
        while stop is None or position < stop:
            query = select(ledger_entry).where(ledger_entry.c.seq >= position)
            if stop is not None:
                query = query.where(ledger_entry.c.seq < stop)
            if types:
                query = query.where(ledger_entry.c.entry_type.in_(types))
            if subject is not None:
                query = query.where(ledger_entry.c.subject == subject)
            with self.engine.connect() as connection:
                rows = connection.execute(query.order_by(ledger_entry.c.seq).limit(batch)).all()
            if not rows:
                return
            for row in rows:
                yield row_to_entry(row)
            position = rows[-1].seq + 1

    def count_entries(self, types: Sequence[str] = (), subject: str | None = None) -> int:
        """How many entries of these types (and subject) the ledger holds."""
        query = select(func.count()).select_from(ledger_entry)
        if types:
            query = query.where(ledger_entry.c.entry_type.in_(types))
        if subject is not None:
            query = query.where(ledger_entry.c.subject == subject)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def stream_payloads(self, types: Sequence[str] = (), subject: str | None = None
                        ) -> Iterator[tuple[int, str, str, dict[str, Any]]]:
        """(seq, type, submission id, payload) of entries in seq order, from one streamed query.

        For bulk reads such as a back-test: `entries` re-queries per batch, which on a large ledger
        with a type filter costs a sort of the matching rows per batch; this sorts them once, and
        reads neither hashes nor receipts.
        """
        query = select(ledger_entry.c.seq, ledger_entry.c.entry_type, ledger_entry.c.submission_id,
                       ledger_entry.c.body)
        if types:
            query = query.where(ledger_entry.c.entry_type.in_(types))
        if subject is not None:
            query = query.where(ledger_entry.c.subject == subject)
        with self.engine.connect().execution_options(stream_results=True) as connection:
            for partition in connection.execute(query.order_by(ledger_entry.c.seq)).partitions(2000):
                for seq, entry_type, submission_id, body in partition:
                    yield int(seq), entry_type, submission_id, json.loads(bytes(body))["payload"]

    def by_submissions(self, submission_ids: Sequence[str], stop: int | None = None,
                       chunk: int = 500) -> Iterator[Entry]:
        """The entries with these exact submission ids (below `stop`), in seq order within each chunk.

        Exact matches on the unique index: unlike a prefix range, the answer cannot depend on the
        database's collation.
        """
        with self.engine.connect() as connection:
            for start in range(0, len(submission_ids), chunk):
                part = submission_ids[start:start + chunk]
                query = select(ledger_entry).where(ledger_entry.c.submission_id.in_(part))
                if stop is not None:
                    query = query.where(ledger_entry.c.seq < stop)
                for row in connection.execute(query.order_by(ledger_entry.c.seq)):
                    yield row_to_entry(row)

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read transaction that sees one consistent state of the ledger for as long as it is open."""
        options: dict[str, Any] = {"stream_results": True}
        if self.engine.dialect.name == "postgresql":
            options["isolation_level"] = "REPEATABLE READ"
        with self.engine.connect().execution_options(**options) as connection, connection.begin():
            yield connection

    @staticmethod
    def snapshot_head(connection: Connection) -> tuple[int, bytes, str]:
        """The head row as seen by a snapshot."""
        row = connection.execute(select(ledger_head).where(ledger_head.c.id == 1)).one()
        return int(row.size), bytes(row.head_hash), str(row.last_received_at)

    @staticmethod
    def snapshot_entries(connection: Connection, start: int = 0, stop: int | None = None) -> Iterator[Entry]:
        """The entry rows of a snapshot with ``start <= seq < stop`` in seq order, streamed in batches."""
        query = _with_range_receipts(select(ledger_entry))
        if start:
            query = query.where(ledger_entry.c.seq >= start)
        if stop is not None:
            query = query.where(ledger_entry.c.seq < stop)
        result = connection.execute(query.order_by(ledger_entry.c.seq))
        for partition in result.partitions(1000):
            for row in partition:
                yield row_to_entry(row)

    @staticmethod
    def range_start(connection: Connection, seq: int) -> int:
        """The first seq of the append transaction holding `seq` (for per-entry receipts: `seq` itself)."""
        first = connection.execute(select(ledger_receipt.c.first_seq).where(
            ledger_receipt.c.first_seq <= seq, ledger_receipt.c.last_seq >= seq)).scalar_one_or_none()
        return int(first) if first is not None else seq

    @staticmethod
    def entry_hash(connection: Connection, seq: int) -> bytes:
        """The record hash of entry `seq` in `connection`'s view (empty bytes if there is none)."""
        value = connection.execute(select(ledger_entry.c.record_hash).where(ledger_entry.c.seq == seq)
                                   ).scalar_one_or_none()
        return bytes(value) if value is not None else b""

    @staticmethod
    def snapshot_checkpoints(connection: Connection) -> list[tuple[int, bytes, str]]:
        """The checkpoints of a snapshot."""
        rows = connection.execute(select(checkpoint).order_by(checkpoint.c.size)).all()
        return [(row.size, bytes(row.root_hash), row.note) for row in rows]

    def leaf_hashes(self, size: int, connection: Connection | None = None) -> list[bytes]:
        """The record hashes of the first `size` entries (32 bytes each), read in `connection` if given."""
        query = select(ledger_entry.c.record_hash).where(ledger_entry.c.seq < size).order_by(ledger_entry.c.seq)
        if connection is not None:
            return [bytes(h) for h in connection.execute(query).scalars()]
        with self.engine.connect() as own:
            return [bytes(h) for h in own.execute(query).scalars()]

    def count(self) -> int:
        """The number of entry rows actually stored (the head may disagree after tampering)."""
        return self.count_entries()

    # -- checkpoints ---------------------------------------------------------------------------

    def checkpoints(self) -> list[tuple[int, bytes, str]]:
        """Stored checkpoints as (size, root, note), by size."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(checkpoint).order_by(checkpoint.c.size)).all()
        return [(row.size, bytes(row.root_hash), row.note) for row in rows]

    @contextmanager
    def locked(self) -> Iterator[Connection]:
        """A write transaction holding the head lock: no entry can be appended while it is open."""
        with write_transaction(self.engine) as connection:
            connection.execute(select(ledger_head).where(ledger_head.c.id == 1).with_for_update()).one()
            yield connection

    def store_checkpoint(self, connection: Connection, size: int, root: bytes, note: str) -> None:
        """Record a signed checkpoint (one per size) on a `locked` connection."""
        connection.execute(insert(checkpoint).values(size=size, root_hash=root, note=note,
                                                     issued_at=format_time(self.clock())))
