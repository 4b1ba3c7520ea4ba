"""Audit-readiness reports per framework: build from one signed ledger state, render, and record the issue.

    snapshot, binding = bind(ledger, log_public_key)          # signs a checkpoint and verifies
    document = build_report(snapshot, "iso-42001", frameworks, policies, graph, binding, as_of)
    text = render(document, "html", graph)
    issue(ledger, document, "html", text, "report.html")      # the report's hash enters the ledger

HTML is one self-contained file (inline CSS and SVG, no script, no external asset) that prints
well; Markdown suits a repository or a ticket; JSON follows `ReportDocument`'s schema.
"""

from __future__ import annotations

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
from ..ledger.verify import verify_ledger
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


def bind(ledger: Ledger, log_public_key: bytes) -> tuple[PortfolioSnapshot, LedgerBinding]:
    """Sign a checkpoint of the whole ledger, verify the ledger, and read the state the checkpoint covers.

    A ledger that does not verify gets no report: its figures could not be trusted, and an auditor
    needs `charter verify` to locate the damage first.

    Raises:
        CharterError: the ledger is empty, the log key is missing, or the ledger does not verify.
    """
    if ledger.size() == 0:
        raise CharterError.single("empty_ledger", "the ledger holds no entries: there is nothing to report on")
    checkpoint = make_checkpoint(ledger)
    verdict = verify_ledger(ledger, log_public_key)
    if not verdict.ok:
        raise CharterError.single("ledger_damaged", f"the ledger does not verify, so no report is issued: "
                                  f"{verdict.summary()}; run charter verify for the details")
    binding = LedgerBinding(origin=ledger.origin, checkpoint_size=checkpoint.size,
                            checkpoint_root=checkpoint.root.hex(), checkpoint_note=checkpoint.note,
                            verified=verdict.ok, verify_summary=verdict.summary())
    return PortfolioSnapshot.load(ledger, checkpoint.size), binding


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def _environment(autoescape: bool) -> jinja2.Environment:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=autoescape,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                     keep_trailing_newline=True)
    environment.filters["percent"] = _percent
    environment.filters["cell"] = lambda value: str(value).replace("|", "\\|").replace("\n", " ")
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
    """Record that this exact report was handed out: its SHA-256, format and the checkpoint it describes.

    Issuing the same bytes again returns the existing entry.
    """
    digest = hashlib.sha256(text.encode()).hexdigest()
    key = f"report:{digest}"
    existing = ledger.by_submission(key)
    if existing is not None:
        return existing
    payload = {"framework": document.framework, "format": fmt, "sha256": digest, "bytes": len(text.encode()),
               "name": name, "system": document.system, "as_of": document.as_of,
               "checkpoint": {"size": document.ledger.checkpoint_size, "root": document.ledger.checkpoint_root},
               "readiness": document.scores.framework.readiness, "issued_at": format_time(ledger.clock())}
    return ledger.append([NewEntry(REPORT_ISSUED, payload, key, subject=document.system)])[0]
