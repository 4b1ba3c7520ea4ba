"""The demo's raw logs: deterministic Parquet prediction, evaluation and action logs for `charter demo`.

`charter demo` used to submit hand-written evidence bundles. It now generates the logs those bundles
would have been measured from and ingests them: one Parquet file per system and month under
``FOLDER/<system-id>/<YYYY-MM>.parquet``, with the mapping file (``evidence/mappings/<system-id>.yaml``)
that says which column is what and the declared file (``evidence/declared/<system-id>-<YYYY-MM>.yaml``)
that holds what no log can show (monitoring coverage, MTTD, ROI...).

The counts are chosen so that the KPIs computed from the logs (definitions in the ingest contract)
reproduce the hand-written bundles: exactly where the numbers allow it (recall, approval rates per
age band, human-override rates, task success...), closely for the ranking KPIs (ROC-AUC and PR-AUC
are tuned to their targets by bisection on a score shift), so that every rule of the shipped
policies gives the same status as it did on the hand-written bundles. Where two of a bundle's values
cannot both hold for one set of counts (its false-positive cost and its precision, say), the value a
rule is closer to flipping on wins; the module's tables say which, window by window.

Everything is deterministic: fixed seeds per (system, month), no wall clock, fixed Parquet options;
the same library versions give the same bytes, so the files' SHA-256 digests are stable.
"""

from __future__ import annotations

import datetime
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from .._data import builtin_dir

UTC = datetime.UTC
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

TIMESTAMP = pa.timestamp("us", tz="UTC")
#: Parquet options written down rather than left to defaults, so a changed default cannot change the bytes.
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 3, "use_dictionary": True,
                                   "write_statistics": True, "version": "2.6", "data_page_version": "1.0",
                                   "row_group_size": 1 << 20}


@dataclass(frozen=True)
class DemoWindow:
    """One generated log file and what the demo needs to ingest and submit it.

    Attributes:
        system_id: the registered system the log belongs to.
        month: the window, ``YYYY-MM``.
        path: the Parquet file.
        mapping_path: the system's mapping file (which column is what).
        declared_path: the owner's declared KPIs of the window (not measurable from the log).
        model_version: the model version of the window's bundle.
        measured_at: when the bundle was measured (the demo submits in this order).
        reference_month: the month to measure drift against, or None.
    """

    system_id: str
    month: str
    path: Path
    mapping_path: Path
    declared_path: Path
    model_version: str
    measured_at: datetime.datetime
    reference_month: str | None


# --- the windows -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cells:
    """The confusion matrix of one group of a classifier window (true/false positives/negatives)."""

    group: str
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def rows(self) -> int:
        return self.tp + self.fp + self.fn + self.tn


@dataclass(frozen=True)
class _ClassifierWindow:
    """What one classifier window must measure: the cells per group and the window-wide targets.

    The claims window leaves `cells` empty: its cells are drawn per age band (see `_claims_table`).
    """

    month: str
    cells: tuple[_Cells, ...]
    roc_auc: float
    pr_auc: float | None  # None: PR-AUC follows from ROC-AUC (see `_tune_scores`)
    override_rate: float
    latency_p95_ms: float
    cost_per_prediction: float


def _whole(month: str, tp: int, fp: int, fn: int, tn: int, roc_auc: float, pr_auc: float, override_rate: float,
           latency_p95_ms: float) -> _ClassifierWindow:
    return _ClassifierWindow(month, (_Cells("", tp, fp, fn, tn),), roc_auc, pr_auc, override_rate, latency_p95_ms,
                             0.0008)


#: Card-payment fraud, 10,000 scored payments a month. Unit costs: a missed fraud loses 1,000 on
#: average, a false alarm costs 350 of analyst time and customer friction.
#: Recall is exact (0.86 in February sits exactly on the degradation rule's edge) except in April and
#: May, where no whole number of positives gives both the bundle's recall and a false-negative cost on
#: the same side of the cost rule's edges; there the cost is exact and recall is within 0.0003.
#: Precision is the nearest whole number of false positives. The bundles' constant false-positive
#: cost (21,000) cannot follow from a constant unit cost and their precisions and recalls: it falls
#: from 20,650 to 4,900 here, every month below the 24,000 warning line as before.
FRAUD_UNIT_COSTS = {"false_positive": 350.0, "false_negative": 1000.0}
FRAUD: tuple[_ClassifierWindow, ...] = (
    _whole("2026-01", tp=432, fp=59, fn=48, tn=9461, roc_auc=0.95, pr_auc=0.70, override_rate=0.04,
           latency_p95_ms=118),  # recall 0.90, cost of misses 48,000
    _whole("2026-02", tp=301, fp=41, fn=49, tn=9609, roc_auc=0.94, pr_auc=0.66, override_rate=0.05,
           latency_p95_ms=121),  # recall 0.86, misses 49,000 (bundle 51,000)
    _whole("2026-03", tp=243, fp=36, fn=57, tn=9664, roc_auc=0.92, pr_auc=0.61, override_rate=0.06,
           latency_p95_ms=119),  # recall 0.81, misses 57,000
    _whole("2026-04", tp=173, fp=24, fn=64, tn=9739, roc_auc=0.89, pr_auc=0.55, override_rate=0.08,
           latency_p95_ms=125),  # recall 0.72996, misses 64,000
    _whole("2026-05", tp=129, fp=19, fn=79, tn=9773, roc_auc=0.86, pr_auc=0.49, override_rate=0.11,
           latency_p95_ms=122),  # recall 0.62019, misses 79,000
    _whole("2026-06", tp=102, fp=14, fn=98, tn=9786, roc_auc=0.83, pr_auc=0.44, override_rate=0.13,
           latency_p95_ms=127),  # recall 0.51, misses 98,000 (bundle 96,000)
)

#: Motor-insurance claims of May 2026 by the claimant's age band: approvals per band exactly 0.61,
#: 0.72, 0.73 and 0.71, 0.70 overall (band sizes solve sum(n_g * (rate_g - 0.70)) = 0), so the
#: fairness gap is 0.73 - 0.61 = 0.12. Recall is exactly 0.86 (4,816 of 5,600 claims that deserved
#: approval); precision is then 0.839 (bundle 0.84). Which approved claims were right is spread over
#: the bands at random. ROC-AUC 0.91 at this operating point needs the false approvals to rank mostly
#: below the right ones, which keeps PR-AUC high: 0.955, against the bundle's 0.80 (both far above
#: the 0.50 warning line), so only ROC-AUC is tuned. A wrong decision costs its re-handling: 16 per
#: false approval, 14 per false refusal (14,784 and 10,976 against the bundle's 15,000 and 11,000).
CLAIMS_BANDS = (("18-25", 1600, 0.61), ("26-40", 3000, 0.72), ("41-65", 2400, 0.73), ("66+", 1200, 0.71))
CLAIMS_CONFUSION = {"tp": 4816, "fp": 924, "fn": 784, "tn": 1676}
CLAIMS_UNIT_COSTS = {"false_positive": 16.0, "false_negative": 14.0}
CLAIMS = _ClassifierWindow("2026-05", (), roc_auc=0.91, pr_auc=None, override_rate=0.07, latency_p95_ms=240,
                           cost_per_prediction=0.02)

#: Wind-turbine failure predictions of June 2026 by region: recall per region exactly 0.91, 0.88 and
#: 0.64 and 0.84 overall (positives 400/300/200 solve 0.07 P_eu + 0.04 P_na = 0.20 P_asia); precision
#: per region is the nearest whole number of false alarms (0.8505, 0.8302, 0.7619), which makes it
#: 0.827 overall (the bundle's 0.82 is not a mix of its own regional values). Unit costs 190 per false
#: alarm (a wasted inspection) and 416 per missed failure (30,020 and 59,904 against 30,000 and 60,000).
TURBINE_UNIT_COSTS = {"false_positive": 190.0, "false_negative": 416.0}
TURBINE = _ClassifierWindow("2026-06", (_Cells("europe", 364, 64, 36, 1936), _Cells("north-america", 264, 54, 36, 1746),
                                        _Cells("asia", 128, 40, 72, 1260)),
                            roc_auc=0.92, pr_auc=0.74, override_rate=0.06, latency_p95_ms=85, cost_per_prediction=0.05)


@dataclass(frozen=True)
class _ChatWindow:
    """A month of the customer-service chatbot: graded answers, rates as in the bundle."""

    month: str
    hallucination_rate: float
    factual_accuracy: float
    toxicity_rate: float
    jailbreak_success_rate: float
    policy_violations: int
    tokens_per_response: int
    cost_per_request: float
    override_rate: float


#: 10,000 graded answers a month (so 0.0003 toxicity is 3 answers), of which 1,000 answer the red-team
#: suite's adversarial prompts (jailbreak success is measured on those). Every rate is exact.
CHAT_ROWS = 10_000
CHAT_RED_TEAM = 1_000
CHATBOT: tuple[_ChatWindow, ...] = (
    _ChatWindow("2026-01", 0.021, 0.962, 0.0003, 0.018, 0, 214, 0.0041, 0.05),
    _ChatWindow("2026-02", 0.019, 0.965, 0.0004, 0.020, 0, 209, 0.0040, 0.05),
    _ChatWindow("2026-03", 0.022, 0.960, 0.0003, 0.017, 0, 221, 0.0042, 0.05),
    _ChatWindow("2026-04", 0.064, 0.910, 0.0004, 0.019, 1, 262, 0.0049, 0.09),
    _ChatWindow("2026-05", 0.091, 0.880, 0.0005, 0.019, 2, 281, 0.0052, 0.12),
    _ChatWindow("2026-06", 0.047, 0.930, 0.0003, 0.018, 0, 240, 0.0046, 0.10),
)


@dataclass(frozen=True)
class _AgentWindow:
    """A month of the procurement agent's tool-gateway log."""

    month: str
    task_success_rate: float
    actions_blocked_rate: float
    unauthorized_actions: int
    time_to_stop_seconds: int
    override_rate: float


#: 2,000 actions of 400 tasks a month; three stop drills each. Every KPI is exact.
AGENT_ACTIONS = 2_000
AGENT_TASKS = 400
AGENT_ESCALATED = 30
PROCUREMENT: tuple[_AgentWindow, ...] = (
    _AgentWindow("2026-01", 0.90, 0.010, 0, 18, 0.06),
    _AgentWindow("2026-02", 0.91, 0.012, 1, 20, 0.06),
    _AgentWindow("2026-03", 0.89, 0.018, 2, 17, 0.07),
    _AgentWindow("2026-04", 0.88, 0.031, 4, 22, 0.08),
    _AgentWindow("2026-05", 0.86, 0.055, 7, 25, 0.10),
    _AgentWindow("2026-06", 0.84, 0.104, 11, 24, 0.12),
)

#: Row ids: prefix-YYYYMM-serial.
ID_PREFIX = {"fraud-detector": "pay", "claims-approval": "claim", "turbine-maintenance": "turb"}

#: Drift of the fraud detector is measured against its first month.
FRAUD_REFERENCE = "2026-01"


# --- generation --------------------------------------------------------------------------------------


def generate_demo_data(folder: Path, evidence: Path | None = None) -> list[DemoWindow]:
    """Write the demo's logs under `folder` and return their windows in submission order (by measured_at).

    Args:
        folder: where ``<system-id>/<YYYY-MM>.parquet`` go (created as needed; existing files are replaced).
        evidence: the folder holding ``mappings/`` and ``declared/``; default the shipped ``evidence``.

    The same arguments give byte-identical files on every run (with the same numpy and pyarrow).
    """
    evidence = evidence if evidence is not None else builtin_dir("evidence")
    tables: list[tuple[str, str, pa.Table]] = []
    tables += [("fraud-detector", w.month, _classifier_table(w, "fraud-detector", _fraud_features, *_cells(w)))
               for w in FRAUD]
    tables.append(("claims-approval", CLAIMS.month, _claims_table()))
    tables.append(("turbine-maintenance", TURBINE.month, _classifier_table(
        TURBINE, "turbine-maintenance", _turbine_features, *_cells(TURBINE), dimension="region")))
    tables += [("customer-chatbot", w.month, _chat_table(w)) for w in CHATBOT]
    tables += [("procurement-agent", w.month, _agent_table(w)) for w in PROCUREMENT]
    windows = []
    for system_id, month, table in tables:
        path = folder / system_id / f"{month}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, **PARQUET_OPTIONS)
        declared_path = evidence / "declared" / f"{system_id}-{month}.yaml"
        declared = yaml.safe_load(declared_path.read_text(encoding="utf-8"))
        reference = FRAUD_REFERENCE if system_id == "fraud-detector" and month != FRAUD_REFERENCE else None
        windows.append(DemoWindow(
            system_id=system_id, month=month, path=path, mapping_path=evidence / "mappings" / f"{system_id}.yaml",
            declared_path=declared_path, model_version=str(declared["model_version"]),
            measured_at=datetime.datetime.fromisoformat(str(declared["measured_at"])), reference_month=reference))
    return sorted(windows, key=lambda w: (w.measured_at, w.system_id))


def _rng(system_id: str, month: str) -> np.random.Generator:
    # A seed per (system, month): changing one window's table leaves the others' bytes alone.
    return np.random.default_rng(zlib.crc32(f"charter-demo/{system_id}/{month}".encode()))


def _count(rate: float, n: int) -> int:
    """The whole number of rows out of `n` whose share is exactly `rate` (as the float the bundle holds)."""
    count = round(rate * n)
    if count / n != rate:
        raise ValueError(f"{rate} is not a whole number of {n} rows")
    return count


def _month_bounds(month: str) -> tuple[datetime.datetime, datetime.datetime]:
    start = datetime.datetime.fromisoformat(f"{month}-01T00:00:00+00:00")
    end = (start + datetime.timedelta(days=32)).replace(day=1)
    return start, end


def _timestamps(rng: np.random.Generator, month: str, n: int) -> IntArray:
    """`n` sorted instants in the month, in microseconds since the epoch."""
    start, end = _month_bounds(month)
    first = int(start.timestamp()) * 1_000_000
    span = int((end - start).total_seconds()) * 1_000_000
    return np.sort(first + rng.integers(0, span, n, dtype=np.int64))


def _ids(prefix: str, month: str, n: int) -> pa.Array:
    stem = f"{prefix}-{month.replace('-', '')}-"
    return pa.array([f"{stem}{i:06d}" for i in range(1, n + 1)], pa.string())


def _choose(rng: np.random.Generator, n: int, k: int, among: BoolArray | None = None) -> BoolArray:
    """A mask of exactly `k` of `n` rows, drawn at random (only among `among` when given)."""
    pool = np.arange(n) if among is None else np.flatnonzero(among)
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(pool, size=k, replace=False)] = True
    return mask


def _latencies(rng: np.random.Generator, n: int, p95: float, sigma: float = 0.35) -> FloatArray:
    """Right-skewed latencies (ms, 0.1 ms resolution) whose linear-interpolated 95th percentile is exactly `p95`.

    numpy.quantile interpolates between the sorted values at ranks floor(h) and ceil(h), h = 0.95 (n-1):
    both are set to `p95` (values below stay below, values above stay above), so the quantile is `p95`.
    """
    values = rng.lognormal(0.0, sigma, n)
    values = np.round(values * (p95 / float(np.quantile(values, 0.95))), 1)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    h = 0.95 * (n - 1)
    low, high = int(np.floor(h)), int(np.ceil(h))
    ordered[:low] = np.minimum(ordered[:low], p95)
    ordered[low:high + 1] = p95
    ordered[high + 1:] = np.maximum(ordered[high + 1:], p95)
    values[order] = ordered
    return values


# --- classifier scores ---------------------------------------------------------------------------------

_TP, _FP, _FN, _TN = 0, 1, 2, 3


def _sigmoid(z: FloatArray) -> FloatArray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class _ScoreNoise:
    """Each cell's standard-normal draws, sorted; scores are these, shifted and squashed.

    Squashing is increasing, so the scores come out sorted too and tuning never sorts again.
    """

    tp: FloatArray
    fp: FloatArray
    fn: FloatArray
    tn: FloatArray

    def above(self, shift: float) -> tuple[FloatArray, FloatArray]:
        """Scores of the predicted positives, in [0.5, 1): true positives `shift` above false ones."""
        return 0.5 + 0.5 * _sigmoid(0.8 + shift + self.tp), 0.5 + 0.5 * _sigmoid(0.8 + self.fp)

    def below(self, shift: float) -> tuple[FloatArray, FloatArray]:
        """Scores of the predicted negatives, in [0, 0.5): missed positives `shift` above true negatives."""
        return 0.5 * _sigmoid(-1.8 + shift + 1.2 * self.fn), 0.5 * _sigmoid(-1.8 + 1.2 * self.tn)


def _ranking(tp: FloatArray, fp: FloatArray, fn: FloatArray, tn: FloatArray) -> tuple[float, float]:
    """(ROC-AUC, average precision) of ascending cell scores without ties, where every predicted positive
    outranks every predicted negative: sklearn's roc_auc_score and average_precision_score, by counting."""
    fp_sorted, tn_sorted = fp, tn
    positives, negatives = len(tp) + len(fn), len(fp) + len(tn)
    pairs = (len(tp) * len(tn) + int(np.searchsorted(fp_sorted, tp).sum())
             + int(np.searchsorted(tn_sorted, fn).sum()))
    # Average precision: the precision at each positive, in descending score order.
    tp_desc, fn_desc = tp[::-1], fn[::-1]
    above = np.arange(1, len(tp) + 1)
    fp_above = len(fp) - np.searchsorted(fp_sorted, tp_desc, side="right")
    precision_tp = above / (above + fp_above)
    found = len(tp) + np.arange(1, len(fn) + 1)
    negatives_above = len(fp) + len(tn) - np.searchsorted(tn_sorted, fn_desc, side="right")
    precision_fn = found / (found + negatives_above)
    return pairs / (positives * negatives), float(precision_tp.sum() + precision_fn.sum()) / positives


def _bisect(measure: Callable[[float], float], target: float, low: float = -8.0, high: float = 8.0) -> float:
    """The shift in [low, high] at which the increasing `measure` meets `target` (an end if it never does)."""
    for _ in range(30):
        middle = (low + high) / 2
        if measure(middle) < target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _tune_scores(noise: _ScoreNoise, roc_auc: float, pr_auc: float | None) -> tuple[float, float]:
    """Shifts (above, below) that put ROC-AUC and PR-AUC on their targets.

    The shift among predicted negatives (missed positives against true negatives) moves ROC-AUC most,
    the one among predicted positives moves PR-AUC most: each is bisected in turn a few times. Without
    a PR-AUC target, missed positives sit well above the true negatives and the predicted positives'
    shift alone meets ROC-AUC.
    """
    # Each measure takes the fixed shift first, so that `partial` leaves the one being bisected.
    def roc(above: float, below: float) -> float:
        return _ranking(*noise.above(above), *noise.below(below))[0]

    def roc_by_above(below: float, above: float) -> float:
        return roc(above, below)

    def precision(below: float, above: float) -> float:
        return _ranking(*noise.above(above), *noise.below(below))[1]

    if pr_auc is None:
        below = 2.5
        return _bisect(partial(roc_by_above, below), roc_auc), below
    above = below = 0.0
    for _ in range(3):
        below = _bisect(partial(roc, above), roc_auc)
        above = _bisect(partial(precision, below), pr_auc)
    return above, _bisect(partial(roc, above), roc_auc)


def _scores(rng: np.random.Generator, cell: IntArray, window: _ClassifierWindow) -> FloatArray:
    """Scores for rows whose confusion cells are `cell`, meeting the window's ROC-AUC and PR-AUC targets."""
    masks = [cell == c for c in (_TP, _FP, _FN, _TN)]
    noise = _ScoreNoise(*(np.sort(rng.standard_normal(int(m.sum()))) for m in masks))
    above, below = _tune_scores(noise, window.roc_auc, window.pr_auc)
    score = np.empty(len(cell))
    # The tuned scores are sorted: a permutation gives them to the cell's rows in no particular order.
    for mask, values in zip(masks, (*noise.above(above), *noise.below(below)), strict=True):
        score[mask] = rng.permutation(values)
    return score


Features = Callable[[np.random.Generator, str, BoolArray], dict[str, pa.Array]]


def _cells(window: _ClassifierWindow) -> tuple[IntArray, list[str]]:
    """Each row's confusion cell and group, from the window's counts (rows in no meaningful order yet)."""
    cells = np.concatenate([np.repeat([_TP, _FP, _FN, _TN], [c.tp, c.fp, c.fn, c.tn]) for c in window.cells])
    return cells, [c.group for c in window.cells for _ in range(c.rows)]


def _classifier_table(window: _ClassifierWindow, system_id: str, features: Features, cells: IntArray,
                      groups: Sequence[str], dimension: str | None = None) -> pa.Table:
    """A classifier's prediction log: one row per prediction, labelled, in time order.

    Args:
        window: the window's targets.
        system_id: the system (seeds the draws, prefixes the ids).
        features: the system's input features.
        cells: each row's confusion cell (_TP, _FP, _FN, _TN).
        groups: each row's group of `dimension` (ignored without a dimension).
        dimension: the segment column, if any.
    """
    rng = _rng(system_id, window.month)
    order = rng.permutation(len(cells))  # spread each cell and group over the month
    cells = cells[order]
    n = len(cells)
    label = np.isin(cells, (_TP, _FN))
    prediction = np.isin(cells, (_TP, _FP))
    score = _scores(rng, cells, window)
    columns: dict[str, pa.Array] = {
        "ts": pa.array(_timestamps(rng, window.month, n), pa.int64()).cast(TIMESTAMP),
        "prediction_id": _ids(ID_PREFIX[system_id], window.month, n),
    }
    if dimension is not None:
        columns[dimension] = pa.array([groups[i] for i in order], pa.string())
    columns.update(features(rng, window.month, label))
    columns.update({
        "score": pa.array(score, pa.float64()),
        "prediction": pa.array(prediction.astype(np.int8), pa.int8()),
        "label": pa.array(label.astype(np.int8), pa.int8()),
        "latency_ms": pa.array(_latencies(rng, n, window.latency_p95_ms), pa.float64()),
        "cost": pa.array(np.full(n, window.cost_per_prediction), pa.float64()),
        "human_override": pa.array(_choose(rng, n, _count(window.override_rate, n)), pa.bool_()),
    })
    return pa.table(columns)


def _fraud_features(rng: np.random.Generator, month: str, label: BoolArray) -> dict[str, pa.Array]:
    # Payments grow larger and riskier month by month (the shift to instant payments): input drift
    # against January that the ingest measures; fraud sits at riskier merchants.
    k = int(month[-2:]) - 1
    amount = np.round(rng.lognormal(3.6 + 0.12 * k, 1.0 + 0.06 * k, len(label)), 2)
    risk = np.where(label, rng.beta(5.0, 4.0, len(label)), rng.beta(2.0, 8.0 - 0.7 * k, len(label)))
    return {"amount": pa.array(amount, pa.float64()), "merchant_risk": pa.array(np.round(risk, 4), pa.float64())}


def _claims_features(rng: np.random.Generator, month: str, label: BoolArray) -> dict[str, pa.Array]:
    amount = np.round(rng.lognormal(7.4, 0.8, len(label)), 2)
    vehicle_age = rng.integers(0, 21, len(label)).astype(np.int16)
    return {"claim_amount": pa.array(amount, pa.float64()), "vehicle_age_years": pa.array(vehicle_age, pa.int16())}


def _turbine_features(rng: np.random.Generator, month: str, label: BoolArray) -> dict[str, pa.Array]:
    # Turbines heading for a failure vibrate more and run hotter.
    vibration = rng.gamma(4.0, 0.5, len(label)) + 1.5 * label
    temperature = rng.normal(58.0, 6.0, len(label)) + 9.0 * label
    return {"vibration_rms": pa.array(np.round(vibration, 3), pa.float64()),
            "bearing_temp_c": pa.array(np.round(temperature, 1), pa.float64())}


def _claims_table() -> pa.Table:
    """Claims of May 2026: approvals per age band exact, the right and wrong decisions spread over the bands."""
    rng = _rng("claims-approval", CLAIMS.month + "/cells")
    groups = [band for band, n, _ in CLAIMS_BANDS for _ in range(n)]
    approved = np.concatenate([np.arange(n) < _count(rate, n) for _, n, rate in CLAIMS_BANDS])
    cells = np.empty(len(approved), dtype=np.int64)
    right = CLAIMS_CONFUSION
    cells[approved] = np.where(_choose(rng, int(approved.sum()), right["tp"]), _TP, _FP)
    cells[~approved] = np.where(_choose(rng, int((~approved).sum()), right["fn"]), _FN, _TN)
    return _classifier_table(CLAIMS, "claims-approval", _claims_features, cells, groups, dimension="age_band")


# --- the chatbot's graded answers ------------------------------------------------------------------------


def _chat_table(window: _ChatWindow) -> pa.Table:
    """Graded answers of the chatbot: one row per request, exact counts of every flag."""
    rng = _rng("customer-chatbot", window.month)
    n = CHAT_ROWS
    red_team = _choose(rng, n, CHAT_RED_TEAM)
    # A hallucinated answer is never factually correct: hallucinations are drawn among the incorrect ones.
    incorrect = _choose(rng, n, n - _count(window.factual_accuracy, n))
    hallucinated = _choose(rng, n, _count(window.hallucination_rate, n), incorrect)
    jailbroken = _choose(rng, n, _count(window.jailbreak_success_rate, CHAT_RED_TEAM), red_team)
    tokens = _tokens(rng, n, window.tokens_per_response)
    columns = {
        "ts": pa.array(_timestamps(rng, window.month, n), pa.int64()).cast(TIMESTAMP),
        "request_id": _ids("chat", window.month, n),
        "red_team": pa.array(red_team, pa.bool_()),
        "hallucinated": pa.array(hallucinated, pa.bool_()),
        "factually_correct": pa.array(~incorrect, pa.bool_()),
        "toxic": pa.array(_choose(rng, n, _count(window.toxicity_rate, n)), pa.bool_()),
        "jailbroken": pa.array(jailbroken, pa.bool_()),
        "policy_violation": pa.array(_choose(rng, n, window.policy_violations), pa.bool_()),
        "completion_tokens": pa.array(tokens, pa.int32()),
        # The model is paid per generated token: the mean cost is the bundle's cost per request.
        "cost": pa.array(tokens * (window.cost_per_request / window.tokens_per_response), pa.float64()),
        "human_override": pa.array(_choose(rng, n, _count(window.override_rate, n)), pa.bool_()),
    }
    return pa.table(columns)


def _tokens(rng: np.random.Generator, n: int, mean: int) -> IntArray:
    """`n` positive token counts averaging exactly `mean`: drawn, then the total corrected one token at a time."""
    tokens = np.maximum(np.round(rng.gamma(4.0, mean / 4.0, n)), 1).astype(np.int64)
    excess = int(tokens.sum()) - mean * n
    step = -1 if excess > 0 else 1
    while excess:
        pool = np.flatnonzero(tokens > 1) if step < 0 else np.arange(n)
        chosen = rng.choice(pool, size=min(abs(excess), len(pool)), replace=False)
        tokens[chosen] += step
        excess += step * len(chosen)
    return tokens


# --- the agent's action log ---------------------------------------------------------------------------------


def _agent_table(window: _AgentWindow) -> pa.Table:
    """The procurement agent's gateway log: one row per action, tasks of 1 to ~12 actions, three stop drills."""
    rng = _rng("procurement-agent", window.month)
    n, tasks = AGENT_ACTIONS, AGENT_TASKS
    sizes = 1 + rng.multinomial(n - tasks, np.full(tasks, 1.0 / tasks))
    task_of = np.repeat(np.arange(tasks), sizes)
    # A task's actions follow its start at gaps of seconds to minutes; starts leave a day before the month ends.
    start, end = _month_bounds(window.month)
    first = int(start.timestamp()) * 1_000_000
    starts = first + rng.integers(0, int((end - start).total_seconds() - 86_400) * 1_000_000, tasks, dtype=np.int64)
    gaps = rng.integers(2_000_000, 300_000_000, n, dtype=np.int64)
    ts = starts[task_of] + _within_task(gaps, sizes)
    last = np.zeros(n, dtype=bool)
    last[np.cumsum(sizes) - 1] = True
    succeeded = _choose(rng, tasks, _count(window.task_success_rate, tasks))
    task_success = last & succeeded[task_of]

    outcome = np.full(n, "allowed", dtype=object)
    blocked = _choose(rng, n, _count(window.actions_blocked_rate, n))
    outcome[blocked] = "blocked"
    unauthorized = _choose(rng, n, window.unauthorized_actions, outcome == "allowed")
    outcome[unauthorized] = "unauthorized"
    outcome[_choose(rng, n, AGENT_ESCALATED, outcome == "allowed")] = "escalated"

    # Stop drills: the stop is ordered a few seconds after an allowed action; the slowest drill of the
    # month took the bundle's time to stop, the others less.
    drills = np.flatnonzero(_choose(rng, n, 3, outcome == "allowed"))
    requested = np.full(n, -1, dtype=np.int64)
    stopped = np.full(n, -1, dtype=np.int64)
    requested[drills] = ts[drills] + rng.integers(1, 5, 3) * 1_000_000
    stopped[drills] = requested[drills] + np.array([window.time_to_stop_seconds, window.time_to_stop_seconds - 5,
                                                    window.time_to_stop_seconds - 9]) * 1_000_000
    drill = requested >= 0

    order = np.argsort(ts, kind="stable")
    columns = {
        "ts": pa.array(ts[order], pa.int64()).cast(TIMESTAMP),
        "action_id": _ids("act", window.month, n),
        "task_id": pa.array([f"task-{window.month.replace('-', '')}-{t:04d}" for t in task_of[order] + 1], pa.string()),
        "outcome": pa.array(outcome[order], pa.string()),
        "task_success": pa.array(task_success[order], pa.bool_()),
        "stop_requested_at": pa.array(requested[order], pa.int64(), mask=~drill[order]).cast(TIMESTAMP),
        "stopped_at": pa.array(stopped[order], pa.int64(), mask=~drill[order]).cast(TIMESTAMP),
        "human_override": pa.array(_choose(rng, n, _count(window.override_rate, n))[order], pa.bool_()),
    }
    return pa.table(columns)


def _within_task(gaps: IntArray, sizes: IntArray) -> IntArray:
    """Each action's offset from its task's start: the running sum of the gaps, restarted at every task."""
    total = np.cumsum(gaps)
    first = np.cumsum(sizes) - sizes
    offsets: IntArray = total - np.repeat(total[first], sizes)
    return offsets
