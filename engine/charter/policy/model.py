"""The policy document schema: what a risk team writes in YAML.

A policy selects systems (``applies_to``) and holds rules. A rule either states a ``when``
expression in rule-engine syntax (the breach condition, with an optional ``warn_when``) or uses the
threshold shorthand (``kpi``, ``min``/``max``, ``warn``), which compiles to such expressions.
"""

from __future__ import annotations

import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from ..registry import AISystem, RiskTier, SystemKind
from ..vocabulary import Severity as Severity  # defined in vocabulary for the CLI; still importable here


class Scope(StrEnum):
    """What one evaluation of a rule looks at."""

    BUNDLE = "bundle"
    SEGMENTS = "segments"


#: the longest duration a policy or escalation file may state; longer ones are typos and overflow dates
MAX_DURATION = datetime.timedelta(days=3650)


def _parse_duration(value: Any) -> datetime.timedelta:
    if isinstance(value, datetime.timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("expected an ISO 8601 duration such as P30D or PT12H")
    try:
        from rule_engine.builtins import parse_timedelta  # importing rule-engine builds its parser

        delta: datetime.timedelta = parse_timedelta(value)
    except Exception as exc:  # rule-engine raises ValueError or its own errors on bad text
        raise ValueError(f"{value!r} is not an ISO 8601 duration with W, D, H, M or S (e.g. P30D)") from exc
    if delta <= datetime.timedelta(0):
        raise ValueError("a duration must be positive")
    if delta > MAX_DURATION:
        raise ValueError(f"a duration may be at most {format_duration(MAX_DURATION)} (ten years)")
    if delta.microseconds:
        raise ValueError("a duration is a whole number of seconds")
    return delta


def format_duration(delta: datetime.timedelta) -> str:
    """ISO 8601 text for a whole-second timedelta: ``P30D``, ``P1DT12H``, ``PT1H30M``, ``PT0S``."""
    seconds = int(delta.total_seconds())
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    time = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (secs, "S")) if n)
    text = "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "")
    return sign + (text if text != "P" else "PT0S")


Duration = Annotated[
    datetime.timedelta,
    Field(json_schema_extra={"type": "string", "format": "duration", "examples": ["P30D", "PT12H"]}),
    PlainSerializer(format_duration, return_type=str),
]
Slug = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,63}$")]
PolicyId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]{0,127}$")]
#: a control reference as written; the compiler checks it against the catalogs
ControlText = Annotated[str, Field(min_length=1, max_length=120)]


class AppliesTo(BaseModel):
    """Which systems a policy governs. Every given field must match; a list matches any of its items."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    risk_tiers: tuple[RiskTier, ...] = ()
    kinds: tuple[SystemKind, ...] = ()
    systems: tuple[str, ...] = ()
    tags: tuple[str, ...] = Field(default=(), description="Matches systems carrying any of these tags.")

    def matches(self, system: AISystem) -> bool:
        """Whether `system` is governed by a policy with this selector."""
        return ((not self.risk_tiers or system.risk_tier in self.risk_tiers)
                and (not self.kinds or system.kind in self.kinds)
                and (not self.systems or system.id in self.systems)
                and (not self.tags or bool(set(self.tags) & set(system.tags))))


class Rule(BaseModel):
    """One rule of a policy (as written; see `charter.policy.compiler` for the compiled form)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Slug
    title: str = Field(min_length=1, max_length=200)
    severity: Severity
    when: str | None = Field(default=None, max_length=2000,
                             description="Breach condition in rule-engine syntax.")
    warn_when: str | None = Field(default=None, max_length=2000,
                                  description="Warning condition, checked when `when` is false.")
    kpi: str | None = Field(default=None, description="Threshold shorthand: the KPI to bound.")
    min: float | None = Field(default=None, allow_inf_nan=False, description="Breach when the KPI is below.")
    max: float | None = Field(default=None, allow_inf_nan=False, description="Breach when the KPI is above.")
    warn: float | None = Field(default=None, allow_inf_nan=False,
                               description="Warn band edge for a one-sided threshold.")
    warn_min: float | None = Field(default=None, allow_inf_nan=False)
    warn_max: float | None = Field(default=None, allow_inf_nan=False)
    scope: Scope = Scope.BUNDLE
    dimension: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,31}$",
                                  description="With scope: segments, only segments of this dimension.")
    sustained: int = Field(default=1, ge=1, le=100,
                           description="Breach only after this many consecutive failing bundles.")
    max_age: Duration | None = Field(default=None, description="Evidence older than this is stale.")
    controls: tuple[ControlText, ...] = Field(
        default=(), description="Primary mappings: the controls this rule's KPI is operating evidence for.")
    supporting_controls: tuple[ControlText, ...] = Field(
        default=(), description="Supporting mappings: controls the rule gives context on; they never make a "
        "control operating.")
    remediation: str | None = Field(default=None, max_length=4000)

    @field_validator("max_age", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else _parse_duration(value)

    @model_validator(mode="after")
    def _check_form(self) -> Rule:
        threshold = self.kpi is not None
        bounds = [b for b in (self.min, self.max, self.warn, self.warn_min, self.warn_max) if b is not None]
        if threshold == (self.when is not None):
            raise ValueError("a rule needs exactly one of 'when' (an expression) or 'kpi' (a threshold)")
        if not threshold:
            if bounds:
                raise ValueError("min, max and warn bounds belong to threshold rules (with 'kpi')")
            return self
        if self.warn_when is not None:
            raise ValueError("warn_when belongs to expression rules; threshold rules use 'warn'")
        if self.min is None and self.max is None:
            raise ValueError("a threshold rule needs 'min' or 'max'")
        if self.warn is not None:
            if self.min is not None and self.max is not None:
                raise ValueError("with both min and max, give warn_min and/or warn_max instead of warn")
            if self.min is not None and self.warn < self.min:
                raise ValueError(f"warn {self.warn} must not be below min {self.min}: the warn band comes first")
            if self.max is not None and self.warn > self.max:
                raise ValueError(f"warn {self.warn} must not be above max {self.max}: the warn band comes first")
        if self.warn_min is not None and (self.min is None or self.warn_min < self.min):
            raise ValueError("warn_min needs a min and must not be below it")
        if self.warn_max is not None and (self.max is None or self.warn_max > self.max):
            raise ValueError("warn_max needs a max and must not be above it")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self

    @model_validator(mode="after")
    def _check_scope(self) -> Rule:
        if self.dimension is not None and self.scope is not Scope.SEGMENTS:
            raise ValueError("'dimension' needs scope: segments")
        return self

    @model_serializer(mode="wrap")
    def _omit_empty_supporting(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A rule without supporting mappings serializes as before the field existed, so the digests of
        # policy versions already recorded in ledgers still match what the compiler computes.
        data: dict[str, Any] = handler(self)
        if not self.supporting_controls:
            data.pop("supporting_controls", None)
        return data


class Policy(BaseModel):
    """A policy document."""

    model_config = ConfigDict(frozen=True, extra="forbid",
                              json_schema_extra={"title": "Charter policy"})

    kind: Literal["policy"] = "policy"
    id: PolicyId
    version: str = Field(pattern=r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$", description="Semantic version.")
    title: str = Field(min_length=1, max_length=200)
    owner: str = Field(min_length=1, max_length=200, description="Team accountable for the policy.")
    description: str | None = None
    applies_to: AppliesTo = AppliesTo()
    max_age: Duration | None = Field(default=None, description="Default evidence freshness for all rules.")
    rules: tuple[Rule, ...] = Field(min_length=1)

    @field_validator("max_age", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else _parse_duration(value)
