"""The bounded loopback load test of issue 14: `charter serve --workers 2` on PostgreSQL, 8 submitters.

A real `charter serve` subprocess (two uvicorn workers) serves a fresh PostgreSQL schema holding the
demo's authority set-up; 8 threads, each with its own HTTP client and its system owner's API token,
submit 250 distinct signed bundles each. Every submission must be appended once (201), every
receipt must be the log's promise for an entry whose record hash it names, and afterwards
`charter verify --full` must pass on a dense, fork-free sequence. The run's throughput is printed
(pytest -s) so a slowdown shows in CI logs; nothing here asserts a time.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

import charter
from charter.ledger import Ledger, SigningKey
from charter.ledger.auditor import check_receipt
from charter.submission import sign_bundle_data
from charter.tokens import create_token
from tests.conftest import REPO, fresh_pg_schema, require_postgresql, wait_for_service
from tests.unit.ledger.helpers import ORIGIN, govern, key_of

SUBMITTERS = 8
BUNDLES_EACH = 250
#: which system each submitter sends bundles of (its owner's token signs in)
SYSTEMS = ["fraud-detector", "claims-approval", "turbine-maintenance", "customer-chatbot", "procurement-agent",
           "fraud-detector", "claims-approval", "turbine-maintenance"]
OWNERS = {"fraud-detector": "maria.keller", "claims-approval": "tom.berger", "customer-chatbot": "tom.berger",
          "turbine-maintenance": "li.wang", "procurement-agent": "li.wang"}
READY_TIMEOUT = 60.0
#: tries per bundle while the service answers 503 (database unavailable)
MAX_ATTEMPTS = 5


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL schema (CHARTER_TEST_DATABASE_URL; in CI a missing URL fails)."""
    require_postgresql("the load test")
    with fresh_pg_schema("charter_load") as url:
        yield url


def _template(system: str) -> dict[str, Any]:
    newest = sorted((REPO / "evidence").glob(f"{system}-*.json"))[-1]
    data: dict[str, Any] = json.loads(newest.read_text(encoding="utf-8"))
    return data


def signed_bundles(submitter: int, count: int, system: str) -> list[bytes]:
    """`count` distinct bundles of `system`, signed by its owner: one-hour windows no other submitter uses,
    a model version naming the submitter and the bundle, all measured in the past."""
    template, key = _template(system), key_of(OWNERS[system])
    base = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(days=30 * submitter)
    bundles = []
    for index in range(count):
        data = copy.deepcopy(template)
        start = base + datetime.timedelta(hours=index)
        data.update(model_version=f"{template['model_version']}+load.{submitter}.{index}",
                    window_start=start.isoformat().replace("+00:00", "Z"),
                    window_end=(start + datetime.timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
                    measured_at=(start + datetime.timedelta(hours=1, minutes=5)).isoformat().replace("+00:00", "Z"))
        data.pop("signature", None)
        bundles.append(json.dumps(sign_bundle_data(data, key)).encode())
    return bundles


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli_environment() -> dict[str, str]:
    """The environment of a `python -m charter` subprocess importing this checkout's engine."""
    engine = str(Path(charter.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([engine, str(REPO), os.environ.get("PYTHONPATH", "")]),
            "NO_COLOR": "1", "COLUMNS": "200"}


def wait_ready(process: subprocess.Popen[bytes], url: str, timeout: float) -> None:
    """Poll /readyz until it answers 200 (`tests.conftest.wait_for_service`)."""
    wait_for_service(url, process, timeout)


@dataclass
class Outcome:
    """What one submitter saw."""

    statuses: list[int] = field(default_factory=list)
    receipts: list[dict[str, Any]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    retries: int = 0


def submit_all(url: str, token: str, bundles: list[bytes], outcome: Outcome) -> None:
    """One submitter: its own client, its bundles in order, each retried like a pipeline would on a 503
    (the database had no connection to spare: PostgreSQL is shared with parallel suites), with one
    Idempotency-Key per bundle so a retry can never append twice."""
    with httpx.Client(base_url=url, timeout=120) as client:
        for body in bundles:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                       "Idempotency-Key": uuid.uuid4().hex}
            started = time.perf_counter()
            try:
                for _ in range(MAX_ATTEMPTS):
                    response = client.post("/v1/bundles", content=body, headers=headers)
                    if response.status_code != 503:
                        break
                    outcome.retries += 1
                    wait_for_service(url, None, READY_TIMEOUT)  # until the database answers again, then retry
            except httpx.HTTPError as exc:
                outcome.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            outcome.latencies.append(time.perf_counter() - started)
            outcome.statuses.append(response.status_code)
            if response.status_code in (200, 201):
                outcome.receipts.append(response.json()["receipt"])
            elif len(outcome.errors) < 5:
                outcome.errors.append(response.text[:500])


@pytest.fixture
def served_ledger(postgres_url: str, tmp_path: Path) -> tuple[str, Path, dict[str, str]]:
    """The demo's authority set-up in a fresh schema, its log key file, and a submit token per owner."""
    ledger = Ledger.open(postgres_url, log_key=SigningKey.generate(ORIGIN), origin=ORIGIN, create=True)
    govern(ledger)
    key_path = tmp_path / "ledger.key"
    assert ledger.log_key is not None
    ledger.log_key.save(key_path)
    expires = ledger.clock() + datetime.timedelta(days=1)
    tokens = {owner: create_token(ledger, owner, ["submit"], expires, key_of("ana.costa"))[1]
              for owner in sorted(set(OWNERS.values()))}
    ledger.engine.dispose()
    return postgres_url, key_path, tokens


@pytest.mark.load
def test_eight_submitters_against_two_workers_leave_a_dense_verified_ledger(
        served_ledger: tuple[str, Path, dict[str, str]], tmp_path: Path) -> None:
    url, key_path, tokens = served_ledger
    work = [signed_bundles(n, BUNDLES_EACH, SYSTEMS[n]) for n in range(SUBMITTERS)]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "charter", "serve", "--db", url, "--ledger-key", str(key_path), "--workers", "2",
         "--port", str(port), "--reports-dir", str(tmp_path / "reports")],
        env=cli_environment(), stdout=subprocess.DEVNULL, stderr=(tmp_path / "serve.log").open("wb"),
        start_new_session=True)
    try:
        wait_ready(server, base, READY_TIMEOUT)
        outcomes = [Outcome() for _ in range(SUBMITTERS)]
        threads = [threading.Thread(target=submit_all, args=(base, tokens[OWNERS[SYSTEMS[n]]], work[n], outcomes[n]))
                   for n in range(SUBMITTERS)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()

    total = SUBMITTERS * BUNDLES_EACH
    latencies = sorted(x for o in outcomes for x in o.latencies)
    print(f"\nload: {total} bundles by {SUBMITTERS} submitters in {elapsed:.1f} s = {total / elapsed:.1f}/s; "
          f"latency p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
          f"p95 {latencies[int(len(latencies) * 0.95)] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms; "
          f"{sum(o.retries for o in outcomes)} retries after a 503")
    errors = [e for o in outcomes for e in o.errors]
    assert not errors, errors[:5]
    statuses = [s for o in outcomes for s in o.statuses]
    assert statuses == [201] * total, {s: statuses.count(s) for s in set(statuses)}

    # the sequence is dense and has no fork: one entry per seq, each prev_hash used once
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as connection:
        count, top, prevs, bundles = connection.execute(text(
            "SELECT count(*), max(seq), count(DISTINCT prev_hash), "
            "count(*) FILTER (WHERE entry_type = 'bundle') FROM ledger_entry")).one()
    engine.dispose()
    assert count == top + 1 == prevs, (count, top, prevs)
    assert bundles == total

    ledger = Ledger.open(url)
    public = SigningKey.load(key_path).public
    for receipt in (r for o in outcomes for r in o.receipts):
        assert check_receipt(receipt, ORIGIN, public), receipt
        entry = ledger.entry(int(receipt["seq"]))
        assert entry is not None and entry.record_hash.hex() == receipt["record_hash"]
    ledger.engine.dispose()

    verify = subprocess.run([sys.executable, "-m", "charter", "verify", "--full", "--db", url, "--ledger-key",
                             str(key_path), "--log-public-key", str(key_path.with_suffix(".pub"))],
                            env=cli_environment(), capture_output=True, text=True, timeout=600, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"OK: {count} entries verified" in verify.stdout


def test_two_workers_on_sqlite_are_refused(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "charter", "serve", "--db", f"sqlite:///{tmp_path / 'l.db'}",
                             "--ledger-key", str(tmp_path / "ledger.key"), "--workers", "2",
                             "--port", str(free_port())],
                            env=cli_environment(), capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "SQLite takes one writer process" in result.stderr
