"""`charter audit EXPORT_DIR`: verify an export, then re-derive every recorded finding, and the incidents they caused.

Exit codes: 0 every verdict and incident entry re-derived identically over an anchored export; 1 a
verdict or an incident opening, attachment or automatic reopen differs, a bundle's records cannot be
replayed, or the export fails verification; 2 bad input (missing files,
malformed entries.jsonl, a recorded policy the catalogs given cannot compile); 3 everything agrees
but nothing outside the export anchors it (no --log-key, no held --checkpoint).
"""

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from ..errors import CharterError
from .common import OutputFormat, compile_policies, err, named_kpis_file, out, policies_dir, safe

if TYPE_CHECKING:
    from ..audit import AuditResult, ExportedLedger
    from ..kpis import KpiCatalog
    from ..ledger.auditor import Report

#: exit codes
AGREE, DIFFER, BAD_INPUT, UNANCHORED = 0, 1, 2, 3
#: differences printed in text output; --format json lists them all
SHOWN = 50


def pinned_key(value: str) -> bytes:
    """The pinned log key from ``--log-key``: a ``.pub`` file (``NAME BASE64``) or the base64 key itself.

    Raises:
        CharterError: ``key_file`` when it is neither.
    """
    import base64
    import binascii

    from ..ledger.keys import load_public_key_file

    path = Path(value)
    if path.is_file():
        return load_public_key_file(path)[1]
    try:
        public = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        public = b""
    if len(public) != 32:
        raise CharterError.single("key_file", "--log-key is neither a .pub file nor a base64 Ed25519 public key "
                                  "(32 bytes)", path="--log-key")
    return public


def audit_command(
    export_dir: Annotated[Path, typer.Argument(help="A directory written by `charter ledger export`.")],
    log_key: Annotated[str | None, typer.Option("--log-key", help="The log's public key as you obtained it out of "
                                                "band: a .pub file or base64. Without it (or a held "
                                                "--checkpoint) the result is unanchored (exit 3).")] = None,
    checkpoint: Annotated[list[Path], typer.Option("--checkpoint", help="A checkpoint note you hold yourself "
                                                   "(repeatable); anchors the entries it covers.")]
    = [],  # noqa: B006 - typer needs a list default for repeatable options
    policies: Annotated[Path | None, typer.Option("--policies", help="Policy directory with custom KPIs "
                                                  "(kpis.yaml) and frameworks, as for `charter replay`.")] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = OutputFormat.TABLE,
    jobs: Annotated[int, typer.Option(min=1, help="Worker processes for the replay of a large export (systems "
                                      "are split between them; forked, on Linux; one process elsewhere).")]
    = min(4, os.cpu_count() or 1),
) -> None:
    """Verify an export, then re-derive every finding from its bundles, policy versions, systems and history.

    Reports each recorded verdict the re-derivation does not give (bundle seq, rule, stored and
    re-derived status), and each incident opening, attachment or automatic reopen the re-derived
    breaches do not cause as recorded (seq, incident, what differs). Exit 0 all agree, 1 a verdict or
    an incident entry differs or the export fails verification,
    2 bad input, 3 all agree but the export is unanchored (no --log-key or held --checkpoint).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .._sources import read_text
    from ..audit import audit_export, read_export
    from ..authority import reading_catalog, recorded_custom_kpis
    from ..policy import PolicyCompiler
    from .ledger import MAX_NOTE_BYTES

    held = [read_text(path, MAX_NOTE_BYTES) for path in checkpoint]
    pinned = pinned_key(log_key) if log_key is not None else None
    _, _, frameworks = compile_policies(policies_dir(policies), None, None)
    export = read_export(export_dir)
    public = pinned if pinned is not None else export.public_key
    anchor = "log_key" if pinned is not None else "checkpoint" if held else "unanchored"
    if pinned is not None and pinned != export.public_key:
        err.print("[yellow]warning: the export's trust_root.json names another log key than the one you pinned; "
                  "verifying against yours[/]")
    if anchor == "unanchored":
        err.print("[bold yellow]UNANCHORED: no --log-key and no held --checkpoint were given, so the export's own "
                  "trust_root.json is trusted. That proves the entries are consistent with each other (integrity) "
                  "but not that they are the log's: whoever wrote the export could have re-signed everything with "
                  "a key of their own. The result is 'unanchored' (exit 3), never a pass.[/]")
    def prepare(ledger: "ExportedLedger") -> tuple["KpiCatalog", PolicyCompiler]:
        # Bundles are read with the custom KPIs the export's policy activations recorded; a folder's
        # kpis.yaml must repeat them (it supplies them only for a ledger that recorded none).
        catalog = reading_catalog(recorded_custom_kpis(ledger), named_kpis_file(policies),
                                  "the custom KPIs of the export's policy activations")
        return catalog, PolicyCompiler(catalog, frameworks)

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True, disable=output is OutputFormat.JSON or not err.is_terminal) as bar:
        task = bar.add_task("verifying", total=len(export.entries))
        done = audit_export(export, public, [*export.notes, *held], prepare, jobs=jobs,
                            progress=lambda phase, n, total: bar.update(task, description=phase, completed=n,
                                                                        total=total))
    report, result = done.report, done.result
    # A held note that is not the pinned log's, or whose root the entries do not give, is a
    # verification problem: past this point every held note matched.
    if result is None:
        _integrity_failed(export_dir, anchor, report, output)
    code = (DIFFER if result.differences or result.incident_differences or result.unauthorized
            or len(result.uncompilable) < len(result.unreplayable)
            else BAD_INPUT if result.uncompilable else UNANCHORED if anchor == "unanchored" else AGREE)
    if output is OutputFormat.JSON:
        typer.echo(json.dumps({"export": str(export_dir), "anchor": anchor, "integrity": _integrity(report),
                               **result.to_dict(), "exit_code": code}, indent=2))
    else:
        _print(report, result, anchor)
    if code:
        raise typer.Exit(code)


def _integrity(report: "Report") -> dict[str, Any]:
    return {"ok": report.ok, "entries": report.entries, "covered_by_checkpoint": report.covered,
            "first_bad_seq": report.first_bad_seq, "problems": [str(p) for p in report.problems],
            "summary": report.summary()}


def _integrity_failed(export_dir: Path, anchor: str, report: "Report", output: OutputFormat) -> NoReturn:
    first = report.first_bad_seq
    if output is OutputFormat.JSON:
        typer.echo(json.dumps({"export": str(export_dir), "anchor": anchor, "integrity": _integrity(report),
                               "exit_code": DIFFER}, indent=2))
    else:
        for problem in report.problems:
            out.print(f"[red]{safe(str(problem))}[/]")
        where = f"first bad seq {first}" if first is not None else "the ledger as a whole"
        out.print(f"[bold red]integrity: FAILED at {where}[/]: no verdict was re-derived from an export that "
                  "does not verify")
    raise typer.Exit(DIFFER)


def _print(report: "Report", result: "AuditResult", anchor: str) -> None:
    from rich.table import Table

    anchored = {"log_key": "anchored by the pinned --log-key",
                "checkpoint": f"anchored by a held checkpoint of {report.covered} entries",
                "unanchored": "[bold yellow]UNANCHORED[/] (the export's own trust root was trusted)"}[anchor]
    out.print(f"integrity: {safe(report.summary())}; {anchored}")
    summary = Table("", "count", title="Semantic audit")
    for label, count in (("bundles audited", result.bundles), ("findings recorded", result.findings_stored),
                         ("findings re-derived", result.findings_rederived),
                         ("verdicts differing", len(result.differences)),
                         ("bundles differing", result.bundles_differing),
                         ("bundles not re-derived", len(result.unreplayable)),
                         ("incident entries recorded", result.incident_entries_stored),
                         ("incident entries re-derived", result.incident_entries_rederived),
                         ("incident entries differing", len(result.incident_differences)),
                         ("unauthorized transitions", len(result.unauthorized))):
        summary.add_row(label, str(count))
    out.print(summary)
    if result.differences:
        table = Table("bundle seq", "system", "finding", "rule", "segment", "stored", "re-derived", "fields differing",
                      title=f"Verdicts that differ ({len(result.differences)})")
        for d in result.differences[:SHOWN]:
            table.add_row(str(d.seq), safe(d.system), "summary" if d.index is None else str(d.index), safe(d.rule),
                          safe(d.segment or ""), d.stored, d.rederived, safe(", ".join(d.fields)))
        if len(result.differences) > SHOWN:
            table.caption = f"{len(result.differences) - SHOWN} more in --format json"
        out.print(table)
    if result.incident_differences:
        table = Table("seq", "bundle seq", "system", "incident", "difference", "detail",
                      title=f"Incident entries that differ ({len(result.incident_differences)})")
        for i in result.incident_differences[:SHOWN]:
            table.add_row(str(i.seq), "none" if i.bundle is None else str(i.bundle), safe(i.system), safe(i.incident),
                          i.kind.replace("_", " "), safe(i.detail))
        if len(result.incident_differences) > SHOWN:
            table.caption = f"{len(result.incident_differences) - SHOWN} more in --format json"
        out.print(table)
    for item in result.unreplayable[:SHOWN]:
        out.print(f"[red]bundle seq {item.seq} not re-derived[/]: {safe(item.message)} [dim]\\[{item.code}][/]")
    if len(result.unreplayable) > SHOWN:
        out.print(f"{len(result.unreplayable) - SHOWN} more bundles not re-derived (--format json lists them)")
    for problem in result.unauthorized[:SHOWN]:
        out.print(f"[red]{safe(str(problem))}[/]")
    if not result.differences and not result.unreplayable and not result.unauthorized \
            and not result.incident_differences:
        verdict = "every recorded verdict and incident entry re-derived identically"
        out.print(f"[green]{verdict}[/]" if anchor != "unanchored" else
                  f"[yellow]{verdict}, but over an unanchored export (exit 3)[/]")
