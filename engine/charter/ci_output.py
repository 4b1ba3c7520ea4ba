"""What CI systems read: policy test results as JUnit XML, diagnostics and findings as SARIF 2.1.0.

Risk teams lint and test policies like code, so their pipelines should show the results where
they show a compiler's: `charter policy test --format junit` gives the JUnit XML that GitLab,
Jenkins, Azure DevOps and GitHub test-report actions display per case, and `charter policy lint
--format sarif` and `charter evaluate --format sarif` give SARIF 2.1.0 (OASIS), which code scanning
turns into annotations on the very policy or bundle line at fault.

Both are renderings of the results the text output prints; nothing is decided here.
"""

from __future__ import annotations

import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from . import __version__
from .errors import Diagnostic

if TYPE_CHECKING:
    from .evaluate import Finding
    from .policy.testing import CaseResult, TestReport

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SARIF_VERSION = "2.1.0"
SOURCE_ROOT = "%SRCROOT%"

# XML 1.0 allows tab, newline, carriage return and these ranges only: anything else makes the document
# unreadable by every JUnit consumer, so it is shown as \uXXXX (a case name comes from a YAML file)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


# -- JUnit XML --------------------------------------------------------------------------------------


def junit_xml(report: TestReport, *, name: str = "charter policy test") -> str:
    """The test report as JUnit XML: one ``testsuite`` per test file, one ``testcase`` per case.

    A case whose expectations did not hold is a ``failure`` that lists each mismatch with the rule's
    explanation; a case that could not run (bad bundle, unknown rule) is an ``error`` with the
    diagnostic's code as its type. Rules no case exercised are listed as a property of the run, so a
    report viewer shows coverage gaps without counting them as failed tests.
    """
    suites: dict[str, list[CaseResult]] = {}
    for result in report.results:
        suites.setdefault(result.file, []).append(result)
    root = ET.Element("testsuites", {
        "name": _xml_text(name), "tests": str(len(report.results)),
        "failures": str(sum(1 for r in report.results if r.mismatches and r.error is None)),
        "errors": str(sum(1 for r in report.results if r.error is not None))})
    for file, results in suites.items():
        suite = ET.SubElement(root, "testsuite", {
            "name": _xml_text(file), "tests": str(len(results)),
            "failures": str(sum(1 for r in results if r.mismatches and r.error is None)),
            "errors": str(sum(1 for r in results if r.error is not None)), "skipped": "0"})
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", {"name": "charter.version", "value": __version__})
        if report.uncovered:
            ET.SubElement(properties, "property", {"name": "charter.rules_not_exercised",
                                                   "value": _xml_text(", ".join(report.uncovered))})
        classname = _xml_text(PurePosixPath(file.replace("\\", "/")).name.removesuffix(".yaml"))
        for result in results:
            attributes = {"name": _xml_text(result.name), "classname": classname, "file": _xml_text(file)}
            if result.line is not None:
                attributes["line"] = str(result.line)
            case = ET.SubElement(suite, "testcase", attributes)
            if result.error is not None:
                error = ET.SubElement(case, "error", {"type": _xml_text(result.error.code),
                                                      "message": _xml_text(result.error.message)})
                error.text = _xml_text(str(result.error))
            elif result.mismatches:
                count = len(result.mismatches)
                failure = ET.SubElement(case, "failure", {
                    "type": "status_mismatch",
                    "message": _xml_text(f"{count} expectation{'s' if count != 1 else ''} did not hold: "
                                         + ", ".join(m.rule for m in result.mismatches))})
                failure.text = _xml_text("\n".join(f"{m.rule}: expected {m.expected}, got {m.actual} - {m.explanation}"
                                                   for m in result.mismatches))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# -- SARIF 2.1.0 ------------------------------------------------------------------------------------


def artifact_location(file: str, base: Path) -> dict[str, Any]:
    """A SARIF ``artifactLocation`` for `file`: relative to `base` (the run's %SRCROOT%) when under it,
    else an absolute ``file:`` URI, so code scanning can place it in the repository."""
    path = Path(file)
    absolute = path if path.is_absolute() else (base / path)
    try:
        relative = absolute.resolve().relative_to(base.resolve())
    except (ValueError, OSError):
        return {"uri": absolute.resolve().as_uri() if absolute.is_absolute() else urllib.parse.quote(file)}
    return {"uri": urllib.parse.quote(relative.as_posix()), "uriBaseId": SOURCE_ROOT}


def _location(file: str | None, line: int | None, column: int | None, base: Path,
              logical: str | None = None) -> dict[str, Any] | None:
    if not file and not logical:
        return None
    location: dict[str, Any] = {}
    if file:
        physical: dict[str, Any] = {"artifactLocation": artifact_location(file, base)}
        if line is not None and line >= 1:
            physical["region"] = {"startLine": line, **({"startColumn": column} if column and column >= 1 else {})}
        location["physicalLocation"] = physical
    if logical:
        location["logicalLocations"] = [{"fullyQualifiedName": logical}]
    return location


def _log(rules: dict[str, str], results: list[dict[str, Any]], base: Path) -> dict[str, Any]:
    """One run of Charter: the rules results cite (id -> short description), sorted, and the results."""
    ordered = sorted(rules)
    index = {rule: i for i, rule in enumerate(ordered)}
    for result in results:
        result["ruleIndex"] = index[result["ruleId"]]
    driver = {"name": "charter", "version": __version__, "semanticVersion": __version__,
              "rules": [{"id": rule, "shortDescription": {"text": rules[rule]}} for rule in ordered]}
    return {
        "$schema": SARIF_SCHEMA, "version": SARIF_VERSION,
        "runs": [{
            "tool": {"driver": driver},
            "originalUriBaseIds": {SOURCE_ROOT: {"uri": base.resolve().as_uri() + "/"}},
            # the command ran to the end: what it found is in the results, and in its exit code
            "invocations": [{"executionSuccessful": True}],
            "results": results,
        }],
    }


def lint_sarif(errors: Iterable[Diagnostic], warnings: Iterable[Diagnostic], base: Path, *,
               strict: bool = False) -> dict[str, Any]:
    """`charter policy lint`'s diagnostics as a SARIF log: errors at level ``error``, warnings at
    ``warning`` (``error`` under ``--strict``, which fails on them), each at its file, line and column,
    with the JSON path or rule in the message. The rule id is the diagnostic's code."""
    rules: dict[str, str] = {}
    results = []
    for level, diagnostics in (("error", errors), ("error" if strict else "warning", warnings)):
        for diagnostic in diagnostics:
            loc = diagnostic.location
            rules.setdefault(diagnostic.code, diagnostic.code.replace("_", " "))
            detail = " ".join(part for part in (f"rule {loc.rule}" if loc.rule else "", loc.path or "") if part)
            result: dict[str, Any] = {"ruleId": diagnostic.code, "level": level,
                                      "message": {"text": diagnostic.message + (f" ({detail})" if detail else "")}}
            location = _location(loc.file, loc.line, loc.column, base, loc.rule)
            if location is not None:
                result["locations"] = [location]
            results.append(result)
    return _log(rules, results, base)


#: SARIF level of each finding status: what fails `charter evaluate` (exit 1: a breach, an evaluation
#: error) is an error; a warning, and evidence absent or stale, which it reports without failing, are warnings
FINDING_LEVELS = {"breach": "error", "error": "error", "missing": "warning", "warn": "warning", "pass": "none"}


def findings_sarif(findings: Iterable[Finding], bundle_files: dict[str, str], base: Path, *,
                   include_passing: bool = False) -> dict[str, Any]:
    """`charter evaluate`'s findings as a SARIF log, one result per finding that is not a pass.

    The rule id is ``policy/rule``; the location is the evidence bundle file the finding judged
    (`bundle_files`: bundle digest -> path) with the finding's system, segment and rule
    as its logical location; the message is the finding's explanation and what to do. Passing rules
    are included (level ``none``) with `include_passing`, as ``--all`` lists them.
    """
    rules: dict[str, str] = {}
    results = []
    for finding in findings:
        status = finding.status.value
        if status == "pass" and not include_passing:
            continue
        rule_id = finding.rule_ref
        rules.setdefault(rule_id, finding.title)
        where = f"{finding.system_id}" + (f"[{finding.segment}]" if finding.segment else "") + f"/{rule_id}"
        text = f"{status} ({finding.severity.value}): {finding.explanation}"
        if finding.remediation and status != "pass":
            text += f" Remediation: {finding.remediation.strip()}"
        file = bundle_files.get(finding.bundle_digest)
        location = _location(file, None, None, base, where)
        dumped = finding.model_dump(mode="json")
        result: dict[str, Any] = {
            "ruleId": rule_id, "level": FINDING_LEVELS[status], "kind": "pass" if status == "pass" else "fail",
            "message": {"text": text},
            "properties": {key: dumped[key] for key in ("status", "severity", "system_id", "segment", "controls",
                                                         "observed", "thresholds", "window_end", "bundle_digest")},
        }
        if location is not None:
            result["locations"] = [location]
        results.append(result)
    return _log(rules, results, base)
