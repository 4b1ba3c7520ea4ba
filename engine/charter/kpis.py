"""The KPI catalog: every measurable quantity a bundle may report and a policy may test.

The built-in catalog ships with the package (``kpis.yaml``); a governance repository may add its own
KPIs in a ``kpis.yaml`` of the same shape. A KPI id is also the symbol rules use, so it must be a
valid rule-engine identifier and must not shadow a reserved name.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ._data import package_file
from ._sources import SourceMap, load_yaml_file
from .errors import CharterError, DiagnosticCollector
from .validation import collect_validation_errors
from .vocabulary import Category as Category  # defined in vocabulary for the CLI; still importable here

#: Names rules use for context, never available as KPI ids.
RESERVED_NAMES = frozenset({"system", "bundle", "baseline", "previous", "segments", "segment", "peers"})
#: rule-engine keywords; a KPI with one of these names could not be referenced in an expression.
_KEYWORDS = frozenset({"and", "or", "not", "in", "if", "elif", "else", "for", "while", "true", "false",
                       "null", "inf", "nan"})


class Direction(StrEnum):
    """Which way a KPI improves; ``neutral`` KPIs have no better direction of their own."""

    HIGHER = "higher"
    LOWER = "lower"
    NEUTRAL = "neutral"


class Kpi(BaseModel):
    """One KPI definition."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="Symbol used in bundles and rules.")
    name: str = Field(min_length=1)
    category: Category
    unit: str = Field(min_length=1, description="ratio (0..1), count, ms, currency, ...")
    direction: Direction
    min: float | None = Field(default=None, description="Smallest valid value, inclusive.")
    max: float | None = Field(default=None, description="Largest valid value, inclusive.")
    description: str = Field(min_length=1)
    aliases: tuple[str, ...] = Field(default=(), description="Other names people use for this KPI (auc for "
                                     "roc_auc); only used to suggest the id when a name is unknown.")

    @model_validator(mode="after")
    def _check(self) -> Kpi:
        if self.id in RESERVED_NAMES or self.id in _KEYWORDS:
            raise ValueError(f"KPI id {self.id!r} is a reserved name")
        for bound in (self.min, self.max):
            if bound is not None and not math.isfinite(bound):
                raise ValueError("range bounds must be finite numbers or left out")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self

    @property
    def integral(self) -> bool:
        """Counts must be whole numbers."""
        return self.unit == "count"

    def range_text(self) -> str:
        """The valid range in interval notation, e.g. ``[0, 1]`` or ``[0, ∞)``."""
        low = "(-∞" if self.min is None else f"[{_fmt(self.min)}"
        high = "∞)" if self.max is None else f"{_fmt(self.max)}]"
        return f"{low}, {high}"

    def check_value(self, value: float) -> str | None:
        """Why `value` is not a valid measurement of this KPI, or None when it is."""
        if not math.isfinite(value):
            return f"{value} is not a finite number"
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            return f"{_fmt(value)} is outside the valid range {self.range_text()} of {self.id}"
        if self.integral and value != int(value):
            return f"{_fmt(value)} is not a whole number, but {self.id} is a count"
        return None


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


class KpiCatalog(Mapping[str, Kpi]):
    """An immutable, ordered set of KPIs keyed by id."""

    def __init__(self, kpis: Mapping[str, Kpi]) -> None:
        self._kpis = dict(kpis)

    def __getitem__(self, key: str) -> Kpi:
        return self._kpis[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._kpis)

    def __len__(self) -> int:
        return len(self._kpis)

    def by_category(self, category: Category | str) -> list[Kpi]:
        """The KPIs of one category, in catalog order."""
        return [k for k in self._kpis.values() if k.category == category]

    def extended(self, extra: KpiCatalog) -> KpiCatalog:
        """This catalog plus `extra`; ids must not collide.

        Raises:
            CharterError: ``kpi_redefined`` for every id defined twice.
        """
        clashes = sorted(set(self._kpis) & set(extra._kpis))
        if clashes:
            raise CharterError.single("kpi_redefined",
                                      f"custom KPIs redefine built-in ids: {', '.join(clashes)}")
        return KpiCatalog({**self._kpis, **extra._kpis})

    def unknown_message(self, name: str) -> str:
        """``unknown KPI 'recal' (did you mean 'recall'?)``."""
        hint = self.suggest(name)
        return f"unknown KPI {name!r}" + (f" (did you mean {hint!r}?)" if hint else "")

    def suggest(self, name: str) -> str | None:
        """The KPI id a misspelt or colloquial `name` most likely means, if one is close.

        A declared alias or display name wins (``auc`` means ROC-AUC by convention, although
        ``pr_auc`` is the closer string); otherwise the closest id by edit similarity.
        """
        wanted = _normalize(name)
        for kpi in self._kpis.values():
            if wanted in {_normalize(alias) for alias in kpi.aliases} or wanted == _normalize(kpi.name):
                return kpi.id
        if len(name) > 64:  # no id is longer; comparing a huge string costs time and finds nothing
            return None
        import difflib

        matches = difflib.get_close_matches(name, list(self._kpis), n=1)
        return matches[0] if matches else None


def _normalize(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def _parse_catalog(data: Any, smap: SourceMap) -> KpiCatalog:
    problems = DiagnosticCollector()
    if not isinstance(data, dict) or not isinstance(data.get("kpis"), list):
        raise CharterError.single("catalog_schema", "expected a mapping with a list under 'kpis'",
                                  file=smap.file, line=1)
    kpis: dict[str, Kpi] = {}
    for index, raw in enumerate(data["kpis"]):
        path: tuple[str | int, ...] = ("kpis", index)
        try:
            kpi = Kpi.model_validate(raw)
        except ValidationError as exc:
            problems.extend(collect_validation_errors(exc, smap, path, code="catalog_schema"))
            continue
        if kpi.id in kpis:
            problems.add("kpi_redefined", f"KPI {kpi.id!r} is defined twice", smap.location(path))
            continue
        kpis[kpi.id] = kpi
    problems.raise_if_any()
    return KpiCatalog(kpis)


def load_catalog_file(path: Path) -> KpiCatalog:
    """Load a KPI catalog file (``kpis: [...]``).

    Raises:
        CharterError: schema problems, each with file, line and JSON path.
    """
    data, smap = load_yaml_file(path)
    return _parse_catalog(data, smap)


_BUILTIN: KpiCatalog | None = None


def builtin_catalog() -> KpiCatalog:
    """The KPI catalog that ships with Charter (loaded once per process)."""
    global _BUILTIN
    if _BUILTIN is None:
        _BUILTIN = load_catalog_file(package_file("kpis.yaml"))
    return _BUILTIN


def load_catalog(custom: Path | None = None) -> KpiCatalog:
    """The built-in catalog, extended with the custom KPIs of `custom` when given."""
    if custom is None:
        return builtin_catalog()
    data, smap = load_yaml_file(custom)
    return _with_custom(data, smap)


def custom_catalog_document(path: Path) -> dict[str, Any]:
    """The custom KPI file at `path` as a policy activation records it: ``{"kpis": [definition, ...]}``,
    each definition in its normalized form (what the catalog reads, defaults written out).

    Raises:
        CharterError: schema problems or a redefined built-in KPI, with file, line and JSON path.
    """
    data, smap = load_yaml_file(path)
    builtin = builtin_catalog()
    return {"kpis": [kpi.model_dump(mode="json") for kpi_id, kpi in _with_custom(data, smap).items()
                     if kpi_id not in builtin]}


_RECORDED: dict[str, KpiCatalog] = {}


def recorded_catalog(custom: Mapping[str, Any], source: str) -> KpiCatalog:
    """The built-in catalog extended with the custom KPI definitions a ledger recorded (id -> definition).

    Raises:
        CharterError: a recorded definition that is not a valid KPI (written into the ledger around the
            command that checks it), named by `source`.
    """
    import json

    if not custom:
        return builtin_catalog()
    document = {"kpis": list(custom.values())}
    key = json.dumps(document, sort_keys=True)
    catalog = _RECORDED.get(key)
    if catalog is None:
        catalog = _with_custom(document, SourceMap(source))
        if len(_RECORDED) > 16:
            _RECORDED.clear()
        _RECORDED[key] = catalog
    return catalog


def _with_custom(data: Any, smap: SourceMap) -> KpiCatalog:
    catalog = builtin_catalog()
    extra = _parse_catalog(data, smap)
    problems = DiagnosticCollector()
    for index, raw in enumerate(data["kpis"]):
        kpi_id = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(kpi_id, str) and kpi_id in catalog:
            problems.add("kpi_redefined", f"custom KPI {kpi_id!r} redefines a built-in KPI; choose another id "
                         "(custom KPIs add to the catalog, they cannot change it)",
                         smap.location(("kpis", index, "id")))
    problems.raise_if_any()
    return catalog.extended(extra)
