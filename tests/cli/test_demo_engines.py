"""The demo's bundles computed on Spark are the bundles computed on DuckDB, byte for byte.

One window of each story (the fraud model's drift against January, the claims model's age bands, the
turbine model's regions, the chatbot's evaluation labels, the agent's actions), then the full loop
(`charter demo --engine spark`): minutes of Spark, so CI runs them as their own step,
``pytest -m spark -n 0 tests/cli/test_demo_engines.py``. The cross-check suite (tests/ingest) runs Spark
in the default suite.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from charter.cli.demo import demo_bundle
from charter.ingest.demo_data import generate_demo_data
from charter.kpis import load_catalog
from charter.ledger import Ledger
from tests.conftest import run_cli

STORIES = {("fraud-detector", "2026-06"), ("claims-approval", "2026-05"), ("turbine-maintenance", "2026-06"),
           ("customer-chatbot", "2026-05"), ("procurement-agent", "2026-06")}


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from charter.ingest.sources import spark_session

    # Not stopped here: another module of the same worker may hold the same (active) session; the JVM ends
    # with the process.
    yield spark_session()


@pytest.mark.spark
def test_each_story_gives_the_same_bundle_on_duckdb_and_spark(tmp_path: Path, spark: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    catalog = load_catalog()
    windows = [w for w in generate_demo_data(Path("data")) if (w.system_id, w.month) in STORIES]
    assert len(windows) == len(STORIES)
    for window in windows:
        on_duckdb = demo_bundle(window, "owner", catalog, "duckdb")
        on_spark = demo_bundle(window, "owner", catalog, "spark", spark)
        assert on_duckdb.provenance is not None and on_duckdb.provenance.computed
        assert on_spark.canonical_bytes() == on_duckdb.canonical_bytes(), (window.system_id, window.month)


def _bundles(root: Path) -> list[dict[str, Any]]:
    ledger = Ledger.open(f"sqlite:///{root / '.charter' / 'demo' / 'ledger.db'}", read_only=True)
    return [entry.payload for entry in ledger.entries(types=("bundle",))]


@pytest.mark.spark
def test_the_demo_loop_on_spark_records_the_bundles_and_breaches_of_duckdb(tmp_path: Path) -> None:
    runs = {}
    for engine in ("duckdb", "spark"):
        root = tmp_path / engine
        root.mkdir()
        result = run_cli("demo", "--engine", engine, cwd=root)
        assert result.returncode == 0, result.stderr
        runs[engine] = (root, result.stdout)
    duckdb_bundles, spark_bundles = _bundles(runs["duckdb"][0]), _bundles(runs["spark"][0])
    assert len(duckdb_bundles) == 20
    for on_duckdb, on_spark in zip(duckdb_bundles, spark_bundles, strict=True):
        assert json.dumps(on_spark, sort_keys=True) == json.dumps(on_duckdb, sort_keys=True)
    breaches = [line for line in runs["duckdb"][1].splitlines() if "BREACH" in line]
    assert breaches and breaches == [line for line in runs["spark"][1].splitlines() if "BREACH" in line]


def test_a_spark_catalog_table_gives_the_same_kpis_as_its_files(tmp_path: Path, spark: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``spark:TABLE`` reads a table of the session's catalog; its KPIs are those of the files it was made from."""
    from charter.ingest import Window, load_mapping, measure

    monkeypatch.chdir(tmp_path)
    [window] = [w for w in generate_demo_data(Path("data")) if (w.system_id, w.month) == ("claims-approval", "2026-05")]
    spark.read.parquet(str(window.path.resolve())).createOrReplaceTempView("claims_predictions")
    mapping = load_mapping(window.mapping_path)
    from_table = measure("spark:claims_predictions", mapping, Window.parse("2026-05"), spark=spark)
    from_files = measure(window.path, mapping, Window.parse("2026-05"))
    assert from_table.engine == "spark" and from_table.inputs[0].digest_of == "rows"
    assert from_table.kpis == from_files.kpis and from_table.segments == from_files.segments
