"""Evidence bundles: the KPI measurements of one AI system over one time window.

A bundle is what a model owner submits. It is parsed strictly (no duplicate JSON keys, no NaN or
Infinity, timezone-aware timestamps, known KPIs within their valid ranges) and then frozen. Its
canonical form (RFC 8785 JSON without the signature) is what gets hashed and signed.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from ._sources import SourceMap, json_positions, parse_json_strict, read_text
from .errors import CharterError, Diagnostic, Location, json_path, parse_json_path, with_positions
from .kpis import KpiCatalog
from .validation import collect_validation_errors

#: What one bundle may hold; more is refused with a located error before anything is evaluated. Far above
#: real use (the catalog has about 50 KPIs), low enough that validation and evaluation stay fast.
MAX_KPIS = 1_000
MAX_SEGMENTS = 10_000
MAX_ARTIFACTS = 1_000
#: KPI values over all segments: 10,000 segments of 1,000 KPIs each would be 10 million values.
MAX_SEGMENT_VALUES = 100_000
#: KPI problems listed one by one; the rest are counted in one more diagnostic.
MAX_KPI_PROBLEMS = 100
#: Notes a computed bundle's provenance keeps (KPIs not computed, and why); the rest are counted in one more.
MAX_PROVENANCE_NOTES = 1_000
#: Schema problems listed one by one (in pydantic's order, which is the document's); the rest are counted.
MAX_SCHEMA_PROBLEMS = 100

KpiValue = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Identifier = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,127}$")]
#: A segment key names a dimension and a group: ``region:asia``, ``age:18-25``.
SegmentKey = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}:[^\s:][^\s]{0,63}$")]


class Artifact(BaseModel):
    """A file the measurements were computed from or documented in (report, dataset, notebook)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Lower-case hex SHA-256 of the file.")
    uri: str = Field(min_length=1, max_length=2000)


class Signature(BaseModel):
    """An Ed25519 signature over the bundle's canonical bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: str = Field(min_length=1, max_length=200)
    algorithm: Literal["ed25519"] = "ed25519"
    value: str = Field(pattern=r"^[A-Za-z0-9+/]+={0,2}$", description="Base64 signature bytes.")


class ProvenanceInput(BaseModel):
    """One input a bundle's KPIs were computed from: a data file, or the selected rows of a table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["current", "reference"] = Field(description="The measured window's rows, or the drift reference.")
    uri: str = Field(min_length=1, max_length=2000, description="The path or table as given (no password).")
    digest_of: Literal["file", "rows"] = Field(description="file: SHA-256 of the file's bytes; rows: of the "
                                               "window's selected rows in Charter's canonical text form.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    rows: int | None = Field(default=None, ge=0, description="Rows selected from this table (tables only; for "
                             "files, the window's row count is `rows` of the provenance).")


class ProvenanceFile(BaseModel):
    """A configuration file an ingest used: the mapping, or the declared (not computed) KPI values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    uri: str = Field(min_length=1, max_length=2000)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Provenance(BaseModel):
    """How a bundle's KPIs were computed from data (``charter ingest``), so that anyone can recompute them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    generator: str = Field(min_length=1, max_length=200, description="The program and version: charter 0.1.0.")
    source: str = Field(min_length=1, max_length=2000, description="SOURCE as given to charter ingest.")
    reference_window: tuple[AwareDatetime, AwareDatetime] | None = Field(
        default=None, description="Start and end of the drift reference window on the same source.")
    inputs: tuple[ProvenanceInput, ...] = Field(min_length=1, max_length=MAX_ARTIFACTS)
    mapping: ProvenanceFile
    declared: ProvenanceFile | None = Field(default=None, description="KPI values stated, not computed.")
    computed: tuple[str, ...] = Field(description="The KPIs computed from the data (the others were declared).")
    rows: int = Field(ge=1, description="Rows in the measured window.")
    label_coverage: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    min_label_coverage: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    labels_sufficient_at: AwareDatetime | None = Field(
        default=None, description="When label coverage reached the threshold: from then on the window was measurable.")
    quality: dict[str, dict[Literal["nulls", "nan"], int]] = Field(
        default_factory=dict, max_length=1000, description="Null and NaN values per column of the window.")
    drift: dict[str, dict[Literal["psi", "ks", "js", "bins"], KpiValue]] = Field(
        default_factory=dict, max_length=1000, description="Drift against the reference, per feature and score.")
    notes: tuple[Annotated[str, Field(max_length=500)], ...] = Field(
        default=(), max_length=MAX_PROVENANCE_NOTES, description="KPIs not computed, and why.")
    # Omitted when empty, so that bundles ingested before it existed keep their canonical bytes and digests.
    groups: dict[Annotated[str, Field(max_length=200)], Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, max_length=16_000, exclude_if=lambda value: not value, description=(
            "Rows of the window per segment group (`dimension:group`), measured or not: a group with fewer rows "
            "than the mapping's min_group_rows has no KPIs, and a reader sees how many rows each rate stands on."))


class EvidenceBundle(BaseModel):
    """KPI evidence for one system and one measurement window."""

    model_config = ConfigDict(frozen=True, extra="forbid",
                              json_schema_extra={"title": "Charter evidence bundle"})

    system_id: Identifier = Field(description="Registered id of the AI system measured.")
    model_version: str = Field(min_length=1, max_length=128)
    window_start: AwareDatetime = Field(description="Start of the measurement window (inclusive).")
    window_end: AwareDatetime = Field(description="End of the measurement window (exclusive).")
    measured_at: AwareDatetime = Field(description="When the KPIs were computed; not before window_end.")
    kpis: dict[str, KpiValue] = Field(min_length=1, max_length=MAX_KPIS,
                                      description="KPI id -> value over the whole window.")
    segments: dict[SegmentKey, Annotated[dict[str, KpiValue], Field(max_length=MAX_KPIS)]] = Field(
        default_factory=dict, max_length=MAX_SEGMENTS,
        description='Per-group values, keyed "dimension:group" (region:asia).')
    artifacts: tuple[Artifact, ...] = Field(default=(), max_length=MAX_ARTIFACTS)
    submitter: str = Field(min_length=1, max_length=200, description="Principal submitting the bundle.")
    provenance: Provenance | None = Field(default=None, description="Present when charter ingest computed the KPIs.")
    signature: Signature | None = None

    @model_validator(mode="after")
    def _check_times(self) -> EvidenceBundle:
        if self.window_end <= self.window_start:
            raise ValueError(f"window_end {self.window_end.isoformat()} is not after window_start "
                             f"{self.window_start.isoformat()}")
        if self.measured_at < self.window_end:
            raise ValueError(f"measured_at {self.measured_at.isoformat()} is before window_end "
                             f"{self.window_end.isoformat()}: a window can only be measured once it closed")
        return self

    # -- parsing -----------------------------------------------------------------------------

    @classmethod
    def from_data(cls, data: Any, catalog: KpiCatalog, *, file: str | None = None,
                  smap: SourceMap | None = None, prefix: tuple[str | int, ...] = ()) -> EvidenceBundle:
        """Validate already-parsed data against the schema and the KPI catalog.

        Raises:
            CharterError: every problem at once, each with its JSON path (and line for YAML).
        """
        too_large = _size_problems(data, file, smap, prefix)
        if too_large:
            raise CharterError(too_large)  # before pydantic builds one error per excess value
        problems: list[Diagnostic] = []
        bundle: EvidenceBundle | None = None
        try:
            bundle = cls.model_validate(data)
        except ValidationError as exc:
            schema = collect_validation_errors(exc, smap, prefix, code="bundle_schema", file=file)
            problems.extend(schema[:MAX_SCHEMA_PROBLEMS])
            if len(schema) > MAX_SCHEMA_PROBLEMS:
                where = smap.location(prefix) if smap else Location(file=file, path=json_path(prefix))
                problems.append(Diagnostic("too_many_problems", f"{len(schema) - MAX_SCHEMA_PROBLEMS:,} more schema "
                                           f"problems are not listed (the first {MAX_SCHEMA_PROBLEMS} are)", where))
        problems.extend(_catalog_problems(data, catalog, file, smap, prefix))
        # A window/measured_at error is reported on the field that a reader will fix.
        problems = [_relocate_time_error(d, smap, prefix, file) for d in problems]
        if problems or bundle is None:
            raise CharterError(_dedupe(problems))
        return bundle

    @classmethod
    def from_json(cls, text: str | bytes, catalog: KpiCatalog, *, file: str | None = None) -> EvidenceBundle:
        """Parse a bundle from JSON text; see `from_data`."""
        return cls.from_json_data(text, parse_json_strict(text, file), catalog, file=file)

    @classmethod
    def from_json_data(cls, text: str | bytes, data: Any, catalog: KpiCatalog, *,
                       file: str | None = None) -> EvidenceBundle:
        """Validate `data` parsed from the JSON `text`; problems are also located by line and column in `text`."""
        try:
            return cls.from_data(data, catalog, file=file)
        except CharterError as exc:
            source = text.decode("utf-8") if isinstance(text, bytes) else text
            paths = [parse_json_path(d.location.path) for d in exc.diagnostics if d.location.path]
            found = json_positions(source, [p for p in paths if p is not None])  # one pass for all of them
            raise with_positions(exc, found.get, limit=len(exc.diagnostics)) from None

    @classmethod
    def from_file(cls, path: Path, catalog: KpiCatalog) -> EvidenceBundle:
        """Read and parse a bundle file (JSON)."""
        return cls.from_json(read_text(path), catalog, file="<stdin>" if str(path) == "-" else str(path))

    # -- canonical form ----------------------------------------------------------------------

    def unsigned_dict(self) -> dict[str, Any]:
        """The JSON data of the bundle without its signature: what is hashed and signed.

        A bundle without provenance has no ``provenance`` key at all, so bundles written before ingest existed
        keep their canonical bytes (and digests).
        """
        excluded = {"signature"} if self.provenance is not None else {"signature", "provenance"}
        return self.model_dump(mode="json", exclude=excluded, exclude_defaults=False)

    def canonical_bytes(self) -> bytes:
        """RFC 8785 canonical JSON of `unsigned_dict`.

        By the ledger's `canonical_json`: the reference ``rfc8785`` bytes (a property test holds its
        standard-library path to them byte for byte), without its pure-Python cost per bundle.
        """
        from .ledger.auditor import canonical_json  # imported on first use: start-up of commands that never hash

        return canonical_json(self.unsigned_dict())

    def digest(self) -> str:
        """Hex SHA-256 of the canonical bytes: the bundle's content identity."""
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    def segment_dimensions(self) -> list[str]:
        """The distinct dimensions of the segments (``region``, ``age``), sorted."""
        return sorted({key.split(":", 1)[0] for key in self.segments})


def _size_problems(data: Any, file: str | None, smap: SourceMap | None,
                   prefix: tuple[str | int, ...]) -> list[Diagnostic]:
    """The size limits a bundle exceeds, checked in O(size) before validation; the schema repeats them."""
    if not isinstance(data, Mapping):
        return []

    def too_large(path: tuple[str | int, ...], what: str, count: int, limit: int) -> Diagnostic:
        full = (*prefix, *path)
        where = smap.location(full) if smap else Location(file=file, path=json_path(full))
        return Diagnostic("bundle_too_large", f"{count:,} {what}; a bundle may hold at most {limit:,}", where)

    problems = []
    kpis, segments, artifacts = data.get("kpis"), data.get("segments"), data.get("artifacts")
    if isinstance(kpis, Mapping) and len(kpis) > MAX_KPIS:
        problems.append(too_large(("kpis",), "KPIs", len(kpis), MAX_KPIS))
    if isinstance(artifacts, list) and len(artifacts) > MAX_ARTIFACTS:
        problems.append(too_large(("artifacts",), "artifacts", len(artifacts), MAX_ARTIFACTS))
    if isinstance(segments, Mapping):
        values = sum(len(v) for v in segments.values() if isinstance(v, Mapping))
        if len(segments) > MAX_SEGMENTS:
            problems.append(too_large(("segments",), "segments", len(segments), MAX_SEGMENTS))
        elif values > MAX_SEGMENT_VALUES:
            problems.append(too_large(("segments",), "KPI values in segments", values, MAX_SEGMENT_VALUES))
    return problems


def _catalog_problems(data: Any, catalog: KpiCatalog, file: str | None, smap: SourceMap | None,
                      prefix: tuple[str | int, ...]) -> list[Diagnostic]:
    if not isinstance(data, Mapping):
        return []
    problems: list[Diagnostic] = []
    unlisted = 0

    def loc(path: tuple[str | int, ...]) -> Location:
        full = (*prefix, *path)
        return smap.location(full) if smap else Location(file=file, path=json_path(full))

    def check(values: Any, path: tuple[str | int, ...]) -> None:
        nonlocal unlisted
        if not isinstance(values, Mapping):
            return
        for kpi_id, value in values.items():
            if len(problems) >= MAX_KPI_PROBLEMS:
                # Counting is cheap; a message with a suggestion for each of 100,000 names is not.
                unlisted += kpi_id not in catalog or (isinstance(value, int | float) and not isinstance(value, bool)
                                                      and catalog[kpi_id].check_value(float(value)) is not None)
                continue
            kpi = catalog.get(kpi_id)
            if kpi is None:
                problems.append(Diagnostic("unknown_kpi", catalog.unknown_message(kpi_id)
                                           + "; declare custom KPIs in kpis.yaml", loc((*path, kpi_id))))
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue  # the schema reports the type
            if isinstance(value, float) and not math.isfinite(value):
                continue  # the schema reports NaN and infinity
            try:
                number = float(value)
            except OverflowError:
                problems.append(Diagnostic("kpi_out_of_range", f"{kpi_id} is too large to be a number",
                                           loc((*path, kpi_id))))
                continue
            reason = kpi.check_value(number)
            if reason:
                problems.append(Diagnostic("kpi_out_of_range", reason, loc((*path, kpi_id))))

    check(data.get("kpis"), ("kpis",))
    segments = data.get("segments")
    if isinstance(segments, Mapping):
        for key, values in segments.items():
            check(values, ("segments", key))
    if unlisted:
        problems.append(Diagnostic("too_many_problems", f"{unlisted:,} more unknown or out-of-range KPI values "
                                   f"are not listed (the first {MAX_KPI_PROBLEMS} are)", loc(())))
    return problems


def _relocate_time_error(diagnostic: Diagnostic, smap: SourceMap | None, prefix: tuple[str | int, ...],
                         file: str | None) -> Diagnostic:
    for field in ("window_end", "measured_at"):
        if diagnostic.message.startswith(field + " ") and diagnostic.location.path == json_path(prefix):
            full = (*prefix, field)
            location = smap.location(full) if smap else Location(file=file, path=json_path(full))
            return Diagnostic(diagnostic.code, diagnostic.message, location)
    return diagnostic


def _dedupe(problems: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[tuple[str, str, Location]] = set()
    out = []
    for problem in problems:
        key = (problem.code, problem.message, problem.location)
        if key not in seen:
            seen.add(key)
            out.append(problem)
    return out
