"""`charter ingest` on DuckDB against the usual pandas + scikit-learn + fairlearn + scipy way, in the same run.

Generates N prediction rows over two months (2026-01, the reference window, and 2026-02, the measured
window) as a folder of Parquet files: three segment attributes (region, age band, channel), a label
(1% not yet labelled), a score with ties (three decimals; the prediction is score >= 0.5), latency,
cost, a human-override flag and two numeric features that drift a little between the months. Then,
each in a subprocess of its own so that peak memory is the path's alone (the child's ru_maxrss):

- charter: `charter.ingest.measure` on DuckDB, the full KPI set the mapping below makes computable
  (classification, ROC-AUC, PR-AUC, calibration, approval, costs, override, latency, segments, fairness
  over two sensitive dimensions, drift of both features and of the score against the reference month);
- baseline: the same KPIs the usual way: the needed columns of both windows read into pandas
  (pandas.read_parquet with the window as a filter), then scikit-learn metrics, fairlearn MetricFrame
  and demographic parity difference/ratio, numpy quantiles and PSI, scipy ks_2samp and jensenshannon;
- spark (unless --no-spark): `measure(engine="spark")` in local mode on a smaller data set
  (--spark-rows), with and without the session start, against DuckDB on the same rows.

Reported: seconds per path (load + compute; imports apart), the ratio baseline / charter (target: at
least 5x), peak RSS per path (target: charter within 2 GiB at 10M rows), and the largest relative
difference between the KPIs both paths compute (segments and per-feature drift included).

    python bench/ingest.py [--rows 10000000] [--spark-rows 1000000] [--no-spark] [--data DIR]
                           [--repeat 1] [--duckdb-memory-limit 1GB] [--json FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "engine")]

REFERENCE, MEASURED = "2026-01", "2026-02"
MONTHS = ((2026, 1), (2026, 2))
REGIONS = ("north", "south", "east", "west", "central")
AGES = ("18-29", "30-44", "45-64", "65+")
CHANNELS = ("web", "app", "branch")
THRESHOLD = 0.5
UNIT_COSTS = {"false_positive": 40.0, "false_negative": 900.0}
FEATURES = ("amount", "merchant_risk")
BINS = 10
SENSITIVE = {"age": "age_band", "region": "region"}
SEGMENTS = {"region": "region", "age": "age_band", "channel": "channel"}
MAPPING: dict[str, Any] = {
    "timestamp": "ts", "label": "label", "score": "score", "threshold": THRESHOLD, "segments": SEGMENTS,
    "sensitive": list(SENSITIVE), "favourable": "positive", "override": "human_override",
    "latency_ms": "latency_ms",
    "cost": {"column": "cost", "per": "prediction"}, "unit_costs": UNIT_COSTS,
    "drift": {"features": list(FEATURES), "score": True, "bins": BINS}, "labels": {"min_coverage": 0.9},
}
#: Rows per file and per Parquet row group.
FILE_ROWS, ROW_GROUP = 1_000_000, 262_144
GIB = 1 << 30


# -- data ------------------------------------------------------------------------------------------

def _chunk(rows: int, month: int, seed: int) -> Any:
    """`rows` prediction rows of one month as an Arrow table, sorted by time as a log is."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    year, mon = MONTHS[month]
    start = datetime.datetime(year, mon, 1, tzinfo=datetime.UTC)
    end = datetime.datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=datetime.UTC)
    span = int((end - start).total_seconds() * 1e6)
    ts = np.sort(rng.integers(0, span, rows)) + int(start.timestamp() * 1e6)
    region = rng.choice(len(REGIONS), rows, p=[0.3, 0.25, 0.2, 0.15, 0.1])
    age = rng.choice(len(AGES), rows, p=[0.2, 0.35, 0.3, 0.15])
    channel = rng.choice(len(CHANNELS), rows, p=[0.5, 0.35, 0.15])
    label = rng.random(rows) < 0.08 + 0.02 * age + 0.01 * (region == 4)
    shift = 0.15 * month  # the measured month drifts a little
    amount = np.round(rng.lognormal(3.5 + shift, 1.0, rows), 2)
    risk = np.round(rng.beta(2.0 + shift, 5.0, rows), 2)
    logit = -2.6 + 3.2 * label + 0.25 * (age == 3) - 0.2 * (region == 1) + 1.5 * (risk - 0.3) + rng.normal(0, 1, rows)
    score = np.round(1.0 / (1.0 + np.exp(-logit)), 3)  # three decimals: ties
    override = rng.random(rows) < 0.02 + 0.06 * (np.abs(score - THRESHOLD) < 0.1)
    latency = np.round(rng.lognormal(4.0, 0.5, rows), 1)
    cost = np.round(0.002 + latency * 1e-5 + rng.exponential(0.0005, rows), 6)
    unlabelled = rng.random(rows) < 0.01
    return pa.table({
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "region": pa.array(np.array(REGIONS, dtype=object)[region], pa.string()),
        "age_band": pa.array(np.array(AGES, dtype=object)[age], pa.string()),
        "channel": pa.array(np.array(CHANNELS, dtype=object)[channel], pa.string()),
        "label": pa.array(label.astype(np.int8), pa.int8(), mask=unlabelled),
        "score": score, "human_override": override, "latency_ms": latency, "cost": cost,
        "amount": amount, "merchant_risk": risk,
    })


def generate(folder: Path, rows: int, seed: int = 7) -> float:
    """Write `rows` rows (half in each month) as Parquet files into `folder`, unless it already holds them."""
    import pyarrow.parquet as pq

    manifest = folder / "_manifest.json"
    wanted = {"rows": rows, "seed": seed, "file_rows": FILE_ROWS, "row_group": ROW_GROUP, "version": 1}
    if manifest.exists() and json.loads(manifest.read_text()) == wanted:
        return 0.0
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    for month in range(2):
        left, part = rows // 2 + (rows % 2 if month else 0), 0
        while left:
            size = min(FILE_ROWS, left)
            pq.write_table(_chunk(size, month, seed * 1000 + month * 100 + part),
                           folder / f"month{month + 1}-part{part:03d}.parquet", row_group_size=ROW_GROUP)
            left -= size
            part += 1
    manifest.write_text(json.dumps(wanted))  # a name starting with "_" is not read as data
    return time.perf_counter() - started


# -- the charter path --------------------------------------------------------------------------------

def _flat(kpis: dict[str, float], segments: dict[str, dict[str, float]],
          drift: dict[str, dict[str, float]]) -> dict[str, float]:
    """One flat dict for comparison: KPIs, ``segment|dim:group|kpi``, ``drift|feature|measure``."""
    out = {k: float(v) for k, v in kpis.items()}
    out.update({f"segment|{key}|{k}": float(v) for key, values in segments.items() for k, v in values.items()})
    out.update({f"drift|{name}|{k}": float(v) for name, values in drift.items() for k, v in values.items()
                if k in ("psi", "js", "ks")})
    return out


def _limit_duckdb(memory_limit: str | None, threads: int | None) -> None:
    """Bench-only: make `ibis.duckdb.connect()` open DuckDB with a memory limit and/or a thread count."""
    if not memory_limit and not threads:
        return
    import ibis

    connect = ibis.duckdb.connect
    config = {**({"memory_limit": memory_limit} if memory_limit else {}), **({"threads": threads} if threads else {})}

    def limited(*args: Any, **kwargs: Any) -> Any:
        return connect(*args, **{**config, **kwargs})

    ibis.duckdb.connect = limited


def run_charter(data: Path, engine: str, repeat: int, memory_limit: str | None, threads: int | None) -> dict[str, Any]:
    started = time.perf_counter()
    from charter.ingest import IngestMapping, Window, measure
    from charter.ingest.sources import files_digests, parse_source

    result: dict[str, Any] = {"import_s": time.perf_counter() - started}
    mapping = IngestMapping.model_validate(MAPPING)
    window, reference = Window.parse(MEASURED), Window.parse(REFERENCE)
    spark = None
    if engine == "duckdb":
        _limit_duckdb(memory_limit, threads)
    else:
        from charter.ingest.sources import spark_session

        started = time.perf_counter()
        spark = spark_session()
        spark.range(1).count()  # the JVM, the context and the first job
        result["session_s"] = time.perf_counter() - started
    times = []
    for _ in range(repeat if engine == "duckdb" else max(repeat, 2)):  # Spark: a cold run, then a warm one
        started = time.perf_counter()
        m = measure(str(data), mapping, window, reference=reference, engine=engine, spark=spark,  # type: ignore[arg-type]
                    digest=False)
        times.append(time.perf_counter() - started)
    result.update(seconds=min(times), runs_s=times, rows=m.computed.rows, notes=m.notes,
                  values=_flat(m.kpis, m.segments, m.provenance["drift"]))
    if engine == "duckdb":  # what `charter ingest` adds for the bundle's provenance: SHA-256 of every input file
        started = time.perf_counter()
        files_digests(parse_source(str(data)))
        result["digest_s"] = time.perf_counter() - started
    else:
        result["jvm_peak_rss"] = _jvm_peak(spark)
        spark.stop()
    return result


def _jvm_peak(spark: Any) -> int | None:
    """The Spark driver JVM's peak RSS in bytes (VmHWM), read before it goes."""
    try:
        pid = spark.sparkContext._gateway.proc.pid
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except Exception:  # a remote or differently launched gateway: unknown
        return None
    return None


# -- the baseline path ------------------------------------------------------------------------------

def run_baseline(data: Path, repeat: int) -> dict[str, Any]:
    started = time.perf_counter()
    import numpy as np
    import pandas as pd
    from fairlearn.metrics import MetricFrame, demographic_parity_difference, demographic_parity_ratio, selection_rate
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import ks_2samp
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        confusion_matrix,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    result: dict[str, Any] = {"import_s": time.perf_counter() - started}

    def window_of(label: str) -> list[tuple[str, str, Any]]:
        year, month = (int(x) for x in label.split("-"))
        start = pd.Timestamp(year=year, month=month, day=1, tz="UTC")
        return [("ts", ">=", start), ("ts", "<", start + pd.offsets.MonthBegin(1))]

    phases: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        phases[name] = now - since
        return now

    def once() -> tuple[dict[str, float], dict[str, float], int]:
        begun = time.perf_counter()
        columns = ["label", "score", "region", "age_band", "channel", "human_override", "latency_ms", "cost",
                   *FEATURES]
        cur = pd.read_parquet(data, columns=columns, filters=window_of(MEASURED))
        ref = pd.read_parquet(data, columns=[*FEATURES, "score"], filters=window_of(REFERENCE))
        begun = lap("load_s", begun)
        kpis: dict[str, float] = {}
        pred = (cur["score"] >= THRESHOLD).astype(np.int8)
        labelled = cur["label"].notna().to_numpy()
        y, p, s = cur["label"].to_numpy()[labelled].astype(np.int8), pred.to_numpy()[labelled], \
            cur["score"].to_numpy()[labelled]
        kpis["accuracy"] = accuracy_score(y, p)
        kpis["precision"] = precision_score(y, p)
        kpis["recall"] = recall_score(y, p)
        kpis["f1"] = f1_score(y, p)
        kpis["roc_auc"] = roc_auc_score(y, s)
        kpis["pr_auc"] = average_precision_score(y, s)
        _, fp, fn, _ = confusion_matrix(y, p).ravel()
        kpis["cost_false_positives"] = fp * UNIT_COSTS["false_positive"]
        kpis["cost_false_negatives"] = fn * UNIT_COSTS["false_negative"]
        bins = np.minimum(np.floor(s * 10).astype(np.int64), 9)
        kpis["calibration_error"] = float(np.abs(np.bincount(bins, weights=y, minlength=10)
                                                 - np.bincount(bins, weights=s, minlength=10)).sum() / len(s))
        kpis["approval_rate"] = float(pred.mean())
        kpis["human_override_rate"] = float(cur["human_override"].mean())
        kpis["latency_p50_ms"], kpis["latency_p95_ms"] = (float(q) for q in np.quantile(cur["latency_ms"], [0.5, 0.95]))
        kpis["cost_per_prediction"] = float(cur["cost"].mean())

        begun = lap("overall_sklearn_s", begun)
        segments: dict[str, dict[str, float]] = {}
        metrics = {"accuracy": accuracy_score, "precision": precision_score, "recall": recall_score, "f1": f1_score}
        for dimension, column in SEGMENTS.items():
            groups = cur[column]
            labelled_frame = MetricFrame(metrics=metrics, y_true=y, y_pred=p, sensitive_features=groups[labelled])
            # Approval is over every row with a prediction, labelled or not (selection_rate ignores y_true).
            approval = MetricFrame(metrics=selection_rate, y_true=pred, y_pred=pred, sensitive_features=groups)
            override = cur.groupby(column, observed=True)["human_override"].mean()
            for group, row in labelled_frame.by_group.iterrows():
                segments[f"{dimension}:{group}"] = {k: float(v) for k, v in row.items()}
            for group, value in approval.by_group.items():
                segments[f"{dimension}:{group}"]["approval_rate"] = float(value)
            for group, value in override.items():
                segments[f"{dimension}:{group}"]["human_override_rate"] = float(value)
            if dimension in SENSITIVE:
                gap = demographic_parity_difference(pred, pred, sensitive_features=groups)
                ratio = demographic_parity_ratio(pred, pred, sensitive_features=groups)
                eod = MetricFrame(metrics=recall_score, y_true=y, y_pred=p,
                                  sensitive_features=groups[labelled]).difference()
                kpis["fairness_gap"] = max(gap, kpis.get("fairness_gap", gap))
                kpis["disparate_impact_ratio"] = min(ratio, kpis.get("disparate_impact_ratio", ratio))
                kpis["equal_opportunity_difference"] = max(eod, kpis.get("equal_opportunity_difference", eod))

        begun = lap("segments_fairlearn_s", begun)
        drift: dict[str, dict[str, float]] = {}
        for name in (*FEATURES, "score"):
            r, c = ref[name].to_numpy(), cur[name].to_numpy()
            edges = np.unique(np.quantile(r, np.arange(1, BINS) / BINS))
            rc = np.bincount(np.searchsorted(edges, r, side="left"), minlength=len(edges) + 1) / len(r)
            cc = np.bincount(np.searchsorted(edges, c, side="left"), minlength=len(edges) + 1) / len(c)
            pf, qf = np.maximum(rc, 1e-4), np.maximum(cc, 1e-4)
            drift[name] = {"psi": float(((qf - pf) * np.log(qf / pf)).sum()),
                           "js": float(jensenshannon(rc, cc, base=2)), "ks": float(ks_2samp(r, c).statistic)}
        kpis["data_drift_psi"] = max(drift[f]["psi"] for f in FEATURES)
        kpis["data_drift_ks"] = max(drift[f]["ks"] for f in FEATURES)
        kpis["data_drift_js"] = max(drift[f]["js"] for f in FEATURES)
        kpis["score_drift_psi"] = drift["score"]["psi"]
        begun = lap("drift_scipy_s", begun)
        # The segments and fairness gaps again with plain pandas group-bys: fairlearn's MetricFrame spends
        # most of its time in per-element Python (np.stack over each column), so this shows a leaner baseline.
        lean = _segments_pandas(cur, pred, labelled)
        lap("segments_pandas_s", begun)
        return _flat(kpis, segments, drift), lean, len(cur)

    runs = []
    for _ in range(repeat):
        values, lean, rows = once()
        runs.append(dict(phases))
    usual = [sum(v for k, v in r.items() if k != "segments_pandas_s") for r in runs]
    best = runs[usual.index(min(usual))]
    result.update(seconds=min(usual), runs_s=usual, rows=rows, values=values, lean=lean, phases=best,
                  lean_seconds=sum(v for k, v in best.items() if k != "segments_fairlearn_s"))
    return result


def _segments_pandas(cur: Any, pred: Any, labelled: Any) -> dict[str, float]:
    """Segment KPIs and fairness gaps from pandas group-by counts, flattened as `_flat` does."""
    import pandas as pd

    kpis: dict[str, float] = {}
    segments: dict[str, dict[str, float]] = {}
    y, p = cur["label"][labelled], pred[labelled]
    cells = pd.DataFrame({"tp": (y == 1) & (p == 1), "fp": (y == 0) & (p == 1), "tn": (y == 0) & (p == 0),
                          "fn": (y == 1) & (p == 0)})
    for dimension, column in SEGMENTS.items():
        counts = cells.groupby(cur[column][labelled].to_numpy()).sum()
        tp, fp, tn, fn = (counts[k] for k in ("tp", "fp", "tn", "fn"))
        table = pd.DataFrame({"accuracy": (tp + tn) / (tp + fp + tn + fn), "precision": tp / (tp + fp),
                              "recall": tp / (tp + fn), "f1": 2 * tp / (2 * tp + fp + fn)})
        table["approval_rate"] = pred.groupby(cur[column]).mean()
        table["human_override_rate"] = cur["human_override"].groupby(cur[column]).mean()
        for group, row in table.iterrows():
            segments[f"{dimension}:{group}"] = {k: float(v) for k, v in row.items()}
        if dimension in SENSITIVE:
            approval, recall = table["approval_rate"], table["recall"]
            gap, ratio = approval.max() - approval.min(), approval.min() / approval.max()
            eod = recall.max() - recall.min()
            kpis["fairness_gap"] = max(gap, kpis.get("fairness_gap", gap))
            kpis["disparate_impact_ratio"] = min(ratio, kpis.get("disparate_impact_ratio", ratio))
            kpis["equal_opportunity_difference"] = max(eod, kpis.get("equal_opportunity_difference", eod))
    return _flat(kpis, segments, {})


# -- the parent ---------------------------------------------------------------------------------------

def child(path: str, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run one path in a fresh interpreter; its result, with its own peak RSS (ru_maxrss of that process tree)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    command = [sys.executable, __file__, "--path", path, "--data", str(data), "--out", str(out),
               "--repeat", str(args.repeat)]
    if args.duckdb_memory_limit:
        command += ["--duckdb-memory-limit", args.duckdb_memory_limit]
    if args.duckdb_threads:
        command += ["--duckdb-threads", str(args.duckdb_threads)]
    log = out.with_suffix(".log")
    with log.open("wb") as sink:  # Spark's console chatter goes to a log, shown only on failure
        process = subprocess.Popen(command, stdout=sink if path == "spark" else None,
                                   stderr=sink if path == "spark" else None)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    try:
        if process.returncode:
            sys.stderr.write(log.read_text(errors="replace")[-5000:])
            raise SystemExit(f"the {path} path failed (exit {process.returncode}): {' '.join(command)}")
        result: dict[str, Any] = json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)
        log.unlink(missing_ok=True)
    result["tree_peak_rss"] = usage.ru_maxrss * 1024  # kilobytes on Linux
    return result


def compare(values: dict[str, float], expected: dict[str, float]) -> dict[str, Any]:
    """Largest relative difference over the keys both hold, and which key it is."""
    common = sorted(set(values) & set(expected))
    worst, key = 0.0, None
    for k in common:
        a, b = values[k], expected[k]
        diff = abs(a - b) / max(abs(a), abs(b)) if max(abs(a), abs(b)) > 1e-12 else abs(a - b)
        if diff > worst or key is None:
            worst, key = diff, k
    return {"compared": len(common), "max_rel_diff": worst, "worst": key,
            "only_charter": sorted(set(values) - set(expected)), "only_other": sorted(set(expected) - set(values))}


def mib(n: int | None) -> float | None:
    return None if n is None else round(n / (1 << 20), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows over both months (half each)")
    parser.add_argument("--spark-rows", type=int, default=1_000_000, help="rows of the Spark comparison")
    parser.add_argument("--no-spark", action="store_true", help="skip the Spark comparison")
    parser.add_argument("--data", type=Path, help="keep the generated Parquet here (reused when it matches)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each path in its process; the best counts")
    parser.add_argument("--duckdb-memory-limit", help="open DuckDB with this memory_limit (e.g. 1GB)")
    parser.add_argument("--duckdb-threads", type=int, help="open DuckDB with this many threads")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--path", choices=("charter", "baseline", "spark"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.path:  # a child: one path, its result as JSON
        if args.path == "baseline":
            result = run_baseline(args.data, args.repeat)
        else:
            result = run_charter(args.data, "duckdb" if args.path == "charter" else "spark", args.repeat,
                                 args.duckdb_memory_limit, args.duckdb_threads)
        result["self_peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        args.out.write_text(json.dumps(result))
        return

    scratch = None
    if args.data is None:
        scratch = Path(tempfile.mkdtemp(prefix="charter-bench-ingest-"))
    base = args.data or scratch
    assert base is not None
    try:
        big = base / f"rows-{args.rows}"
        generated = generate(big, args.rows)
        size = sum(p.stat().st_size for p in big.glob("*.parquet"))
        charter = child("charter", big, args)
        baseline = child("baseline", big, args)
        values = charter.pop("values")
        agreement = compare(values, baseline.pop("values"))
        lean = compare(values, baseline.pop("lean"))
        report: dict[str, Any] = {
            "rows": args.rows, "measured_rows": charter["rows"], "parquet_mib": mib(size),
            "files": len(list(big.glob("*.parquet"))), "generate_s": round(generated, 1),
            "cores": os.cpu_count(), "duckdb_memory_limit": args.duckdb_memory_limit,
            "charter_duckdb": {"seconds": round(charter["seconds"], 2),
                               "runs_s": [round(t, 2) for t in charter["runs_s"]],
                               "import_s": round(charter["import_s"], 2), "digest_s": round(charter["digest_s"], 2),
                               "peak_rss_mib": mib(charter["self_peak_rss"]),
                               "tree_peak_rss_mib": mib(charter["tree_peak_rss"]), "notes": charter["notes"]},
            "baseline_pandas_sklearn": {"seconds": round(baseline["seconds"], 2),
                                        "runs_s": [round(t, 2) for t in baseline["runs_s"]],
                                        "import_s": round(baseline["import_s"], 2),
                                        "phases_s": {k: round(v, 2) for k, v in baseline["phases"].items()},
                                        "peak_rss_mib": mib(baseline["self_peak_rss"]),
                                        "tree_peak_rss_mib": mib(baseline["tree_peak_rss"])},
            "speedup_x": round(baseline["seconds"] / charter["seconds"], 2),
            "baseline_lean_seconds": round(baseline["lean_seconds"], 2),
            "speedup_vs_lean_x": round(baseline["lean_seconds"] / charter["seconds"], 2),
            "agreement_lean_vs_charter": {k: lean[k] for k in ("compared", "max_rel_diff", "worst")},
            "memory_ratio_x": round(baseline["self_peak_rss"] / charter["self_peak_rss"], 2),
            "agreement_vs_baseline": agreement,
            "targets": {"speedup_at_least_5x": baseline["seconds"] / charter["seconds"] >= 5,
                        "charter_peak_within_2gib": charter["self_peak_rss"] <= 2 * GIB},
        }
        if not args.no_spark:
            small = base / f"rows-{args.spark_rows}"
            generate(small, args.spark_rows)
            on_duckdb = child("charter", small, args)
            spark = child("spark", small, args)
            report["spark"] = {
                "rows": args.spark_rows, "measured_rows": spark["rows"],
                "session_start_s": round(spark["session_s"], 2), "measure_s": round(spark["seconds"], 2),
                "runs_s": [round(t, 2) for t in spark["runs_s"]],
                "with_session_s": round(spark["session_s"] + spark["runs_s"][0], 2),
                "duckdb_same_rows_s": round(on_duckdb["seconds"], 2),
                "spark_vs_duckdb_x": round(spark["seconds"] / on_duckdb["seconds"], 2),
                "python_peak_rss_mib": mib(spark["self_peak_rss"]), "jvm_peak_rss_mib": mib(spark["jvm_peak_rss"]),
                "agreement_vs_duckdb": compare(spark.pop("values"), on_duckdb.pop("values")),
            }
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)

    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def print_table(r: dict[str, Any]) -> None:
    c, b = r["charter_duckdb"], r["baseline_pandas_sklearn"]
    print(f"{r['rows']:,} rows ({r['measured_rows']:,} in the measured month), {r['files']} Parquet files, "
          f"{r['parquet_mib']} MiB; {r['cores']} cores")
    print(f"{'path':34} {'seconds':>9} {'peak RSS MiB':>13} {'vs baseline':>12}")
    print(f"{'baseline (pandas+sklearn+fairlearn)':34} {b['seconds']:9.2f} {b['peak_rss_mib']:13.1f} {'1.00x':>12}")
    print(f"{'lean baseline (pandas segments)':34} {r['baseline_lean_seconds']:9.2f} {'':>13} "
          f"{r['baseline_lean_seconds'] / b['seconds']:11.2f}x")
    print(f"{'charter measure, DuckDB':34} {c['seconds']:9.2f} {c['peak_rss_mib']:13.1f} "
          f"{r['speedup_x']:11.2f}x")
    a = r["agreement_vs_baseline"]
    print(f"agreement: {a['compared']} values, max relative difference {a['max_rel_diff']:.2e} ({a['worst']})"
          + (f"; only charter: {a['only_charter']}" if a["only_charter"] else "")
          + (f"; only baseline: {a['only_other']}" if a["only_other"] else ""))
    la = r["agreement_lean_vs_charter"]
    print(f"lean baseline agreement: {la['compared']} values, max relative difference {la['max_rel_diff']:.2e}; "
          f"lean baseline / charter time {r['speedup_vs_lean_x']}x")
    print("baseline phases (s): " + ", ".join(f"{k.removesuffix('_s')} {v}" for k, v in b["phases_s"].items()))
    print(f"charter: imports {c['import_s']} s, input digests {c['digest_s']} s (not in the time above)")
    print(f"targets: >=5x {'met' if r['targets']['speedup_at_least_5x'] else 'MISSED'}, "
          f"<=2 GiB {'met' if r['targets']['charter_peak_within_2gib'] else 'MISSED'}")
    if "spark" in r:
        s = r["spark"]
        sa = s["agreement_vs_duckdb"]
        print(f"spark local, {s['rows']:,} rows: session start {s['session_start_s']} s, measure {s['measure_s']} s "
              f"(runs {s['runs_s']}), with session {s['with_session_s']} s; DuckDB on the same rows "
              f"{s['duckdb_same_rows_s']} s ({s['spark_vs_duckdb_x']}x); peak RSS python {s['python_peak_rss_mib']} "
              f"MiB, JVM {s['jvm_peak_rss_mib']} MiB")
        print(f"spark vs DuckDB: {sa['compared']} values, max relative difference {sa['max_rel_diff']:.2e} "
              f"({sa['worst']})")


if __name__ == "__main__":
    main()
