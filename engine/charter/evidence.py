"""Typed evidence beyond KPIs: documents and attestations of process controls, recorded as signed ledger entries.

Most process controls (ISO/IEC 42001 clauses 4-10 and much of Annex A, EU AI Act Art. 17, NIST GOVERN)
cannot be evidenced by a KPI. A **document** records a policy, procedure or plan by its SHA-256 (the
bytes stay outside Charter), with its owner and review date; an **attestation** is a named person's
signed statement that a control is in place, for a validity period, optionally citing recorded
documents. Both cite controls of the loaded catalogs, exactly (a control reports assess, or a paragraph
the catalog lists for it), and are scoped to registered systems or to the whole organisation.
Organisation-wide evidence, and evidence of an organisation-level control (``scope: organisation`` in
the catalog: ISO/IEC 42001 clauses 4-10, the AI policy, ...), needs the ``evidence_attester`` role;
other evidence scoped to systems may also come from the owner of every system it names
(`charter.ledger.auditor.Authority`, given the catalog's `ControlCatalog` by the store and by verify).
A **test result** records a named test or assessment performed on systems (a bias audit, a robustness
test, a red-team exercise, a rollback drill) with its outcome (``passed``, ``failed``, ``inconclusive``)
and the date it must be re-run by; an **event** records that a process ran (a management review, an
internal audit, a training), with the date the next one is due. Both are signed like attestations,
follow the same authority rule, and may not be dated after the ledger received them.
Expired attestations, test results and events, and documents past their review date, count as missing,
as stale KPI evidence does: `EvidenceItem.status_at` says which, and the report decides what a
control's status is.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import CharterError, DiagnosticCollector
from .ledger.auditor import (
    EVENT_KINDS,
    EVIDENCE_ATTESTATION,
    EVIDENCE_DOCUMENT,
    EVIDENCE_EVENT,
    EVIDENCE_TEST_RESULT,
    EVIDENCE_WITHDRAWN,
    MAX_EVIDENCE_FIELD,
    MAX_EVIDENCE_ITEMS,
    MAX_EVIDENCE_TEXT,
    MAX_EVIDENCE_URI,
    MAX_EVIDENCE_VALIDITY,
    TEST_OUTCOMES,
    evidence_shape_problem,
)
from .ledger.keys import check_principal
from .ledger.records import Entry, LedgerReader, NewEntry, format_time
from .ledger.store import Ledger

if TYPE_CHECKING:
    from .authority import SignedStatement, Signer
    from .frameworks import FrameworkSet

__all__ = ["EVENT_KINDS", "EVIDENCE_TYPES", "TEST_OUTCOMES", "EvidenceIndex", "EvidenceItem", "EvidenceStatus",
           "accept_evidence", "attestation_fields", "document_fields", "event_fields", "evidence_index", "file_sha256",
           "record_attestation", "record_document", "record_event", "record_test_result", "test_result_fields",
           "withdraw_evidence", "withdrawal_fields"]

#: the ledger entry types of typed evidence
EVIDENCE_TYPES = (EVIDENCE_DOCUMENT, EVIDENCE_ATTESTATION, EVIDENCE_TEST_RESULT, EVIDENCE_EVENT, EVIDENCE_WITHDRAWN)
#: the entry types of evidence items (what a withdrawal may end)
_ITEM_TYPES = (EVIDENCE_DOCUMENT, EVIDENCE_ATTESTATION, EVIDENCE_TEST_RESULT, EVIDENCE_EVENT)
#: id prefix of each kind of item (a document's id also holds its digest)
_ID_PREFIX = {EVIDENCE_DOCUMENT: "doc", EVIDENCE_ATTESTATION: "att", EVIDENCE_TEST_RESULT: "test",
              EVIDENCE_EVENT: "evt"}
EvidenceStatus = Literal["current", "expired", "past_review", "withdrawn", "not_yet_valid"]
EvidenceKind = Literal["document", "attestation", "test_result", "event"]
#: characters of a document's sha256 in its id: enough to tell documents apart at a glance
_ID_DIGEST = 12


# -- statements ------------------------------------------------------------------------------------


def _check_controls(controls: Sequence[str], frameworks: FrameworkSet | None,
                    problems: DiagnosticCollector) -> list[str]:
    """The controls, deduplicated in order; each must be one reports assess (`FrameworkSet.check_citable`)."""
    from .frameworks import load_frameworks

    catalogs = frameworks if frameworks is not None else load_frameworks()
    if not controls:
        problems.add("evidence_controls", "evidence cites at least one control (--control iso-42001:A.2.2)",
                     path="$.controls")
    seen: list[str] = []
    for index, ref in enumerate(controls):
        if not isinstance(ref, str) or len(ref) > MAX_EVIDENCE_FIELD:
            problems.add("unknown_control", "a control reference is a short string", path=f"$.controls[{index}]")
            continue
        why = catalogs.check_citable(ref)  # the rule policies follow: only what reports assess
        if why is not None:
            problems.add("unknown_control", why, path=f"$.controls[{index}]")
        elif ref not in seen:
            seen.append(ref)
    return seen


def _check_systems(systems: Sequence[str], problems: DiagnosticCollector) -> list[str]:
    listed = sorted(set(systems))
    if len(listed) > MAX_EVIDENCE_ITEMS:
        problems.add("evidence_too_long", f"{len(listed)} systems; at most {MAX_EVIDENCE_ITEMS}", path="$.systems")
    for index, system in enumerate(listed):
        if not isinstance(system, str) or not system or len(system) > MAX_EVIDENCE_FIELD:
            problems.add("unknown_system", "a system id is a non-empty short string", path=f"$.systems[{index}]")
    return listed


def _check_text(name: str, value: str, limit: int, problems: DiagnosticCollector) -> str:
    if not isinstance(value, str) or not value.strip():
        problems.add("evidence_field", f"{name} must not be empty", path=f"$.{name}")
    elif len(value) > limit:
        problems.add("evidence_too_long", f"{name} has {len(value):,} characters; at most {limit:,} are allowed "
                     "(keep long texts in a document and record its digest)", path=f"$.{name}")
    return value


def _check_sha256(name: str, value: str, problems: DiagnosticCollector) -> str:
    digest = value.lower() if isinstance(value, str) else ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        shown = value[:80] if isinstance(value, str) else repr(value)
        problems.add("bad_digest", f"{name} {shown!r} is not a SHA-256 digest (64 hex digits)", path=f"$.{name}")
    return digest


def document_fields(*, name: str, version: str, sha256: str, uri: str, owner: str,
                    review_by: datetime.date | str, controls: Sequence[str], systems: Sequence[str] = (),
                    frameworks: FrameworkSet | None = None) -> dict[str, Any]:
    """What a recorder signs to record a document: its identity, digest, location, owner, review date, the
    controls it documents and its scope (`systems`, or none for the whole organisation).

    Raises:
        CharterError: every problem at once (``bad_digest``, ``unknown_control``, ``evidence_too_long``,
            ``evidence_field``), located by JSON path.
    """
    problems = DiagnosticCollector()
    for label, value, limit in (("name", name, MAX_EVIDENCE_FIELD), ("version", version, MAX_EVIDENCE_FIELD),
                                ("uri", uri, MAX_EVIDENCE_URI)):
        _check_text(label, value, limit, problems)
    digest = _check_sha256("sha256", sha256, problems)
    try:
        owner = check_principal(owner)
    except CharterError as exc:
        problems.add("evidence_field", f"owner: {exc.diagnostics[0].message}", path="$.owner")
    if isinstance(review_by, str):
        text = review_by
        try:
            review_by = datetime.date.fromisoformat(text)
        except ValueError:
            problems.add("evidence_field", f"review_by {text[:40]!r} is not a date (YYYY-MM-DD)",
                         path="$.review_by")
    checked_controls = _check_controls(controls, frameworks, problems)
    checked_systems = _check_systems(systems, problems)
    problems.raise_if_any()
    assert isinstance(review_by, datetime.date)
    return {"name": name, "version": version, "sha256": digest, "uri": uri, "owner": owner,
            "review_by": review_by.isoformat(), "controls": checked_controls, "systems": checked_systems}


def attestation_fields(*, statement: str, controls: Sequence[str], valid_from: datetime.datetime,
                       valid_until: datetime.datetime, systems: Sequence[str] = (), documents: Sequence[str] = (),
                       frameworks: FrameworkSet | None = None) -> dict[str, Any]:
    """What an attester signs: the statement, the controls it is about, its scope, its validity period
    (``valid_from`` inclusive, ``valid_until`` exclusive) and the digests of recorded documents it cites.

    Raises:
        CharterError: every problem at once, including a period that ends before it starts.
    """
    problems = DiagnosticCollector()
    _check_text("statement", statement, MAX_EVIDENCE_TEXT, problems)
    for label, moment in (("valid_from", valid_from), ("valid_until", valid_until)):
        if moment.tzinfo is None:
            problems.add("usage", f"{label} has no timezone", path=f"$.{label}")
    if valid_from.tzinfo is not None and valid_until.tzinfo is not None and valid_until <= valid_from:
        problems.add("evidence_period", f"valid_until {format_time(valid_until)} is not after valid_from "
                     f"{format_time(valid_from)}", path="$.valid_until")
    cited = _check_documents(documents, problems)
    checked_controls = _check_controls(controls, frameworks, problems)
    checked_systems = _check_systems(systems, problems)
    problems.raise_if_any()
    return {"statement": statement, "controls": checked_controls, "systems": checked_systems,
            "valid_from": format_time(valid_from), "valid_until": format_time(valid_until),
            "documents": cited}


def _check_period(start_name: str, start: datetime.datetime, end_name: str, end: datetime.datetime,
                  now: datetime.datetime | None, problems: DiagnosticCollector) -> None:
    """A test result's or event's period: zoned times, the end after the start and at most
    `MAX_EVIDENCE_VALIDITY` later, and (given `now`) a start that is not in the future."""
    for label, moment in ((start_name, start), (end_name, end)):
        if moment.tzinfo is None:
            problems.add("usage", f"{label} has no timezone", path=f"$.{label}")
    if start.tzinfo is None or end.tzinfo is None:
        return
    if now is not None and start > now:
        problems.add("evidence_in_future", f"{start_name} {format_time(start)} is in the future (now is "
                     f"{format_time(now)}): record what has happened", path=f"$.{start_name}")
    if end <= start:
        problems.add("evidence_period", f"{end_name} {format_time(end)} is not after {start_name} "
                     f"{format_time(start)}", path=f"$.{end_name}")
    elif end - start > MAX_EVIDENCE_VALIDITY:
        problems.add("evidence_period", f"{end_name} {format_time(end)} is {(end - start).days} days after "
                     f"{start_name}; at most {MAX_EVIDENCE_VALIDITY.days} days are allowed", path=f"$.{end_name}")


def _check_choice(name: str, value: str, allowed: Sequence[str], problems: DiagnosticCollector) -> None:
    if value not in allowed:
        shown = value[:80] if isinstance(value, str) else repr(value)
        problems.add("evidence_field", f"{name} {shown!r} is not one of {', '.join(allowed)}", path=f"$.{name}")


def _check_documents(documents: Sequence[str], problems: DiagnosticCollector) -> list[str]:
    cited = [_check_sha256(f"documents[{i}]", d, problems) for i, d in enumerate(documents)]
    if len(set(cited)) > MAX_EVIDENCE_ITEMS:
        problems.add("evidence_too_long", f"at most {MAX_EVIDENCE_ITEMS} documents", path="$.documents")
    return sorted(set(cited))


def test_result_fields(*, name: str, method: str, performed_at: datetime.datetime, outcome: str, summary: str,
                       valid_until: datetime.datetime, controls: Sequence[str], systems: Sequence[str] = (),
                       artifact_sha256: str | None = None, artifact_uri: str | None = None,
                       frameworks: FrameworkSet | None = None,
                       now: datetime.datetime | None = None) -> dict[str, Any]:
    """What a tester signs to record a test or assessment: its name (results of one name supersede each
    other), method or tool, when it was performed, its outcome (`TEST_OUTCOMES`), a summary, an optional
    artifact (the report's SHA-256 and where it is kept), until when it counts (when it must be re-run),
    the controls it tests and its scope.

    Args:
        now: when given, a ``performed_at`` after it is refused here; the ledger refuses one after the
            entry's receipt either way.

    Raises:
        CharterError: every problem at once (``evidence_field`` for an unknown outcome, ``evidence_period``,
            ``evidence_in_future``, ``bad_digest``, ``unknown_control``, ...), located by JSON path.
    """
    problems = DiagnosticCollector()
    _check_text("name", name, MAX_EVIDENCE_FIELD, problems)
    _check_text("method", method, MAX_EVIDENCE_FIELD, problems)
    _check_text("summary", summary, MAX_EVIDENCE_TEXT, problems)
    _check_choice("outcome", outcome, TEST_OUTCOMES, problems)
    _check_period("performed_at", performed_at, "valid_until", valid_until, now, problems)
    artifact: dict[str, str] | None = None
    if (artifact_sha256 is None) != (artifact_uri is None):
        problems.add("evidence_field", "an artifact has both a sha256 and a uri (or neither is given)",
                     path="$.artifact")
    elif artifact_sha256 is not None and artifact_uri is not None:
        artifact = {"sha256": _check_sha256("artifact.sha256", artifact_sha256, problems),
                    "uri": _check_text("artifact.uri", artifact_uri, MAX_EVIDENCE_URI, problems)}
    checked_controls = _check_controls(controls, frameworks, problems)
    checked_systems = _check_systems(systems, problems)
    problems.raise_if_any()
    return {"name": name, "method": method, "performed_at": format_time(performed_at), "outcome": outcome,
            "summary": summary, "artifact": artifact, "valid_until": format_time(valid_until),
            "controls": checked_controls, "systems": checked_systems}


def event_fields(*, kind: str, title: str, occurred_at: datetime.datetime, next_due: datetime.datetime,
                 controls: Sequence[str], systems: Sequence[str] = (), participants: Sequence[str] = (),
                 documents: Sequence[str] = (), frameworks: FrameworkSet | None = None,
                 now: datetime.datetime | None = None) -> dict[str, Any]:
    """What a recorder signs to record that a process ran: its kind (`EVENT_KINDS`), title, when it
    happened, when the next is due (it counts as current until then), who took part, the recorded
    documents it relies on (minutes, agenda, training material, by SHA-256), the controls and scope.

    Raises:
        CharterError: every problem at once (``evidence_field`` for an unknown kind or participant,
            ``evidence_period``, ``evidence_in_future``, ``bad_digest``, ``unknown_control``, ...).
    """
    problems = DiagnosticCollector()
    _check_choice("kind", kind, EVENT_KINDS, problems)
    _check_text("title", title, MAX_EVIDENCE_FIELD, problems)
    _check_period("occurred_at", occurred_at, "next_due", next_due, now, problems)
    people: list[str] = []
    for index, person in enumerate(participants):
        try:
            people.append(check_principal(person))
        except CharterError as exc:
            problems.add("evidence_field", f"participants[{index}]: {exc.diagnostics[0].message}",
                         path=f"$.participants[{index}]")
    if len(set(people)) > MAX_EVIDENCE_ITEMS:
        problems.add("evidence_too_long", f"at most {MAX_EVIDENCE_ITEMS} participants", path="$.participants")
    cited = _check_documents(documents, problems)
    checked_controls = _check_controls(controls, frameworks, problems)
    checked_systems = _check_systems(systems, problems)
    problems.raise_if_any()
    return {"kind": kind, "title": title, "occurred_at": format_time(occurred_at), "next_due": format_time(next_due),
            "participants": sorted(set(people)), "documents": cited, "controls": checked_controls,
            "systems": checked_systems}


def withdrawal_fields(seq: int, reason: str) -> dict[str, Any]:
    """What the attester, recorder or an administrator signs to end the evidence of `seq` early.

    Raises:
        CharterError: no reason, or one too long.
    """
    problems = DiagnosticCollector()
    _check_text("reason", reason, MAX_EVIDENCE_FIELD, problems)
    problems.raise_if_any()
    return {"seq": seq, "reason": reason}


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (a document may be large; only its digest is recorded).

    Raises:
        CharterError: ``file_not_found`` or ``unreadable`` naming the file.
    """
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except FileNotFoundError as exc:
        raise CharterError.single("file_not_found", "no such file", file=str(path)) from exc
    except OSError as exc:
        raise CharterError.single("unreadable", f"cannot read: {exc.strerror or exc}", file=str(path)) from exc
    return digest.hexdigest()


# -- recording -------------------------------------------------------------------------------------


def _recheck(entry_type: str, fields: dict[str, Any], frameworks: FrameworkSet | None) -> None:
    """Check fields handed in whole (a statement signed elsewhere) as the field builders check them."""
    problem = evidence_shape_problem(entry_type, {**fields})
    if problem is not None:
        raise CharterError.single("malformed_body", problem)
    if entry_type != EVIDENCE_WITHDRAWN:
        problems = DiagnosticCollector()
        _check_controls(fields["controls"], frameworks, problems)
        problems.raise_if_any()


def _append(ledger: Ledger, entry_type: str, fields: dict[str, Any], signer: Signer) -> Entry:
    from .authority import signed_entry

    def build(next_seq: int) -> list[NewEntry]:
        # The store asks `Authority.check` (the role, the systems, the documents cited, the target of a
        # withdrawal) before anything is written, as `verify` asks it afterwards.
        return [signed_entry(ledger, entry_type, fields, signer, size=next_seq)]
    return ledger.append(build)[0]


def record_evidence(ledger: Ledger, entry_type: str, fields: dict[str, Any], signer: Signer,
                    frameworks: FrameworkSet | None = None) -> Entry:
    """Record an evidence item of `entry_type` (a document, attestation, test result or event), its fields
    checked again as its builder checks them, signed by `signer`: a key, or a statement signed elsewhere.

    Raises:
        CharterError: bad fields; ``not_authorized`` (organisation-wide or of an organisation-level control
            without ``evidence_attester``, or a system the actor does not own); ``unknown_system``; an
            unregistered key; ``unknown_document`` (an attestation or event citing a document not
            recorded); ``evidence_in_future`` (a test result or event dated after the ledger receives it).
            Nothing is written then.
    """
    if entry_type not in _ITEM_TYPES:
        raise CharterError.single("malformed_body", f"{entry_type!r} is not a kind of evidence item")
    _recheck(entry_type, fields, frameworks)
    return _append(ledger, entry_type, fields, signer)


def record_document(ledger: Ledger, fields: dict[str, Any], signer: Signer,
                    frameworks: FrameworkSet | None = None) -> Entry:
    """Record a document (`document_fields`), signed by `signer`.

    Raises:
        CharterError: as `record_evidence`.
    """
    return record_evidence(ledger, EVIDENCE_DOCUMENT, fields, signer, frameworks)


def record_attestation(ledger: Ledger, fields: dict[str, Any], signer: Signer,
                       frameworks: FrameworkSet | None = None) -> Entry:
    """Record an attestation (`attestation_fields`), signed by its attester.

    Raises:
        CharterError: as `record_evidence`, and ``unknown_document`` when it cites a document not recorded.
    """
    return record_evidence(ledger, EVIDENCE_ATTESTATION, fields, signer, frameworks)


def record_test_result(ledger: Ledger, fields: dict[str, Any], signer: Signer,
                       frameworks: FrameworkSet | None = None) -> Entry:
    """Record a test result (`test_result_fields`), signed by who performed or owns the test.

    Raises:
        CharterError: as `record_evidence`.
    """
    return record_evidence(ledger, EVIDENCE_TEST_RESULT, fields, signer, frameworks)


def record_event(ledger: Ledger, fields: dict[str, Any], signer: Signer,
                 frameworks: FrameworkSet | None = None) -> Entry:
    """Record an event (`event_fields`), signed by its recorder.

    Raises:
        CharterError: as `record_evidence`.
    """
    return record_evidence(ledger, EVIDENCE_EVENT, fields, signer, frameworks)


def parse_evidence_id(text: str) -> int:
    """The seq an evidence id names: ``att:12``, ``test:12``, ``evt:12``, ``doc:<sha256 prefix>:12`` or a bare ``12``.

    Raises:
        CharterError: ``unknown_evidence`` for any other shape.
    """
    tail = text.rsplit(":", 1)[-1]
    if not (tail.isascii() and tail.isdigit()) or len(tail) > 18 or not (
            text == tail or text.startswith(tuple(f"{p}:" for p in _ID_PREFIX.values()))):
        raise CharterError.single("unknown_evidence", f"{text[:80]!r} is not an evidence id (att:SEQ, test:SEQ, "
                                  "evt:SEQ, doc:DIGEST:SEQ or SEQ)")
    return int(tail)


def withdraw_evidence(ledger: Ledger, evidence_id: str, reason: str, signer: Signer) -> Entry:
    """End a document, attestation, test result or event early (its status becomes ``withdrawn`` from this
    entry on: a withdrawn test result no longer counts as the latest of its name).

    Raises:
        CharterError: ``unknown_evidence`` (no such item, or an id whose digest is not the item's),
            ``evidence_withdrawn``, ``not_authorized`` (neither its attester or recorder nor an administrator).
    """
    seq = parse_evidence_id(evidence_id)
    target = ledger.entry(seq)
    if target is None or target.type not in _ITEM_TYPES:
        raise CharterError.single("unknown_evidence", f"seq {seq} records no document, attestation, test result or "
                                  "event")
    if _item_id(target.type, seq, target.payload) != evidence_id and evidence_id != str(seq):
        raise CharterError.single("unknown_evidence", f"{evidence_id[:80]!r} does not name the evidence of seq "
                                  f"{seq} ({_item_id(target.type, seq, target.payload)})")
    return _append(ledger, EVIDENCE_WITHDRAWN, withdrawal_fields(seq, reason), signer)


def accept_evidence(ledger: Ledger, statement: SignedStatement, frameworks: FrameworkSet | None = None) -> Entry:
    """Append an evidence statement signed elsewhere (``--sign-only``), as `charter ledger accept` does.

    Raises:
        CharterError: what `record_evidence` or `withdraw_evidence` refuse.
    """
    fields = statement.fields()
    if statement.type == EVIDENCE_WITHDRAWN:
        _recheck(EVIDENCE_WITHDRAWN, fields, frameworks)
        return _append(ledger, EVIDENCE_WITHDRAWN, fields, statement)
    return record_evidence(ledger, statement.type, fields, statement, frameworks)


# -- reading ---------------------------------------------------------------------------------------


def _time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _item_id(entry_type: str, seq: int, payload: dict[str, Any]) -> str:
    if entry_type == EVIDENCE_DOCUMENT:
        return f"doc:{str(payload.get('sha256'))[:_ID_DIGEST]}:{seq}"
    return f"{_ID_PREFIX[entry_type]}:{seq}"


@dataclass(frozen=True)
class EvidenceItem:
    """A recorded document, attestation, test result or event, with its withdrawal if any.

    ``valid_until`` is an RFC 3339 time (exclusive) for an attestation, a test result (when it must be
    re-run) and an event (when the next is due), and the review date (``YYYY-MM-DD``, the last day it is
    current) for a document; `status_at` reads either. A document is valid from when the ledger
    recorded it (``valid_from`` = ``recorded_at``), a test result from when it was performed and an
    event from when it happened. A test result's ``title`` is its name (results of one name supersede
    each other), and ``sha256`` and ``uri`` name its artifact, if any.
    """

    kind: EvidenceKind
    id: str
    seq: int
    record_hash: str
    controls: tuple[str, ...]
    systems: tuple[str, ...]
    actor: str
    title: str
    valid_from: str
    valid_until: str | None
    withdrawn_at: str | None
    sha256: str | None
    uri: str | None
    owner: str | None
    #: when the ledger recorded it (the entry's received_at)
    recorded_at: str = ""
    #: an attestation's full statement (the title is its first line)
    statement: str | None = None
    #: sha256 of the recorded documents an attestation or event cites
    documents: tuple[str, ...] = ()
    #: a test result's outcome (passed, failed, inconclusive), method and summary
    outcome: str | None = None
    method: str | None = None
    summary: str | None = None
    #: an event's kind (`EVENT_KINDS`) and who took part
    event_kind: str | None = None
    participants: tuple[str, ...] = ()
    #: the seq of the withdrawal entry and its reason, when withdrawn
    withdrawn_seq: int | None = None
    withdrawal_reason: str | None = None

    def status_at(self, at: datetime.datetime) -> EvidenceStatus:
        """``withdrawn`` from its withdrawal on; else ``not_yet_valid`` before its validity starts, ``expired``
        (attestation, test result, event) from ``valid_until`` on, ``past_review`` (document) after its
        review date; else ``current``."""
        if self.withdrawn_at is not None and at >= _time(self.withdrawn_at):
            return "withdrawn"
        if at < _time(self.valid_from):
            return "not_yet_valid"
        if self.valid_until is not None:
            if self.kind == "document":
                if at.astimezone(datetime.UTC).date() > datetime.date.fromisoformat(self.valid_until):
                    return "past_review"
            elif at >= _time(self.valid_until):
                return "expired"
        return "current"

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``charter evidence list --format json``)."""
        return {"kind": self.kind, "id": self.id, "seq": self.seq, "record_hash": self.record_hash,
                "controls": list(self.controls), "systems": list(self.systems), "actor": self.actor,
                "title": self.title, "valid_from": self.valid_from, "valid_until": self.valid_until,
                "withdrawn_at": self.withdrawn_at, "withdrawn_seq": self.withdrawn_seq,
                "withdrawal_reason": self.withdrawal_reason, "sha256": self.sha256, "uri": self.uri,
                "owner": self.owner, "recorded_at": self.recorded_at, "statement": self.statement,
                "documents": list(self.documents), "outcome": self.outcome, "method": self.method,
                "summary": self.summary, "event_kind": self.event_kind, "participants": list(self.participants)}


def cites(item_ref: str, ref: str) -> bool:
    """Whether evidence citing `item_ref` counts for `ref`: the same control, or a paragraph of it
    (``eu-ai-act:art-10(2)`` counts for ``eu-ai-act:art-10``)."""
    return item_ref == ref or item_ref.startswith(ref + "(")


@dataclass
class EvidenceIndex:
    """The documents, attestations, test results and events of a ledger prefix, in seq order."""

    items: list[EvidenceItem] = field(default_factory=list)

    def for_control(self, ref: str, system_id: str) -> list[EvidenceItem]:
        """Items citing the control `ref` (or a paragraph of it) scoped to `system_id` or to the whole
        organisation, whatever their status (ask `EvidenceItem.status_at`)."""
        return [item for item in self.items
                if (not item.systems or system_id in item.systems) and any(cites(c, ref) for c in item.controls)]

    def get(self, evidence_id: str) -> EvidenceItem | None:
        """The item with this id (or seq), if any."""
        return next((i for i in self.items if evidence_id in (i.id, str(i.seq))), None)

    def filter(self, control: str | None = None, system: str | None = None) -> list[EvidenceItem]:
        """Items citing `control` (or a paragraph of it) and scoped to `system` (or organisation-wide)."""
        return [item for item in self.items
                if (control is None or any(cites(c, control) for c in item.controls))
                and (system is None or not item.systems or system in item.systems)]


def _item(entry: Entry) -> EvidenceItem:
    payload = entry.payload
    common: dict[str, Any] = {"id": _item_id(entry.type, entry.seq, payload), "seq": entry.seq,
              "record_hash": entry.record_hash.hex(), "controls": tuple(payload["controls"]),
              "systems": tuple(payload["systems"]), "actor": str(payload["actor"]), "withdrawn_at": None,
              "recorded_at": entry.received_at}
    if entry.type == EVIDENCE_DOCUMENT:
        return EvidenceItem(kind="document", title=f"{payload['name']} {payload['version']}",
                            valid_from=entry.received_at, valid_until=payload["review_by"], sha256=payload["sha256"],
                            uri=payload["uri"], owner=payload["owner"], **common)
    if entry.type == EVIDENCE_TEST_RESULT:
        artifact = payload["artifact"] if isinstance(payload["artifact"], dict) else {}
        return EvidenceItem(kind="test_result", title=str(payload["name"]), valid_from=payload["performed_at"],
                            valid_until=payload["valid_until"], sha256=artifact.get("sha256"), uri=artifact.get("uri"),
                            owner=None, outcome=str(payload["outcome"]), method=str(payload["method"]),
                            summary=str(payload["summary"]), **common)
    if entry.type == EVIDENCE_EVENT:
        return EvidenceItem(kind="event", title=str(payload["title"]), valid_from=payload["occurred_at"],
                            valid_until=payload["next_due"], sha256=None, uri=None, owner=None,
                            event_kind=str(payload["kind"]), participants=tuple(payload["participants"]),
                            documents=tuple(payload["documents"]), **common)
    text = str(payload["statement"])
    return EvidenceItem(kind="attestation", title=text.strip().splitlines()[0] if text.strip() else "",
                        valid_from=payload["valid_from"], valid_until=payload["valid_until"], sha256=None, uri=None,
                        owner=None, statement=text, documents=tuple(payload["documents"]), **common)


def evidence_index(ledger: LedgerReader, size: int | None = None) -> EvidenceIndex:
    """The evidence recorded in the ledger's first `size` entries (default: all), withdrawals applied.

    Entries are read as recorded: one forced past the authority rule is listed too, and `charter
    verify` names it (reports bind to a verified ledger).
    """
    items: dict[int, EvidenceItem] = {}
    for entry in ledger.entries(0, size, types=EVIDENCE_TYPES):
        if entry.type == EVIDENCE_WITHDRAWN:
            target = items.get(int(entry.payload["seq"]))
            if target is not None and target.withdrawn_at is None:
                items[target.seq] = _replace(target, withdrawn_at=entry.received_at, withdrawn_seq=entry.seq,
                                             withdrawal_reason=str(entry.payload.get("reason")))
            continue
        items[entry.seq] = _item(entry)
    return EvidenceIndex([items[seq] for seq in sorted(items)])


def _replace(item: EvidenceItem, **changes: Any) -> EvidenceItem:
    import dataclasses

    return dataclasses.replace(item, **changes)
