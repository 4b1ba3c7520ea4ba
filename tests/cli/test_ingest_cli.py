"""`charter ingest` as a model owner uses it: data in, bundle out, verified, submitted; bad input refused."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from charter.bundle import EvidenceBundle
from charter.kpis import load_catalog
from tests.conftest import REPO, run_cli
from tests.governed import governed_cli, governed_ledger

MAPPING = """\
timestamp: ts
id: prediction_id
label: label
prediction: prediction
score: score
segments: {region: region}
latency_ms: latency_ms
override: human_override
unit_costs: {false_positive: 40, false_negative: 900}
drift: {features: [amount]}
labels: {min_coverage: 0.9}
"""


def prediction_log(path: Path, *, recall: float = 0.9, rows: int = 4000, seed: int = 7,
                   month: datetime.date = datetime.date(2026, 6, 1)) -> Path:
    """Two months of predictions (a reference month, then `month`) whose recall in `month` is about `recall`."""
    rng = np.random.default_rng(seed)
    start = np.datetime64(f"{(month - datetime.timedelta(days=1)).replace(day=1).isoformat()}T00:00:00", "us")
    measured = np.datetime64(f"{month.isoformat()}T00:00:00", "us")
    ts = start + rng.integers(0, int((measured - start) / np.timedelta64(1, "s")) + 28 * 86_400,
                              rows).astype("timedelta64[s]")
    label = (rng.random(rows) < 0.2).astype(np.int64)
    june = ts >= measured
    caught = rng.random(rows) < np.where(june, recall, 0.9)
    prediction = np.where(label == 1, caught, rng.random(rows) < 0.05).astype(np.int64)
    score = np.round(np.clip(np.where(prediction == 1, 0.7, 0.2) + rng.normal(0, 0.15, rows), 0, 1), 3)
    table = pa.table({
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "prediction_id": pa.array([f"p{i}" for i in range(rows)]),
        "label": pa.array(label), "prediction": pa.array(prediction), "score": pa.array(score),
        "region": pa.array(rng.choice(["europe", "asia", "americas"], rows)),
        "latency_ms": pa.array(rng.gamma(3, 20, rows)), "human_override": pa.array(rng.random(rows) < 0.05),
        "amount": pa.array(rng.gamma(2, 40, rows) * np.where(june, 1.3, 1.0)),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    prediction_log(tmp_path / "logs" / "predictions.parquet")
    (tmp_path / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
    (tmp_path / "declared.yaml").write_text("model_version: 4.2.0\nkpis: {monitoring_coverage: 0.97}\n",
                                            encoding="utf-8")
    return tmp_path


def ingest(cwd: Path, *args: str) -> tuple[int, str, str]:
    result = run_cli("ingest", *args, cwd=cwd)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout, result.stderr


BASE = ("logs", "--system", "fraud-detector", "--window", "2026-06", "--mapping", "mapping.yaml",
        "--declared", "declared.yaml", "--submitter", "maria.keller", "--measured-at", "2026-07-02T06:00:00Z")


def test_ingest_writes_a_bundle_that_verifies_and_fails_when_one_row_changes(data: Path) -> None:
    code, out, err = ingest(data, *BASE, "--reference", "2026-05", "--out", "bundle.json")
    assert code == 0, err
    bundle = EvidenceBundle.from_file(data / "bundle.json", load_catalog())
    assert bundle.provenance is not None
    assert {"recall", "precision", "roc_auc", "pr_auc", "data_drift_psi", "latency_p95_ms",
            "cost_false_negatives"} <= set(bundle.provenance.computed)
    assert "monitoring_coverage" not in bundle.provenance.computed and bundle.kpis["monitoring_coverage"] == 0.97
    assert bundle.provenance.inputs[0].uri == "logs/predictions.parquet"
    assert bundle.artifacts[0].sha256 == bundle.provenance.inputs[0].sha256
    assert bundle.kpis["data_drift_psi"] > 0.02  # June's amounts were scaled by 1.3
    assert set(bundle.segments) == {"region:americas", "region:asia", "region:europe"}

    code, out, err = ingest(data, "--verify", "bundle.json")
    assert code == 0, err
    assert "values match" in out

    table = pq.read_table(data / "logs" / "predictions.parquet")
    labels = table["label"].to_pylist()
    first_june_negative = next(i for i, (t, v) in enumerate(zip(table["ts"].to_pylist(), labels, strict=True))
                               if v == 0 and t >= datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC))
    labels[first_june_negative] = 1
    pq.write_table(table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels)),
                   data / "logs" / "predictions.parquet")
    code, out, err = ingest(data, "--verify", "bundle.json")
    assert code == 1
    assert "input logs/predictions.parquet (current): SHA-256" in err
    assert "kpis.recall: recorded" in err


def test_verify_catches_an_edited_value_and_a_swapped_mapping(data: Path) -> None:
    assert ingest(data, *BASE, "--out", "bundle.json")[0] == 0
    document = json.loads((data / "bundle.json").read_text())
    document["kpis"]["recall"] = round(document["kpis"]["recall"] + 0.05, 6)
    (data / "edited.json").write_text(json.dumps(document))
    code, _, err = ingest(data, "--verify", "edited.json")
    assert code == 1 and "kpis.recall: recorded" in err
    (data / "mapping.yaml").write_text(MAPPING.replace("min_coverage: 0.9", "min_coverage: 0.8"))
    code, _, err = ingest(data, "--verify", "bundle.json")
    assert code == 1 and "mapping mapping.yaml: its SHA-256 differs" in err


def test_csv_and_jsonl_give_the_same_kpis_as_parquet(data: Path) -> None:
    table = pq.read_table(data / "logs" / "predictions.parquet")
    frame = table.to_pandas()
    (data / "csv").mkdir()
    frame.to_csv(data / "csv" / "predictions.csv", index=False)
    (data / "jsonl").mkdir()
    frame.assign(ts=frame.ts.map(lambda t: t.isoformat())).to_json(data / "jsonl" / "p.jsonl", orient="records",
                                                                    lines=True)
    results = {}
    for source in ("logs", "csv", "jsonl"):
        code, _, err = ingest(data, source, *BASE[1:], "--format", "json", "--out", f"{source}.json")
        assert code == 0, err
        results[source] = json.loads((data / f"{source}.json").read_text())
    for source in ("csv", "jsonl"):
        for kpi, value in results["logs"]["kpis"].items():
            assert results[source]["kpis"][kpi] == pytest.approx(value, rel=1e-9), (source, kpi)


@pytest.mark.parametrize(("args", "code", "needle"), [
    (("--window", "2026-04"), "empty_window", "the window holds no rows"),
    (("--window", "2026-13"), "bad_window", "--window '2026-13'"),
    (("--window", "2026-06-01T00:00:00/2026-07-01T00:00:00"), "bad_window", "has no time zone"),
    (("--engine", "oracle"), "usage", "--engine 'oracle'"),
    (("--reference", "2026-06-15"), "bad_window", "overlaps"),
    (("--measured-at", "2026-06-20T00:00:00Z"), "window_open", "has not closed"),
    (("--out", "mapping.yaml"), "output_exists", "refusing to overwrite"),
])
def test_bad_command_lines_exit_2_naming_the_problem(data: Path, args: tuple[str, ...], code: str,
                                                     needle: str) -> None:
    argv = list(BASE)
    for option, value in zip(args[::2], args[1::2], strict=True):
        if option in argv:
            argv[argv.index(option) + 1] = value
        else:
            argv += [option, value]
    status, out, err = ingest(data, *argv)
    assert status == 2, (out, err)
    assert needle in err and f"[{code}]" in err


def test_bad_mappings_and_data_are_located(data: Path) -> None:
    (data / "bad.yaml").write_text(MAPPING.replace("label: label", "label: truth"))
    code, _, err = ingest(data, *BASE[:5], "--mapping", "bad.yaml", *BASE[7:])
    assert code == 2 and "label: the source has no column 'truth'" in err and "[mapping_column]" in err
    (data / "typo.yaml").write_text(MAPPING + "sensitiv: [region]\n")
    code, _, err = ingest(data, *BASE[:5], "--mapping", "typo.yaml", *BASE[7:])
    assert code == 2 and "typo.yaml:12" in err and "unknown field" in err
    (data / "declared.yaml").write_text("kpis: {recall: 0.99}\nmodel_version: '1'\n")
    code, _, err = ingest(data, *BASE)
    assert code == 2 and "recall computed from the data and also declared" in err
    table = pq.read_table(data / "logs" / "predictions.parquet")
    labels = table["label"].to_pylist()
    labels[: len(labels) // 2] = [None] * (len(labels) // 2)
    pq.write_table(table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels)),
                   data / "logs" / "predictions.parquet")
    (data / "declared.yaml").write_text("model_version: '1'\n")
    code, _, err = ingest(data, *BASE)
    assert code == 2 and "[labels_insufficient]" in err and "not measurable yet" in err


def test_nulls_and_nans_are_counted_and_reported(data: Path) -> None:
    table = pq.read_table(data / "logs" / "predictions.parquet")
    scores = table["score"].to_pylist()
    scores[:30] = [float("nan")] * 10 + [None] * 20
    pq.write_table(table.set_column(table.schema.get_field_index("score"), "score", pa.array(scores, pa.float64())),
                   data / "logs" / "predictions.parquet")
    code, out, err = ingest(data, *BASE, "--out", "bundle.json")
    assert code == 0, err
    bundle = EvidenceBundle.from_file(data / "bundle.json", load_catalog())
    assert bundle.provenance is not None
    in_june = [i for i, t in enumerate(table["ts"].to_pylist()[:30])
               if t >= datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)]
    quality = bundle.provenance.quality["score"]
    assert quality == {"nan": sum(i < 10 for i in in_june), "nulls": sum(i >= 10 for i in in_june)}
    assert "score: " in out and "null and" in out


def test_ingest_submits_through_the_full_loop(tmp_path: Path) -> None:
    """A falling recall computed from the data opens the recall incident, as the hand-written bundle did."""
    governed_ledger(tmp_path)
    # The ledger judges at today's time: the last closed month is fresh evidence.
    last_month = (datetime.datetime.now(datetime.UTC).date().replace(day=1) - datetime.timedelta(days=1)).replace(day=1)
    prediction_log(tmp_path / "logs" / "predictions.parquet", recall=0.5, month=last_month)
    (tmp_path / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
    code, out, err = governed_cli(tmp_path, "ingest", "logs", "--system", "fraud-detector",
                                  "--window", f"{last_month:%Y-%m}",
                                  "--mapping", "mapping.yaml", "--model-version", "4.2.0",
                                  "--key", ".charter/keys/maria.keller.key", "--submit", "--format", "json")
    assert code == 1, err  # a breach
    [result] = json.loads(out)
    recall = [f for f in result["findings"] if (f["policy"], f["rule"]) == ("core.performance", "recall-floor")]
    assert recall and recall[0]["status"] == "breach"
    assert result["incidents"], "the breach opens an incident"
    # The mapping has no cost column and nothing is declared: the owner is told before the rules say "missing".
    assert "warning: the policies in force for fraud-detector read" in err and "cost_per_prediction" in err
    code, out, _ = governed_cli(tmp_path, "verify")
    assert code == 0, out


def test_a_bundle_without_provenance_keeps_its_digest() -> None:
    """Bundles written before ingest existed hash as they did: no ``provenance`` key appears.

    The digest was computed with the code before bundles had provenance (commit 080b586).
    """
    bundle = EvidenceBundle.from_file(REPO / "evidence" / "fraud-detector-2026-06.json", load_catalog())
    assert "provenance" not in bundle.unsigned_dict()
    assert bundle.digest() == "8ebc5cb72a8cbd67df51d97f965bdab7ba97b08e7b29ba5ebbd2109c125b8f42"


def test_schema_mapping_is_published() -> None:
    result = run_cli("schema", "mapping")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "Charter ingest mapping" and schema["required"] == ["timestamp"]


def test_agent_kpis_from_opentelemetry_spans_exported_as_json_lines(tmp_path: Path) -> None:
    """GenAI spans whose attributes (with dots in their names) hold the tool call's outcome and the task."""
    from charter.ingest import IngestMapping, Window, measure

    spans = []
    for i in range(40):
        outcome = "denied" if i % 10 == 0 else ("unauthorized" if i % 13 == 0 else "allowed")
        spans.append({"name": "execute_tool", "start_time": f"2026-06-{1 + i % 28:02d}T10:00:00Z",
                      "attributes": {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "erp.order",
                                     "charter.task.id": f"t{i // 4}", "charter.action.outcome": outcome,
                                     "charter.task.success": i % 4 != 3 or i // 4 % 2 == 0}})
    (tmp_path / "spans.jsonl").write_text("".join(json.dumps(s) + "\n" for s in spans), encoding="utf-8")
    mapping = IngestMapping.model_validate({
        "timestamp": "start_time",
        "agent": {"outcome": ["attributes", "charter.action.outcome"], "task": ["attributes", "charter.task.id"],
                  "task_success": ["attributes", "charter.task.success"], "outcome_values": {"blocked": "denied"}}})
    measured = measure(tmp_path / "spans.jsonl", mapping, Window.parse("2026-06"))
    blocked = sum(s["attributes"]["charter.action.outcome"] == "denied" for s in spans)
    unauthorized = sum(s["attributes"]["charter.action.outcome"] == "unauthorized" for s in spans)
    tasks: dict[str, bool] = {}
    for s in spans:
        task = s["attributes"]["charter.task.id"]
        tasks[task] = tasks.get(task, False) or s["attributes"]["charter.task.success"]
    assert measured.kpis["actions_blocked_rate"] == pytest.approx(blocked / len(spans), rel=1e-12)
    assert measured.kpis["unauthorized_actions"] == unauthorized
    assert measured.kpis["task_success_rate"] == pytest.approx(sum(tasks.values()) / len(tasks), rel=1e-12)
