"""Who may read and do what through Charter's service: one table, read from the ledger.

A principal's standing comes only from what the ledger records: the governance configuration's
administrators and authority roles (including ``auditor``), the members of the escalation
configuration in force, and the owners of registered systems. `OPERATIONS` says which standing
allows each operation; `authorize` applies it, and every API route calls it (the CLI on a local
ledger acts as the log's operator, and the ledger's own `Authority` check decides its writes).

Writes are proven twice: the caller must be authorized here, and the change itself must be signed
by the caller's registered key, which the ledger checks again on append and `charter verify`
re-checks offline. This module never replaces that check; it refuses early and explains.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import StrEnum

from .errors import CharterError
from .ledger.auditor import (
    INCIDENT_CLASSIFIED,
    INCIDENT_REPORT_FILED,
    INCIDENT_TRANSITION,
)
from .ledger.store import Ledger

__all__ = ["OPERATIONS", "SCOPES", "Caller", "Operation", "Standing", "authorize", "standing_of", "visible_systems"]

#: API token scopes; a person signed in by OpenID Connect holds all of them
SCOPES = ("read", "submit", "act")
#: changes an administrator may not make (separation of duties: administrators run systems, keys and tokens)
INCIDENT_CHANGES = (INCIDENT_TRANSITION, INCIDENT_CLASSIFIED, INCIDENT_REPORT_FILED)


class Operation(StrEnum):
    """What a caller asks to do."""

    WHOAMI = "whoami"                      # who am I, what may I do
    READ_TOKENS = "token.read"              # one's own API tokens (everyone's for administrators and auditors)
    READ_CATALOG = "catalog.read"           # policy sets in force, KPI catalog, framework list
    READ_SYSTEM = "system.read"             # one system's registration, findings, incidents, bundles
    READ_GOVERNANCE = "governance.read"     # every system's findings and incidents, waivers, keys, metrics
    READ_LEDGER = "ledger.read"             # entries, proofs, checkpoints, verification
    SUBMIT_BUNDLE = "bundle.submit"         # a signed evidence bundle of a system one owns
    ACT = "statement.submit"                # a governance change signed by the caller's own key
    READ_REPORTS = "report.read"            # issued reports
    ISSUE_REPORT = "report.issue"           # issue an audit-readiness report into the ledger
    VERIFY_REPORT = "report.verify"         # verify a report file against the ledger


@dataclass(frozen=True)
class Caller:
    """An authenticated principal: who, how they proved it, and what their credential allows."""

    principal: str
    method: str  # "token", "oidc" or "local"
    scopes: frozenset[str] = frozenset(SCOPES)
    token_id: str | None = None
    issuer: str | None = None
    subject: str | None = None
    request_id: str = ""

    def via(self) -> dict[str, str]:
        """The record a ledger entry written on this caller's request carries (`charter.ledger.store.recording_via`)."""
        record = {"principal": self.principal, "method": self.method, "request_id": self.request_id}
        if self.method == "token":
            record["token_id"] = str(self.token_id)
        elif self.method == "oidc":
            record["issuer"], record["subject"] = str(self.issuer), str(self.subject)
        return record


@dataclass(frozen=True)
class Standing:
    """What the ledger says a principal is, at one ledger size."""

    principal: str
    administrator: bool = False
    roles: frozenset[str] = frozenset()          # authority roles of the governance configuration
    escalation_roles: frozenset[str] = frozenset()  # roles of the escalation configuration in force
    owns: frozenset[str] = frozenset()           # ids of systems whose owner the principal is
    entry_role: str | None = None                # the escalation configuration's first-line role

    @property
    def auditor(self) -> bool:
        """Holds the ``auditor`` role: reads everything, issues and verifies reports, acts on nothing."""
        return "auditor" in self.roles

    @property
    def staff(self) -> bool:
        """Has a governance role: reads every system's governance state, not only their own systems'.

        The escalation configuration's entry role (the model owners, first line) is not one: its
        members act on their own systems' incidents, and read only those.
        """
        return self.administrator or bool(self.roles) or bool(self.escalation_roles - {self.entry_role})

    def labels(self) -> list[str]:
        """The standing as role names, for `whoami` and refusal messages."""
        labels = ["admin"] if self.administrator else []
        labels += sorted(self.roles) + [f"escalation:{r}" for r in sorted(self.escalation_roles)]
        return labels + (["system_owner"] if self.owns else [])


@dataclass(frozen=True)
class _Rule:
    """Who may do an operation: a scope the credential needs (None: any credential), and a test of the standing."""

    scope: str | None
    allows: str  # a description for refusals
    test: str    # the name of the predicate below


def _anyone(standing: Standing, system: str | None) -> bool:
    return True


def _staff(standing: Standing, system: str | None) -> bool:
    return standing.staff


def _staff_or_owner(standing: Standing, system: str | None) -> bool:
    return standing.staff or (system is not None and system in standing.owns)


def _owner(standing: Standing, system: str | None) -> bool:
    return system is not None and system in standing.owns and not standing.auditor


def _actor(standing: Standing, system: str | None) -> bool:
    return not standing.auditor


def _reporter(standing: Standing, system: str | None) -> bool:
    return standing.auditor or standing.administrator or "policy_approver" in standing.roles


_PREDICATES = {"anyone": _anyone, "staff": _staff, "staff_or_owner": _staff_or_owner, "owner": _owner,
               "actor": _actor, "reporter": _reporter}

#: the authorization table: every route names one of these operations
OPERATIONS: dict[Operation, _Rule] = {
    # no scope: a credential of any scope (an act-only token too) may learn whose it is, as the remote CLI asks
    Operation.WHOAMI: _Rule(None, "any authenticated principal", "anyone"),
    Operation.READ_TOKENS: _Rule("read", "any authenticated principal", "anyone"),
    Operation.READ_CATALOG: _Rule("read", "any authenticated principal", "anyone"),
    Operation.READ_SYSTEM: _Rule("read", "governance roles, administrators, auditors, and the system's owner",
                                 "staff_or_owner"),
    Operation.READ_GOVERNANCE: _Rule("read", "governance roles, administrators and auditors", "staff"),
    Operation.READ_LEDGER: _Rule("read", "governance roles, administrators and auditors", "staff"),
    Operation.SUBMIT_BUNDLE: _Rule("submit", "the system's owner (an auditor acts on nothing)", "owner"),
    Operation.ACT: _Rule("act", "anyone but an auditor, signing with their own key; the ledger then checks the "
                         "role the change needs", "actor"),
    Operation.READ_REPORTS: _Rule("read", "governance roles, administrators and auditors", "staff"),
    Operation.ISSUE_REPORT: _Rule("act", "auditors, administrators and policy approvers", "reporter"),
    Operation.VERIFY_REPORT: _Rule("read", "auditors, administrators and policy approvers", "reporter"),
}


@dataclass
class _StandingCache:
    size: int = -1
    standings: dict[str, Standing] = field(default_factory=dict)
    entry_role: tuple[int | None, str | None] = (None, None)  # (escalation seq, its entry role)
    lock: threading.Lock = field(default_factory=threading.Lock)


def standing_of(ledger: Ledger, principal: str) -> Standing:
    """What the ledger at its current head says `principal` is (cached per ledger size).

    Read from the authority state the ledger folds incrementally (administrators, roles, system
    owners, members of the escalation configuration in force), so a request after an append costs
    no re-read of the registry or the escalation document. Missing configuration is no error here:
    without an escalation configuration in force nobody holds an escalation role.
    """
    cache = ledger.kept("access.standings", _StandingCache)
    size = ledger.size()
    with cache.lock:
        if cache.size != size:
            cache.standings, cache.size = {}, size
        known = cache.standings.get(principal)
        if known is not None:
            return known
        authority = ledger.authority(size)
        escalation_roles = frozenset(authority.escalation_members.get(principal, []))
        entry_role = _entry_role(ledger, authority.escalation_seq, cache)
        owns = frozenset(system_id for system_id, owner in authority.owners.items() if owner == principal)
        roles = frozenset(role for role in ("policy_author", "policy_approver", "system_registrar",
                                            "evidence_attester", "auditor") if principal in authority.holders(role))
        standing = Standing(principal, principal in authority.admins(), roles, escalation_roles, owns, entry_role)
        cache.standings[principal] = standing
        return standing


def _entry_role(ledger: Ledger, escalation_seq: int | None, cache: _StandingCache) -> str | None:
    """The first-line role of the escalation configuration activated at `escalation_seq` (read once per seq)."""
    if escalation_seq is None:
        return None
    if cache.entry_role[0] != escalation_seq:
        entry = ledger.entry(escalation_seq)
        document = entry.payload.get("document") if entry is not None else None
        role = document.get("entry") if isinstance(document, dict) else None
        cache.entry_role = (escalation_seq, str(role) if role is not None else None)
    return cache.entry_role[1]


def authorize(ledger: Ledger, caller: Caller, operation: Operation, *, system: str | None = None,
              entry_type: str | None = None) -> Standing:
    """Refuse unless `caller` may do `operation` (on `system`; for ACT, a change of `entry_type`).

    Returns:
        The caller's standing, for routes that filter what they show by it.

    Raises:
        CharterError: ``forbidden``, naming the operation, what the caller's credential and standing
            are, and who may do it.
    """
    rule = OPERATIONS[operation]
    standing = standing_of(ledger, caller.principal)
    if rule.scope is not None and rule.scope not in caller.scopes:
        raise CharterError.single("forbidden", f"{operation.value} needs a credential with scope {rule.scope!r}; "
                                  f"this one has {', '.join(sorted(caller.scopes)) or 'none'}")
    if not _PREDICATES[rule.test](standing, system):
        held = ", ".join(standing.labels()) or "no role"
        target = f" on system {system!r}" if system is not None else ""
        raise CharterError.single("forbidden", f"{caller.principal!r} ({held}) may not {operation.value}{target}: "
                                  f"allowed to {rule.allows}")
    if operation is Operation.ACT and entry_type in INCIDENT_CHANGES and standing.administrator:
        raise CharterError.single("forbidden", f"{caller.principal!r} is an administrator: administrators run "
                                  "systems, keys and tokens and may not act on incidents (separation of duties)")
    return standing


def may_read_system(standing: Standing, system: str) -> bool:
    """Whether `standing` may read `system`'s governance state (`Operation.READ_SYSTEM`'s test, whatever the scope)."""
    return _PREDICATES[OPERATIONS[Operation.READ_SYSTEM].test](standing, system)


def visible_systems(standing: Standing) -> frozenset[str] | None:
    """The systems whose governance state `standing` may read; None for all of them."""
    return None if standing.staff else standing.owns
