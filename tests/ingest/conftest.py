"""Fixtures of the ingest tests: one Spark session per worker, and Parquet files from Arrow tables."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

_names = itertools.count()


def write_parquet(table: pa.Table, folder: Path, name: str | None = None) -> Path:
    """Write `table` to a new Parquet file in `folder` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name or f'rows-{next(_names)}'}.parquet"
    pq.write_table(table, path)
    return path


@pytest.fixture
def to_parquet(tmp_path: Path) -> Callable[[pa.Table], Path]:
    """Write a pyarrow table to a Parquet file in the test's tmp_path."""

    def write(table: pa.Table, name: str | None = None) -> Path:
        return write_parquet(table, tmp_path, name)

    return write


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """A local[2] Spark session in UTC for the whole session (each xdist worker starts its own)."""
    from charter.ingest.sources import spark_session  # pyspark is a dev dependency: missing, the tests fail

    session = spark_session()
    try:
        yield session
    finally:
        session.stop()
