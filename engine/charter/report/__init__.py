"""Audit-readiness reports per framework: build from one signed ledger state, render, and record the issue.

    snapshot, binding = bind(ledger, log_public_key, as_of)   # signs a checkpoint and verifies
    document = build_report(snapshot, "iso-42001", frameworks, policies, graph, binding, as_of)
    text = render(document, "html", graph)
    issue(ledger, document, "html", text, "report.html")      # the report's hash enters the ledger

HTML is one self-contained file (inline CSS and SVG, no script, no external asset) that prints
well; Markdown suits a repository or a ticket; JSON follows `ReportDocument`'s schema.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from ..errors import CharterError
from ..escalation import EscalationGraph
from ..ledger.checkpoints import make_checkpoint
from ..ledger.store import Entry, Ledger, NewEntry, format_time
from ..ledger.verified import full_pass_of, record_verified_state
from ..ledger.verify import verify_with_state
from .model import (
    FORMULA,
    LedgerBinding,
    PortfolioSnapshot,
    ReportDocument,
    build_report,
)
from .svg import STATUS_COLOURS, escalation_svg, trend_chart

__all__ = ["FORMATS", "FORMULA", "REPORT_ISSUED", "PortfolioSnapshot", "ReportDocument", "bind", "build_report",
           "issue", "render"]

FORMATS = ("html", "md", "json")
REPORT_ISSUED = "report.issued"
_TEMPLATES = Path(__file__).resolve().parent / "templates"
#: pairs listed per control in HTML and Markdown (worst first); JSON lists them all
ATTENTION_LIMIT = 15


def bind(ledger: Ledger, log_public_key: bytes, as_of: datetime.datetime, *,
         full: bool = False) -> tuple[PortfolioSnapshot, LedgerBinding]:
    """Verify the ledger, read its state, and sign a checkpoint of exactly that state.

    The order makes failures cheap and clean: a ledger that does not verify gets no report and no
    checkpoint (its figures could not be trusted; `charter verify` locates the damage), and a report
    time before the newest evidence is refused before anything is signed.

    Verification resumes from the log-signed verified state the previous binding recorded (entries
    since then are read, and must extend its Merkle frontier); `full` reads every entry again. The
    state reached is recorded for the next report.

    Raises:
        CharterError: the ledger is empty, does not verify, `as_of` precedes the newest evidence, or
            the log key is missing.
    """
    if ledger.size() == 0:
        raise CharterError.single("empty_ledger", "the ledger holds no entries: there is nothing to report on")
    verdict, verifier, resumed = verify_with_state(ledger, log_public_key, resume=not full)
    if not verdict.ok:
        raise CharterError.single("ledger_damaged", f"the ledger does not verify, so no report is issued: "
                                  f"{verdict.summary()}; run charter verify for the details")
    size = verdict.entries  # exactly the entries verified, even if more were appended meanwhile
    snapshot = PortfolioSnapshot.load(ledger, size)
    snapshot.check_as_of(as_of)
    checkpoint = make_checkpoint(ledger, size)
    # The verifier computed its root over the record hashes it just checked (or extended the signed
    # frontier it resumed from); the new checkpoint anchors exactly those once the roots agree.
    if verifier.root != checkpoint.root:
        raise CharterError.single("ledger_damaged", f"the checkpoint of {size} entries does not match the entries "
                                  "just verified: the ledger changed under the report; run charter verify")
    verdict.checkpoints.append(checkpoint.size)
    record_verified_state(ledger, verifier, full_pass_of(resumed) if resumed else (size, format_time(ledger.clock())))
    binding = LedgerBinding(origin=ledger.origin, checkpoint_size=checkpoint.size,
                            checkpoint_root=checkpoint.root.hex(), checkpoint_note=checkpoint.note,
                            verified=verdict.ok, verify_summary=verdict.summary())
    return snapshot, binding


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def _markdown_text(value: object) -> str:
    """Free text made inert in Markdown: no HTML, no table break, no line break, no emphasis or link syntax."""
    text = " ".join(str(value).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for char in "\\`*[]|":
        text = text.replace(char, "\\" + char)
    return text


def _environment(autoescape: bool) -> jinja2.Environment:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=autoescape,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                     keep_trailing_newline=True)
    environment.filters["percent"] = _percent
    environment.filters["cell"] = _markdown_text
    return environment


def render(document: ReportDocument, fmt: str, graph: EscalationGraph) -> str:
    """The report as ``html``, ``md`` or ``json`` text (deterministic for the same document)."""
    if fmt == "json":
        return json.dumps(document.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
    context: dict[str, Any] = {"doc": document, "colours": STATUS_COLOURS, "attention_limit": ATTENTION_LIMIT}
    if fmt == "html":
        context["charts"] = [Markup(trend_chart(t)) for t in document.trends]
        context["escalation_svg"] = Markup(escalation_svg(graph))
        return _environment(True).get_template("report.html.j2").render(context)
    if fmt == "md":
        return _environment(False).get_template("report.md.j2").render(context)
    raise CharterError.single("usage", f"unknown report format {fmt!r}; one of {', '.join(FORMATS)}")


def issue(ledger: Ledger, document: ReportDocument, fmt: str, text: str, name: str) -> Entry:
    """Record that this exact report was handed out: its SHA-256, name, format, inputs and checkpoint.

    Issuing the same bytes under the same name again returns the existing entry.
    """
    data = text.encode()
    digest = hashlib.sha256(data).hexdigest()
    key = f"report:{digest}:{hashlib.sha256(name.encode()).hexdigest()[:16]}"
    existing = ledger.by_submission(key)
    if existing is not None:
        return existing
    payload = {"framework": document.framework, "format": fmt, "sha256": digest, "bytes": len(data),
               "name": name, "system": document.system, "as_of": document.as_of,
               "checkpoint": {"size": document.ledger.checkpoint_size, "root": document.ledger.checkpoint_root},
               "policy_set_digest": document.inputs.policy_set_digest,
               "escalation_digest": document.inputs.escalation_digest,
               "readiness": document.scores.framework.readiness, "issued_at": format_time(ledger.clock())}
    return ledger.append([NewEntry(REPORT_ISSUED, payload, key, subject=document.system)])[0]
