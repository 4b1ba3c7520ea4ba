"""The registry of AI systems: who owns each system, how risky it is, and what it is.

Policies select systems by these attributes (``applies_to``), and the escalation graph routes by
owner and risk tier. Until the ledger holds the registry, it is read from a ``systems.yaml`` file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._sources import load_yaml_file
from .bundle import Identifier, KpiValue
from .errors import CharterError, DiagnosticCollector
from .kpis import KpiCatalog
from .validation import collect_validation_errors
from .vocabulary import RiskTier as RiskTier  # defined in vocabulary for the CLI; still importable here


class SystemKind(StrEnum):
    """What kind of AI the system is; policy packs select on it."""

    CLASSIFIER = "classifier"
    REGRESSOR = "regressor"
    RANKER = "ranker"
    FORECASTER = "forecaster"
    GENERATIVE = "generative"
    AGENT = "agent"


class SystemStatus(StrEnum):
    """Lifecycle status of a system."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    RETIRED = "retired"


class AISystem(BaseModel):
    """One registered AI system."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Identifier
    name: str = Field(min_length=1, max_length=200)
    owner: str = Field(min_length=1, max_length=200, description="Principal accountable as model owner.")
    risk_tier: RiskTier
    kind: SystemKind
    region: str = Field(default="global", min_length=1, max_length=64)
    status: SystemStatus = SystemStatus.ACTIVE
    tags: tuple[str, ...] = ()
    baseline: dict[str, KpiValue] = Field(
        default_factory=dict, description="KPI values accepted at validation, the reference for degradation.")

    def rule_view(self) -> dict[str, Any]:
        """The JSON-like data rules see as ``system`` (never the live object)."""
        return {"id": self.id, "name": self.name, "owner": self.owner, "risk_tier": self.risk_tier.value,
                "kind": self.kind.value, "region": self.region, "status": self.status.value,
                "tags": list(self.tags)}


class SystemRegistry(Mapping[str, AISystem]):
    """Registered systems keyed by id."""

    def __init__(self, systems: Mapping[str, AISystem]) -> None:
        self._systems = dict(systems)

    def __getitem__(self, key: str) -> AISystem:
        return self._systems[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._systems)

    def __len__(self) -> int:
        return len(self._systems)

    def require(self, system_id: str, *, file: str | None = None) -> AISystem:
        """The system `system_id`, or a `CharterError` naming the registered ones."""
        try:
            return self._systems[system_id]
        except KeyError:
            known = ", ".join(sorted(self._systems)) or "none"
            raise CharterError.single("unknown_system", f"system {system_id!r} is not registered "
                                      f"(registered: {known})", file=file, path="$.system_id") from None

    @classmethod
    def from_file(cls, path: Path, catalog: KpiCatalog) -> SystemRegistry:
        """Load ``systems: [...]`` from a YAML file.

        Raises:
            CharterError: schema problems, unknown baseline KPIs and duplicate ids, with lines.
        """
        data, smap = load_yaml_file(path)
        if not isinstance(data, dict) or not isinstance(data.get("systems"), list):
            raise CharterError.single("registry_schema", "expected a mapping with a list under 'systems'",
                                      file=str(path), line=1)
        problems = DiagnosticCollector()
        systems: dict[str, AISystem] = {}
        for index, raw in enumerate(data["systems"]):
            try:
                system = AISystem.model_validate(raw)
            except ValidationError as exc:
                problems.extend(collect_validation_errors(exc, smap, ("systems", index), code="registry_schema"))
                continue
            if system.id in systems:
                problems.add("duplicate_system", f"system {system.id!r} is registered twice",
                             smap.location(("systems", index, "id")))
            for kpi_id, value in system.baseline.items():
                where = smap.location(("systems", index, "baseline", kpi_id))
                if kpi_id not in catalog:
                    problems.add("unknown_kpi", catalog.unknown_message(kpi_id) + " in baseline", where)
                elif reason := catalog[kpi_id].check_value(value):
                    problems.add("kpi_out_of_range", reason, where)
            systems[system.id] = system
        problems.raise_if_any()
        return cls(systems)
