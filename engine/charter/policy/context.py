"""The typed rule-engine context rules are checked and evaluated in, and the data they see.

Every symbol a rule may use is declared with its type, so unknown names and type mismatches are
caught when the policy is compiled. Rules only ever see JSON-like dictionaries (never live objects,
whose methods a resolver would expose), read through ``operator.getitem``. ``$now`` and ``$today``
return the evaluation time handed to the evaluator, never the wall clock.
"""

from __future__ import annotations

import contextvars
import datetime
import operator
from typing import Any

import rule_engine
from rule_engine import DataType
from rule_engine import builtins as re_builtins

from ..kpis import KpiCatalog

#: Builtins a governance rule may not use: randomness makes a decision impossible to replay.
FORBIDDEN_BUILTINS = {"random": "is not deterministic, so a finding could not be replayed",
                      "range": "builds arrays as long as an evidence value says, so one bundle could make an "
                               "evaluation run for hours"}

_EVALUATION_TIME: contextvars.ContextVar[datetime.datetime] = contextvars.ContextVar("charter_evaluation_time")


def _now(_builtins: Any) -> datetime.datetime:
    try:
        return _EVALUATION_TIME.get()
    except LookupError:
        raise RuntimeError("a rule read $now outside of an evaluation") from None


def _today(builtins: Any) -> datetime.datetime:
    return _now(builtins).replace(hour=0, minute=0, second=0, microsecond=0)


def current_evaluation_time() -> datetime.datetime | None:
    """The evaluation time set by the enclosing `evaluation_time` block, if any."""
    return _EVALUATION_TIME.get(None)


class evaluation_time:  # lower case: used as the function it was, ``with evaluation_time(at):``
    """Within this block, ``$now`` is `at` (which must be timezone-aware).

    A class rather than a generator: evaluation enters it once per rule and segment, and a
    generator-based context manager costs several times more per use.
    """

    __slots__ = ("_at", "_token")

    def __init__(self, at: datetime.datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("the evaluation time must be timezone-aware")
        self._at = at
        self._token: contextvars.Token[datetime.datetime] | None = None

    def __enter__(self) -> None:
        self._token = _EVALUATION_TIME.set(self._at)

    def __exit__(self, *_: object) -> None:
        assert self._token is not None
        _EVALUATION_TIME.reset(self._token)
        self._token = None


def kpi_object_type(name: str, catalog: KpiCatalog) -> Any:
    """An OBJECT type with one FLOAT attribute per KPI, read with ``[]`` from a dict."""
    return DataType.OBJECT(name, {kpi_id: DataType.FLOAT for kpi_id in catalog}, accessor=operator.getitem)


def build_context(catalog: KpiCatalog) -> rule_engine.Context:
    """A typed context over the KPI catalog and the reserved names.

    Symbols: every KPI id (FLOAT: the bundle's value, or the segment's in segment scope);
    ``system``, ``bundle``, ``baseline``, ``previous``, ``segments`` (a mapping of segment key to a
    mapping of KPI id to value: ``segments['region:asia']['recall']``); and in segment scope
    ``segment`` (key, dimension, group) and ``peers`` (mean of the other groups of the dimension).
    """
    kpis = kpi_object_type("kpis", catalog)
    system = DataType.OBJECT("system", {
        "id": DataType.STRING, "name": DataType.STRING, "owner": DataType.STRING,
        "risk_tier": DataType.STRING, "kind": DataType.STRING, "region": DataType.STRING,
        "status": DataType.STRING, "tags": DataType.ARRAY(DataType.STRING),
    }, accessor=operator.getitem)
    bundle = DataType.OBJECT("bundle", {
        "system_id": DataType.STRING, "model_version": DataType.STRING, "submitter": DataType.STRING,
        "window_start": DataType.DATETIME, "window_end": DataType.DATETIME,
        "measured_at": DataType.DATETIME, "kpis": kpis,
    }, accessor=operator.getitem)
    segment = DataType.OBJECT("segment", {
        "key": DataType.STRING, "dimension": DataType.STRING, "group": DataType.STRING,
    }, accessor=operator.getitem)
    types: dict[str, Any] = {kpi_id: DataType.FLOAT for kpi_id in catalog}
    types.update(system=system, bundle=bundle, baseline=kpis, previous=kpis,
                 segments=DataType.MAPPING(DataType.STRING, DataType.MAPPING(DataType.STRING, DataType.FLOAT)),
                 segment=segment, peers=kpis)
    context = rule_engine.Context(type_resolver=types, mapping_attribute_lookup=False, default_timezone="utc")
    context.builtins = re_builtins.Builtins.from_defaults(
        values={"now": re_builtins.BuiltinValueGenerator(_now),
                "today": re_builtins.BuiltinValueGenerator(_today)},
        timezone=context.default_timezone,
    )
    return context
