"""The mapping file: which column of a prediction log, evaluation log or agent trace holds what.

A mapping is authored once per system (YAML, validated against the JSON Schema that
``charter schema mapping`` prints) and recorded by digest in every bundle computed with it, so a
reader can tell which column was taken for the label and which threshold made a prediction.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .._sources import SourceMap, parse_yaml, read_text
from ..errors import CharterError
from ..validation import collect_validation_errors

#: A mapping file is a short YAML document; anything larger is not one.
MAX_MAPPING_BYTES = 1 << 20

#: A column: its name, or a path into a nested column (``[attributes, gen_ai.tool.name]`` for an
#: OpenTelemetry span whose attribute names contain dots).
Column = Annotated[str, Field(min_length=1, max_length=256)] | Annotated[
    list[Annotated[str, Field(min_length=1, max_length=256)]], Field(min_length=1, max_length=8)]
Dimension = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Cost(_Strict):
    """The cost column, and whether a row is a prediction (``cost_per_prediction``) or a request
    (``cost_per_request``)."""

    column: Column
    per: Literal["prediction", "request"] = "prediction"


class UnitCosts(_Strict):
    """What one error costs, in the organisation's reporting currency: turns error counts into money."""

    false_positive: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    false_negative: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class Evaluation(_Strict):
    """Columns of a generative system's evaluation labels (one row per answer, true when flagged)."""

    hallucinated: Column | None = None
    factually_correct: Column | None = None
    toxic: Column | None = None
    jailbroken: Column | None = None
    adversarial: Column | None = Field(default=None, description="Rows of the red-team suite: the denominator of "
                                       "jailbreak_success_rate.")
    policy_violation: Column | None = None


class Agent(_Strict):
    """Columns of an agent's action log or of OpenTelemetry GenAI spans exported as JSONL."""

    outcome: Column | None = Field(default=None, description="allowed, blocked, unauthorized or escalated.")
    task: Column | None = Field(default=None, description="The task (workflow) an action belongs to.")
    task_success: Column | None = None
    stop_requested_at: Column | None = Field(default=None, description="Stop drills: when the stop was ordered.")
    stopped_at: Column | None = Field(default=None, description="Stop drills: when the last action ceased.")
    outcome_values: dict[Literal["allowed", "blocked", "unauthorized", "escalated"], str] = Field(
        default_factory=dict, description="The log's own word for an outcome where it differs (blocked: denied).")

    def value_of(self, outcome: str) -> str:
        """The value the log uses for `outcome`."""
        return self.outcome_values.get(outcome, outcome)  # type: ignore[call-overload,no-any-return]


class Drift(_Strict):
    """Drift against a reference window: the numeric features to compare, and the score."""

    features: list[Column] = Field(default_factory=list, max_length=200)
    score: bool = True
    bins: int = Field(default=10, ge=2, le=100)


class Labels(_Strict):
    """When a window counts as measured although labels arrive late."""

    min_coverage: float = Field(default=0.9, gt=0, le=1, allow_inf_nan=False, description=(
        "Share of the window's rows that must carry a label before label-based KPIs are computed."))


class IngestMapping(_Strict):
    """Which column holds what; every key but ``timestamp`` is optional."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra={"title": "Charter ingest mapping"})

    timestamp: Column = Field(description="The event time that places a row in a window [start, end).")
    id: Column | None = Field(default=None, description="Prediction, request or action id.")
    label: Column | None = Field(default=None, description="Ground truth (0/1 or boolean); null until it arrives.")
    label_time: Column | None = Field(default=None, description="When the label arrived.")
    prediction: Column | None = Field(default=None, description="The predicted class (0/1 or boolean).")
    score: Column | None = Field(default=None, description="Probability of the positive class, in [0, 1].")
    threshold: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False, description=(
        "Only without `prediction`: a row is predicted positive when its score is at least this."))
    favourable: Literal["positive", "negative"] | None = Field(default=None, description=(
        "Which predicted class is the favourable outcome for the person or case: positive where 1 means approved, "
        "negative where 1 means flagged or refused. approval_rate and the between-group gaps are the favourable "
        "outcome's rate; without this key neither is computed (a note says so)."))
    segments: dict[Dimension, Column] = Field(default_factory=dict, max_length=16, description=(
        "Dimension -> the column holding each row's group (region, age band)."))
    min_group_rows: int = Field(default=30, ge=1, le=1_000_000, description=(
        "A segment group with fewer rows in the window gets no KPIs and is left out of the between-group gaps "
        "(a note names it, and provenance.groups records every group's size): one row must not decide a "
        "fairness breach. 30 unless set."))
    sensitive: list[Dimension] = Field(default_factory=list, description=(
        "Dimensions whose between-group gaps are fairness KPIs (fairness_gap, disparate_impact_ratio, "
        "equal_opportunity_difference)."))
    override: Column | None = Field(default=None, description="True where a person overruled the model.")
    latency_ms: Column | None = None
    cost: Cost | None = None
    unit_costs: UnitCosts | None = None
    tokens: Column | None = Field(default=None, description="Generated tokens per response.")
    evaluation: Evaluation | None = None
    agent: Agent | None = None
    drift: Drift | None = None
    labels: Labels = Field(default_factory=Labels)

    @field_validator("sensitive")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a dimension is listed twice")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> IngestMapping:
        unknown = [d for d in self.sensitive if d not in self.segments]
        if unknown:
            raise ValueError(f"sensitive dimension(s) {', '.join(unknown)} are not among the segments "
                             f"({', '.join(self.segments) or 'none'})")
        if self.sensitive and self.favourable is None:
            raise ValueError("sensitive dimensions compare favourable-outcome rates: say which predicted class is "
                             "favourable (favourable: positive, or negative where 1 means flagged)")
        if self.favourable is not None and not self.predicts():
            raise ValueError("favourable names a predicted class: map `prediction` (or `score` with `threshold`)")
        if self.threshold is not None and (self.prediction is not None or self.score is None):
            raise ValueError("threshold derives the prediction from the score: give it with `score` and "
                             "without `prediction`")
        if self.unit_costs is not None and self.label is None:
            raise ValueError("unit_costs price false positives and negatives, which need a `label` column")
        if self.drift is not None and self.drift.score and self.score is None and not self.drift.features:
            raise ValueError("drift needs `features` or a `score` column")
        return self

    def predicts(self) -> bool:
        """Whether a predicted class is known for each row (mapped, or derived from the score)."""
        return self.prediction is not None or self.threshold is not None


def column_name(column: Column) -> str:
    """A readable name for a column or a nested path (``attributes.gen_ai.tool.name``)."""
    return column if isinstance(column, str) else ".".join(column)


def mapping_schema() -> dict[str, Any]:
    """The mapping's JSON Schema (draft 2020-12), as ``charter schema mapping`` prints it."""
    schema = IngestMapping.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def parse_mapping(text: str, file: str) -> IngestMapping:
    """Parse and validate a mapping document.

    Raises:
        CharterError: every problem, each located by file, line and JSON path.
    """
    data, smap = parse_yaml(text, file)
    if not isinstance(data, dict):
        raise CharterError.single("mapping_schema", "a mapping file is a YAML mapping of column roles", file=file)
    return _validate(data, smap)


def _validate(data: dict[str, Any], smap: SourceMap) -> IngestMapping:
    try:
        return IngestMapping.model_validate(data)
    except ValidationError as exc:
        raise CharterError(collect_validation_errors(exc, smap, code="mapping_schema")) from None


def load_mapping(path: Path) -> IngestMapping:
    """Read and validate a mapping file (YAML); see `parse_mapping`."""
    return parse_mapping(read_text(path, MAX_MAPPING_BYTES), str(path))


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (data files can be gigabytes)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
