"""Shared fixtures: the built-in catalogs, a compiler, and helpers to write policies and run the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from charter.frameworks import FrameworkSet, load_frameworks
from charter.kpis import KpiCatalog, builtin_catalog
from charter.policy import PolicyCompiler, PolicySet

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def catalog() -> KpiCatalog:
    return builtin_catalog()


@pytest.fixture(scope="session")
def frameworks() -> FrameworkSet:
    return load_frameworks()


@pytest.fixture(scope="session")
def compiler(catalog: KpiCatalog, frameworks: FrameworkSet) -> PolicyCompiler:
    return PolicyCompiler(catalog, frameworks)


def write_yaml(path: Path, data: Any) -> Path:
    """Write `data` as block-style YAML (one key per line, so line numbers are predictable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=1000), encoding="utf-8")
    return path


@pytest.fixture
def compile_policy(tmp_path: Path, compiler: PolicyCompiler) -> Callable[[dict[str, Any]], PolicySet]:
    """Write one policy document to a file and compile it."""

    def run(document: dict[str, Any]) -> PolicySet:
        path = write_yaml(tmp_path / f"{document.get('id', 'policy')}.yaml", document)
        return compiler.compile_files([path])

    return run


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m charter`` as a user would, capturing output."""
    full_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "charter", *args], cwd=cwd or REPO, env=full_env,
                          capture_output=True, text=True, timeout=120, check=False)


# -- databases for ledger tests ---------------------------------------------------------------------

PG_URL = os.environ.get("CHARTER_TEST_DATABASE_URL")


def _pg_schema_url(schema: str) -> str:
    assert PG_URL is not None
    return PG_URL + ("&" if "?" in PG_URL else "?") + f"options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A fresh, empty database URL: a SQLite file, or a schema of its own on PostgreSQL.

    PostgreSQL tests read CHARTER_TEST_DATABASE_URL. Outside CI they are skipped without it; in CI
    (CI=true) a missing URL fails the test, so the suite cannot pass by skipping them.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    require_postgresql("the PostgreSQL ledger tests")
    with fresh_pg_schema("charter_test") as url:
        yield url


def require_postgresql(what: str) -> None:
    """Skip `what` without CHARTER_TEST_DATABASE_URL; in CI (CI=true) fail instead, so it cannot pass by skipping."""
    if not PG_URL:
        if os.environ.get("CI"):
            pytest.fail(f"CHARTER_TEST_DATABASE_URL is not set: {what} must run in CI")
        pytest.skip(f"set CHARTER_TEST_DATABASE_URL to run {what}")


@contextmanager
def fresh_pg_schema(prefix: str) -> Iterator[str]:
    """A URL of CHARTER_TEST_DATABASE_URL's database searching a new schema of its own, dropped afterwards."""
    import uuid

    from sqlalchemy import create_engine

    assert PG_URL is not None
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield _pg_schema_url(schema)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def wait_for_service(url: str, process: subprocess.Popen[bytes] | None, timeout: float = 60.0,
                     log: Path | None = None) -> None:
    """Poll `url`/readyz until it answers 200: the event a test of `charter serve` waits for.

    Fails at once if the server exits, or when `timeout` seconds pass; the message carries the
    server's log when there is one. The pause between polls grows to 0.25 s; it is never a wait
    instead of a poll.
    """
    import time

    import httpx

    deadline, pause = time.monotonic() + timeout, 0.02
    tail = (lambda: f":\n{log.read_text(errors='replace')}") if log is not None else (lambda: "")
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"charter serve exited with {process.returncode} before it was ready{tail()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(pause)
        pause = min(pause * 2, 0.25)
    raise AssertionError(f"charter serve was not ready within {timeout:.0f} s{tail()}")
