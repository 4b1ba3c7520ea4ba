"""`charter report`: an audit-readiness report per framework, bound to a signed checkpoint and issued in the ledger."""

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ..errors import CharterError
from ..publishing import ReportFile
from .common import out, parse_time, safe
from .ledger import DEFAULT_KEY, DbOption, KeyOption, open_ledger, pinned_public_key
from .remote import refuse_options, remote_client


class FrameworkName(StrEnum):
    """The frameworks a report can be about."""

    ISO_42001 = "iso-42001"
    EU_AI_ACT = "eu-ai-act"
    NIST_AI_RMF = "nist-ai-rmf"
    NIST_AI_600_1 = "nist-ai-600-1"


#: the formats `--format` takes
FORMATS = ("html", "md", "json", "oscal")


def parse_formats(text: str) -> list[str]:
    """``html,md,json,oscal`` -> the formats, in that order, each once.

    Raises:
        CharterError: an unknown or repeated format.
    """
    formats = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if not formats or unknown:
        raise CharterError.single("usage", f"--format takes one or more of {', '.join(FORMATS)} separated by "
                                  f"commas; got {text!r}")
    if len(set(formats)) != len(formats):
        raise CharterError.single("usage", f"--format names a format twice: {text!r}")
    return formats


def output_paths(output: Path, formats: list[str]) -> dict[str, Path]:
    """Where each rendition goes.

    One format: `output` itself. Several: `output` with each format's suffix in place of its own.
    ``oscal`` also writes its plan of action and milestones beside the assessment results
    (``.poam.json``).
    """
    from ..report import SUFFIXES

    name = output.name
    for suffix in sorted(SUFFIXES.values(), key=len, reverse=True):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    paths = {formats[0]: output} if len(formats) == 1 else \
        {fmt: output.with_name(name + SUFFIXES[fmt]) for fmt in formats}
    if "oscal" in formats:
        paths["oscal-poam"] = output.with_name(name + SUFFIXES["oscal-poam"])
    return paths


report_app = typer.Typer(help="Audit-readiness reports: issue one (bound to a signed checkpoint), or verify one.",
                         invoke_without_command=True, no_args_is_help=False)


@report_app.callback(invoke_without_command=True)
def report(
    ctx: typer.Context,
    framework: Annotated[FrameworkName | None, typer.Option("--framework", help="The framework to report on.")]
    = None,
    output_file: Annotated[Path | None, typer.Option("-o", "--output", help="Where to write the report (with "
                                                     "several formats, the suffix is each format's).")] = None,
    output: Annotated[str, typer.Option("--format", help="html (self-contained), md, json, oscal (OSCAL 1.1 "
                                        "assessment results), or several separated by commas: one report, "
                                        "one checkpoint.")] = "html",
    system: Annotated[str | None, typer.Option(help="Only this system.")] = None,
    at: Annotated[str, typer.Option("--at", help="The report's time (ISO 8601 or 'now'): the ledger is described "
                                    "as it stood then; entries received later, decisions included, are left out.")]
    = "now",
    kpis_file: Annotated[Path | None, typer.Option("--kpis", help="A custom KPI catalog the policies in force "
                                                   "need. Never read from the current folder: the same ledger and "
                                                   "--at give the same report wherever it is run.")] = None,
    full_verify: Annotated[bool, typer.Option("--full-verify", help="Read every entry again instead of "
                                              "resuming from the verified state the last report recorded.")]
    = False,
    db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Write an audit-readiness report: per control and system, applicability, status and the evidence behind it.

    The report is bound to a checkpoint signed just before it is built, cites every ledger entry it
    relies on with an inclusion proof, and each file's SHA-256 is recorded in the ledger as it is
    issued (`charter report verify FILE` checks it later).
    """
    if ctx.invoked_subcommand is not None:
        return
    if framework is None or output_file is None:
        raise CharterError.single("usage", "charter report needs --framework and -o/--output "
                                  "(or a subcommand: charter report verify FILE)")
    from contextlib import ExitStack

    from ..authority import reading_catalog
    from ..report import issue_report, percent
    from ..submission import default_compiler

    formats = parse_formats(output)
    paths = output_paths(output_file, formats)
    client = remote_client(db)
    if client is not None:
        from ..ledger.records import format_time
        from . import remote_cmds

        refuse_options(kpis=kpis_file, full_verify=full_verify)  # the service's own catalog and verified state
        with client:
            remote_cmds.report(client, framework.value, formats, paths, system, format_time(parse_time(at)))
        return
    ledger = open_ledger(db, ledger_key, writable=True)
    # The policies and escalation configuration in force in the ledger, never a folder's: the report
    # describes what governed the evidence. --kpis only adds a custom KPI catalog, named explicitly.
    compiler = default_compiler(reading_catalog(ledger.authority().custom_kpis, kpis_file,
                                                "the custom KPIs of the ledger's policy activations"))
    with ExitStack() as stack:
        targets = {fmt: stack.enter_context(ReportFile(path)) for fmt, path in paths.items()}

        def publish(rendition: str, text: str | None) -> None:
            if text is None:  # nothing open: no plan of action, and none left from an earlier report
                targets[rendition].withdraw()
            else:
                targets[rendition].publish(text.encode())

        issued = issue_report(ledger, pinned_public_key(ledger_key, None), framework.value, formats, compiler,
                              as_of=parse_time(at), names={fmt: path.name for fmt, path in paths.items()},
                              publish=publish, system=system, full=full_verify)
    document, state, renditions, entries = issued.document, issued.state, issued.files, issued.entries
    figures = document.figures
    health, completeness = percent(figures.kpi_health), percent(figures.documentary_completeness)
    for (_, _, name), entry in zip(renditions, entries, strict=True):
        path = next(p for p in paths.values() if p.name == name)
        out.print(f"{safe(str(path))}: issued at seq {entry.seq} (sha256 {entry.payload['sha256'][:16]}…)")
    out.print(f"{framework.value}: {figures.applicable} applicable control-system pairs, {figures.not_applicable} "
              f"not applicable; documentary completeness {completeness}; KPI health {health} over "
              f"{figures.kpi_pairs} rule-system pairs; {figures.open_nonconformities} open nonconformities; bound "
              f"to checkpoint {state.binding.checkpoint_size}, describing {state.binding.described_size} entries")
    out.print(f"verified before reporting: {safe(state.verification)}")


@report_app.command("verify")
def report_verify(
    report_file: Annotated[Path, typer.Argument(help="An issued report file (any format).")],
    log_key: Annotated[Path | None, typer.Option("--log-key", help="The log's public key (default: the .pub "
                                                 "beside --key); never the database's copy.")] = None,
    kpis_file: Annotated[Path | None, typer.Option("--kpis", help="The custom KPI catalog the report was issued "
                                                   "with, if any.")] = None,
    db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Check a report file: issued in the ledger, bound to a signed checkpoint, citations proven, and rebuilt identical.

    Exit 0 when every check passes, 1 on any mismatch (a changed byte, a missing or unsigned
    checkpoint, a failed proof), 2 on bad input.
    """
    from .._sources import read_bytes
    from ..authority import reading_catalog
    from ..report import verify_report
    from ..submission import default_compiler

    data = read_bytes(report_file)
    client = remote_client(db)
    if client is not None:
        from . import remote_cmds

        refuse_options(log_key=log_key, kpis=kpis_file)  # the server checks with its own pinned key and catalog
        with client:
            remote_cmds.report_verify(client, report_file, data)
        return
    ledger = open_ledger(db, ledger_key, writable=False)
    verdict = verify_report(ledger, pinned_public_key(ledger_key, log_key), data,
                            default_compiler(reading_catalog(ledger.authority().custom_kpis, kpis_file,
                                                             "the custom KPIs of the ledger's policy activations")))
    for line in verdict.checked:
        out.print(f"ok: {safe(line)}")
    for problem in verdict.problems:
        out.print(f"FAILED: {safe(problem)}")
    if not verdict.ok:
        raise typer.Exit(1)
    out.print(f"{safe(str(report_file))}: verified")
