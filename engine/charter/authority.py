"""Who may change governance state: the trust root, signed changes, and what is in force.

The ledger's entry 0 is the governance configuration: administrators with their public keys, how
many of them must approve a change of the configuration (the threshold), and who holds each
authority role (policy authors and approvers, system registrars). Every later change of governance
state is a statement signed by its actor's registered key; the ledger store refuses an entry the
configuration in force does not allow (`charter.ledger.auditor.Authority`, the same rule `verify`
applies afterwards), so nothing unauthorized is written.

Evaluation uses only what is in force: the policy set and the escalation configuration that an
approver activated in the ledger. A policy folder or an escalation file is a proposal until then.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._sources import SourceMap, load_yaml_file
from .errors import CharterError
from .ledger.auditor import (
    ACTION_CONTEXT,
    AUTHORITY_ROLES,
    ENDORSEMENT_CONTEXT,
    ESCALATION_ACTIVATED,
    GOVERNANCE_CONFIG,
    INCIDENT_TRANSITION,
    POLICY_ACTIVATED,
    POLICY_PUBLISHED,
    POSSESSION_CONTEXT,
    Authority,
    ControlCatalog,
    action_message,
    document_digest,
    possession_message,
    statement_id,
    verify_signature,
)
from .ledger.keys import SigningKey, check_principal, key_id_of, load_public_key_file
from .ledger.records import Entry, LedgerReader, NewEntry, format_time
from .ledger.store import Ledger
from .validation import collect_validation_errors

if TYPE_CHECKING:
    from .escalation import EscalationGraph
    from .kpis import KpiCatalog
    from .policy.compiler import PolicyCompiler, PolicySet

__all__ = [
    "AUTHORITY_ROLES",
    "ActivePolicies",
    "GovernanceConfig",
    "KeyRequest",
    "SignedStatement",
    "Signer",
    "StepUpStatement",
    "activate_escalation",
    "activate_policies",
    "active_catalog",
    "active_escalation",
    "active_policies",
    "check_catalog_in_force",
    "init_governance",
    "load_governance",
    "nonce_of",
    "principal_of",
    "publish_policies",
    "reading_catalog",
    "recorded_custom_kpis",
    "signed_entry",
    "update_governance",
]


# -- the governance configuration ------------------------------------------------------------------


class Administrator(BaseModel):
    """An administrator and the public key its approvals are checked with."""

    model_config = ConfigDict(extra="forbid")
    principal: str
    public_key: str = Field(description="Base64 of the raw 32-byte Ed25519 public key.")

    @field_validator("principal")
    @classmethod
    def _principal(cls, value: str) -> str:
        try:
            return check_principal(value)
        except CharterError as exc:
            raise ValueError(exc.diagnostics[0].message) from exc

    @field_validator("public_key")
    @classmethod
    def _public_key(cls, value: str) -> str:
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError as exc:
            raise ValueError("not base64") from exc
        if len(raw) != 32:
            raise ValueError(f"an Ed25519 public key has 32 bytes, not {len(raw)}")
        return value


class IdentityProvider(BaseModel):
    """An OpenID Connect provider whose ID tokens may prove a transition (`charter.ledger.auditor.step_up_problem`)."""

    model_config = ConfigDict(extra="forbid")
    issuer: str = Field(min_length=1, max_length=500)
    audience: str = Field(min_length=1, max_length=500)
    principal_claim: str = Field(default="sub", min_length=1, max_length=100)
    leeway_seconds: int = Field(default=30, ge=0, le=300)
    jwks: dict[str, Any] = Field(description="The provider's public signing keys (a JWKS), pinned: an ID token "
                                 "proves a transition only when signed by one of them; rotating them is a change "
                                 "of this configuration")

    @field_validator("jwks")
    @classmethod
    def _jwks(cls, value: dict[str, Any]) -> dict[str, Any]:
        from .ledger.auditor import _pinned_keys_problem

        problem = _pinned_keys_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class GovernanceConfig(BaseModel):
    """Administrators, their threshold, and the holders of each authority role."""

    model_config = ConfigDict(extra="forbid")
    administrators: list[Administrator] = Field(min_length=1)
    threshold: int = Field(ge=1, description="How many administrators must approve a change of this configuration.")
    key_approvals: int | None = Field(default=None, ge=1, description=(
        "How many administrators must approve a key its principal's own keys do not endorse (a principal's "
        "first key, or one after all theirs were revoked). Default: the threshold, so that no administrator "
        "alone can make an identity for someone whom the threshold protects. Recorded explicitly."))
    roles: dict[str, list[str]] = Field(default_factory=dict)
    identity_providers: list[IdentityProvider] = Field(
        default_factory=list, description="OpenID Connect providers whose step-up sign-ins prove incident "
        "transitions (instead of a key signature): the ledger trusts no other.")

    @field_validator("roles")
    @classmethod
    def _roles(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(value) - set(AUTHORITY_ROLES))
        if unknown:
            raise ValueError(f"unknown role {unknown[0]!r}; roles are {', '.join(AUTHORITY_ROLES)}")
        return {role: sorted(set(members)) for role, members in sorted(value.items())}

    def require_approvals(self, keys: Sequence[SigningKey]) -> None:
        """Refuse unless `keys` belong to at least `threshold` of this configuration's administrators.

        Raises:
            CharterError: ``not_authorized``, naming who approved and who else could.
        """
        by_public = {base64.b64decode(a.public_key): a.principal for a in self.administrators}
        approved = sorted({by_public[k.public] for k in keys if k.public in by_public})
        if len(approved) < self.threshold:
            raise CharterError.single("not_authorized", f"the configuration needs {self.threshold} of its "
                                      f"administrators ({', '.join(sorted(by_public.values()))}) to approve it; "
                                      f"{len(approved)} did ({', '.join(approved) or 'none'}): give each with "
                                      "--admin-key")

    @property
    def needed_key_approvals(self) -> int:
        """How many administrators must approve a principal's first key: `key_approvals`, else the threshold."""
        return self.threshold if self.key_approvals is None else self.key_approvals

    def lockout_warnings(self) -> list[str]:
        """What in this configuration one lost, withheld or compromised administrator key could block for good."""
        count = len(self.administrators)
        if count < 2:
            return []
        warnings = []
        if self.threshold == count:
            warnings.append(f"all {count} administrators must approve a change of the configuration: one lost or "
                            "withheld key blocks every change for good; keep at least one administrator spare")
        if self.needed_key_approvals == count:
            warnings.append(f"all {count} administrators must approve a principal's first key: one unavailable "
                            "administrator blocks every new identity (and one who revokes a principal's keys "
                            "keeps them out); keep at least one administrator spare")
        return warnings

    def document(self) -> dict[str, Any]:
        """The JSON form recorded in the ledger (and checked by the standalone verifier)."""
        admins = sorted(self.administrators, key=lambda a: a.principal)
        if len({a.principal for a in admins}) != len(admins):
            raise CharterError.single("governance_config", "an administrator is listed twice", path="$.administrators")
        if self.threshold > len(admins):
            raise CharterError.single("governance_config", f"threshold {self.threshold} exceeds the "
                                      f"{len(admins)} administrators", path="$.threshold")
        key_approvals = self.needed_key_approvals
        if key_approvals > len(admins):
            raise CharterError.single("governance_config", f"key_approvals {key_approvals} exceeds the "
                                      f"{len(admins)} administrators", path="$.key_approvals")
        document: dict[str, Any] = {"administrators": [a.model_dump() for a in admins], "threshold": self.threshold,
                                    "key_approvals": key_approvals, "roles": self.roles}
        if self.identity_providers:  # absent rather than empty: configurations without it keep their digests
            document["identity_providers"] = [p.model_dump() for p in self.identity_providers]
        return document


def load_governance(path: Path) -> GovernanceConfig:
    """Read a governance file (YAML): administrators with ``public_key`` or ``public_key_file``.

    ``public_key_file`` names a ``.pub`` file written by ``charter keys generate``, relative to the
    governance file; its principal must be the administrator's.

    Raises:
        CharterError: unreadable file, bad schema (with line numbers), or a key file of another principal.
    """
    data, smap = load_yaml_file(path)
    if not isinstance(data, dict):
        raise CharterError.single("governance_config", "a governance file is a mapping", file=str(path), line=1)
    for index, admin in enumerate(data.get("administrators") or []):
        if isinstance(admin, dict) and "public_key_file" in admin:
            key_path = path.parent / str(admin.pop("public_key_file"))
            principal, public = load_public_key_file(key_path)
            if principal != admin.get("principal"):
                raise CharterError.single("governance_config", f"{key_path} holds the key of {principal!r}, not "
                                          f"of {admin.get('principal')!r}", file=str(path),
                                          line=smap.line_of(["administrators", index]))
            admin["public_key"] = base64.b64encode(public).decode()
    try:
        return GovernanceConfig.model_validate(data)
    except ValidationError as exc:
        raise CharterError(collect_validation_errors(exc, smap, code="governance_config", file=str(path))) from exc


# -- signed changes --------------------------------------------------------------------------------


def principal_of(ledger: Ledger, key: SigningKey, size: int | None = None) -> str:
    """The principal `key` is registered to in the ledger: the actor it signs as.

    Raises:
        CharterError: ``unknown_key`` when the key is not registered, or was revoked.
    """
    authority = ledger.authority(size)
    record = authority.keys.get(key.key_id)
    if record is None:
        raise CharterError.single("unknown_key", f"key {key.key_id} is not registered in this ledger; an "
                                  "administrator registers it (`charter keys register`)")
    if record[3] is not None:
        raise CharterError.single("revoked_key", f"key {key.key_id} of {record[0]!r} was revoked at seq {record[3]}")
    return str(record[0])


@dataclass(frozen=True)
class SignedStatement:
    """A change an actor signed away from the log, for the log's operator to append (`charter ledger accept`).

    The actor never needs the log key: they sign with their own (``--sign-only FILE``), and the
    log checks the signature, the key's registration and the actor's role when it appends, as for
    a change signed on the spot.
    """

    log: str
    type: str
    statement: dict[str, Any]
    key_id: str
    signature: str

    @classmethod
    def sign(cls, origin: str, entry_type: str, fields: dict[str, Any], key: SigningKey,
             signed_at: str) -> SignedStatement:
        """`fields` signed by `key` as the principal its key file names (the log checks that claim)."""
        statement = {**fields, "actor": check_principal(key.principal), "signed_at": signed_at}
        return cls(origin, entry_type, statement, key.key_id,
                   key.sign(ACTION_CONTEXT, action_message(origin, entry_type, statement)))

    @property
    def submission_id(self) -> str:
        """The id the entry carrying this statement has: its digest, so it lands at most once."""
        return statement_id(self.log, self.type, self.statement)

    def fields(self) -> dict[str, Any]:
        """What the statement asks for, without who and when."""
        return {k: v for k, v in self.statement.items() if k not in ("actor", "signed_at")}

    def to_dict(self) -> dict[str, Any]:
        """The statement file's JSON."""
        return {"log": self.log, "type": self.type, "statement": self.statement, "key_id": self.key_id,
                "signature": self.signature}

    @classmethod
    def from_dict(cls, data: Any, file: str | None = None) -> SignedStatement:
        """Parse a statement file's JSON (the signature is checked when it is appended).

        Raises:
            CharterError: ``statement_file`` when a field is missing or mistyped.
        """
        shape = {"log": str, "type": str, "statement": dict, "key_id": str, "signature": str}
        if not isinstance(data, dict) or any(not isinstance(data.get(k), t) for k, t in shape.items()):
            raise CharterError.single("statement_file", "a signed statement has log, type, statement (an object), "
                                      "key_id and signature", file=file, path="$")
        if not isinstance(data["statement"].get("actor"), str) or not isinstance(data["statement"].get("signed_at"),
                                                                                 str):
            raise CharterError.single("statement_file", "the statement names no actor or signing time", file=file,
                                      path="$.statement")
        statement = cls(data["log"], data["type"], data["statement"], data["key_id"], data["signature"])
        try:
            statement.submission_id  # noqa: B018 - canonicalizes the statement: refuse what cannot be signed JSON
        except (ValueError, TypeError, RecursionError) as exc:
            raise CharterError.single("statement_file", f"the statement is not canonical JSON (RFC 8785): {exc}",
                                      file=file, path="$.statement") from exc
        return statement


@dataclass(frozen=True)
class StepUpStatement(SignedStatement):
    """An incident transition proven by a step-up OpenID Connect sign-in instead of a key signature.

    The actor signed in with a provider named in the governance configuration, with the
    transition's digest (`nonce_of`) as the sign-in's ``nonce``; the entry records the ID token, and
    `charter verify` checks it offline against the provider keys the configuration pins. `key_id`
    and `signature` are empty: there is no key.
    """

    id_token: str = ""

    @classmethod
    def of(cls, origin: str, statement: dict[str, Any], id_token: str) -> StepUpStatement:
        """A transition statement (with actor and signing time) and its proof."""
        return cls(origin, INCIDENT_TRANSITION, statement, "", "", id_token)

    def proof(self) -> dict[str, Any]:
        """The ``proof`` field of the entry."""
        return {"method": "oidc", "id_token": self.id_token}


def nonce_of(origin: str, statement: dict[str, Any]) -> str:
    """The nonce a step-up sign-in for this transition statement must carry: the statement's digest."""
    return statement_id(origin, INCIDENT_TRANSITION, statement)


#: who signs a change: a key, now, or a statement signed (or proven by a step-up sign-in) earlier
Signer = SigningKey | SignedStatement


def signed_entry(ledger: Ledger, entry_type: str, fields: dict[str, Any], signer: Signer, *,
                 subject: str | None = None, derived: dict[str, Any] | None = None,
                 size: int | None = None) -> NewEntry:
    """An entry carrying `fields`, signed by `signer`: a key (as the principal the ledger registered
    it to, now), or a statement signed earlier that must ask for exactly `fields`.

    The statement is `fields` with the actor and the signing time; `derived` fields are added by
    the log and not signed. The submission id is the statement's digest, so a signed statement
    lands at most once however often it is handed in.

    Raises:
        CharterError: an unregistered or revoked key; a statement for another log or change.
    """
    if isinstance(signer, SignedStatement):
        if (signer.log, signer.type) != (ledger.origin, entry_type) or signer.fields() != fields:
            raise CharterError.single("statement_mismatch", f"the signed statement ({signer.type} for "
                                      f"{signer.log!r}) does not ask for this change to {ledger.origin!r}")
        statement, key_id, signature = signer.statement, signer.key_id, signer.signature
        if isinstance(signer, StepUpStatement):
            if entry_type != INCIDENT_TRANSITION:
                raise CharterError.single("statement_mismatch", "a step-up sign-in proves incident transitions only")
            return NewEntry(entry_type, {**statement, **(derived or {}), "proof": signer.proof()},
                            statement_id(ledger.origin, entry_type, statement), subject=subject)
    else:
        statement = {**fields, "actor": principal_of(ledger, signer, size), "signed_at": format_time(ledger.clock())}
        key_id = signer.key_id
        signature = signer.sign(ACTION_CONTEXT, action_message(ledger.origin, entry_type, statement))
    return NewEntry(entry_type, {**statement, **(derived or {})}, statement_id(ledger.origin, entry_type, statement),
                    subject=subject, key_id=key_id, signature=signature)


def _config_entry(ledger: Ledger, config: GovernanceConfig, approvers: Sequence[SigningKey]) -> NewEntry:
    statement = {"config": config.document(), "signed_at": format_time(ledger.clock()),
                 "supersedes": ledger.authority().config_seq if ledger.size() else None}
    message = action_message(ledger.origin, GOVERNANCE_CONFIG, statement)
    by_public = {a.public_key: a.principal for a in config.administrators}
    current = ledger.authority().admins() if ledger.size() else {}
    by_public.update({base64.b64encode(public).decode(): name for name, public in current.items()})
    approvals = []
    for key in approvers:
        principal = by_public.get(base64.b64encode(key.public).decode())
        if principal is None:
            raise CharterError.single("not_authorized", f"key {key.key_id} is no administrator's key, in the "
                                      "configuration in force or the new one")
        approvals.append({"principal": principal, "signature": key.sign(ACTION_CONTEXT, message)})
    approvals.sort(key=lambda a: a["principal"])
    return NewEntry(GOVERNANCE_CONFIG, {**statement, "approvals": approvals},
                    statement_id(ledger.origin, GOVERNANCE_CONFIG, statement))


def init_governance(ledger: Ledger, config: GovernanceConfig, approvers: Sequence[SigningKey]) -> Entry:
    """Record the trust root as entry 0, approved by at least `config.threshold` of its administrators.

    Raises:
        CharterError: the ledger already has entries, or too few administrators approved.
    """
    if ledger.size():
        raise CharterError.single("ledger_initialized", "this ledger already has its trust root; change the "
                                  "configuration with `charter governance update`")
    return ledger.append([_config_entry(ledger, config, approvers)])[0]


def update_governance(ledger: Ledger, config: GovernanceConfig, approvers: Sequence[SigningKey]) -> Entry:
    """Replace the configuration: a threshold of the current administrators and of the new ones must approve."""
    return ledger.append([_config_entry(ledger, config, approvers)])[0]


# -- keys ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyRequest:
    """A principal's request to register a public key, with proof that it holds the private key.

    A principal who already has a key endorses a request for another with it (`endorsement`:
    the key id and its signature over the same message): the log refuses a second key without it.
    """

    principal: str
    public: bytes
    possession: str
    endorsement: dict[str, str] | None = None

    @property
    def key_id(self) -> str:
        """The key id of the requested key."""
        return key_id_of(self.public)

    @classmethod
    def of(cls, key: SigningKey, origin: str, principal: str | None = None,
           endorse_with: SigningKey | None = None) -> KeyRequest:
        """The request `key`'s holder makes to register it for `principal` (default: the key file's) on
        `origin`, endorsed by a key they already hold if given."""
        name = check_principal(principal or key.principal)
        message = possession_message(origin, name, key.key_id)
        endorsement = None if endorse_with is None else {
            "key_id": endorse_with.key_id, "signature": endorse_with.sign(ENDORSEMENT_CONTEXT, message)}
        return cls(name, key.public, key.sign(POSSESSION_CONTEXT, message), endorsement)

    def fields(self) -> dict[str, Any]:
        """The request as recorded (what an administrator signs when registering it)."""
        fields: dict[str, Any] = {"key_id": self.key_id, "principal": self.principal,
                                  "public_key": base64.b64encode(self.public).decode(), "possession": self.possession}
        if self.endorsement is not None:
            fields["endorsement"] = self.endorsement
        return fields

    def to_dict(self, origin: str) -> dict[str, Any]:
        """The request file's JSON."""
        return {"log": origin, **self.fields()}

    @classmethod
    def from_dict(cls, data: Any, origin: str, file: str | None = None) -> KeyRequest:
        """Parse and check a request file's JSON for the log `origin`.

        Raises:
            CharterError: malformed, for another log, or a proof of possession that does not verify.
        """
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in
                                                 ("log", "principal", "public_key", "possession")):
            raise CharterError.single("key_request", "a key request has log, principal, public_key and possession",
                                      file=file, path="$")
        if data["log"] != origin:
            raise CharterError.single("key_request", f"the request is for log {data['log']!r}, not {origin!r}",
                                      file=file, path="$.log")
        endorsement = data.get("endorsement")
        if endorsement is not None and not (isinstance(endorsement, dict) and all(
                isinstance(endorsement.get(k), str) for k in ("key_id", "signature")) and len(endorsement) == 2):
            raise CharterError.single("key_request", "an endorsement has key_id and signature", file=file,
                                      path="$.endorsement")
        try:
            public = base64.b64decode(data["public_key"], validate=True)
        except ValueError as exc:
            raise CharterError.single("key_request", "public_key is not base64", file=file,
                                      path="$.public_key") from exc
        request = cls(check_principal(data["principal"]), public, data["possession"], endorsement)
        if len(public) != 32 or not verify_signature(public, POSSESSION_CONTEXT,
                                                     possession_message(origin, request.principal, request.key_id),
                                                     request.possession):
            raise CharterError.single("no_possession", "the proof of possession does not verify: the request was "
                                      "not made with the private key of this public key", file=file,
                                      path="$.possession")
        return request


# -- policy sets and escalation configurations -----------------------------------------------------


def publication_statement(policy_id: str, version: str, document: dict[str, Any]) -> dict[str, Any]:
    """What a policy author signs to publish a version: its id, version, document and the document's digest."""
    return {"id": policy_id, "version": version, "digest": document_digest(document), "document": document}


def activation_statement(digests: Sequence[str], supersedes: int | None,
                         kpis: dict[str, Any] | None = None,
                         controls: ControlCatalog | None = None) -> dict[str, Any]:
    """What an approver signs to put a policy set in force: its versions' digests, sorted, the seq of
    the set it replaces (so the statement cannot be replayed later to bring an old set back), the
    custom KPI catalog the set reads (`charter.kpis.custom_catalog_document`), when it has one, and the
    control catalog it was compiled with (`recorded_controls`), which evidence is then judged by."""
    statement: dict[str, Any] = {"policies": sorted(set(digests)), "supersedes": supersedes}
    if kpis is not None and kpis.get("kpis"):
        statement["kpis"] = {"digest": document_digest(kpis), "document": kpis}
    if controls is not None:
        statement["controls"] = recorded_controls(controls)
    return statement


def recorded_controls(controls: ControlCatalog) -> dict[str, Any]:
    """The form a policy activation records a control catalog in (`charter.ledger.auditor.controls_of`):
    the citable references and organisation-level controls, sorted, and the SHA-256 digest of the two."""
    lists = controls.to_dict()
    return {"digest": document_digest(lists), **lists}


def active_catalog(ledger: Ledger, before: int | None = None) -> KpiCatalog:
    """The KPI catalog in force before seq `before` (default: now): built-in plus the custom KPIs the
    policy activations recorded. Bundles are read with it, never with a catalog a caller brings.

    Raises:
        CharterError: a recorded custom KPI that is no valid definition (forced into the ledger).
    """
    from .kpis import recorded_catalog

    authority = ledger.authority(before)
    return recorded_catalog(authority.custom_kpis, f"custom KPIs of the activation at seq "
                            f"{authority.active_policies_seq}")


def reading_catalog(custom_kpis: dict[str, Any], kpis_file: Path | None, source: str) -> KpiCatalog:
    """The catalog a report, its verification or an audit reads recorded bundles with.

    The custom KPIs the ledger recorded (`custom_kpis`, id -> definition); a `kpis_file` named on the
    command line must hold exactly those. Only a ledger whose activations recorded no custom KPI (one
    activated before they were recorded) takes its custom KPIs from the file.

    Raises:
        CharterError: ``kpis_not_active`` for a file that differs from what the ledger recorded.
    """
    from .kpis import custom_catalog_document, load_catalog, recorded_catalog

    if kpis_file is not None and custom_kpis:
        _require_recorded(custom_kpis, custom_catalog_document(kpis_file), str(kpis_file),
                          "leave --kpis out: they are read from the ledger")
    if kpis_file is not None and not custom_kpis:
        return load_catalog(kpis_file)
    return recorded_catalog(custom_kpis, source)


def recorded_custom_kpis(ledger: LedgerReader) -> dict[str, Any]:
    """Custom KPI id -> definition, as the last policy activation of `ledger` recorded them (they only grow)."""
    from .ledger.auditor import custom_kpis_of

    last = list(ledger.entries(types=(POLICY_ACTIVATED,)))[-1:]
    return (custom_kpis_of(last[0].payload) or {}) if last else {}


def check_catalog_in_force(ledger: Ledger, document: dict[str, Any], file: str) -> None:
    """Refuse a custom KPI catalog (`custom_catalog_document`) other than the one in force.

    Raises:
        CharterError: ``kpis_not_active`` naming `file`.
    """
    _require_recorded(ledger.authority().custom_kpis, document, file, "drop the folder, or have the catalog "
                      "activated with the policies (`charter policy activate`)")


def _require_recorded(recorded: dict[str, Any], document: dict[str, Any], file: str, remedy: str) -> None:
    """Refuse a custom KPI catalog document whose definitions are not exactly the recorded ones."""
    if {kpi["id"]: kpi for kpi in document["kpis"]} != recorded:
        raise CharterError.single("kpis_not_active", "these custom KPIs are not the ones the ledger's policy "
                                  f"activation recorded ({', '.join(sorted(recorded)) or 'none'}); {remedy}",
                                  file=file)


def escalation_statement(document: dict[str, Any], supersedes: int | None) -> dict[str, Any]:
    """What an approver signs to put an escalation configuration in force: the document, its digest, and
    the seq of the configuration it replaces."""
    return {"digest": document_digest(document), "document": document, "supersedes": supersedes}


def _require_normalized(document: dict[str, Any], policy_id: str, version: str) -> None:
    """Refuse a policy document that is not in the form the compiler gives it (its digest would not be the
    digest findings cite), or is no valid policy at all."""
    from .policy.model import Policy

    try:
        normal = Policy.model_validate(document).model_dump(mode="json")
    except ValidationError as exc:
        raise CharterError.single("policy_schema", f"{policy_id} {version} is not a valid policy: "
                                  f"{exc.errors()[0]['msg']}") from exc
    if normal != document:
        raise CharterError.single("policy_not_normalized", f"{policy_id} {version} is not in its normalized form "
                                  "(publish what the compiler reads: `charter policy publish` does)")


def publish_policies(ledger: Ledger, documents: Iterable[tuple[str, str, dict[str, Any]]],
                     author: Signer) -> list[Entry]:
    """Propose policy versions ``(id, version, document)``: recorded, not yet in force.

    A version already published with the same document is skipped; with another document it is
    refused (``policy_conflict``): a policy version is identified by its digest.
    """
    def build(next_seq: int) -> list[NewEntry]:
        authority = ledger.authority(next_seq)
        entries = []
        for policy_id, version, document in documents:
            _require_normalized(document, policy_id, version)
            digest = document_digest(document)
            if digest in authority.policies:
                continue
            entries.append(signed_entry(ledger, POLICY_PUBLISHED, publication_statement(policy_id, version, document),
                                        author, subject=policy_id, size=next_seq))
        return entries
    return ledger.append(build)


def activate_policies(ledger: Ledger, digests: Sequence[str], approver: Signer,
                      kpis: dict[str, Any] | None = None, controls: ControlCatalog | None = None) -> Entry | None:
    """Put the policy versions `digests` in force as the whole policy set, reading the custom KPIs of `kpis`
    (`charter.kpis.custom_catalog_document`) and recording the control catalog `controls` the set was
    compiled with (`recorded_controls`; from then on evidence is judged by it, not by the catalogs of
    whoever verifies); None if exactly that set and those catalogs are already in force.

    Raises:
        CharterError: an invalid catalog, one that changes or drops a custom KPI recorded before
            (``custom_kpi_changed``), a control catalog other than the one this log judges evidence by
            (``control_catalog_mismatch``), or an approver who may not activate the set.
    """
    from .kpis import recorded_catalog

    recorded = None if controls is None else recorded_controls(controls)
    if recorded is not None and recorded != recorded_controls(ledger.controls):
        # Which controls only an evidence attester may evidence is Charter's catalog, not an approver's choice:
        # a statement signed with another catalog (an organisation list emptied, say) would hand that power
        # to every system owner.
        raise CharterError.single("control_catalog_mismatch", "the control catalog an activation records must be "
                                  "the one this log judges evidence by (its frameworks' citable and "
                                  "organisation-level controls); this one differs", path="$.controls")
    wanted = sorted(set(digests))
    custom = {kpi["id"]: kpi for kpi in (kpis or {}).get("kpis", [])} if isinstance(kpis, dict) else {}
    recorded_catalog(custom, "the custom KPI catalog")  # a valid definition of each, no built-in redefined

    def build(next_seq: int) -> list[NewEntry]:
        authority = ledger.authority(next_seq)
        if sorted(authority.active_policies) == wanted and authority.custom_kpis == custom and (
                recorded is None or authority.recorded_controls == recorded):
            return []
        return [signed_entry(ledger, POLICY_ACTIVATED, activation_statement(
            digests, authority.active_policies_seq, kpis, controls), approver, size=next_seq)]
    appended = ledger.append(build)
    return appended[0] if appended else None


def activate_escalation(ledger: Ledger, document: dict[str, Any], approver: Signer,
                        source: SourceMap | None = None) -> Entry | None:
    """Put an escalation configuration (the parsed YAML document) in force; None if exactly this one already is.

    The document is checked as `charter escalation check` does (schema and graph) before anything is
    recorded, and recorded as it was written, so what the approver reviewed is what the ledger holds.

    Raises:
        CharterError: schema or graph problems, a value JSON cannot hold, or an actor who may not activate it.
    """
    from .escalation import parse_escalation

    graph = parse_escalation(document, source or SourceMap("escalation"))
    problems = graph.check()
    if problems:
        raise CharterError(problems)
    try:
        digest = document_digest(document)
    except (TypeError, ValueError) as exc:
        raise CharterError.single("escalation_schema", f"the configuration holds a value JSON cannot record: {exc}",
                                  file=source.file if source else None) from exc

    def build(next_seq: int) -> list[NewEntry]:
        in_force = ledger.authority(next_seq).escalation_seq
        current = ledger.entry(in_force) if in_force is not None else None
        if current is not None and current.payload["digest"] == digest:
            return []
        return [signed_entry(ledger, ESCALATION_ACTIVATED, escalation_statement(document, in_force), approver,
                             size=next_seq)]
    appended = ledger.append(build)
    return appended[0] if appended else None


@dataclass(frozen=True)
class ActivePolicies:
    """The policy set in force: compiled, with the seq that activated it and each version's published seq."""

    policy_set: PolicySet
    activation_seq: int
    published: dict[str, int]
    compiler: PolicyCompiler


_COMPILED: dict[tuple[Any, ...], ActivePolicies] = {}


def active_policies(ledger: Ledger, compiler: PolicyCompiler, before: int | None = None) -> ActivePolicies:
    """The policy set in force before seq `before` (default: now), compiled from the recorded documents.

    Raises:
        CharterError: ``no_active_policies`` when no set was ever activated.
    """
    authority: Authority = ledger.authority(before)
    if authority.active_policies_seq is None:
        raise CharterError.single("no_active_policies", "no policy set is in force in this ledger: a policy author "
                                  "publishes it (`charter policy publish`) and an approver activates it "
                                  "(`charter policy activate`)")
    published = {digest: int(authority.policies[digest][3]) for digest in authority.active_policies}
    # Keyed by content, not by seq: two ledgers (or a ledger and its rewritten copy) may differ at the same seq.
    key = (tuple(sorted(published.items())), authority.active_policies_seq, id(compiler))
    cached = _COMPILED.get(key)
    if cached is not None and cached.compiler is compiler:
        return cached
    documents = []
    for digest, seq in sorted(published.items(), key=lambda item: item[1]):
        entry = ledger.entry(seq)
        assert entry is not None and entry.payload["digest"] == digest
        documents.append((entry.payload["document"], SourceMap(f"ledger seq {seq}")))
    policy_set = compiler.compile_documents(documents)
    if sorted(p.digest for p in policy_set.policies) != sorted(published):
        raise CharterError.single("policy_digest_mismatch", "the policy set in force does not compile to the "
                                  "versions recorded (a document was published in another form than its compiled "
                                  "one); publish and activate it again")
    result = ActivePolicies(policy_set, authority.active_policies_seq, published, compiler)
    if len(_COMPILED) > 16:
        _COMPILED.clear()
    _COMPILED[key] = result
    return result


_GRAPHS: dict[bytes, EscalationGraph] = {}


def escalation_at(entry: Entry) -> EscalationGraph:
    """The escalation graph an ``escalation.activated`` entry put in force."""
    from .escalation import parse_escalation

    key = entry.record_hash  # by content: the same seq of two ledgers may hold different configurations
    graph = _GRAPHS.get(key)
    if graph is None:
        graph = parse_escalation(entry.payload["document"], SourceMap(f"ledger seq {entry.seq}"))
        if len(_GRAPHS) > 16:
            _GRAPHS.clear()
        _GRAPHS[key] = graph
    return graph


def active_escalation(ledger: Ledger, before: int | None = None) -> tuple[EscalationGraph, int]:
    """The escalation configuration in force before seq `before` (default: now), and the seq that activated it.

    Raises:
        CharterError: ``no_escalation`` when none was ever activated: breaches would page nobody.
    """
    seq = ledger.authority(before).escalation_seq
    entry = ledger.entry(seq) if seq is not None else None
    if entry is None:
        raise CharterError.single("no_escalation", "no escalation configuration is in force in this ledger: "
                                  "breaches would be recorded but open no incident and page nobody; an approver "
                                  "activates one (`charter escalation activate`)")
    return escalation_at(entry), entry.seq
