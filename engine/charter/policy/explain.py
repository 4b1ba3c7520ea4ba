"""Explanations: which part of a condition held, and the values it saw.

The explainer re-evaluates sub-expressions of a rule that already evaluated true, descending into
``and`` (both sides matter) and ``or`` (the first side that held), and prints each deciding
comparison with the operands it read: ``recall < 0.85 (recall = 0.52)``.
"""

from __future__ import annotations

from typing import Any

from rule_engine import ast

from .expressions import children, format_value, is_logic, is_not, unparse


def operands(node: Any) -> list[Any]:
    """The maximal value-reading sub-expressions (symbols, attribute and item reads) of `node`."""
    found: list[Any] = []

    def visit(n: Any) -> None:
        if isinstance(n, ast.SymbolExpression | ast.GetAttributeExpression | ast.GetItemExpression):
            found.append(n)
            return
        if isinstance(n, ast.ComprehensionExpression):
            visit(n.iterable)  # the loop variable has no value outside the comprehension
            return
        if isinstance(n, ast.FunctionCallExpression):
            for argument in n.arguments:
                visit(argument)
            return
        for child in children(n):
            visit(child)

    visit(node)
    unique: dict[str, Any] = {}
    for n in found:
        unique.setdefault(unparse(n), n)
    return list(unique.values())


#: Per parsed node, by identity: its rule text and its operands with theirs. A compiled rule's parse
#: tree never changes, so these are the same every time; the node is held, so its id is not reused.
_TEXTS: dict[int, tuple[Any, str, list[tuple[str, Any]]]] = {}
_TEXTS_KEEP = 4096


def _texts(node: Any) -> tuple[str, list[tuple[str, Any]]]:
    found = _TEXTS.get(id(node))
    if found is None or found[0] is not node:
        if len(_TEXTS) >= _TEXTS_KEEP:
            _TEXTS.clear()
        found = _TEXTS[id(node)] = (node, unparse(node), [(unparse(n), n) for n in operands(node)])
    return found[1], found[2]


_UNREADABLE = object()


#: A memo's key: the operand's rule-engine context (held, so compared by identity) and its rule text.
MemoKey = tuple[Any, str]


def observed_values(node: Any, thing: Any, memo: dict[MemoKey, Any] | None = None) -> dict[str, Any]:
    """Each operand of `node` printed as rule text, mapped to its value in `thing`.

    Args:
        memo: values already read from the same `thing` at the same evaluation time, by operand
            context and text, and filled in here: the explanations and observed values of every
            rule judged on one namespace read many of the same operands, and an operand (a read of
            a symbol, attribute or item) of one context gives the same value each time. The
            context is part of the key since it types the read (a policy compiled with another
            catalog may type the same text otherwise); the time, since ``$now`` reads it.
    """
    values: dict[str, Any] = {}
    for text, operand in _texts(node)[1]:
        key = (operand.context, text)
        value = memo.get(key, _UNREADABLE) if memo is not None else _UNREADABLE
        if value is _UNREADABLE and (memo is None or key not in memo):
            try:
                value = operand.evaluate(thing)
            except Exception:  # an operand that cannot be read is simply not shown
                value = _UNREADABLE
            if memo is not None:
                memo[key] = value
        if value is not _UNREADABLE:
            values[text] = value
    return values


def _with_values(node: Any, thing: Any, memo: dict[MemoKey, Any] | None = None) -> str:
    text = _texts(node)[0]
    shown = [f"{name} = {format_value(value, exact=False)}"
             for name, value in observed_values(node, thing, memo).items()
             if not isinstance(value, dict | tuple | list)]
    return f"{text} ({', '.join(shown)})" if shown else text


def explain_true(node: Any, thing: Any, memo: dict[MemoKey, Any] | None = None) -> str:
    """Why `node` evaluated true on `thing`: the deciding sub-expressions with their values.

    `memo` as for `observed_values`.
    """
    if isinstance(node, ast.Statement):
        return explain_true(node.expression, thing, memo)
    if is_logic(node, "and"):
        return f"{explain_true(node.left, thing, memo)} and {explain_true(node.right, thing, memo)}"
    if is_logic(node, "or"):
        for side in (node.left, node.right):
            try:
                if side.evaluate(thing):
                    return explain_true(side, thing, memo)
            except Exception:
                continue
    if is_not(node):
        return f"not ({_with_values(node.right, thing, memo)})"
    return _with_values(node, thing, memo)


def explain_false(node: Any, thing: Any, memo: dict[MemoKey, Any] | None = None) -> str:
    """Why `node` evaluated false: the condition with the values it saw (`memo` as for `observed_values`)."""
    if isinstance(node, ast.Statement):
        return explain_false(node.expression, thing, memo)
    return f"{_with_values(node, thing, memo)} is false"
