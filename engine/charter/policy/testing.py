"""Policy unit tests, in the manner of ``opa test``.

Test files sit beside the policies (``*_test.yaml``). Each case gives KPI values (or a whole
bundle), optionally earlier bundles, segments, a system and an evaluation time, and the status it
expects per rule. The runner evaluates each case with the real evaluator and reports every
mismatch, and which rules no case exercises.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._sources import SourceMap, load_yaml_file, regular_files
from ..bundle import EvidenceBundle
from ..errors import CharterError, Diagnostic, DiagnosticCollector
from ..evaluate import Finding, evaluate_bundle
from ..kpis import KpiCatalog
from ..registry import AISystem, RiskTier, SystemKind
from ..validation import collect_validation_errors
from .compiler import CompiledPolicy, PolicySet
from .limits import linear_regex
from .model import AppliesTo

#: Expected status of a rule whose policy does not apply to the case's system.
NOT_APPLICABLE = "not_applicable"
#: What a case may expect of a rule: a finding status, or that its policy does not apply.
ExpectedStatus = Literal["pass", "warn", "breach", "missing", "error", "not_applicable"]
_DEFAULT_WINDOW_END = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
_WINDOW = datetime.timedelta(days=30)
_TEST_SYSTEM_ID = "policy-test-system"


class SystemOverrides(BaseModel):
    """System attributes a test sets; anything left out is chosen to match the policy under test."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str | None = None
    risk_tier: RiskTier | None = None
    kind: SystemKind | None = None
    region: str | None = None
    tags: tuple[str, ...] | None = None
    baseline: dict[str, float] | None = None


class EarlierBundle(BaseModel):
    """An earlier bundle of the same system, in short form."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kpis: dict[str, Any] = Field(min_length=1)
    segments: dict[str, dict[str, Any]] = Field(default_factory=dict)


class TestCase(BaseModel):
    """One test case."""

    __test__ = False  # not a pytest test class

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    kpis: dict[str, Any] | None = None
    segments: dict[str, dict[str, Any]] = Field(default_factory=dict)
    bundle: dict[str, Any] | None = None
    previous: tuple[EarlierBundle, ...] = Field(default=(), description="Most recent first.")
    window_end: datetime.datetime | None = None
    now: datetime.datetime | None = None
    system: SystemOverrides | None = None
    expect: dict[str, ExpectedStatus] = Field(min_length=1)


class TestFile(BaseModel):
    """A ``*_test.yaml`` document."""

    __test__ = False  # not a pytest test class

    model_config = ConfigDict(frozen=True, extra="forbid")

    policy: str | None = Field(default=None, description="Only evaluate this policy (default: all).")
    system: SystemOverrides | None = None
    now: datetime.datetime | None = None
    cases: tuple[TestCase, ...] = Field(min_length=1)


@dataclass(frozen=True)
class Mismatch:
    """One expectation that did not hold."""

    rule: str
    expected: str
    actual: str
    explanation: str


@dataclass
class CaseResult:
    """The outcome of one case."""

    file: str
    line: int | None
    name: str
    mismatches: list[Mismatch] = field(default_factory=list)
    error: Diagnostic | None = None
    #: (rule ref, expected status) of every expectation checked, segment expectations included
    checked: list[tuple[str, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No mismatch and no error."""
        return not self.mismatches and self.error is None


@dataclass
class TestReport:
    """All case results and rule coverage."""

    __test__ = False  # not a pytest test class

    results: list[CaseResult]
    rules: list[str]
    statuses_tested: dict[str, set[str]]

    @property
    def failed(self) -> list[CaseResult]:
        """Cases that failed or could not run."""
        return [r for r in self.results if not r.passed]

    @property
    def uncovered(self) -> list[str]:
        """Rules no case made an expectation about."""
        return [r for r in self.rules if not self.statuses_tested.get(r)]

    @property
    def ok(self) -> bool:
        """At least one case ran and none failed."""
        return bool(self.results) and not self.failed

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "passed": sum(r.passed for r in self.results), "failed": len(self.failed),
            "cases": [{"file": r.file, "line": r.line, "name": r.name, "passed": r.passed,
                       "error": r.error.to_dict() if r.error else None,
                       "mismatches": [m.__dict__ for m in r.mismatches]} for r in self.results],
            "coverage": {"rules": len(self.rules), "covered": len(self.rules) - len(self.uncovered),
                         "uncovered": self.uncovered,
                         "statuses": {k: sorted(v) for k, v in sorted(self.statuses_tested.items())}},
        }


def find_test_files(directory: Path) -> list[Path]:
    """The regular ``*_test.yaml`` files under `directory`, sorted (a FIFO or device is never opened)."""
    return regular_files(directory, "*_test.yaml")


def _default_system(overrides: SystemOverrides | None, file_level: SystemOverrides | None,
                    selector: AppliesTo | None) -> AISystem:
    """A system that the policy under test applies to, unless the test says otherwise."""
    merged: dict[str, Any] = {}
    for source in (file_level, overrides):
        if source is not None:
            merged.update(source.model_dump(exclude_none=True))
    selector = selector or AppliesTo()
    return AISystem(
        id=merged.get("id") or (selector.systems[0] if selector.systems else _TEST_SYSTEM_ID),
        name="policy test system", owner="policy-test",
        risk_tier=merged.get("risk_tier") or (selector.risk_tiers[0] if selector.risk_tiers else RiskTier.HIGH),
        kind=merged.get("kind") or (selector.kinds[0] if selector.kinds else SystemKind.CLASSIFIER),
        region=merged.get("region", "global"),
        tags=tuple(merged["tags"]) if "tags" in merged else tuple(selector.tags[:1]),
        baseline=merged.get("baseline", {}),
    )


def _as_utc(value: datetime.datetime | None, default: datetime.datetime) -> datetime.datetime:
    if value is None:
        return default
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


class PolicyTestRunner:
    """Runs test files against a compiled policy set.

    Args:
        policies: the compiled policies under test.
        catalog: the KPI catalog bundles are validated against.
    """

    def __init__(self, policies: PolicySet, catalog: KpiCatalog) -> None:
        self.policies = policies
        self.catalog = catalog
        self._rule_refs = [r.ref for r in policies.rules()]

    def run(self, files: Sequence[Path], name_filter: str | None = None) -> TestReport:
        """Run every case of `files` whose name (or ``file::name``) matches `name_filter`.

        Raises:
            CharterError: a test file that is not valid YAML or does not fit the test schema, or a
                filter that is not a valid regular expression.
        """
        try:
            # RE2, like policy regexes: a catastrophic --run pattern cannot make the runner hang.
            pattern = linear_regex(name_filter) if name_filter else None
        except ValueError as exc:
            raise CharterError.single("usage", f"--run is not a valid (RE2) regular expression: {exc}") from exc
        problems = DiagnosticCollector()
        results: list[CaseResult] = []
        tested: dict[str, set[str]] = {}
        for path in files:
            try:
                data, smap = load_yaml_file(path)
                test_file = TestFile.model_validate(data)
            except CharterError as exc:
                problems.extend(exc.diagnostics)
                continue
            except ValidationError as exc:
                problems.extend(collect_validation_errors(exc, smap, code="test_schema"))
                continue
            for index, case in enumerate(test_file.cases):
                if pattern and not (pattern.search(case.name) or pattern.search(f"{path}::{case.name}")):
                    continue
                result = self._run_case(test_file, case, smap, ("cases", index))
                results.append(result)
                for ref, status in result.checked:
                    tested.setdefault(ref, set()).add(status)
        problems.raise_if_any()
        return TestReport(results, self._rule_refs, tested)

    def _policies_for(self, test_file: TestFile, smap: SourceMap) -> list[CompiledPolicy]:
        if test_file.policy is None:
            return list(self.policies.policies)
        chosen = [p for p in self.policies.policies if p.policy.id == test_file.policy]
        if not chosen:
            raise CharterError.single("unknown_policy", f"no policy {test_file.policy!r} to test",
                                      **smap.location(("policy",)).to_dict())
        return chosen

    def _resolve_rule(self, key: str, policies: list[CompiledPolicy]) -> tuple[str, str | None]:
        rule_key, _, segment = key.partition("@")
        refs = [r.ref for p in policies for r in p.rules]
        if rule_key in refs:
            return rule_key, segment or None
        matches = [ref for ref in refs if ref.split("/", 1)[1] == rule_key]
        if len(matches) == 1:
            return matches[0], segment or None
        if matches:
            raise ValueError(f"rule id {rule_key!r} is ambiguous, write one of: {', '.join(matches)}")
        raise ValueError(f"no rule {rule_key!r} in the policies under test")

    def _bundle(self, case: TestCase, system: AISystem, kpis: dict[str, Any], segments: dict[str, Any],
                window_end: datetime.datetime, smap: SourceMap, path: tuple[str | int, ...]) -> EvidenceBundle:
        data = {"system_id": system.id, "model_version": "policy-test", "window_start": window_end - _WINDOW,
                "window_end": window_end, "measured_at": window_end, "kpis": kpis, "segments": segments,
                "submitter": "policy-test"}
        return EvidenceBundle.from_data(data, self.catalog, smap=smap, prefix=path)

    def _run_case(self, test_file: TestFile, case: TestCase, smap: SourceMap,
                  path: tuple[str | int, ...]) -> CaseResult:
        result = CaseResult(smap.file, smap.line_of(path), case.name)
        try:
            policies = self._policies_for(test_file, smap)
            selector = policies[0].policy.applies_to if test_file.policy else None
            system = _default_system(case.system, test_file.system, selector)
            if case.bundle is not None:
                if case.kpis is not None:
                    raise CharterError.single("test_schema", "give either 'kpis' or 'bundle', not both",
                                              **smap.location(path).to_dict())
                bundle = EvidenceBundle.from_data(case.bundle, self.catalog, smap=smap, prefix=(*path, "bundle"))
                if bundle.system_id != system.id:
                    system = system.model_copy(update={"id": bundle.system_id})
            elif case.kpis is not None:
                window_end = _as_utc(case.window_end, _DEFAULT_WINDOW_END)
                bundle = self._bundle(case, system, case.kpis, case.segments, window_end, smap, path)
            else:
                raise CharterError.single("test_schema", "a case needs 'kpis' or 'bundle'",
                                          **smap.location(path).to_dict())
            history = [self._bundle(case, system, earlier.kpis, earlier.segments,
                                    bundle.window_end - _WINDOW * (i + 1), smap, (*path, "previous", i))
                       for i, earlier in enumerate(case.previous)]
            at = _as_utc(case.now or test_file.now, bundle.window_end)
            findings = evaluate_bundle(system, bundle, policies, at, history)
            self._compare(case, policies, findings, result, smap, path)
        except CharterError as exc:
            result.error = exc.diagnostics[0]
        except ValidationError as exc:  # the system the case describes is not a valid system
            result.error = collect_validation_errors(exc, smap, (*path, "system"), code="test_schema")[0]
        except OverflowError:
            result.error = Diagnostic("test_schema", "a time in this case is out of range", smap.location(path))
        return result

    def _compare(self, case: TestCase, policies: list[CompiledPolicy], findings: list[Finding],
                 result: CaseResult, smap: SourceMap, path: tuple[str | int, ...]) -> None:
        for key, expected in case.expect.items():
            where = smap.location((*path, "expect", key))
            try:
                ref, segment = self._resolve_rule(key, policies)
            except ValueError as exc:
                result.error = Diagnostic("unknown_rule", str(exc), where)
                return
            if segment is not None and segment not in {f.segment for f in findings}:
                known = sorted({f.segment for f in findings if f.segment})
                result.error = Diagnostic("unknown_segment", f"no finding for segment {segment!r} in this case "
                                          f"(segments with findings: {', '.join(known) or 'none'})", where)
                return
            matching = [f for f in findings if f.rule_ref == ref and (segment is None or f.segment == segment)]
            if not matching:
                actual, explanation = NOT_APPLICABLE, (
                    f"no finding for segment {segment!r}" if segment else "the policy does not apply to the system")
            else:
                worst = max(matching, key=lambda f: f.status.rank)
                actual, explanation = worst.status.value, worst.explanation
                if worst.segment and segment is None:
                    explanation = f"[{worst.segment}] {explanation}"
            result.checked.append((ref, expected))
            if actual != expected:
                result.mismatches.append(Mismatch(key, expected, actual, explanation))
