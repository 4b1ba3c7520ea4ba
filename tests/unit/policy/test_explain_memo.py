"""Operand values read once per evaluation (`memo`) explain and observe exactly as values read each time."""

from __future__ import annotations

from typing import Any

import pytest
import rule_engine

from charter.kpis import KpiCatalog
from charter.policy.context import build_context
from charter.policy.explain import MemoKey, explain_false, explain_true, observed_values

THING: dict[str, Any] = {"recall": 0.62, "precision": 0.4, "f1": 0.3, "baseline": {"recall": 0.9, "f1": 0.35}}
CONDITIONS = [
    "recall < 0.85 and (precision > 0.5 or f1 < 0.35)",
    "not recall > baseline.recall - 0.05",
    "recall < baseline.recall and f1 < baseline.f1 and recall < 0.7",
    "precision > 0.9 or recall < 0.7",
    "recall > 0.9",
    "recall < baseline.accuracy",  # an operand that cannot be read is left out either way
]


@pytest.mark.parametrize("text", CONDITIONS)
def test_a_shared_memo_gives_what_fresh_reads_give(text: str, catalog: KpiCatalog) -> None:
    statement = rule_engine.Rule(text, context=build_context(catalog)).statement
    try:
        held = bool(statement.evaluate(THING))
    except rule_engine.errors.EngineError:
        held = False
    explain = explain_true if held else explain_false
    memo: dict[MemoKey, Any] = {}
    assert explain(statement, THING, memo) == explain(statement, THING)
    assert memo  # the explanation's reads were kept ...
    assert observed_values(statement, THING, memo) == observed_values(statement, THING)  # ... and reused alike
    assert explain(statement, THING, memo) == explain(statement, THING)
    assert set(observed_values(statement, THING)) <= {text for _, text in memo}


def test_one_memo_serves_every_rule_of_a_namespace(catalog: KpiCatalog) -> None:
    """As evaluation shares it: the rules of one namespace, in any order, explain as with fresh reads."""
    context = build_context(catalog)
    statements = [rule_engine.Rule(text, context=context).statement for text in CONDITIONS]
    memo: dict[MemoKey, Any] = {}
    for statement in [*statements, *reversed(statements)]:
        assert explain_false(statement, THING, memo) == explain_false(statement, THING)
        assert observed_values(statement, THING, memo) == observed_values(statement, THING)
    assert len(memo) == len({text for _, text in memo})  # one context: each operand read once


def test_the_memo_keeps_contexts_apart(catalog: KpiCatalog) -> None:
    """The same text in rules of two contexts is two reads, each typed by its own context."""
    statements = [rule_engine.Rule("recall < baseline.recall", context=build_context(catalog)).statement
                  for _ in range(2)]
    memo: dict[MemoKey, Any] = {}
    for statement in statements:
        assert observed_values(statement, THING, memo) == observed_values(statement, THING)
    assert sorted(text for _, text in memo) == ["baseline.recall", "baseline.recall", "recall", "recall"]
