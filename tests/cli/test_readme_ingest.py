"""The README's `charter ingest` from a PostgreSQL table runs as shown, on the demo's fraud log."""

from __future__ import annotations

import re
import shlex
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from charter.ingest.demo_data import generate_demo_data
from tests.conftest import PG_URL, REPO, require_postgresql
from tests.governed import governed_cli, governed_ledger

README = (REPO / "README.md").read_text(encoding="utf-8")
_PG_TYPES = {pa.types.is_timestamp: "timestamptz", pa.types.is_integer: "bigint",
             pa.types.is_floating: "double precision", pa.types.is_boolean: "boolean", pa.types.is_string: "text"}


def _readme_command() -> list[str]:
    section = README.split("### Evidence from raw data", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```shell\n(.*?)```", section, flags=re.S)
    [line] = [raw for raw in block.splitlines() if raw.startswith("charter ingest postgresql://")]
    return shlex.split(line)[2:]  # after "charter ingest"


def _load(table: pa.Table, name: str) -> None:
    import psycopg

    assert PG_URL is not None
    columns = []
    for field in table.schema:
        kind = next(sql for test, sql in _PG_TYPES.items() if test(field.type))
        columns.append(f'"{field.name}" {kind}')
    with psycopg.connect(PG_URL, autocommit=True) as connection:
        connection.execute(f"CREATE TABLE {name} ({', '.join(columns)})")
        names = ", ".join(f'"{f.name}"' for f in table.schema)
        with connection.cursor().copy(f"COPY {name} ({names}) FROM STDIN") as copy:
            for row in table.to_pylist():
                copy.write_row(tuple(row.values()))


def _drop(name: str) -> None:
    import psycopg

    assert PG_URL is not None
    with psycopg.connect(PG_URL, autocommit=True) as connection:
        connection.execute(f"DROP TABLE IF EXISTS {name}")


def test_readme_ingest_from_a_postgresql_table(tmp_path: Path) -> None:
    require_postgresql("the README's ingest from a PostgreSQL table")
    assert PG_URL is not None
    args = _readme_command()
    governed_ledger(tmp_path)
    (tmp_path / "evidence").symlink_to(REPO / "evidence")
    files = sorted(p for w in generate_demo_data(tmp_path / "data") if w.system_id == "fraud-detector"
                   for p in [w.path])
    table = pa.concat_tables(pq.read_table(path) for path in files)
    name = f"public.fraud_predictions_{uuid.uuid4().hex[:10]}"
    _load(table, name)
    try:
        args[0] = args[0].replace("postgresql://root@127.0.0.1:5432/test", PG_URL).replace(
            "public.fraud_predictions", name)
        code, out, err = governed_cli(tmp_path, "ingest", *args)
        assert code in (0, 1), err  # 1: a breach among the findings, as charter submit
        assert "receipt: seq" in out
        assert "on postgres: 10,000 rows" in err
    finally:
        _drop(name)


@pytest.mark.parametrize("table", ["fraud; drop table x", "a.b.c"])
def test_a_table_name_that_is_not_an_identifier_is_refused(tmp_path: Path, table: str) -> None:
    code, _, err = governed_cli(tmp_path, "ingest", f"postgresql://root@127.0.0.1:5432/test/{table}", "--system",
                                "fraud-detector", "--window", "2026-06", "--mapping",
                                str(REPO / "evidence" / "mappings" / "fraud-detector.yaml"), "--model-version", "1",
                                "--submitter", "x")
    assert code == 2 and "[bad_source]" in err
