"""`charter report`: an audit-readiness report per framework, bound to a signed checkpoint and issued in the ledger."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..errors import CharterError
from ..escalation import load_escalation
from ..report import bind, build_report, issue, render
from ..submission import systems_in_ledger
from .common import compile_policies, out, parse_time, policies_dir
from .escalation_cmds import escalation_file
from .ledger import DEFAULT_KEY, DbOption, KeyOption, open_ledger, pinned_public_key


class FrameworkName(StrEnum):
    """The frameworks a report can be about."""

    ISO_42001 = "iso-42001"
    EU_AI_ACT = "eu-ai-act"
    NIST_AI_RMF = "nist-ai-rmf"


class ReportFormat(StrEnum):
    """Report formats."""

    HTML = "html"
    MD = "md"
    JSON = "json"


@contextlib.contextmanager
def staged_file(path: Path) -> Iterator[Path]:
    """A temporary file beside `path` that replaces it when the block succeeds and vanishes when it fails.

    A reader never sees half a report, and a report whose issue could not be recorded is not left behind.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(name, 0o666 & ~umask)  # mkstemp makes the file private; a report is meant to be shared
    except OSError as exc:
        raise CharterError.single("write_failed", exc.strerror or "cannot write", file=str(path)) from exc
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as exc:
        raise CharterError.single("write_failed", exc.strerror or "cannot write", file=str(path)) from exc
    finally:
        temporary.unlink(missing_ok=True)


def report(
    framework: Annotated[FrameworkName, typer.Option("--framework", help="The framework to report on.")],
    output_file: Annotated[Path, typer.Option("-o", "--output", help="Where to write the report.")],
    output: Annotated[ReportFormat, typer.Option("--format", help="html (self-contained), md or json.")]
    = ReportFormat.HTML,
    system: Annotated[str | None, typer.Option(help="Only this system.")] = None,
    at: Annotated[str, typer.Option("--at", help="Judge evidence freshness as of this time (ISO 8601 or 'now').")]
    = "now",
    policies: Annotated[Path | None, typer.Option("--policies", help="Policy directory (default: ./policies, "
                                                  "else the built-in packs).")] = None,
    db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Write an audit-readiness report: controls, rules, evidence, incidents, gaps, scores, KPI trends.

    The report is bound to a checkpoint signed just before it is built, states the verify result,
    and its SHA-256 is recorded in the ledger as it is issued.
    """
    directory = policies_dir(policies)
    policy_set, _, frameworks = compile_policies(directory, None, None)
    graph = load_escalation(escalation_file(None, directory))
    as_of = parse_time(at)
    ledger = open_ledger(db, ledger_key, writable=True)
    if system is not None and system not in systems_in_ledger(ledger):
        raise CharterError.single("unknown_system", f"system {system!r} is not registered in the ledger")
    snapshot, binding = bind(ledger, pinned_public_key(ledger_key, None))
    document = build_report(snapshot, framework.value, frameworks, policy_set.policies, graph, binding, as_of,
                            system)
    text = render(document, output.value, graph)
    with staged_file(output_file) as staged:
        staged.write_text(text, encoding="utf-8")
        entry = issue(ledger, document, output.value, text, output_file.name)
    score = document.scores.framework
    out.print(f"{escape(str(output_file))}: {framework.value} readiness {score.readiness:.0%}, coverage "
              f"{score.coverage:.0%} ({score.covered} of {score.assessed} controls), bound to checkpoint "
              f"{binding.checkpoint_size}; issued at seq {entry.seq} (sha256 {entry.payload['sha256'][:16]}…)")

