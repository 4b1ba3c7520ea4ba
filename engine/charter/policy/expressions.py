"""Reading rule-engine syntax trees: walking, printing, and finding what a rule depends on.

rule-engine keeps no source positions and has no printer, so explanations and lint messages print
sub-expressions from the tree with `unparse`, and `evidence_refs` lists the KPI values a rule needs
so that absent evidence becomes a ``missing`` finding instead of an evaluation error.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rule_engine import ast

from .model import format_duration

_BINARY = {
    "and": "and", "or": "or", "eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=",
    "add": "+", "sub": "-", "mul": "*", "tdiv": "/", "fdiv": "//", "mod": "%", "pow": "**",
    "eq_fzm": "=~", "eq_fzs": "=~~", "ne_fzm": "!~", "ne_fzs": "!~~",
    "bwand": "&", "bwor": "|", "bwxor": "^", "bwlsh": "<<", "bwrsh": ">>",
}
#: Binding strength for printing; higher binds tighter.
_PRECEDENCE = {"or": 1, "and": 2, "not": 3, "eq": 4, "ne": 4, "lt": 5, "le": 5, "gt": 5, "ge": 5,
               "eq_fzm": 4, "eq_fzs": 4, "ne_fzm": 4, "ne_fzs": 4, "bwor": 6, "bwxor": 6, "bwand": 6,
               "bwlsh": 7, "bwrsh": 7, "add": 8, "sub": 8, "mul": 9, "tdiv": 9, "fdiv": 9, "mod": 9,
               "uminus": 10, "pow": 11}
_COMPARISONS = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "eq_fzm", "eq_fzs", "ne_fzm", "ne_fzs"})
#: Reserved objects whose attributes are KPI values that must be present.
KPI_OBJECTS = frozenset({"baseline", "previous", "peers"})


def children(node: Any) -> Iterator[Any]:
    """The direct sub-expressions of a node."""
    if isinstance(node, ast.Statement):
        yield node.expression
    elif isinstance(node, ast.BinaryExpressionBase | ast.CoalesceExpression):
        yield node.left
        yield node.right
    elif isinstance(node, ast.UnaryExpression):
        yield node.right
    elif isinstance(node, ast.GetAttributeExpression):
        yield node.object
    elif isinstance(node, ast.GetItemExpression):
        yield node.container
        yield node.item
    elif isinstance(node, ast.GetSliceExpression):
        yield from (node.container, node.start, node.stop)
    elif isinstance(node, ast.ContainsExpression):
        yield node.member
        yield node.container
    elif isinstance(node, ast.TernaryExpression):
        yield from (node.condition, node.case_true, node.case_false)
    elif isinstance(node, ast.FunctionCallExpression):
        yield node.function
        yield from node.arguments
    elif isinstance(node, ast.ComprehensionExpression):
        yield node.result
        yield node.iterable
        if node.condition is not None:
            yield node.condition
    elif isinstance(node, ast.ArrayExpression | ast.SetExpression):
        yield from _literal_members(node.value)
    elif isinstance(node, ast.MappingExpression):
        for key, value in _literal_pairs(node.value):
            yield key
            yield value


def walk(root: Any) -> Iterator[Any]:
    """Every node of the tree, parents before children, left to right; no recursion (trees may be deep)."""
    pending = [root]
    while pending:
        node = pending.pop()
        yield node
        pending.extend(reversed(list(children(node))))


def _literal_members(value: Any) -> Iterator[Any]:
    for member in value if isinstance(value, tuple | list | frozenset | set) else ():
        if isinstance(member, ast.ExpressionBase):
            yield member


def _literal_pairs(value: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(value, tuple | list):
        for pair in value:
            if isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(p, ast.ExpressionBase) for p in pair):
                yield pair


def format_value(value: Any, *, exact: bool = True) -> str:
    """A value as rule text would write it.

    Args:
        value: the value.
        exact: print numbers exactly (for conditions and thresholds); otherwise to 12 significant
            digits, which hides binary noise such as 0.7200000000000001 in observed values.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, decimal.Decimal | float | int):
        number = float(value)
        if number.is_integer() and abs(number) < 1e15:
            return str(int(number))
        return repr(number) if exact else f"{number:.12g}"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, datetime.datetime):
        return f'd"{value.isoformat()}"'
    if isinstance(value, datetime.timedelta):
        return f't"{format_duration(value)}"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(format_value(v, exact=exact) for v in value) + "]"
    if isinstance(value, set | frozenset):
        return "{" + ", ".join(sorted(format_value(v, exact=exact) for v in value)) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(sorted(f"{format_value(k, exact=exact)}: {format_value(v, exact=exact)}"
                                      for k, v in value.items())) + "}"
    return repr(value)


def _precedence(node: Any) -> int:
    if isinstance(node, ast.BinaryExpressionBase | ast.UnaryExpression):
        return _PRECEDENCE.get(node.type, 12)
    if isinstance(node, ast.TernaryExpression | ast.CoalesceExpression):
        return 0
    return 13


def unparse(node: Any) -> str:
    """Rule text for a (sub-)expression; equivalent to, not identical with, what was written."""
    if isinstance(node, ast.Statement):
        return unparse(node.expression)
    if isinstance(node, ast.SymbolExpression):
        return ("$" if node.scope == "built-in" else "") + str(node.name)
    if isinstance(node, ast.BinaryExpressionBase):
        mine = _precedence(node)
        left = _wrap(node.left, mine, right_side=False)
        right = _wrap(node.right, mine, right_side=True)
        return f"{left} {_BINARY.get(node.type, node.type)} {right}"
    if isinstance(node, ast.UnaryExpression):
        inner = _wrap(node.right, _precedence(node), right_side=True)
        return f"not {inner}" if node.type == "not" else f"-{inner}"
    if isinstance(node, ast.GetAttributeExpression):
        return f"{_wrap(node.object, 13, False)}{'&.' if node.safe else '.'}{node.name}"
    if isinstance(node, ast.GetItemExpression):
        return f"{_wrap(node.container, 13, False)}{'&[' if node.safe else '['}{unparse(node.item)}]"
    if isinstance(node, ast.GetSliceExpression):
        return f"{_wrap(node.container, 13, False)}[{unparse(node.start)}:{unparse(node.stop)}]"
    if isinstance(node, ast.ContainsExpression):
        return f"{_wrap(node.member, 5, False)} in {_wrap(node.container, 5, True)}"
    if isinstance(node, ast.CoalesceExpression):
        return f"{_wrap(node.left, 1, False)} ?? {_wrap(node.right, 1, True)}"
    if isinstance(node, ast.TernaryExpression):
        return f"{_wrap(node.condition, 1, False)} ? {unparse(node.case_true)} : {unparse(node.case_false)}"
    if isinstance(node, ast.FunctionCallExpression):
        return f"{unparse(node.function)}({', '.join(unparse(a) for a in node.arguments)})"
    if isinstance(node, ast.ComprehensionExpression):
        text = f"[{unparse(node.result)} for {node.variable} in {unparse(node.iterable)}"
        return text + (f" if {unparse(node.condition)}]" if node.condition is not None else "]")
    if isinstance(node, ast.ArrayExpression):
        members = list(_literal_members(node.value))
        if members:
            return "[" + ", ".join(unparse(m) for m in members) + "]"
    if isinstance(node, ast.SetExpression):
        members = list(_literal_members(node.value))
        if members:  # sets have no order: print them sorted so the text is the same in every process
            return "{" + ", ".join(sorted(unparse(m) for m in members)) + "}"
    if isinstance(node, ast.MappingExpression):
        pairs = list(_literal_pairs(node.value))
        if pairs:
            return "{" + ", ".join(sorted(f"{unparse(k)}: {unparse(v)}" for k, v in pairs)) + "}"
    if isinstance(node, ast.LiteralExpressionBase):
        return format_value(node.value)
    return f"<{type(node).__name__}>"


def _wrap(node: Any, outer: int, right_side: bool) -> str:
    text = unparse(node)
    inner = _precedence(node)
    if inner < outer or (inner == outer and right_side):
        return f"({text})"
    return text


def is_comparison(node: Any) -> bool:
    """Whether the node compares two values (the usual leaf of a breach condition)."""
    return isinstance(node, ast.BinaryExpressionBase) and node.type in _COMPARISONS


def is_logic(node: Any, kind: str) -> bool:
    """Whether the node is an ``and`` or ``or`` (per `kind`)."""
    return isinstance(node, ast.LogicExpression) and node.type == kind


def is_not(node: Any) -> bool:
    """Whether the node is a ``not``."""
    return isinstance(node, ast.UnaryExpression) and node.type == "not"


def system_gates(node: Any) -> list[Any]:
    """The sub-conditions of a condition that read the system and nothing measured, and so gate it.

    Looks through the condition's logic (``and``, ``or``, ``not``, and a ternary's test) for operands
    whose only names are ``system`` and built-ins: in ``system.risk_tier == "high" and override < 0.005``
    or ``system.risk_tier != "high" or ...`` the outcome for some systems is fixed by the system alone,
    whatever the evidence says. Left to right, as written.
    """
    gates: list[Any] = []
    pending = [node.expression if isinstance(node, ast.Statement) else node]
    while pending:
        current = pending.pop()
        if isinstance(current, ast.LogicExpression):
            pending.extend((current.right, current.left))
        elif is_not(current):
            pending.append(current.right)
        elif isinstance(current, ast.TernaryExpression):
            pending.extend((current.case_false, current.case_true, current.condition))
        else:
            names = {name for scope, name in symbols_used(current) if scope != "built-in"}
            if names == {"system"}:
                gates.append(current)
    return gates


@dataclass(frozen=True, order=True)
class EvidenceRef:
    """A KPI value a rule reads: ``recall`` (where = None), ``baseline.recall``, ``bundle.kpis.recall``."""

    where: str | None
    kpi: str

    def __str__(self) -> str:
        return f"{self.where}.{self.kpi}" if self.where else self.kpi


def evidence_refs(node: Any, kpi_ids: frozenset[str] | set[str]) -> set[EvidenceRef]:
    """The KPI values the expression reads, found statically."""
    refs: set[EvidenceRef] = set()
    bound = {n.variable for n in walk(node) if isinstance(n, ast.ComprehensionExpression)}
    for n in walk(node):
        if isinstance(n, ast.SymbolExpression) and n.scope is None and n.name in kpi_ids and n.name not in bound:
            refs.add(EvidenceRef(None, n.name))
        elif isinstance(n, ast.GetAttributeExpression) and n.name in kpi_ids:
            owner = n.object
            if isinstance(owner, ast.SymbolExpression) and owner.name in KPI_OBJECTS:
                refs.add(EvidenceRef(owner.name, n.name))
            elif (isinstance(owner, ast.GetAttributeExpression) and owner.name == "kpis"
                  and isinstance(owner.object, ast.SymbolExpression) and owner.object.name == "bundle"):
                refs.add(EvidenceRef("bundle.kpis", n.name))
    return refs


def symbols_used(node: Any) -> set[tuple[str | None, str]]:
    """(scope, name) of every symbol in the tree; scope is ``built-in`` for ``$`` names."""
    return {(n.scope, n.name) for n in walk(node) if isinstance(n, ast.SymbolExpression)}
