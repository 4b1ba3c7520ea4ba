"""The KPIs, written once as Ibis expressions and executed where the rows are.

Everything that can be an integer count is counted in the engine and divided in Python, so the
result does not depend on the engine's summation order: confusion counts, the ROC-AUC rank sum,
the Kolmogorov-Smirnov gap and the drift histograms are exact and identical on DuckDB, Spark and
PostgreSQL. Only sums of floating-point values (mean latency, cost, average precision) can differ in
their last bits between engines; the bundle rounds every value to 12 significant digits.
"""

from __future__ import annotations

import datetime
import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import CharterError
from .mapping import Column, IngestMapping, column_name
from .sources import Window

if TYPE_CHECKING:
    import ibis.expr.types as ir

#: Drift proportions are floored here before PSI takes their logarithm (an empty bin would be infinite).
PSI_FLOOR = 1e-4
#: Calibration error uses this many equal-width score bins.
CALIBRATION_BINS = 10
#: Segment groups per dimension; more is refused (a segment column is a category, not an id).
MAX_GROUPS = 1_000
_SEGMENT_VALUE = re.compile(r"[\s:]+")
#: Unicode categories replaced in segment keys: controls (ANSI escapes), formats (bidi overrides), separators.
_INVISIBLE = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})


@dataclass
class Computed:
    """What one window's rows gave: KPIs, segment KPIs, and the facts a reader needs to trust them."""

    rows: int
    kpis: dict[str, float] = field(default_factory=dict)
    segments: dict[str, dict[str, float]] = field(default_factory=dict)
    quality: dict[str, dict[str, int]] = field(default_factory=dict)
    label_coverage: float | None = None
    labels_sufficient_at: datetime.datetime | None = None
    drift: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    groups: dict[str, int] = field(default_factory=dict)  # rows per segment group


def _ibis() -> Any:
    import ibis

    return ibis


def column_of(table: ir.Table, column: Column, role: str) -> ir.Value:
    """The expression for a mapped column (or a path into a nested one).

    Raises:
        CharterError: ``mapping_column`` naming the role, the column and the columns the source has.
    """
    parts = [column] if isinstance(column, str) else list(column)
    if parts[0] not in table.columns:
        shown = ", ".join(table.columns[:40]) + (" ..." if len(table.columns) > 40 else "")
        raise CharterError.single("mapping_column", f"{role}: the source has no column {column_name(column)!r} "
                                  f"(it has {shown})", path=f"$.{role}")
    value: Any = table[parts[0]]
    for part in parts[1:]:
        try:
            value = value[part]
        except Exception:
            raise CharterError.single("mapping_column", f"{role}: {column_name(column)!r} is not a nested field of "
                                      "the source", path=f"$.{role}") from None
    return value


# -- normalisation ----------------------------------------------------------------------------------

@dataclass
class _Roles:
    """Mapped roles: name in the normalised table -> (mapping path, the raw expression)."""

    raw: dict[str, tuple[str, Any]] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    numbers: set[str] = field(default_factory=set)
    times: set[str] = field(default_factory=set)


def _roles(table: ir.Table, mapping: IngestMapping) -> _Roles:
    roles = _Roles()

    def add(name: str, column: Column | None, path: str, kind: str | None = None) -> None:
        if column is None:
            return
        roles.raw[name] = (path, column_of(table, column, path))
        {"flag": roles.flags, "number": roles.numbers, "time": roles.times, None: set()}[kind].add(name)

    add("ts", mapping.timestamp, "timestamp", "time")
    add("label", mapping.label, "label", "flag")
    add("label_time", mapping.label_time, "label_time", "time")
    add("prediction", mapping.prediction, "prediction", "flag")
    add("score", mapping.score, "score", "number")
    for dimension, column in mapping.segments.items():
        add(f"seg_{dimension}", column, f"segments.{dimension}")
    add("override", mapping.override, "override", "flag")
    add("latency", mapping.latency_ms, "latency_ms", "number")
    if mapping.cost is not None:
        add("cost", mapping.cost.column, "cost.column", "number")
    add("tokens", mapping.tokens, "tokens", "number")
    if mapping.evaluation is not None:
        for name in ("hallucinated", "factually_correct", "toxic", "jailbroken", "adversarial", "policy_violation"):
            add(f"eval_{name}", getattr(mapping.evaluation, name), f"evaluation.{name}", "flag")
    if mapping.agent is not None:
        add("outcome", mapping.agent.outcome, "agent.outcome")
        add("task", mapping.agent.task, "agent.task")
        add("task_success", mapping.agent.task_success, "agent.task_success", "flag")
        add("stop_requested_at", mapping.agent.stop_requested_at, "agent.stop_requested_at", "time")
        add("stopped_at", mapping.agent.stopped_at, "agent.stopped_at", "time")
    if mapping.drift is not None:
        for index, feature in enumerate(mapping.drift.features):
            add(f"feature_{index}", feature, f"drift.features[{index}]", "number")
    return roles


def _as_time(value: Any, role: str) -> Any:
    dtype = value.type()
    if dtype.is_timestamp():
        return value
    if dtype.is_string():
        return value.cast("timestamp")
    if dtype.is_date():
        return value.cast("timestamp")
    raise CharterError.single("mapping_column", f"{role}: the column is {dtype}, not a time", path=f"$.{role}")


def _check_kind(name: str, path: str, value: Any, roles: _Roles) -> None:
    dtype = value.type()
    if name in roles.flags and not (dtype.is_boolean() or dtype.is_integer() or dtype.is_floating()):
        raise CharterError.single("mapping_column", f"{path}: the column is {dtype}; expected 0/1 or true/false",
                                  path=f"$.{path}")
    if name in roles.numbers and not dtype.is_numeric():
        raise CharterError.single("mapping_column", f"{path}: the column is {dtype}; expected a number",
                                  path=f"$.{path}")


def is_nan(value: Any, engine: str) -> Any:
    """True where a floating-point value is NaN, false elsewhere (null included).

    DuckDB folds ``isnan(x)`` to false from a Parquet file's statistics, which do not record NaN (seen with
    DuckDB 2.0): there, a value that is neither null, finite nor infinite is NaN.
    """
    ibis = _ibis()
    found = (value.notnull() & ~_duckdb_isfinite(value) & ~value.isinf()) if engine == "duckdb" else value.isnan()
    return ibis.ifelse(found.isnull(), False, found)


def _duckdb_isfinite(value: Any) -> Any:
    ibis = _ibis()

    @ibis.udf.scalar.builtin(name="isfinite")  # type: ignore[untyped-decorator]
    def isfinite(x: float) -> bool:  # type: ignore[empty-body]
        """DuckDB's own isfinite()."""

    return isfinite(value)


def _as_int(flag: Any) -> Any:
    """A boolean as 0/1, null kept: PostgreSQL has no cast from boolean to bigint, so no engine gets one."""
    ibis = _ibis()
    return ibis.ifelse(flag.isnull(), ibis.null("int64"), ibis.ifelse(flag, ibis.literal(1, "int64"),
                                                                      ibis.literal(0, "int64")))


def _window_filter(ts: Any, window: Window) -> Any:
    ibis = _ibis()
    if ts.type().timezone is None:  # wall-clock times are read as UTC
        start, end = window.start.replace(tzinfo=None), window.end.replace(tzinfo=None)
    else:
        start, end = window.start, window.end
    return (ts >= ibis.literal(start)) & (ts < ibis.literal(end))


@dataclass
class Prepared:
    """The window's rows with every mapped role under a fixed name, NaN turned into null."""

    table: ir.Table
    raw: ir.Table
    roles: _Roles
    #: rows of the whole source whose time is null: they belong to no window (a scalar expression)
    untimed: Any = None
    #: the window's ids (one column, ``id``), when the mapping names the id column
    ids: ir.Table | None = None


def prepare(table: ir.Table, mapping: IngestMapping, window: Window, engine: str = "duckdb") -> Prepared:
    """Select the window's rows and name the mapped columns by role (``label``, ``score``, ``seg_region``...).

    NaN in a floating-point column becomes null, and a 0/1 marker column ``nan__NAME`` beside it counts it.
    """
    ibis = _ibis()
    roles = _roles(table, mapping)
    for name, (path, value) in roles.raw.items():
        _check_kind(name, path, value, roles)
    columns: dict[str, Any] = {}
    for name, (path, value) in roles.raw.items():
        if name in roles.times:
            value = _as_time(value, path)
        elif name in roles.flags:
            value = _as_int(value) if value.type().is_boolean() else value
        elif name.startswith("seg_") or name in {"outcome", "task"}:
            value = value.cast("string")
        columns[name] = value
    raw = table.select(**columns)
    untimed = raw.filter(raw.ts.isnull()).count()
    ids = None
    if mapping.id is not None:
        # kept out of `raw`, whose columns are the rows' digest in the provenance
        keyed = table.select(ts=columns["ts"], id=column_of(table, mapping.id, "id"))
        ids = keyed.filter(_window_filter(keyed.ts, window)).select("id")
    raw = raw.filter(_window_filter(raw.ts, window))
    cleaned: dict[str, Any] = {}
    for name in raw.columns:
        value = raw[name]
        if value.type().is_floating():
            nan = is_nan(value, engine)
            cleaned[name] = ibis.ifelse(nan, ibis.null(value.type()), value)
            cleaned[f"nan__{name}"] = _as_int(nan)
        else:
            cleaned[name] = value
    if mapping.threshold is not None:
        cleaned["prediction"] = ibis.ifelse(cleaned["score"].isnull(), ibis.null("int64"),
                                            _as_int(cleaned["score"] >= mapping.threshold))
        roles.flags.add("prediction")
    return Prepared(raw.select(**cleaned), raw, roles, untimed, ids)


# -- the computation ----------------------------------------------------------------------------------

def compute(prepared: Prepared, mapping: IngestMapping, execute: Any,
            reference: Prepared | None = None) -> Computed:
    """Compute every KPI the mapping makes computable; `execute` runs an Ibis expression on the engine.

    Raises:
        CharterError: ``empty_window`` (no rows), ``bad_flag`` (a 0/1 column holds other values),
        ``labels_insufficient`` (label coverage below the mapping's threshold).
    """
    ibis = _ibis()
    t, roles = prepared.table, prepared.roles
    has = set(t.columns)
    # One pass for the counts and the data-quality figures.
    aggs: dict[str, Any] = {"n": t.count()}
    for name in roles.raw:
        if f"nan__{name}" in t.columns:
            aggs[f"nan__{name}"] = t[f"nan__{name}"].sum()
            aggs[f"null__{name}"] = t[name].isnull().sum() - t[f"nan__{name}"].sum()
        else:
            aggs[f"null__{name}"] = t[name].isnull().sum()
        if name in roles.flags:
            aggs[f"bad__{name}"] = (t[name].notnull() & (t[name] != 0) & (t[name] != 1)).sum()
    if "score" in has:
        aggs["outside__score"] = (t.score.notnull() & ((t.score < 0) | (t.score > 1))).sum()
    for name in roles.numbers & has - {"score"}:
        if t[name].type().is_floating():
            aggs[f"inf__{name}"] = t[name].isinf().sum()
        if name in _NOT_NEGATIVE:
            aggs[f"negative__{name}"] = (t[name] < 0).sum()
    labelled = None
    if "label" in has and "prediction" in has:
        labelled = t.label.notnull() & t.prediction.notnull()
        aggs.update(_confusion(t, labelled))
    if "prediction" in has and mapping.favourable is not None:
        aggs["pred_n"] = t.prediction.notnull().sum()
        aggs["pred_fav"] = (t.prediction == _favourable_class(mapping)).sum()
    if "label" in has:
        aggs["label_n"] = t.label.notnull().sum()
    if "task" in has:
        aggs["cnt__task"] = t.task.count()
    for name in ("override", "eval_hallucinated", "eval_factually_correct", "eval_toxic", "eval_policy_violation",
                 "task_success"):
        if name in has:
            aggs[f"sum__{name}"] = t[name].sum()
            aggs[f"cnt__{name}"] = t[name].count()
    if "eval_jailbroken" in has:
        suite = t.eval_jailbroken.notnull() & ((t.eval_adversarial == 1) if "eval_adversarial" in has else True)
        aggs["sum__jailbroken"] = ibis.ifelse(suite, t.eval_jailbroken, 0).sum()
        aggs["cnt__jailbroken"] = suite.sum()
    for name in ("latency",):
        if name in has:
            aggs["p50__latency"] = t[name].quantile(0.5)
            aggs["p95__latency"] = t[name].quantile(0.95)
    for name in ("cost", "tokens"):
        if name in has:
            aggs[f"fsum__{name}"] = t[name].sum()
            aggs[f"cnt__{name}"] = t[name].count()
    if "outcome" in has and mapping.agent is not None:
        aggs["cnt__outcome"] = t.outcome.count()
        for outcome in ("blocked", "unauthorized"):
            aggs[f"out__{outcome}"] = (t.outcome == mapping.agent.value_of(outcome)).sum()
    if "stop_requested_at" in has and "stopped_at" in has:
        both = t.stop_requested_at.notnull() & t.stopped_at.notnull()
        aggs["stop_n"] = both.sum()
        # Microseconds apart, an integer on every engine (epoch_seconds would drop the fraction).
        elapsed = t.stopped_at.delta(t.stop_requested_at, unit="microsecond").cast("float64") / 1e6
        aggs["stop_max_s"] = ibis.ifelse(both, elapsed, ibis.null("float64")).max()
    counts = _row(execute(t.aggregate(**aggs)))
    out = Computed(rows=int(counts["n"]))
    if out.rows == 0:
        raise CharterError.single("empty_window", "the window holds no rows: nothing can be measured")
    for name, (path, _) in roles.raw.items():
        nulls, nans = int(counts[f"null__{name}"] or 0), int(counts.get(f"nan__{name}") or 0)
        if nulls or nans:
            out.quality[column_name_of(mapping, path)] = {"nulls": nulls, "nan": nans}
        if int(counts.get(f"bad__{name}") or 0):
            raise CharterError.single("bad_flag", f"{path}: {int(counts[f'bad__{name}']):,} rows of the window hold "
                                      "a value other than 0, 1, true or false", path=f"$.{path}")
    if int(counts.get("outside__score") or 0):
        raise CharterError.single("bad_score", f"score: {int(counts['outside__score']):,} rows hold a score outside "
                                  "[0, 1]; the score is the positive class's probability", path="$.score")
    for name, (path, _) in roles.raw.items():
        for kind, what in (("inf", "an infinite value"), ("negative", "a negative value")):
            if int(counts.get(f"{kind}__{name}") or 0):
                raise CharterError.single("bad_value", f"{path}: {int(counts[f'{kind}__{name}']):,} rows of the window "
                                          f"hold {what} (column {column_name_of(mapping, path)!r}); a KPI over them "
                                          "would mean nothing", path=f"$.{path}")
    _timestamps_and_ids(out, prepared, mapping, execute)
    _label_coverage(out, counts, mapping, t, execute)
    if labelled is not None:
        _classification(out, counts, mapping)
    if "label" in has and "score" in has:
        # Score KPIs need a label and a score; the predicted class plays no part in them.
        _ranking(out, t.filter(t.label.notnull() & t.score.notnull()), execute)
        _calibration(out, t.filter(t.label.notnull() & t.score.notnull()), execute)
    if "pred_n" in counts and int(counts["pred_n"]):
        out.kpis["approval_rate"] = int(counts["pred_fav"]) / int(counts["pred_n"])
    elif "prediction" in has and mapping.favourable is None:
        out.notes.append("approval_rate: not computed, the mapping does not say which predicted class is favourable "
                         "(favourable: positive|negative)")
    _rates(out, counts)
    if "task" in has and "task_success" in has:
        task_success(out, t, execute)  # per task, not per action row
    if mapping.cost is not None and mapping.cost.per == "request" and "cost_per_prediction" in out.kpis:
        out.kpis["cost_per_request"] = out.kpis.pop("cost_per_prediction")
    if mapping.segments:
        _segments(out, t, mapping, execute)
    if reference is not None and mapping.drift is not None:
        _drift(out, prepared, reference, mapping, execute)
    return out


#: number roles that cannot be below zero: a negative latency, cost or token count is a broken log
_NOT_NEGATIVE = frozenset({"latency", "cost", "tokens"})


def _timestamps_and_ids(out: Computed, prepared: Prepared, mapping: IngestMapping, execute: Any) -> None:
    """Say what the window's rows cannot: the source's rows without a time (in no window); and refuse a
    window in which an id repeats, since each repeated row would count twice in every KPI."""
    timestamp = column_name_of(mapping, "timestamp")
    untimed = int(execute(prepared.untimed) or 0) if prepared.untimed is not None else 0
    if untimed:
        out.quality[timestamp] = {"nulls": untimed, "nan": 0}
        out.notes.append(f"timestamp: {untimed:,} rows of the source have no time ({timestamp!r} is null), so they "
                         "belong to no window and are measured in none")
    if prepared.ids is None:
        return
    ids = prepared.ids
    row = _row(execute(ids.aggregate(n=ids.count(), nulls=ids.id.isnull().sum(), distinct=ids.id.nunique())))
    nulls = int(row["nulls"] or 0)
    repeated = int(row["n"] or 0) - nulls - int(row["distinct"] or 0)
    if repeated:
        raise CharterError.single("duplicate_ids", f"id: {repeated:,} rows of the window repeat an id already in it "
                                  f"(column {column_name_of(mapping, 'id')!r}); each would count twice in every KPI: "
                                  "keep one row per id in the source (its latest, where a label arrives later), "
                                  "or map the column that identifies a row", path="$.id")
    if nulls:
        out.quality[column_name_of(mapping, "id")] = {"nulls": nulls, "nan": 0}


def column_name_of(mapping: IngestMapping, path: str) -> str:
    """The source column behind a mapping path (``segments.age`` -> ``age_band``), for the quality report."""
    node: Any = mapping
    for part in re.split(r"\.|\[(\d+)\]", path):
        if not part:
            continue
        node = node[int(part)] if part.isdigit() else (node[part] if isinstance(node, dict) else getattr(node, part))
    return column_name(node) if isinstance(node, str | list) else path


def _row(frame: Any) -> dict[str, Any]:
    record: dict[str, Any] = frame.to_dict("records")[0]
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}


def _favourable_class(mapping: IngestMapping) -> int:
    """The predicted class (1 or 0) that is the favourable outcome."""
    return 1 if mapping.favourable == "positive" else 0


def _confusion(t: ir.Table, where: Any) -> dict[str, Any]:
    ibis = _ibis()

    def count(condition: Any) -> Any:
        return ibis.ifelse(where & condition, 1, 0).sum()

    return {"tp": count((t.label == 1) & (t.prediction == 1)), "fp": count((t.label == 0) & (t.prediction == 1)),
            "tn": count((t.label == 0) & (t.prediction == 0)), "fn": count((t.label == 1) & (t.prediction == 0))}


def _ratios(tp: int, fp: int, tn: int, fn: int, where: str, notes: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    total = tp + fp + tn + fn
    if not total:
        notes.append(f"accuracy, precision, recall, f1{where}: not computed, no row has both a label and a prediction")
        return out
    out["accuracy"] = (tp + tn) / total
    if tp + fp:
        out["precision"] = tp / (tp + fp)
    else:
        notes.append(f"precision{where}: not computed, no positive predictions")
    if tp + fn:
        out["recall"] = tp / (tp + fn)
    else:
        notes.append(f"recall{where}: not computed, no positive labels")
    if tp + fp and tp + fn:
        out["f1"] = 2 * tp / (2 * tp + fp + fn)
    else:
        notes.append(f"f1{where}: not computed, it needs both precision and recall")
    return out


def _label_coverage(out: Computed, counts: dict[str, Any], mapping: IngestMapping, t: ir.Table, execute: Any) -> None:
    if "label_n" not in counts:
        return
    labelled = int(counts["label_n"])
    out.label_coverage = labelled / out.rows
    needed = mapping.labels.min_coverage
    if out.label_coverage < needed:
        raise CharterError.single("labels_insufficient", f"labels cover {labelled:,} of {out.rows:,} rows "
                                  f"({out.label_coverage:.1%}); the mapping needs {needed:.0%} before label-based "
                                  "KPIs are measured (labels.min_coverage): the window is not measurable yet",
                                  path="$.labels.min_coverage")
    if "label_time" in t.columns:
        # The moment coverage reached the threshold: the k-th label to arrive, k = ceil(min_coverage * rows).
        k = max(1, math.ceil(needed * out.rows - 1e-9))
        arrived = t.filter(t.label.notnull() & t.label_time.notnull())
        frame = execute(arrived.select("label_time").order_by("label_time").limit(1, offset=k - 1))
        if len(frame):
            moment = frame["label_time"].iloc[0].to_pydatetime()
            out.labels_sufficient_at = moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _classification(out: Computed, counts: dict[str, Any], mapping: IngestMapping) -> None:
    tp, fp, tn, fn = (int(counts[k]) for k in ("tp", "fp", "tn", "fn"))
    out.kpis.update(_ratios(tp, fp, tn, fn, "", out.notes))
    if mapping.unit_costs is not None and not tp + fp + tn + fn:
        out.notes.append("cost_false_positives, cost_false_negatives: not computed, no row has both a label and a "
                         "prediction")
    elif mapping.unit_costs is not None:
        if mapping.unit_costs.false_positive is not None:
            out.kpis["cost_false_positives"] = fp * mapping.unit_costs.false_positive
        if mapping.unit_costs.false_negative is not None:
            out.kpis["cost_false_negatives"] = fn * mapping.unit_costs.false_negative


def _ranking(out: Computed, t: ir.Table, execute: Any) -> None:
    """Exact ROC-AUC (rank sum with ties halved, integer arithmetic) and average precision (as scikit-learn)."""
    ibis = _ibis()
    grouped = t.group_by("score").aggregate(pos=(t.label == 1).sum().cast("int64"),
                                            neg=(t.label == 0).sum().cast("int64"))
    ascending = grouped.mutate(neg_upto=grouped.neg.cumsum(order_by=grouped.score))
    descending = grouped.mutate(tp=grouped.pos.cumsum(order_by=ibis.desc(grouped.score)),
                                fp=grouped.neg.cumsum(order_by=ibis.desc(grouped.score)))
    auc = _row(execute(ascending.aggregate(
        rank2=(ascending.pos * (2 * ascending.neg_upto - ascending.neg)).sum(),
        p=ascending.pos.sum(), n=ascending.neg.sum())))
    positives, negatives = int(auc["p"] or 0), int(auc["n"] or 0)
    if not positives or not negatives:
        out.notes.append("roc_auc, pr_auc, calibration_error: not computed, no row has both a label and a score"
                         if not positives + negatives else
                         "roc_auc, pr_auc: not computed, the labelled rows hold a single class")
        return
    out.kpis["roc_auc"] = int(auc["rank2"]) / (2 * positives * negatives)
    ap = _row(execute(descending.aggregate(
        total=(descending.pos.cast("float64") * descending.tp.cast("float64")
               / (descending.tp + descending.fp).cast("float64")).sum())))
    out.kpis["pr_auc"] = float(ap["total"]) / positives


def _calibration(out: Computed, t: ir.Table, execute: Any) -> None:
    ibis = _ibis()
    bin_ = ibis.least((t.score * CALIBRATION_BINS).floor().cast("int64"), CALIBRATION_BINS - 1)
    binned = t.mutate(bin=bin_)
    frame = execute(binned.group_by("bin").aggregate(
        n=binned.count(), labels=binned.label.sum().cast("int64"), scores=binned.score.sum()))
    total = int(frame["n"].sum())
    if total:
        out.kpis["calibration_error"] = sum(abs(int(r.labels) - float(r.scores)) for r in frame.itertuples()) / total


def _rates(out: Computed, counts: dict[str, Any]) -> None:
    def mean(kpi: str, name: str) -> None:
        total = int(counts.get(f"cnt__{name}") or 0)
        if f"cnt__{name}" not in counts:
            return
        if total:
            out.kpis[kpi] = float(counts.get(f"sum__{name}") or counts.get(f"fsum__{name}") or 0) / total
        else:
            out.notes.append(f"{kpi}: not computed, no row of the window has a value")

    mean("human_override_rate", "override")
    mean("hallucination_rate", "eval_hallucinated")
    mean("factual_accuracy", "eval_factually_correct")
    mean("toxicity_rate", "eval_toxic")
    mean("jailbreak_success_rate", "jailbroken")
    mean("tokens_per_response", "tokens")
    if "cnt__task" not in counts:  # with a task column the rate is per task (task_success), not per row
        mean("task_success_rate", "task_success")
    if "cnt__cost" in counts:
        mean("cost_per_prediction", "cost")  # renamed cost_per_request when the mapping says so
    if "cnt__eval_policy_violation" in counts:
        out.kpis["policy_violations"] = float(int(counts.get("sum__eval_policy_violation") or 0))
    if "p50__latency" in counts:
        if counts["p50__latency"] is not None:
            out.kpis["latency_p50_ms"] = float(counts["p50__latency"])
            out.kpis["latency_p95_ms"] = float(counts["p95__latency"])
        else:
            out.notes.append("latency_p50_ms, latency_p95_ms: not computed, no row of the window has a latency")
    if "cnt__outcome" in counts:
        actions = int(counts["cnt__outcome"])
        out.kpis["unauthorized_actions"] = float(int(counts["out__unauthorized"] or 0))
        if actions:
            out.kpis["actions_blocked_rate"] = int(counts["out__blocked"] or 0) / actions
        else:
            out.notes.append("actions_blocked_rate: not computed, no row of the window has an outcome")
    if "stop_n" in counts:
        if int(counts["stop_n"] or 0):
            out.kpis["time_to_stop_seconds"] = float(counts["stop_max_s"])
        else:
            out.notes.append("time_to_stop_seconds: not computed, no stop drill in the window")


def task_success(out: Computed, t: ir.Table, execute: Any) -> None:
    """Share of tasks (distinct task ids) that succeeded: a task succeeded when any of its rows says so."""
    known = t.filter(t.task.notnull() & t.task_success.notnull())
    tasks = known.group_by("task").aggregate(ok=known.task_success.max())
    row = _row(execute(tasks.aggregate(n=tasks.count(), ok=tasks.ok.sum())))
    if int(row["n"] or 0):
        out.kpis["task_success_rate"] = int(row["ok"] or 0) / int(row["n"])
    else:
        out.notes.append("task_success_rate: not computed, no task with an outcome in the window")


def segment_key(dimension: str, value: str) -> str:
    """``age:18-25`` from a group value: white space, colons, control and bidirectional-format characters
    become ``-`` (a key has no white space or colon, and data must not steer a terminal or a report)."""
    visible = "".join("-" if unicodedata.category(c) in _INVISIBLE else c for c in value.strip())
    return f"{dimension}:{_SEGMENT_VALUE.sub('-', visible)[:64] or '-'}"


def _segments(out: Computed, t: ir.Table, mapping: IngestMapping, execute: Any) -> None:
    has = set(t.columns)
    for dimension in mapping.segments:
        column = t[f"seg_{dimension}"]
        aggs: dict[str, Any] = {"n": t.count()}
        if "label" in has and "prediction" in has:
            aggs.update(_confusion(t, t.label.notnull() & t.prediction.notnull()))
        if "prediction" in has and mapping.favourable is not None:
            aggs["pred_n"] = t.prediction.notnull().sum()
            aggs["pred_fav"] = (t.prediction == _favourable_class(mapping)).sum()
        if "override" in has:
            aggs["sum__override"] = t.override.sum()
            aggs["cnt__override"] = t.override.count()
        # Grouped on the whole window (null group included, then skipped): the rows without a group are
        # already counted in the quality report.
        grouped = t.group_by(group=column).aggregate(**aggs)
        frame = execute(grouped.filter(grouped.group.notnull()).order_by("group").limit(MAX_GROUPS + 1))
        if len(frame) > MAX_GROUPS:
            raise CharterError.single("too_many_groups", f"segments.{dimension}: more than {MAX_GROUPS:,} groups; a "
                                      "segment column holds categories (region, age band), not ids",
                                      path=f"$.segments.{dimension}")
        approvals: dict[str, float] = {}
        recalls: dict[str, float] = {}
        small: list[str] = []
        for record in frame.to_dict("records"):
            key = segment_key(dimension, str(record["group"]))
            if key in out.groups:
                raise CharterError.single("segment_collision", f"segments.{dimension}: two groups both read as "
                                          f"{key!r} once white space and colons are replaced",
                                          path=f"$.segments.{dimension}")
            rows = out.groups[key] = int(record["n"] or 0)
            if rows < mapping.min_group_rows:
                small.append(f"{key} ({rows:,})")
                continue
            values: dict[str, float] = {}
            if "tp" in record:
                notes: list[str] = []
                tp, fp, tn, fn = (int(record[k] or 0) for k in ("tp", "fp", "tn", "fn"))
                values.update(_ratios(tp, fp, tn, fn, f" [{key}]", notes))
                out.notes.extend(notes)
            if int(record.get("pred_n") or 0):
                values["approval_rate"] = int(record["pred_fav"] or 0) / int(record["pred_n"])
                approvals[key] = values["approval_rate"]
            if int(record.get("cnt__override") or 0):
                values["human_override_rate"] = int(record["sum__override"] or 0) / int(record["cnt__override"])
            if "recall" in values:
                recalls[key] = values["recall"]
            if values:
                out.segments[key] = values
        if small:
            out.notes.append(f"segments.{dimension}: {len(small):,} groups have fewer than min_group_rows "
                             f"({mapping.min_group_rows:,}) rows, so no KPIs and no part in the gaps between groups: "
                             + ", ".join(small[:20]) + (" ..." if len(small) > 20 else ""))
        if dimension in mapping.sensitive:
            _fairness(out, dimension, approvals, recalls)


def _fairness(out: Computed, dimension: str, approvals: dict[str, float], recalls: dict[str, float]) -> None:
    """Gaps between the groups of a sensitive dimension; over several dimensions the worst one counts."""
    if len(approvals) >= 2:
        high, low = max(approvals.values()), min(approvals.values())
        gap = high - low
        out.kpis["fairness_gap"] = max(gap, out.kpis.get("fairness_gap", gap))
        if high > 0:
            ratio = low / high
            out.kpis["disparate_impact_ratio"] = min(ratio, out.kpis.get("disparate_impact_ratio", ratio))
        else:
            out.notes.append(f"disparate_impact_ratio [{dimension}]: not computed, no group has a favourable outcome")
    else:
        out.notes.append(f"fairness_gap, disparate_impact_ratio [{dimension}]: not computed, fewer than two groups")
    if len(recalls) >= 2:
        gap = max(recalls.values()) - min(recalls.values())
        out.kpis["equal_opportunity_difference"] = max(gap, out.kpis.get("equal_opportunity_difference", gap))
    else:
        out.notes.append(f"equal_opportunity_difference [{dimension}]: not computed, fewer than two groups with "
                         "positive labels")


def _drift(out: Computed, current: Prepared, reference: Prepared, mapping: IngestMapping, execute: Any) -> None:
    assert mapping.drift is not None
    features = [(f"feature_{i}", column_name(f)) for i, f in enumerate(mapping.drift.features)]
    if mapping.drift.score and "score" in current.table.columns:
        features.append(("score", "score"))
    if not features:
        return
    bins = mapping.drift.bins
    ref, cur = reference.table, current.table
    # All the edges of a feature in one quantile call: the engine sorts each column once, not bins - 1 times.
    quantiles = {f"q__{name}": ref[name].quantile([i / bins for i in range(1, bins)]) for name, _ in features}
    quantiles.update({f"n__{name}": ref[name].count() for name, _ in features})
    edges_row = execute(ref.aggregate(**quantiles)).to_dict("records")[0]
    for name, label in features:
        if not int(edges_row[f"n__{name}"] or 0):
            out.notes.append(f"drift [{label}]: not computed, the reference window has no value")
            continue
        edges = sorted({float(edge) for edge in edges_row[f"q__{name}"]})
        ref_counts = _histogram(ref, name, edges, execute)
        cur_counts = _histogram(cur, name, edges, execute)
        if not sum(cur_counts):
            out.notes.append(f"drift [{label}]: not computed, the window has no value")
            continue
        out.drift[label] = {"psi": psi(ref_counts, cur_counts), "js": js_distance(ref_counts, cur_counts),
                            "ks": _ks(ref, cur, name, execute), "bins": float(len(edges) + 1)}
    named = [out.drift[label] for name, label in features if label in out.drift and name != "score"]
    if named:
        out.kpis["data_drift_psi"] = max(v["psi"] for v in named)
        out.kpis["data_drift_ks"] = max(v["ks"] for v in named)
        out.kpis["data_drift_js"] = max(v["js"] for v in named)
    if "score" in out.drift and any(name == "score" for name, _ in features):
        out.kpis["score_drift_psi"] = out.drift["score"]["psi"]


def _histogram(t: ir.Table, name: str, edges: list[float], execute: Any) -> list[int]:
    """Counts per bin, bin = number of edges below the value (numpy.searchsorted(edges, x, side='left'))."""
    ibis = _ibis()
    value = t[name]
    bin_ = sum((_as_int(value > edge) for edge in edges), ibis.literal(0, "int64"))
    binned = t.filter(value.notnull()).mutate(bin=bin_)
    frame = execute(binned.group_by("bin").aggregate(n=binned.count()))
    counts = [0] * (len(edges) + 1)
    for record in frame.to_dict("records"):
        counts[int(record["bin"])] = int(record["n"])
    return counts


def _ks(ref: ir.Table, cur: ir.Table, name: str, execute: Any) -> float:
    """Two-sample Kolmogorov-Smirnov statistic, exact: the largest gap between the two empirical CDFs."""
    ibis = _ibis()
    both = ref.filter(ref[name].notnull()).select(v=ref[name], src=ibis.literal(0, "int64")).union(
        cur.filter(cur[name].notnull()).select(v=cur[name], src=ibis.literal(1, "int64")), distinct=False)
    grouped = both.group_by("v").aggregate(r=(both.src == 0).sum().cast("int64"), c=(both.src == 1).sum().cast("int64"))
    totals = _row(execute(grouped.aggregate(r=grouped.r.sum(), c=grouped.c.sum())))
    n_ref, n_cur = int(totals["r"]), int(totals["c"])
    steps = grouped.mutate(cr=grouped.r.cumsum(order_by=grouped.v), cc=grouped.c.cumsum(order_by=grouped.v))
    gap = _row(execute(steps.aggregate(gap=(steps.cr * n_cur - steps.cc * n_ref).abs().max())))
    return int(gap["gap"]) / (n_ref * n_cur)


def psi(reference: list[int], current: list[int]) -> float:
    """Population stability index over the same bins; proportions floored at `PSI_FLOOR`."""
    n_ref, n_cur = sum(reference), sum(current)
    total = 0.0
    for r, c in zip(reference, current, strict=True):
        p, q = max(r / n_ref, PSI_FLOOR), max(c / n_cur, PSI_FLOOR)
        total += (q - p) * math.log(q / p)
    return total


def js_distance(reference: list[int], current: list[int]) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between the two histograms, as scipy computes it."""
    n_ref, n_cur = sum(reference), sum(current)
    divergence = 0.0
    for r, c in zip(reference, current, strict=True):
        p, q = r / n_ref, c / n_cur
        m = (p + q) / 2
        if p:
            divergence += p * math.log2(p / m) / 2
        if q:
            divergence += q * math.log2(q / m) / 2
    return math.sqrt(max(divergence, 0.0))
