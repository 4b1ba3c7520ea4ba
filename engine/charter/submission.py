"""The governance loop on the ledger: keys, the system registry, signed submissions and replay.

`submit` validates a bundle, checks its signature against the keys registered for the system's
owner, evaluates it and appends, in one transaction: the policies it was judged by (once per
version), the bundle, an evaluation record and one entry per finding. Each finding cites the
bundle's seq and record hash and the digest of its policy version, so `replay` can re-derive it.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._sources import SourceMap, parse_json_strict
from .authority import (
    ActivePolicies,
    KeyRequest,
    SignedStatement,
    Signer,
    active_catalog,
    active_escalation,
    active_policies,
    principal_of,
    signed_entry,
)
from .bundle import EvidenceBundle
from .errors import CharterError, Diagnostic, Location
from .escalation import EscalationGraph
from .evaluate import Finding, Status, evaluate_bundle
from .incidents import INCIDENT_TYPES, IncidentNotice, apply, incident_entries, incident_notices, kept_book
from .kpis import KpiCatalog
from .ledger.auditor import (
    ESCALATION_ACTIVATED,
    GOVERNANCE_CONFIG,
    KEY_ADDED,
    KEY_REVOKED,
    POLICY_ACTIVATED,
    SYSTEM_REGISTERED,
    Authority,
    Problem,
)
from .ledger.hashing import BUNDLE_CONTEXT, canonical
from .ledger.keys import SigningKey, verify_signature
from .ledger.records import Entry, LedgerReader, NewEntry, format_time
from .ledger.store import Ledger
from .policy.compiler import PolicyCompiler
from .registry import AISystem, SystemRegistry, baseline_problems
from .validation import statement_text

BUNDLE = "bundle"
EVALUATION = "evaluation"
FINDING = "finding"


# -- keys ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyRecord:
    """A key as the ledger knows it at some point: registered by an administrator, or an administrator's own."""

    key_id: str
    principal: str
    public: bytes
    added_seq: int
    revoked_seq: int | None = None
    reason: str | None = None

    def valid_at(self, seq: int) -> bool:
        """Valid for an entry at `seq`: added before it and not revoked before it."""
        return self.added_seq < seq and (self.revoked_seq is None or self.revoked_seq >= seq)


def key_records(ledger: Ledger, before: int | None = None) -> dict[str, KeyRecord]:
    """The keys of the ledger's first `before` entries (default: all), from its authority state."""
    keys = ledger.authority(before).keys
    return {key_id: _key_record(ledger, key_id, keys[key_id]) for key_id in keys}


def key_record(ledger: Ledger, key_id: str, before: int | None = None) -> KeyRecord | None:
    """One key as the first `before` entries know it, or None if it was not registered by then."""
    known = ledger.authority(before).keys.get(key_id)
    return None if known is None else _key_record(ledger, key_id, known)


def _key_record(ledger: Ledger, key_id: str, known: list[Any]) -> KeyRecord:
    principal, public, added, revoked = known
    reason = None
    if revoked is not None:  # read only for revoked keys: the reason is in the revocation entry
        revocation = ledger.entry(revoked)
        reason = revocation.payload.get("reason") if revocation is not None else None
    return KeyRecord(key_id, principal, base64.b64decode(public), added, revoked, reason)


def key_statement(request: KeyRequest) -> dict[str, Any]:
    """What an administrator signs to register a key: the key, its principal, the holder's proof of
    possession, and the endorsement of a key the principal already holds, if any."""
    return request.fields()


def revocation_statement(key_id: str, reason: str) -> dict[str, Any]:
    """What a key's owner or an administrator signs to revoke it.

    Raises:
        CharterError: a key id or reason that is not a string, or a reason over `MAX_TEXT` characters.
    """
    return {"key_id": statement_text(key_id, "key_id"), "reason": statement_text(reason, "reason")}


def system_statement(system: AISystem) -> dict[str, Any]:
    """What a registrar signs to register a system (or change its owner or classification)."""
    return {"system": system.model_dump(mode="json")}


def register_key(ledger: Ledger, request: KeyRequest, admin: Signer) -> Entry:
    """Approve a principal's key, as `admin` (an administrator), from its holder's request (idempotent).

    A key that one of the principal's own keys endorses is registered at once. One they do not
    endorse (their first) is registered once ``key_approvals`` administrators of the configuration in
    force have approved it, each by an entry of their own; until then it is pending and signs nothing
    (`key_approval` tells which). Approving again returns the administrator's earlier entry.

    Raises:
        CharterError: the key is registered to someone else or was revoked, the request's proof of
            possession is bad, or `admin` is no administrator; for a signed statement that cannot land
            (its administrator's approval already counts, or the key is already registered),
            ``already_approved`` or ``key_registered``.
    """
    def build(next_seq: int) -> list[NewEntry]:
        authority = ledger.authority(next_seq)
        known = authority.keys.get(request.key_id)
        if known is not None:
            if known[0] != request.principal:
                raise CharterError.single("key_registered", f"key {request.key_id} is already registered to "
                                          f"{known[0]!r}")
            if known[3] is not None:
                raise CharterError.single("key_revoked", f"key {request.key_id} was revoked at seq {known[3]} and "
                                          "cannot be registered again; generate a new key")
            if isinstance(admin, SignedStatement):  # the key landed by other approvals: this one is not recorded
                raise CharterError.single("key_registered", f"key {request.key_id} of {known[0]!r} is already "
                                          f"registered (seq {known[2]}); this statement was not recorded")
            return []
        if (not authority.principal_keys(request.principal, next_seq)
                and _actor_of(ledger, admin, next_seq) in authority.key_approvers(request.key_id, next_seq)):
            if isinstance(admin, SignedStatement):  # another statement of an approval already counted: not recorded
                raise CharterError.single("already_approved", f"{admin.statement.get('actor')!r} already approved key "
                                          f"{request.key_id}; it needs {authority.key_approvals()} different "
                                          "administrators, and this statement was not recorded")
            return []
        return [signed_entry(ledger, KEY_ADDED, key_statement(request), admin, subject=request.principal,
                             size=next_seq)]
    appended = ledger.append(build)
    if appended:
        return appended[0]
    authority = ledger.authority()
    known = authority.keys.get(request.key_id)
    seq = known[2] if known is not None else authority.pending_keys[request.key_id][2][_actor_of(ledger, admin)]
    added = ledger.entry(int(seq))
    assert added is not None
    return added


@dataclass(frozen=True)
class KeyApproval:
    """Where a key stands: registered, or pending with the administrators who approved it so far."""

    key_id: str
    principal: str | None
    registered: bool
    approvers: tuple[str, ...]
    needed: int

    def describe(self) -> str:
        """One line for a person: registered, or how many more administrators must approve."""
        if self.registered:
            return f"{self.key_id} registered for {self.principal}"
        if self.principal is None:
            return f"{self.key_id} is neither registered nor awaiting approval"
        more = max(1, self.needed - len(self.approvers))
        return (f"{self.key_id} of {self.principal} awaits approval: {len(self.approvers)} of {self.needed} "
                f"administrators approved it ({', '.join(self.approvers) or 'none in force'}); {more} more must run "
                "`charter keys register` with its request before it signs anything")


def key_approval(ledger: Ledger, key_id: str) -> KeyApproval:
    """Whether `key_id` is registered, or which administrators approved it so far and how many must."""
    authority = ledger.authority()
    size = ledger.size()
    known = authority.keys.get(key_id)
    if known is not None:
        return KeyApproval(key_id, str(known[0]), True, (), authority.key_approvals())
    return _unregistered(authority, key_id, size)


def pending_keys(ledger: Ledger) -> list[KeyApproval]:
    """The keys awaiting approval (they sign nothing yet), by key id, with who approved each so far."""
    authority = ledger.authority()
    size = ledger.size()
    return [_unregistered(authority, key_id, size) for key_id in sorted(authority.pending_keys)]


def _unregistered(authority: Authority, key_id: str, size: int) -> KeyApproval:
    """A key not registered: pending (its principal and approvers so far), or unknown (no principal)."""
    pending = authority.pending_keys.get(key_id)
    return KeyApproval(key_id, None if pending is None else str(pending[0]), False,
                       tuple(authority.key_approvers(key_id, size)), authority.key_approvals())


def _actor_of(ledger: Ledger, signer: Signer, size: int | None = None) -> str:
    """The principal a signer acts as: a signed statement's actor, or the principal a key is registered to."""
    if isinstance(signer, SignedStatement):
        return str(signer.statement.get("actor"))
    return principal_of(ledger, signer, size)


def revoke_key(ledger: Ledger, key_id: str, reason: str, actor: Signer) -> Entry:
    """Revoke a key from the next seq on, as its owner or an administrator; earlier entries it signed stay valid."""
    statement = revocation_statement(key_id, reason)  # its fields' types first, before anything is looked up

    def build(next_seq: int) -> list[NewEntry]:
        known = ledger.authority(next_seq).keys.get(key_id)
        if known is None:
            raise CharterError.single("unknown_key", f"no key {key_id} is registered")
        if known[3] is not None:
            raise CharterError.single("key_revoked", f"key {key_id} was already revoked at seq {known[3]}")
        return [signed_entry(ledger, KEY_REVOKED, statement, actor,
                             subject=str(known[0]), size=next_seq)]
    return ledger.append(build)[0]


# -- systems -------------------------------------------------------------------------------------


def register_system(ledger: Ledger, system: AISystem, registrar: Signer) -> Entry | None:
    """Register or update a system, as `registrar` (a system registrar); None when the ledger holds exactly this.

    Raises:
        CharterError: ``unknown_kpi`` or ``kpi_out_of_range`` for a baseline the KPI catalog in force does
            not accept (`charter.registry.baseline_problems`), and whatever the authority rule refuses.
            Nothing is appended then.
    """
    document = system.model_dump(mode="json")

    def build(next_seq: int) -> list[NewEntry]:
        current = systems_in_ledger(ledger, next_seq)
        if system.id in current and current[system.id].model_dump(mode="json") == document:
            return []
        problems = baseline_problems(system, active_catalog(ledger, next_seq))
        if problems:  # judged by the KPIs the ledger recorded, never by a catalog file the registrar brings
            raise CharterError([Diagnostic(code, f"system {system.id!r}: {message}; a custom KPI must be recorded "
                                           "by a policy activation before a baseline can name it",
                                           Location(path=f"$.system.baseline.{kpi_id}"))
                                for kpi_id, code, message in problems])
        return [signed_entry(ledger, SYSTEM_REGISTERED, system_statement(system), registrar, subject=system.id,
                             size=next_seq)]
    appended = ledger.append(build)
    return appended[0] if appended else None


def systems_in_ledger(ledger: LedgerReader, before: int | None = None) -> dict[str, AISystem]:
    """The registry as of seq `before` (default: now): the latest registration of each system."""
    from pydantic import ValidationError

    systems: dict[str, AISystem] = {}
    for entry in ledger.entries(0, before, types=(SYSTEM_REGISTERED,)):
        try:
            system = AISystem.model_validate(entry.payload.get("system"))
        except ValidationError:
            continue  # forced in by a holder of the log key: it registers nothing, and `charter verify` names it
        systems[system.id] = system
    return systems


def registry_in_ledger(ledger: LedgerReader, before: int | None = None) -> SystemRegistry:
    """The registry as a `SystemRegistry`."""
    return SystemRegistry(systems_in_ledger(ledger, before))


# -- submission ----------------------------------------------------------------------------------


def bundle_message(data: dict[str, Any]) -> bytes:
    """The bytes a submitter signs: RFC 8785 JSON of the bundle as submitted, without its signature."""
    return canonical({k: v for k, v in data.items() if k != "signature"})


def sign_bundle_data(data: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """The bundle data with a signature by `key` added (replacing any earlier one)."""
    signed = {k: v for k, v in data.items() if k != "signature"}
    signed["signature"] = {"key_id": key.key_id, "algorithm": "ed25519",
                           "value": key.sign(BUNDLE_CONTEXT, bundle_message(data))}
    return signed


@dataclass(frozen=True)
class Receipt:
    """The log's signed promise that an entry is in the ledger at `seq` with `record_hash`.

    For entries appended with range receipts, `signature` covers the Merkle root of the append
    transaction's entries (`range`), and `proof` is this entry's inclusion proof in that range;
    `charter.ledger.auditor.check_receipt` checks either form offline.
    """

    log: str
    seq: int
    record_hash: str
    received_at: str
    log_key_id: str
    signature: str
    range: dict[str, Any] | None = None
    proof: tuple[str, ...] | None = None

    @classmethod
    def of(cls, ledger: Ledger, entry: Entry) -> Receipt:
        """The receipt of a stored entry."""
        document = ledger.receipt_for(entry.seq)
        assert document is not None, f"entry {entry.seq} has no receipt"
        proof = document.get("proof")
        return cls(ledger.origin, entry.seq, entry.record_hash.hex(), entry.received_at,
                   ledger.meta()["log_key_id"], document["signature"], document.get("range"),
                   tuple(proof) if proof is not None else None)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``range`` and ``proof`` only for range receipts)."""
        document = {k: v for k, v in self.__dict__.items() if v is not None}
        if self.proof is not None:
            document["proof"] = list(self.proof)
        return document


@dataclass
class SubmitResult:
    """What a submission produced: the receipt, findings, and what happened to incidents."""

    receipt: Receipt
    bundle_entry: Entry
    findings: list[Finding]
    finding_entries: list[Entry] = field(default_factory=list)
    duplicate: bool = False
    incidents: list[IncidentNotice] = field(default_factory=list)


@dataclass(frozen=True)
class PreparedBundle:
    """A bundle parsed, signed if asked and validated, before anything touches the ledger."""

    data: dict[str, Any]
    bundle: EvidenceBundle
    message: bytes
    submission_id: str
    file: str | None


def prepare_bundle(text: str | bytes, catalog: KpiCatalog, *, key: SigningKey | None = None,
                   file: str | None = None) -> PreparedBundle:
    """Parse, sign (with `key`) and validate a bundle without reading or writing the ledger.

    Lets a caller check every input of a batch before the first is appended.

    Raises:
        CharterError: invalid JSON or bundle, or no signature.
    """
    data = parse_json_strict(text, file)
    if not isinstance(data, dict):
        raise CharterError.single("bundle_schema", "a bundle is a JSON object", file=file, path="$")
    if key is not None:
        data = sign_bundle_data(data, key)
    bundle = EvidenceBundle.from_json_data(text, data, catalog, file=file)
    if bundle.signature is None:
        raise CharterError.single("unsigned_bundle", "the bundle has no signature; sign it with --key",
                                  file=file, path="$.signature")
    message = bundle_message(data)
    return PreparedBundle(data, bundle, message, "bundle:sha256:" + hashlib.sha256(message).hexdigest(), file)


@dataclass
class _Judgement:
    """A bundle evaluated against the ledger as it stood at `size`, before taking the write lock."""

    size: int
    system: AISystem
    findings: list[Finding]
    when: datetime.datetime
    policies: ActivePolicies
    graph: EscalationGraph
    escalation_seq: int


_COMPILERS: dict[int, tuple[KpiCatalog, PolicyCompiler]] = {}


def default_compiler(catalog: KpiCatalog) -> PolicyCompiler:
    """A compiler for `catalog` with the built-in control catalogs, made once per catalog."""
    held = _COMPILERS.get(id(catalog))
    if held is None or held[0] is not catalog:
        from .frameworks import load_frameworks

        held = (catalog, PolicyCompiler(catalog, load_frameworks()))
        _COMPILERS[id(catalog)] = held
    return held[1]


def evaluation_time_problem(measured_at: datetime.datetime, at: datetime.datetime) -> str | None:
    """Why `at` may not be a bundle's evaluation time, or None: never before its evidence was measured, when
    every rule would read "not yet available" and no breach could open an incident. A submitter may judge a
    bundle as of a later moment, e.g. as of when it was measured, which is how a backlog is submitted."""
    if at < measured_at:
        return (f"the evaluation time {format_time(at)} is before the bundle was measured "
                f"({format_time(measured_at)}): nothing could be judged")
    return None


def _check_evaluation_time(bundle: EvidenceBundle, at: datetime.datetime, file: str | None) -> None:
    problem = evaluation_time_problem(bundle.measured_at, at)
    if problem is not None:
        raise CharterError.single("bad_time", problem + "; judge it as of its measurement or later (--at)",
                                  file=file)


#: how much earlier than its arrival an evaluation may be judged without the time having been chosen (`--at`):
#: judging a large bundle and waiting for the write lock take time
CHOSEN_TIME_MARGIN = datetime.timedelta(minutes=5)


def evaluation_time_problems(ledger: LedgerReader, start: int = 0, stop: int | None = None) -> list[Problem]:
    """Evaluation entries from seq `start` on whose evaluation time `submit --at` would have refused (see
    `evaluation_time_problem`): a time chosen (well before the entry's arrival) before the bundle was measured.

    An evaluation judged at the ledger's clock is left alone: a clock behind the bundle's measurement
    is the clock's matter, not a choice of the submitter's."""
    measured: dict[int, str] = {}
    problems = []
    for entry in ledger.entries(0, stop, types=(BUNDLE, EVALUATION)):
        p = entry.payload
        if entry.type == BUNDLE:
            measured[entry.seq] = str(p.get("measured_at"))
            continue
        if entry.seq < start:
            continue
        try:
            bundle_seq = int(p["bundle"]["seq"])
            evaluated = _aware(str(p["evaluated_at"]))
            chosen = evaluated < _aware(entry.received_at) - CHOSEN_TIME_MARGIN
            problem = evaluation_time_problem(_aware(measured[bundle_seq]), evaluated) if chosen else None
        except (KeyError, TypeError, ValueError) as exc:
            problem = f"the evaluation's times cannot be read: {type(exc).__name__}: {exc}"
        if problem is not None:
            problems.append(Problem(entry.seq, "bad_evaluation_time", problem))
    return problems


def _aware(text: str) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment


def _judge(ledger: Ledger, prepared: PreparedBundle, catalog: KpiCatalog, compiler: PolicyCompiler,
           at: datetime.datetime | None, size: int) -> _Judgement:
    """Evaluate against what was in force, the registry, keys and history of the first `size` entries (no lock held)."""
    bundle, file = prepared.bundle, prepared.file
    system = registry_in_ledger(ledger, size).require(bundle.system_id, file=file)
    _check_signer(ledger, bundle, system, prepared.message, size, file)
    policies = active_policies(ledger, compiler, size)
    graph, escalation_seq = active_escalation(ledger, size)
    history = [EvidenceBundle.from_data(e.payload, catalog)
               for e in ledger.entries(0, size, types=(BUNDLE,), subject=system.id)]
    when = at or ledger.clock()
    findings = evaluate_bundle(system, bundle, policies.policy_set.policies, when, history)
    return _Judgement(size, system, findings, when, policies, graph, escalation_seq)


#: Entry types that can change how a bundle is judged: what is in force, its system, keys, its history.
_JUDGEMENT_INPUTS = (SYSTEM_REGISTERED, KEY_ADDED, KEY_REVOKED, BUNDLE, POLICY_ACTIVATED, ESCALATION_ACTIVATED,
                     GOVERNANCE_CONFIG)


def _still_valid(ledger: Ledger, judgement: _Judgement, head: int) -> bool:
    """Whether entries appended since the judgement leave its inputs unchanged."""
    if head == judgement.size:
        return True
    for entry in ledger.entries(judgement.size, head, types=_JUDGEMENT_INPUTS):
        if entry.type != BUNDLE or entry.subject == judgement.system.id:
            return False
    return True


def submit_bundle(ledger: Ledger, text: str | bytes | PreparedBundle, catalog: KpiCatalog, *,
                  compiler: PolicyCompiler | None = None, key: SigningKey | None = None, file: str | None = None,
                  at: datetime.datetime | None = None) -> SubmitResult:
    """Validate, check the signature, evaluate and append a bundle with its findings and incidents.

    The bundle is judged against the policy set and the escalation configuration in force in the
    ledger (never a folder the submitter names), before the ledger's write lock is taken; under the
    lock the append checks that nothing it was judged by (what is in force, the system's
    registration, keys, the system's earlier bundles) changed meanwhile, and judges it again if
    something did. Evaluation, however large the bundle, never holds up other writers.

    Args:
        ledger: the ledger to append to.
        text: the bundle's JSON text, or a bundle already checked by `prepare_bundle`.
        catalog: KPIs the bundle is validated against.
        compiler: compiles the recorded policy versions (default: `default_compiler(catalog)`).
        key: the submitter's key, to sign the bundle now; without it the bundle must carry a signature.
        file: the bundle's file name, for error locations.
        at: the evaluation time; default: the ledger clock at evaluation.

    Raises:
        CharterError: bad bundle, unknown system, missing, bad, revoked or wrong-owner signature, or
            no policy set or escalation configuration in force. Nothing is appended then.
    """
    prepared = text if isinstance(text, PreparedBundle) else prepare_bundle(text, catalog, key=key, file=file)
    if at is not None:
        _check_evaluation_time(prepared.bundle, at, file)
    compiler = compiler or default_compiler(catalog)
    bundle, file, submission_id = prepared.bundle, prepared.file, prepared.submission_id
    existing = ledger.by_submission(submission_id)
    if existing is not None:
        # A resubmission must still be genuinely signed by the owner; revocation since does not matter.
        system = registry_in_ledger(ledger).require(bundle.system_id, file=file)
        _check_signer(ledger, bundle, system, prepared.message, ledger.size(), file, check_revocation=False)
        return _existing_result(ledger, existing)
    unsigned = {k: v for k, v in prepared.data.items() if k != "signature"}
    judgement = _judge(ledger, prepared, catalog, compiler, at, ledger.size())
    outcome: dict[str, Any] = {}

    def build(next_seq: int) -> list[NewEntry]:
        nonlocal judgement
        if ledger.by_submission(submission_id) is not None:
            outcome["duplicate"] = True  # an identical submission landed while we waited for the lock
            return []
        if not _still_valid(ledger, judgement, next_seq):
            judgement = _judge(ledger, prepared, catalog, compiler, at, next_seq)
        system, findings, when, graph = judgement.system, judgement.findings, judgement.when, judgement.graph
        outcome["findings"], outcome["graph"] = findings, graph
        policies = judgement.policies
        entries = [NewEntry(BUNDLE, unsigned, submission_id, subject=system.id,
                            key_id=bundle.signature.key_id if bundle.signature else None,
                            signature=bundle.signature.value if bundle.signature else None)]

        def bundle_ref(done: list[Entry]) -> dict[str, Any]:
            return {"seq": done[0].seq, "record_hash": done[0].record_hash.hex()}

        policy_list = [{"id": p.policy.id, "version": p.policy.version, "digest": p.digest}
                       for p in policies.policy_set.policies]
        entries.append(NewEntry(EVALUATION, lambda done: {
            "bundle": bundle_ref(done), "evaluated_at": when.isoformat(), "policies": policy_list,
            "policy_seqs": dict(sorted(policies.published.items())),
            "policy_activation": policies.activation_seq, "escalation": judgement.escalation_seq,
            "findings": len(findings), "statuses": status_summary(findings)},
            f"evaluation:{submission_id}", subject=system.id))
        first_finding = len(entries)
        for index, finding in enumerate(findings):
            entries.append(NewEntry(FINDING, _finding_payload(finding, bundle_ref, policies.published),
                                    f"finding:{submission_id}:{index}", subject=system.id))

        def finding_ref(done: list[Entry], index: int) -> dict[str, Any]:
            return {"seq": done[first_finding + index].seq,
                    "record_hash": done[first_finding + index].record_hash.hex()}

        book = books.advanced_to(ledger, next_seq)
        outcome["book"] = book
        entries += incident_entries(book, graph, system,
                                    [(i, f.model_dump(mode="json")) for i, f in enumerate(findings)
                                     if f.status is Status.BREACH],
                                    ledger.stamp(), finding_ref)
        return entries

    books = kept_book(ledger)
    # The cached book is advanced and extended under this lock, from the build (under the ledger's
    # write lock) until the appended entries are folded into it; a failure drops it.
    with books.lock:
        try:
            appended = ledger.append(build)
            touched = [e for e in appended if e.type in INCIDENT_TYPES]
            if appended:
                for entry in touched:
                    apply(outcome["book"], entry)
                books.size = appended[-1].seq + 1
                notices = incident_notices(outcome["book"], outcome["graph"], touched)
        except BaseException:
            books.invalidate()
            raise
    if outcome.get("duplicate"):
        duplicate = ledger.by_submission(submission_id)
        assert duplicate is not None
        return _existing_result(ledger, duplicate)
    bundle_entry = next(e for e in appended if e.type == BUNDLE)
    return SubmitResult(Receipt.of(ledger, bundle_entry), bundle_entry, outcome["findings"],
                        [e for e in appended if e.type == FINDING], incidents=notices)


def status_summary(findings: Sequence[Finding]) -> list[str]:
    """One line per finding, in finding order: ``policy/rule[@segment] status severity``.

    Stored in the evaluation entry, so that back-testing compares with one entry per bundle rather
    than reading every finding; it is written in the same transaction as the findings it sums up,
    and `replay` checks it. Ids and segment keys hold no spaces and ids no ``@``, so a line parses
    back unambiguously (`parse_summary_line`).
    """
    return [summary_line(f.rule_ref, f.segment, f.status.value, f.severity.value) for f in findings]


def summary_line(rule_ref: str, segment: str | None, status: str, severity: str) -> str:
    """One line of `status_summary`."""
    return f"{rule_ref}@{segment} {status} {severity}" if segment else f"{rule_ref} {status} {severity}"


def parse_summary_line(line: str) -> tuple[str, str | None, str, str]:
    """(rule ref, segment or None, status, severity) of a `status_summary` line."""
    head, status, severity = line.rsplit(" ", 2)
    rule_ref, _, segment = head.partition("@")
    return rule_ref, segment or None, status, severity


def _finding_payload(finding: Finding, bundle_ref: Any, published: dict[str, int]) -> Any:
    def build(done: list[Entry]) -> dict[str, Any]:
        payload = finding.model_dump(mode="json")
        payload["refs"] = {"bundle": bundle_ref(done),
                           "policy": {"digest": finding.policy_digest, "seq": published[finding.policy_digest]}}
        return payload
    return build


def _check_signer(ledger: Ledger, bundle: EvidenceBundle, system: AISystem, message: bytes, next_seq: int,
                  file: str | None, check_revocation: bool = True) -> None:
    assert bundle.signature is not None
    key_id = bundle.signature.key_id
    record = key_record(ledger, key_id, next_seq)
    where = {"file": file, "path": "$.signature.key_id"}
    if record is None:
        raise CharterError.single("unknown_key", f"key {key_id} is not registered; register it with "
                                  "`charter keys register`", **where)
    if check_revocation and not record.valid_at(next_seq):
        raise CharterError.single("revoked_key", f"key {key_id} of {record.principal!r} was revoked at seq "
                                  f"{record.revoked_seq} ({record.reason})", **where)
    if record.principal != system.owner:
        raise CharterError.single("wrong_owner", f"signed by {record.principal!r}, but {system.id!r} is owned by "
                                  f"{system.owner!r}; only the owner's keys may submit its evidence", **where)
    if not verify_signature(record.public, BUNDLE_CONTEXT, message, bundle.signature.value):
        raise CharterError.single("bad_signature", "the signature does not match the bundle: it was changed after "
                                  "signing, or signed with another key", file=file, path="$.signature.value")


def _existing_result(ledger: Ledger, entry: Entry) -> SubmitResult:
    findings = [Finding.model_validate(_without_refs(e.payload))
                for e in _findings_after(ledger, entry)]
    return SubmitResult(Receipt.of(ledger, entry), entry, findings, duplicate=True)


def _findings_after(ledger: LedgerReader, bundle_entry: Entry) -> list[Entry]:
    found = []
    for entry in ledger.entries(bundle_entry.seq + 1, None, subject=bundle_entry.subject):
        if entry.type == EVALUATION:
            continue
        if entry.type != FINDING or entry.payload["refs"]["bundle"]["seq"] != bundle_entry.seq:
            break
        found.append(entry)
    return found


# -- replay --------------------------------------------------------------------------------------


@dataclass
class ReplayResult:
    """The outcome of re-deriving a bundle's findings."""

    bundle_seq: int
    stored: list[dict[str, Any]]
    replayed: list[dict[str, Any]]
    #: the evaluation entry's status summary (None in ledgers written before it existed)
    summary: list[str] | None = None
    #: the re-derived findings themselves (`replayed` is their JSON form), kept so that comparing
    #: needs no rebuilding; None when only `replayed` is known
    findings: list[Finding] | None = field(default=None, repr=False, compare=False)
    #: the bundle as replay parsed it, for a caller that keeps the subject's history
    bundle: EvidenceBundle | None = field(default=None, repr=False, compare=False)

    def replayed_findings(self) -> list[Finding]:
        """The re-derived findings as objects (rebuilt from `replayed` only when they were not kept)."""
        if self.findings is not None:
            return self.findings
        return [Finding.model_validate(f) for f in self.replayed]

    @property
    def summary_matches(self) -> bool:
        """Whether the evaluation entry's status summary agrees with the re-derived findings."""
        return self.summary is None or self.summary == status_summary(self.replayed_findings())

    @property
    def matches(self) -> bool:
        """Whether the re-derived findings equal the stored ones exactly, and the summary agrees."""
        return self.stored == self.replayed and self.summary_matches

    def differences(self) -> list[str]:
        """Human-readable differences, one per finding that differs."""
        out = []
        for index in range(max(len(self.stored), len(self.replayed))):
            old = self.stored[index] if index < len(self.stored) else None
            new = self.replayed[index] if index < len(self.replayed) else None
            if old != new:
                name = (old or new or {}).get("rule", "?")
                fields = sorted(k for k in set(old or {}) | set(new or {}) if (old or {}).get(k) != (new or {}).get(k))
                out.append(f"finding {index} ({name}): differs in {', '.join(fields)}")
        if not self.summary_matches:
            out.append("the evaluation entry's status summary differs from the findings")
        return out


def replay(ledger: LedgerReader, seq: int, catalog: KpiCatalog, compiler: PolicyCompiler, *,
           history: Sequence[EvidenceBundle] | None = None, system: AISystem | None = None) -> ReplayResult:
    """Re-evaluate the bundle at `seq` under its recorded policy versions, system and history.

    Args:
        history: the bundles of the bundle's subject before `seq`, parsed, as read by default
            (``entries(0, seq, types=(BUNDLE,), subject=...)``): a caller replaying every bundle in
            seq order keeps one list per subject and extends it, instead of each replay parsing all
            earlier bundles again (which makes replaying a whole ledger quadratic).
        system: the system as registered before `seq` (``registry_in_ledger(ledger, seq)``), likewise.

    Raises:
        CharterError: no bundle at `seq`, or its evaluation record is missing.
    """
    entry = ledger.entry(seq)
    if entry is None or entry.type != BUNDLE:
        raise CharterError.single("no_bundle", f"entry {seq} is not a bundle")
    bundle = EvidenceBundle.from_data(entry.payload, catalog)
    evaluation = next((e for e in ledger.entries(seq + 1, None, types=(EVALUATION,), subject=entry.subject)
                       if e.payload["bundle"]["seq"] == seq), None)
    if evaluation is None:
        raise CharterError.single("no_evaluation", f"no evaluation record for the bundle at {seq}")
    record = evaluation.payload
    documents = []
    for digest, policy_seq in sorted(record["policy_seqs"].items(), key=lambda kv: kv[1]):
        published = ledger.entry(policy_seq)
        if published is None or published.payload["digest"] != digest:
            raise CharterError.single("no_policy", f"policy version {digest} is not at seq {policy_seq}")
        documents.append((published.payload["document"], SourceMap(f"ledger seq {policy_seq}")))
    policy_set = compiler.compile_documents(documents)
    if system is None or system.id != bundle.system_id:
        system = registry_in_ledger(ledger, seq).require(bundle.system_id)
    if history is None:
        history = [EvidenceBundle.from_data(e.payload, catalog)
                   for e in ledger.entries(0, seq, types=(BUNDLE,), subject=entry.subject)]
    at = datetime.datetime.fromisoformat(record["evaluated_at"])
    findings = evaluate_bundle(system, bundle, policy_set.policies, at, history)
    replayed = [f.model_dump(mode="json") for f in findings]
    stored = [_without_refs(e.payload) for e in _findings_after(ledger, entry)]
    return ReplayResult(seq, stored, replayed, record.get("statuses"), findings=findings, bundle=bundle)


def _without_refs(payload: dict[str, Any]) -> dict[str, Any]:
    finding = dict(payload)  # copied whole and trimmed: several times quicker than a comprehension
    finding.pop("refs", None)
    return finding


def bundles_for(ledger: Ledger, system_id: str) -> Iterable[Entry]:
    """The bundle entries of one system, oldest first."""
    return ledger.entries(0, None, types=(BUNDLE,), subject=system_id)
