"""Recompute a bundle from the inputs it names, and say what differs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from .._sources import parse_yaml, read_text
from ..bundle import KpiValue
from ..errors import CharterError
from ..validation import collect_validation_errors
from .mapping import MAX_MAPPING_BYTES, file_digest, load_mapping
from .sources import Engine, Window, parse_source

#: How far a recomputed value may differ from the recorded one (relative), for floating-point sums.
TOLERANCE = 1e-9


class Declared(BaseModel):
    """KPI values stated by the owner, not computable from the rows (monitoring coverage, log retention...)."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra={"title": "Charter declared KPIs"})

    kpis: dict[Annotated[str, Field(min_length=1, max_length=128)], KpiValue] = Field(default_factory=dict,
                                                                                     max_length=1000)
    model_version: str | None = Field(default=None, min_length=1, max_length=128)
    measured_at: AwareDatetime | None = None


def load_declared(path: Path) -> Declared:
    """Read a declared-values file (YAML or JSON).

    Raises:
        CharterError: located problems (file, line, JSON path).
    """
    data, smap = parse_yaml(read_text(path, MAX_MAPPING_BYTES), str(path))
    try:
        return Declared.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise CharterError(collect_validation_errors(exc, smap, code="declared_schema")) from None


@dataclass
class VerifyReport:
    """What `verify_bundle` found: every difference, and how much it checked."""

    problems: list[str] = field(default_factory=list)
    checked_inputs: int = 0
    checked_values: int = 0

    @property
    def ok(self) -> bool:
        """True when every input digest and every value matched."""
        return not self.problems


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=1e-12)


def _resolve(uri: str, base: Path) -> Path:
    path = Path(uri)
    return path if path.is_absolute() else base / path


def verify_bundle(bundle: Any, *, base: Path | None = None, engine: Engine | None = None,
                  spark: Any = None) -> VerifyReport:
    """Recompute `bundle` (an `EvidenceBundle` written by charter ingest) from the inputs its provenance names.

    Checks the mapping's and the declared file's digests, each input's digest (file bytes, or the selected
    rows of a table), and every computed and declared value, within `TOLERANCE`.

    Raises:
        CharterError: ``no_provenance`` for a hand-written bundle; problems reading the named inputs.
    """
    from . import measure

    provenance = bundle.provenance
    if provenance is None:
        raise CharterError.single("no_provenance", "the bundle has no provenance: it was not computed by charter "
                                  "ingest, so there is nothing to recompute it from")
    root = base or Path.cwd()
    report = VerifyReport()
    mapping = load_mapping(_recorded_file(provenance.mapping, "mapping", root, report))
    declared: dict[str, float] = {}
    if provenance.declared is not None:
        declared = dict(load_declared(_recorded_file(provenance.declared, "declared values", root, report)).kpis)
    reference = Window(*provenance.reference_window) if provenance.reference_window else None
    source = parse_source(provenance.source, base=root)
    measurement = measure(source, mapping, Window(bundle.window_start, bundle.window_end), reference=reference,
                          engine=engine, spark=spark)
    recorded_inputs = {(i.role, i.uri): i for i in provenance.inputs}
    for found in measurement.inputs:
        report.checked_inputs += 1
        was = recorded_inputs.pop((found.role, found.uri), None)
        if was is None:
            report.problems.append(f"input {found.uri} ({found.role}) is read now but not named in the bundle")
        elif was.sha256 != found.sha256:
            report.problems.append(f"input {found.uri} ({found.role}): SHA-256 {found.sha256} differs from the "
                                   f"recorded {was.sha256}: the data changed")
        elif was.rows is not None and was.rows != found.rows:
            report.problems.append(f"input {found.uri}: {found.rows} rows, recorded {was.rows}")
    for (role, uri) in recorded_inputs:
        report.problems.append(f"input {uri} ({role}) is named in the bundle but no longer read (removed?)")
    if measurement.computed.rows != provenance.rows:
        report.problems.append(f"the window holds {measurement.computed.rows:,} rows; the bundle recorded "
                               f"{provenance.rows:,}")
    recomputed = {**declared, **measurement.kpis}
    _compare("kpis", dict(bundle.kpis), recomputed, report)
    segments = measurement.segments
    for key in sorted(set(bundle.segments) | set(segments)):
        _compare(f"segments.{key}", dict(bundle.segments.get(key, {})), segments.get(key, {}), report)
    return report


def _recorded_file(record: Any, what: str, root: Path, report: VerifyReport) -> Path:
    """The file a provenance record names, its digest checked (a difference is reported, not raised)."""
    path = _resolve(record.uri, root)
    if not path.is_file():
        raise CharterError.single("source_not_found", f"the {what} file the bundle names is not there", file=str(path))
    if file_digest(path) != record.sha256:
        report.problems.append(f"{what} {record.uri}: its SHA-256 differs from the one recorded")
    return path


def _compare(where: str, recorded: dict[str, float], recomputed: dict[str, float], report: VerifyReport) -> None:
    for kpi in sorted(set(recorded) | set(recomputed)):
        report.checked_values += 1
        if kpi not in recomputed:
            report.problems.append(f"{where}.{kpi}: recorded {recorded[kpi]!r} but not recomputable from the inputs")
        elif kpi not in recorded:
            report.problems.append(f"{where}.{kpi}: recomputed {recomputed[kpi]!r} but missing from the bundle")
        elif not _close(recorded[kpi], recomputed[kpi]):
            report.problems.append(f"{where}.{kpi}: recorded {recorded[kpi]!r}, recomputed {recomputed[kpi]!r}")
