"""The registry of AI systems: who owns each system, how risky it is, and what it is.

Policies select systems by these attributes (``applies_to``), and the escalation graph routes by
owner and risk tier. Until the ledger holds the registry, it is read from a ``systems.yaml`` file.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

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


# -- EU AI Act classification ---------------------------------------------------------------------


class EURole(StrEnum):
    """An operator role of the EU AI Act (Art 3(3)-(8)) the organisation holds for a system."""

    PROVIDER = "provider"
    DEPLOYER = "deployer"
    IMPORTER = "importer"
    DISTRIBUTOR = "distributor"
    AUTHORISED_REPRESENTATIVE = "authorised_representative"
    PRODUCT_MANUFACTURER = "product_manufacturer"


class TransparencyDuty(StrEnum):
    """An Art 50 transparency duty a system falls under."""

    INTERACTS_WITH_PEOPLE = "interacts_with_people"
    SYNTHETIC_CONTENT = "synthetic_content"
    EMOTION_RECOGNITION_OR_BIOMETRIC_CATEGORISATION = "emotion_recognition_or_biometric_categorisation"
    DEEP_FAKE = "deep_fake"

    @property
    def paragraph(self) -> str:
        """The paragraph of Art 50 that sets the duty."""
        return _DUTY_PARAGRAPH[self]

    @property
    def bound_role(self) -> EURole:
        """Who the paragraph binds: 50(1) and (2) the provider, 50(3) and (4) the deployer."""
        return EURole.PROVIDER if self.paragraph in ("50(1)", "50(2)") else EURole.DEPLOYER


_DUTY_PARAGRAPH = {TransparencyDuty.INTERACTS_WITH_PEOPLE: "50(1)", TransparencyDuty.SYNTHETIC_CONTENT: "50(2)",
                   TransparencyDuty.EMOTION_RECOGNITION_OR_BIOMETRIC_CATEGORISATION: "50(3)",
                   TransparencyDuty.DEEP_FAKE: "50(4)"}

_Text = Field(min_length=1, max_length=4000)


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProhibitedScreening(_Strict):
    """The screening of the system against the prohibited practices of Art 5."""

    outcome: Literal["clear", "prohibited"]
    reasoning: str = _Text
    screened_on: datetime.date


class AnnexIProduct(_Strict):
    """Art 6(1): the system is, or is a safety component of, a product under Annex I legislation."""

    legislation: str = Field(min_length=1, max_length=400, description="The Union harmonisation act of Annex I.")
    safety_component: bool = Field(description="True: a safety component of the product; false: the product itself.")


class AnnexIIIUse(_Strict):
    """Art 6(2): the use case of Annex III the system falls under (area 1-8, point a letter)."""

    area: int = Field(ge=1, le=8)
    point: str = Field(pattern=r"^[a-z]$")
    reasoning: str = _Text


class Exemption63(_Strict):
    """Art 6(3): an Annex III system the provider considers not high-risk, with its documented ground (6(4))."""

    ground: Literal["a", "b", "c", "d"]
    reasoning: str = _Text
    registered_art_49_2: bool = Field(description="Registered in the EU database as Art 49(2) requires.")

    @field_validator("reasoning")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the Art 6(3) exemption needs its reasoning (Art 6(4)), not blank text")
        return value


class GeneralPurposeModel(_Strict):
    """Whether the organisation provides the general-purpose model of the system, and if it has systemic risk."""

    provider: bool
    systemic_risk: bool


class EUClassification(_Strict):
    """The system's classification under the EU AI Act, separate from the organisation's own `risk_tier`.

    High-risk by Art 6(1) (`annex_i`) or Art 6(2) (`annex_iii`, unless exempt under Art 6(3)).
    """

    roles: tuple[EURole, ...] = Field(min_length=1)
    prohibited_screening: ProhibitedScreening
    annex_i: AnnexIProduct | None = None
    annex_iii: AnnexIIIUse | None = None
    exemption_6_3: Exemption63 | None = None
    profiles_natural_persons: bool = Field(description="Profiles natural persons (GDPR Art 4(4)): no Art 6(3) "
                                           "exemption then.")
    transparency: tuple[TransparencyDuty, ...] = ()
    general_purpose_model: GeneralPurposeModel | None = None
    public_body_deployer: bool = Field(description="Deployed by a body governed by public law or a private "
                                       "entity providing public services (Art 27(1)).")
    placed_on_market: datetime.date | None = Field(
        default=None, description="When the system was first placed on the market or put into service in the "
        "Union (Art 3(9), 3(11)); the transitional rules of Art 111 turn on it. Left out: no transitional rule "
        "is applied, and the reason says so where one could be.")
    reasoning: str = _Text

    @field_validator("roles", "transparency")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("lists an entry twice")
        return value

    @model_serializer(mode="wrap")
    def _serialize(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        # A classification without a market date is recorded as before the field existed: its digest stays.
        data: dict[str, Any] = handler(self)
        if data.get("placed_on_market", 0) is None:
            del data["placed_on_market"]
        return data

    @model_validator(mode="after")
    def _exemption(self) -> EUClassification:
        if self.exemption_6_3 is not None:
            if self.annex_iii is None:
                raise ValueError("an Art 6(3) exemption applies only to an Annex III system (annex_iii is null)")
            if self.profiles_natural_persons:
                raise ValueError("an Annex III system that profiles natural persons is always high-risk "
                                 "(Art 6(3) last subparagraph): no exemption")
        return self

    @property
    def high_risk(self) -> bool:
        """High-risk under Art 6(1) or 6(2) (an Annex III system exempt under Art 6(3) is not)."""
        return self.route is not None

    @property
    def route(self) -> Literal["annex_i", "annex_iii"] | None:
        """The route that makes the system high-risk. A system on both routes takes Annex III: its obligations
        apply from the earlier date."""
        if self.annex_iii is not None and self.exemption_6_3 is None:
            return "annex_iii"
        if self.annex_i is not None:
            return "annex_i"
        return None


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
    eu_ai_act: EUClassification | None = Field(
        default=None, description="Classification under the EU AI Act; none recorded means applicability is "
        "undetermined (never assumed).")

    @model_serializer(mode="wrap")
    def _serialize(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        # An unclassified system is recorded as before classification existed: its registration digest stays.
        data: dict[str, Any] = handler(self)
        if data.get("eu_ai_act", 0) is None:
            del data["eu_ai_act"]
        return data

    def rule_view(self) -> dict[str, Any]:
        """The JSON-like data rules see as ``system`` (never the live object)."""
        return {"id": self.id, "name": self.name, "owner": self.owner, "risk_tier": self.risk_tier.value,
                "kind": self.kind.value, "region": self.region, "status": self.status.value,
                "tags": list(self.tags)}


def baseline_problems(system: AISystem, catalog: KpiCatalog) -> list[tuple[str, str, str]]:
    """(KPI id, code, message) for each baseline value of `system` that `catalog` does not accept.

    The one check of a baseline: a registry file is read with it, and `charter.submission.register_system`
    applies it again with the KPI catalog in force in the ledger.
    """
    problems = []
    for kpi_id, value in system.baseline.items():
        if kpi_id not in catalog:
            problems.append((kpi_id, "unknown_kpi", catalog.unknown_message(kpi_id) + " in baseline"))
        elif reason := catalog[kpi_id].check_value(value):
            problems.append((kpi_id, "kpi_out_of_range", reason))
    return problems


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
    def from_file(cls, path: Path, catalog: KpiCatalog | None) -> SystemRegistry:
        """Load ``systems: [...]`` from a YAML file, checking baselines against `catalog` (None: a file signed
        here and handed to a server, whose ledger's catalog judges them when it records the registration).

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
            for kpi_id, code, message in baseline_problems(system, catalog) if catalog is not None else ():
                problems.add(code, message, smap.location(("systems", index, "baseline", kpi_id)))
            systems[system.id] = system
        problems.raise_if_any()
        return cls(systems)
