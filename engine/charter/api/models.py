"""The API's request and response documents (pydantic): they generate the OpenAPI 3.1 description."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..evaluate import Finding

__all__ = [
    "BundleResult",
    "CheckpointItem",
    "ConsistencyProofModel",
    "EntryItem",
    "EntryPage",
    "FindingItem",
    "FindingPage",
    "Health",
    "IncidentDetail",
    "IncidentItem",
    "IncidentMetrics",
    "IncidentPage",
    "InclusionProofModel",
    "KeyItem",
    "LedgerHead",
    "Page",
    "PolicyItem",
    "PolicySetInForce",
    "Readiness",
    "ReceiptModel",
    "ReportIssue",
    "ReportItem",
    "SignedStatementIn",
    "StatementResult",
    "SystemItem",
    "TokenItem",
    "VerifyResult",
    "WaiverItem",
    "WhoAmI",
]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(_Out):
    """Liveness: the process answers."""

    status: str = "ok"


class Readiness(_Out):
    """Readiness: the database answers and the ledger's head is readable."""

    status: str
    ledger_size: int
    head_hash: str


class WhoAmI(_Out):
    """The authenticated caller and what the ledger says they are."""

    principal: str
    origin: str = Field(description="The log's origin: every signed statement names it.")
    method: str = Field(description="token or oidc")
    scopes: list[str]
    token_id: str | None = None
    issuer: str | None = None
    subject: str | None = None
    roles: list[str] = Field(description="admin, authority roles, escalation:<role>, system_owner")
    owns: list[str] = Field(description="Systems the caller owns.")


class ReceiptModel(_Out):
    """The log's signed promise that an entry is in the ledger (checked offline by `charter.ledger.auditor`)."""

    log: str
    seq: int
    record_hash: str
    received_at: str
    log_key_id: str
    signature: str
    range: dict[str, Any] | None = None
    proof: list[str] | None = None


class FindingItem(_Out):
    """A recorded finding: one rule's verdict on one bundle (and segment)."""

    seq: int
    system_id: str
    policy: str
    policy_version: str
    rule: str
    title: str
    segment: str | None = None
    status: str
    severity: str
    window_start: str
    window_end: str
    evaluated_at: str
    observed: dict[str, float | str | None]
    thresholds: dict[str, float]
    controls: list[str]
    explanation: str


class IncidentNoticeModel(_Out):
    """What a submission did to an incident, with the next step's deadline and who is paged."""

    incident_id: str
    action: str
    system: str
    rule: str
    segment: str | None
    severity: str
    state: str
    next_step: str | None
    due_at: str | None
    paged: list[dict[str, Any]]


class BundleResult(_Out):
    """A submission's outcome: the bundle's receipt, its findings, the incidents it opened or touched."""

    receipt: ReceiptModel
    duplicate: bool = Field(description="The bundle was already in the ledger: this is its first receipt.")
    findings: list[Finding]
    incidents: list[IncidentNoticeModel]


class SignedStatementIn(BaseModel):
    """A governance change signed by its actor (`charter ... --sign-only` writes these)."""

    model_config = ConfigDict(extra="forbid")
    log: str
    type: str
    statement: dict[str, Any]
    key_id: str
    signature: str


class StatementResult(_Out):
    """Where a signed statement landed."""

    seq: int
    type: str
    record_hash: str
    submission_id: str
    duplicate: bool = Field(description="Nothing was appended: the statement was recorded before, or (`unchanged`) "
                            "what it asks for is in force already; the entry given is the one that holds it.")
    unchanged: bool = Field(default=False, description="The change was in force already (e.g. activating the "
                            "configuration in force): the entry given is the one in force, not this statement's.")
    receipt: ReceiptModel
    paged: list[str] | None = Field(default=None, description="For a serious-incident classification: the "
                                    "reporting role's members paged at once (and deliveries that failed).")


class SystemItem(_Out):
    """A registered AI system (its registration as the ledger holds it)."""

    id: str
    registration: dict[str, Any]


class IncidentItem(_Out):
    """An incident in a listing."""

    id: str
    seq: int = Field(description="The seq of the entry that opened it (the pagination cursor).")
    system: str
    rule: str
    segment: str | None
    severity: str
    tier: str
    state: str
    opened_at: str
    level: int
    escalated_to: list[str]
    decisions: list[str]
    next: dict[str, str] | None


class IncidentDetail(IncidentItem):
    """An incident with the findings behind it and its timeline of transitions."""

    title: str
    findings: list[int]
    timeline: list[dict[str, Any]]
    classification: dict[str, Any] | None


class WaiverItem(_Out):
    """An accepted risk."""

    id: str
    incident_id: str
    system: str
    rule: str
    segment: str | None
    owner: str
    granted_at: str
    expires_at: str


class KeyItem(_Out):
    """A registered key."""

    key_id: str
    principal: str
    added_seq: int
    revoked_seq: int | None
    reason: str | None


class PendingKeyItem(_Out):
    """A key awaiting administrators' approval: it signs nothing until `needed` of them approved it."""

    key_id: str
    principal: str
    approved_by: list[str] = Field(description="The administrators in force who approved it so far.")
    needed: int = Field(description="How many administrators must approve it (key_approvals).")


class TokenItem(_Out):
    """An API token, without its secret."""

    token_id: str
    principal: str
    scopes: list[str]
    expires_at: str
    created_seq: int
    revoked_seq: int | None
    status: str


class PolicyItem(_Out):
    """A policy version in force."""

    id: str
    version: str
    digest: str
    published_seq: int


class PolicySetInForce(_Out):
    """The policy set in force and the escalation configuration evaluation uses."""

    activation_seq: int
    policies: list[PolicyItem]
    escalation_seq: int | None


class ReportIssue(BaseModel):
    """What report to issue."""

    model_config = ConfigDict(extra="forbid")
    framework: str = Field(description="iso-42001, eu-ai-act, nist-ai-rmf or nist-ai-600-1")
    formats: list[str] = Field(default=["html"], min_length=1, max_length=4, description="html, md, json, oscal")
    system: str | None = Field(default=None, max_length=255)
    at: str | None = Field(default=None, max_length=64, description="ISO 8601 time the report describes "
                           "(default: now).")


class ReportItem(_Out):
    """An issued report file."""

    seq: int
    name: str
    format: str
    framework: str | None
    sha256: str
    issued_at: str
    download: str | None = Field(description="Where this service keeps the file, if it issued it.")


class ReportVerdictModel(_Out):
    """A report file's verification."""

    ok: bool
    checked: list[str]
    problems: list[str]


class LedgerHead(_Out):
    """The ledger's size, head hash and newest signed checkpoint."""

    origin: str
    size: int
    head_hash: str
    checkpoint: str | None


class VerifyResult(_Out):
    """The outcome of verifying the ledger."""

    ok: bool
    summary: str
    entries: int
    problems: list[str]


class CheckpointItem(_Out):
    """A signed checkpoint (C2SP note)."""

    size: int
    root_hash: str
    note: str


class EntryItem(_Out):
    """A ledger entry: its body as stored, its record hash, and who asked for it through the service."""

    seq: int
    type: str
    record_hash: str
    body: dict[str, Any]


class Page(_Out):
    """A page of a listing; pass `next_cursor` as `cursor` for the next one (null: no more)."""

    items: list[Any]
    next_cursor: str | None


class FindingPage(Page):
    """A page of recorded findings."""

    items: list[FindingItem]


class IncidentPage(Page):
    """A page of incidents."""

    items: list[IncidentItem]


class EntryPage(Page):
    """A page of ledger entries."""

    items: list[EntryItem]


class InclusionProofModel(_Out):
    """An RFC 9162 inclusion proof of an entry against a signed checkpoint (hashes in base64)."""

    leaf_index: int
    tree_size: int
    record_hash: str
    hashes: list[str]
    checkpoint: str = Field(description="The signed checkpoint note the proof is against.")


class ConsistencyProofModel(_Out):
    """An RFC 9162 consistency proof between two signed checkpoints (hashes in base64)."""

    old_size: int
    new_size: int
    hashes: list[str]
    old_checkpoint: str
    new_checkpoint: str


class IncidentMetrics(_Out):
    """MTTD, MTTA, time to decision, MTTR and Art. 73 filing times per scope (portfolio and each system)."""

    scopes: dict[str, dict[str, Any]] = Field(description="scope -> metric -> statistics (median, p90, counts).")
    reporting: dict[str, dict[str, int]] = Field(description="scope -> serious incidents by reporting outcome.")
    rejected: list[dict[str, Any]] = Field(description="Durations left out (negative: clock skew or bad data).")
