"""Commands on files: the KPI catalog, schemas, policy lint and test, and evaluation of bundles."""

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import CharterError, Diagnostic, Location
from ..vocabulary import Category
from .common import (
    OutputFormat,
    compile_policies,
    out,
    parse_time,
    policies_dir,
    print_diagnostics,
    print_findings,
    print_listing,
    safe,
)

if TYPE_CHECKING:
    from ..evaluate import Finding
    from ..policy.compiler import PolicySet
    from ..policy.testing import TestReport


class TestFormat(StrEnum):
    """Output of `charter policy test`."""

    PRETTY = "pretty"
    JSON = "json"
    JUNIT = "junit"


class LintFormat(StrEnum):
    """Output of `charter policy lint`."""

    TEXT = "text"
    SARIF = "sarif"


class EvaluateFormat(StrEnum):
    """Output of `charter evaluate`."""

    TABLE = "table"
    JSON = "json"
    SARIF = "sarif"


class SchemaName(StrEnum):
    """Documents with a published JSON Schema."""

    BUNDLE = "bundle"
    POLICY = "policy"
    POLICY_TEST = "policy-test"
    REPORT = "report"
    APPLICABILITY = "applicability"
    SYSTEMS = "systems"
    MAPPING = "mapping"
    DECLARED = "declared"


def kpis(
    category: Annotated[Category | None, typer.Option(help="Only this category.")] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = OutputFormat.TABLE,
    kpis_file: Annotated[Path | None, typer.Option("--kpis", help="Custom KPIs (kpis.yaml) to include.")] = None,
) -> None:
    """List the KPI catalog."""
    from ..kpis import load_catalog

    catalog = load_catalog(kpis_file)
    rows = catalog.by_category(category) if category else list(catalog.values())
    if output is OutputFormat.JSON:
        typer.echo(json.dumps([k.model_dump(mode="json") for k in rows], indent=2))
        return
    print_listing("KPI catalog", ["id", "name", "category", "unit", "better", "range", "description"],
                  [[k.id, k.name, k.category.value, k.unit, k.direction.value, k.range_text(), k.description]
                   for k in rows], ids={"id"})


def schema(name: Annotated[SchemaName, typer.Argument(help="bundle, policy, policy-test, report, applicability "
                                                      "(Statement of Applicability, target profile), systems, "
                                                      "mapping or declared (charter ingest's files).")]
           ) -> None:
    """Print the JSON Schema of a document type: for editor autocompletion, or to validate JSON reports."""
    from pydantic import TypeAdapter

    from ..applicability import ApplicabilityDocument
    from ..bundle import EvidenceBundle
    from ..ingest.mapping import IngestMapping
    from ..ingest.verify import Declared
    from ..policy.model import Policy
    from ..policy.testing import TestFile
    from ..registry import AISystem
    from ..report.model import ReportDocument

    model: Any = {SchemaName.BUNDLE: EvidenceBundle, SchemaName.POLICY: Policy,
                  SchemaName.POLICY_TEST: TestFile, SchemaName.REPORT: ReportDocument,
                  SchemaName.APPLICABILITY: ApplicabilityDocument, SchemaName.SYSTEMS: dict[str, list[AISystem]],
                  SchemaName.MAPPING: IngestMapping, SchemaName.DECLARED: Declared}[name]
    document = TypeAdapter(model).json_schema(mode="validation" if name is not SchemaName.REPORT else "serialization")
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    typer.echo(json.dumps(document, indent=2, sort_keys=True))


def policy_lint(
    directory: Annotated[Path | None, typer.Argument(help="Policy directory (default: ./policies).")] = None,
    kpis_file: Annotated[Path | None, typer.Option("--kpis", help="Custom KPI catalog.")] = None,
    frameworks_dir: Annotated[Path | None, typer.Option("--frameworks", help="Control catalogs.")] = None,
    strict: Annotated[bool, typer.Option(help="Treat warnings as errors.")] = False,
    explain_compile: Annotated[bool, typer.Option("--explain-compile", help="List which conditions run as "
                                                  "compiled Python and which fall back to rule-engine, and why.")]
    = False,
    output: Annotated[LintFormat, typer.Option("--format", help="text, or sarif: a SARIF 2.1.0 log on standard "
                                               "output for code scanning (same exit codes).")] = LintFormat.TEXT,
) -> None:
    """Compile every policy (schema, expressions, control references) and check escalation.yaml."""
    from ..escalation import load_escalation

    if output is LintFormat.SARIF and explain_compile:
        raise CharterError.single("usage", "--explain-compile prints text; run it without --format sarif")
    policies = policies_dir(directory)
    problems: list[Diagnostic] = []
    policy_set = None
    try:
        policy_set, _, _ = compile_policies(policies, kpis_file, frameworks_dir)
    except CharterError as exc:
        problems.extend(exc.diagnostics)
    escalation = policies / "escalation.yaml"
    graph = None
    if escalation.is_file():
        try:
            graph = load_escalation(escalation)
        except CharterError as exc:
            problems.extend(exc.diagnostics)
    warnings = list(policy_set.warnings) if policy_set is not None else []
    if not escalation.is_file():
        warnings.append(Diagnostic("no_escalation", "no escalation.yaml: `charter submit` refuses to record "
                                   "evidence, because breaches would open no incident and page nobody",
                                   Location(file=str(escalation))))
    if output is LintFormat.SARIF:
        from ..ci_output import lint_sarif

        typer.echo(json.dumps(lint_sarif(problems, warnings, Path.cwd(), strict=strict), indent=2))
        if problems or policy_set is None:
            raise typer.Exit(2)
        if strict and warnings:
            raise typer.Exit(1)
        return
    if problems or policy_set is None:
        raise CharterError(problems)
    print_diagnostics(warnings, "warning", "yellow")
    rules = sum(len(p.rules) for p in policy_set.policies)
    summary = (f"{len(policy_set.policies)} policies, {rules} rules in {safe(str(policies))}"
               + (f", escalation graph of {len(graph.config.roles)} roles" if graph else ""))
    if strict and warnings:
        out.print(f"[bold red]failed[/] (--strict): {summary}, {len(warnings)} warnings treated as errors")
    else:
        out.print(f"[green]ok[/]: {summary}" + (f", {len(warnings)} warnings" if warnings else ""))
    if explain_compile:
        _explain_compile(policy_set)
    if strict and warnings:
        raise typer.Exit(1)


def _explain_compile(policy_set: "PolicySet") -> None:
    conditions = fallen = 0
    for rule in policy_set.rules():
        labels = ["when"] + (["warn_when"] if rule.warn is not None else [])
        conditions += len(labels)
        for label, reason in rule.fallbacks.items():
            fallen += 1
            out.print(f"[yellow]rule-engine[/] {safe(rule.ref)} {label}: {safe(reason)}")
    out.print(f"compiled to Python: {conditions - fallen} of {conditions} conditions; "
              f"{fallen} evaluated by rule-engine (same results, slower)")


def policy_test(
    directory: Annotated[Path | None, typer.Argument(help="Policy directory (default: ./policies).")] = None,
    run: Annotated[str | None, typer.Option("--run", help="Only cases whose name matches this regex.")] = None,
    output: Annotated[TestFormat, typer.Option("--format", help="pretty, json, or junit (JUnit XML for CI test "
                                               "reports).")] = TestFormat.PRETTY,
    coverage: Annotated[bool, typer.Option("--coverage", help="Show which statuses each rule is tested for.")]
    = False,
    kpis_file: Annotated[Path | None, typer.Option("--kpis", help="Custom KPI catalog.")] = None,
    frameworks_dir: Annotated[Path | None, typer.Option("--frameworks", help="Control catalogs.")] = None,
) -> None:
    """Run the policy unit tests (*_test.yaml) beside the policies."""
    from ..policy.testing import PolicyTestRunner, find_test_files

    policies = policies_dir(directory)
    policy_set, catalog, _ = compile_policies(policies, kpis_file, frameworks_dir)
    report = PolicyTestRunner(policy_set, catalog).run(find_test_files(policies), run)
    if output is TestFormat.JSON:
        typer.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    elif output is TestFormat.JUNIT:
        from ..ci_output import junit_xml

        typer.echo(junit_xml(report), nl=False)
    else:
        _print_test_report(report, coverage)
    if not report.ok:
        raise typer.Exit(1)


def _print_test_report(report: "TestReport", coverage: bool) -> None:
    from rich.table import Table

    for result in report.results:
        where = f"{result.file}:{result.line}"
        if result.passed:
            out.print(f"[green]PASS[/] {safe(result.name)} [dim]({safe(where)})[/]")
            continue
        out.print(f"[bold red]FAIL[/] {safe(result.name)} [dim]({safe(where)})[/]")
        if result.error:
            out.print(f"     error: {safe(str(result.error))}")
        for m in result.mismatches:
            out.print(f"     {safe(m.rule)}: expected [bold]{m.expected}[/], got [bold]{m.actual}[/] — "
                      f"{safe(m.explanation)}")
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
                    kpis_file: Path | None, frameworks_dir: Path | None) -> "tuple[list[Finding], dict[str, str]]":
    """The findings of every bundle, and each bundle's file by its digest (where SARIF places a finding)."""
    from ..bundle import EvidenceBundle
    from ..evaluate import evaluate_bundle
    from ..registry import SystemRegistry

    policy_set, catalog, _ = compile_policies(policies, kpis_file, frameworks_dir)
    # The bundles first: a missing or broken bundle is the error to report, not a missing registry.
    bundles: list[tuple[Path, EvidenceBundle]] = []
    problems: list[Diagnostic] = []
    for path in bundle_paths:
        try:
            bundles.append((path, EvidenceBundle.from_file(path, catalog)))
        except CharterError as exc:
            problems.extend(exc.diagnostics)
    if problems:
        raise CharterError(problems)
    registry = SystemRegistry.from_file(_find_registry(systems_file, bundle_paths), catalog)
    for path, bundle in bundles:
        try:
            registry.require(bundle.system_id, file=str(path))
        except CharterError as exc:
            problems.extend(exc.diagnostics)
    if problems:
        raise CharterError(problems)
    fixed_time = parse_time(at) if at else None
    everything = [b for _, b in bundles]
    findings: list[Finding] = []
    for _, bundle in sorted(bundles, key=lambda pb: (pb[1].system_id, pb[1].window_end)):
        when = fixed_time or bundle.measured_at
        findings.extend(evaluate_bundle(registry[bundle.system_id], bundle, policy_set.policies, when, everything))
    return findings, {bundle.digest(): str(path) for path, bundle in bundles}


def evaluate(
    bundles: Annotated[list[Path], typer.Argument(help="Evidence bundle files (JSON).")],
    policies: Annotated[Path | None, typer.Option("--policies", help="Policy directory.")] = None,
    systems: Annotated[Path | None, typer.Option("--systems", help="Registry file (systems.yaml).")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Evaluation time (ISO 8601 or 'now'); default: "
                                           "each bundle's measured_at, as when it was submitted.")] = None,
    output: Annotated[EvaluateFormat, typer.Option("--format", help="table, json, or sarif (SARIF 2.1.0 for "
                                                   "code scanning: one result per finding that is not a pass).")]
    = EvaluateFormat.TABLE,
    show_all: Annotated[bool, typer.Option("--all", help="Also list passing rules.")] = False,
    kpis_file: Annotated[Path | None, typer.Option("--kpis", help="Custom KPI catalog.")] = None,
    frameworks_dir: Annotated[Path | None, typer.Option("--frameworks", help="Control catalogs.")] = None,
) -> None:
    """Evaluate bundles against the policies that apply to their systems; exit 1 on a breach."""
    from ..evaluate import findings_json

    findings, files = _evaluate_files(bundles, policies_dir(policies), systems, at, kpis_file, frameworks_dir)
    if output is EvaluateFormat.JSON:
        typer.echo(findings_json(findings))
    elif output is EvaluateFormat.SARIF:
        from ..ci_output import findings_sarif

        typer.echo(json.dumps(findings_sarif(findings, files, Path.cwd(), include_passing=show_all), indent=2,
                              ensure_ascii=False, allow_nan=False))
    else:
        print_findings(findings, show_all, "Findings")
    if any(f.failing for f in findings):
        raise typer.Exit(1)


