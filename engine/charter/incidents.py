"""Incidents: breaches become governance cases that named people move to a decision.

States: open -> acknowledged -> investigating -> validated -> decided -> resolved -> closed, and
reopen. Every event is a ledger entry; an incident's state is folded from its entries, so it needs
no table of its own and survives any restart. Breach findings open incidents, deduplicated by
(system, rule, segment): a repeated breach attaches to the open incident, one within the reopen
window of a resolved incident reopens it, and one covered by an unexpired accepted-risk waiver is
recorded without opening anything. Each transition names a principal whose role the escalation
graph allows for that stage and severity, and a rationale; anyone else is refused.

EU AI Act Art. 73 runs beside the workflow: the incident's validator classifies it as a serious
incident under an Art. 3(49) ground (or records that it is not one) with the time the organisation
became aware of it, which fixes the reporting deadline and pages the reporting role; that role
records each report filed with the authority. KPI severity plays no part in it. Art. 73 binds
providers of high-risk AI systems, so only an incident of a system that is EU AI Act high-risk under
its classification in force at that moment may be classified serious.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from .errors import CharterError
from .ledger.auditor import (
    ART73_HIGH_RISK_ONLY,
    ESCALATION_ACTIVATED,
    INCIDENT_CLASSIFIED,
    INCIDENT_OPENED,
    INCIDENT_REPORT_FILED,
    SYSTEM_REGISTERED,
    art73_system_problem,
    recorded_refusal,
)
from .ledger.records import Entry, LedgerReader, NewEntry, format_time
from .validation import statement_flag, statement_text
from .vocabulary import RiskTier, Severity

if TYPE_CHECKING:  # reading incidents (`charter incidents list`) needs neither pydantic nor networkx
    from .authority import Signer
    from .escalation import EscalationGraph
    from .ledger.auditor import Problem
    from .ledger.store import Ledger
    from .registry import AISystem

OPENED = INCIDENT_OPENED
FINDING_ATTACHED = "incident.finding"
TRANSITION = "incident.transition"
ESCALATED = "incident.escalated"
NOTIFIED = "notification.sent"
WAIVER = "waiver.granted"
CLASSIFIED = INCIDENT_CLASSIFIED
REPORT_FILED = INCIDENT_REPORT_FILED
INCIDENT_TYPES = (OPENED, FINDING_ATTACHED, TRANSITION, ESCALATED, NOTIFIED, WAIVER, CLASSIFIED, REPORT_FILED)
#: EU AI Act Art. 3(49): the harms that make an incident a serious incident
GROUNDS = {"a": "the death of a person, or serious harm to a person's health",
           "b": "a serious and irreversible disruption of the management or operation of critical infrastructure",
           "c": "the infringement of obligations under Union law intended to protect fundamental rights",
           "d": "serious harm to property or the environment"}
#: Art. 73(5): an initial, possibly incomplete report may be followed by a complete one
REPORT_KINDS = ("initial", "complete")
REOPEN_WINDOW = datetime.timedelta(days=30)
AUTOMATIC = "charter"


class State(StrEnum):
    """Where an incident is in its workflow."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    INVESTIGATING = "investigating"
    VALIDATED = "validated"
    DECIDED = "decided"
    RESOLVED = "resolved"
    CLOSED = "closed"


ACTIVE = (State.OPEN, State.ACKNOWLEDGED, State.INVESTIGATING, State.VALIDATED)

#: action -> (states it may start from, state it leads to, stages whose roles may take it)
ACTIONS: dict[str, tuple[tuple[State, ...], State, tuple[str, ...]]] = {
    "acknowledge": ((State.OPEN,), State.ACKNOWLEDGED, ("investigate",)),
    "investigate": ((State.OPEN, State.ACKNOWLEDGED), State.INVESTIGATING, ("investigate",)),
    "validate": ((State.INVESTIGATING,), State.VALIDATED, ("validate",)),
    "decide": ((State.VALIDATED,), State.DECIDED, ("decide",)),
    "resolve": ((State.DECIDED,), State.RESOLVED, ("investigate", "decide")),
    "close": ((State.RESOLVED,), State.CLOSED, ("validate", "decide")),
    "reopen": ((State.RESOLVED, State.CLOSED), State.OPEN, ("validate", "decide")),
}


def _time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def incident_id(system_id: str, rule: str, segment: str | None, first_finding: str) -> str:
    """A stable, short id: ``INC-`` and 8 hex digits of the dedup key and the first finding's hash."""
    digest = hashlib.sha256(f"{system_id}|{rule}|{segment or ''}|{first_finding}".encode()).hexdigest()
    return f"INC-{digest[:8]}"


@dataclass
class Incident:
    """An incident folded from its ledger entries."""

    id: str
    system_id: str
    owner: str
    rule: str
    segment: str | None
    severity: Severity
    tier: RiskTier
    title: str
    opened_at: str
    onset_at: str
    detected_at: str
    state: State = State.OPEN
    stage_entered_at: str = ""
    findings: list[int] = field(default_factory=list)
    level: int = 0
    escalated_to: list[str] = field(default_factory=list)
    notified: set[str] = field(default_factory=set)
    times: dict[str, str] = field(default_factory=dict)
    actors: dict[str, str] = field(default_factory=dict)
    decisions: list[str] = field(default_factory=list)
    current_decision: list[str] = field(default_factory=list)  # the decision of the current round
    timeline: list[dict[str, Any]] = field(default_factory=list)
    reopen_count: int = 0
    deadline: tuple[str, str] | None = None  # (step, due) as stored when the stage began
    chain: list[tuple[str, float]] = field(default_factory=list)  # escalation plan pinned at opening
    #: the latest Art. 3(49) triage: serious, ground, aware_at, basis, due_at, by, role, seq, at, note
    classification: dict[str, Any] | None = None
    #: Art. 73 reports filed: kind, authority, reference, filed_at, by, seq
    filings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str | None]:
        """The deduplication key: (system, rule, segment)."""
        return self.system_id, self.rule, self.segment

    @property
    def active(self) -> bool:
        """Not yet decided: deadlines and escalation apply."""
        return self.state in ACTIVE

    @property
    def serious(self) -> bool:
        """Classified by its validator as an Art. 3(49) serious incident (the latest classification)."""
        return bool(self.classification and self.classification["serious"])

    @property
    def awaiting_report(self) -> bool:
        """Serious, and no report filed yet: the reporting role is paged until one is."""
        return self.serious and not self.filings

    def first_report(self) -> dict[str, Any] | None:
        """The earliest report filed (initial, or a complete report filed first), which Art. 73's deadline is about."""
        return min(self.filings, key=lambda f: f["filed_at"]) if self.filings else None

    def reporting_status(self, now: datetime.datetime | None = None) -> str | None:
        """``on_time`` or ``late`` once a report is filed; before, ``pending`` or, past the deadline at
        `now`, ``overdue``; None for an incident not classified serious."""
        if not self.serious:
            return None
        assert self.classification is not None
        due = _time(self.classification["due_at"])
        first = self.first_report()
        if first is not None:
            return "on_time" if _time(first["filed_at"]) <= due else "late"
        return "overdue" if now is not None and now > due else "pending"

    @property
    def risk_accepted(self) -> bool:
        """Decided by accepting the risk: once its waiver lapses, new breaches open a new incident."""
        return self.state is State.DECIDED and "accept_risk" in self.current_decision


@dataclass(frozen=True)
class Waiver:
    """An accepted risk: breaches of (system, rule, segment) open no incident until it expires."""

    id: str
    incident_id: str
    system_id: str
    rule: str
    segment: str | None
    owner: str
    granted_at: str
    expires_at: str

    def covers(self, system_id: str, rule: str, segment: str | None, at: datetime.datetime) -> bool:
        """Whether this waiver holds for the key at time `at`."""
        return (self.system_id, self.rule, self.segment) == (system_id, rule, segment) and at < _time(self.expires_at)


@dataclass
class IncidentBook:
    """All incidents and waivers of a ledger."""

    incidents: dict[str, Incident] = field(default_factory=dict)
    waivers: list[Waiver] = field(default_factory=list)
    #: entries a holder of the log key wrote without the fields the log writes: (seq, why); they fold
    #: nothing (or what they got to before the missing field), and `charter verify` names each
    malformed: list[tuple[int, str]] = field(default_factory=list)
    #: the most recently opened incident of each dedup key, kept as incidents are added (a lookup per
    #: breach must not scan every incident: a bundle with thousands of breaching segments would be quadratic)
    _latest: dict[tuple[str, str, str | None], Incident] = field(default_factory=dict)

    def add(self, incident: Incident) -> None:
        """Add an opened incident."""
        self.incidents[incident.id] = incident
        latest = self._latest.get(incident.key)
        # the same incident added again (as folded from its entry) replaces the one added before it
        if latest is None or latest.id == incident.id or incident.opened_at >= latest.opened_at:
            self._latest[incident.key] = incident

    def latest_for(self, key: tuple[str, str, str | None]) -> Incident | None:
        """The most recently opened incident of a dedup key."""
        return self._latest.get(key)

    def waiver_for(self, key: tuple[str, str, str | None], at: datetime.datetime) -> Waiver | None:
        """The waiver covering `key` at `at`, if any."""
        return next((w for w in self.waivers if w.covers(*key, at)), None)


class KeptBook:
    """A ledger's incident book as of `size` entries, kept with the ledger object (`kept_book`) so that
    a submission under the write lock, or a service request, folds only the incident entries
    appended since, not every incident entry of the ledger. Hold `lock` while reading or changing it.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.size = -1
        self.book = IncidentBook()

    def invalidate(self) -> None:
        """Forget the book: the next reader folds the ledger again."""
        self.size, self.book = -1, IncidentBook()

    def advanced_to(self, ledger: Ledger, size: int) -> IncidentBook:
        """The book of at least the first `size` entries (under the write lock, with `size` the head: exactly).

        A fold that fails part-way forgets the book rather than fold the same entries twice later.
        """
        if self.size < 0:
            self.book, self.size = IncidentBook(), 0
        if self.size < size:
            try:
                for entry in ledger.entries(self.size, size, types=INCIDENT_TYPES):
                    apply(self.book, entry)
            except BaseException:
                self.invalidate()
                raise
            self.size = size
        return self.book


def kept_book(ledger: Ledger) -> KeptBook:
    """The incident book kept with `ledger` (see `KeptBook`)."""
    return ledger.kept("incidents.book", KeptBook)


def load_book(ledger: LedgerReader) -> IncidentBook:
    """Fold every incident and waiver entry of the ledger."""
    book = IncidentBook()
    for entry in ledger.entries(types=INCIDENT_TYPES):
        apply(book, entry)
    return book


#: how a transition's actor proved it was them (the ledger refuses a transition with neither proof)
PROOF_SIGNATURE, PROOF_STEP_UP, PROOF_LOG = "key signature", "step-up sign-in", "the log (automatic)"


def proof_of(entry: Entry) -> str:
    """How a transition's actor proved it: their key's signature, a step-up sign-in, or none (the log's own)."""
    if entry.key_id is not None:
        return PROOF_SIGNATURE
    return PROOF_STEP_UP if "proof" in entry.payload else PROOF_LOG


def apply(book: IncidentBook, entry: Entry) -> None:
    """Fold one entry into the book; one without the fields the log writes is noted in `book.malformed`."""
    try:
        _apply(book, entry)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        book.malformed.append((entry.seq, f"{entry.type} lacks the fields the log writes, or holds others: "
                                          f"{type(exc).__name__}: {exc}"))


def _apply(book: IncidentBook, entry: Entry) -> None:
    p = entry.payload
    at = entry.received_at
    if entry.type == WAIVER:
        book.waivers.append(Waiver(p["waiver_id"], p["incident_id"], p["system_id"], p["rule"], p.get("segment"),
                                   p["owner"], p["granted_at"], p["expires_at"]))
        return
    if entry.type == OPENED:
        incident = Incident(p["incident_id"], p["system_id"], p["owner"], p["rule"], p.get("segment"),
                            Severity(p["severity"]), RiskTier(p["tier"]), p["title"], at, p["onset_at"],
                            p["detected_at"], stage_entered_at=at, findings=[p["finding"]["seq"]],
                            deadline=_stored_deadline(p), chain=[(r, float(a)) for r, a in p.get("chain", [])])
        where = f" in {p['segment']}" if p.get("segment") else ""
        incident.timeline.append({"at": at, "seq": entry.seq, "event": "opened", "by": AUTOMATIC,
                                  "note": f"breach of {p['rule']}{where}"})
        book.add(incident)
        return
    found = book.incidents.get(p.get("incident_id", ""))
    if found is None:
        return
    incident = found
    if entry.type == FINDING_ATTACHED:
        incident.findings.append(p["finding"]["seq"])
        incident.timeline.append({"at": at, "seq": entry.seq, "event": "breach repeated", "by": AUTOMATIC, "note": ""})
    elif entry.type == ESCALATED:
        incident.level = max(incident.level, p["level"])
        incident.escalated_to.append(p["role"])
        incident.timeline.append({"at": at, "seq": entry.seq, "event": f"escalated to {p['role']}", "by": AUTOMATIC,
                                  "note": p["reason"]})
    elif entry.type == NOTIFIED:
        incident.notified.add(p["key"])
    elif entry.type == CLASSIFIED:
        raw = p.get("reporting")
        reporting: dict[str, Any] = raw if isinstance(raw, dict) else {}
        # A forged entry without its deadline or awareness reads as no serious incident (verify names it).
        serious = p.get("serious") is True and isinstance(reporting.get("due_at"), str) and \
            isinstance(p.get("aware_at"), str)
        incident.classification = {"serious": serious, "ground": p.get("ground"),
                                   "death": bool(p.get("death")), "widespread": bool(p.get("widespread")),
                                   "aware_at": p.get("aware_at"), "basis": reporting.get("basis"),
                                   "allowed": reporting.get("allowed"), "due_at": reporting.get("due_at"),
                                   "by": p.get("actor"), "role": p.get("role"), "seq": entry.seq, "at": at,
                                   "note": p.get("note")}
        event = (f"classified serious incident (Art. 3(49)({p.get('ground')}))" if incident.serious
                 else "classified not a serious incident")
        due = f"; report due {reporting.get('due_at')}" if reporting else ""
        incident.timeline.append({"at": at, "seq": entry.seq, "event": event,
                                  "by": f"{p.get('actor')} ({p.get('role')})", "note": f"{p.get('note')}{due}"})
    elif entry.type == REPORT_FILED:
        incident.filings.append({"kind": p.get("kind"), "authority": p.get("authority"),
                                 "reference": p.get("reference"), "filed_at": str(p.get("filed_at")),
                                 "by": p.get("actor"), "seq": entry.seq, "at": at})
        incident.timeline.append({"at": at, "seq": entry.seq, "event": f"{p.get('kind')} report filed",
                                  "by": f"{p.get('actor')} ({p.get('role')})",
                                  "note": f"{p.get('authority')}, reference {p.get('reference')}, "
                                          f"filed {p.get('filed_at')}"})
    elif entry.type == TRANSITION:
        action = p["action"]
        incident.state = State(p["to"])
        incident.stage_entered_at = at
        incident.deadline = _stored_deadline(p)
        incident.times.setdefault(action, at)
        actor = str(p.get("actor", p.get("principal")))
        incident.actors[action] = actor
        if action == "reopen":
            # a reopened incident starts a new escalation round: levels, pages and keys begin afresh
            incident.reopen_count += 1
            incident.level = 0
            incident.escalated_to = []
            incident.current_decision = []
            for later in ("acknowledge", "investigate", "validate", "decide", "resolve", "close"):
                incident.times.pop(later, None)
        if p.get("decision"):
            incident.decisions.extend(p["decision"])
            incident.current_decision = list(p["decision"])
        incident.timeline.append({"at": at, "seq": entry.seq, "event": action, "by": f"{actor} ({p['role']})",
                                  "note": p["note"] + (f" [decision: {', '.join(p['decision'])}]"
                                                       if p.get("decision") else ""),
                                  "proof": proof_of(entry)})


# -- opening incidents from findings -------------------------------------------------------------


def incident_entries(book: IncidentBook, graph: EscalationGraph, system: AISystem,
                     findings: Iterable[tuple[int, dict[str, Any]]], at: datetime.datetime,
                     finding_ref: Any) -> list[NewEntry]:
    """The entries that breach findings cause: open, attach, reopen, or nothing under a waiver.

    The deadline of the first step and the escalation plan are stored with the incident, so a later
    change of escalation.yaml applies to new incidents and never re-times open ones.

    Args:
        book: the incidents so far.
        graph: the escalation graph in force.
        system: the system the findings are about.
        findings: (index in the batch, finding as JSON) for every finding of the submission.
        at: the time of the submission.
        finding_ref: function (done entries, index) -> {"seq", "record_hash"} of a finding entry.
    """
    entries: list[NewEntry] = []
    for index, finding in findings:
        if finding["status"] != "breach":
            continue
        rule = f"{finding['policy']}/{finding['rule']}"
        key = (system.id, rule, finding.get("segment"))
        if book.waiver_for(key, at) is not None:
            continue  # accepted risk: the finding is in the ledger, no incident opens
        latest = book.latest_for(key)
        ref = _bind(finding_ref, index)
        if latest is not None and (latest.active or (latest.state is State.DECIDED and not latest.risk_accepted)):
            entries.append(NewEntry(FINDING_ATTACHED, _payload({"incident_id": latest.id}, "finding", ref),
                                    f"attach:{latest.id}:{finding['bundle_digest']}:{index}", subject=system.id))
            continue
        if latest is not None and latest.state in (State.RESOLVED, State.CLOSED) and \
                at - _time(latest.times.get("resolve", latest.opened_at)) <= REOPEN_WINDOW:
            reopen = {"incident_id": latest.id, "action": "reopen", "from": latest.state.value,
                      "to": State.OPEN.value, "actor": AUTOMATIC, "role": "system",
                      "note": "the breach recurred within the reopen window",
                      "deadline": deadline_for(graph, latest.severity, latest.tier, State.OPEN, at)}
            entries.append(NewEntry(TRANSITION, reopen,
                                    f"reopen:{latest.id}:{finding['bundle_digest']}", subject=system.id))
            entries.append(NewEntry(FINDING_ATTACHED, _payload({"incident_id": latest.id}, "finding", ref),
                                    f"attach:{latest.id}:{finding['bundle_digest']}:{index}", subject=system.id))
            continue
        new_id = incident_id(system.id, rule, finding.get("segment"), finding["bundle_digest"])
        severity = Severity(finding["severity"])
        payload = {"incident_id": new_id, "system_id": system.id, "owner": system.owner, "rule": rule,
                   "segment": finding.get("segment"), "severity": severity.value,
                   "tier": system.risk_tier.value, "title": finding["title"],
                   # Onset: when the breach became measurable (the window's end, or later when labels came late).
                   "onset_at": finding.get("measurable_at") or finding["window_end"],
                   "detected_at": finding["evaluated_at"],
                   "deadline": deadline_for(graph, severity, system.risk_tier, State.OPEN, at),
                   "chain": escalation_chain(graph, severity, system.risk_tier)}
        entries.append(NewEntry(OPENED, _payload(payload, "finding", ref), f"open:{new_id}", subject=system.id))
        book.add(Incident(new_id, system.id, system.owner, rule, finding.get("segment"),
                          Severity(finding["severity"]), system.risk_tier, finding["title"],
                          format_time(at), finding.get("measurable_at") or finding["window_end"],
                          finding["evaluated_at"]))
    return entries


def _stored_deadline(payload: dict[str, Any]) -> tuple[str, str] | None:
    deadline = payload.get("deadline")
    return (deadline["step"], deadline["due_at"]) if deadline else None


def deadline_for(graph: EscalationGraph, severity: Severity, tier: RiskTier, state: State,
                 entered: datetime.datetime) -> dict[str, str] | None:
    """The step an incident entering `state` at `entered` waits for, and when it is due."""
    deadlines = graph.band(severity).deadlines
    factor = graph.tier(tier).timeout_factor
    if state is State.OPEN:
        step, allowed = "acknowledge", deadlines.acknowledge
    elif state in (State.ACKNOWLEDGED, State.INVESTIGATING):
        step, allowed = "investigate and validate", deadlines.investigate + deadlines.validate_
    elif state is State.VALIDATED:
        step, allowed = "decide", deadlines.decide
    else:
        return None
    return {"step": step, "due_at": format_time(entered + allowed * factor)}


def escalation_chain(graph: EscalationGraph, severity: Severity, tier: RiskTier) -> list[list[Any]]:
    """The roles escalation walks through, with seconds after the first escalation: pinned per incident."""
    steps = [s for s in graph.plan(severity, tier) if s.reason == "escalation" and s.role != graph.config.entry]
    return [[s.role, (s.after - steps[0].after).total_seconds()] for s in steps] if steps else []


def _bind(finding_ref: Any, index: int) -> Any:
    return lambda done: finding_ref(done, index)


def _payload(base: dict[str, Any], name: str, ref: Any) -> Any:
    return lambda done: {**base, name: ref(done)}


# -- transitions ---------------------------------------------------------------------------------


def allowed_roles(graph: EscalationGraph, incident: Incident, action: str) -> set[str]:
    """The roles that may take `action` on `incident`: the stage's roles, and paged roles above them.

    Deciding belongs to the decider of the severity and tier (a tier override may raise it above
    the band's decide stage) and to roles of at least its authority; roles paged by escalation
    join with at least the authority of the weakest role the stage already allows. Roles that
    are no longer declared (escalation.yaml changed since the page) are ignored.
    """
    declared = graph.config.roles
    roles: set[str] = set()
    for stage in ACTIONS[action][2]:
        band = graph.band(incident.severity).assignment(stage)
        if stage == "decide":
            decider = graph.decider(incident.severity, incident.tier)
            floor = declared[decider].authority
            roles |= {decider, *(r for r in (*band.responsible, band.accountable) if declared[r].authority >= floor)}
        else:
            roles |= {*band.responsible, band.accountable}
    floor = min(declared[r].authority for r in roles)
    roles |= {r for r in incident.escalated_to if r in declared and declared[r].authority >= floor}
    return roles


def authorize_transition(graph: EscalationGraph, incident: Incident, action: str, principal: str,
                         decisions: list[str]) -> str:
    """The role in which `principal` may take `action` on `incident` under `graph`; refused otherwise.

    The one rule for the command that records a transition and for `charter verify`, which asks it
    again for every recorded transition under the escalation configuration then in force.

    Raises:
        CharterError: a state the action cannot start from, a principal without an allowed role, a
            decision beyond the role's authority, or an independence breach.
    """
    sources, _, _ = ACTIONS[action]
    if incident.state not in sources:
        raise CharterError.single("invalid_transition", f"{incident.id} is {incident.state.value}; {action} "
                                  f"needs {' or '.join(s.value for s in sources)}")
    role = _acting_role(graph, incident, action, principal, action)
    if graph.tier(incident.tier).separation_of_duties:
        _check_independence(incident, action, principal)
    if action == "decide":
        if not decisions:
            raise CharterError.single("decision_required", "decide needs at least one --decision")
        for decision in decisions:
            if decision not in graph.config.decisions:
                raise CharterError.single("unknown_decision", f"unknown decision {decision!r}; one of "
                                          f"{', '.join(graph.config.decisions)}")
            if not graph.may_decide(role, decision):
                raise CharterError.single("not_authorized", f"{role!r} lacks the authority to {decision} "
                                          f"(needs {graph.config.decisions[decision].min_authority})")
    elif decisions:
        raise CharterError.single("usage", "--decision belongs to the decide action")
    return role


def _acting_role(graph: EscalationGraph, incident: Incident, action: str, principal: str, what: str) -> str:
    """The highest role `principal` holds among those `allowed_roles` gives for `action`; refused otherwise."""
    declared = graph.config.roles
    allowed = allowed_roles(graph, incident, action)
    held = [r for r in graph.roles_of(principal) if r in allowed]
    if not held:
        raise CharterError.single("not_authorized", f"{principal!r} holds none of the roles that may {what} "
                                  f"a {incident.severity.value} incident: {', '.join(sorted(allowed))}")
    entry_role = graph.config.entry
    if held == [entry_role] and principal != incident.owner and incident.owner in declared[entry_role].members:
        # the first line acts on its own systems only; a colleague in the same role is not the owner
        raise CharterError.single("not_authorized", f"{principal!r} holds only {entry_role!r} and does not own "
                                  f"{incident.system_id}; its owner is {incident.owner!r}")
    return max(held, key=lambda r: declared[r].authority)


def transition_statement(incident_id_: str, action: str, note: str, decisions: Iterable[str] = (),
                         expires: str | None = None) -> dict[str, Any]:
    """What an actor signs to move an incident: the incident, the action, the rationale, decisions, waiver length.

    Raises:
        CharterError: an unknown action, no rationale, or an expiry without accepting risk; a field of the
            wrong JSON type or a rationale over `MAX_TEXT` characters (``$.statement.FIELD``).
    """
    statement_text(incident_id_, "incident_id")
    statement_text(action, "action")
    statement_text(note, "note")
    if isinstance(decisions, str) or not isinstance(decisions, Iterable):
        raise CharterError.single("invalid_field", "decision must be an array of strings", path="$.statement.decision")
    decisions = [statement_text(d, "decision") for d in decisions]
    if expires is not None:
        statement_text(expires, "expires")
    if action not in ACTIONS:
        raise CharterError.single("usage", f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if not note.strip():
        raise CharterError.single("rationale_required", "every transition needs a rationale (--note)")
    decision_list = sorted(set(decisions))
    if expires is not None and "accept_risk" not in decision_list:
        raise CharterError.single("usage", "--expires belongs to the accept_risk decision")
    statement: dict[str, Any] = {"incident_id": incident_id_, "action": action, "note": note}
    if decision_list:
        statement["decision"] = decision_list
    if expires is not None:
        statement["expires"] = expires
    return statement


def transition(ledger: Ledger, incident_id_: str, action: str, key: Signer, note: str,
               decisions: Iterable[str] = (), expires: str | None = None) -> Entry:
    """Move an incident with a rationale, signed by `key`: its registered principal is the actor.

    The escalation configuration in force in the ledger decides who may; the actor signs the
    request (incident, action, rationale, decisions, waiver length), and the log adds the states,
    the role and the next deadline.

    Raises:
        CharterError: unknown incident or action, an unregistered key, a missing rationale, or
            anything `authorize_transition` refuses. Nothing is recorded then.
    """
    from .authority import active_escalation, signed_entry

    statement = transition_statement(incident_id_, action, note, decisions, expires)
    decision_list = list(statement.get("decision", []))

    def build(next_seq: int) -> list[NewEntry]:
        graph, _ = active_escalation(ledger, next_seq)
        book = load_book(ledger)
        incident = book.incidents.get(incident_id_)
        if incident is None:
            raise CharterError.single("unknown_incident", f"no incident {incident_id_}")
        entry = signed_entry(ledger, TRANSITION, statement, key, subject=incident.system_id, size=next_seq)
        assert isinstance(entry.payload, dict)
        principal = entry.payload["actor"]
        role = authorize_transition(graph, incident, action, principal, decision_list)
        target = ACTIONS[action][1]
        derived = {"from": incident.state.value, "to": target.value, "role": role,
                   "deadline": deadline_for(graph, incident.severity, incident.tier, target, ledger.clock())}
        entries = [dataclasses.replace(entry, payload={**entry.payload, **derived})]
        if "accept_risk" in decision_list:
            entries.append(_waiver_entry(ledger, graph, incident, principal, expires))
        return entries

    return ledger.append(build)[0]


# -- EU AI Act Art. 73: serious-incident classification and reports --------------------------------


def _moment(value: datetime.datetime | str, option: str, name: str) -> str:
    """`value` (statement field `name`, option `option`) as the ledger writes times; refused without a timezone."""
    if not isinstance(value, datetime.datetime):
        statement_text(value, name, limit=64)
    try:
        moment = value if isinstance(value, datetime.datetime) else _time(value)
    except ValueError:
        raise CharterError.single("usage", f"{option} {value!r} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        raise CharterError.single("usage", f"{option} {value!r} has no timezone; add Z or +01:00")
    return format_time(moment)


def classification_statement(incident_id_: str, *, serious: bool, note: str, ground: str | None = None,
                             death: bool = False, widespread: bool = False,
                             aware_at: datetime.datetime | str | None = None) -> dict[str, Any]:
    """What a validator signs to classify an incident under Art. 3(49), or to record that it is not serious.

    Args:
        incident_id_: the incident.
        serious: a serious incident (`ground` and `aware_at` required), or a triage that it is not one.
        note: the rationale.
        ground: ``a``, ``b``, ``c`` or ``d`` of Art. 3(49) (see `GROUNDS`).
        death: the incident caused a death (Art. 73(4); ground ``a`` only).
        widespread: a widespread infringement (Art. 3(61), Art. 73(3)).
        aware_at: when the organisation became aware of the serious incident; the clock runs from it.

    Raises:
        CharterError: no rationale, a missing or unknown ground, no awareness time, or serious-only
            details on a triage that finds it is not serious; a field of the wrong JSON type or a
            rationale over `MAX_TEXT` characters (``$.statement.FIELD``).
    """
    statement_text(incident_id_, "incident_id")
    statement_text(note, "note")
    statement_flag(serious, "serious")
    statement_flag(death, "death")
    statement_flag(widespread, "widespread")
    if ground is not None:
        statement_text(ground, "ground")
    if not note.strip():
        raise CharterError.single("rationale_required", "a classification needs a rationale (--note)")
    if not serious:
        given = [name for name, value in (("--ground", ground), ("--death", death), ("--widespread", widespread),
                                          ("--aware-at", aware_at)) if value]
        if given:
            raise CharterError.single("usage", f"{', '.join(given)} belong to --serious; --not-serious records "
                                      "that no Art. 3(49) ground applies")
        return {"incident_id": incident_id_, "serious": False, "note": note}
    if ground not in GROUNDS:
        raise CharterError.single("usage", f"--serious needs --ground, one of {', '.join(GROUNDS)} (Art. 3(49)), "
                                  f"not {ground!r}")
    if death and ground != "a":
        raise CharterError.single("usage", "--death is an Art. 3(49)(a) harm: use --ground a")
    if aware_at is None:
        raise CharterError.single("usage", "--serious needs --aware-at: the Art. 73 deadline runs from the moment "
                                  "the organisation became aware")
    return {"incident_id": incident_id_, "serious": True, "ground": ground, "death": bool(death),
            "widespread": bool(widespread), "aware_at": _moment(aware_at, "--aware-at", "aware_at"), "note": note}


def reporting_deadline(graph: EscalationGraph, ground: str, death: bool, widespread: bool,
                       aware_at: datetime.datetime) -> dict[str, str]:
    """The Art. 73 deadline of a serious incident, from escalation.yaml's `regulatory.deadlines`.

    The tightest that applies: 2 days for a widespread infringement or a ground (b) disruption
    (Art. 73(3)), 10 days for a death (73(4)), else 15 days (73(2)); counted from awareness.

    Raises:
        CharterError: the escalation configuration in force declares no regulatory section.
    """
    from .policy.model import format_duration

    regulatory = graph.config.regulatory
    if regulatory is None:
        raise CharterError.single("no_regulatory_clock", "the escalation configuration in force has no regulatory "
                                  "section: nobody files Art. 73 reports and no deadline is set")
    deadlines = regulatory.deadlines
    applicable = [("default", deadlines.default)]
    if death:
        applicable.append(("death", deadlines.death))
    if widespread or ground == "b":
        applicable.append(("widespread_or_critical_infrastructure", deadlines.widespread_or_critical_infrastructure))
    basis, allowed = min(applicable, key=lambda item: item[1])
    return {"basis": basis, "allowed": format_duration(allowed), "due_at": format_time(aware_at + allowed)}


def _high_risk_problem(incident: Incident, system: AISystem | None) -> str | None:
    """Why `incident` may not be a serious incident of its system under Art. 73, or None when it may be.

    Worded by the standalone verifier's `art73_system_problem`, which checks the same rule on an export.
    """
    high_risk = None if system is None or system.eu_ai_act is None else system.eu_ai_act.high_risk
    return art73_system_problem(incident.system_id, system is not None, high_risk)


def authorize_classification(graph: EscalationGraph, incident: Incident, principal: str, statement: dict[str, Any],
                             now: datetime.datetime, system: AISystem | None) -> tuple[str, dict[str, str] | None]:
    """The role in which `principal` classifies `incident`, and its reporting deadline; refused otherwise.

    The one rule for `classify` and for `charter verify`. A classification is the validator's
    decision: the roles that may validate the incident (and roles paged above them) may make it,
    with the same owner scope and independence from the investigator. It may be made in any state
    but closed: awareness does not wait for the workflow (a complaint may reach compliance before
    the owner has acknowledged), and the deadline runs from awareness, not from the classification,
    so making it early never shortens anyone's time; a closed incident is reopened first, with a
    rationale, because closing it said nothing was left to do. It may be revised (a triage that found
    it not serious, a ground that changed) until a report is filed; after that the authority has the
    determination, and corrections go into the complete report.

    Awareness may not lie after the moment the classification is recorded (a later one would delay
    the clock, the one direction that hides a late report), nor before the end of the window in
    which the breach became measurable (the incident's onset: a typo, or another incident).

    Art. 73 applies to high-risk AI systems: an incident is classified serious only when `system`
    (the incident's system as registered at that moment) is EU AI Act high-risk under its recorded
    classification; a triage that finds it not serious may be recorded for any system.

    Raises:
        CharterError: a closed or already reported incident, a principal without a validator role, an
            independence breach, ``not_high_risk`` (a serious classification of a system that is not
            EU high-risk, or not classified), an awareness time out of bounds, or no regulatory section.
    """
    if incident.state is State.CLOSED:
        raise CharterError.single("invalid_transition", f"{incident.id} is closed; reopen it (with a rationale) "
                                  "before classifying it")
    if incident.filings:
        raise CharterError.single("already_reported", f"{incident.id} was reported to "
                                  f"{incident.filings[0]['authority']} on {incident.filings[0]['filed_at']}; "
                                  "record corrections in the complete report")
    role = _acting_role(graph, incident, "validate", principal, "validate, and so classify,")
    if graph.tier(incident.tier).separation_of_duties:
        _check_independence(incident, "validate", principal)
    if not statement.get("serious"):
        return role, None
    why = _high_risk_problem(incident, system)
    if why is not None:
        raise CharterError.single("not_high_risk", f"{why}: {ART73_HIGH_RISK_ONLY}; record the triage with "
                                  "--not-serious (or have a system "
                                  "registrar record a high-risk classification first, if it is one)")
    aware = _time(str(statement["aware_at"]))
    if aware > now:
        raise CharterError.single("future_time", f"awareness {statement['aware_at']} is after the classification "
                                  f"is recorded ({format_time(now)}); record the moment you became aware")
    if aware < _time(incident.onset_at):
        raise CharterError.single("awareness_before_onset", f"awareness {statement['aware_at']} is before "
                                  f"{incident.id}'s breach became measurable ({incident.onset_at})")
    return role, reporting_deadline(graph, str(statement["ground"]), bool(statement.get("death")),
                                    bool(statement.get("widespread")), aware)


def classify(ledger: Ledger, incident_id_: str, key: Signer, note: str, *, serious: bool,
             ground: str | None = None, death: bool = False, widespread: bool = False,
             aware_at: datetime.datetime | str | None = None) -> Entry:
    """Record the validator's Art. 3(49) triage of an incident, signed by `key`.

    A serious classification fixes the Art. 73 reporting deadline (stored with the entry, so a later
    change of escalation.yaml never re-times it) and pages the reporting role: `charter escalate`
    delivers the page like any other, until a report is filed.

    Raises:
        CharterError: anything `classification_statement` or `authorize_classification` refuses,
            an unknown incident or an unregistered key. Nothing is recorded then.
    """
    statement = classification_statement(incident_id_, serious=serious, note=note, ground=ground, death=death,
                                         widespread=widespread, aware_at=aware_at)

    def derive(graph: EscalationGraph, incident: Incident, actor: str, system: AISystem | None) -> dict[str, Any]:
        role, reporting = authorize_classification(graph, incident, actor, statement, ledger.clock(), system)
        return {"role": role, "reporting": reporting}

    return _append_triage(ledger, incident_id_, CLASSIFIED, statement, key, derive)


def filing_statement(incident_id_: str, *, authority: str, reference: str, kind: str,
                     filed_at: datetime.datetime | str) -> dict[str, Any]:
    """What the reporting role signs to record an Art. 73 report: authority, reference, kind and date.

    Raises:
        CharterError: an empty authority or reference, an unknown kind, or a time without a timezone; a
            field of the wrong JSON type or over `MAX_TEXT` characters (``$.statement.FIELD``).
    """
    for name, value in (("incident_id", incident_id_), ("authority", authority), ("reference", reference),
                        ("kind", kind)):
        statement_text(value, name)
    if kind not in REPORT_KINDS:
        raise CharterError.single("usage", f"--kind must be one of {', '.join(REPORT_KINDS)}, not {kind!r}")
    if not authority.strip() or not reference.strip():
        raise CharterError.single("usage", "a report names the authority it went to (--authority) and its "
                                  "reference (--reference)")
    return {"incident_id": incident_id_, "kind": kind, "authority": authority, "reference": reference,
            "filed_at": _moment(filed_at, "--filed-at", "filed_at")}


def authorize_filing(graph: EscalationGraph, incident: Incident, principal: str, statement: dict[str, Any],
                     now: datetime.datetime) -> str:
    """The role in which `principal` records a report on `incident`: the regulatory role; refused otherwise.

    The one rule for `file_report` and for `charter verify`. Only members of escalation.yaml's
    `regulatory.role` file; only for an incident its validator classified serious; filed no earlier
    than the awareness and no later than the moment it is recorded.

    Raises:
        CharterError: no regulatory section, a principal outside its role, an incident not classified
            serious, or a filing time out of bounds.
    """
    regulatory = graph.config.regulatory
    if regulatory is None:
        raise CharterError.single("no_regulatory_clock", "the escalation configuration in force has no regulatory "
                                  "section: nobody may file Art. 73 reports")
    if principal not in graph.config.roles[regulatory.role].members:
        raise CharterError.single("not_authorized", f"{principal!r} is not in {regulatory.role!r}, the role that "
                                  "files Art. 73 reports")
    if not incident.serious:
        raise CharterError.single("not_classified", f"{incident.id} is not classified as a serious incident; its "
                                  "validator classifies it first (charter incidents classify)")
    assert incident.classification is not None
    filed = _time(str(statement["filed_at"]))
    if filed > now:
        raise CharterError.single("future_time", f"--filed-at {statement['filed_at']} is after the moment it is "
                                  f"recorded ({format_time(now)})")
    if filed < _time(incident.classification["aware_at"]):
        raise CharterError.single("filed_before_awareness", f"--filed-at {statement['filed_at']} is before the "
                                  f"recorded awareness {incident.classification['aware_at']}")
    return regulatory.role


def file_report(ledger: Ledger, incident_id_: str, key: Signer, *, authority: str, reference: str, kind: str,
                filed_at: datetime.datetime | str) -> Entry:
    """Record an Art. 73 report filed with a market surveillance authority, signed by `key`.

    Raises:
        CharterError: anything `filing_statement` or `authorize_filing` refuses, an unknown incident
            or an unregistered key. Nothing is recorded then.
    """
    statement = filing_statement(incident_id_, authority=authority, reference=reference, kind=kind,
                                 filed_at=filed_at)

    def derive(graph: EscalationGraph, incident: Incident, actor: str, system: AISystem | None) -> dict[str, Any]:
        return {"role": authorize_filing(graph, incident, actor, statement, ledger.clock())}

    return _append_triage(ledger, incident_id_, REPORT_FILED, statement, key, derive)


def _append_triage(ledger: Ledger, incident_id_: str, entry_type: str, statement: dict[str, Any], key: Signer,
                   derive: Callable[[EscalationGraph, Incident, str, AISystem | None], dict[str, Any]]) -> Entry:
    """Append a signed classification or filing: `derive` authorizes its actor under the escalation
    configuration in force, with the incident's system as registered then, and gives the fields the
    log adds; all are judged at the seq it lands at."""
    from .authority import active_escalation, signed_entry
    from .submission import systems_in_ledger

    def build(next_seq: int) -> list[NewEntry]:
        graph, _ = active_escalation(ledger, next_seq)
        incident = load_book(ledger).incidents.get(incident_id_)
        if incident is None:
            raise CharterError.single("unknown_incident", f"no incident {incident_id_}")
        entry = signed_entry(ledger, entry_type, statement, key, subject=incident.system_id, size=next_seq)
        assert isinstance(entry.payload, dict)
        added = derive(graph, incident, entry.payload["actor"],
                       systems_in_ledger(ledger, next_seq).get(incident.system_id))
        return [dataclasses.replace(entry, payload={**entry.payload, **added})]

    return ledger.append(build)[0]


class InForce:
    """The escalation graph and the systems in force as a ledger's entries go by in seq order.

    The one reading of "in force" for the walks that judge incident entries again (`transition_problems`
    for `charter verify`, `charter.incident_audit` for `charter audit`): the latest escalation
    activation and each system's latest registration before the entry at hand.
    """

    #: the entry types `fold` reads
    TYPES = (ESCALATION_ACTIVATED, SYSTEM_REGISTERED)

    def __init__(self) -> None:
        self.graph: EscalationGraph | None = None
        self.graph_seq: int | None = None
        self.systems: dict[str, AISystem] = {}
        #: registrations that do not describe a system (seq, why): they register nothing, and verify names them
        self.malformed: list[tuple[int, str]] = []

    def fold(self, entry: Entry) -> bool:
        """Take `entry` into account if it is of `TYPES` (True), else leave it (False)."""
        from pydantic import ValidationError

        from .authority import escalation_at
        from .registry import AISystem

        if entry.type == ESCALATION_ACTIVATED:
            self.graph, self.graph_seq = escalation_at(entry), entry.seq
            return True
        if entry.type == SYSTEM_REGISTERED:
            try:
                system = AISystem.model_validate(entry.payload.get("system"))
            except ValidationError as exc:  # not a registration Charter wrote: it registers nothing
                first = exc.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                self.malformed.append((entry.seq, f"the registration does not describe a system: "
                                                  f"$.system{'.' + where if where else ''}: {first['msg']}"))
                return True
            self.systems[system.id] = system
            return True
        return False


def transition_problems(ledger: LedgerReader, start: int = 0, stop: int | None = None) -> list[Problem]:
    """Recorded transitions, escalations and waivers from seq `start` on that the rules then in force did not allow.

    `charter verify` asks this after the standalone checks (which can only see that the actor holds
    some escalation role): each signed transition is judged again by `authorize_transition`, against
    the incident as folded from the entries before it, and must record the role and states it gives;
    the log's own reopening must reopen a resolved or closed incident; a waiver must cover exactly
    the incident its decision accepted, for the length that decision signed, within the maximum; a
    serious-incident classification must be the validator's (`authorize_classification`) with the
    deadline the configuration then gave, of a system EU high-risk as registered then, and a report
    filed by the reporting role (`authorize_filing`).
    """
    from .ledger.auditor import Problem

    book = IncidentBook()
    in_force = InForce()
    problems = []
    decision: dict[str, Any] | None = None  # the transition right before a waiver
    for entry in ledger.entries(0, stop, types=(*INCIDENT_TYPES, *InForce.TYPES)):
        p = entry.payload
        unfolded = len(in_force.malformed)
        if in_force.fold(entry):
            problems += [Problem(seq, "malformed_body", why) for seq, why in in_force.malformed[unfolded:]
                         if seq >= start]
            continue
        graph, systems = in_force.graph, in_force.systems
        if entry.seq >= start and entry.type == ESCALATED:
            problem = _escalation_problem(graph, book, entry)
            if problem is not None:
                # as the verifier folds: an unauthorized change changes nothing (the role it names was not paged)
                problems.append(Problem(entry.seq, "not_authorized", problem))
                decision = None
                continue
        if entry.seq >= start and entry.type in (TRANSITION, WAIVER, CLASSIFIED, REPORT_FILED):
            try:
                if entry.type == WAIVER:
                    _check_waiver(graph, book, p, decision)
                elif entry.type in (CLASSIFIED, REPORT_FILED):
                    _check_recorded_art73(graph, book, entry, systems)
                else:
                    _check_recorded_transition(graph, book, p, entry.key_id)
            except CharterError as exc:
                problems.append(Problem(entry.seq, "not_authorized",
                                        recorded_refusal(entry.type, p, exc.diagnostics[0].message)))
        decision = p if entry.type == TRANSITION else None
        known = len(book.malformed)
        apply(book, entry)
        problems += [Problem(seq, "malformed_body", why) for seq, why in book.malformed[known:] if seq >= start]
    return problems


def _escalation_problem(graph: EscalationGraph | None, book: IncidentBook, entry: Entry) -> str | None:
    """Why a recorded escalation is not one `charter escalate` would have written when it arrived, if it is not.

    An escalation pages a role, which may then act on the incident (`allowed_roles`), so it is judged
    like a transition: it must be the log's own entry (no actor signs it), of the incident's current
    round, and one of the levels its pinned chain made due by its arrival (`notify.due_escalations`,
    with the clock tolerance `tick` allows), role and reason included.
    """
    from .notify import FUTURE_TOLERANCE, due_escalations

    p = entry.payload
    incident = book.incidents.get(str(p.get("incident_id", "")))
    if entry.key_id is not None:
        return "an escalation is the log's own entry; this one is signed by a key"
    if incident is None or graph is None:
        return "an escalation of no known incident or escalation configuration"
    if p.get("round") != incident.reopen_count:
        return f"an escalation of round {p.get('round')!r} of {incident.id}, which is in round {incident.reopen_count}"
    try:
        arrived = _time(entry.received_at)
    except ValueError:
        return "an escalation whose arrival time is unreadable"
    due = due_escalations(graph, incident, arrived + FUTURE_TOLERANCE)
    if {k: v for k, v in p.items() if k != "round"} in due:
        return None
    paged = (f"level {due[0]['level']} ({due[0]['role']})" if due else "nobody")
    return (f"{incident.id} escalated to {p.get('role')!r} at level {p.get('level')!r}; its chain and deadlines "
            f"then in force page {paged} by {format_time(arrived)}")


def _check_recorded_art73(graph: EscalationGraph | None, book: IncidentBook, entry: Entry,
                          systems: dict[str, AISystem]) -> None:
    """A recorded classification or filing, judged again by the rule that recorded it, as of its arrival."""
    p = entry.payload
    incident = book.incidents.get(str(p.get("incident_id", "")))
    if incident is None or graph is None:
        raise CharterError.single("not_authorized", "a classification or report of no known incident or escalation "
                                  "configuration")
    now = _time(entry.received_at)
    try:
        if entry.type == CLASSIFIED:
            statement = classification_statement(
                str(p["incident_id"]), serious=p["serious"] is True, note=str(p["note"]), ground=p.get("ground"),
                death=p.get("death") is True, widespread=p.get("widespread") is True, aware_at=p.get("aware_at"))
            signed = {k: v for k, v in p.items() if k not in ("actor", "signed_at", "role", "reporting")}
            if signed != statement:
                raise CharterError.single("not_authorized", "the classification's fields are not the ones the "
                                          "command writes")
            role, reporting = authorize_classification(graph, incident, str(p.get("actor")), statement, now,
                                                       systems.get(incident.system_id))
            if (p.get("role"), p.get("reporting")) != (role, reporting):
                raise CharterError.single("not_authorized", f"the entry records role {p.get('role')!r} and reporting "
                                          f"{p.get('reporting')}; the rule gives {role!r} and {reporting}")
            return
        statement = filing_statement(str(p["incident_id"]), authority=str(p["authority"]),
                                     reference=str(p["reference"]), kind=str(p["kind"]), filed_at=str(p["filed_at"]))
        if {k: v for k, v in p.items() if k not in ("actor", "signed_at", "role")} != statement:
            raise CharterError.single("not_authorized", "the report's fields are not the ones the command writes")
        role = authorize_filing(graph, incident, str(p.get("actor")), statement, now)
        if p.get("role") != role:
            raise CharterError.single("not_authorized", f"the entry records role {p.get('role')!r}; the rule gives "
                                      f"{role!r}")
    except (KeyError, TypeError, ValueError) as exc:
        raise CharterError.single("not_authorized", f"malformed {entry.type}: {exc!r}") from exc


def _check_recorded_transition(graph: EscalationGraph | None, book: IncidentBook, p: dict[str, Any],
                               key_id: str | None) -> None:
    incident = book.incidents.get(p.get("incident_id", ""))
    action = p.get("action", "")
    if incident is None or graph is None or action not in ACTIONS:
        raise CharterError.single("not_authorized", "a transition of no known incident, action or escalation "
                                  "configuration")
    if p.get("actor") == AUTOMATIC and key_id is None:
        if action != "reopen" or incident.state not in (State.RESOLVED, State.CLOSED) or \
                p.get("from") != incident.state.value:
            raise CharterError.single("not_authorized", f"the log reopens only resolved or closed incidents; this "
                                      f"one was {incident.state.value}")
        return
    decisions = p.get("decision", [])
    if not isinstance(decisions, list):
        raise CharterError.single("not_authorized", "decisions are not a list")
    role = authorize_transition(graph, incident, action, str(p.get("actor")), decisions)
    if (p.get("role"), p.get("from"), p.get("to")) != (role, incident.state.value, ACTIONS[action][1].value):
        raise CharterError.single("not_authorized", f"the entry records role {p.get('role')!r} and {p.get('from')} -> "
                                  f"{p.get('to')}; the rule gives {role!r} and {incident.state.value} -> "
                                  f"{ACTIONS[action][1].value}")


def _check_waiver(graph: EscalationGraph | None, book: IncidentBook, p: dict[str, Any],
                  decision: dict[str, Any] | None) -> None:
    from .policy.model import _parse_duration

    incident = book.incidents.get(p.get("incident_id", ""))
    if incident is None or graph is None or decision is None or decision.get("incident_id") != incident.id:
        raise CharterError.single("not_authorized", "a waiver no accept_risk decision right before it granted")
    covers = (p.get("system_id"), p.get("rule"), p.get("segment"), p.get("owner"))
    if covers != (incident.system_id, incident.rule, incident.segment, decision.get("actor")):
        raise CharterError.single("not_authorized", "the waiver covers another system, rule, segment or owner than "
                                  "the decision that granted it")
    try:
        length = _time(p["expires_at"]) - _time(p["granted_at"])
        signed = _parse_duration(str(decision.get("expires")))
    except (KeyError, ValueError) as exc:
        raise CharterError.single("not_authorized", f"the waiver's times or the decision's length are unreadable: "
                                  f"{exc}") from exc
    rule = graph.config.decisions.get("accept_risk")
    if length != signed or (rule is not None and rule.max_duration is not None and length > rule.max_duration):
        raise CharterError.single("not_authorized", "the waiver lasts longer than the decision signed, or than the "
                                  "escalation configuration allows")


def _check_independence(incident: Incident, action: str, principal: str) -> None:
    """Separation of duties: the validator is not the investigator, the decider not the validator."""
    if action == "validate":
        earlier, did = incident.actors.get("investigate") or incident.actors.get("acknowledge"), "investigated"
    elif action == "decide":
        earlier, did = incident.actors.get("validate"), "validated"
    else:
        return
    if earlier == principal:
        raise CharterError.single("separation_of_duties", f"{principal!r} {did} {incident.id} and may not also "
                                  f"{action} it")


def _waiver_entry(ledger: Ledger, graph: EscalationGraph, incident: Incident, principal: str,
                  expires: str | None) -> NewEntry:
    from .policy.model import _parse_duration, format_duration

    rule = graph.config.decisions["accept_risk"]
    if expires is None:
        raise CharterError.single("expiry_required", "accept_risk needs --expires (an ISO 8601 duration, e.g. P30D)")
    try:
        duration = _parse_duration(expires)
    except ValueError as exc:
        raise CharterError.single("usage", f"--expires: {exc}") from exc
    if rule.max_duration is not None and duration > rule.max_duration:
        raise CharterError.single("waiver_too_long", f"accepted risk may last at most "
                                  f"{format_duration(rule.max_duration)}, not {format_duration(duration)}")
    now = ledger.clock()
    waiver_id = f"WVR-{incident.id[4:]}-{len(incident.decisions) + 1}"
    return NewEntry(WAIVER, {"waiver_id": waiver_id, "incident_id": incident.id, "system_id": incident.system_id,
                             "rule": incident.rule, "segment": incident.segment, "owner": principal,
                             "granted_at": format_time(now), "expires_at": format_time(now + duration)},
                    f"waiver:{waiver_id}", subject=incident.system_id)


# -- deadlines -----------------------------------------------------------------------------------


def stage_deadline(graph: EscalationGraph | None, incident: Incident) -> tuple[str, datetime.datetime] | None:
    """The step the incident waits for and when it is due (as stored when the stage began); None once decided.

    Incidents store their deadline when a stage begins; `graph` is only needed for ledgers written
    before they did, and without it such an incident shows no deadline.
    """
    if incident.state not in ACTIVE:
        return None
    if incident.deadline is not None:
        return incident.deadline[0], _time(incident.deadline[1])
    if graph is None:
        return None
    computed = deadline_for(graph, incident.severity, incident.tier, incident.state, _time(incident.stage_entered_at))
    return (computed["step"], _time(computed["due_at"])) if computed else None


#: The stage whose roles act next, by state.
_NEXT_STAGE = {State.OPEN: "investigate", State.ACKNOWLEDGED: "investigate", State.INVESTIGATING: "validate",
               State.VALIDATED: "decide"}


@dataclass(frozen=True)
class IncidentNotice:
    """What a submission did to one incident: opened, attached a breach to, or reopened it."""

    incident_id: str
    action: str
    system_id: str
    rule: str
    segment: str | None
    severity: str
    state: str
    step: str | None
    due_at: str | None
    paged: tuple[tuple[str, tuple[str, ...]], ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: who is paged as a list of {role, members}."""
        return {"incident_id": self.incident_id, "action": self.action, "system": self.system_id,
                "rule": self.rule, "segment": self.segment, "severity": self.severity, "state": self.state,
                "next_step": self.step, "due_at": self.due_at,
                "paged": [{"role": role, "members": list(members)} for role, members in self.paged]}


def incident_notices(book: IncidentBook, graph: EscalationGraph, appended: Iterable[Entry]) -> list[IncidentNotice]:
    """One notice per incident that `appended` entries opened, reopened or attached a finding to.

    Args:
        book: the incidents with `appended` folded in.
        graph: the escalation graph in force, for the roles of the stage each incident waits for.
        appended: the entries a submission wrote.
    """
    actions: dict[str, str] = {}
    for entry in appended:
        incident = entry.payload.get("incident_id") if entry.type in (OPENED, FINDING_ATTACHED, TRANSITION) \
            else None
        if incident is None:
            continue
        action = ("opened" if entry.type == OPENED else
                  "reopened" if entry.type == TRANSITION and entry.payload.get("action") == "reopen" else "attached")
        if actions.get(incident) in ("opened", "reopened"):
            continue  # the breach that opened or reopened it also attaches; say the stronger thing
        actions[incident] = action
    notices = []
    for incident_id_, action in actions.items():
        incident = book.incidents[incident_id_]
        due = stage_deadline(graph, incident)
        paged: list[tuple[str, tuple[str, ...]]] = []
        stage = _NEXT_STAGE.get(incident.state)
        if stage is not None:
            assignment = graph.band(incident.severity).assignment(stage)
            for role in dict.fromkeys([*assignment.responsible, assignment.accountable, *incident.escalated_to]):
                if role in graph.config.roles:
                    paged.append((role, graph.config.roles[role].members))
        notices.append(IncidentNotice(incident.id, action, incident.system_id, incident.rule, incident.segment,
                                      incident.severity.value, incident.state.value, due[0] if due else None,
                                      format_time(due[1]) if due else None, tuple(paged)))
    return notices


# -- metrics -------------------------------------------------------------------------------------


def _stats(values: list[float], missing: int) -> dict[str, Any]:
    if not values:
        return {"n": 0, "missing": missing, "median_h": None, "p90_h": None}
    ordered = sorted(values)
    p90 = ordered[math.ceil(0.9 * len(ordered)) - 1]  # nearest rank
    import statistics  # here: listing incidents needs no statistics

    return {"n": len(values), "missing": missing, "median_h": round(statistics.median(ordered) / 3600, 2),
            "p90_h": round(p90 / 3600, 2)}


#: metric -> (start point, end points: the first of them that happened ends the interval)
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "mttd": ("onset", ("detected",)),
    "mtta": ("opened", ("acknowledge", "investigate")),  # starting the investigation acknowledges too
    "time_to_decision": ("opened", ("decide",)),
    "mttr": ("opened", ("resolve",)),
    # Art. 73: from awareness to the first report filed, over serious incidents only
    "time_to_filing": ("aware", ("report_filed",)),
}
#: Art. 73 reporting outcomes counted per scope
REPORTING_COUNTS = ("serious", "on_time", "late", "pending", "overdue")


@dataclass
class Metrics:
    """Incident metrics, and the durations refused as data-quality errors."""

    scopes: dict[str, dict[str, Any]]
    rejected: list[dict[str, Any]]
    #: scope -> Art. 73 counts: serious incidents, first report on time, late, not yet filed (pending),
    #: and of those, past their deadline at the time asked (overdue)
    reporting: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"scopes": {scope: {metric: stats}}, "reporting": {scope: counts}, "rejected": [...]}``."""
        return {"scopes": self.scopes, "reporting": self.reporting, "rejected": self.rejected}


def metrics(incidents: Iterable[Incident], at: datetime.datetime | None = None) -> Metrics:
    """MTTD, MTTA, time to decision, MTTR and time to filing (median, p90, counts) per system and portfolio.

    MTTD runs from the end of the window in which the breach became measurable to its detection;
    time to filing from the recorded awareness of a serious incident to its first Art. 73 report,
    over serious incidents only; the others from the incident's opening. Incidents that have not
    reached an endpoint count as missing. A negative duration (clock skew or bad data) is left out
    of the statistics and listed under `rejected`, naming the incident, so one bad clock neither
    skews nor blocks the portfolio. `reporting` counts serious incidents by outcome; pending ones
    past their deadline at `at` count as overdue too (none without `at`).
    """
    rows = list(incidents)
    scopes: dict[str, dict[str, Any]] = {}
    rejected: list[dict[str, Any]] = []
    groups: dict[str, list[Incident]] = {"portfolio": rows}
    for incident in rows:
        groups.setdefault(incident.system_id, []).append(incident)
    reporting: dict[str, dict[str, int]] = {}
    for name, members in sorted(groups.items()):
        scopes[name] = {}
        counts = reporting[name] = dict.fromkeys(REPORTING_COUNTS, 0)
        for incident in members:
            status = incident.reporting_status(at)
            if status is not None:
                counts["serious"] += 1
                counts["pending" if status == "overdue" else status] += 1
                counts["overdue"] += status == "overdue"
        for metric, (start, ends) in METRICS.items():
            values: list[float] = []
            missing = skewed = 0
            for incident in members:
                if metric == "time_to_filing" and not incident.serious:
                    continue
                points = {"onset": incident.onset_at, "detected": incident.detected_at, "opened": incident.opened_at,
                          **incident.times}
                if incident.serious:
                    assert incident.classification is not None
                    first = incident.first_report()
                    points["aware"] = incident.classification["aware_at"]
                    if first is not None:
                        points["report_filed"] = first["filed_at"]
                reached = [points[end] for end in ends if end in points]
                if not reached:
                    missing += 1
                    continue
                end_at = min(_time(t) for t in reached)
                seconds = (end_at - _time(points[start])).total_seconds()
                if seconds < 0:
                    skewed += 1
                    if name == "portfolio":
                        rejected.append({"incident": incident.id, "metric": metric, "reason": "clock_skew",
                                         "message": f"{'/'.join(ends)} is {-seconds:.0f} s before {start}"})
                    continue
                values.append(seconds)
            scopes[name][metric] = {**_stats(values, missing), "rejected": skewed}
    return Metrics(scopes, rejected, reporting)
