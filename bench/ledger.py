"""Ledger throughput against baselines measured in the same run (SQLite, one core).

Reports, for N entries of a realistic finding-sized payload:
- appends/s with one transaction per entry and grouped in one transaction, each as a ratio to plain
  SQLAlchemy Core inserts of the same bodies (no chain, no lock, no signatures), pre-serialized and
  serialized with json.dumps in the loop;
- verify entries/s without signature checks (canonical form, hashes, chain, Merkle root) as a ratio
  to raw hashlib over the same bytes, and with signature checks as a ratio to Ed25519's own verify
  rate.

The log signs one range receipt per append transaction (issue 11). What per-entry receipts, the
earlier design, would add is the N Ed25519 signatures measured in the same run; the report gives
that estimate beside the measured ratio.

    python bench/ledger.py [--entries 5000] [--json]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Integer, LargeBinary, MetaData, Table, insert

from charter.authority import Administrator, GovernanceConfig, init_governance
from charter.ledger import Ledger, NewEntry, SigningKey, verify_ledger
from charter.ledger.database import make_engine, write_transaction
from charter.ledger.hashing import canonical

PAYLOAD: dict[str, Any] = {
    "system_id": "fraud-detector", "policy": "core.performance", "rule": "recall-floor", "status": "breach",
    "severity": "high", "observed": {"recall": 0.62}, "thresholds": {"min": 0.75, "warn_min": 0.85},
    "controls": ["iso-42001:A.6.2.4", "eu-ai-act:art-15(3)", "nist-ai-rmf:MEASURE-2.5"],
    "explanation": "recall < 0.75 (recall = 0.62)", "window_end": "2026-06-01T00:00:00+00:00",
}


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    n = args.entries
    workdir = Path(tempfile.mkdtemp(prefix="charter-bench-"))
    key = SigningKey.generate("bench/log")
    entries = [NewEntry("finding", {**PAYLOAD, "i": i}, f"s-{i}") for i in range(n)]
    bodies = [canonical({**PAYLOAD, "i": i}) for i in range(n)]

    plain_engine = make_engine(f"sqlite:///{workdir / 'plain.db'}")
    plain = Table("plain", MetaData(), Column("id", Integer, primary_key=True), Column("body", LargeBinary))
    plain.metadata.create_all(plain_engine)

    def plain_grouped() -> None:
        with write_transaction(plain_engine) as connection:
            connection.execute(insert(plain), [{"body": b} for b in bodies])

    def plain_grouped_serializing() -> None:
        with write_transaction(plain_engine) as connection:
            connection.execute(insert(plain), [{"body": json.dumps({**PAYLOAD, "i": i}).encode()} for i in range(n)])

    def plain_each() -> None:
        for body in bodies[: n // 10]:
            with write_transaction(plain_engine) as connection:
                connection.execute(insert(plain).values(body=body))

    grouped = Ledger.open(f"sqlite:///{workdir / 'grouped.db'}", log_key=key, origin="bench/log", create=True)
    each = Ledger.open(f"sqlite:///{workdir / 'each.db'}", log_key=key, origin="bench/log", create=True)
    admin = SigningKey.generate("admin")
    config = GovernanceConfig(administrators=[Administrator(principal="admin", public_key=base64.b64encode(
        admin.public).decode())], threshold=1)
    for ledger in (grouped, each):  # every ledger starts with its trust root (not timed)
        init_governance(ledger, config, [admin])
    t_plain_grouped = timed(plain_grouped)
    t_plain_serializing = timed(plain_grouped_serializing)
    t_grouped = timed(lambda: grouped.append(entries))
    t_plain_each = timed(plain_each)
    t_each = timed(lambda: [each.append([e]) for e in entries[: n // 10]])
    t_hash = timed(lambda: [hashlib.sha256(b"\x00" + b).digest() for b in bodies])
    t_verify = timed(lambda: verify_ledger(grouped, key.public, check_signatures=False))
    t_verify_sig = timed(lambda: verify_ledger(grouped, key.public, check_signatures=True))
    t_sign_each = timed(lambda: [key.sign(b"charter-receipt/v1\n", b"m" * 100) for _ in range(n)])
    signature = key.private.sign(b"x" * 64)
    public = key.private.public_key()
    t_ed25519 = timed(lambda: [public.verify(signature, b"x" * 64) for _ in range(n)])

    report = {
        "entries": n,
        "grouped_appends_per_s": round(n / t_grouped),
        "grouped_slower_than_plain_inserts_x": round(t_grouped / t_plain_grouped, 2),
        "grouped_slower_than_plain_serialize_and_insert_x": round(t_grouped / t_plain_serializing, 2),
        "receipt_signatures_per_grouped_append": 1,
        "with_per_entry_receipts_estimate_x": round((t_grouped + t_sign_each) / t_plain_serializing, 2),
        "per_txn_appends_per_s": round(n / 10 / t_each),
        "per_txn_slower_than_plain_per_txn_x": round(t_each / t_plain_each, 2),
        "verify_no_signatures_entries_per_s": round(n / t_verify),
        "verify_no_signatures_slower_than_hashlib_x": round(t_verify / t_hash, 1),
        "verify_with_signatures_entries_per_s": round(n / t_verify_sig),
        "ed25519_verifies_per_s": round(n / t_ed25519),
        "verify_with_signatures_slower_than_ed25519_x": round(t_verify_sig / t_ed25519, 2),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, value in report.items():
            print(f"{name:46} {value}")


if __name__ == "__main__":
    main()
