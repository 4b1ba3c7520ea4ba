"""Policies: the schema risk teams write, the staged compiler, and the policy test runner.

The names below load on first use: ``charter.policy.model`` is needed by modules that never compile
an expression, and importing the compiler imports rule-engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .compiler import CompiledPolicy, CompiledRule, PolicyCompiler, PolicySet, policy_files
    from .model import AppliesTo, Policy, Rule, Scope, Severity

_HOMES = {"CompiledPolicy": "compiler", "CompiledRule": "compiler", "PolicyCompiler": "compiler",
          "PolicySet": "compiler", "policy_files": "compiler", "AppliesTo": "model", "Policy": "model",
          "Rule": "model", "Scope": "model", "Severity": "model"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)


__all__ = [
    "AppliesTo",
    "CompiledPolicy",
    "CompiledRule",
    "Policy",
    "PolicyCompiler",
    "PolicySet",
    "Rule",
    "Scope",
    "Severity",
    "policy_files",
]
