"""Concurrent writers give one chain; a killed writer leaves a ledger that verifies."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from charter.ledger import SigningKey, verify_ledger
from tests.conftest import REPO
from tests.unit.ledger.helpers import ORIGIN, new_ledger, read_rows

WORKERS, APPENDS = 4, 250


def _start(command: str, url: str, key_file: Path, count: int, tag: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.unit.ledger.workers", command, url, str(key_file),
                             str(count), tag], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _setup(db_url: str, tmp_path: Path) -> tuple[SigningKey, Path]:
    key = SigningKey.generate(ORIGIN)
    key_file = tmp_path / "ledger.key"
    key.save(key_file)
    new_ledger(db_url, key)
    return key, key_file


def test_four_processes_appending_give_one_dense_chain(db_url: str, tmp_path: Path) -> None:
    key, key_file = _setup(db_url, tmp_path)
    workers = [_start("append", db_url, key_file, APPENDS, f"w{i}") for i in range(WORKERS)]
    receipts = {}
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=600)
        assert worker.returncode == 0, stderr
        receipts.update(line.split() for line in stdout.splitlines())
    ledger = new_ledger(db_url, key)
    rows = read_rows(ledger.engine)
    assert [r["seq"] for r in rows] == list(range(WORKERS * APPENDS + 1))  # and the trust root
    prevs = [bytes(r["prev_hash"]) for r in rows]
    assert len(set(prevs)) == len(prevs)  # no record has two children: zero forks
    assert len(receipts) == WORKERS * APPENDS
    assert all(bytes(rows[int(seq)]["record_hash"]).hex() == digest for seq, digest in receipts.items())
    assert verify_ledger(ledger, key.public).ok


def test_negative_control_the_naive_transaction_races(db_url: str, tmp_path: Path) -> None:
    # Without the lock, writers read the same head and collide; only the UNIQUE constraints keep
    # the chain from forking. If this ever stops refusing appends, the test above proves nothing.
    key, key_file = _setup(db_url, tmp_path)
    workers = [_start("naive", db_url, key_file, 150, f"n{i}") for i in range(WORKERS)]
    refused = 0
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=600)
        assert worker.returncode == 0, stderr
        refused += int(stdout.split()[-1])
    assert refused > 0
    rows = read_rows(new_ledger(db_url, key).engine)
    assert len({bytes(r["prev_hash"]) for r in rows}) == len(rows)


def test_sigkill_mid_append_leaves_a_verifiable_ledger_with_every_receipt(db_url: str, tmp_path: Path) -> None:
    key, key_file = _setup(db_url, tmp_path)
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    receipts: dict[str, str] = {}
    for round_ in range(3):
        worker = _start("append", db_url, key_file, 100_000, f"k{round_}")
        assert worker.stdout is not None
        # Kill it mid-loop: after a random number of receipts, counted as they arrive (an event, not a
        # time, so a loaded machine that starts the worker slowly changes nothing).
        wanted = rng.randint(1, 200)
        lines: list[str] = []
        while len(lines) < wanted:
            line = worker.stdout.readline()
            assert line, f"the worker exited before {wanted} appends: {worker.stderr.read() if worker.stderr else ''}"
            lines.append(line)
        os.kill(worker.pid, signal.SIGKILL)
        stdout, _ = worker.communicate(timeout=60)
        lines += stdout.splitlines()
        receipts.update(line.split() for line in lines if len(line.split()) == 2)
    ledger = new_ledger(db_url, key)
    report = verify_ledger(ledger, key.public)
    assert report.ok, report.problems
    rows = read_rows(ledger.engine)
    assert receipts, "the worker was killed before it appended anything"
    for seq, digest in receipts.items():
        assert bytes(rows[int(seq)]["record_hash"]).hex() == digest
    assert ledger.size() == len(rows)
