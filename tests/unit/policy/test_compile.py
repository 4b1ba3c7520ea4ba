"""The rule compiler (`charter.policy.compile`) against rule-engine: same values, same errors, always.

rule-engine computes with ``Decimal(repr(x))`` (so ``0.1 + 0.2 == 0.3`` holds there); the compiled
code uses floats with an error bound and hands near calls back to rule-engine. These tests look for
any disagreement:

1. Hypothesis differential tests: random rule text over the whole grammar (KPIs, objects, segments,
   tricky literals, arithmetic, logic, ternaries, membership, strings, datetimes, and constructs the
   compiler leaves to rule-engine) on namespaces built like the evaluator's, with values chosen to
   tie; and arithmetic over extreme magnitudes compared with the exact decimal value of one side.
   The bare fast path, whenever it returns, must return exactly rule-engine's value.
2. Pinned tricky cases, the shapes the compiler must translate, and readable fallback reasons.
3. Generated code is injection-proof: rule text enters only as constants.
4. Whole-policy programs (`compile_policy`) against rule-engine slot by slot.
5. The shipped policy tests and evidence give identical results on the compiled and reference paths.
"""

from __future__ import annotations

import ast as pyast
import contextlib
import dataclasses
import datetime
import decimal
import math
import operator
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import pytest
import rule_engine
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from charter.bundle import EvidenceBundle
from charter.evaluate import evaluate_bundle
from charter.frameworks import load_frameworks
from charter.kpis import builtin_catalog
from charter.policy import PolicyCompiler, PolicySet, policy_files
from charter.policy.compile import (
    BREACH,
    MISSING,
    PASS,
    REFERENCE,
    WARN,
    RuleSlot,
    compile_condition,
    compile_policy,
    reference_only,
)
from charter.policy.context import build_context, evaluation_time
from charter.policy.expressions import evidence_refs
from charter.policy.testing import PolicyTestRunner, find_test_files
from charter.registry import SystemRegistry
from tests.conftest import REPO

CATALOG = builtin_catalog()
CONTEXT = build_context(CATALOG)
#: KPIs of different units: ratios, a latency, an unbounded relative value, a currency amount
KPIS = ("recall", "precision", "approval_rate", "latency_p95_ms", "roi", "cost_per_prediction")
OBJECTS = ("baseline", "previous", "peers", "bundle.kpis")
SEGMENT = "region:asia"
NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)
MIN_NORMAL = sys.float_info.min
#: CHARTER_COMPILE_EXAMPLES scales the three Hypothesis tests (2000 keeps the whole file near 30 s on 2 cores;
#: 20000 is a good overnight hunt)
EXAMPLES = int(os.environ.get("CHARTER_COMPILE_EXAMPLES", "2000"))
ARITHMETIC_EXAMPLES = EXAMPLES
POLICY_EXAMPLES = max(EXAMPLES // 5, 50)
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def shipped() -> PolicySet:
    return PolicyCompiler(CATALOG, load_frameworks()).compile_files(policy_files(REPO / "policies"))


# -- values ----------------------------------------------------------------------------------------

SPECIAL = (0.0, -0.0, 0.1, 0.2, 0.3, 0.30000000000000004, 0.7, 0.85, 0.9, 1.0, 1.5, 2.0, 3.0, 10.0, 100.0,
           1 / 3, 0.12345678901234568, 123456.789, 1e-300, 1e-170, 1e-150, 1e-20, 1e20, 1e150, 1e200, 1e300,
           sys.float_info.max, MIN_NORMAL, 1e-320, 5e-324)
#: rule text of numbers; decimal values whose float is not the same number ("0.12345678901234567890",
#: "1e-400") and numbers beyond the float range ("1e400") included
LITERALS = ("0", "1", "2", "3", "10", "100", "0x10", "0.1", "0.2", "0.3", "0.10", "0.85", "0.90", "1.5", "1.50",
            "0.30000000000000004", "0.12345678901234567890", "3.0000000000000000001", "0.333333333333333333333",
            "123456789012345678901234567890", "1e-320", "5e-324", "1e-300", "1e-170", "1e-400", "1e300", "1e200",
            "1e400", "1.7976931348623157e308")
STRINGS = ("high", "limited", "minimal", "classifier", "generative", "agent", "", "HIGH", "x'); import os; ('")
TAGS = ("payments", "fraud", "affects-people", "pii")
DURATIONS = ('t"P30D"', 't"P1D"', 't"PT1H"', 't"P45D"', 't"P0D"', 't"PT0S"')
TIME_PAIRS = (("bundle.measured_at", "bundle.window_end"), ("$today", "bundle.window_start"),
              ("bundle.window_end - bundle.window_start", 't"P30D"'), ("bundle.window_end", 'd"2026-01-30T12:00:00Z"'),
              ("-(bundle.window_end - $now)", 't"P30D"'))


def _finite(value: float) -> bool:
    return math.isfinite(value)


_special = st.sampled_from(SPECIAL)
VALUES: st.SearchStrategy[float] = st.one_of(
    _special,
    _special.map(operator.neg),
    st.tuples(_special, _special).map(lambda p: p[0] + p[1]),
    st.tuples(_special, _special).map(lambda p: p[0] - p[1]),
    st.tuples(_special, _special).map(lambda p: p[0] * p[1]),
    st.integers(-1000, 1000).map(float),
    st.floats(-2, 2, allow_nan=False),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(-1e-290, 1e-290, allow_nan=False),  # tiny and subnormal
).filter(_finite)


def _decimal_text(value: decimal.Decimal) -> str:
    """Rule text of an exact decimal (rule-engine reads ``1E-5``; a negative becomes unary minus)."""
    return format(value, "f") if abs(value.adjusted()) < 30 else str(value)


# -- rule text ---------------------------------------------------------------------------------------

Draw = Callable[[st.SearchStrategy[Any]], Any]


def _pick(draw: Draw, options: Sequence[str]) -> str:
    return str(draw(st.sampled_from(options)))


def _number_atom(draw: Draw, literals: Sequence[str]) -> str:
    kind = draw(st.integers(0, 9))
    kpi = _pick(draw, KPIS)
    if kind <= 2:
        return kpi
    if kind <= 5:
        return f"{_pick(draw, OBJECTS)}.{kpi}"
    if kind == 6:
        return f"segments[{_pick(draw, (SEGMENT,) * 5 + ('region:eu',))!r}][{kpi!r}]"
    return _pick(draw, literals)


def _number(draw: Draw, literals: Sequence[str], depth: int) -> str:
    shape = draw(st.integers(0, 40)) if depth > 0 else 0
    if shape <= 18:
        return _number_atom(draw, literals)
    a = _number(draw, literals, depth - 1)
    if shape <= 35:
        op = _pick(draw, ("+", "-", "*", "/") if shape <= 31 else ("+", "-"))
        return f"({a} {op} {_number(draw, literals, depth - 1)})"
    if shape <= 37:
        return f"-({a})"
    if shape == 38:  # not translated: the whole condition runs on rule-engine
        return _pick(draw, (f"({a} ** 2)", f"({a} ** 0.5)", f"$abs({a})", f"$round({a})"))
    if shape == 39:
        return f"({a} {_pick(draw, ('//', '%'))} {_number(draw, literals, depth - 1)})"
    return f"({_boolean(draw, literals, depth - 1)} ? {a} : {_number(draw, literals, depth - 1)})"


def _scalar_condition(draw: Draw) -> str:
    op = _pick(draw, ("<", "<=", ">", ">=", "==", "!="))
    shape = draw(st.integers(0, 15))
    text = _pick(draw, STRINGS)
    if shape == 0:
        return f"system.{_pick(draw, ('risk_tier', 'kind'))} {op} {text!r}"
    if shape == 1:
        return f"{_pick(draw, TAGS)!r} in system.tags"
    if shape == 2:
        return f"{_pick(draw, ('high', 'gen', 'a', ''))!r} in system.{_pick(draw, ('risk_tier', 'kind'))}"
    if shape == 3:
        return f"system.kind in {list(draw(st.lists(st.sampled_from(STRINGS), max_size=3)))!r}"
    if shape == 4:
        return f"$now - bundle.window_end {op} {_pick(draw, DURATIONS)}"
    if shape == 5:
        return f"bundle.window_end + {_pick(draw, DURATIONS)} {op} $now"
    if shape == 6:
        left, right = draw(st.sampled_from(TIME_PAIRS))
        return f"{left} {op} {right}"
    if shape == 7 and draw(st.booleans()):  # not translated
        return _pick(draw, ('system.id =~ "fr.*"', '"pii" in [t for t in system.tags]', "system.name[0] == 'C'",
                            "$now - bundle.window_end > $parse_timedelta('P30D')"))
    if shape == 8:
        return _pick(draw, ("true", "false"))
    return f"system.risk_tier {op} {text!r}"


def _boolean(draw: Draw, literals: Sequence[str], depth: int) -> str:
    shape = draw(st.integers(0, 12)) if depth > 0 else draw(st.integers(0, 5))
    if shape <= 3:
        op = _pick(draw, ("<", "<=", ">", ">=", "==", "!="))
        return f"{_number(draw, literals, depth)} {op} {_number(draw, literals, depth)}"
    if shape == 4:
        members = draw(st.lists(st.sampled_from(literals), min_size=1, max_size=4))
        member = _number_atom(draw, literals) if draw(st.booleans()) else _number(draw, literals, depth)
        return f"{member} in [{', '.join(members)}]"
    if shape == 5:
        return _scalar_condition(draw)
    a = _boolean(draw, literals, depth - 1)
    if shape <= 7:
        return f"({a} and {_boolean(draw, literals, depth - 1)})"
    if shape <= 9:
        return f"({a} or {_boolean(draw, literals, depth - 1)})"
    if shape == 10:
        return f"not ({a})"
    return f"({a} ? {_boolean(draw, literals, depth - 1)} : {_boolean(draw, literals, depth - 1)})"


# -- namespaces --------------------------------------------------------------------------------------

def _kpi_values(draw: Draw, value: st.SearchStrategy[float], present: float = 0.95) -> dict[str, float]:
    missing = draw(st.sets(st.sampled_from(KPIS), max_size=2)) if draw(st.floats(0, 1)) > present else set()
    return {kpi: draw(value) for kpi in KPIS if kpi not in missing}


@st.composite
def worlds(draw: Draw) -> tuple[list[str], dict[str, Any], bool]:
    """(number literals, namespace, whether to set the evaluation time), with values and literals often tied."""
    pool = draw(st.lists(VALUES, min_size=1, max_size=5))
    pool += [v for v in (pool[i] + pool[j] for i in range(len(pool)) for j in range(i, len(pool))) if _finite(v)]
    value = st.sampled_from(pool)
    exact = [decimal.Decimal(repr(v)) for v in pool]
    sums = [_decimal_text(a + b) for a in exact[:3] for b in exact[:3]]  # exact in decimal, not in float
    literals = [*LITERALS, *(_decimal_text(d) for d in exact), *sums]
    return literals, _namespace(draw, value), draw(st.floats(0, 1)) < 0.95


@st.composite
def cases(draw: Draw, depth: int = 3) -> tuple[str, dict[str, Any], bool]:
    """(rule text, namespace, whether to set the evaluation time)."""
    literals, ns, at_time = draw(worlds())
    return _boolean(draw, literals, depth), ns, at_time


def _namespace(draw: Draw, value: st.SearchStrategy[float]) -> dict[str, Any]:
    kpis = _kpi_values(draw, value)
    ns: dict[str, Any] = dict(kpis)
    ns["system"] = MappingProxyType({
        "id": _pick(draw, ("fraud-detector", "claims")), "name": "Card fraud", "owner": "o",
        "risk_tier": _pick(draw, ("high", "limited", "minimal")),
        "kind": _pick(draw, ("classifier", "generative", "agent")), "region": "eu", "status": "active",
        "tags": list(draw(st.lists(st.sampled_from(TAGS), max_size=3, unique=True)))})
    age = datetime.timedelta(days=draw(st.sampled_from((0, 1, 29, 30, 31, 45))) if draw(st.booleans())
                             else draw(st.integers(-3, 90)),
                             seconds=draw(st.sampled_from((0, 0, 0, 1, 3600, -1))))
    end = NOW - age
    ns["bundle"] = MappingProxyType({
        "system_id": "s", "model_version": "1", "submitter": "o", "window_start": end - datetime.timedelta(days=30),
        "window_end": end, "measured_at": end + datetime.timedelta(hours=draw(st.sampled_from((0, 1, -1)))),
        "kpis": MappingProxyType(kpis if draw(st.booleans()) else _kpi_values(draw, value))})
    ns["baseline"] = MappingProxyType(_kpi_values(draw, value))
    ns["previous"] = MappingProxyType(_kpi_values(draw, value) if draw(st.floats(0, 1)) < 0.9 else {})
    segments = {}
    if draw(st.floats(0, 1)) < 0.9:
        segments[SEGMENT] = MappingProxyType(_kpi_values(draw, value))
    if draw(st.booleans()):
        segments["region:us"] = MappingProxyType(_kpi_values(draw, value))
    ns["segments"] = MappingProxyType(segments)
    if draw(st.floats(0, 1)) < 0.85:  # segment scope
        ns["segment"] = MappingProxyType({"key": SEGMENT, "dimension": "region", "group": "asia"})
        ns["peers"] = MappingProxyType(_kpi_values(draw, value))
    return ns


# -- comparing the two paths ---------------------------------------------------------------------------

Outcome = tuple[str, type, Any]


def _outcome(function: Callable[[Mapping[str, Any]], Any], ns: Mapping[str, Any]) -> Outcome:
    try:
        value = function(ns)
    except Exception as exc:  # the exception is the outcome
        return "raised", type(exc), str(exc)
    return "value", type(value), value


def _parse(text: str) -> rule_engine.Rule | None:
    try:
        return rule_engine.Rule(text, context=CONTEXT)
    except rule_engine.errors.EngineError:  # a type error, constant folding that raised, ...
        return None


def _event(text: str) -> None:
    with contextlib.suppress(InvalidArgument):  # outside a Hypothesis test
        event(text)


def check_condition(rule: rule_engine.Rule, ns: Mapping[str, Any]) -> Outcome:
    """Assert that `compile_condition(rule)` gives rule-engine's outcome; returns that outcome."""
    compiled = compile_condition(rule)
    reference = _outcome(rule.evaluate, ns)
    _event("compiled" if compiled.compiled else "fallback: " + re.sub(r"number \S+", "N", str(compiled.fallback)))
    _event(f"reference {reference[0]}")
    if compiled.source is not None:
        _check_generated(compiled.source)
    via = _outcome(compiled.evaluate, ns)
    fast = _outcome(compiled.fast, ns) if compiled.fast is not None else None
    if fast is not None:
        _event(f"fast path {fast[0]} ({fast[1].__name__})" if fast[0] == "raised" else "fast path decided")
    assert via == reference, f"{rule.text!r}: compiled {via}, rule-engine {reference}\nns = {ns!r}"
    if fast is not None and fast[0] == "value":
        # .evaluate hides errors of the fast path by falling back; a value it returns must be exact
        assert fast == reference, f"{rule.text!r}: fast path {fast}, rule-engine {reference}\nns = {ns!r}"
    return reference


def _run_case(text: str, ns: Mapping[str, Any], at_time: bool) -> Outcome | None:
    rule = _parse(text)
    if rule is None:
        _event("rejected by rule-engine's parser")
        return None
    if not at_time:
        return check_condition(rule, ns)
    with evaluation_time(NOW):
        return check_condition(rule, ns)


# -- 1. the differential test ----------------------------------------------------------------------

@SETTINGS
@given(cases())
def test_compiled_conditions_agree_with_rule_engine(case: tuple[str, dict[str, Any], bool]) -> None:
    _run_case(*case)


#: magnitudes where float and decimal part ways: subnormals, the edges of the float range
MAGNITUDES = (5e-324, 1e-320, 1e-310, MIN_NORMAL, 1e-300, 1e-170, 1e-162, 1e-160, 1e-150, 1e-20, 1e-5, 1.0, 10.0,
              1e5, 1e20, 1e150, 1e160, 1e200, 1e300, 1e308)
MANTISSAS = (1.0, 3.0, 0.1, 0.2, 0.3, 1 / 3, 0.7, 9.5, 1.5, 0.30000000000000004)
SCALED = st.tuples(st.sampled_from(MAGNITUDES), st.sampled_from(MANTISSAS)).map(lambda p: p[0] * p[1])
ARITHMETIC_VALUES: st.SearchStrategy[float] = st.one_of(
    SCALED, SCALED.map(operator.neg), st.sampled_from(SPECIAL), st.just(0.0),
    st.floats(allow_nan=False, allow_infinity=False)).filter(_finite)
ARITHMETIC_KPIS = KPIS[:3]


def _arithmetic(draw: Draw, literals: Sequence[str], depth: int) -> str:
    shape = draw(st.integers(0, 9)) if depth > 0 else 0
    if shape <= 3:
        kind = draw(st.integers(0, 4))
        kpi = _pick(draw, ARITHMETIC_KPIS)
        return kpi if kind <= 1 else f"baseline.{kpi}" if kind == 2 else _pick(draw, literals)
    if shape == 4:
        return f"-({_arithmetic(draw, literals, depth - 1)})"
    op = _pick(draw, ("+", "-", "*", "/", "*", "/"))
    return f"({_arithmetic(draw, literals, depth - 1)} {op} {_arithmetic(draw, literals, depth - 1)})"


@st.composite
def arithmetic_cases(draw: Draw) -> tuple[str, str, str | None, int, dict[str, Any]]:
    """(left, operator, right or None for "the exact decimal value of left", nudge in 28-digit steps, namespace)."""
    pool = draw(st.lists(ARITHMETIC_VALUES, min_size=1, max_size=4))
    value = st.sampled_from(pool)
    ns: dict[str, Any] = {kpi: draw(value) for kpi in ARITHMETIC_KPIS}
    ns["baseline"] = MappingProxyType({kpi: draw(value) for kpi in ARITHMETIC_KPIS})
    literals = [*(_decimal_text(decimal.Decimal(repr(v))) for v in pool), *(repr(m) for m in MAGNITUDES),
                "0.1", "0.3", "1", "0", "9.5e-24", "1e-150", "0.99999e-20", "0.12345678901234567890"]
    left = _arithmetic(draw, literals, 3)
    op = _pick(draw, ("<", "<=", ">", ">=", "==", "!="))
    right = None if draw(st.integers(0, 2)) else _arithmetic(draw, literals, 2)
    return left, op, right, draw(st.sampled_from((0, 0, 1, -1))), ns


@settings(max_examples=ARITHMETIC_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arithmetic_cases())
def test_compiled_arithmetic_agrees_with_rule_engine(case: tuple[str, str, str | None, int, dict[str, Any]]) -> None:
    """Comparisons of arithmetic over extreme magnitudes, often against the exact decimal value of one side."""
    left, op, right, nudge, ns = case
    if right is None:
        right = "0"
        number = _parse(left)
        exact = _outcome(number.evaluate, ns) if number is not None else None
        if exact is not None and exact[0] == "value":
            value: decimal.Decimal = exact[2]
            right = _decimal_text(value.next_plus() if nudge > 0 else value.next_minus() if nudge < 0 else value)
            _event(f"against the exact value, nudged {nudge}")
    _run_case(f"{left} {op} {right}", ns, True)


def _ns(**values: Any) -> dict[str, Any]:
    """A namespace built like the evaluator's: top-level KPIs, objects given as dicts (or defaults)."""
    end = values.pop("window_end", NOW - datetime.timedelta(days=10))
    kind = values.pop("kind", "classifier")
    objects = {name: MappingProxyType(values.pop(name, {})) for name in ("baseline", "previous", "peers")}
    segments = values.pop("segments", {})
    ns: dict[str, Any] = dict(values)
    ns["system"] = MappingProxyType({"id": "s", "name": "S", "owner": "o", "risk_tier": "high",
                                     "kind": kind, "region": "eu",
                                     "status": "active", "tags": ["payments"]})
    ns["bundle"] = MappingProxyType({"system_id": "s", "model_version": "1", "submitter": "o",
                                     "window_start": end - datetime.timedelta(days=30), "window_end": end,
                                     "measured_at": end, "kpis": MappingProxyType(dict(values))})
    ns.update(objects)
    ns["segments"] = MappingProxyType({k: MappingProxyType(v) for k, v in segments.items()})
    return ns


#: (rule text, namespace, rule-engine's value or the type of error it raises)
PINNED: list[tuple[str, dict[str, Any], Any]] = [
    ("0.1 + 0.2 == 0.3", _ns(), True),
    ("recall + precision == 0.3", _ns(recall=0.1, precision=0.2), True),
    ("recall + precision > 0.3", _ns(recall=0.1, precision=0.2), False),
    ("recall - baseline.recall >= 0.1", _ns(recall=0.3, baseline={"recall": 0.2}), True),
    ("recall - baseline.recall < 0.1", _ns(recall=0.3, baseline={"recall": 0.2}), False),
    ("baseline.recall - recall > 0.15", _ns(recall=0.75, baseline={"recall": 0.9}), False),
    ("recall * 3 == 0.3", _ns(recall=0.1), True),
    ("recall / precision > 1", _ns(recall=0.5, precision=0.0), rule_engine.errors.ArithmeticError),
    ("recall / precision > 1", _ns(recall=0.0, precision=0.0), rule_engine.errors.ArithmeticError),
    ("recall / (precision - 0.3) > 1", _ns(recall=0.5, precision=0.3), rule_engine.errors.ArithmeticError),
    ("recall / (precision - recall) > 1", _ns(recall=0.2, precision=0.2), rule_engine.errors.ArithmeticError),
    ("recall < 0.85", _ns(recall=0.85), False),
    ("recall >= 0.85", _ns(recall=0.85), True),
    ("recall == 0.850", _ns(recall=0.85), True),
    ("approval_rate < 0.90 * peers.approval_rate", _ns(approval_rate=0.9, peers={"approval_rate": 1.0}), False),
    ("latency_p95_ms > 500", _ns(latency_p95_ms=500.0), False),
    ("recall <= 0.12345678901234567890", _ns(recall=0.12345678901234568), False),
    ("recall > 0.12345678901234567890", _ns(recall=0.12345678901234568), True),
    ("recall == 0.12345678901234567890", _ns(recall=0.12345678901234568), False),
    ("recall in [0.3, 0.12345678901234567890]", _ns(recall=0.12345678901234568), False),
    ("recall in [0.1, 0.30000000000000004]", _ns(recall=0.1 + 0.2), True),
    ("recall + precision in [0.3]", _ns(recall=0.1, precision=0.2), True),
    ("recall > 1e-320", _ns(recall=1e-320), False),
    ("recall < 1e-400", _ns(recall=0.0), True),
    ("recall * 1e300 * 1e300 > 1e300", _ns(recall=0.5), True),
    ("recall * 2 < 1e400", _ns(recall=0.5), True),
    ("previous.recall > 0.5", _ns(recall=0.5), rule_engine.errors.ObjectAttributeError),
    ("segments['region:asia']['recall'] > 0.5", _ns(segments={"region:eu": {"recall": 1.0}}),
     rule_engine.errors.LookupError),
    ("peers.recall - recall > 0.10", _ns(recall=0.8, peers={"recall": 0.9}), False),
    # gradual underflow: a subnormal value's repr is up to 2^-1075 from it, a product or quotient below the
    # normal range loses digits, and a later multiplication scales that back to a visible difference
    ("approval_rate * 1e150 < 5e-174", _ns(approval_rate=5e-324), False),  # found by Hypothesis
    ("recall * recall * 1e200 > 1e-150", _ns(recall=1e-170), True),  # 1e-340 underflows to 0.0
    ("recall * recall * 1e300 > 9.5e-24", _ns(recall=3e-162), False),  # 9e-324 rounds to 1e-323
    ("recall * 1e300 * 1e23 >= 0.5", _ns(recall=5e-324), True),  # repr is 5e-324, the float 4.94e-324
    ("recall * 1e-320 * 1e300 > 0.99999e-20", _ns(recall=1.0), True),  # the float of 1e-320 is 9.99989e-321
    ("recall / 1e300 * 1e300 >= 1e-20", _ns(recall=1e-20), True),  # 1e-320 again
    ("$now - bundle.window_end > t\"P30D\"", _ns(window_end=NOW - datetime.timedelta(days=30)), False),
    ("$now - bundle.window_end >= t\"P30D\"", _ns(window_end=NOW - datetime.timedelta(days=30)), True),
    ("bundle.window_end + t\"P1D\" < $now", _ns(window_end=NOW - datetime.timedelta(days=1)), False),
]


def _check_pinned(text: str, ns: dict[str, Any], expected: Any) -> None:
    rule = rule_engine.Rule(text, context=CONTEXT)
    with evaluation_time(NOW):
        reference = _outcome(rule.evaluate, ns)
        if isinstance(expected, type):
            assert reference[:2] == ("raised", expected), reference
        else:
            assert reference == ("value", bool, expected), reference
        assert check_condition(rule, ns) == reference


@pytest.mark.parametrize(("text", "ns", "expected"), PINNED, ids=[p[0] for p in PINNED])
def test_pinned_cases_agree(text: str, ns: dict[str, Any], expected: Any) -> None:
    _check_pinned(text, ns, expected)


def test_near_calls_are_left_to_rule_engine() -> None:
    """The guarded comparisons really do defer: the fast path raises rather than guessing."""
    for text, ns in [("recall + precision == 0.3", _ns(recall=0.1, precision=0.2)),
                     ("recall - baseline.recall >= 0.1", _ns(recall=0.3, baseline={"recall": 0.2})),
                     ("recall <= 0.12345678901234567890", _ns(recall=0.12345678901234568)),
                     ("recall / precision > 1", _ns(recall=0.5, precision=0.0))]:
        compiled = compile_condition(rule_engine.Rule(text, context=CONTEXT))
        assert compiled.fast is not None, text
        with pytest.raises(Exception):  # noqa: B017 - NearCall or ZeroDivisionError: any doubt
            compiled.fast(ns)


# -- 2. what the compiler translates -----------------------------------------------------------------

COMPILED_SHAPES = [
    "recall < 0.75",
    "latency_p95_ms > 500",
    "baseline.recall - recall > 0.15",
    "cost_per_prediction > 1.5 * baseline.cost_per_prediction",
    "approval_rate < 0.90 * peers.approval_rate",
    "recall / precision < 0.5",
    "recall - previous.recall > bundle.kpis.recall * 0.1",
    "-(recall - 1) > 0.2",
    "recall < 0.8 and precision < 0.8",
    "recall < 0.8 or not (precision >= 0.8)",
    "(recall > 0.5 ? precision < 0.6 : precision < 0.7)",
    "recall in [0.1, 0.2, 0.3]",
    'system.risk_tier in ["high", "limited"]',
    'system.risk_tier == "high" and human_override_rate < 0.005',
    '"payments" in system.tags',
    '$now - bundle.window_end > t"P45D"',
    'bundle.window_end + t"P1D" < $now',
    '$today > bundle.window_start',
    "segments['region:asia']['recall'] < 0.75",
    "segments['region:asia']['recall'] - recall > 0.15",
    "true",
]

FALLBACKS = [
    ("recall ** 2 > 0.5", "**"),
    ("recall // 0.1 > 5", "//"),
    ("recall % 0.1 > 0.05", "%"),
    ("$abs(recall - baseline.recall) > 0.1", "function"),
    ('system.id =~ "fraud.*"', "regular expression"),
    ('"payments" in [t for t in system.tags]', "comprehension"),
    ("(recall > 0.5 ? recall : precision) > 0.6", "conditional number"),
    ("recall < 1e400", "float range"),
    ("baseline&.recall > 0.5", ".recall"),
]


@pytest.mark.parametrize("text", COMPILED_SHAPES)
def test_common_shapes_compile(text: str) -> None:
    compiled = compile_condition(rule_engine.Rule(text, context=CONTEXT))
    assert compiled.compiled and compiled.fallback is None and compiled.source is not None, compiled.fallback
    ns = _ns(recall=0.7, precision=0.9, human_override_rate=0.001, approval_rate=0.5, latency_p95_ms=200.0,
             cost_per_prediction=0.02, baseline={"recall": 0.9, "cost_per_prediction": 0.01},
             previous={"recall": 0.6}, peers={"approval_rate": 0.6}, segments={SEGMENT: {"recall": 0.8}})
    with evaluation_time(NOW):
        assert compiled.fast is not None
        assert compiled.fast(ns) is compiled.rule.evaluate(ns)


@pytest.mark.parametrize(("text", "reason"), FALLBACKS)
def test_unsupported_constructs_fall_back_with_a_reason(text: str, reason: str) -> None:
    rule = rule_engine.Rule(text, context=CONTEXT)
    compiled = compile_condition(rule)
    assert not compiled.compiled and compiled.fast is None and compiled.source is None
    assert compiled.fallback is not None and reason in compiled.fallback, compiled.fallback
    ns = _ns(recall=0.7, precision=0.9, baseline={"recall": 0.9})
    assert compiled.evaluate(ns) == rule.evaluate(ns)


def test_reference_only_bypasses_the_fast_path() -> None:
    compiled = compile_condition(rule_engine.Rule("recall < 0.5", context=CONTEXT))
    # every compiled function of the condition (fast, and the one with the fallback built in) says "fast"
    functions: dict[str, Any] = {f.name: (lambda ns: "fast") for f in dataclasses.fields(compiled)
                                 if f.name != "rule" and callable(getattr(compiled, f.name))}
    assert functions, "no compiled function to rig"
    rigged = dataclasses.replace(compiled, **functions)
    assert rigged.evaluate({"recall": 0.1}) == "fast"
    with reference_only():
        assert rigged.evaluate({"recall": 0.1}) is True
    assert rigged.evaluate({"recall": 0.1}) == "fast"


# -- 3. injection-proof code generation --------------------------------------------------------------

HOSTILE = "x'); import os; ('"
HOSTILE_KEY = "x'][0]; __import__(\"os\").system(\"true\"); ns['"


def _check_generated(source: str) -> set[str]:
    """Assert the generated code only reads the namespace and calls its own helpers; returns what it calls.

    Allowed: ``abs``, ``NearCall``, generated helpers and constants (``_c1``, ``_k0``), ``out.append``
    and ``ns...keys()``. No imports, no other names: rule text can only have entered as string constants.
    """
    tree = pyast.parse(source)
    assert not [n for n in pyast.walk(tree) if isinstance(n, pyast.Import | pyast.ImportFrom)]
    calls = {pyast.unparse(n.func) for n in pyast.walk(tree) if isinstance(n, pyast.Call)}
    for call in calls:
        assert call in ("abs", "NearCall", "out.append") or (call.startswith("_") and call.isidentifier()) or (
            call.startswith("ns") and call.endswith(".keys")), call
    names = {n.id for n in pyast.walk(tree) if isinstance(n, pyast.Name)}
    assert all(n in ("ns", "out", "abs", "NearCall", "Exception", "True", "False", "d", "m", "complete")
               or n.startswith("_") or (n[:1] in ("v", "e") and n[1:].isdigit()) for n in names), names
    return calls


def test_rule_text_never_reaches_the_generated_source() -> None:
    text = f"system.kind == {HOSTILE!r} or {HOSTILE!r} in system.tags"
    rule = rule_engine.Rule(text, context=CONTEXT)
    compiled = compile_condition(rule)
    assert compiled.fast is not None and compiled.source is not None
    assert text not in compiled.source and HOSTILE not in compiled.source and "import" not in compiled.source
    _check_generated(compiled.source)
    assert compiled.fast.__globals__["__builtins__"] == {"abs": abs}
    assert compiled.fast(_ns(kind=HOSTILE)) is True
    assert compiled.fast(_ns(kind="classifier")) is False


def test_hostile_mapping_keys_enter_only_as_string_literals() -> None:
    rule = rule_engine.Rule(f"segments[{HOSTILE_KEY!r}]['recall'] > 0.5", context=CONTEXT)
    compiled = compile_condition(rule)
    assert compiled.fast is not None and compiled.source is not None
    _check_generated(compiled.source)
    assert repr(HOSTILE_KEY) in compiled.source
    assert compiled.fast(_ns(segments={HOSTILE_KEY: {"recall": 0.6}})) is True
    assert compiled.evaluate(_ns(segments={HOSTILE_KEY: {"recall": 0.4}})) is False
    program = compile_policy([RuleSlot([(None, "recall")], rule, None)])
    _check_generated(program.source)
    assert program.run(_ns(recall=0.1, segments={HOSTILE_KEY: {"recall": 0.6}})) == [BREACH]
    assert program.run(_ns(segments={HOSTILE_KEY: {"recall": 0.6}})) == [MISSING]


def test_generated_code_is_safe_for_shipped_and_pinned_rules(shipped: PolicySet) -> None:
    """The same check for every shipped condition and pinned rule (the Hypothesis tests check every rule they make)."""
    conditions = [c for r in shipped.rules() for c in (r.breach_compiled, r.warn_compiled) if c is not None]
    conditions += [compile_condition(rule_engine.Rule(text, context=CONTEXT))
                   for text in [*COMPILED_SHAPES, *(text for text, _, _ in PINNED)]]
    for compiled in conditions:
        if compiled.source is not None:
            _check_generated(compiled.source)


# -- 4. whole policies -------------------------------------------------------------------------------

_NEED_SOURCES: dict[str | None, Callable[[Mapping[str, Any]], Any]] = {
    None: lambda ns: ns, "baseline": lambda ns: ns.get("baseline"), "previous": lambda ns: ns.get("previous"),
    "peers": lambda ns: ns.get("peers"), "bundle.kpis": lambda ns: ns["bundle"]["kpis"],
}


def _needs(rules: Sequence[rule_engine.Rule | None]) -> list[tuple[str | None, str]]:
    refs = set().union(*(evidence_refs(r.statement.expression, set(CATALOG)) for r in rules if r is not None))
    return sorted(((ref.where, ref.kpi) for ref in refs), key=str)


def _expected_code(slot: RuleSlot, ns: Mapping[str, Any]) -> int:
    """The status rule-engine gives the slot; REFERENCE where the program cannot decide (an error)."""
    for where, kpi in slot.needs:
        source = _NEED_SOURCES[where](ns)
        if source is None:
            return REFERENCE  # the program's own lookup raises
        if kpi not in source:
            return MISSING
    for condition, code in ((slot.breach, BREACH), (slot.warn, WARN)):
        if condition is None:
            continue
        outcome = _outcome(condition.evaluate, ns)
        if outcome[0] == "raised":
            return REFERENCE
        if outcome[2]:
            return code
    return PASS


def _undecided(slot: RuleSlot, ns: Mapping[str, Any]) -> bool:
    """Whether the compiled conditions of the slot cannot decide on this namespace (REFERENCE is then right)."""
    for condition in (slot.breach, slot.warn):
        if condition is None:
            return False
        fast = compile_condition(condition).fast
        if fast is None:
            return True
        outcome = _outcome(fast, ns)
        if outcome[0] == "raised":
            return True
        if outcome[2]:
            return False
    return False


def check_program(slots: list[RuleSlot], ns: Mapping[str, Any]) -> list[int]:
    program = compile_policy(slots)
    _check_generated(program.source)
    codes = program.run(ns)
    assert len(codes) == len(slots)
    for index, (slot, code) in enumerate(zip(slots, codes, strict=True)):
        expected = _expected_code(slot, ns)
        _event(f"program: expected {expected}, got {code}")
        if index in program.fallbacks:
            assert code == REFERENCE
            assert compile_condition(slot.breach).fallback is not None or (
                slot.warn is not None and compile_condition(slot.warn).fallback is not None)
            continue
        if code == expected:
            continue
        if code == REFERENCE:
            assert expected in (PASS, WARN, BREACH)
            assert _undecided(slot, ns), f"slot {index}: REFERENCE though the compiled conditions decide"
        else:
            raise AssertionError(f"slot {index} ({slot.breach.text!r} / {slot.warn.text if slot.warn else None!r}): "
                                 f"program {code}, rule-engine {expected}\nns = {ns!r}")
    return codes


@st.composite
def policies(draw: Draw) -> tuple[list[RuleSlot], dict[str, Any], bool]:
    literals, ns, at_time = draw(worlds())
    slots = []
    for _ in range(draw(st.integers(1, 4))):
        breach = _parse(_boolean(draw, literals, 2))
        warn = _parse(_boolean(draw, literals, 2)) if draw(st.booleans()) else None
        if breach is not None:
            slots.append(RuleSlot(_needs([breach, warn]), breach, warn))
    assume(slots)
    return slots, ns, at_time


@settings(max_examples=POLICY_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies())
def test_policy_programs_agree_with_rule_engine(case: tuple[list[RuleSlot], dict[str, Any], bool]) -> None:
    slots, ns, at_time = case
    if at_time:
        with evaluation_time(NOW):
            check_program(slots, ns)
    else:
        check_program(slots, ns)


def _rule(text: str) -> rule_engine.Rule:
    return rule_engine.Rule(text, context=CONTEXT)


def test_policy_program_statuses() -> None:
    slots = [
        RuleSlot([(None, "recall")], _rule("recall < 0.75"), _rule("recall < 0.85")),
        RuleSlot([("baseline", "recall"), (None, "recall")], _rule("baseline.recall - recall > 0.15"), None),
        RuleSlot([("previous", "recall"), (None, "recall")], _rule("recall - previous.recall > 0.1"), None),
        RuleSlot([(None, "recall")], _rule("recall ** 2 < 0.5"), None),
        RuleSlot([(None, "recall"), (None, "precision")], _rule("recall + precision == 0.3"), None),
        RuleSlot([], _rule('$now - bundle.window_end > t"P30D"'), _rule('$now - bundle.window_end > t"P20D"')),
        RuleSlot([("bundle.kpis", "roi")], _rule("bundle.kpis.roi < 0"), None),
        RuleSlot([(None, "recall"), (None, "precision")], _rule("recall / (precision - 0.2) > 1"), None),
    ]
    ns = _ns(recall=0.8, baseline={"recall": 0.9}, roi=0.1, precision=0.2,
             window_end=NOW - datetime.timedelta(days=25))
    with evaluation_time(NOW):
        assert check_program(slots, ns) == [WARN, PASS, MISSING, REFERENCE, PASS, WARN, PASS, REFERENCE]
        ns = _ns(recall=0.1, precision=0.2, baseline={"recall": 0.9}, previous={"recall": 0.1})
        assert check_program(slots, ns) == [BREACH, BREACH, PASS, REFERENCE, REFERENCE, PASS, MISSING, REFERENCE]
        assert compile_policy(slots).fallbacks == {3: "the operator 'pow' (**)"}


# -- 5. the shipped policies and evidence, on both paths -------------------------------------------------

def test_shipped_conditions_are_compiled(shipped: PolicySet) -> None:
    conditions = [c for r in shipped.rules() for c in (r.breach_compiled, r.warn_compiled) if c is not None]
    assert len(conditions) > 50
    assert [c.rule.text for c in conditions if not c.compiled] == []


def test_shipped_policy_tests_give_the_same_results_on_both_paths(shipped: PolicySet) -> None:
    runner = PolicyTestRunner(shipped, CATALOG)
    files = find_test_files(REPO / "policies")
    compiled = runner.run(files)
    with reference_only():
        reference = runner.run(files)
    assert compiled.ok, [(r.name, r.mismatches, r.error) for r in compiled.failed]
    assert reference.ok, [(r.name, r.mismatches, r.error) for r in reference.failed]
    assert compiled.uncovered == reference.uncovered == []
    assert compiled.to_dict() == reference.to_dict()
    assert [r.checked for r in compiled.results] == [r.checked for r in reference.results]


def test_shipped_evidence_gives_the_same_findings_on_both_paths(shipped: PolicySet) -> None:
    registry = SystemRegistry.from_file(REPO / "evidence" / "systems.yaml", CATALOG)
    bundles = [EvidenceBundle.from_file(path, CATALOG) for path in sorted((REPO / "evidence").glob("*.json"))]
    assert len(bundles) > 10
    statuses: set[str] = set()
    for bundle in bundles:
        system = registry[bundle.system_id]
        for delay in (datetime.timedelta(0), datetime.timedelta(days=40), datetime.timedelta(days=50)):
            at = bundle.measured_at + delay
            compiled = [f.model_dump() for f in evaluate_bundle(system, bundle, shipped.policies, at, bundles)]
            with reference_only():
                reference = [f.model_dump() for f in evaluate_bundle(system, bundle, shipped.policies, at, bundles)]
            assert compiled == reference, (bundle.system_id, bundle.window_end, delay)
            statuses |= {f["status"].value for f in compiled}
    assert {"pass", "warn", "breach", "missing"} <= statuses

