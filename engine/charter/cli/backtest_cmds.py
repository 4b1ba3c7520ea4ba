"""`charter backtest`: what a candidate policy version would have found on the stored evidence."""

import json
import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import CharterError
from .common import compile_policies, err, out, parse_time, policies_dir, safe
from .ledger import DEFAULT_KEY, DbOption, KeyOption, open_ledger

if TYPE_CHECKING:
    from rich.table import Table

    from ..backtest import BacktestReport, Change


class BacktestFormat(StrEnum):
    """Output formats."""

    TEXT = "text"
    JSON = "json"


def backtest_command(
    policies: Annotated[Path | None, typer.Option("--policies", help="The candidate policy directory "
                                                  "(default: ./policies).")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only bundles whose window ends at or after this "
                                              "date or time (ISO 8601; a date is midnight UTC).")] = None,
    system: Annotated[str | None, typer.Option(help="Only this system.")] = None,
    output: Annotated[BacktestFormat, typer.Option("--format", help="text or json.")] = BacktestFormat.TEXT,
    limit: Annotated[int, typer.Option(help="Changes listed per kind in text output.")] = 20,
    fail_on_change: Annotated[bool, typer.Option("--fail-on-change", help="Exit 1 if any breach would appear, "
                                                 "disappear or change severity.")] = False,
    jobs: Annotated[int, typer.Option(min=1, help="Worker processes for large ledgers (systems are split between "
                                      "them).")] = min(4, os.cpu_count() or 1),
    kpis_file: Annotated[Path | None, typer.Option("--kpis", help="Custom KPI catalog.")] = None,
    db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Re-evaluate the stored bundles with candidate policies and compare with the recorded findings.

    Each bundle is judged at the time it was originally evaluated, with its real history. Nothing
    is written to the ledger.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..backtest import backtest
    from ..submission import systems_in_ledger

    policy_set, catalog, frameworks = compile_policies(policies_dir(policies), kpis_file, None)
    start = None
    if since is not None:  # a bare date means its first moment in UTC
        start = parse_time(f"{since}T00:00:00Z" if len(since) == 10 else since, "--since")
    ledger = open_ledger(db, ledger_key, writable=False)
    if system is not None and system not in systems_in_ledger(ledger):
        raise CharterError.single("unknown_system", f"system {system!r} is not registered in the ledger")
    with Progress(TextColumn("back-testing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True, disable=output is BacktestFormat.JSON) as bar:
        task = bar.add_task("bundles", total=None)
        report = backtest(ledger, policy_set.policies, since=start, system=system, jobs=jobs, catalog=catalog,
                          frameworks=frameworks,
                          progress=lambda done, total: bar.update(task, completed=done, total=total))
    if output is BacktestFormat.JSON:
        typer.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        _print(report, limit)
    changed = report.breaches_appeared or report.breaches_disappeared or report.severity_changed
    if fail_on_change and changed:
        raise typer.Exit(1)


def _print(report: "BacktestReport", limit: int) -> None:
    from rich.table import Table

    from ..backtest import summary_rows

    summary = Table("", "count", title="Back-test against the recorded findings")
    for label, count in summary_rows(report):
        summary.add_row(label, str(count))
    out.print(summary)
    for title, changes in (("Breaches that would appear", report.breaches_appeared),
                           ("Breaches that would disappear", report.breaches_disappeared),
                           ("Breaches whose severity would change", report.severity_changed)):
        if changes:
            out.print(_changes(title, changes, limit))
    moved = [(rule, kind, n) for (rule, kind), n in sorted(report.by_rule.items())]
    if moved:
        table = Table("rule", "change", "bundles", title="Changes per rule")
        for rule, kind, n in moved:
            table.add_row(safe(rule), safe(kind), str(n))
        out.print(table)
    if not moved:
        out.print("The candidate policies give exactly the recorded statuses.")


def _changes(title: str, changes: "list[Change]", limit: int) -> "Table":
    from rich.table import Table

    table = Table("system", "rule", "segment", "window end", "recorded", "candidate", "severity",
                  title=f"{title} ({len(changes)})")
    for change in changes[:limit]:
        severity = change.candidate_severity or change.recorded_severity or ""
        if change.recorded_severity and change.candidate_severity and \
                change.recorded_severity != change.candidate_severity:
            severity = f"{change.recorded_severity} -> {change.candidate_severity}"
        table.add_row(safe(change.system), safe(change.rule), safe(change.segment or ""),
                      change.window_end[:10], change.recorded, change.candidate, severity)
    if len(changes) > limit:
        table.caption = f"{len(changes) - limit} more in --format json"
    return table
