"""Evidence from raw data: KPIs computed from prediction logs, evaluation labels and agent traces.

`measure` opens a source on an engine (DuckDB embedded by default, Spark, or PostgreSQL where the
table lives), computes the KPIs the mapping makes computable as Ibis expressions, and returns them
with their provenance; `bundle_from` turns that into an evidence bundle, and `verify_bundle`
recomputes a bundle's KPIs from the inputs it names. Only aggregates leave the engine.
"""

from __future__ import annotations

import contextlib
import datetime
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..bundle import MAX_PROVENANCE_NOTES, EvidenceBundle, Provenance, ProvenanceFile, ProvenanceInput
from ..errors import CharterError
from .mapping import IngestMapping, file_digest, load_mapping, mapping_schema, parse_mapping
from .metrics import Computed, compute, prepare
from .sources import (
    ENGINES,
    Engine,
    Source,
    Window,
    engine_message,
    files_digests,
    open_source,
    parse_source,
    rows_digest,
)
from .verify import Declared, VerifyReport, load_declared, verify_bundle

__all__ = ["ENGINES", "Declared", "Engine", "IngestMapping", "Measurement", "Source", "VerifyReport", "Window",
           "bundle_from", "load_declared", "load_mapping", "mapping_schema", "measure", "needed_kpis", "parse_mapping",
           "parse_source", "round_kpi", "verify_bundle"]

#: Significant digits kept of each computed value: far below any threshold a policy states, and enough
#: that the last-bit differences of floating-point sums between engines do not show in the bundle.
SIGNIFICANT_DIGITS = 12


def round_kpi(value: float) -> float:
    """`value` to `SIGNIFICANT_DIGITS` significant digits (integers stay exact)."""
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


@dataclass
class Measurement:
    """The KPIs of one window of one source, and how they were obtained."""

    source: Source
    window: Window
    engine: Engine
    computed: Computed
    inputs: list[ProvenanceInput]
    reference: Window | None = None

    @property
    def notes(self) -> list[str]:
        """The KPIs not computed, and why."""
        return self.computed.notes

    @property
    def kpis(self) -> dict[str, float]:
        """Whole-window KPIs, rounded as the bundle records them."""
        return {k: round_kpi(v) for k, v in sorted(self.computed.kpis.items())}

    @property
    def segments(self) -> dict[str, dict[str, float]]:
        """Per-group KPIs keyed ``dimension:group``, rounded."""
        return {key: {k: round_kpi(v) for k, v in sorted(values.items())}
                for key, values in sorted(self.computed.segments.items())}

    @property
    def provenance(self) -> dict[str, Any]:
        """The facts behind the numbers, JSON-ready (without the mapping and declared files, which `bundle_from`
        adds)."""
        c = self.computed
        return {"source": self.source.redacted(), "rows": c.rows, "inputs": [i.model_dump(mode="json")
                                                                              for i in self.inputs],
                "label_coverage": c.label_coverage, "labels_sufficient_at": c.labels_sufficient_at,
                "quality": c.quality, "drift": {k: {m: round_kpi(x) for m, x in v.items()} for k, v in c.drift.items()},
                "notes": c.notes}


def measure(source: str | Path | Source, mapping: IngestMapping, window: Window, *,
            reference: Window | None = None, engine: Engine | None = None, spark: Any = None,
            base: Path | None = None, digest: bool = True) -> Measurement:
    """Compute the KPIs of `window` from `source`, as the mapping names its columns.

    Args:
        source: a file or folder (Parquet, CSV, JSON lines), ``postgresql://.../DATABASE/TABLE`` or
            ``spark:TABLE``, or an already parsed `Source`.
        mapping: which column holds what.
        window: the measured window [start, end).
        reference: a window of the same source to measure drift against (with the mapping's ``drift``).
        engine: ``duckdb`` (default for files), ``spark`` or ``postgres`` (default for PostgreSQL tables).
        spark: a SparkSession to use with ``engine="spark"``; a local one is started when None.
        base: where relative paths are resolved (the working directory by default).
        digest: whether to digest the inputs (file bytes or selected rows) for the provenance.

    Raises:
        CharterError: a located, named problem with the source, the mapping or the data (exit 2 in the CLI).
    """
    parsed = source if isinstance(source, Source) else parse_source(str(source), base=base)
    chosen: Engine = engine or parsed.default_engine
    if chosen not in ENGINES:
        raise CharterError.single("bad_engine", f"unknown engine {chosen!r}: use {', '.join(ENGINES)}")
    if reference is not None and mapping.drift is None:
        raise CharterError.single("reference_unused", "--reference is given but the mapping has no `drift` section "
                                  "naming what to compare", path="$.drift")
    if reference is not None and reference.start < window.end and window.start < reference.end:
        raise CharterError.single("bad_window", f"the reference window {reference.label()} overlaps the measured "
                                  f"window {window.label()}")
    opened = open_source(parsed, chosen, spark=spark)
    try:
        def execute(expression: Any) -> Any:
            try:
                return opened.backend.execute(expression)
            except CharterError:
                raise
            except Exception as exc:
                raise CharterError.single("engine_error", f"{chosen} failed on {parsed.redacted()}: "
                                          f"{engine_message(exc)}") from None

        current = prepare(opened.table, mapping, window, chosen)
        prepared_reference = prepare(opened.table, mapping, reference, chosen) if reference is not None else None
        if prepared_reference is not None:
            rows = int(execute(prepared_reference.table.count()))
            if not rows:
                raise CharterError.single("empty_window", f"the reference window {reference.label()} "  # type: ignore[union-attr]
                                          "holds no rows")
        computed = compute(current, mapping, execute, prepared_reference)
        inputs: list[ProvenanceInput] = []
        if digest:
            inputs = _inputs(parsed, opened.table, current, prepared_reference, computed, execute)
    finally:
        _close(opened.backend, chosen)
    return Measurement(parsed, window, chosen, computed, inputs, reference)


def _inputs(source: Source, table: Any, current: Any, reference: Any, computed: Computed,
            execute: Any) -> list[ProvenanceInput]:
    if source.kind == "files":
        files = files_digests(source)
        return [ProvenanceInput(role="current", uri=uri, digest_of="file", sha256=sha) for uri, sha in files]
    columns = list(current.raw.columns)
    out = [ProvenanceInput(role="current", uri=source.redacted(), digest_of="rows",
                           sha256=rows_digest(current.raw, columns), rows=computed.rows)]
    if reference is not None:
        out.append(ProvenanceInput(role="reference", uri=source.redacted(), digest_of="rows",
                                   sha256=rows_digest(reference.raw, columns),
                                   rows=int(execute(reference.raw.count()))))
    return out


def _close(backend: Any, engine: Engine) -> None:
    if engine == "spark":
        return  # the session outlives one ingest (starting Spark takes seconds)
    with contextlib.suppress(Exception):  # closing is best effort; the result is already computed
        backend.disconnect()


def bundle_from(measurement: Measurement, *, system_id: str, model_version: str, submitter: str,
                mapping_file: Path, mapping_uri: str | None = None, declared: dict[str, float] | None = None,
                declared_file: Path | None = None, declared_uri: str | None = None,
                measured_at: datetime.datetime | None = None, min_label_coverage: float | None = None,
                catalog: Any = None) -> EvidenceBundle:
    """The evidence bundle of a measurement: computed KPIs, declared ones, and the provenance of both.

    Declared values may not override computed ones: a KPI is either measured from the data or stated.

    Raises:
        CharterError: ``declared_conflict`` when a declared KPI is also computed; bundle validation errors.
    """
    from ..kpis import load_catalog

    kpis = measurement.kpis
    declared = dict(declared or {})
    clash = sorted(set(declared) & set(kpis))
    if clash:
        raise CharterError.single("declared_conflict", f"{', '.join(clash)} computed from the data and also declared: "
                                  "a KPI is either measured or stated, not both", file=str(declared_file or ""))
    at = measured_at or datetime.datetime.now(datetime.UTC)
    c = measurement.computed
    provenance = Provenance(
        generator=f"charter {__version__}", source=measurement.source.redacted(),
        reference_window=(measurement.reference.start, measurement.reference.end) if measurement.reference else None,
        inputs=tuple(measurement.inputs),
        mapping=ProvenanceFile(uri=mapping_uri or str(mapping_file), sha256=file_digest(mapping_file)),
        declared=ProvenanceFile(uri=declared_uri or str(declared_file), sha256=file_digest(declared_file))
        if declared_file is not None else None,
        computed=tuple(sorted(kpis)), rows=c.rows, label_coverage=None if c.label_coverage is None
        else round_kpi(c.label_coverage), min_label_coverage=min_label_coverage if c.label_coverage is not None
        else None, labels_sufficient_at=c.labels_sufficient_at, quality=c.quality,  # type: ignore[arg-type]
        drift={k: {m: round_kpi(x) for m, x in v.items()} for k, v in c.drift.items()},  # type: ignore[misc]
        notes=_capped(c.notes), groups=c.groups)
    data = {"system_id": system_id, "model_version": model_version,
            "window_start": measurement.window.start.isoformat(), "window_end": measurement.window.end.isoformat(),
            "measured_at": at.isoformat(), "kpis": {**declared, **kpis},
            "segments": measurement.segments,
            # The inputs are also artifacts, so every reader of bundles (reports, exports) names them.
            "artifacts": [{"name": f"{i.role} data: {Path(i.uri).name if i.digest_of == 'file' else i.uri}"[:200],
                           "sha256": i.sha256, "uri": i.uri} for i in measurement.inputs],
            "submitter": submitter, "provenance": provenance.model_dump(mode="json")}
    return EvidenceBundle.from_data(data, catalog or load_catalog(), file="(computed bundle)")


def _capped(notes: list[str]) -> tuple[str, ...]:
    """At most `MAX_PROVENANCE_NOTES` notes, each at most 500 characters; what is left out is counted."""
    kept = [note if len(note) <= 500 else note[:497] + "..." for note in notes[:MAX_PROVENANCE_NOTES - 1]]
    if len(notes) >= MAX_PROVENANCE_NOTES:
        kept.append(f"... and {len(notes) - len(kept):,} more notes of the same kind (per-group KPIs not computed)")
    return tuple(kept)


def needed_kpis(policies: Any, system: Any) -> set[str]:
    """The KPIs the policies that apply to `system` read, of this bundle or of the previous one and its peers."""
    needed: set[str] = set()
    for compiled in policies:
        if not compiled.policy.applies_to.matches(system):
            continue
        for rule in compiled.rules:
            needed.update(ref.kpi for ref in rule.needs if ref.where in (None, "previous", "peers", "bundle.kpis"))
    return needed
