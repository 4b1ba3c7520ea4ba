"""Printing rule-engine trees, and finding the evidence a rule reads."""

from __future__ import annotations

import pytest
import rule_engine

from charter.kpis import KpiCatalog
from charter.policy.context import build_context
from charter.policy.expressions import evidence_refs, unparse

ROUND_TRIP = [
    "recall < 0.85 and (precision > 0.5 or f1 < 0.2)",
    "not recall < baseline.recall - 0.05",
    '$now - bundle.window_end > t"P30D"',
    "approval_rate / peers.approval_rate < 0.9",
    "recall - (precision - f1) > 0",
    "'x' in system.tags",
    "$max([s['recall'] for s in segments.values]) - $min([s['recall'] for s in segments.values]) > 0.1",
    "segments['region:asia']['recall'] < 0.8",
    "(recall ?? 0) < 1",
    "recall > 0.5 ? precision > 0.5 : f1 > 0.5",
    "system.name =~ 'fraud.*'",
    "-recall < 0",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_unparse_reparses_to_the_same_tree(text: str, catalog: KpiCatalog) -> None:
    context = build_context(catalog)
    printed = unparse(rule_engine.Rule(text, context=context).statement)
    assert unparse(rule_engine.Rule(printed, context=context).statement) == printed


def test_unparse_keeps_needed_parentheses(catalog: KpiCatalog) -> None:
    context = build_context(catalog)
    assert unparse(rule_engine.Rule("recall - (precision - f1) > 0", context=context).statement) == \
        "recall - (precision - f1) > 0"
    assert unparse(rule_engine.Rule("(recall - precision) - f1 > 0", context=context).statement) == \
        "recall - precision - f1 > 0"


def test_evidence_refs_ignore_comprehension_variables(catalog: KpiCatalog) -> None:
    context = build_context(catalog)
    rule = rule_engine.Rule("$any([recall > 0.5 for recall in [precision, f1]])", context=context)
    assert sorted(map(str, evidence_refs(rule.statement, frozenset(catalog)))) == ["f1", "precision"]
