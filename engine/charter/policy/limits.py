"""Bounded evaluation cost: what a rule may not do, because evidence would control how long it runs.

Evidence is written by the people a policy judges. A rule whose running time depends on evidence
values can be turned into a denial of service by one bundle: ``bias_incidents << policy_violations``
builds an integer with as many bits as a count says, ``$range(n)`` an array of n items, and a
backtracking regular expression such as ``(a+)+$`` takes exponential time on a crafted
``model_version``. Lint refuses the first two, and regular expressions must be literals that RE2
accepts; they are then matched by RE2 (linear in the input), never by Python's backtracking ``re``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import re2
from rule_engine import ast

from .expressions import walk

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # errors become lint diagnostics, not lines on stderr


def linear_regex(pattern: str) -> Any:
    """`pattern` compiled by RE2, whose matching time is linear in the input.

    Raises:
        ValueError: the pattern needs backtracking (backreferences, lookaround) or is invalid.
    """
    try:
        return re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(detail) from None


def bounded_cost_problems(statement: Any) -> Iterator[tuple[str, str]]:
    """(code, message) for every construct of a parsed rule whose cost evidence could make unbounded.

    Regular expressions that pass are switched to RE2 in place, so evaluation is linear too.
    """
    for node in walk(statement):
        if isinstance(node, ast.BitwiseShiftExpression):
            yield ("unbounded_operation", f"the shift {'<<' if node.type == 'bwlsh' else '>>'} is not allowed: "
                   "it builds numbers as large as an evidence value says")
        elif isinstance(node, ast.FuzzyComparisonExpression):
            if not isinstance(node.right, ast.StringExpression):
                yield ("regex_pattern", "a regular expression must be a string literal, not computed from evidence")
                continue
            pattern = node.right.value
            try:
                # rule-engine compiled it with Python's re at parse time; match with RE2 instead.
                node._right = linear_regex(pattern)
            except ValueError as exc:
                yield ("regex_pattern", f"the regular expression {pattern!r} cannot be matched in linear time "
                       f"(RE2: {exc}); rewrite it without backreferences or lookaround")
