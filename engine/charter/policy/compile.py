"""Compile rule-engine syntax trees to Python functions, with rule-engine itself as the fallback.

rule-engine walks its tree for every evaluation and turns every number it reads into a `Decimal`;
a KPI policy spends almost all of its time there. This module translates each parsed and
type-checked condition into Python source, built from the tree node by node (rule text never
reaches `compile`: names and literals enter the source only through `repr`), and runs it.

Results are identical to `Rule.evaluate` by construction:

* Comparing two numbers that are read or written as they are (a KPI, ``baseline.recall``, a
  literal such as ``0.85``) uses floats. rule-engine compares ``Decimal(repr(x))`` values, and
  ``repr`` is the shortest decimal that rounds back to ``x``, so the order of two floats and of
  their ``repr`` decimals is the same; a literal is compiled as a float only when the float's
  ``repr`` equals the literal, otherwise the whole comparison goes through the guarded path.
* Arithmetic (``+ - * /`` and negation) runs on floats together with a bound on how far each float
  can be from the value rule-engine computes in decimal: each read value is within 2^-53 of its
  magnitude from its decimal, and each operation adds at most one rounding. A comparison whose two
  sides differ by more than their bounds has the verdict rule-engine would give; a nearer call
  (``0.1 + 0.2 == 0.3``, a value exactly on a threshold) is handed to rule-engine.
* Whenever the compiled code raises (a missing key, a type error, a near call, a division by
  zero), the rule is evaluated again by rule-engine, so errors keep their exact types and messages.
* A node the compiler does not translate (function calls, comprehensions, regular expressions,
  slices, null-safe access, ``//``, ``%``, ``**``, bitwise operators) makes the whole condition use
  rule-engine; `CompiledCondition.fallback` says why, and ``charter policy lint --explain-compile``
  lists those rules.

The compiled code expects the namespace Charter's evaluator builds from validated evidence: KPI
values are finite floats (or ints), datetimes are timezone-aware, objects are read-only mappings.
"""

from __future__ import annotations

import contextlib
import contextvars
import decimal
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import rule_engine
from rule_engine import DataType, ast

from .context import _now, _today

#: relative distance of a float from the decimal rule-engine uses, per read value and per operation
#: (2^-53 is the bound; twice that leaves room for the decimal context's own rounding at 28 digits)
ROUNDING = 2.0 ** -51
#: absolute error of one rounding below the normal range (the smallest subnormal float, 2^-1074):
#: relative bounds alone miss it, and a later multiplication can scale it up to matter
SUBNORMAL = 5e-324
#: absolute slack so that exact ties always count as near calls
TINY = 1e-300
#: values read within ±this get a compile-time error bound (KPIs, costs and latencies fit easily)
STATIC_RANGE = 2.0 ** 24

_ORDER = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
#: verdict of each comparison when left - right is clearly positive, clearly negative
_SIGN = {"lt": (False, True), "le": (False, True), "gt": (True, False), "ge": (True, False),
         "eq": (False, False), "ne": (True, True)}
_SCALARS = ("STRING", "DATETIME", "TIMEDELTA", "BOOLEAN")
_BUILTINS = {"now": _now, "today": _today}
_REFERENCE_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar("charter_reference_only", default=False)


@contextlib.contextmanager
def reference_only() -> Iterator[None]:
    """Within this block every condition is evaluated by rule-engine (to compare the two paths)."""
    token = _REFERENCE_ONLY.set(True)
    try:
        yield
    finally:
        _REFERENCE_ONLY.reset(token)


class NearCall(Exception):
    """The float result is too close to the threshold to be sure; rule-engine decides."""


class Unsupported(Exception):
    """The compiler does not translate this node; the condition falls back to rule-engine."""


def _type_name(data_type: Any) -> str:
    return str(getattr(data_type, "name", data_type))


def _is(node: Any, name: str) -> bool:
    return _type_name(node.result_type) == name


@dataclass
class _Source:
    """Generated code of one function: helper definitions, constants and the expression."""

    constants: dict[str, Any] = field(default_factory=dict)
    helpers: list[str] = field(default_factory=list)

    def constant(self, value: Any) -> str:
        for name, known in self.constants.items():
            if type(known) is type(value) and known == value:
                return name
        name = f"_k{len(self.constants)}"
        self.constants[name] = value
        return name


def _chain(node: Any) -> list[Any]:
    """The operands of a chain of one logic operator, left to right, without recursion."""
    operands: list[Any] = []
    pending = [node]
    while pending:
        current = pending.pop()
        if isinstance(current, ast.LogicExpression) and current.type == node.type:
            pending += [current.right, current.left]
        else:
            operands.append(current)
    return operands


def _exec_generated(text: str, name: str, scope: dict[str, Any]) -> None:
    """Compile and run generated source; a tree too deep for Python's parser stays with rule-engine."""
    try:
        code = compile(text, f"<charter compiled {name}>", "exec")
    except (SyntaxError, RecursionError, MemoryError) as exc:
        raise Unsupported(f"too deeply nested to compile ({type(exc).__name__}: {exc})") from None
    exec(code, scope)  # source generated from the tree


class _Compiler:
    """Translates one tree; raises `Unsupported` on the first node it does not handle."""

    def __init__(self, source: _Source, prefix: str) -> None:
        self.source = source
        self.prefix = prefix
        self.counter = 0

    # -- values that are not numbers ----------------------------------------------------------

    def boolean(self, node: Any) -> str:
        """A Python expression with the node's true/false value."""
        if not _is(node, "BOOLEAN"):
            raise Unsupported(f"a {_type_name(node.result_type)} value where true or false is expected")
        if isinstance(node, ast.LogicExpression):
            # A chain `a and b and c ...` parses left-nested; one flat Python `and` keeps its meaning
            # (both short-circuit left to right) without one parenthesis per term, which Python's
            # parser caps at 200 levels.
            operands = _chain(node)
            joiner = " and " if node.type == "and" else " or "
            return "(" + joiner.join(self.boolean(operand) for operand in operands) + ")"
        if isinstance(node, ast.UnaryExpression) and node.type == "not":
            return f"(not {self.boolean(node.right)})"
        if isinstance(node, ast.ComparisonExpression) and not isinstance(node, ast.FuzzyComparisonExpression):
            return self.comparison(node)
        if isinstance(node, ast.ContainsExpression):
            return self.contains(node)
        if isinstance(node, ast.TernaryExpression):
            return (f"({self.boolean(node.case_true)} if {self.boolean(node.condition)} "
                    f"else {self.boolean(node.case_false)})")
        if isinstance(node, ast.BooleanExpression):
            return "True" if node.value else "False"
        return self.access(node)

    def access(self, node: Any) -> str:
        """A read from the namespace: a symbol, an object attribute, a mapping item."""
        if isinstance(node, ast.SymbolExpression):
            if node.scope == "built-in":
                if node.name not in _BUILTINS:
                    raise Unsupported(f"the builtin ${node.name}")
                return f"{self.source.constant(_BUILTINS[node.name])}(None)"
            return f"ns[{node.name!r}]"
        if isinstance(node, ast.GetAttributeExpression):
            if node.safe or not DataType.is_type(node.object.result_type, DataType.OBJECT):
                raise Unsupported(f"the attribute .{node.name} of a {_type_name(node.object.result_type)}")
            return f"{self.access(node.object)}[{node.name!r}]"
        if isinstance(node, ast.GetItemExpression):
            if node.safe or not DataType.is_type(node.container.result_type, DataType.MAPPING):
                raise Unsupported("an item of something other than a mapping")
            if not isinstance(node.item, ast.StringExpression):
                raise Unsupported("a mapping item whose key is computed")
            return f"{self.access(node.container)}[{node.item.value!r}]"
        raise Unsupported(_describe(node))

    def scalar(self, node: Any) -> str:
        """A string, datetime, timedelta or boolean value."""
        if isinstance(node, ast.StringExpression | ast.DatetimeExpression | ast.TimedeltaExpression):
            return self.source.constant(node.value)
        if _is(node, "BOOLEAN"):
            return self.boolean(node)
        if isinstance(node, ast.AddExpression | ast.SubtractExpression) and (
                _is(node, "DATETIME") or _is(node, "TIMEDELTA")):
            operator = "+" if isinstance(node, ast.AddExpression) else "-"
            return f"({self.scalar(node.left)} {operator} {self.scalar(node.right)})"
        if isinstance(node, ast.UnaryExpression) and node.type == "uminus" and _is(node, "TIMEDELTA"):
            return f"(-{self.scalar(node.right)})"
        return self.access(node)

    def comparison(self, node: Any) -> str:
        left, right = node.left, node.right
        kind = _type_name(left.result_type)
        if kind != _type_name(right.result_type):
            raise Unsupported(f"a comparison of {kind} with {_type_name(right.result_type)}")
        if kind == "FLOAT":
            plain = self.plain_number(left), self.plain_number(right)
            if plain[0] is not None and plain[1] is not None:
                return f"({plain[0]} {_ORDER[node.type]} {plain[1]})"
            return self.guarded(node)
        if kind not in _SCALARS:
            raise Unsupported(f"a comparison of {kind} values")
        return f"({self.scalar(left)} {_ORDER[node.type]} {self.scalar(right)})"

    def contains(self, node: Any) -> str:
        container, member = node.container, node.member
        if isinstance(container, ast.ArrayExpression | ast.SetExpression):
            values = []
            for item in container.value:
                if isinstance(item, ast.FloatExpression) and _canonical(item.value) is not None:
                    values.append(_canonical(item.value))
                elif isinstance(item, ast.StringExpression):
                    values.append(item.value)
                else:
                    raise Unsupported("a membership test in a list of values other than strings and exact numbers")
            if _is(member, "FLOAT"):
                text = self.plain_number(member)
                if text is None:
                    raise Unsupported("a membership test of a computed number")
            elif _is(member, "STRING"):
                text = self.scalar(member)
            else:
                raise Unsupported(f"a membership test of a {_type_name(member.result_type)}")
            return f"({text} in {self.source.constant(frozenset(values))})"
        if _is(member, "STRING") and (_is(container, "STRING") or DataType.is_type(container.result_type,
                                                                                    DataType.ARRAY)):
            return f"({self.scalar(member)} in {self.access(container)})"
        raise Unsupported("a membership test in a computed container")

    # -- numbers ----------------------------------------------------------------------------

    def plain_number(self, node: Any) -> str | None:
        """A number read or written as it is, whose float compares like rule-engine's decimal; else None."""
        if isinstance(node, ast.FloatExpression):
            exact = _canonical(node.value)
            return None if exact is None else repr(exact)
        if isinstance(node, ast.SymbolExpression | ast.GetAttributeExpression | ast.GetItemExpression):
            return self.access(node)
        return None

    def guarded(self, node: Any) -> str:
        """Compare two computed numbers: a static bound first, then a per-value bound, then rule-engine.

        When every value read lies within ±`STATIC_RANGE` (checked inline, no calls), the distance
        between float and decimal results has a bound known at compile time, and most comparisons
        are decided by one subtraction. Otherwise, or when the two sides are closer than that bound,
        a helper tracks the bound value by value, and hands a near call to rule-engine.
        """
        helper = self.dynamic(node)
        static = self.static_tier(node)
        if static is None:
            return helper
        checks, left, right, margin = static
        positive, negative = _SIGN[node.type]
        self.counter += 1
        d = f"_{self.prefix}d{self.counter}"
        return (f"({helper} if not ({' and '.join(checks) or 'True'}) else {positive} if ({d} := {left} - {right}) "
                f"> {margin!r} else {negative} if {d} < {-margin!r} else {helper})")

    def static_tier(self, node: Any) -> tuple[list[str], str, str, float] | None:
        """Range checks, both sides as float expressions, and the compile-time margin; None if not worth it."""
        checks: list[str] = []
        try:
            left, left_max, left_error = self.static(node.left, checks)
            right, right_max, right_error = self.static(node.right, checks)
        except Unsupported:
            return None
        margin = 2 * (left_error + right_error + ROUNDING * (left_max + right_max) + TINY)
        if not math.isfinite(margin) or margin > 1e-3:
            return None  # too wide to decide anything useful: the per-value bound does better
        return checks, left, right, margin

    def static(self, node: Any, checks: list[str]) -> tuple[str, float, float]:
        """(float expression, bound on its magnitude, bound on its distance from the decimal result)."""
        if isinstance(node, ast.FloatExpression):
            value = float(node.value)
            if not math.isfinite(value):
                raise Unsupported("a number beyond the float range")
            return repr(value), abs(value), ROUNDING * abs(value) + SUBNORMAL
        if isinstance(node, ast.SymbolExpression | ast.GetAttributeExpression | ast.GetItemExpression):
            self.counter += 1
            name = f"_{self.prefix}a{self.counter}"
            checks.append(f"{-STATIC_RANGE!r} < ({name} := {self.access(node)}) < {STATIC_RANGE!r}")
            return name, STATIC_RANGE, ROUNDING * STATIC_RANGE + SUBNORMAL
        if isinstance(node, ast.UnaryExpression) and node.type == "uminus":
            text, magnitude, error = self.static(node.right, checks)
            return f"(-{text})", magnitude, error
        if isinstance(node, ast.AddExpression | ast.SubtractExpression | ast.ArithmeticExpression):
            a, am, ae = self.static(node.left, checks)
            b, bm, be = self.static(node.right, checks)
            if isinstance(node, ast.AddExpression | ast.SubtractExpression):
                magnitude = am + bm
                error = ae + be + ROUNDING * magnitude + SUBNORMAL
                operator = "+" if isinstance(node, ast.AddExpression) else "-"
            elif node.type == "mul":
                magnitude = am * bm
                error = am * be + bm * ae + ae * be + ROUNDING * magnitude + SUBNORMAL
                operator = "*"
            elif node.type == "tdiv" and isinstance(node.right, ast.FloatExpression) and bm > 2 * be:
                magnitude = am / bm
                error = (ae + magnitude * be * (1 + ROUNDING)) / (bm - be) + ROUNDING * magnitude + SUBNORMAL
                operator = "/"
            else:
                raise Unsupported("no static bound")
            return f"({a} {operator} {b})", magnitude, error
        raise Unsupported("no static bound")

    def dynamic(self, node: Any) -> str:
        """A call of a helper that compares two computed numbers with a per-value bound."""
        self.counter += 1
        name = f"_{self.prefix}c{self.counter}"
        lines: list[str] = []
        left_value, left_error = self.number(node.left, lines)
        right_value, right_error = self.number(node.right, lines)
        positive, negative = _SIGN[node.type]
        lines += [f"d = {left_value} - {right_value}",
                  f"m = {left_error} + {right_error} + {ROUNDING!r} * abs(d) + {TINY!r}",
                  f"if d > m: return {positive}",
                  f"if d < -m: return {negative}",
                  "raise NearCall()"]
        body = "\n".join(f"    {line}" for line in lines)
        self.source.helpers.append(f"def {name}(ns):\n{body}\n")
        return f"{name}(ns)"

    def number(self, node: Any, lines: list[str]) -> tuple[str, str]:
        """Statements computing a float and its error bound; returns their variable names (or constants)."""
        if isinstance(node, ast.FloatExpression):
            value = float(node.value)
            if not math.isfinite(value):
                raise Unsupported(f"the number {node.value} beyond the float range")
            # even a literal whose repr is exact differs from its binary float by up to half an ulp
            return repr(value), repr(ROUNDING * abs(value) + SUBNORMAL)
        self.counter += 1
        v, e = f"v{self.counter}", f"e{self.counter}"
        if isinstance(node, ast.SymbolExpression | ast.GetAttributeExpression | ast.GetItemExpression):
            lines += [f"{v} = {self.access(node)}", f"{e} = {ROUNDING!r} * abs({v}) + {SUBNORMAL!r}"]
            return v, e
        if isinstance(node, ast.UnaryExpression) and node.type == "uminus":
            inner, error = self.number(node.right, lines)
            lines.append(f"{v} = -({inner})")
            return v, error
        if isinstance(node, ast.AddExpression | ast.SubtractExpression):
            a, ae = self.number(node.left, lines)
            b, be = self.number(node.right, lines)
            operator = "+" if isinstance(node, ast.AddExpression) else "-"
            lines += [f"{v} = {a} {operator} {b}",
                      f"{e} = {ae} + {be} + {ROUNDING!r} * abs({v}) + {SUBNORMAL!r}"]
            return v, e
        if isinstance(node, ast.ArithmeticExpression) and node.type == "mul":
            a, ae = self.number(node.left, lines)
            b, be = self.number(node.right, lines)
            lines += [f"{v} = {a} * {b}",
                      f"{e} = abs({a}) * {be} + abs({b}) * {ae} + {ae} * {be} + {ROUNDING!r} * abs({v}) "
                      f"+ {SUBNORMAL!r}"]
            return v, e
        if isinstance(node, ast.ArithmeticExpression) and node.type == "tdiv":
            a, ae = self.number(node.left, lines)
            b, be = self.number(node.right, lines)
            # a divisor that may be zero in decimal is rule-engine's call (it raises its own error)
            lines += [f"if abs({b}) <= 2 * {be}: raise NearCall()",
                      f"{v} = {a} / {b}",
                      f"{e} = ({ae} + abs({v}) * {be} * {1 + ROUNDING!r}) / (abs({b}) - {be}) "
                      f"+ {ROUNDING!r} * abs({v}) + {SUBNORMAL!r}"]
            return v, e
        if isinstance(node, ast.ArithmeticExpression):
            raise Unsupported(f"the operator {node.type!r} ({_OPERATOR_NAMES.get(node.type, node.type)})")
        raise Unsupported(_describe(node))


_OPERATOR_NAMES = {"fdiv": "//", "mod": "%", "pow": "**"}


def _describe(node: Any) -> str:
    if isinstance(node, ast.FunctionCallExpression) and isinstance(node.function, ast.SymbolExpression):
        return f"the function {'$' if node.function.scope == 'built-in' else ''}{node.function.name}()"
    names = {"FunctionCallExpression": "a function call", "ComprehensionExpression": "a comprehension",
             "FuzzyComparisonExpression": "a regular expression", "GetSliceExpression": "a slice",
             "CoalesceExpression": "the ?? operator", "NullExpression": "null",
             "BitwiseExpression": "a bitwise operator", "BitwiseShiftExpression": "a bitwise shift",
             "MappingExpression": "a mapping literal", "TernaryExpression": "a conditional number"}
    return names.get(type(node).__name__, type(node).__name__)


def _canonical(value: decimal.Decimal) -> float | None:
    """The float of a literal when its shortest repr is the literal itself (so it compares the same)."""
    try:
        number = float(value)
    except (OverflowError, ValueError):
        return None
    if not math.isfinite(number) or decimal.Decimal(repr(number)) != value:
        return None
    return number


def _namespace(source: _Source) -> dict[str, Any]:
    # The generated code may call only abs; everything else it needs is passed in as a constant.
    return {"__builtins__": {"abs": abs}, "NearCall": NearCall, "Exception": Exception, **source.constants}


@dataclass(frozen=True)
class CompiledCondition:
    """One condition: compiled Python functions, or the reason it is evaluated by rule-engine.

    `run` is the compiled condition with its fallback built in (any exception, including a near
    call, re-evaluates with rule-engine); `fast` is the bare translation, which raises instead
    (for tests and benchmarks). Both are None when the condition is not compiled.
    """

    rule: rule_engine.Rule
    fast: Callable[[Mapping[str, Any]], bool] | None
    run: Callable[[Mapping[str, Any]], Any] | None
    fallback: str | None
    source: str | None

    @property
    def compiled(self) -> bool:
        """Whether the condition runs as compiled Python."""
        return self.run is not None

    def evaluate(self, thing: Mapping[str, Any]) -> Any:
        """The condition's value, exactly as ``Rule.evaluate`` gives it (errors included)."""
        if self.run is None or _REFERENCE_ONLY.get():
            return self.rule.evaluate(thing)
        return self.run(thing)


def compile_condition(rule: rule_engine.Rule, name: str = "condition") -> CompiledCondition:
    """Translate a parsed, type-checked rule into Python, or record why it stays with rule-engine."""
    source = _Source()
    try:
        expression = _Compiler(source, "").boolean(rule.statement.expression)
    except Unsupported as exc:
        return CompiledCondition(rule, None, None, str(exc), None)
    reference = source.constant(rule.evaluate)
    text = "".join(source.helpers) + (
        f"def {name}_fast(ns):\n    return {expression}\n"
        f"def {name}(ns):\n    try:\n        return {expression}\n"
        f"    except Exception:  # a near call, a missing key, a type error: rule-engine decides\n"
        f"        return {reference}(ns)\n")
    scope = _namespace(source)
    try:
        _exec_generated(text, name, scope)
    except Unsupported as exc:
        return CompiledCondition(rule, None, None, str(exc), None)
    return CompiledCondition(rule, scope[f"{name}_fast"], scope[name], None, text)


#: status codes of `PolicyProgram`: pass, warn, breach, evidence missing, ask the reference path
PASS, WARN, BREACH, MISSING, REFERENCE = range(5)


@dataclass(frozen=True)
class RuleSlot:
    """What a `PolicyProgram` needs to know about one rule: the evidence it reads and its conditions."""

    needs: Sequence[tuple[str | None, str]]  # (object or None for the bundle's own values, KPI id)
    breach: rule_engine.Rule
    warn: rule_engine.Rule | None


@dataclass(frozen=True)
class PolicyProgram:
    """All rules of one policy in one generated function: namespace in, one status code per rule out.

    A rule whose evidence is absent gets `MISSING`; one whose condition is not compiled, raised, or
    was a near call gets `REFERENCE`, and the caller evaluates it with rule-engine (which also
    produces the error or missing status with its message).
    """

    run: Callable[[Mapping[str, Any]], list[int]]
    source: str
    fallbacks: dict[int, str]


_NEED_SOURCES = {None: "ns", "baseline": "ns['baseline']", "previous": "ns['previous']", "peers": "ns['peers']",
                 "bundle.kpis": "ns['bundle']['kpis']"}


def compile_policy(slots: Sequence[RuleSlot], name: str = "policy") -> PolicyProgram:
    """One function evaluating every rule of a policy against one namespace (see `PolicyProgram`)."""
    source = _Source()
    conditions: list[tuple[str, str | None] | None] = []
    fallbacks: dict[int, str] = {}
    for index, slot in enumerate(slots):
        compiler = _Compiler(source, f"r{index}_")
        try:
            breach = compiler.boolean(slot.breach.statement.expression)
            warn = compiler.boolean(slot.warn.statement.expression) if slot.warn is not None else None
            # Each condition must also compile on its own: Python's parser has limits the tree walk does not.
            compile(f"({breach}) or ({warn})", "<check>", "eval")
        except Unsupported as exc:
            fallbacks[index] = str(exc)
            conditions.append(None)
            continue
        except (SyntaxError, RecursionError, MemoryError) as exc:
            fallbacks[index] = f"too deeply nested to compile ({type(exc).__name__}: {exc})"
            conditions.append(None)
            continue
        conditions.append((breach, warn))

    def block(check_evidence: bool) -> list[str]:
        lines = ["out = []"]
        for slot, condition in zip(slots, conditions, strict=True):
            if condition is None:
                lines.append(f"out.append({REFERENCE})")
                continue
            breach, warn = condition
            missing = " or ".join(f"{kpi!r} not in {_NEED_SOURCES[where]}" for where, kpi in slot.needs)
            lines.append("try:")
            if missing and check_evidence:
                lines += [f"    if {missing}: out.append({MISSING})", f"    elif {breach}: out.append({BREACH})"]
            else:
                lines.append(f"    if {breach}: out.append({BREACH})")
            if warn is not None:
                lines.append(f"    elif {warn}: out.append({WARN})")
            lines += [f"    else: out.append({PASS})", "except Exception:", f"    out.append({REFERENCE})"]
        return [*lines, "return out"]

    # Usually every KPI the policy reads is present: one subset test per source instead of one per rule.
    needed: dict[str | None, set[str]] = {}
    for slot in slots:
        for where, kpi in slot.needs:
            needed.setdefault(where, set()).add(kpi)
    everything = " and ".join(f"{_NEED_SOURCES[where]}.keys() >= {source.constant(frozenset(kpis))}"
                              for where, kpis in sorted(needed.items(), key=lambda item: str(item[0])))
    lines = ["try:", f"    complete = {everything}", "except Exception:", "    complete = False",
             "if complete:", *(f"    {line}" for line in block(False))] if everything else []
    lines += block(True)
    text = "".join(source.helpers) + f"def {name}(ns):\n" + "\n".join(f"    {line}" for line in lines) + "\n"
    scope = _namespace(source)
    _exec_generated(text, name, scope)
    return PolicyProgram(scope[name], text, fallbacks)
