"""Audit-readiness reports per framework: build from one signed ledger state, render, issue, and verify.

    state = bind(ledger, log_public_key, as_of, compiler)        # verify, sign a checkpoint, read the prefix at as_of
    document = build(state, "iso-42001", frameworks)             # statuses, figures, citations with inclusion proofs
    text = render(document, "html", state.graph)
    issue(ledger, document, [("html", text, "report.html")])     # the report's hash enters the ledger
    verify_report(ledger, log_public_key, data)                  # later, by anyone holding the file

HTML is one self-contained file (inline CSS and SVG, no script, no external asset) that prints
well; Markdown suits a repository or a ticket; JSON follows `ReportDocument`'s schema; OSCAL writes
assessment results and a plan of action and milestones.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

from .._collector import collector_paused
from ..errors import CharterError
from ..escalation import EscalationGraph
from ..frameworks import FrameworkSet
from ..ledger.checkpoints import make_checkpoint
from ..ledger.records import Entry, NewEntry, format_time
from ..ledger.store import Ledger
from ..ledger.verified import full_pass_of, record_verified_state
from ..ledger.verify import verify_with_state
from ..policy.compiler import CompiledPolicy
from .model import (
    KPI_HEALTH_FORMULA,
    Citation,
    ControlSystemStatus,
    EvidenceRef,
    Gaps,
    InclusionProofRef,
    LedgerBinding,
    PortfolioSnapshot,
    ReportContext,
    ReportDocument,
    ReportInputs,
    UndeterminedRef,
    build_report,
    report_inputs,
)
from .oscal import OscalControlStatus, OscalInput, OscalLedgerLink, OscalObservation, OscalRisk, render_oscal
from .svg import STATUS_COLOURS, escalation_svg, trend_chart

if TYPE_CHECKING:
    from ..ledger.merkle import MerkleTree
    from ..policy.compiler import PolicyCompiler

__all__ = [
    "FORMATS",
    "KPI_HEALTH_FORMULA",
    "REPORT_ISSUED",
    "SUFFIXES",
    "BoundState",
    "IssuedReport",
    "PortfolioSnapshot",
    "ReportDocument",
    "bind",
    "build",
    "build_report",
    "issue",
    "issue_report",
    "oscal_input",
    "percent",
    "render",
    "render_files",
    "verify_report",
]

FORMATS = ("html", "md", "json", "oscal")
REPORT_ISSUED = "report.issued"
_TEMPLATES = Path(__file__).resolve().parent / "templates"
#: pairs listed per control in HTML and Markdown (worst first); JSON lists them all
ATTENTION_LIMIT = 15


@dataclass
class BoundState:
    """One verified, checkpointed ledger state, read as it stood at the report time.

    Everything a report judges by comes from the ledger prefix `snapshot.size`: the systems, the
    policy set and escalation configuration in force, the applicability statements and the
    documents and attestations. Nothing is read from the current folder.
    """

    snapshot: PortfolioSnapshot
    binding: LedgerBinding
    policies: Sequence[CompiledPolicy]
    graph: EscalationGraph
    inputs: ReportInputs
    context: ReportContext
    as_of: datetime.datetime
    tree: MerkleTree  # of the checkpoint's entries: every report of this state proves its citations in it
    #: what this run's verification read (it resumes from the last verified state, so it varies from
    #: run to run and stays out of the report, whose bytes depend only on the ledger and the time)
    verification: str = ""
    #: seq -> the inclusion proof of that entry in `tree`, made once per cited entry and shared by every
    #: report of this state (frozen, so one object serves them all)
    proof_refs: dict[int, InclusionProofRef] = field(default_factory=dict)

    def proofs(self, cited: dict[int, str]) -> list[InclusionProofRef]:
        """The inclusion proof of each cited entry (seq -> hex record hash), in the order given.

        The paths not yet known are computed in one descent of the tree. A cited hash that is not
        the tree's leaf means the ledger changed under the report.

        Raises:
            CharterError: a cited record hash differs from the checkpoint's leaf at that seq.
        """
        tree = self.tree
        for seq, record_hash in cited.items():  # the tree's root is the checkpoint's: `bind` checked it
            if seq >= tree.size or tree.leaf(seq).hex() != record_hash:
                raise CharterError.single("ledger_damaged", f"entry {seq} changed while the report was built")
        known = self.proof_refs
        missing = [seq for seq in cited if seq not in known]
        if missing:
            hexed: dict[bytes, str] = {}  # the siblings near the root recur in most paths
            for seq, path in tree.inclusion_proofs(missing).items():
                # built from the verified tree, not from input: nothing here to validate
                known[seq] = InclusionProofRef.model_construct(
                    seq=seq, record_hash=cited[seq],
                    path=[hexed.get(h) or hexed.setdefault(h, h.hex()) for h in path])
        return [known[seq] for seq in cited]


def ledger_context(ledger: Ledger, size: int, as_of: datetime.datetime) -> tuple[ReportContext, dict[str, int]]:
    """Applicability and typed evidence as recorded in the first `size` entries, judged at `as_of`."""
    from ..applicability import SharedApplicability, applicability_statements
    from ..evidence import cites, evidence_index

    statements = applicability_statements(ledger, size)
    index = evidence_index(ledger, size)
    # once per classification class and control, not once per control and system
    applicability = SharedApplicability(as_of, statements).decide

    @functools.cache
    def citing(ref: str) -> list[Any]:  # once per control, not once per control and system
        return [item for item in index.items if any(cites(c, ref) for c in item.controls)]

    def evidence(ref: str, system_id: str) -> list[Any]:  # what `EvidenceIndex.for_control` gives
        return [item for item in citing(ref) if not item.systems or system_id in item.systems]

    seqs = {framework: active.seq for framework, active in statements.documents.items()}
    labels = {framework: active.label for framework, active in statements.documents.items()}
    return ReportContext(applicability=applicability, evidence=evidence, statement_labels=labels), seqs


def bind(ledger: Ledger, log_public_key: bytes, as_of: datetime.datetime, compiler: PolicyCompiler, *,
         full: bool = False, read_only: bool = False, described: int | None = None) -> BoundState:
    """Verify the ledger, read it as it stood at `as_of`, and bind that state to a signed checkpoint.

    The report describes the first entries received by `as_of` (a prefix of the ledger) and is
    bound to the earliest signed checkpoint that covers them; when none does, one of exactly that
    prefix is signed. Reports of the same ledger and time are therefore bound to the same
    checkpoint, and give the same bytes, however many reports were issued in between.

    The order makes failures cheap and clean: a ledger that does not verify gets no report and no
    checkpoint (its figures could not be trusted; `charter verify` locates the damage), and a report
    time before the newest evidence is refused before anything is signed. Verification resumes from
    the log-signed verified state the previous binding recorded (entries since then are read, and
    must extend its Merkle frontier); `full` reads every entry again. The state reached is recorded
    for the next report. `read_only` writes nothing (no checkpoint, no verified state): it rebuilds a
    report already issued, bound to a checkpoint that exists, over the `described` entries it states
    (which must all have been received by `as_of`).

    Raises:
        CharterError: the ledger is empty or does not verify, it held nothing or nothing in force at
            `as_of`, `as_of` precedes the newest evidence, the log key is missing, or (read-only) no
            signed checkpoint covers the state.
    """
    from ..authority import active_escalation, active_policies
    from ..ledger.auditor import NoteError, open_checkpoint
    from ..ledger.merkle import MerkleTree

    if ledger.size() == 0:
        raise CharterError.single("empty_ledger", "the ledger holds no entries: there is nothing to report on")
    verdict, verifier, resumed = verify_with_state(ledger, log_public_key, resume=not full)
    if not verdict.ok:
        raise CharterError.single("ledger_damaged", f"the ledger does not verify, so no report is issued: "
                                  f"{verdict.summary()}; run charter verify for the details")
    size = verdict.entries  # exactly the entries verified, even if more were appended meanwhile
    held = ledger.size_at(as_of, stop=size)
    if described is None:
        described = held
    elif not 0 < described <= held:
        raise CharterError.single("report_time", f"the report states {described} entries, but the ledger held "
                                  f"{held} at {format_time(as_of)}")
    if described == 0:
        raise CharterError.single("report_time", f"the ledger held no entries at {format_time(as_of)}")
    snapshot = PortfolioSnapshot.load(ledger, described)
    snapshot.check_as_of(as_of)
    active = active_policies(ledger, compiler, described)
    graph, escalation_seq = active_escalation(ledger, described)
    context, applicability_seqs = ledger_context(ledger, described, as_of)
    covering = min((c for c in ledger.checkpoints() if described <= c[0] <= size), default=None,
                   key=lambda c: c[0])
    if covering is None and read_only:
        raise CharterError.single("no_checkpoint", f"no signed checkpoint covers the {described} entries the ledger "
                                  f"held at {format_time(as_of)}")
    if covering is None:
        checkpoint = make_checkpoint(ledger, described)
    else:
        try:
            checkpoint = open_checkpoint(covering[2], ledger.origin, log_public_key)
        except NoteError as exc:
            raise CharterError.single("ledger_damaged", f"the stored checkpoint {covering[0]} does not verify "
                                      f"with the log key: {exc}; run charter verify") from None
    tree = MerkleTree(ledger.leaf_hashes(checkpoint.size))
    # The verifier checked every record hash up to `size`; the checkpoint must anchor exactly those.
    if tree.root() != checkpoint.root or (checkpoint.size == size and verifier.root != checkpoint.root):
        raise CharterError.single("ledger_damaged", f"the checkpoint of {checkpoint.size} entries does not match "
                                  "the entries just verified: the ledger changed under the report; run charter verify")
    if not read_only:
        record_verified_state(ledger, verifier,
                              full_pass_of(resumed) if resumed else (size, format_time(ledger.clock())))
    binding = LedgerBinding(origin=ledger.origin, checkpoint_size=checkpoint.size,
                            checkpoint_root=checkpoint.root.hex(), checkpoint_note=checkpoint.note,
                            described_size=described, verified=True,
                            verify_summary=f"OK: every entry through checkpoint {checkpoint.size} verified (chain, "
                            "log receipts, signatures and the authority behind each change) before this report was "
                            "built")
    inputs = report_inputs(active.policy_set.policies, graph, policy_activation_seq=active.activation_seq,
                           escalation_seq=escalation_seq, applicability=applicability_seqs,
                           record_hash=lambda seq: tree.leaf(seq).hex())
    return BoundState(snapshot, binding, active.policy_set.policies, graph, inputs, context, as_of, tree,
                      verdict.summary())


def build(state: BoundState, framework_id: str, frameworks: FrameworkSet, system: str | None = None
          ) -> ReportDocument:
    """The report of one framework over a bound state, with an inclusion proof of every entry it cites.

    The cyclic garbage collector is paused meanwhile (process-wide, see `collector_paused`).
    """
    with collector_paused():
        return _build(state, framework_id, frameworks, system)


def _build(state: BoundState, framework_id: str, frameworks: FrameworkSet, system: str | None) -> ReportDocument:
    document = build_report(state.snapshot, framework_id, frameworks, state.policies, state.graph, state.binding,
                            state.as_of, state.inputs, state.context, system)
    return document.model_copy(update={"proofs": state.proofs(document.cited())})


def percent(value: float | None) -> str:
    """A share as a whole percentage, never rounding a few to none or most to all (1 of 343 is "<1%")."""
    if value is None:
        return "n/a"
    if 0 < value < 0.005:
        return "<1%"
    if 0.995 <= value < 1:
        return ">99%"
    return f"{value * 100:.0f}%"


def _markdown_text(value: object) -> str:
    """Free text made inert in Markdown: no HTML, no table break, no line break, no emphasis or link syntax."""
    text = " ".join(str(value).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for char in "\\`*[]|":
        text = text.replace(char, "\\" + char)
    return text


@functools.cache
def _environment(autoescape: bool) -> jinja2.Environment:
    """One environment per escaping mode, made once: compiling the templates costs more than a small report."""
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=autoescape,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                     keep_trailing_newline=True)
    environment.filters["percent"] = percent
    environment.filters["cell"] = _markdown_text
    return environment


#: (control, system) rows listed per control in HTML and Markdown, the worst first when there are more
ROW_LIMIT = 25
#: (rule, system) pairs in the evidence trail of HTML and Markdown, the worst first when there are more
TRAIL_LIMIT = 400
_ROW_ORDER = {status: rank for rank, status in enumerate(
    ("nonconformity", "no_evidence", "designed", "implemented", "operating", "not_applicable"))}


def _shown(document: ReportDocument) -> dict[str, Any]:
    """What HTML and Markdown list in full; the JSON report lists everything.

    A portfolio of a thousand systems would otherwise print a million rows no reader can use: past
    the limits, the rows most in need of attention are listed and the rest counted.
    """
    rows = {}
    for control in document.controls:
        listed = control.systems
        if len(listed) > ROW_LIMIT:
            listed = sorted(listed, key=lambda r: (_ROW_ORDER[r.status], r.system))[:ROW_LIMIT]
        rows[control.ref] = listed
    trail = document.pairs
    if len(trail) > TRAIL_LIMIT:
        trail = sorted(trail, key=lambda p: (p.points, p.system, p.rule))[:TRAIL_LIMIT]
    return {"rows": rows, "trail": trail}


class RawJSON(str):
    """JSON text already encoded as `json_text` would encode it: a list element `json_text` writes as is."""


_encode = json.JSONEncoder(sort_keys=True, separators=(", ", ": ")).encode


def json_text(value: dict[str, Any]) -> str:
    """JSON with sorted keys, one top-level member per line and one list element per line.

    `json.dumps` with an indent runs in pure Python, which dominated the time of a large report;
    encoding each element compactly runs in C, and a diff still shows which control or pair changed.
    A list element that is `RawJSON` is written as it stands.
    """

    def encode(element: Any) -> str:
        return element if isinstance(element, RawJSON) else _encode(element)

    # One join of all the pieces: a large report's elements are megabytes, and formatting each line,
    # then joining the lines and then appending the last newline copied them three times.
    parts = ["{\n"]
    members = sorted(value.items())
    for index, (key, member) in enumerate(members):
        comma = ",\n" if index < len(members) - 1 else "\n"
        if isinstance(member, list) and member:
            parts += ("  ", encode(key), ": [\n")
            last = len(member) - 1
            for position, element in enumerate(member):
                parts += ("    ", encode(element), ",\n" if position < last else "\n")
            parts += ("  ]", comma)
        else:
            parts += ("  ", encode(key), ": ", encode(member), comma)
    parts.append("}\n")
    return "".join(parts)


def _dump(value: Any) -> str:
    return _encode(value.model_dump(mode="json"))


#: the fields of a (control, system) row, in the order their keys sort: `_ReportEncoder.row` writes them
_ROW_FIELDS = ("applicability", "evidence", "primary_rules", "reason", "status", "supporting_rules", "system")
#: the fields of an inclusion proof and of an undetermined-applicability ref, as `_ReportEncoder` writes them
_PROOF_FIELDS = ("path", "record_hash", "seq")
_UNDETERMINED_FIELDS = ("control", "reason", "system")


class _SharedTexts:
    """The JSON text of report objects several reports share, kept while the object lives.

    The reports of one bound state share their (rule, system) pairs (`PortfolioSnapshot.assess`) and
    their inclusion proofs (`BoundState.proofs`): three frameworks' JSON would otherwise encode the
    same tens of thousands of frozen objects three times. An entry is found by the object's identity
    and dropped when the object is freed (its id may then be reused), so a text is never served for
    another object. Threads may race to encode the same object: both get the same text.
    """

    def __init__(self) -> None:
        self._texts: dict[int, tuple[weakref.ref[Any], str]] = {}

    def get(self, value: Any, encode: Callable[[Any], str]) -> str:
        key = id(value)
        known = self._texts.get(key)
        if known is not None and known[0]() is value:
            return known[1]
        text = encode(value)
        texts = self._texts

        def forget(ref: weakref.ref[Any]) -> None:
            if texts.get(key, (None,))[0] is ref:
                texts.pop(key, None)

        texts[key] = (weakref.ref(value, forget), text)
        return text

    def __len__(self) -> int:
        return len(self._texts)


_shared_texts = _SharedTexts()


class _ReportEncoder:
    """The JSON of a report's controls and pairs, built from the models without dumping every row through pydantic.

    A report of a thousand systems holds hundreds of thousands of (control, system) rows whose
    applicability and evidence references, status reasons and pairs are shared objects (see
    `model._SharedRows`): each is encoded once and its text reused. The text is exactly what
    ``_encode(document.model_dump(mode="json"))`` gives for the same element (a test compares them).
    """

    def __init__(self) -> None:
        self._objects: dict[int, tuple[Any, str]] = {}
        self._texts: dict[str, str] = {}
        self._lists: dict[tuple[str, ...], str] = {}
        self._token = f"\x00{uuid.uuid4().hex}"

    def document(self, document: ReportDocument) -> dict[str, Any]:
        """The report as `json_text` takes it, controls, pairs, gaps and proofs already encoded."""
        data = document.model_dump(mode="json", exclude={"controls", "pairs", "gaps", "proofs"})
        if set(ControlSystemStatus.model_fields) != set(_ROW_FIELDS):  # a new field: the generic path
            data["controls"] = [c.model_dump(mode="json") for c in document.controls]
        else:
            data["controls"] = [RawJSON(self.control(c)) for c in document.controls]
        data["pairs"] = [RawJSON(_shared_texts.get(p, _dump)) for p in document.pairs]
        if set(UndeterminedRef.model_fields) != set(_UNDETERMINED_FIELDS):
            data["gaps"] = document.gaps.model_dump(mode="json")
        else:
            data["gaps"] = RawJSON(self.gaps(document.gaps))
        if set(InclusionProofRef.model_fields) != set(_PROOF_FIELDS):
            data["proofs"] = [p.model_dump(mode="json") for p in document.proofs]
        else:
            # the reports of one bound state share their proof objects (`BoundState.proofs`)
            data["proofs"] = [RawJSON(_shared_texts.get(p, self.proof)) for p in document.proofs]
        return data

    def proof(self, proof: InclusionProofRef) -> str:
        """An inclusion proof's JSON: its path's hashes recur across proofs (the siblings near the root)."""
        return "".join(('{"path": [', ", ".join(map(self.text, proof.path)), '], "record_hash": ',
                        self.text(proof.record_hash), ', "seq": ', int.__repr__(proof.seq), "}"))

    def gaps(self, gaps: Gaps) -> str:
        """The gaps' JSON: a large portfolio has a row per control and system whose applicability is undetermined."""
        head = gaps.model_dump(mode="json", exclude={"undetermined_applicability"})
        token = f"{self._token}u"
        head["undetermined_applicability"] = token
        before, _, after = _encode(head).partition(_encode(token))
        return "".join((before, "[", ", ".join(map(self.undetermined, gaps.undetermined_applicability)), "]",
                        after))

    def undetermined(self, ref: UndeterminedRef) -> str:
        return "".join(('{"control": ', self.text(ref.control), ', "reason": ', self.text(ref.reason),
                        ', "system": ', self.text(ref.system), "}"))

    def model(self, value: Any) -> str:
        """A model's JSON, once per object (the object is kept alive here, so its id is not reused)."""
        known = self._objects.get(id(value))
        if known is None or known[0] is not value:
            known = self._objects[id(value)] = (value, _encode(value.model_dump(mode="json")))
        return known[1]

    def text(self, value: str) -> str:
        known = self._texts.get(value)
        if known is None:
            known = self._texts[value] = _encode(value)
        return known

    def names(self, values: list[str]) -> str:
        key = tuple(values)
        known = self._lists.get(key)
        if known is None:
            known = self._lists[key] = _encode(values)
        return known

    def control(self, control: Any) -> str:
        head = control.model_dump(mode="json", exclude={"systems", "attention"})
        attention, systems = f"{self._token}a", f"{self._token}s"
        head["attention"], head["systems"] = attention, systems
        before, _, rest = _encode(head).partition(_encode(attention))  # "attention" sorts before "systems"
        middle, _, after = rest.partition(_encode(systems))
        return "".join((before, "[", ", ".join(_shared_texts.get(p, _dump) for p in control.attention), "]", middle,
                        "[", ", ".join(self.row(r) for r in control.systems), "]", after))

    def row(self, row: ControlSystemStatus) -> str:
        return "".join((
            '{"applicability": ', self.model(row.applicability),
            ', "evidence": [', ", ".join(self.model(e) for e in row.evidence),
            '], "primary_rules": ', self.names(row.primary_rules), ', "reason": ', self.text(row.reason),
            ', "status": ', self.text(row.status), ', "supporting_rules": ', self.names(row.supporting_rules),
            ', "system": ', self.text(row.system), "}"))


def render(document: ReportDocument, fmt: str, graph: EscalationGraph) -> str:
    """The report as ``html``, ``md``, ``json`` or ``oscal`` (its assessment results) text; deterministic.

    The cyclic garbage collector is paused meanwhile (process-wide, see `collector_paused`).
    """
    with collector_paused():
        return _render(document, fmt, graph)


def _render(document: ReportDocument, fmt: str, graph: EscalationGraph) -> str:
    if fmt == "json":
        return json_text(_ReportEncoder().document(document))
    if fmt == "oscal":
        return render_oscal(oscal_input(document))["assessment-results"]
    context: dict[str, Any] = {"doc": document, "colours": STATUS_COLOURS, "attention_limit": ATTENTION_LIMIT,
                               "shown": _shown(document), "row_limit": ROW_LIMIT, "trail_limit": TRAIL_LIMIT}
    if fmt == "html":
        context["charts"] = [Markup(trend_chart(t)) for t in document.trends]
        context["escalation_svg"] = Markup(escalation_svg(graph))
        return _environment(True).get_template("report.html.j2").render(context)
    if fmt == "md":
        return _environment(False).get_template("report.md.j2").render(context)
    raise CharterError.single("usage", f"unknown report format {fmt!r}; one of {', '.join(FORMATS)}")


#: the file suffix of each rendition; ``oscal-poam`` accompanies ``oscal`` when there is a risk to plan for
SUFFIXES = {"html": ".html", "md": ".md", "json": ".json", "oscal": ".oscal.json", "oscal-poam": ".poam.json"}


def render_files(document: ReportDocument, formats: Sequence[str], graph: EscalationGraph) -> dict[str, str | None]:
    """Rendition -> text for `formats`; ``oscal`` also gives ``oscal-poam``: the POA&M, None when nothing is open.

    OSCAL keeps assessment results and a plan of action in two documents (one JSON object holding
    both root keys is no valid OSCAL), so ``oscal`` writes two files.
    """
    with collector_paused():
        return _render_files(document, formats, graph)


def _render_files(document: ReportDocument, formats: Sequence[str], graph: EscalationGraph) -> dict[str, str | None]:
    texts: dict[str, str | None] = {}
    for fmt in formats:
        if fmt == "oscal":
            documents = render_oscal(oscal_input(document))
            texts["oscal"] = documents["assessment-results"]
            texts["oscal-poam"] = documents.get("plan-of-action-and-milestones")
        else:
            texts[fmt] = _render(document, fmt, graph)
    return texts


def oscal_input(document: ReportDocument) -> OscalInput:
    """What the OSCAL export needs of a report: its cited findings, its statuses and its open risks."""
    controls_of: dict[str, set[str]] = {}
    for control in document.controls:
        for rule in (*control.primary_rules, *control.supporting_rules):
            controls_of.setdefault(rule, set()).add(control.ref)
    observations = {}
    for pair in document.pairs:
        if pair.rule not in controls_of:
            continue
        status = pair.status if pair.fresh or pair.status == "no_evidence" else "stale"
        observations[(pair.rule, pair.system)] = OscalObservation(
            id=f"{pair.rule}@{pair.system}", system=pair.system, rule=pair.rule,
            title=f"{pair.rule} on {pair.system}" + (f" [{pair.segment}]" if pair.segment else ""), status=status,
            controls=tuple(sorted(controls_of[pair.rule])),
            observed={k: float(v) for k, v in pair.observed.items() if isinstance(v, int | float)},
            thresholds=dict(pair.thresholds), explanation=pair.explanation or pair.note,
            collected=pair.evaluated_at or pair.window_end or document.as_of,
            ledger_seq=pair.finding.seq if pair.finding else None,
            record_hash=pair.finding.record_hash if pair.finding else None,
            governed_by=tuple(_link("governing decision or waiver", c) for c in pair.governed_by))
    # Test results and events cited for a (control, system): one observation per item and system, citing
    # every control of this report it is cited for.
    recorded: dict[tuple[str, str], tuple[EvidenceRef, set[str]]] = {}
    for control in document.controls:
        for row in control.systems:
            for item in row.evidence:
                if item.kind in ("test_result", "event"):
                    recorded.setdefault((item.id, row.system), (item, set()))[1].add(control.ref)
    for (item_id, system), (item, refs) in recorded.items():
        observations[(item_id, system)] = OscalObservation(
            id=f"{item_id}@{system}", system=system,
            rule=item.title if item.kind == "test_result" else str(item.event_kind),
            title=item.title, status=item.state, controls=tuple(sorted(refs)), observed={}, thresholds={},
            explanation="", collected=item.valid_from or document.as_of, ledger_seq=item.seq,
            record_hash=item.record_hash, kind=item.kind,  # type: ignore[arg-type]
            outcome=item.outcome, method=item.method, actor=item.actor)
    basis_label = {"eu-ai-act": "EU AI Act classification (system registration) of",
                   "nist-ai-600-1": "kind of AI (system registration) of"}.get(document.framework,
                                                                               "applicability statement deciding")
    statuses = tuple(
        OscalControlStatus(control=control.ref, system=row.system, status=row.status, reason=row.reason,
                           observations=tuple(observations[(rule, row.system)].id
                                              for rule in (*row.primary_rules, *row.supporting_rules,
                                                           *(e.id for e in row.evidence
                                                             if e.kind in ("test_result", "event")))
                                              if (rule, row.system) in observations),
                           basis=None if row.applicability.basis is None else _link(
                               f"{basis_label} {row.system}", row.applicability.basis))
        for control in document.controls for row in control.systems)
    decisions: dict[str, list[OscalLedgerLink]] = {}
    for control in document.controls:
        for decision in control.decisions:
            decisions.setdefault(decision.incident, [])
            link = _link(f"decision on {decision.incident} ({', '.join(decision.decisions)})", decision)
            if link not in decisions[decision.incident]:
                decisions[decision.incident].append(link)
    severity_of = {(pair.rule, pair.system): pair.severity for pair in document.pairs}
    risks: dict[tuple[str, str], OscalRisk] = {}
    for control in document.controls:
        for incident in control.open_incidents:
            risks[("incident", incident.id)] = OscalRisk(
                id=incident.id, kind="incident", system=incident.system, rule=incident.rule,
                controls=tuple(sorted(controls_of.get(incident.rule, ()))),
                title=f"{incident.rule} on {incident.system}" + (f" [{incident.segment}]" if incident.segment else ""),
                description=f"{incident.severity} breach of {incident.rule}, incident {incident.id}, {incident.state}",
                severity=incident.severity, state=incident.state, opened=incident.opened_at, deadline=None,
                ledger_seq=incident.opened.seq, record_hash=incident.opened.record_hash,
                governed_by=(*decisions.get(incident.id, ()),
                             *((_link(f"Art. 73 classification of {incident.id}", incident.classification),)
                               if incident.classification is not None else ()),
                             *(_link(f"{f.kind} Art. 73 report on {incident.id} filed with {f.authority}", f)
                               for f in incident.filings)))
        for waiver in control.waivers:
            risks[("waiver", waiver.id)] = OscalRisk(
                id=waiver.id, kind="waiver", system=waiver.system, rule=waiver.rule,
                controls=tuple(sorted(controls_of.get(waiver.rule, ()))),
                title=f"accepted risk of {waiver.rule} on {waiver.system}",
                description=f"risk accepted by {waiver.owner} on incident {waiver.incident} until {waiver.expires_at}",
                severity=severity_of.get((waiver.rule, waiver.system), "not given"),
                state="active" if waiver.active else "expired", opened=waiver.granted_at,
                deadline=waiver.expires_at, ledger_seq=waiver.seq, record_hash=waiver.record_hash)
    return OscalInput(framework=document.framework, framework_name=document.framework_name,
                      title=f"Charter assessment of {document.framework_name}", as_of=document.as_of,
                      origin=document.ledger.origin, checkpoint_size=document.ledger.checkpoint_size,
                      checkpoint_root=document.ledger.checkpoint_root, statuses=statuses,
                      observations=tuple(observations.values()), risks=tuple(risks.values()),
                      inputs=_input_links(document))


def _link(label: str, citation: Citation) -> OscalLedgerLink:
    return OscalLedgerLink(label=label, seq=citation.seq, record_hash=citation.record_hash)


def _input_links(document: ReportDocument) -> tuple[OscalLedgerLink, ...]:
    """The activations a report judged by, as OSCAL links."""
    inputs = document.inputs
    links = []
    if inputs.policy_activation is not None:
        links.append(_link("policy set activation", inputs.policy_activation))
    if inputs.escalation_activation is not None:
        links.append(_link("escalation configuration activation", inputs.escalation_activation))
    links += [_link(f"{framework} applicability statement activation", citation)
              for framework, citation in inputs.applicability_activations.items()]
    return tuple(links)


def _issue_key(digest: str, name: str) -> str:
    return f"report:{digest}:{hashlib.sha256(name.encode()).hexdigest()[:16]}"


def issue(ledger: Ledger, document: ReportDocument, renditions: Sequence[tuple[str, str, str]]) -> list[Entry]:
    """Record that these exact files were handed out: (format, text, name) each, in one append.

    Each entry holds the file's SHA-256, name, format, the checkpoint and inputs the report is bound
    to, and its separate figures. Issuing the same bytes under the same name again returns the
    existing entry.
    """
    fresh: list[NewEntry] = []
    existing: dict[str, Entry] = {}
    figures = document.figures
    for fmt, text, name in renditions:
        data = text.encode()
        digest = hashlib.sha256(data).hexdigest()
        key = _issue_key(digest, name)
        found = ledger.by_submission(key)
        if found is not None:
            existing[key] = found
            continue
        payload = {"framework": document.framework, "format": fmt, "sha256": digest, "bytes": len(data),
                   "name": name, "system": document.system, "as_of": document.as_of,
                   "checkpoint": {"size": document.ledger.checkpoint_size, "root": document.ledger.checkpoint_root},
                   "described_size": document.ledger.described_size,
                   "policy_set_digest": document.inputs.policy_set_digest,
                   "escalation_digest": document.inputs.escalation_digest,
                   "figures": {"documentary_completeness": figures.documentary_completeness,
                               "kpi_health": figures.kpi_health,
                               "open_nonconformities": figures.open_nonconformities},
                   "issued_at": format_time(ledger.clock())}
        fresh.append(NewEntry(REPORT_ISSUED, payload, key, subject=document.system))
    appended = {e.submission_id: e for e in ledger.append(fresh)} if fresh else {}
    found_all = {**existing, **appended}
    return [found_all[_issue_key(hashlib.sha256(text.encode()).hexdigest(), name)] for _, text, name in renditions]


@dataclass(frozen=True)
class IssuedReport:
    """A report issued into the ledger: the document, its bound state, each file and its issue entry."""

    document: ReportDocument
    state: BoundState
    files: list[tuple[str, str, str]]  # (rendition, text, name) of each file handed out
    entries: list[Entry]


def issue_report(ledger: Ledger, log_public_key: bytes, framework_id: str, formats: Sequence[str],
                 compiler: PolicyCompiler, *, as_of: datetime.datetime, names: dict[str, str],
                 publish: Callable[[str, str | None], None], system: str | None = None,
                 full: bool = False) -> IssuedReport:
    """Verify, bind, build and render a report, hand each file to `publish`, then record them in the ledger.

    The CLI publishes to files (taking them back if recording fails), the service to its report
    store: both go through this one function, so a report means the same wherever it was issued.

    Args:
        names: rendition -> the file name recorded for it (``oscal`` also needs ``oscal-poam``).
        publish: called with each rendition and its text, or None when the rendition has nothing to
            say (a plan of action with nothing open) and an earlier file of that name must go.

    Raises:
        CharterError: ``future_time`` for a time after now; ``unknown_system``; whatever binding refuses.
    """
    from ..notify import FUTURE_TOLERANCE
    from ..submission import systems_in_ledger

    # to the millisecond, as the report states it, so `report verify` rebuilds it at exactly this time
    as_of = as_of.replace(microsecond=as_of.microsecond // 1000 * 1000)
    now = ledger.clock()
    if as_of > now + FUTURE_TOLERANCE:
        raise CharterError.single("future_time", f"the report time {format_time(as_of)} is later than now "
                                  f"({format_time(now)}); a report cannot describe evidence as it will be")
    if system is not None and system not in systems_in_ledger(ledger):
        raise CharterError.single("unknown_system", f"system {system!r} is not registered in the ledger")
    state = bind(ledger, log_public_key, as_of, compiler, full=full)
    document = build(state, framework_id, compiler.frameworks, system)
    files = []
    for rendition, text in render_files(document, formats, state.graph).items():
        publish(rendition, text)
        if text is not None:
            files.append((rendition, text, names[rendition]))
    entries = issue(ledger, document, files)
    make_checkpoint(ledger)  # one covering the issue entries, so `report verify` can prove them at once
    return IssuedReport(document, state, files, entries)


@dataclass
class ReportVerdict:
    """What `verify_report` checked, and what failed."""

    checked: list[str]
    problems: list[str]
    entry: Entry | None

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return not self.problems


def verify_report(ledger: Ledger, log_public_key: bytes, data: bytes,
                  compiler: PolicyCompiler | None = None) -> ReportVerdict:
    """Check that `data` is a report this ledger issued, bound to a signed checkpoint, with every citation proven.

    Recomputes the file's SHA-256 and finds its ``report.issued`` entry; checks the entry's record
    hash against its body, the log key's signature on the report's checkpoint and on a checkpoint
    covering the issue entry, the issue entry's inclusion in it and its consistency with the report's
    checkpoint. For a JSON report, also every cited entry's inclusion proof against the report's
    checkpoint and its record hash against the ledger. Last, it rebuilds the report from what the
    entry names (framework, system, time) and compares the bytes: a report is a function of the
    ledger, so a file that says anything else was not made by `charter report`, whoever recorded
    it. The log key is the pinned one, never the database's copy. `compiler` carries a custom KPI
    catalog the policies in force need (default: the built-in catalog).
    """
    from ..ledger import merkle
    from ..ledger.auditor import NoteError, leaf_hash, open_checkpoint

    checked: list[str] = []
    problems: list[str] = []
    digest = hashlib.sha256(data).hexdigest()
    entry = next((e for e in ledger.entries(types=(REPORT_ISSUED,)) if e.payload.get("sha256") == digest), None)
    if entry is None:
        problems.append(f"no report.issued entry records SHA-256 {digest}: the file was changed after it was "
                        "issued, or this ledger did not issue it")
        return ReportVerdict(checked, problems, None)
    payload = entry.payload
    checked.append(f"SHA-256 {digest} is recorded by the report.issued entry at seq {entry.seq} "
                   f"({payload['framework']}, {payload['format']}, {payload['name']!r}, issued {payload['issued_at']})")
    if leaf_hash(entry.body) != entry.record_hash:
        problems.append(f"entry {entry.seq}'s body does not hash to its record hash")
    stored = {size: (root, note) for size, root, note in ledger.checkpoints()}

    def signed(size: int) -> Any:
        held = stored.get(size)
        if held is None:
            return None
        try:
            return open_checkpoint(held[1], ledger.origin, log_public_key)
        except NoteError as exc:
            problems.append(f"checkpoint {size}: {exc}")
            return None

    bound_size, bound_root = int(payload["checkpoint"]["size"]), str(payload["checkpoint"]["root"])
    bound = signed(bound_size)
    if bound is None:
        problems.append(f"the report's checkpoint of size {bound_size} is missing or not signed by the log key")
    elif bound.root.hex() != bound_root:
        problems.append(f"the report's checkpoint {bound_size} has root {bound.root.hex()}, not {bound_root}")
    else:
        checked.append(f"the report is bound to checkpoint {bound_size} (root {bound_root[:16]}…), signed by the "
                       "log key")
    covering_size = min((size for size in stored if size > entry.seq), default=None)
    covering = signed(covering_size) if covering_size is not None else None
    if covering is None:
        problems.append(f"no checkpoint signed by the log key covers the issue entry at seq {entry.seq}; sign one "
                        "with `charter ledger checkpoint`")
    else:
        leaves = ledger.leaf_hashes(covering.size)
        try:
            merkle.verify_inclusion(leaf_hash(entry.body), entry.seq, covering.size,
                                    merkle.inclusion_proof(entry.seq, leaves), covering.root)
            checked.append(f"the issue entry is included in checkpoint {covering.size}")
            if bound is not None and bound.size <= covering.size:
                merkle.verify_consistency(bound.size, covering.size, bound.root, covering.root,
                                          merkle.consistency_proof(bound.size, leaves))
                checked.append(f"checkpoint {bound.size} is a prefix of checkpoint {covering.size}")
        except merkle.ProofError as exc:
            problems.append(f"proof against checkpoint {covering.size} failed: {exc}")
    if payload["format"] == "json" and bound is not None:
        problems.extend(_check_citations(ledger, data, bound, checked))
    if not problems:
        problems.extend(_check_rebuilt(ledger, log_public_key, payload, data, compiler, checked))
    return ReportVerdict(checked, problems, entry)


def _check_rebuilt(ledger: Ledger, log_public_key: bytes, payload: dict[str, Any], data: bytes,
                   compiler: PolicyCompiler | None, checked: list[str]) -> list[str]:
    """Rebuild the issued report read-only and compare it with `data`, byte for byte."""
    from ..kpis import builtin_catalog
    from ..submission import default_compiler

    compiler = compiler or default_compiler(builtin_catalog())
    as_of = datetime.datetime.fromisoformat(str(payload["as_of"]).replace("Z", "+00:00"))
    rendition = str(payload["format"])
    try:
        state = bind(ledger, log_public_key, as_of, compiler, read_only=True,
                     described=int(payload["described_size"]))
        if state.binding.checkpoint_size != int(payload["checkpoint"]["size"]):
            return [f"rebuilt at {payload['as_of']}, the report binds to checkpoint {state.binding.checkpoint_size}, "
                    f"not {payload['checkpoint']['size']}"]
        document = build(state, str(payload["framework"]), compiler.frameworks, payload.get("system"))
        texts = render_files(document, ["oscal" if rendition == "oscal-poam" else rendition], state.graph)
    except CharterError as exc:
        return [f"the report cannot be rebuilt from the ledger: {exc}"]
    if (texts.get(rendition) or "").encode() != data:
        return [f"the file is not the {payload['framework']} report this ledger gives at {payload['as_of']}: it was "
                "changed before it was issued, or not made by charter report"]
    checked.append(f"rebuilt from the ledger ({payload['framework']}, {payload['system'] or 'all systems'}, "
                   f"{payload['as_of']}): byte for byte the same")
    return []


def _check_citations(ledger: Ledger, data: bytes, bound: Any, checked: list[str]) -> list[str]:
    """Every cited entry of a JSON report: its proof leads to the bound root and the ledger holds that hash there."""
    from ..ledger import merkle

    document = json.loads(data)
    problems = []
    if document.get("ledger", {}).get("checkpoint_root") != bound.root.hex():
        problems.append("the report names another checkpoint root than its issue entry")
    proofs = document.get("proofs", [])
    leaves = ledger.leaf_hashes(bound.size)
    for proof in proofs:
        seq = int(proof["seq"])
        try:
            merkle.verify_inclusion(bytes.fromhex(proof["record_hash"]), seq, bound.size,
                                    [bytes.fromhex(h) for h in proof["path"]], bound.root)
        except (merkle.ProofError, ValueError) as exc:
            problems.append(f"cited entry {seq}: {exc}")
            continue
        if seq >= len(leaves) or leaves[seq].hex() != proof["record_hash"]:
            problems.append(f"cited entry {seq}: the ledger holds another record hash there")
    proven = {(int(p["seq"]), p["record_hash"]) for p in proofs}
    unproven = sorted({c for c in _citations({k: v for k, v in document.items() if k != "proofs"})} - proven)
    if unproven:
        shown = ", ".join(f"seq {seq} ({record_hash[:16]})" for seq, record_hash in unproven[:5])
        problems.append(f"{len(unproven)} cited entries have no inclusion proof in the report: {shown}"
                        + (", ..." if len(unproven) > 5 else ""))
    if not problems:
        checked.append(f"all {len(proofs)} cited entries are included in checkpoint {bound.size}, and every "
                       "citation in the report has its proof")
    return problems


def _citations(value: Any) -> Iterator[tuple[int, str]]:
    """Every (seq, record hash) a JSON report cites: each object with both, wherever it sits."""
    pending = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, dict):
            seq, record_hash = current.get("seq"), current.get("record_hash")
            if isinstance(seq, int) and isinstance(record_hash, str):
                yield seq, record_hash
            pending.extend(current.values())
        elif isinstance(current, list):
            pending.extend(current)
