"""The HTTP service's overhead against the library, measured in the same run on ledgers of the same content.

Two ledgers get the demo's authority set-up; then the same signed bundles are submitted to one by
calling `charter.submission.submit_bundle` in-process, and to the other through `charter serve`
(a uvicorn subprocess on loopback) with the owner's API token. Then the same incident listing and
finding queries are run against both: the library calls the routes make, timed in-process, and the
HTTP requests. Reported: submissions per second, p50/p95/p99 latency of each operation, and the
service's cost as a ratio to the library's (never an absolute target).

    python bench/service.py [--bundles 200] [--queries 200] [--workers 1] [--sqlite] [--json]

PostgreSQL (CHARTER_TEST_DATABASE_URL, default postgresql://root@127.0.0.1:5432/test) by default, each
ledger in a schema of its own dropped afterwards; --sqlite uses SQLite files (one worker).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "engine"), str(ROOT)]

from tests.api.test_load import cli_environment, free_port, signed_bundles, wait_ready  # noqa: E402
from tests.unit.ledger.helpers import ORIGIN, govern, key_of  # noqa: E402

from charter.incidents import metrics  # noqa: E402 - after the path set-up, like the tests' imports
from charter.kpis import builtin_catalog  # noqa: E402
from charter.ledger import Ledger, SigningKey  # noqa: E402
from charter.submission import FINDING, default_compiler, submit_bundle  # noqa: E402
from charter.tokens import create_token  # noqa: E402

SYSTEM, OWNER = "fraud-detector", "maria.keller"


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50, p95, p99 in milliseconds."""
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"p50_ms": round(pick(0.50), 2), "p95_ms": round(pick(0.95), 2), "p99_ms": round(pick(0.99), 2)}


def timed_each(calls: list[Callable[[], object]]) -> tuple[float, list[float]]:
    """Total seconds and each call's seconds."""
    each = []
    started = time.perf_counter()
    for call in calls:
        begun = time.perf_counter()
        call()
        each.append(time.perf_counter() - begun)
    return time.perf_counter() - started, each


@contextmanager
def database(sqlite: bool, workdir: Path, name: str) -> Iterator[str]:
    """A fresh ledger URL: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    if sqlite:
        yield f"sqlite:///{workdir / name}.db"
        return
    from sqlalchemy import create_engine

    base = os.environ.get("CHARTER_TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/test")
    schema = f"charter_bench_{name}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield base + ("&" if "?" in base else "?") + f"options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def governed(url: str) -> Ledger:
    """A ledger with the demo's authority set-up (real clock: the service appends after it)."""
    ledger = Ledger.open(url, log_key=SigningKey.generate(ORIGIN), origin=ORIGIN, create=True)
    govern(ledger)
    return ledger


def library_run(url: str, bundles: list[bytes], queries: int) -> dict[str, Any]:
    """Submit and query in-process, as the routes call the library."""
    ledger = governed(url)
    catalog = builtin_catalog()
    compiler = default_compiler(catalog)
    seconds, submit = timed_each([lambda b=b: submit_bundle(ledger, b, catalog, compiler=compiler) for b in bundles])

    def incidents() -> object:
        from charter.incidents import load_book

        book = load_book(ledger)
        return [i for i in book.incidents.values() if i.system_id == SYSTEM], metrics(book.incidents.values())

    def findings() -> object:
        items = []
        for entry in ledger.entries(0, types=[FINDING], subject=SYSTEM):
            items.append(entry.payload)
            if len(items) > 100:
                break
        return items

    _, incident_times = timed_each([incidents] * queries)
    _, finding_times = timed_each([findings] * queries)
    ledger.engine.dispose()
    return {"submit_seconds": seconds, "submit": submit, "incidents": incident_times, "findings": finding_times}


def service_run(url: str, bundles: list[bytes], queries: int, workers: int, workdir: Path) -> dict[str, Any]:
    """The same through `charter serve` on loopback."""
    ledger = governed(url)
    key_path = workdir / f"{uuid.uuid4().hex[:8]}.key"
    assert ledger.log_key is not None
    ledger.log_key.save(key_path)
    expires = ledger.clock() + datetime.timedelta(days=1)
    token = create_token(ledger, OWNER, ["submit", "read"], expires, key_of("ana.costa"))[1]
    ledger.engine.dispose()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "charter", "serve", "--db", url, "--ledger-key", str(key_path),
                               "--workers", str(workers), "--port", str(port), "--reports-dir",
                               str(workdir / "reports")],
                              env=cli_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    try:
        wait_ready(server, base, 60)
        with httpx.Client(base_url=base, timeout=120, headers=headers) as client:
            def post(body: bytes) -> None:
                response = client.post("/v1/bundles", content=body)
                assert response.status_code == 201, response.text

            def get(path: str) -> None:
                response = client.get(path)
                assert response.status_code == 200, response.text

            seconds, submit = timed_each([lambda b=b: post(b) for b in bundles])
            _, incident_times = timed_each([lambda: (get(f"/v1/incidents?system={SYSTEM}"),
                                                     get(f"/v1/metrics/incidents?system={SYSTEM}"))] * queries)
            _, finding_times = timed_each([lambda: get(f"/v1/findings?system={SYSTEM}&limit=100")] * queries)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    return {"submit_seconds": seconds, "submit": submit, "incidents": incident_times, "findings": finding_times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=int, default=200, help="bundles submitted to each ledger")
    parser.add_argument("--queries", type=int, default=200, help="repetitions of each query")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (PostgreSQL only above 1)")
    parser.add_argument("--sqlite", action="store_true", help="SQLite files instead of PostgreSQL schemas")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="charter-bench-service-"))
    bundles = signed_bundles(0, args.bundles, SYSTEM)
    with database(args.sqlite, workdir, "library") as url:
        library = library_run(url, bundles, args.queries)
    with database(args.sqlite, workdir, "service") as url:
        service = service_run(url, bundles, args.queries, args.workers, workdir)
    report: dict[str, Any] = {"database": "sqlite" if args.sqlite else "postgresql", "bundles": args.bundles,
                              "queries": args.queries, "workers": args.workers}
    for name, run in (("library", library), ("service", service)):
        report[f"{name} submissions/s"] = round(args.bundles / run["submit_seconds"], 1)
        for operation in ("submit", "incidents", "findings"):
            report[f"{name} {operation}"] = percentiles(run[operation])
    report["service/library submissions/s"] = round(report["service submissions/s"] / report["library submissions/s"],
                                                    3)
    for operation in ("submit", "incidents", "findings"):
        report[f"service/library {operation} p50"] = round(
            statistics.median(service[operation]) / statistics.median(library[operation]), 2)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, value in report.items():
            print(f"{name:36} {value}")


if __name__ == "__main__":
    main()
