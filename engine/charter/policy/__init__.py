"""Policies: the schema risk teams write, the staged compiler, and the policy test runner."""

from .compiler import CompiledPolicy, CompiledRule, PolicyCompiler, PolicySet, policy_files
from .model import AppliesTo, Policy, Rule, Scope, Severity

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
