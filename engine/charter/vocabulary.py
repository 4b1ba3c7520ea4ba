"""The enumerations the command line offers as option values, in a module that imports nothing heavy.

Typer resolves every command's annotations whenever `charter` starts, even for ``--version``, so the
enums named there live here; their home modules re-export them.
"""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    """How much a breach of the rule matters; the escalation graph routes on it."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for info up to 4 for critical."""
        return list(Severity).index(self)


class RiskTier(StrEnum):
    """Risk tiers in the sense of the EU AI Act (prohibited systems are never registered)."""

    MINIMAL = "minimal"
    LIMITED = "limited"
    HIGH = "high"


class Category(StrEnum):
    """The KPI families: the four classic categories plus generative and agentic AI."""

    TECHNICAL = "technical"
    BUSINESS = "business"
    TRUST = "trust"
    OPERATIONAL = "operational"
    GENERATIVE = "generative"
    AGENTIC = "agentic"
