"""Compiles policy files in named stages: load, schema, expressions, references.

Each stage collects every problem it finds, so an author sees all errors of a file at once, each
with file, line and rule id. Later stages run on what earlier ones accepted, and the whole
compilation fails if any stage reported an error.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785
import rule_engine
from pydantic import ValidationError

from .._sources import SourceMap, load_yaml_file, regular_files
from ..errors import CharterError, Diagnostic, DiagnosticCollector, Location
from ..frameworks import FrameworkSet
from ..kpis import KpiCatalog
from ..validation import collect_validation_errors
from .compile import CompiledCondition, compile_condition
from .context import FORBIDDEN_BUILTINS, build_context
from .expressions import EvidenceRef, evidence_refs, format_value, symbols_used, system_gates, unparse
from .limits import bounded_cost_problems
from .model import Policy, Rule, Scope

#: Files in a policy directory that are not policies.
NON_POLICY_FILES = frozenset({"kpis.yaml", "escalation.yaml", "systems.yaml"})
#: folders of a policy directory that hold other governance documents (Statements of Applicability)
NON_POLICY_DIRS = frozenset({"applicability"})
_SEGMENT_ONLY = frozenset({"segment", "peers"})


@dataclass(frozen=True)
class CompiledRule:
    """A rule ready to evaluate: parsed expressions, their compiled Python, and the evidence they need."""

    rule: Rule
    policy_id: str
    breach: rule_engine.Rule
    warn: rule_engine.Rule | None
    needs: frozenset[EvidenceRef]
    thresholds: dict[str, float]
    breach_compiled: CompiledCondition = field(init=False, repr=False, compare=False)
    warn_compiled: CompiledCondition | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "breach_compiled", compile_condition(self.breach))
        object.__setattr__(self, "warn_compiled", compile_condition(self.warn) if self.warn is not None else None)

    @property
    def fallbacks(self) -> dict[str, str]:
        """Conditions that run on rule-engine rather than compiled Python: ``when``/``warn_when`` -> why."""
        out = {"when": self.breach_compiled.fallback, "warn_when": self.warn_compiled.fallback
               if self.warn_compiled is not None else None}
        return {label: reason for label, reason in out.items() if reason is not None}

    @property
    def ref(self) -> str:
        """The qualified rule id, ``policy/rule``."""
        return f"{self.policy_id}/{self.rule.id}"

    @functools.cached_property
    def breach_text(self) -> str:
        """The breach condition as rule text (printed once: the parsed rule never changes)."""
        return unparse(self.breach.statement)


@dataclass(frozen=True)
class CompiledPolicy:
    """A validated policy with its compiled rules."""

    policy: Policy
    file: str
    digest: str
    rules: tuple[CompiledRule, ...]


@dataclass
class PolicySet:
    """All policies of a directory, compiled, plus the lint warnings found on the way."""

    policies: tuple[CompiledPolicy, ...]
    warnings: list[Diagnostic] = field(default_factory=list)

    def rules(self) -> Iterable[CompiledRule]:
        """Every compiled rule, in policy then rule order."""
        for policy in self.policies:
            yield from policy.rules


def policy_digest(policy: Policy) -> str:
    """SHA-256 of the policy's canonical JSON: identifies the exact policy version used."""
    return hashlib.sha256(rfc8785.dumps(policy.model_dump(mode="json"))).hexdigest()


def threshold_expressions(rule: Rule) -> tuple[str, str | None, dict[str, float]]:
    """The breach and warn expressions a threshold rule stands for, and its thresholds."""
    assert rule.kpi is not None
    kpi = rule.kpi
    breach, warn = [], []
    thresholds: dict[str, float] = {}
    if rule.min is not None:
        breach.append(f"{kpi} < {format_value(rule.min)}")
        thresholds["min"] = rule.min
    if rule.max is not None:
        breach.append(f"{kpi} > {format_value(rule.max)}")
        thresholds["max"] = rule.max
    warn_min = rule.warn_min if rule.warn_min is not None else (rule.warn if rule.min is not None else None)
    warn_max = rule.warn_max if rule.warn_max is not None else (rule.warn if rule.max is not None else None)
    if warn_min is not None:
        warn.append(f"{kpi} < {format_value(warn_min)}")
        thresholds["warn_min"] = warn_min
    if warn_max is not None:
        warn.append(f"{kpi} > {format_value(warn_max)}")
        thresholds["warn_max"] = warn_max
    return " or ".join(breach), (" or ".join(warn) or None), thresholds


class PolicyCompiler:
    """Compiles policies against one KPI catalog and one set of control catalogs.

    Args:
        catalog: the KPIs rules may use.
        frameworks: the controls rules may cite.
    """

    def __init__(self, catalog: KpiCatalog, frameworks: FrameworkSet) -> None:
        self.catalog = catalog
        self.frameworks = frameworks
        self.context = build_context(catalog)
        self._kpi_ids = frozenset(catalog)
        # Iterating gives the names; `in` on Builtins would evaluate generators such as $now.
        self._builtin_names = frozenset(iter(self.context.builtins))

    # -- stage 1: load -------------------------------------------------------------------------

    def load(self, paths: Sequence[Path], problems: DiagnosticCollector) -> list[tuple[Any, SourceMap]]:
        """Parse each YAML file; syntax errors and duplicate keys are collected."""
        documents = []
        for path in paths:
            try:
                documents.append(load_yaml_file(path))
            except CharterError as exc:
                problems.extend(exc.diagnostics)
        return documents

    # -- stage 2: schema -----------------------------------------------------------------------

    def check_schema(self, documents: list[tuple[Any, SourceMap]], problems: DiagnosticCollector
                     ) -> list[tuple[Policy | None, str, list[tuple[int, Rule]], SourceMap]]:
        """Validate each document against the policy schema; policy and rule ids must be unique.

        A document with schema errors still yields the rules that are valid on their own, so the
        later stages can report their problems in the same run.
        """
        results: list[tuple[Policy | None, str, list[tuple[int, Rule]], SourceMap]] = []
        seen: dict[str, str] = {}
        for data, smap in documents:
            policy: Policy | None = None
            try:
                policy = Policy.model_validate(data)
                rules = list(enumerate(policy.rules))
            except ValidationError as exc:
                problems.extend(self._locate_rule(collect_validation_errors(exc, smap, code="policy_schema"),
                                                  data, smap))
                rules = self._valid_rules(data)
            raw_id = data.get("id") if isinstance(data, dict) else None
            policy_id = policy.id if policy else (raw_id if isinstance(raw_id, str) else "?")
            if policy is not None and policy.id in seen:
                problems.add("duplicate_policy", f"policy id {policy.id!r} is also used by {seen[policy.id]}",
                             smap.location(("id",)))
                policy = None
            elif policy is not None:
                seen[policy.id] = smap.file
            rule_ids: set[str] = set()
            for index, rule in rules:
                if rule.id in rule_ids:
                    problems.add("duplicate_rule", f"rule id {rule.id!r} appears twice in policy {policy_id}",
                                 smap.location(("rules", index, "id"), rule=rule.id))
                rule_ids.add(rule.id)
            results.append((policy, policy_id, rules, smap))
        return results

    @staticmethod
    def _valid_rules(data: Any) -> list[tuple[int, Rule]]:
        raw_rules = data.get("rules") if isinstance(data, dict) else None
        valid = []
        for index, raw in enumerate(raw_rules if isinstance(raw_rules, list) else []):
            try:
                valid.append((index, Rule.model_validate(raw)))
            except ValidationError:
                continue  # already reported by the whole-document validation
        return valid

    @staticmethod
    def _locate_rule(diagnostics: list[Diagnostic], data: Any, smap: SourceMap) -> list[Diagnostic]:
        """Name the rule id in schema errors that sit inside a rule."""
        rules = data.get("rules") if isinstance(data, dict) else None
        out = []
        for diagnostic in diagnostics:
            rule_id = None
            path = diagnostic.location.path or ""
            if isinstance(rules, list) and path.startswith("$.rules["):
                index = int(path[len("$.rules["):].split("]", 1)[0])
                if index < len(rules) and isinstance(rules[index], dict):
                    rule_id = rules[index].get("id")
            loc = diagnostic.location
            out.append(Diagnostic(diagnostic.code, diagnostic.message,
                                  Location(loc.file, loc.line, loc.path, str(rule_id) if rule_id else None)))
        return out

    # -- stage 3: expressions ------------------------------------------------------------------

    def compile_expression(self, text: str, rule: Rule, where: Location,
                           problems: DiagnosticCollector) -> rule_engine.Rule | None:
        """Parse and type-check one expression; problems are collected at `where`."""
        def fail(code: str, message: str) -> None:
            problems.add(code, message, where)

        try:
            compiled = rule_engine.Rule(text, context=self.context)
        except rule_engine.errors.SymbolResolutionError as exc:
            suggestion = (self.catalog.suggest(exc.symbol_name) if exc.symbol_scope != "built-in" else None) \
                or getattr(exc, "suggestion", None)
            hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
            if exc.symbol_scope == "built-in":
                fail("unknown_symbol", f"unknown builtin ${exc.symbol_name} in {text!r}{hint}")
            else:
                fail("unknown_symbol", f"unknown symbol {exc.symbol_name!r} in {text!r}{hint}: "
                     "not a KPI of the catalog nor a reserved name")
            return None
        except rule_engine.errors.AttributeResolutionError as exc:
            hint = f" (did you mean {exc.suggestion!r}?)" if getattr(exc, "suggestion", None) else ""
            fail("unknown_attribute", f"unknown attribute {exc.attribute_name!r} in {text!r}{hint}")
            return None
        except rule_engine.errors.RuleSyntaxError as exc:
            fail("expression_syntax", f"syntax error in {text!r}: {exc.message}")
            return None
        except rule_engine.errors.EngineError as exc:
            fail("expression_type", f"type error in {text!r}: {getattr(exc, 'message', exc)}")
            return None
        except (ValueError, ArithmeticError, TypeError) as exc:
            fail("expression_type", f"invalid expression {text!r}: {exc}")
            return None
        except RecursionError:
            fail("expression_syntax", f"expression nested too deeply: {text[:60]!r}...")
            return None
        for scope, name in sorted(symbols_used(compiled.statement), key=str):
            if scope == "built-in" and name in FORBIDDEN_BUILTINS:
                fail("forbidden_builtin", f"${name} {FORBIDDEN_BUILTINS[name]}")
            elif scope == "built-in" and name not in self._builtin_names:
                fail("unknown_symbol", f"unknown builtin ${name} in {text!r}")
            elif scope is None and name in _SEGMENT_ONLY and rule.scope is not Scope.SEGMENTS:
                fail("scope_symbol", f"{name!r} is only defined for rules with scope: segments")
        for code, message in bounded_cost_problems(compiled.statement):
            fail(code, f"{message} in {text!r}")
        result_type = compiled.statement.expression.result_type
        if result_type != rule_engine.DataType.BOOLEAN:
            fail("expression_type", f"{text!r} gives a {getattr(result_type, 'name', result_type)}, but a condition "
                 "must be true or false (compare it, or use $any/$all)")
        return compiled

    def compile_rule(self, policy_id: str, index: int, rule: Rule, smap: SourceMap,
                     problems: DiagnosticCollector, warnings: DiagnosticCollector) -> CompiledRule | None:
        """Compile rule number `index` of a policy; None when it has errors (which are collected)."""
        base = ("rules", index)
        before = len(problems.diagnostics)
        if rule.kpi is not None:
            if rule.kpi not in self.catalog:
                problems.add("unknown_kpi", self.catalog.unknown_message(rule.kpi),
                             smap.location((*base, "kpi"), rule=rule.id))
                return None
            breach_text, warn_text, thresholds = threshold_expressions(rule)
            breach_at = warn_at = smap.location((*base, "kpi"), rule=rule.id)
        else:
            assert rule.when is not None
            breach_text, warn_text, thresholds = rule.when, rule.warn_when, {}
            breach_at = smap.location((*base, "when"), rule=rule.id)
            warn_at = smap.location((*base, "warn_when"), rule=rule.id)
        breach = self.compile_expression(breach_text, rule, breach_at, problems)
        warn = self.compile_expression(warn_text, rule, warn_at, problems) if warn_text else None
        if breach is None or (warn_text and warn is None) or len(problems.diagnostics) > before:
            return None
        for label, compiled, at in (("when", breach, breach_at), ("warn_when", warn, warn_at)):
            if compiled is not None and isinstance(compiled.statement.expression, rule_engine.ast.BooleanExpression):
                value = compiled.statement.expression.value
                warnings.add("constant_condition", f"{label} is always {'true' if value else 'false'}", at)
        if not rule.controls and not rule.supporting_controls:
            warnings.add("no_controls", "rule cites no control; audit reports cannot map it",
                         smap.location(base, rule=rule.id))
        needs = evidence_refs(breach.statement, self._kpi_ids)
        if warn is not None:
            needs |= evidence_refs(warn.statement, self._kpi_ids)
        return CompiledRule(rule, policy_id, breach, warn, frozenset(needs), thresholds)

    # -- stage 4: references -------------------------------------------------------------------

    def check_references(self, rules: list[tuple[int, Rule]], smap: SourceMap,
                         problems: DiagnosticCollector) -> None:
        """Every cited control, primary or supporting, must exist in the loaded frameworks (down to the
        paragraph) and be one reports assess; no control may be both primary and supporting."""
        for index, rule in rules:
            primary = set(rule.controls)
            for field_name in ("controls", "supporting_controls"):
                for c_index, control in enumerate(getattr(rule, field_name)):
                    at = smap.location(("rules", index, field_name, c_index), rule=rule.id)
                    reason = self.frameworks.check_ref(control)
                    if reason:
                        problems.add("unknown_control", reason, at)
                        continue
                    reason = self.frameworks.check_citable(control)
                    if reason:
                        problems.add("unassessed_control", reason, at)
                    if field_name == "supporting_controls" and control in primary:
                        problems.add("control_both_primary_and_supporting",
                                     f"{control} is listed in both controls (primary) and supporting_controls; "
                                     "a mapping is one or the other", at)

    def check_primary_evidence(self, rules: list[tuple[int, CompiledRule]], smap: SourceMap,
                               problems: DiagnosticCollector) -> None:
        """A rule gated on the system may not be a primary mapping.

        A condition such as ``system.risk_tier == "high" and human_override_rate < 0.005`` passes for
        every other system whatever the evidence says, so its pass is no operating evidence there; only
        a primary mapping makes a control `operating`. Scope the policy with ``applies_to`` instead, or
        map the controls as ``supporting_controls``. Reported at the rule's ``controls``.
        """
        for index, compiled in rules:
            rule = compiled.rule
            if not rule.controls:
                continue
            for label, condition in (("when", compiled.breach), ("warn_when", compiled.warn)):
                gates = system_gates(condition.statement) if condition is not None else []
                if gates:
                    problems.add("system_gated_primary", f"{label} is gated on the system "
                                 f"({unparse(gates[0])}): for some systems it passes whatever the evidence, so it "
                                 f"is no operating evidence for {', '.join(rule.controls)}; map them under "
                                 "supporting_controls, or select the systems with the policy's applies_to",
                                 smap.location(("rules", index, "controls"), rule=rule.id))
                    break

    # -- all stages ----------------------------------------------------------------------------

    def compile_files(self, paths: Sequence[Path]) -> PolicySet:
        """Run every stage over `paths`.

        Raises:
            CharterError: all errors of all files, sorted by file and line.
        """
        problems = DiagnosticCollector()
        documents = self.load(paths, problems)
        return self._compile(documents, problems, authoring=True)

    def compile_documents(self, documents: Sequence[tuple[Any, SourceMap]]) -> PolicySet:
        """Compile already-parsed policy documents (e.g. policy versions recorded in the ledger)."""
        return self._compile(list(documents), DiagnosticCollector())

    def _compile(self, documents: list[tuple[Any, SourceMap]], problems: DiagnosticCollector, *,
                 authoring: bool = False) -> PolicySet:
        warnings = DiagnosticCollector()
        validated = self.check_schema(documents, problems)
        compiled: list[CompiledPolicy] = []
        for policy, policy_id, valid_rules, smap in validated:
            rules = [self.compile_rule(policy_id, i, rule, smap, problems, warnings) for i, rule in valid_rules]
            self.check_references(valid_rules, smap, problems)
            if authoring:
                # Policy files being written or proposed; versions already recorded in a ledger are
                # judged as they were recorded, so a rule added since does not unmake their findings.
                self.check_primary_evidence([(i, r) for (i, _), r in zip(valid_rules, rules, strict=True)
                                             if r is not None], smap, problems)
            if policy is not None and all(r is not None for r in rules):
                compiled.append(CompiledPolicy(policy, smap.file, policy_digest(policy),
                                               tuple(r for r in rules if r is not None)))
        problems.raise_if_any()
        return PolicySet(tuple(sorted(compiled, key=lambda p: p.policy.id)),
                         sorted(warnings.diagnostics, key=lambda d: (d.location.file or "", d.location.line or 0)))


def policy_files(directory: Path) -> list[Path]:
    """The regular policy files under `directory`: ``*.yaml`` except tests and the non-policy files.

    FIFOs, devices and sockets are never opened, so a hostile directory cannot make lint hang.
    """
    if not directory.is_dir():
        raise CharterError.single("file_not_found", "policy directory does not exist", file=str(directory))
    return [p for p in regular_files(directory, "*.yaml")
            if not p.name.endswith("_test.yaml") and p.name not in NON_POLICY_FILES
            and p.relative_to(directory).parts[0] not in NON_POLICY_DIRS]
