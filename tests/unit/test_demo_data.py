"""The demo's generated logs: the same bytes on every run, and KPIs that judge like the hand-written bundles.

The KPIs are computed here from the Parquet files with numpy, scikit-learn and fairlearn, following the
ingest contract's definitions and the mapping files, independently of `charter.ingest`'s own code.
Merged with the declared KPIs they make one bundle per window; those bundles and the hand-written ones
in evidence/ are each evaluated as ``charter evaluate`` evaluates several bundles (every bundle at its
measured_at, with the earlier bundles of its system as history), and every (rule, segment) must get
the same status.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from fairlearn.metrics import demographic_parity_difference
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

from charter.cli.core import _evaluate_files
from charter.ingest import demo_data
from charter.ingest.demo_data import DemoWindow, generate_demo_data
from charter.kpis import builtin_catalog

REPO = Path(__file__).resolve().parents[2]
EVIDENCE = REPO / "evidence"
HAND_WRITTEN = sorted(EVIDENCE.glob("*.json"))
Kpis = dict[str, float]


@pytest.fixture(scope="module")
def windows(tmp_path_factory: pytest.TempPathFactory) -> list[DemoWindow]:
    return generate_demo_data(tmp_path_factory.mktemp("demo-data"))


@pytest.fixture(scope="module")
def measured(windows: list[DemoWindow]) -> dict[tuple[str, str], tuple[Kpis, dict[str, Kpis]]]:
    """(system, month) -> the KPIs and segment KPIs computed from the window's log."""
    by_key = {(w.system_id, w.month): w for w in windows}
    result = {}
    for window in windows:
        reference = by_key[(window.system_id, window.reference_month)] if window.reference_month else None
        result[(window.system_id, window.month)] = measure(window, reference)
    return result


def test_every_run_writes_the_same_bytes(windows: list[DemoWindow], tmp_path: Path) -> None:
    again = generate_demo_data(tmp_path)
    assert [(w.system_id, w.month) for w in again] == [(w.system_id, w.month) for w in windows]
    for first, second in zip(windows, again, strict=True):
        assert first.path.read_bytes() == second.path.read_bytes(), first.path.name
        assert (first.model_version, first.measured_at, first.reference_month) == (
            second.model_version, second.measured_at, second.reference_month)


def test_one_small_window_per_hand_written_bundle(windows: list[DemoWindow]) -> None:
    bundles = [json.loads(p.read_text(encoding="utf-8")) for p in HAND_WRITTEN]
    assert sorted((w.system_id, w.month) for w in windows) == sorted(
        (b["system_id"], b["window_start"][:7]) for b in bundles)
    for window, bundle in zip(windows, sorted(bundles, key=lambda b: (b["measured_at"], b["system_id"])),
                              strict=True):
        assert (window.system_id, window.model_version) == (bundle["system_id"], bundle["model_version"])
        assert window.measured_at == _instant(bundle["measured_at"])
        assert window.path == window.path.parent.parent / window.system_id / f"{window.month}.parquet"
        assert window.mapping_path.is_file() and window.declared_path.is_file()
    rows = [pq.read_metadata(w.path).num_rows for w in windows]
    assert max(rows) <= 20_000 and sum(rows) <= 150_000
    assert {w.reference_month for w in windows if w.system_id == "fraud-detector"} == {None, "2026-01"}


def test_mappings_price_errors_as_the_generator_assumed() -> None:
    for system_id, unit_costs in [("fraud-detector", demo_data.FRAUD_UNIT_COSTS),
                                  ("claims-approval", demo_data.CLAIMS_UNIT_COSTS),
                                  ("turbine-maintenance", demo_data.TURBINE_UNIT_COSTS)]:
        mapping = yaml.safe_load((EVIDENCE / "mappings" / f"{system_id}.yaml").read_text(encoding="utf-8"))
        assert mapping["unit_costs"] == unit_costs, system_id


def test_declared_kpis_are_what_the_logs_cannot_show(
        windows: list[DemoWindow], measured: dict[tuple[str, str], tuple[Kpis, dict[str, Kpis]]]) -> None:
    for window in windows:
        declared = yaml.safe_load(window.declared_path.read_text(encoding="utf-8"))["kpis"]
        computed, _ = measured[(window.system_id, window.month)]
        bundle = json.loads((EVIDENCE / f"{window.system_id}-{window.month}.json").read_text(encoding="utf-8"))
        assert not set(declared) & set(computed), window.declared_path.name
        assert set(declared) == set(bundle["kpis"]) - set(computed), window.declared_path.name
        assert declared == {k: v for k, v in bundle["kpis"].items() if k in declared}


#: How far a computed KPI may be from the hand-written bundle's value (absolute; relative for money).
#: Rates, counts and latencies are exact by construction; these are the documented exceptions (see
#: the tables of charter.ingest.demo_data for why each cannot be exact).
TOLERANCE: dict[str, float] = {"roc_auc": 1e-6, "pr_auc": 1e-4, "precision": 0.01, "f1": 0.01,
                               "cost_false_positives": 0.05, "cost_false_negatives": 0.05}
EXCEPTIONS: dict[tuple[str, str, str], float] = {
    ("fraud-detector", "2026-04", "recall"): 0.001,
    ("fraud-detector", "2026-05", "recall"): 0.001,
    # A constant unit cost cannot give the bundles' constant 21,000 at their precisions and recalls.
    **{("fraud-detector", f"2026-0{m}", "cost_false_positives"): 0.8 for m in range(1, 7)},
    # PR-AUC follows from ROC-AUC 0.91 at this operating point (see CLAIMS in demo_data).
    ("claims-approval", "2026-05", "pr_auc"): 0.16,
}
RELATIVE = {"cost_false_positives", "cost_false_negatives"}


def test_computed_kpis_are_the_hand_written_values(
        measured: dict[tuple[str, str], tuple[Kpis, dict[str, Kpis]]]) -> None:
    problems = []
    for (system_id, month), (kpis, segments) in sorted(measured.items()):
        bundle = json.loads((EVIDENCE / f"{system_id}-{month}.json").read_text(encoding="utf-8"))
        pairs = [("", kpi, kpis[kpi], value) for kpi, value in bundle["kpis"].items() if kpi in kpis]
        pairs += [(key, kpi, segments[key][kpi], value) for key, values in bundle.get("segments", {}).items()
                  for kpi, value in values.items()]
        for segment, kpi, got, want in pairs:
            tolerance = EXCEPTIONS.get((system_id, month, kpi), TOLERANCE.get(kpi, 1e-12))
            error = abs(got - want) / (abs(want) if kpi in RELATIVE else 1.0)
            if error > tolerance:
                problems.append(f"{system_id} {month} {segment} {kpi}: {got} (bundle {want})")
    assert not problems, "\n".join(problems)


def test_statuses_are_those_of_the_hand_written_bundles(
        windows: list[DemoWindow], measured: dict[tuple[str, str], tuple[Kpis, dict[str, Kpis]]],
        tmp_path: Path) -> None:
    catalog = builtin_catalog()
    registry = yaml.safe_load((EVIDENCE / "systems.yaml").read_text(encoding="utf-8"))
    owners = {s["id"]: s["owner"] for s in registry["systems"]}
    paths = []
    for window in windows:
        kpis, segments = measured[(window.system_id, window.month)]
        declared = yaml.safe_load(window.declared_path.read_text(encoding="utf-8"))
        start, end = _month(window.month)
        bundle = {
            "system_id": window.system_id, "model_version": window.model_version,
            "window_start": start.isoformat(), "window_end": end.isoformat(),
            "measured_at": window.measured_at.isoformat(),
            # KPIs the catalog does not know (calibration_error, drift KS...) stay out, as no rule reads them.
            "kpis": {**{k: v for k, v in kpis.items() if k in catalog}, **declared["kpis"]},
            "segments": {key: {k: v for k, v in values.items() if k in catalog} for key, values in segments.items()},
            "artifacts": [{"name": window.path.name, "sha256": hashlib.sha256(window.path.read_bytes()).hexdigest(),
                           "uri": f"demo-data/{window.system_id}/{window.path.name}"}],
            "submitter": owners[window.system_id],
        }
        path = tmp_path / f"{window.system_id}-{window.month}.json"
        path.write_text(json.dumps(bundle, indent=2), encoding="utf-8")
        paths.append(path)

    def statuses(files: list[Path]) -> dict[tuple[str, str, str, str], str]:
        findings, _ = _evaluate_files(files, REPO / "policies", EVIDENCE / "systems.yaml", None, None, None)
        keyed = {(f.system_id, f.window_start.isoformat(), f.rule_ref, f.segment or ""): f.status.value
                 for f in findings}
        assert len(keyed) == len(findings)
        return keyed

    expected, got = statuses(HAND_WRITTEN), statuses(paths)
    differ = [f"{key}: {expected.get(key)} -> {got.get(key)}" for key in sorted(expected.keys() | got.keys())
              if expected.get(key) != got.get(key)]
    assert not differ, "\n".join(differ)
    assert {"pass", "warn", "breach", "missing"} <= set(got.values())


# --- the contract's KPIs, computed directly ---------------------------------------------------------------


def measure(window: DemoWindow, reference: DemoWindow | None) -> tuple[Kpis, dict[str, Kpis]]:
    """The KPIs the ingest contract defines for the window's log and mapping: whole window and segments."""
    mapping = yaml.safe_load(window.mapping_path.read_text(encoding="utf-8"))
    rows = _rows(window.path, mapping["timestamp"], window.month)
    kpis: Kpis = {}
    segments: dict[str, Kpis] = {}
    if "label" in mapping:
        kpis.update(_classification(rows, mapping))
        for dimension, column in mapping.get("segments", {}).items():
            for group in sorted(set(rows[column])):
                part = {name: values[rows[column] == group] for name, values in rows.items()}
                values = _classification(part, mapping, segment=True)
                segments[f"{dimension}:{group}"] = values
        for dimension in mapping.get("sensitive", []):
            column = mapping["segments"][dimension]
            y, p = _labelled(rows, mapping)
            groups = rows[column][_labelled_mask(rows, mapping)]
            gap = demographic_parity_difference(y, p, sensitive_features=groups)
            kpis["fairness_gap"] = max(kpis.get("fairness_gap", 0.0), float(gap))
    if "override" in mapping:
        kpis["human_override_rate"] = _mean(rows[mapping["override"]])
    if "latency_ms" in mapping:
        latency = _present(rows[mapping["latency_ms"]]).astype(float)
        kpis["latency_p50_ms"] = float(np.quantile(latency, 0.5))
        kpis["latency_p95_ms"] = float(np.quantile(latency, 0.95))
    if "cost" in mapping:
        per = mapping["cost"].get("per", "prediction")
        kpis[f"cost_per_{per}"] = float(np.mean(_present(rows[mapping["cost"]["column"]]).astype(float)))
    if "tokens" in mapping:
        kpis["tokens_per_response"] = float(np.mean(_present(rows[mapping["tokens"]]).astype(float)))
    if "evaluation" in mapping:
        kpis.update(_evaluation(rows, mapping["evaluation"]))
    if "agent" in mapping:
        kpis.update(_agent(rows, mapping["agent"]))
    if "drift" in mapping and reference is not None:
        before = _rows(reference.path, mapping["timestamp"], reference.month)
        bins = mapping["drift"].get("bins", 10)
        psi = [_psi(before[f].astype(float), rows[f].astype(float), bins) for f in mapping["drift"]["features"]]
        kpis["data_drift_psi"] = max(psi)
        if mapping["drift"].get("score", True):
            kpis["score_drift_psi"] = _psi(before[mapping["score"]], rows[mapping["score"]], bins)
    return kpis, segments


def _rows(path: Path, timestamp: str, month: str) -> dict[str, np.ndarray]:
    """The file's columns as numpy arrays, rows of the window only; a column with nulls is an object array
    holding None for them."""
    table = pq.read_table(path)
    start, end = (np.datetime64(t.replace(tzinfo=None), "us") for t in _month(month))
    ts = table.column(timestamp).to_numpy()  # UTC instants as datetime64[us]
    inside = (ts >= start) & (ts < end)
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        values = np.array(column.to_pylist(), dtype=object) if column.null_count else column.to_numpy()
        columns[name] = values[inside]
    return columns


def _present(values: np.ndarray) -> np.ndarray:
    return np.array([v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))])


def _mean(values: np.ndarray) -> float:
    return float(np.mean(_present(values).astype(float)))


def _labelled_mask(rows: dict[str, np.ndarray], mapping: dict[str, Any]) -> np.ndarray:
    return np.array([y is not None and p is not None for y, p in zip(rows[mapping["label"]],
                                                                        rows[mapping["prediction"]], strict=True)])


def _labelled(rows: dict[str, np.ndarray], mapping: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    mask = _labelled_mask(rows, mapping)
    return rows[mapping["label"]][mask].astype(int), rows[mapping["prediction"]][mask].astype(int)


def _classification(rows: dict[str, np.ndarray], mapping: dict[str, Any], *, segment: bool = False) -> Kpis:
    y, p = _labelled(rows, mapping)
    kpis = {"accuracy": float(np.mean(y == p)), "precision": float(precision_score(y, p)),
            "recall": float(recall_score(y, p)), "f1": float(f1_score(y, p)),
            "approval_rate": _mean(rows[mapping["prediction"]])}
    if segment:
        if "override" in mapping:
            kpis["human_override_rate"] = _mean(rows[mapping["override"]])
        return kpis
    score = rows[mapping["score"]][_labelled_mask(rows, mapping)].astype(float)
    kpis["roc_auc"] = float(roc_auc_score(y, score))
    kpis["pr_auc"] = float(average_precision_score(y, score))
    bins = np.minimum(np.floor(score * 10), 9)
    kpis["calibration_error"] = float(sum(np.mean(bins == b) * abs(y[bins == b].mean() - score[bins == b].mean())
                                          for b in np.unique(bins)))
    unit = mapping.get("unit_costs", {})
    if "false_positive" in unit:
        kpis["cost_false_positives"] = float(np.sum((p == 1) & (y == 0))) * unit["false_positive"]
    if "false_negative" in unit:
        kpis["cost_false_negatives"] = float(np.sum((p == 0) & (y == 1))) * unit["false_negative"]
    return kpis


def _evaluation(rows: dict[str, np.ndarray], columns: dict[str, str]) -> Kpis:
    kpis = {"hallucination_rate": _mean(rows[columns["hallucinated"]]),
            "factual_accuracy": _mean(rows[columns["factually_correct"]]),
            "toxicity_rate": _mean(rows[columns["toxic"]]),
            "policy_violations": float(np.sum(_present(rows[columns["policy_violation"]]).astype(bool)))}
    adversarial = rows[columns["adversarial"]].astype(bool)
    kpis["jailbreak_success_rate"] = _mean(rows[columns["jailbroken"]][adversarial])
    return kpis


def _agent(rows: dict[str, np.ndarray], columns: dict[str, str]) -> Kpis:
    outcome = _present(rows[columns["outcome"]])
    succeeded: dict[str, bool] = {}
    for task, success in zip(rows[columns["task"]], rows[columns["task_success"]], strict=True):
        succeeded[task] = succeeded.get(task, False) or bool(success)
    stops = [(stopped - requested).total_seconds()
             for requested, stopped in zip(rows[columns["stop_requested_at"]], rows[columns["stopped_at"]], strict=True)
             if requested is not None and stopped is not None]
    return {"actions_blocked_rate": float(np.sum(outcome == "blocked")) / len(outcome),
            "unauthorized_actions": float(np.sum(outcome == "unauthorized")),
            "task_success_rate": sum(succeeded.values()) / len(succeeded),
            "time_to_stop_seconds": max(stops)}


def _psi(reference: np.ndarray, current: np.ndarray, bins: int) -> float:
    edges = np.unique(np.quantile(reference, [i / bins for i in range(1, bins)]))
    share: Callable[[np.ndarray], np.ndarray] = lambda x: np.maximum(  # noqa: E731
        np.bincount(np.searchsorted(edges, x, side="left"), minlength=len(edges) + 1) / len(x), 1e-4)
    r, c = share(reference), share(current)
    return float(np.sum((c - r) * np.log(c / r)))


def _month(month: str) -> tuple[datetime.datetime, datetime.datetime]:
    start = datetime.datetime.fromisoformat(f"{month}-01T00:00:00+00:00")
    return start, (start + datetime.timedelta(days=32)).replace(day=1)


def _instant(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)
