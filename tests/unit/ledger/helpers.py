"""Builds populated ledgers for tests, and tampers with them the way an insider with SQL access could."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, delete, insert, select, update

from charter.authority import Administrator, GovernanceConfig, init_governance
from charter.cli.demo import demo_governance
from charter.errors import CharterError
from charter.frameworks import load_frameworks
from charter.kpis import builtin_catalog
from charter.ledger import Ledger, SigningKey
from charter.ledger.auditor import Authority
from charter.ledger.hashing import leaf_hash
from charter.ledger.schema import ledger_entry, ledger_head
from charter.policy import PolicyCompiler, PolicySet, policy_files
from charter.registry import SystemRegistry
from charter.submission import SubmitResult, submit_bundle
from tests.conftest import REPO

ORIGIN = "test.example/ledger"
CATALOG = builtin_catalog()
COMPILER = PolicyCompiler(CATALOG, load_frameworks())
POLICIES: PolicySet = COMPILER.compile_files(policy_files(REPO / "policies"))
REGISTRY = SystemRegistry.from_file(REPO / "evidence" / "systems.yaml", CATALOG)
ESCALATION = REPO / "policies" / "escalation.yaml"


class StepClock:
    """A clock that advances one second per reading: deterministic, monotonic."""

    def __init__(self, start: datetime.datetime | None = None) -> None:
        self.now = start or datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

    def __call__(self) -> datetime.datetime:
        self.now += datetime.timedelta(seconds=1)
        return self.now


@dataclass
class Populated:
    ledger: Ledger
    log_key: SigningKey
    #: everyone's keys, by principal: administrators, role holders, escalation members, owners
    owner_keys: dict[str, SigningKey]


def new_ledger(url: str, log_key: SigningKey | None = None, *, trust_root: bool = True) -> Ledger:
    """A new (or reopened) ledger; with `trust_root`, entry 0 is a governance configuration of one administrator."""
    ledger = Ledger.open(url, log_key=log_key or SigningKey.generate(ORIGIN), origin=ORIGIN, create=True,
                         clock=StepClock())
    if trust_root and ledger.size() == 0:
        admin = key_of("ana.costa")
        init_governance(ledger, GovernanceConfig(administrators=[Administrator(
            principal="ana.costa", public_key=base64.b64encode(admin.public).decode())], threshold=1), [admin])
    return ledger


def key_of(principal: str) -> SigningKey:
    """`principal`'s key in tests: derived from the name, so any test can act as anyone it set up."""
    seed = hashlib.sha256(b"charter-test-key\n" + principal.encode()).digest()
    return SigningKey(principal, Ed25519PrivateKey.from_private_bytes(seed))


def govern(ledger: Ledger) -> dict[str, SigningKey]:
    """The demo's authority set-up on `ledger`: trust root, keys (`key_of`), systems, policies, escalation."""
    return demo_governance(ledger, REGISTRY, POLICIES.policies, ESCALATION, make_key=key_of)


def populate(url: str, bundles: int = 6) -> Populated:
    """A ledger with the demo's authority set-up and `bundles` fraud bundles with their findings and incidents."""
    ledger = new_ledger(url, trust_root=False)
    assert ledger.log_key is not None
    keys = govern(ledger)
    for path in sorted((REPO / "evidence").glob("fraud-detector-*.json"))[:bundles]:
        at = datetime.datetime.fromisoformat(json.loads(path.read_text())["measured_at"])
        submit_bundle(ledger, path.read_bytes(), CATALOG, key=keys["maria.keller"], at=at)
    return Populated(ledger, ledger.log_key, keys)


# -- tampering ---------------------------------------------------------------------------------------


def drop_guards(engine: Engine) -> None:
    """Remove the append-only triggers, as someone with DDL rights can."""
    with engine.begin() as connection:
        for table in ("ledger_entry", "checkpoint", "ledger_receipt"):
            if engine.dialect.name == "postgresql":
                connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            else:
                connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_update")
                connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_delete")


def read_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(select(ledger_entry).order_by(ledger_entry.c.seq))]


def write_rows(engine: Engine, rows: list[dict[str, Any]], head_size: int | None = None) -> None:
    """Replace every entry row (and move the head), keeping whatever receipts the rows carry."""
    with engine.begin() as connection:
        connection.execute(delete(ledger_entry))
        if rows:
            connection.execute(insert(ledger_entry), rows)
        size = len(rows) if head_size is None else head_size
        head_hash = bytes(rows[size - 1]["record_hash"]) if size else bytes(32)
        received = json.loads(rows[size - 1]["body"])["received_at"] if size else ""
        connection.execute(update(ledger_head).values(size=size, head_hash=head_hash, last_received_at=received))


def rechain(rows: list[dict[str, Any]], start: int = 0) -> list[dict[str, Any]]:
    """Renumber rows from `start` on and recompute their bodies' seq/prev and the hashes: a rehash."""
    out = [dict(r) for r in rows]
    prev = bytes(out[start - 1]["record_hash"]) if start else bytes(32)
    for seq in range(start, len(out)):
        body = json.loads(out[seq]["body"])
        body["seq"], body["prev"] = seq, prev.hex()
        raw = rfc8785.dumps(body)
        record_hash = leaf_hash(raw)
        out[seq].update(seq=seq, body=raw, prev_hash=prev, record_hash=record_hash)
        prev = record_hash
    return out


def edit_payload(row: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The row with its payload changed and its body re-canonicalized (hash not yet updated)."""
    body = json.loads(row["body"])
    body["payload"].update(changes)
    return {**row, "body": rfc8785.dumps(body)}


def first_seq_of_type(rows: list[dict[str, Any]], kind: str, skip: int = 0) -> int:
    return [r["seq"] for r in rows if r["entry_type"] == kind][skip]


def copy_sqlite(url: str, target: Path) -> str:
    """Copy a SQLite ledger file (for hypothesis examples that each need a pristine ledger)."""
    import shutil

    source = Path(url.removeprefix("sqlite:///"))
    shutil.copyfile(source, target)
    return f"sqlite:///{target}"


def transaction_start(engine: Engine, seq: int) -> int:
    """The first seq of the append transaction that wrote entry `seq` (its range receipt's first entry)."""
    from charter.ledger.schema import ledger_receipt

    with engine.connect() as connection:
        first = connection.execute(select(ledger_receipt.c.first_seq).where(
            ledger_receipt.c.first_seq <= seq, ledger_receipt.c.last_seq >= seq)).scalar_one()
    return int(first)


def transaction_ends(engine: Engine) -> list[int]:
    """The size of the ledger after each append transaction, in order."""
    from charter.ledger.schema import ledger_receipt

    with engine.connect() as connection:
        return [int(last) + 1 for last in connection.execute(
            select(ledger_receipt.c.last_seq).order_by(ledger_receipt.c.last_seq)).scalars()]


@contextmanager
def unchecked() -> Iterator[None]:
    """Append as an insider with the log key would: the store's authority check is skipped."""
    original = Authority.check
    Authority.check = lambda *args, **kwargs: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        Authority.check = original  # type: ignore[method-assign]


def register_high_risk(ledger: Ledger, system_id: str = "claims-approval") -> Any:
    """Record `system_id` as EU AI Act high-risk (Annex III, point 5(c)), signed by the demo's system
    registrar: Art. 73 serious-incident reporting applies to it from then on (review L2)."""
    from charter.registry import AnnexIIIUse
    from charter.submission import register_system, systems_in_ledger

    current = systems_in_ledger(ledger)[system_id]
    assert current.eu_ai_act is not None
    classification = current.eu_ai_act.model_copy(update={
        "annex_iii": AnnexIIIUse(area=5, point="c", reasoning="Test fixture: treated as life and health insurance "
                                 "risk assessment, so high-risk under Art 6(2)."),
        "reasoning": "High-risk (test fixture): Annex III point 5(c)."})
    entry = register_system(ledger, current.model_copy(update={"eu_ai_act": classification}), key_of("ben.okafor"))
    assert systems_in_ledger(ledger)[system_id].eu_ai_act.high_risk  # type: ignore[union-attr]
    return entry


#: the claims model's May bundle: its fairness breaches open incidents
CLAIMS = REPO / "evidence" / "claims-approval-2026-05.json"


def claims_measured_at() -> datetime.datetime:
    """When the claims bundle was measured: submitting it then judges it with the evidence fresh."""
    return datetime.datetime.fromisoformat(json.loads(CLAIMS.read_text())["measured_at"].replace("Z", "+00:00"))


def submit_claims(populated: Populated) -> SubmitResult:
    """Submit the claims bundle, signed by its owner, judged when it was measured."""
    return submit_bundle(populated.ledger, CLAIMS.read_bytes(), CATALOG, key=key_of("tom.berger"),
                         at=claims_measured_at())


def validated_claims_incident(populated: Populated, *, high_risk: bool) -> Any:
    """The claims model's fairness breach, investigated and validated, with the ledger's clock in June; with
    `high_risk`, the claims model is first recorded as EU high-risk, so Art. 73 applies to it."""
    from charter.incidents import load_book, transition

    if high_risk:
        register_high_risk(populated.ledger)
    submit_claims(populated)
    populated.ledger.clock.now = datetime.datetime(2026, 6, 6, 15, tzinfo=datetime.UTC)  # type: ignore[attr-defined]
    incident = next(i for i in load_book(populated.ledger).incidents.values()
                    if i.rule == "core.fairness/approval-parity")
    transition(populated.ledger, incident.id, "investigate", key_of("tom.berger"), "proxy feature")
    transition(populated.ledger, incident.id, "validate", key_of("carla.rossi"), "disparity confirmed")
    return incident


def refused(populated: Populated, code: str, action: Callable[[], Any]) -> CharterError:
    """Run `action`, which must raise a `CharterError` with `code` and write nothing; the error."""
    import pytest

    size = populated.ledger.size()
    with pytest.raises(CharterError) as info:
        action()
    assert info.value.code == code, str(info.value)
    assert populated.ledger.size() == size  # nothing written
    return info.value
