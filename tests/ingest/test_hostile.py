"""Hostile and broken inputs to `charter ingest`: refused quickly with a named problem, never a hang or a trace."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from charter.errors import CharterError
from charter.ingest import IngestMapping, Window, load_mapping, measure
from tests.conftest import run_cli

UTC = dt.UTC
TS = pa.timestamp("us", tz="UTC")
JUNE = Window.parse("2026-06")


def _log(path: Path, **columns: pa.Array) -> Path:
    count = len(next(iter(columns.values())))
    stamps = [dt.datetime(2026, 6, 1 + i % 28, tzinfo=UTC) for i in range(count)]
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"ts": pa.array(stamps, TS), **columns}), path)
    return path


def test_segment_values_cannot_steer_a_terminal_or_a_report(tmp_path: Path) -> None:
    values = ["eu\x1b[31mred", "asia\u202eesrever", "us\nnext", "la:tam", "x\u200bzero"]
    path = _log(tmp_path / "p.parquet", region=pa.array(values * 4), p=pa.array([1, 0, 1, 0, 1] * 4))
    m = measure(path, IngestMapping.model_validate({"timestamp": "ts", "prediction": "p", "favourable": "positive",
                                                    "segments": {"region": "region"}, "min_group_rows": 1}), JUNE)
    assert set(m.segments) == {"region:eu-[31mred", "region:asia-esrever", "region:us-next", "region:la-tam",
                               "region:x-zero"}
    for key in m.segments:
        assert key.isprintable() and " " not in key


def test_a_fifo_as_source_or_mapping_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.parquet"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def attempt() -> None:
        try:
            measure(fifo, IngestMapping.model_validate({"timestamp": "ts"}), JUNE)
        except CharterError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=30)  # an upper bound for a hang, not a timing assertion: it returns at once
    assert outcome and isinstance(outcome[0], CharterError) and outcome[0].code == "not_a_file"
    with pytest.raises(CharterError) as caught:
        load_mapping(fifo)
    assert caught.value.code == "not_a_file"


def test_a_huge_or_endless_mapping_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("timestamp: ts\n# " + "x" * (2 << 20) + "\n")
    with pytest.raises(CharterError) as caught:
        load_mapping(big)
    assert caught.value.code == "file_too_large"
    with pytest.raises(CharterError) as caught:
        load_mapping(Path("/dev/zero"))
    assert caught.value.code == "not_a_file"
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(12)) + "timestamp: ts\n")
    with pytest.raises(CharterError):
        load_mapping(bomb)


def test_column_names_are_names_not_sql(tmp_path: Path) -> None:
    path = _log(tmp_path / "p.parquet", p=pa.array([1, 0] * 5))
    mapping = IngestMapping.model_validate({"timestamp": "ts", "prediction": 'p"; DROP TABLE rows; --'})
    with pytest.raises(CharterError) as caught:
        measure(path, mapping, JUNE)
    assert caught.value.code == "mapping_column" and "DROP TABLE" in str(caught.value)


def test_a_segment_column_of_ids_is_refused(tmp_path: Path) -> None:
    path = _log(tmp_path / "p.parquet", customer=pa.array([f"c{i}" for i in range(1_200)]),
                p=pa.array([i % 2 for i in range(1_200)]))
    with pytest.raises(CharterError) as caught:
        measure(path, IngestMapping.model_validate({"timestamp": "ts", "prediction": "p",
                                                    "segments": {"customer": "customer"}}), JUNE)
    assert caught.value.code == "too_many_groups"


def test_a_folder_with_a_symlink_loop_and_mixed_formats(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    _log(folder / "a.parquet", p=pa.array([1, 0, 1]))
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    m = measure(folder, IngestMapping.model_validate({"timestamp": "ts", "prediction": "p"}), JUNE)
    assert m.computed.rows == 3 and len(m.inputs) == 1
    (folder / "b.csv").write_text("ts,p\n2026-06-02T00:00:00Z,1\n")
    with pytest.raises(CharterError) as caught:
        measure(folder, IngestMapping.model_validate({"timestamp": "ts", "prediction": "p"}), JUNE)
    assert caught.value.code == "bad_source"


MAPPING = "timestamp: ts\nlabel: label\nprediction: p\n"


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    _log(tmp_path / "logs" / "a.parquet", label=pa.array([1, 0, 1, 1]), p=pa.array([1, 0, 0, 1]))
    _log(tmp_path / "logs" / "b.parquet", label=pa.array([0, 0, 1, 1]), p=pa.array([1, 0, 1, 1]))
    (tmp_path / "mapping.yaml").write_text(MAPPING)
    (tmp_path / "declared.yaml").write_text("kpis: {monitoring_coverage: 0.9}\n")
    result = run_cli("ingest", "logs", "--system", "s", "--window", "2026-06", "--mapping", "mapping.yaml",
                     "--declared", "declared.yaml", "--model-version", "1", "--submitter", "x",
                     "--measured-at", "2026-07-01T00:00:00Z", "--out", "bundle.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path


@pytest.mark.parametrize(("tamper", "expected"), [
    ("add a file", "input logs/c.parquet (current) is read now but not named in the bundle"),
    ("remove a file", "input logs/b.parquet (current) is named in the bundle but no longer read"),
    ("edit the declared values", "declared values declared.yaml: its SHA-256 differs"),
    ("rename the system", None),
    ("drop a computed KPI", "kpis.accuracy: recomputed"),
])
def test_verify_tamper_matrix(recorded: Path, tamper: str, expected: str | None) -> None:
    bundle = json.loads((recorded / "bundle.json").read_text())
    if tamper == "add a file":
        shutil.copy(recorded / "logs" / "a.parquet", recorded / "logs" / "c.parquet")
    elif tamper == "remove a file":
        (recorded / "logs" / "b.parquet").unlink()
    elif tamper == "edit the declared values":
        (recorded / "declared.yaml").write_text("kpis: {monitoring_coverage: 0.99}\n")
    elif tamper == "rename the system":
        bundle["system_id"] = "other"  # not a KPI: recomputation still agrees; the signature is what binds it
    else:
        del bundle["kpis"]["accuracy"]
    (recorded / "bundle.json").write_text(json.dumps(bundle))
    result = run_cli("ingest", "--verify", "bundle.json", cwd=recorded)
    assert "Traceback" not in result.stderr
    if expected is None:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 1 and expected in result.stderr, result.stderr


def test_thousands_of_unmeasurable_groups_keep_the_bundle_valid(tmp_path: Path) -> None:
    """Every group without labels adds a note; the bundle keeps the first ones and counts the rest."""
    from charter.ingest import bundle_from

    groups = [f"g{i}" for i in range(1_000)]
    path = _log(tmp_path / "p.parquet", a=pa.array(groups), b=pa.array(list(reversed(groups))),
                label=pa.array([None] * 1_000, pa.int64()), p=pa.array([i % 2 for i in range(1_000)]))
    mapping = IngestMapping.model_validate({"timestamp": "ts", "label": "label", "prediction": "p",
                                            "segments": {"a": "a", "b": "b"}, "labels": {"min_coverage": 0.0001},
                                            "min_group_rows": 1})
    (tmp_path / "m.yaml").write_text("timestamp: ts\n")
    with pytest.raises(CharterError) as caught:  # no label at all: not measurable
        measure(path, mapping, JUNE)
    assert caught.value.code == "labels_insufficient"
    labels = [1] + [None] * 999
    path = _log(tmp_path / "q.parquet", a=pa.array(groups), b=pa.array(list(reversed(groups))),
                label=pa.array(labels, pa.int64()), p=pa.array([i % 2 for i in range(1_000)]))
    measured = measure(path, mapping, JUNE)
    assert len(measured.notes) > 1_000
    bundle = bundle_from(measured, system_id="s", model_version="1", submitter="x", mapping_file=tmp_path / "m.yaml",
                         measured_at=dt.datetime(2026, 7, 2, tzinfo=UTC))
    assert bundle.provenance is not None and len(bundle.provenance.notes) == 1_000
    assert bundle.provenance.notes[-1].startswith("... and ")


def test_approval_is_the_favourable_outcome_the_mapping_names(tmp_path: Path) -> None:
    """A fraud model flags with 1: its favourable outcome is 0. Without `favourable`, no approval rate is made up."""
    path = _log(tmp_path / "p.parquet", p=pa.array([1, 0, 0, 0, 1, 0, 0, 0]), band=pa.array(["a", "b"] * 4))
    negative = measure(path, IngestMapping.model_validate({"timestamp": "ts", "prediction": "p",
                                                           "favourable": "negative"}), JUNE)
    assert negative.kpis["approval_rate"] == 0.75
    silent = measure(path, IngestMapping.model_validate({"timestamp": "ts", "prediction": "p"}), JUNE)
    assert "approval_rate" not in silent.kpis
    assert any(note.startswith("approval_rate: not computed") for note in silent.notes)
    with pytest.raises(ValueError, match="say which predicted class is favourable"):
        IngestMapping.model_validate({"timestamp": "ts", "prediction": "p", "segments": {"band": "band"},
                                     "sensitive": ["band"]})


# -- what a log gets wrong that a KPI must not hide (review of issue 15's ingest) --------------------


def test_a_repeated_id_is_refused_not_counted_twice(tmp_path: Path) -> None:
    """A prediction written again (its label arrived later, a pipeline retried) would count twice in every KPI."""
    ids = [f"p{i}" for i in range(40)]
    labels = [i % 2 for i in range(40)]
    path = _log(tmp_path / "p.parquet", id=pa.array(ids + ids[:5]), label=pa.array(labels + labels[:5]),
                p=pa.array(labels + labels[:5]))
    mapping = IngestMapping.model_validate({"timestamp": "ts", "id": "id", "label": "label", "prediction": "p"})
    with pytest.raises(CharterError) as caught:
        measure(path, mapping, JUNE)
    assert caught.value.code == "duplicate_ids" and caught.value.diagnostics[0].location.path == "$.id"
    assert "5 rows of the window repeat an id" in str(caught.value) and "'id'" in str(caught.value)
    unique = _log(tmp_path / "u.parquet", id=pa.array([*ids[:38], None, None]), label=pa.array(labels),
                  p=pa.array(labels))
    measured = measure(unique, mapping, JUNE)  # null ids are no repetition: counted as missing
    assert measured.computed.rows == 40 and measured.computed.quality["id"] == {"nulls": 2, "nan": 0}
    assert measured.kpis["accuracy"] == 1.0


def test_rows_without_a_time_are_counted_and_said(tmp_path: Path) -> None:
    stamps = [dt.datetime(2026, 6, 1 + i % 28, tzinfo=UTC) if i % 10 else None for i in range(40)]
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"ts": pa.array(stamps, TS), "p": pa.array([i % 2 for i in range(40)])}), path)
    measured = measure(path, IngestMapping.model_validate({"timestamp": "ts", "prediction": "p",
                                                           "favourable": "positive"}), JUNE)
    assert measured.computed.rows == 36 and measured.computed.quality["ts"] == {"nulls": 4, "nan": 0}
    assert any(note.startswith("timestamp: 4 rows of the source have no time") for note in measured.notes)


def test_a_group_too_small_to_judge_gets_no_kpis_and_its_size_is_recorded(tmp_path: Path) -> None:
    """One row in a new age band must not decide a fairness breach: below min_group_rows (30 by default) a group
    is left out of the segments and the gaps, a note names it, and every group's size is in the provenance."""
    from charter.ingest import bundle_from

    bands = ["18-25"] * 60 + ["26-40"] * 60 + ["99+"]
    predictions = [1] * 50 + [0] * 10 + [1] * 55 + [0] * 5 + [0]
    path = _log(tmp_path / "p.parquet", band=pa.array(bands), p=pa.array(predictions))
    base = {"timestamp": "ts", "prediction": "p", "favourable": "positive", "segments": {"age": "band"},
            "sensitive": ["age"]}
    measured = measure(path, IngestMapping.model_validate(base), JUNE)
    assert set(measured.segments) == {"age:18-25", "age:26-40"}
    assert measured.computed.groups == {"age:18-25": 60, "age:26-40": 60, "age:99+": 1}
    assert round(measured.kpis["fairness_gap"], 6) == round(55 / 60 - 50 / 60, 6)
    assert any("age:99+ (1)" in note and "min_group_rows (30)" in note for note in measured.notes)
    everyone = measure(path, IngestMapping.model_validate({**base, "min_group_rows": 1}), JUNE)
    assert everyone.segments["age:99+"]["approval_rate"] == 0.0 and everyone.kpis["disparate_impact_ratio"] == 0.0
    (tmp_path / "m.yaml").write_text("timestamp: ts\n")
    bundle = bundle_from(measured, system_id="s", model_version="1", submitter="x", mapping_file=tmp_path / "m.yaml",
                         measured_at=dt.datetime(2026, 7, 2, tzinfo=UTC))
    assert bundle.provenance is not None and bundle.provenance.groups["age:99+"] == 1
    # a bundle ingested before group sizes were recorded keeps its canonical bytes (and digest)
    plain = bundle.model_copy(update={"provenance": bundle.provenance.model_copy(update={"groups": {}})})
    assert "groups" not in plain.unsigned_dict()["provenance"] and "groups" in bundle.unsigned_dict()["provenance"]
    with pytest.raises(ValueError, match="min_group_rows"):
        IngestMapping.model_validate({**base, "min_group_rows": 0})


@pytest.mark.parametrize("column, values, what", [
    ("latency", [100.0] * 30 + [-5.0], "a negative value"),
    ("latency", [100.0] * 30 + [float("inf")], "an infinite value"),
    ("cost", [0.02] * 30 + [-0.01], "a negative value"),
    ("tokens", [120] * 30 + [-3], "a negative value"),
])
def test_an_impossible_number_is_refused_with_its_column(tmp_path: Path, column: str, values: list[float],
                                                         what: str) -> None:
    path = _log(tmp_path / "p.parquet", value=pa.array(values))
    mapping = {"latency": {"latency_ms": "value"}, "cost": {"cost": {"column": "value", "per": "prediction"}},
               "tokens": {"tokens": "value"}}[column]
    with pytest.raises(CharterError) as caught:
        measure(path, IngestMapping.model_validate({"timestamp": "ts", **mapping}), JUNE)
    assert caught.value.code == "bad_value"
    assert f"1 rows of the window hold {what} (column 'value')" in str(caught.value)


def test_an_engine_error_names_the_file_it_could_not_read(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "a.csv").write_text("ts,p\n2026-06-01T00:00:00Z,1\n", encoding="utf-8")
    (folder / "b.csv").write_bytes("ts,p\n2026-06-02T00:00:00Z,0\n2026-06-03T00:00:00Z,caf\xe9\n".encode("latin-1"))
    with pytest.raises(CharterError) as caught:
        measure(folder, IngestMapping.model_validate({"timestamp": "ts", "prediction": "p"}), JUNE)
    assert caught.value.code in {"source_unreadable", "engine_error"}
    assert "b.csv" in str(caught.value) or "utf-8" in str(caught.value).lower()
