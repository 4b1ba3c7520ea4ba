"""Bounded evaluation cost (issue 11, items 8 and 9): what evidence could make run forever is refused or made linear."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest
import rule_engine
from rule_engine import ast

from charter.errors import CharterError
from charter.evaluate import evaluate_bundle
from charter.kpis import KpiCatalog
from charter.policy import PolicySet
from charter.policy.compile import reference_only
from charter.policy.expressions import walk
from tests.unit.test_evaluate import SYSTEM

AT = datetime.datetime(2026, 2, 1, tzinfo=datetime.UTC)


def _policy(when: str) -> dict[str, Any]:
    return {"id": "p.limits", "version": "1.0.0", "title": "t", "owner": "o",
            "rules": [{"id": "r", "title": "t", "severity": "low", "when": when}]}


def _codes(compile_policy: Callable[[dict[str, Any]], PolicySet], when: str) -> set[str]:
    with pytest.raises(CharterError) as info:
        compile_policy(_policy(when))
    return {d.code for d in info.value.diagnostics}


def test_a_long_chain_compiles_flat_and_agrees_with_rule_engine(compile_policy: Callable[..., PolicySet],
                                                                catalog: KpiCatalog) -> None:
    when = " and ".join(["f1>0"] * 150) + " and (" + " or ".join(["f1<0.5"] * 45) + ")"
    assert len(when) < 2000
    policy_set = compile_policy(_policy(when))
    rule = policy_set.policies[0].rules[0]
    assert not rule.fallbacks  # compiled to Python despite 200 terms
    from charter.bundle import EvidenceBundle

    bundle = EvidenceBundle.from_data({"system_id": "s", "model_version": "1", "window_start": "2026-01-01T00:00:00Z",
                                       "window_end": "2026-01-31T00:00:00Z", "measured_at": "2026-01-31T00:00:00Z",
                                       "kpis": {"f1": 0.4, "recall": 0.4}, "submitter": "me"}, catalog)
    fast = evaluate_bundle(SYSTEM, bundle, policy_set.policies, AT, [])
    with reference_only():
        slow = evaluate_bundle(SYSTEM, bundle, policy_set.policies, AT, [])
    assert [f.status for f in fast] == [f.status for f in slow] and fast[0].status.value == "breach"


def test_nesting_beyond_pythons_parser_falls_back_to_rule_engine(compile_policy: Callable[..., PolicySet]) -> None:
    when = "(" * 150 + "f1 > 0" + ")" * 150 + " and " + "not " * 210 + "recall > 0.5"
    try:
        policy_set = compile_policy(_policy(when))
    except CharterError as exc:  # refused with a located error is acceptable too: never a traceback
        assert exc.diagnostics[0].location.rule == "r"
        return
    rule = policy_set.policies[0].rules[0]
    assert "nested" in rule.fallbacks.get("when", "") or not rule.fallbacks


@pytest.mark.parametrize("when", ["bias_incidents << policy_violations > 0", "(bias_incidents >> 2) > 0"])
def test_shifts_are_refused(compile_policy: Callable[..., PolicySet], when: str) -> None:
    assert "unbounded_operation" in _codes(compile_policy, when)


def test_range_is_refused(compile_policy: Callable[..., PolicySet]) -> None:
    assert "forbidden_builtin" in _codes(compile_policy, "$range(bias_incidents)[0] == 0")


@pytest.mark.parametrize("when", ["bundle.model_version =~ bundle.submitter",
                                  "bundle.model_version =~ '(a)\\\\1'", "bundle.model_version =~~ '(?=a)a'"])
def test_regexes_must_be_linear_literals(compile_policy: Callable[..., PolicySet], when: str) -> None:
    assert "regex_pattern" in _codes(compile_policy, when)


def test_accepted_regexes_are_matched_by_re2(compile_policy: Callable[..., PolicySet], catalog: KpiCatalog) -> None:
    """``(a+)+$`` backtracks exponentially in Python's re; RE2 matches a crafted value in linear time."""
    policy_set = compile_policy(_policy("f1 > 0 and bundle.model_version =~ '(a+)+$'"))
    rule = policy_set.policies[0].rules[0]
    regex_nodes = [n for n in walk(rule.breach.statement) if isinstance(n, ast.FuzzyComparisonExpression)]
    assert regex_nodes and all(type(n._right).__module__.startswith("re2") for n in regex_nodes)
    from charter.bundle import EvidenceBundle

    crafted = "a" * 60 + "!"  # about 2**60 steps for a backtracking engine
    bundle = EvidenceBundle.from_data({"system_id": "s", "model_version": crafted,
                                       "window_start": "2026-01-01T00:00:00Z", "window_end": "2026-01-31T00:00:00Z",
                                       "measured_at": "2026-01-31T00:00:00Z", "kpis": {"f1": 0.7}, "submitter": "me"},
                                      catalog)
    findings = evaluate_bundle(SYSTEM, bundle, policy_set.policies, AT, [])
    assert findings[0].status.value == "pass"
    assert rule_engine.Rule("x =~ 'a+'").matches({"x": "aaa"})  # the library's own behaviour is untouched
