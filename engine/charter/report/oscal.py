"""OSCAL 1.1 export of a report: assessment results for its (control, system) statuses and a plan of
action and milestones (POA&M) for its open nonconformities and waivers.

How Charter maps onto OSCAL, for auditors and for whoever changes this module:

* **One `result` per AI system.** Its `reviewed-controls` include the framework's controls that apply
  to the system; each not-applicable control is an `exclude-controls` selection of its own, with the
  reason as remarks and the prop ``status=not_applicable``. It gets no finding: OSCAL objective status
  allows only ``satisfied`` and ``not-satisfied``, and ``not-satisfied`` would read as a gap.
* **Each cited (rule, system) finding is an `observation`**: method ``TEST`` (an automated KPI
  evaluation), type ``control-objective``, the AI system as an `inventory-item` subject, the measured
  values and thresholds in the description and as props, and one `relevant-evidence` whose ``href``
  names the ledger entry: ``urn:charter:ledger:<origin>:seq:<n>#sha256:<record hash>`` (the origin
  percent-encoded, so its colons cannot be mistaken for the separators). Without evidence, the
  ``href`` names the checkpoint the absence was read at: ``urn:charter:ledger:<origin>:checkpoint:<size>#root:<hex>``.
* **Each test result and event cited for a (control, system) is an `observation` too**: a test result with
  method ``TEST`` (a test or assessment someone performed: its name, method, outcome and when), an event
  with method ``EXAMINE`` (the record of a process that ran, such as the minutes of a management review,
  is what an assessor examines); each with the ledger entry as its `relevant-evidence` and the time it was
  performed or happened as ``collected``.
* **Each other (control, system) status is a `finding`** targeting ``{type: objective-id, target-id:
  <control token>}``. Its objective is ``satisfied`` (reason ``pass``) **only when the status is
  `operating`** (primary KPI rules pass with current evidence, or the control is implemented and a current
  passing test result or a current event shows it operating). ``nonconformity`` is ``not-satisfied``
  with reason ``fail``; ``no_evidence``, ``designed``, ``implemented`` and ``undetermined`` are
  ``not-satisfied`` with reason ``other`` ("not completely satisfied, but may be partially satisfied"),
  and ``implementation-status`` says what was shown: ``planned`` for designed (documented only),
  ``implemented`` for implemented (documented and attested) and operating. A passing KPI on its own
  never makes a finding satisfied. The Charter status and reason are props (``status``) and remarks.
* **Control ids** become OSCAL tokens: framework and id joined by ``_``, lower case, each
  parenthesised paragraph a dot-separated part, anything else outside ``[a-z0-9._-]`` a ``-``
  (``iso-42001:A.6.2.6`` -> ``iso-42001_a.6.2.6``, ``eu-ai-act:art-55(1)(a)`` -> ``eu-ai-act_art-55.1.a``).
  Two refs meeting in one token are refused. The original ref is kept as the prop ``control-ref``.
* **The POA&M** has one `poam-item` per risk: an incident (``open`` or ``investigating`` while under
  investigation, ``remediating`` once decided, ``closed`` once resolved) or a waiver (``deviation-approved``
  while active, ``open`` once expired), with its deadline on the risk and as a milestone task. With
  nothing open there is no POA&M (OSCAL requires at least one item).
* **Deterministic**: every UUID is a UUID v5 of `NAMESPACE` and stable ids (subjects such as findings,
  risks and systems keep theirs across revisions, as OSCAL asks; the documents and their results are
  keyed by the checkpoint and report time), lists are sorted, and ``last-modified`` is the report time,
  so the same input gives the same bytes.
* **Text**: control characters, lone surrogates and bidirectional overrides become U+FFFD; titles and
  prop values are one line; Markdown (OSCAL markup) syntax in free text is escaped. No standard's text
  is exported: controls appear by id only.

Props carry ``ns`` `NS` (OSCAL reserves un-namespaced prop names for its own vocabulary).
"""

from __future__ import annotations

import datetime
import json
import re
import urllib.parse
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import CharterError, DiagnosticCollector
from ..incidents import State
from ..ledger.keys import check_origin
from ..ledger.records import format_time

__all__ = ["CONTROL_STATUSES", "EVIDENCE_STATES", "FINDING_STATUSES", "METHODS", "NAMESPACE", "NS", "OSCAL_VERSION",
           "OscalControlStatus", "OscalInput", "OscalObservation", "OscalRisk", "assessment_results", "control_token",
           "evidence_href", "plan_of_action", "render_oscal"]

OSCAL_VERSION = "1.1.3"
#: namespace of Charter's props
NS = "https://charter.dev/ns/oscal"
#: namespace of every UUID this module makes
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, NS)
FINDING_STATUSES = ("pass", "warn", "breach", "missing", "error", "stale", "no_evidence")
#: the state at the report's time of a test result or event an observation records
EVIDENCE_STATES = ("current", "expired", "withdrawn", "not_yet_valid")
#: the OSCAL method of each kind of observation
METHODS = {"kpi": "TEST", "test_result": "TEST", "event": "EXAMINE"}
CONTROL_STATUSES = ("not_applicable", "no_evidence", "designed", "implemented", "operating", "nonconformity",
                    "undetermined")

# Charter control status -> (objective state, reason, implementation-status or None, what it means)
_OBJECTIVE: dict[str, tuple[str, str, str | None, str]] = {
    "operating": ("satisfied", "pass", "implemented",
                  "its primary KPI rules pass with current evidence, or it is documented, attested and shown "
                  "operating by a current passing test result or a current event, so the objective is satisfied"),
    "implemented": ("not-satisfied", "other", "implemented",
                    "documented and attested, but not shown operating by current primary KPI evidence, a current "
                    "passing test result or a current event"),
    "designed": ("not-satisfied", "other", "planned", "documented, without a current attestation that it is in place"),
    "no_evidence": ("not-satisfied", "other", None, "no current evidence"),
    "nonconformity": ("not-satisfied", "fail", None,
                      "an open nonconformity: a breach under investigation or an expired waiver"),
    "undetermined": ("not-satisfied", "other", None, "the evidence does not determine a status"),
}
# (risk kind, Charter state) -> OSCAL risk status
_RISK_STATUS: dict[tuple[str, str], str] = {
    **{("incident", s.value): "open" for s in (State.OPEN, State.ACKNOWLEDGED)},
    **{("incident", s.value): "investigating" for s in (State.INVESTIGATING, State.VALIDATED)},
    ("incident", State.DECIDED.value): "remediating",
    **{("incident", s.value): "closed" for s in (State.RESOLVED, State.CLOSED)},
    ("waiver", "active"): "deviation-approved",
    ("waiver", "expired"): "open",
}
_PLATFORM = str(uuid.uuid5(NAMESPACE, "assessment-platform:charter"))
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TOKEN = re.compile(r"[a-z_][a-z0-9._-]*")
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_MARKDOWN = re.compile(r"([\\`*_{}\[\]<>|~&#])")


@dataclass(frozen=True)
class OscalLedgerLink:
    """A ledger entry a report relies on beyond a finding: a decision, waiver, classification, filing, activation."""

    label: str  # what the entry is, e.g. "decision on INC-1a2b3c4d", "EU AI Act classification of claims-approval"
    seq: int
    record_hash: str


@dataclass(frozen=True)
class OscalObservation:
    """One (rule, system) finding the report cites, or a test result or event cited for a system."""

    id: str  # stable, e.g. "core.fairness/approval-parity@claims-approval", "test:57@claims-approval"
    system: str
    rule: str  # a KPI rule; a test's name; an event's kind
    title: str
    status: str  # finding status (pass, warn, breach, missing, error, stale, no_evidence); else `EVIDENCE_STATES`
    controls: tuple[str, ...]  # control refs this observation bears on, "iso-42001:A.6.2.6"
    observed: dict[str, float]
    thresholds: dict[str, float]
    explanation: str
    collected: str  # RFC 3339 (window end or evaluation time)
    ledger_seq: int | None  # the finding entry; None when no evidence
    record_hash: str | None
    kind: Literal["kpi", "test_result", "event"] = "kpi"
    outcome: str | None = None  # a test result's: passed, failed, inconclusive
    method: str | None = None  # a test result's method or tool
    actor: str | None = None  # who recorded a test result or event
    governed_by: tuple[OscalLedgerLink, ...] = ()  # the decisions or waivers that govern a breach


@dataclass(frozen=True)
class OscalControlStatus:
    """One (control, system) status of the report."""

    control: str  # "eu-ai-act:art-15"
    system: str
    status: str  # not_applicable, no_evidence, designed, implemented, operating, nonconformity, undetermined
    reason: str
    observations: tuple[str, ...]  # OscalObservation ids behind it
    basis: OscalLedgerLink | None = None  # the entry the applicability decision rests on


@dataclass(frozen=True)
class OscalRisk:
    """An open nonconformity (incident) or a waiver, for the POA&M."""

    id: str
    kind: Literal["incident", "waiver"]
    system: str
    rule: str
    controls: tuple[str, ...]
    title: str
    description: str
    severity: str
    state: str
    opened: str
    deadline: str | None
    ledger_seq: int | None  # the incident.opened or waiver.granted entry
    record_hash: str | None
    governed_by: tuple[OscalLedgerLink, ...] = ()  # decisions, the Art. 73 classification and filings


@dataclass(frozen=True)
class OscalInput:
    """What the export needs of a report, bound to one ledger state."""

    framework: str
    framework_name: str
    title: str
    as_of: str  # RFC 3339
    origin: str  # the ledger state the report is bound to
    checkpoint_size: int
    checkpoint_root: str
    statuses: tuple[OscalControlStatus, ...]
    observations: tuple[OscalObservation, ...]
    risks: tuple[OscalRisk, ...]
    inputs: tuple[OscalLedgerLink, ...] = ()  # the policy, escalation and applicability activations judged by


def control_token(ref: str) -> str:
    """The OSCAL token of a control ref (``iso-42001:A.6.2.6`` -> ``iso-42001_a.6.2.6``).

    Raises:
        CharterError: ``bad_control_ref`` when the ref is not ``framework:id``.
    """
    framework, sep, local = ref.partition(":")
    if not sep or not framework or not local:
        raise CharterError.single("bad_control_ref", f"control {_echo(ref)} is not framework:id")
    local = re.sub(r"\(([^()]*)\)", r".\1", local)
    token = re.sub(r"[^a-z0-9._-]", "-", f"{framework}_{local}".lower())
    if not _TOKEN.fullmatch(token):  # a framework starting with a digit, dot or dash
        token = f"_{token}"
    return token


def evidence_href(origin: str, seq: int, record_hash: str) -> str:
    """The URN naming one ledger entry: ``urn:charter:ledger:<origin>:seq:<n>#sha256:<record hash>``."""
    return f"urn:charter:ledger:{_urn_part(origin)}:seq:{seq}#sha256:{record_hash}"


def assessment_results(data: OscalInput) -> dict[str, Any]:
    """The report as an OSCAL assessment-results document: ``{"assessment-results": {...}}``.

    Raises:
        CharterError: inconsistent input (every problem found, each with its path in `data`).
    """
    return _Builder(data).assessment_results()


def plan_of_action(data: OscalInput) -> dict[str, Any] | None:
    """The report's risks as an OSCAL POA&M: ``{"plan-of-action-and-milestones": {...}}``; None without risks.

    Raises:
        CharterError: inconsistent input.
    """
    return _Builder(data).plan_of_action()


def render_oscal(data: OscalInput) -> dict[str, str]:
    """The OSCAL documents as JSON text, keyed by model: ``assessment-results`` always,
    ``plan-of-action-and-milestones`` when there is a risk. Same input, same bytes.

    Two documents, because one JSON object holding both root keys is no valid OSCAL document.

    Raises:
        CharterError: inconsistent input.
    """
    builder = _Builder(data)
    documents = {"assessment-results": _dump(builder.assessment_results())}
    poam = builder.plan_of_action()
    if poam is not None:
        documents["plan-of-action-and-milestones"] = _dump(poam)
    return documents


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _uuid(*parts: object) -> str:
    return str(uuid.uuid5(NAMESPACE, json.dumps(parts, ensure_ascii=True)))


def _urn_part(text: str) -> str:
    return urllib.parse.quote(text, safe="._-/@+")


def _echo(value: object, limit: int = 80) -> str:
    text = _line(str(value))
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _line(text: str) -> str:
    """One line: whitespace runs become one space, unprintable characters U+FFFD, no edge whitespace."""
    return _UNPRINTABLE.sub("\ufffd", " ".join(text.split()))


def _md(text: str) -> str:
    """Free text made inert inside OSCAL markup (Markdown): one line, its syntax characters escaped."""
    return _MARKDOWN.sub(r"\\\1", _line(text))


def _number(value: float) -> str:
    return repr(float(value))


def _values(values: dict[str, float]) -> str:
    return "; ".join(f"{_md(k)} = {_number(v)}" for k, v in sorted(values.items())) or "none recorded"


class _Builder:
    """Checks the input once, then builds the documents from it."""

    def __init__(self, data: OscalInput) -> None:
        self.data = data
        problems = DiagnosticCollector()
        self.times: dict[str, str] = {}  # JSON path -> normalised time
        self.tokens: dict[str, str] = {}  # control ref -> token
        self._check(problems)
        problems.raise_if_any()
        self.as_of = self.times["$.as_of"]
        self.collected = {o.id: self.times[f"$.observations[{i}].collected"] for i, o in enumerate(data.observations)}
        self.risk_times = {(r.kind, r.id): (self.times[f"$.risks[{i}].opened"],
                                            self.times.get(f"$.risks[{i}].deadline")) for i, r in enumerate(data.risks)}
        self.observations = {o.id: o for o in data.observations}
        self.statuses = sorted(data.statuses, key=lambda s: (s.system, self.tokens[s.control]))
        self.risks = sorted(data.risks, key=lambda r: (r.system, r.kind, r.id))
        self.systems = sorted({s.system for s in data.statuses})  # one result each
        self.checkpoint_href = (f"urn:charter:ledger:{_urn_part(data.origin)}:checkpoint:{data.checkpoint_size}"
                                f"#root:{data.checkpoint_root}")

    # -- checking ---------------------------------------------------------------------------------

    def _check(self, problems: DiagnosticCollector) -> None:
        data = self.data
        try:
            check_origin(data.origin)
        except CharterError as error:
            problems.add("bad_origin", error.diagnostics[0].message, path="$.origin")
        for name in ("framework", "framework_name", "title"):
            if not _line(getattr(data, name)):
                problems.add("empty_field", f"{name} is empty", path=f"$.{name}")
        if not isinstance(data.checkpoint_size, int) or data.checkpoint_size < 1:
            problems.add("bad_checkpoint", f"checkpoint size {data.checkpoint_size!r} is not a positive integer",
                         path="$.checkpoint_size")
        if not _HEX64.fullmatch(data.checkpoint_root):
            problems.add("bad_checkpoint", f"checkpoint root {_echo(data.checkpoint_root)} is not 64 lower-case "
                         "hex digits", path="$.checkpoint_root")
        as_of = self._time(problems, data.as_of, "$.as_of")
        self._check_observations(problems, as_of)
        self._check_statuses(problems)
        self._check_risks(problems, as_of)
        owners: dict[str, str] = {}
        for ref, token in sorted(self.tokens.items()):
            if token in owners:
                problems.add("control_token_clash", f"controls {_echo(owners[token])} and {_echo(ref)} both become "
                             f"the OSCAL id {token!r}", path="$.statuses")
            owners.setdefault(token, ref)

    def _time(self, problems: DiagnosticCollector, text: str, path: str) -> datetime.datetime | None:
        try:
            moment = datetime.datetime.fromisoformat(text)
            year = moment.astimezone(datetime.UTC).year if moment.tzinfo else None
        except (TypeError, ValueError, OverflowError):
            problems.add("bad_time", f"{_echo(text)} is not an RFC 3339 time", path=path)
            return None
        if year is None:
            problems.add("bad_time", f"{_echo(text)} has no time zone", path=path)
            return None
        if not 1900 <= year <= 2999:  # OSCAL's date-time pattern
            problems.add("bad_time", f"{_echo(text)} is outside the years 1900-2999 that OSCAL accepts", path=path)
            return None
        self.times[path] = format_time(moment)
        return moment

    def _text(self, problems: DiagnosticCollector, value: object, path: str) -> None:
        if not isinstance(value, str) or not _line(value):
            problems.add("empty_field", f"{path.rsplit('.', 1)[-1]} is empty or not text", path=path)

    def _refs(self, problems: DiagnosticCollector, refs: Iterable[str], path: str) -> None:
        for j, ref in enumerate(refs):
            try:
                self.tokens[ref] = control_token(ref)
            except CharterError as error:
                problems.add(error.code, error.diagnostics[0].message, path=f"{path}[{j}]")

    def _evidence(self, problems: DiagnosticCollector, seq: int | None, record_hash: str | None, path: str) -> None:
        if (seq is None) != (record_hash is None):
            problems.add("bad_evidence", "ledger_seq and record_hash must be given together", path=path)
        elif seq is not None and (not isinstance(seq, int) or isinstance(seq, bool) or seq < 0):
            problems.add("bad_evidence", f"ledger seq {seq!r} is not a non-negative integer", path=f"{path}.ledger_seq")
        elif record_hash is not None and not _HEX64.fullmatch(record_hash):
            problems.add("bad_evidence", f"record hash {_echo(record_hash)} is not 64 lower-case hex digits",
                         path=f"{path}.record_hash")

    def _check_observations(self, problems: DiagnosticCollector, as_of: datetime.datetime | None) -> None:
        seen: set[str] = set()
        assessed = {s.system for s in self.data.statuses}
        for i, obs in enumerate(self.data.observations):
            path = f"$.observations[{i}]"
            for name in ("id", "system", "rule"):
                self._text(problems, getattr(obs, name), f"{path}.{name}")
            if obs.id in seen:
                problems.add("duplicate_id", f"observation {_echo(obs.id)} appears twice", path=f"{path}.id")
            seen.add(obs.id)
            allowed = FINDING_STATUSES if obs.kind == "kpi" else EVIDENCE_STATES
            if obs.kind not in METHODS:
                problems.add("bad_status", f"observation kind {_echo(obs.kind)} is not one of {', '.join(METHODS)}",
                             path=f"{path}.kind")
            elif obs.status not in allowed:
                problems.add("bad_status", f"{'finding status' if obs.kind == 'kpi' else 'state'} {_echo(obs.status)} "
                             f"is not one of {', '.join(allowed)}", path=f"{path}.status")
            if obs.kind != "kpi" and (obs.ledger_seq is None or obs.actor is None):
                problems.add("bad_evidence", f"a {obs.kind} observation cites its ledger entry and who recorded it",
                             path=path)
            if obs.kind == "test_result" and obs.outcome not in ("passed", "failed", "inconclusive"):
                problems.add("bad_status", f"test outcome {_echo(obs.outcome)} is not passed, failed or inconclusive",
                             path=f"{path}.outcome")
            self._refs(problems, obs.controls, f"{path}.controls")
            for name in ("observed", "thresholds"):
                for key, value in getattr(obs, name).items():
                    if not isinstance(key, str) or not _line(key) or isinstance(value, bool) \
                            or not isinstance(value, int | float):
                        problems.add("bad_value", f"{name} {_echo(key)}: {_echo(value)} is not a named number",
                                     path=f"{path}.{name}")
            collected = self._time(problems, obs.collected, f"{path}.collected")
            if collected and as_of and collected > as_of:
                problems.add("after_report_time", f"collected {_echo(obs.collected)} is after the report time "
                             f"{_echo(self.data.as_of)}", path=f"{path}.collected")
            self._evidence(problems, obs.ledger_seq, obs.record_hash, path)
            self._links(problems, obs.governed_by, f"{path}.governed_by")
            if obs.system not in assessed:
                problems.add("unknown_system", f"observation {_echo(obs.id)} is of system {_echo(obs.system)}, "
                             "for which the report has no control status", path=f"{path}.system")

    def _check_statuses(self, problems: DiagnosticCollector) -> None:
        observations = {o.id: o for o in self.data.observations}
        seen: set[tuple[str, str]] = set()
        self._links(problems, self.data.inputs, "$.inputs")
        for i, status in enumerate(self.data.statuses):
            path = f"$.statuses[{i}]"
            if status.basis is not None:
                self._links(problems, [status.basis], f"{path}.basis")
            self._text(problems, status.system, f"{path}.system")
            self._refs(problems, [status.control], f"{path}.control")
            if status.control.partition(":")[0] != self.data.framework:
                problems.add("wrong_framework", f"control {_echo(status.control)} is not of {self.data.framework}",
                             path=f"{path}.control")
            if (status.control, status.system) in seen:
                problems.add("duplicate_id", f"{_echo(status.control)} for {_echo(status.system)} appears twice",
                             path=path)
            seen.add((status.control, status.system))
            if status.status not in CONTROL_STATUSES:
                problems.add("bad_status", f"control status {_echo(status.status)} is not one of "
                             f"{', '.join(CONTROL_STATUSES)}", path=f"{path}.status")
            for j, ref in enumerate(status.observations):
                cited = observations.get(ref)
                if cited is None:
                    problems.add("unknown_observation", f"observation {_echo(ref)} is not in observations",
                                 path=f"{path}.observations[{j}]")
                elif cited.system != status.system:
                    problems.add("unknown_observation", f"observation {_echo(ref)} is of system "
                                 f"{_echo(cited.system)}, not {_echo(status.system)}", path=f"{path}.observations[{j}]")

    def _check_risks(self, problems: DiagnosticCollector, as_of: datetime.datetime | None) -> None:
        seen: set[tuple[str, str]] = set()
        for i, risk in enumerate(self.data.risks):
            path = f"$.risks[{i}]"
            for name in ("id", "system", "rule"):
                self._text(problems, getattr(risk, name), f"{path}.{name}")
            if (risk.kind, risk.id) in seen:
                problems.add("duplicate_id", f"{risk.kind} {_echo(risk.id)} appears twice", path=f"{path}.id")
            seen.add((risk.kind, risk.id))
            if (risk.kind, risk.state) not in _RISK_STATUS:
                known = sorted(s for k, s in _RISK_STATUS if k == risk.kind)
                problems.add("bad_status", f"{_echo(risk.kind)} state {_echo(risk.state)} is not one of "
                             f"{', '.join(known) or '(no such kind: incident or waiver)'}", path=f"{path}.state")
            self._refs(problems, risk.controls, f"{path}.controls")
            opened = self._time(problems, risk.opened, f"{path}.opened")
            if opened and as_of and opened > as_of:
                problems.add("after_report_time", f"opened {_echo(risk.opened)} is after the report time "
                             f"{_echo(self.data.as_of)}", path=f"{path}.opened")
            if risk.deadline is not None:
                self._time(problems, risk.deadline, f"{path}.deadline")
            self._evidence(problems, risk.ledger_seq, risk.record_hash, path)
            self._links(problems, risk.governed_by, f"{path}.governed_by")

    def _links(self, problems: DiagnosticCollector, links: Iterable[OscalLedgerLink], path: str) -> None:
        for j, link in enumerate(links):
            self._text(problems, link.label, f"{path}[{j}].label")
            self._evidence(problems, link.seq, link.record_hash, f"{path}[{j}]")

    # -- building ---------------------------------------------------------------------------------

    def _prop(self, name: str, value: object, group: str | None = None) -> dict[str, str]:
        prop = {"name": name, "ns": NS, "value": _line(str(value))}
        if group is not None:
            prop["group"] = group
        return prop

    def _props(self, pairs: Iterable[tuple[str, object]]) -> list[dict[str, str]]:
        return [self._prop(name, value) for name, value in pairs if _line(str(value))]

    def _control_props(self, refs: Iterable[str]) -> list[tuple[str, object]]:
        pairs: list[tuple[str, object]] = []
        for ref in sorted(set(refs), key=lambda r: self.tokens[r]):
            pairs += [("control-id", self.tokens[ref]), ("control-ref", ref)]
        return pairs

    def _ledger_link(self, link: OscalLedgerLink) -> dict[str, Any]:
        """An OSCAL link to a ledger entry the report relies on, by the same URN as findings' evidence."""
        return {"href": evidence_href(self.data.origin, link.seq, link.record_hash), "rel": "reference",
                "text": f"{_md(link.label)}: ledger entry {link.seq}, record hash {link.record_hash}"}

    def _metadata(self, title: str) -> dict[str, Any]:
        data = self.data
        links = {"links": [self._ledger_link(link) for link in data.inputs]} if data.inputs else {}
        return {
            "title": _md(title),
            "last-modified": self.as_of,
            "version": self.as_of,
            "oscal-version": OSCAL_VERSION,
            "props": self._props([("framework", data.framework), ("ledger-origin", data.origin),
                                  ("checkpoint-size", data.checkpoint_size), ("checkpoint-root", data.checkpoint_root),
                                  ("report-time", self.as_of)]),
            **links,
            "remarks": f"Exported by Charter from the report on {_md(data.framework_name)} as of {self.as_of}, bound "
                       f"to checkpoint {data.checkpoint_size} of ledger {_md(data.origin)}. Controls are named by id "
                       "only; see the prop control-ref for Charter's reference.",
        }

    def _checkpoint_resource(self) -> dict[str, Any]:
        data = self.data
        return {
            "uuid": _uuid("checkpoint", data.origin, data.checkpoint_size, data.checkpoint_root),
            "title": f"Ledger checkpoint {data.checkpoint_size}",
            "description": f"The signed checkpoint of the first {data.checkpoint_size} entries of ledger "
                           f"{_md(data.origin)}, Merkle root {data.checkpoint_root}. Every ledger entry cited here is "
                           "included in it; charter verify checks the ledger and the checkpoint.",
            "props": self._props([("ledger-origin", data.origin), ("checkpoint-size", data.checkpoint_size),
                                  ("checkpoint-root", data.checkpoint_root)]),
            "rlinks": [{"href": self.checkpoint_href}],
        }

    def _inventory_item(self, system: str) -> dict[str, Any]:
        return {"uuid": _uuid("system", self.data.origin, system),
                "description": f"AI system {_md(system)} of the Charter registry.",
                "props": self._props([("system", system)])}

    def _assets(self) -> dict[str, Any]:
        return {"assessment-platforms": [{"uuid": _PLATFORM, "title": "Charter",
                                          "props": self._props([("tool", "charter")])}]}

    def _recorded_observation(self, obs: OscalObservation) -> dict[str, Any]:
        """A test result or event: what was performed or happened, and the ledger entry recording it."""
        data = self.data
        assert obs.ledger_seq is not None and obs.record_hash is not None
        entry = (f"Evidence: ledger entry {obs.ledger_seq}, record hash {obs.record_hash}, recorded by "
                 f"{_md(obs.actor or '')}.")
        if obs.kind == "test_result":
            description = (f"Test {_md(obs.rule)} ({_md(obs.method or 'method not given')}) performed on AI system "
                           f"{_md(obs.system)}: outcome {_md(obs.outcome or '')}; {_md(obs.status)} at the report "
                           f"time.\n\n{entry}")
            remarks = ("A test result shows a control operating only once the control is documented and attested; "
                       "the latest current result of a test that failed is a nonconformity.")
            pairs: list[tuple[str, object]] = [("test", obs.rule), ("outcome", obs.outcome or ""),
                                               ("method", obs.method or "")]
        else:
            description = (f"Event ({_md(obs.rule)}) for AI system {_md(obs.system)}: {_md(obs.title)}; "
                           f"{_md(obs.status)} at the report time.\n\n{entry}")
            remarks = "An event shows a control operating only once the control is documented and attested."
            pairs = [("event-kind", obs.rule)]
        if _line(obs.explanation):
            description += f"\n\n{_md(obs.explanation)}"
        pairs += [("system", obs.system), ("evidence-state", obs.status), ("ledger-seq", obs.ledger_seq),
                  ("record-hash", obs.record_hash)]
        return {
            "uuid": self._observation_uuid(obs),
            "title": _md(obs.title),
            "description": description,
            "props": self._props(pairs + self._control_props(obs.controls)),
            "methods": [METHODS[obs.kind]],
            "types": ["control-objective"],
            "origins": [{"actors": [{"type": "assessment-platform", "actor-uuid": _PLATFORM}]}],
            "subjects": [{"subject-uuid": _uuid("system", data.origin, obs.system), "type": "inventory-item",
                          "title": _md(obs.system)}],
            "relevant-evidence": [{"href": evidence_href(data.origin, obs.ledger_seq, obs.record_hash),
                                   "description": f"Ledger entry {obs.ledger_seq} of ledger {_md(data.origin)}, record "
                                                  f"hash {obs.record_hash}, included in checkpoint "
                                                  f"{data.checkpoint_size}."}],
            "collected": self.collected[obs.id],
            "remarks": remarks,
        }

    def _observation(self, obs: OscalObservation) -> dict[str, Any]:
        if obs.kind != "kpi":
            return self._recorded_observation(obs)
        data = self.data
        if obs.ledger_seq is not None and obs.record_hash is not None:
            href = evidence_href(data.origin, obs.ledger_seq, obs.record_hash)
            evidence = {"href": href,
                        "description": f"Finding entry {obs.ledger_seq} of ledger {_md(data.origin)}, record hash "
                                       f"{obs.record_hash}, included in checkpoint {data.checkpoint_size}.",
                        "props": self._props([("ledger-seq", obs.ledger_seq), ("record-hash", obs.record_hash)])}
            cited = f"Evidence: ledger entry {obs.ledger_seq}, record hash {obs.record_hash}."
        else:
            evidence = {"href": self.checkpoint_href,
                        "description": f"No finding entry for this rule and system in ledger {_md(data.origin)} up "
                                       f"to checkpoint {data.checkpoint_size}."}
            cited = "No evidence was recorded."
        description = (f"Automated KPI evaluation by Charter: rule {_md(obs.rule)} on AI system {_md(obs.system)} gave "
                       f"finding status {_md(obs.status)}.\n\nMeasured: {_values(obs.observed)}. Thresholds: "
                       f"{_values(obs.thresholds)}.\n\n{cited}")
        if _line(obs.explanation):
            description += f"\n\nExplanation: {_md(obs.explanation)}"
        pairs: list[tuple[str, object]] = [("rule", obs.rule), ("system", obs.system), ("finding-status", obs.status)]
        pairs += [("observed", f"{_line(k)}={_number(v)}") for k, v in sorted(obs.observed.items())]
        pairs += [("threshold", f"{_line(k)}={_number(v)}") for k, v in sorted(obs.thresholds.items())]
        return {
            "uuid": self._observation_uuid(obs),
            "title": _md(obs.title) or f"{_md(obs.rule)} on {_md(obs.system)}",
            "description": description,
            "props": self._props(pairs + self._control_props(obs.controls)),
            "methods": ["TEST"],
            "types": ["control-objective"],
            "origins": [{"actors": [{"type": "assessment-platform", "actor-uuid": _PLATFORM}]}],
            "subjects": [{"subject-uuid": _uuid("system", data.origin, obs.system), "type": "inventory-item",
                          "title": _md(obs.system)}],
            "relevant-evidence": [evidence, *(self._governing_evidence(link) for link in obs.governed_by)],
            "collected": self.collected[obs.id],
            "remarks": "A KPI result is evidence about the controls it bears on; it never makes a finding satisfied "
                       "on its own.",
        }

    def _governing_evidence(self, link: OscalLedgerLink) -> dict[str, Any]:
        return {"href": evidence_href(self.data.origin, link.seq, link.record_hash),
                "description": f"Governed by {_md(link.label)}: ledger entry {link.seq} of ledger "
                               f"{_md(self.data.origin)}, record hash {link.record_hash}, included in checkpoint "
                               f"{self.data.checkpoint_size}.",
                "props": self._props([("ledger-seq", link.seq), ("record-hash", link.record_hash)])}

    def _observation_uuid(self, obs: OscalObservation) -> str:
        return _uuid("observation", self.data.origin, obs.id, obs.record_hash or self.data.checkpoint_root)

    def _risk_uuid(self, risk: OscalRisk) -> str:
        return _uuid("risk", self.data.origin, risk.kind, risk.id)

    def _related(self, risk: OscalRisk) -> list[OscalObservation]:
        return sorted((o for o in self.data.observations
                       if o.kind == "kpi" and (o.system, o.rule) == (risk.system, risk.rule)),
                      key=lambda o: o.id)

    def _risk(self, risk: OscalRisk) -> dict[str, Any]:
        data = self.data
        opened, deadline = self.risk_times[(risk.kind, risk.id)]
        controls = ", ".join(sorted(_md(c) for c in risk.controls)) or "none listed"
        if risk.kind == "incident":
            # Name only what the incident holds back: a control its rule bears on may be shown operating
            # meanwhile (the rule's latest finding no longer breaches, or another rule or evidence shows it).
            status = {s.control: s.status for s in self.statuses if s.system == risk.system}
            held = sorted(_md(c) for c in risk.controls if status.get(c) == "nonconformity")
            others = sorted(_md(c) for c in risk.controls if status.get(c) != "nonconformity")
            statement = (f"Rule {_md(risk.rule)} was breached on AI system {_md(risk.system)} "
                         f"(incident {_md(risk.id)}, {_md(risk.state)}). ")
            if held:
                statement += f"The controls it holds in nonconformity until it is resolved: {', '.join(held)}."
            if others:
                statement += (" " if held else "") + (
                    f"The other controls it bears on ({', '.join(others)}) have their own status in this result: "
                    "the rule's latest finding no longer breaches, or its mapping there is supporting only.")
            if not risk.controls:
                statement += "It bears on no control listed."
        elif risk.state == "active":
            statement = (f"A breach of rule {_md(risk.rule)} on AI system {_md(risk.system)} is accepted by waiver "
                         f"{_md(risk.id)}; the controls it bears on ({controls}) are not shown operating while it "
                         "holds.")
        else:
            statement = (f"Waiver {_md(risk.id)} accepting breaches of rule {_md(risk.rule)} on AI system "
                         f"{_md(risk.system)} has {_md(risk.state)}: the controls it bears on ({controls}) are in "
                         "nonconformity until the rule passes again or a new waiver is granted.")
        description = (f"{risk.kind.capitalize()} {_md(risk.id)} on AI system {_md(risk.system)}, "
                       f"rule {_md(risk.rule)}, severity {_md(risk.severity) or 'not given'}, opened {opened}.")
        if _line(risk.description):
            description += f"\n\n{_md(risk.description)}"
        pairs: list[tuple[str, object]] = [("kind", risk.kind), ("id", risk.id), ("system", risk.system),
                                           ("rule", risk.rule), ("state", risk.state), ("severity", risk.severity)]
        if risk.ledger_seq is not None:
            pairs += [("ledger-seq", risk.ledger_seq), ("record-hash", risk.record_hash)]
        out: dict[str, Any] = {
            "uuid": self._risk_uuid(risk),
            "title": _md(risk.title) or f"{risk.kind.capitalize()} {_md(risk.id)}",
            "description": description,
            "statement": statement,
            "props": self._props(pairs + self._control_props(risk.controls)),
        }
        links = []
        if risk.ledger_seq is not None and risk.record_hash is not None:
            links.append({"href": evidence_href(data.origin, risk.ledger_seq, risk.record_hash), "rel": "reference",
                          "text": f"ledger entry {risk.ledger_seq}"})
        links += [self._ledger_link(link) for link in risk.governed_by]
        if links:
            out["links"] = links
        out["status"] = _RISK_STATUS[(risk.kind, risk.state)]
        out["origins"] = [{"actors": [{"type": "assessment-platform", "actor-uuid": _PLATFORM}]}]
        if deadline is not None:
            out["deadline"] = deadline
            action = f"Resolve incident {_md(risk.id)}" if risk.kind == "incident" else \
                f"End or renew waiver {_md(risk.id)}"
            out["remediations"] = [{
                "uuid": _uuid("remediation", data.origin, risk.kind, risk.id),
                "lifecycle": "planned",
                "title": action,
                "description": f"{action} by {deadline}.",
                "tasks": [{"uuid": _uuid("milestone", data.origin, risk.kind, risk.id, deadline), "type": "milestone",
                           "title": "Deadline", "timing": {"on-date": {"date": deadline}}}],
            }]
        related = self._related(risk)
        if related:
            out["related-observations"] = [{"observation-uuid": self._observation_uuid(o)} for o in related]
        return out

    def _finding(self, status: OscalControlStatus) -> dict[str, Any]:
        data = self.data
        state, reason, implementation, meaning = _OBJECTIVE[status.status]
        target: dict[str, Any] = {"type": "objective-id", "target-id": self.tokens[status.control],
                                  "status": {"state": state, "reason": reason}}
        if implementation:
            target["implementation-status"] = {"state": implementation}
        finding: dict[str, Any] = {
            "uuid": _uuid("finding", data.origin, status.control, status.system),
            "title": f"{_md(status.control)} for {_md(status.system)}",
            "description": f"Charter control status for AI system {_md(status.system)}: {_md(status.status)} "
                           f"({meaning}). OSCAL satisfied is given only to controls Charter finds operating.",
            "props": self._props([("status", status.status), ("system", status.system),
                                  *self._control_props([status.control])]),
            "target": target,
        }
        cited = sorted({self._observation_uuid(self.observations[o]) for o in status.observations})
        if cited:
            finding["related-observations"] = [{"observation-uuid": u} for u in cited]
        risks = sorted(self._risk_uuid(r) for r in self.risks
                       if r.system == status.system and status.control in r.controls)
        if risks:
            finding["related-risks"] = [{"risk-uuid": u} for u in risks]
        if status.basis is not None:
            finding["links"] = [self._ledger_link(status.basis)]
        if _line(status.reason):
            finding["remarks"] = f"Reason: {_md(status.reason)}"
        return finding

    def _result(self, system: str) -> dict[str, Any]:
        data = self.data
        statuses = [s for s in self.statuses if s.system == system]
        observations = sorted((o for o in data.observations if o.system == system), key=lambda o: o.id)
        risks = [r for r in self.risks if r.system == system]
        applicable = [s for s in statuses if s.status != "not_applicable"]
        excluded = [s for s in statuses if s.status == "not_applicable"]
        # OSCAL 1.2 wants every selection to include something: the applicable controls, or (when none
        # applies) all controls less the excluded ones, which are then every control the report lists
        selection: dict[str, Any] = {"description": f"The controls of {_md(data.framework_name)} that apply to "
                                                    f"{_md(system)}; those not applicable are excluded."}
        if excluded:
            selection["props"] = [self._prop(name, value, group=self.tokens[s.control]) for s in excluded
                                  for name, value in (("control-ref", s.control), ("status", s.status),
                                                      ("reason", s.reason)) if _line(value)]
        if applicable:
            selection["include-controls"] = [{"control-id": self.tokens[s.control]} for s in applicable]
        else:
            selection["include-all"] = {}
        if excluded:
            selection["exclude-controls"] = [{"control-id": self.tokens[s.control]} for s in excluded]
            selection["remarks"] = f"Not applicable to {_md(system)}:\n\n" + "\n".join(
                f"- {_md(s.control)}: {_md(s.reason) or 'no reason given'}" for s in excluded)
        times = [self.collected[o.id] for o in observations]
        result: dict[str, Any] = {
            "uuid": _uuid("result", data.origin, data.framework, system, data.checkpoint_size, data.checkpoint_root,
                          self.as_of),
            "title": f"{_md(data.framework_name)}: {_md(system)}",
            "description": f"Charter's evaluation of AI system {_md(system)} against {_md(data.framework_name)} as of "
                           f"{self.as_of}, read from checkpoint {data.checkpoint_size} of ledger {_md(data.origin)}.",
            "start": min([*times, self.as_of]),
            "end": self.as_of,
            "props": self._props([("system", system)]),
            "local-definitions": {"inventory-items": [self._inventory_item(system)],
                                  "assessment-assets": self._assets()},
            "reviewed-controls": {
                "control-selections": [selection],
                "remarks": "Control ids are Charter's, as OSCAL tokens: framework and id joined by an underscore, "
                           "lower case, parenthesised paragraphs as dot-separated parts.",
            },
        }
        if observations:
            result["observations"] = [self._observation(o) for o in observations]
        if risks:
            result["risks"] = [self._risk(r) for r in risks]
        if applicable:
            result["findings"] = [self._finding(s) for s in applicable]
        return result

    def assessment_results(self) -> dict[str, Any]:
        """The assessment-results document."""
        data = self.data
        plan = _uuid("plan", data.origin, data.framework)
        if not self.systems:
            raise CharterError.single("nothing_to_export", "the report has no control status to export",
                                      path="$.statuses")
        results = [self._result(system) for system in self.systems]
        return {"assessment-results": {
            "uuid": _uuid("assessment-results", data.origin, data.framework, data.checkpoint_size,
                          data.checkpoint_root, self.as_of),
            "metadata": self._metadata(data.title),
            "import-ap": {"href": f"#{plan}",
                          "remarks": "No OSCAL assessment plan exists: the policies and KPI thresholds recorded in the "
                                     "ledger are the plan (see the back-matter resource)."},
            "results": results,
            "back-matter": {"resources": [
                {"uuid": plan, "title": "Charter evaluation plan",
                 "description": f"The policies, KPI thresholds and control mappings recorded in ledger "
                                f"{_md(data.origin)}, by the versions in force for each evaluated bundle.",
                 "rlinks": [{"href": f"urn:charter:ledger:{_urn_part(data.origin)}"}]},
                self._checkpoint_resource(),
            ]},
        }}

    def plan_of_action(self) -> dict[str, Any] | None:
        """The POA&M document, or None when there is no risk."""
        data = self.data
        if not self.risks:
            return None
        observations = sorted({o.id: o for r in self.risks for o in self._related(r)}.values(), key=lambda o: o.id)
        systems = sorted({r.system for r in self.risks} | {o.system for o in observations})
        items = []
        for risk in self.risks:
            deadline = self.risk_times[(risk.kind, risk.id)][1]
            item: dict[str, Any] = {
                "uuid": _uuid("poam-item", data.origin, risk.kind, risk.id),
                "title": _md(risk.title) or f"{risk.kind.capitalize()} {_md(risk.id)}",
                "description": f"{'Incident' if risk.kind == 'incident' else 'Waiver'} {_md(risk.id)} on AI system "
                               f"{_md(risk.system)} (rule {_md(risk.rule)}), {_md(risk.state)}"
                               f"{f', due {deadline}' if deadline else ''}.",
                "props": self._props([("kind", risk.kind), ("state", risk.state), ("system", risk.system)]),
            }
            related = self._related(risk)
            if related:
                item["related-observations"] = [{"observation-uuid": self._observation_uuid(o)} for o in related]
            item["related-risks"] = [{"risk-uuid": self._risk_uuid(risk)}]
            items.append(item)
        document: dict[str, Any] = {
            "uuid": _uuid("poam", data.origin, data.framework, data.checkpoint_size, data.checkpoint_root, self.as_of),
            "metadata": self._metadata(f"{data.title}: plan of action and milestones"),
            "system-id": {"identifier-type": "https://ietf.org/rfc/rfc4122", "id": _uuid("portfolio", data.origin)},
            "local-definitions": {
                "inventory-items": [self._inventory_item(s) for s in systems],
                "assessment-assets": self._assets(),
                "remarks": f"The AI systems governed by ledger {_md(data.origin)}.",
            },
        }
        if observations:
            document["observations"] = [self._observation(o) for o in observations]
        document["risks"] = [self._risk(r) for r in self.risks]
        document["poam-items"] = items
        document["back-matter"] = {"resources": [self._checkpoint_resource()]}
        return {"plan-of-action-and-milestones": document}
