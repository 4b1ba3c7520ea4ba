"""The ``charter`` command: a thin layer that parses arguments, calls the library and renders.

Exit codes: 0 ok, 1 breaches or failing tests, 2 bad input or usage. Bad input is reported as the
located diagnostics of a `CharterError`, never as a traceback.
"""

from __future__ import annotations

import datetime
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import TypeAdapter
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from ._data import builtin_dir
from .bundle import EvidenceBundle
from .errors import CharterError, Diagnostic
from .evaluate import Finding, Status, evaluate_bundle, findings_json
from .frameworks import FrameworkSet, load_frameworks
from .kpis import Category, KpiCatalog, load_catalog
from .policy import PolicyCompiler, PolicySet, policy_files
from .policy.model import Policy
from .policy.testing import PolicyTestRunner, TestFile, TestReport, find_test_files
from .registry import SystemRegistry

app = typer.Typer(help="Charter: policy-as-code governance for AI performance.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
policy_app = typer.Typer(help="Lint and test policies.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")

out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)

_STATUS_STYLE = {"pass": "green", "warn": "yellow", "breach": "bold red", "missing": "magenta", "error": "red"}


class OutputFormat(StrEnum):
    """Machine or human output."""

    TABLE = "table"
    JSON = "json"


class TestFormat(StrEnum):
    """Output of `charter policy test`."""

    PRETTY = "pretty"
    JSON = "json"


class SchemaName(StrEnum):
    """Documents with a published JSON Schema."""

    BUNDLE = "bundle"
    POLICY = "policy"
    POLICY_TEST = "policy-test"


# -- shared loading ------------------------------------------------------------------------------


def _policies_dir(given: Path | None) -> Path:
    """The policy directory: as given, else ./policies, else the built-in packs."""
    if given is not None:
        return given
    local = Path("policies")
    return local if local.is_dir() else builtin_dir("policies")


def _catalog(policies: Path | None, kpis_file: Path | None) -> KpiCatalog:
    if kpis_file is None and policies is not None and (policies / "kpis.yaml").is_file():
        kpis_file = policies / "kpis.yaml"
    return load_catalog(kpis_file)


def _compile(policies: Path, kpis_file: Path | None, frameworks_dir: Path | None
             ) -> tuple[PolicySet, KpiCatalog, FrameworkSet]:
    catalog = _catalog(policies, kpis_file)
    frameworks = load_frameworks(frameworks_dir)
    policy_set = PolicyCompiler(catalog, frameworks).compile_files(policy_files(policies))
    return policy_set, catalog, frameworks


def _print_diagnostics(diagnostics: tuple[Diagnostic, ...] | list[Diagnostic], label: str, style: str) -> None:
    for diagnostic in diagnostics:
        where = str(diagnostic.location)
        err.print(f"[{style}]{label}[/]: " + escape((f"{where}: " if where else "") + diagnostic.message)
                  + f" [dim]\\[{diagnostic.code}][/]")


def _parse_time(text: str) -> datetime.datetime:
    if text == "now":
        return datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    try:
        value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CharterError.single("usage", f"--at {text!r} is not an ISO 8601 timestamp or 'now'") from None
    if value.tzinfo is None:
        raise CharterError.single("usage", f"--at {text!r} has no timezone; add Z or +01:00")
    return value


# -- commands ------------------------------------------------------------------------------------


@app.command()
def kpis(
    category: Annotated[Category | None, typer.Option(help="Only this category.")] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = OutputFormat.TABLE,
    kpis_file: Annotated[Path | None, typer.Option("--kpis", help="Custom KPIs (kpis.yaml) to include.")] = None,
) -> None:
    """List the KPI catalog."""
    catalog = load_catalog(kpis_file)
    rows = catalog.by_category(category) if category else list(catalog.values())
    if output is OutputFormat.JSON:
        typer.echo(json.dumps([k.model_dump(mode="json") for k in rows], indent=2))
        return
    table = Table("id", "name", "category", "unit", "better", "range", "description", title="KPI catalog")
    for k in rows:
        table.add_row(k.id, k.name, k.category.value, k.unit, k.direction.value, k.range_text(), k.description)
    out.print(table)


@app.command()
def schema(name: Annotated[SchemaName, typer.Argument(help="bundle, policy or policy-test.")]) -> None:
    """Print the JSON Schema of a document type, for editor autocompletion."""
    model: Any = {SchemaName.BUNDLE: EvidenceBundle, SchemaName.POLICY: Policy,
                  SchemaName.POLICY_TEST: TestFile}[name]
    document = TypeAdapter(model).json_schema(mode="validation")
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    typer.echo(json.dumps(document, indent=2, sort_keys=True))


@policy_app.command("lint")
def policy_lint(
    directory: Annotated[Path | None, typer.Argument(help="Policy directory (default: ./policies).")] = None,
    kpis_file: Annotated[Path | None, typer.Option("--kpis", help="Custom KPI catalog.")] = None,
    frameworks_dir: Annotated[Path | None, typer.Option("--frameworks", help="Control catalogs.")] = None,
    strict: Annotated[bool, typer.Option(help="Treat warnings as errors.")] = False,
) -> None:
    """Compile every policy: schema, expressions (type-checked), control references."""
    policies = _policies_dir(directory)
    policy_set, _, _ = _compile(policies, kpis_file, frameworks_dir)
    _print_diagnostics(policy_set.warnings, "warning", "yellow")
    rules = sum(len(p.rules) for p in policy_set.policies)
    out.print(f"[green]ok[/]: {len(policy_set.policies)} policies, {rules} rules in {policies}"
              + (f", {len(policy_set.warnings)} warnings" if policy_set.warnings else ""))
    if strict and policy_set.warnings:
        raise typer.Exit(1)


@policy_app.command("test")
def policy_test(
    directory: Annotated[Path | None, typer.Argument(help="Policy directory (default: ./policies).")] = None,
    run: Annotated[str | None, typer.Option("--run", help="Only cases whose name matches this regex.")] = None,
    output: Annotated[TestFormat, typer.Option("--format", help="pretty or json.")] = TestFormat.PRETTY,
    coverage: Annotated[bool, typer.Option("--coverage", help="Show which statuses each rule is tested for.")]
    = False,
    kpis_file: Annotated[Path | None, typer.Option("--kpis", help="Custom KPI catalog.")] = None,
    frameworks_dir: Annotated[Path | None, typer.Option("--frameworks", help="Control catalogs.")] = None,
) -> None:
    """Run the policy unit tests (*_test.yaml) beside the policies."""
    policies = _policies_dir(directory)
    policy_set, catalog, _ = _compile(policies, kpis_file, frameworks_dir)
    report = PolicyTestRunner(policy_set, catalog).run(find_test_files(policies), run)
    if output is TestFormat.JSON:
        typer.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        _print_test_report(report, coverage)
    if not report.ok:
        raise typer.Exit(1)


def _print_test_report(report: TestReport, coverage: bool) -> None:
    for result in report.results:
        where = f"{result.file}:{result.line}"
        if result.passed:
            out.print(f"[green]PASS[/] {escape(result.name)} [dim]({escape(where)})[/]")
            continue
        out.print(f"[bold red]FAIL[/] {escape(result.name)} [dim]({escape(where)})[/]")
        if result.error:
            out.print(f"     error: {escape(str(result.error))}")
        for m in result.mismatches:
            out.print(f"     {escape(m.rule)}: expected [bold]{m.expected}[/], got [bold]{m.actual}[/] — "
                      f"{escape(m.explanation)}")
    if coverage:
        table = Table("rule", "statuses tested", title="Rule coverage")
        for rule in report.rules:
            tested = sorted(report.statuses_tested.get(rule, set()))
            table.add_row(rule, ", ".join(tested) if tested else "[red]not tested[/]")
        out.print(table)
    if report.uncovered:
        out.print(f"[yellow]{len(report.uncovered)} rules not exercised by any test:[/] "
                  + ", ".join(report.uncovered))
    passed = len(report.results) - len(report.failed)
    if not report.results:
        out.print("[bold red]no test ran[/]")
    out.print("-" * 40)
    out.print(f"PASS: {passed}/{len(report.results)}" + (f"  FAIL: {len(report.failed)}" if report.failed else ""))


def _find_registry(given: Path | None, bundles: list[Path]) -> Path:
    if given is not None:
        return given
    for candidate in [*(b.parent / "systems.yaml" for b in bundles), Path("systems.yaml")]:
        if candidate.is_file():
            return candidate
    raise CharterError.single("unknown_system", "no systems.yaml beside the bundles or in the working "
                              "directory; pass --systems FILE")


def _evaluate_files(bundle_paths: list[Path], policies: Path, systems_file: Path | None, at: str | None,
                    kpis_file: Path | None, frameworks_dir: Path | None) -> list[Finding]:
    policy_set, catalog, _ = _compile(policies, kpis_file, frameworks_dir)
    registry = SystemRegistry.from_file(_find_registry(systems_file, bundle_paths), catalog)
    bundles: list[tuple[Path, EvidenceBundle]] = []
    problems: list[Diagnostic] = []
    for path in bundle_paths:
        try:
            bundle = EvidenceBundle.from_file(path, catalog)
            registry.require(bundle.system_id, file=str(path))
            bundles.append((path, bundle))
        except CharterError as exc:
            problems.extend(exc.diagnostics)
    if problems:
        raise CharterError(problems)
    fixed_time = _parse_time(at) if at else None
    everything = [b for _, b in bundles]
    findings: list[Finding] = []
    for _, bundle in sorted(bundles, key=lambda pb: (pb[1].system_id, pb[1].window_end)):
        when = fixed_time or bundle.measured_at
        findings.extend(evaluate_bundle(registry[bundle.system_id], bundle, policy_set.policies, when, everything))
    return findings


def _window_label(f: Finding) -> str:
    if f.window_end - f.window_start >= datetime.timedelta(days=28):
        return f.window_start.strftime("%Y-%m")
    return f"{f.window_start.date().isoformat()}..{f.window_end.date().isoformat()}"


def _print_findings(findings: list[Finding], show_all: bool, title: str) -> None:
    """A summary table per system and window, then one block per finding that needs attention."""
    summary = Table("system", "window", *(s.value for s in Status), title=title)
    groups: dict[tuple[str, str], list[Finding]] = {}
    for f in findings:
        groups.setdefault((f.system_id, _window_label(f)), []).append(f)
    for (system_id, window), group in groups.items():
        cells = []
        for status in Status:
            n = sum(1 for f in group if f.status is status)
            cells.append(f"[{_STATUS_STYLE[status.value]}]{n}[/]" if n and status is not Status.PASS else str(n))
        summary.add_row(system_id, window, *cells)
    out.print(summary)
    for f in findings:
        if not show_all and f.status is Status.PASS:
            continue
        style = _STATUS_STYLE[f.status.value]
        segment = escape(f" [{f.segment}]") if f.segment else ""
        out.print(f"\n[bold]{f.system_id}[/] {_window_label(f)}  {f.rule_ref}{segment}  "
                  f"[{style}]{f.status.value.upper()}[/] ({f.severity.value})")
        out.print(f"  why: {escape(f.explanation)}", soft_wrap=True)
        if f.controls:
            out.print(f"  controls: {escape(', '.join(f.controls))}", soft_wrap=True)
        if f.status is not Status.PASS and f.remediation:
            out.print(f"  remediation: {escape(f.remediation.strip())}", soft_wrap=True)


@app.command()
def evaluate(
    bundles: Annotated[list[Path], typer.Argument(help="Evidence bundle files (JSON).")],
    policies: Annotated[Path | None, typer.Option("--policies", help="Policy directory.")] = None,
    systems: Annotated[Path | None, typer.Option("--systems", help="Registry file (systems.yaml).")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Evaluation time (ISO 8601 or 'now'); default: "
                                           "each bundle's measured_at, as when it was submitted.")] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = OutputFormat.TABLE,
    show_all: Annotated[bool, typer.Option("--all", help="Also list passing rules.")] = False,
    kpis_file: Annotated[Path | None, typer.Option("--kpis", help="Custom KPI catalog.")] = None,
    frameworks_dir: Annotated[Path | None, typer.Option("--frameworks", help="Control catalogs.")] = None,
) -> None:
    """Evaluate bundles against the policies that apply to their systems; exit 1 on a breach."""
    findings = _evaluate_files(bundles, _policies_dir(policies), systems, at, kpis_file, frameworks_dir)
    if output is OutputFormat.JSON:
        typer.echo(findings_json(findings))
    else:
        _print_findings(findings, show_all, "Findings")
    if any(f.failing for f in findings):
        raise typer.Exit(1)


@app.command()
def demo() -> None:
    """Evaluate the demo evidence (fraud, claims, maintenance) against the built-in policies."""
    evidence = builtin_dir("evidence")
    policies = builtin_dir("policies")
    bundles = sorted(evidence.glob("*.json"))
    out.print(f"[bold]Charter {__version__} demo[/]: {len(bundles)} evidence bundles from {evidence}, "
              f"policies from {policies}\n")
    findings = _evaluate_files(bundles, policies, evidence / "systems.yaml", None, None, None)
    _print_findings(findings, False, "Findings per system and window (details below for all but passes)")
    breaches = [f for f in findings if f.status is Status.BREACH]
    out.print(f"\n{len(breaches)} breaches across {len({f.system_id for f in breaches})} systems. "
              "Next: `charter evaluate evidence/*.json --format json` for the full findings.")


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(f"charter {__version__}")
        raise typer.Exit(0)


def main() -> None:
    """Entry point: run the app, turning `CharterError` into located messages and exit code 2.

    Click's standalone mode already maps usage errors to exit code 2 and `typer.Exit` to its code;
    only our own error family needs handling here. Any other exception is a bug and keeps its traceback.
    """
    try:
        app()
    except CharterError as exc:
        _print_diagnostics(exc.diagnostics, "error", "bold red")
        if len(exc.diagnostics) > 1:
            err.print(f"{len(exc.diagnostics)} problems found")
        sys.exit(2)
