"""Regression tests for damage and races found in review: none may crash or pass unnoticed."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from sqlalchemy import update

from charter.authority import KeyRequest
from charter.errors import CharterError
from charter.ledger import SigningKey, make_checkpoint, verify_ledger
from charter.ledger.auditor import StoredEntry, Verifier, leaf_hash, statement_id
from charter.ledger.schema import ledger_entry, ledger_head
from charter.registry import AISystem
from charter.submission import register_key, register_system, revoke_key, submit_bundle
from tests.conftest import REPO, run_cli
from tests.unit.ledger.helpers import CATALOG, ORIGIN, Populated, drop_guards, key_of, populate

CLAIMS = REPO / "evidence" / "claims-approval-2026-05.json"


def _set(populated: Populated, seq: int, **values: Any) -> None:
    drop_guards(populated.ledger.engine)
    with populated.ledger.engine.begin() as connection:
        connection.execute(update(ledger_entry).where(ledger_entry.c.seq == seq).values(**values))


def test_deeply_nested_body_is_reported_not_raised(db_url: str) -> None:
    populated = populate(db_url, bundles=1)
    _set(populated, 3, body=b'{"a":' * 100_000 + b"1" + b"}" * 100_000)
    for signatures in (True, False):
        report = verify_ledger(populated.ledger, populated.log_key.public, check_signatures=signatures)
        assert report.first_bad_seq == 3


def test_row_columns_and_head_are_checked_against_the_bodies(db_url: str) -> None:
    populated = populate(db_url, bundles=1)
    bundle_seq = next(e.seq for e in populated.ledger.entries(types=("bundle",)))
    _set(populated, bundle_seq, subject="claims-approval")
    report = verify_ledger(populated.ledger, populated.log_key.public)
    assert [(p.seq, p.kind) for p in report.problems] == [(bundle_seq, "column_mismatch")]
    populated = populate(db_url.replace("ledger.db", "second.db"), bundles=1) if "sqlite" in db_url else None
    if populated is not None:
        with populated.ledger.engine.begin() as connection:
            connection.execute(update(ledger_head).values(last_received_at="9999-12-31T00:00:00.000Z"))
        report = verify_ledger(populated.ledger, populated.log_key.public)
        assert [p.kind for p in report.problems] == ["head_mismatch"]


def test_identical_concurrent_submissions_get_one_entry_and_the_same_receipt(db_url: str) -> None:
    populated = populate(db_url, bundles=0)
    results: list[Any] = []
    errors: list[Exception] = []

    def submit() -> None:
        try:
            results.append(submit_bundle(populated.ledger, CLAIMS.read_bytes(), CATALOG,
                                         key=populated.owner_keys["tom.berger"]))
        except Exception as exc:  # collected so the assertion shows it
            errors.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({r.receipt.seq for r in results}) == 1
    assert sum(1 for _ in populated.ledger.entries(types=("bundle",))) == 1


def test_concurrent_checkpoints_do_not_crash_and_agree(db_url: str) -> None:
    populated = populate(db_url, bundles=1)
    notes: list[str] = []
    errors: list[Exception] = []

    def sign() -> None:
        try:
            notes.append(make_checkpoint(populated.ledger).note)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sign) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(set(notes)) == 1
    assert len(populated.ledger.checkpoints()) == 1


def test_long_identifiers_fit_on_every_backend(db_url: str) -> None:
    populated = populate(db_url, bundles=0)
    owner = "o" * 200
    key = SigningKey.generate(owner)
    for admin in ("ana.costa", "ben.okafor"):  # a first key needs two of the demo's administrators
        register_key(populated.ledger, KeyRequest.of(key, populated.ledger.origin), key_of(admin))
    system = AISystem(id="s" * 128, name="long", owner=owner, risk_tier="high", kind="classifier")
    assert register_system(populated.ledger, system, key_of("ben.okafor")) is not None
    assert verify_ledger(populated.ledger, populated.log_key.public).ok


def test_a_revoked_key_cannot_be_registered_again(db_url: str) -> None:
    populated = populate(db_url, bundles=0)
    key = populated.owner_keys["tom.berger"]
    revoke_key(populated.ledger, key.key_id, "compromised", key)
    with pytest.raises(CharterError) as info:
        register_key(populated.ledger, KeyRequest.of(key, populated.ledger.origin), key_of("ana.costa"))
    assert info.value.code == "key_revoked"


@pytest.mark.parametrize("principal", ["tom berger", "../evil", "", "a\nb"])
def test_bad_principals_are_refused(principal: str) -> None:
    with pytest.raises(CharterError):
        SigningKey.generate(principal)


_ADMIN = SigningKey.generate("ada")
_ROOT = {"config": {"administrators": [{"principal": "ada", "public_key": base64.b64encode(_ADMIN.public).decode()}],
                    "threshold": 1, "roles": {}},
         "signed_at": "2026-01-01T00:00:00.000Z", "supersedes": None}
GENESIS = {"v": 1, "log": ORIGIN, "seq": 0, "prev": "00" * 32, "type": "governance.config",
           "received_at": "2026-01-01T00:00:00.000Z", "submission_id": statement_id(ORIGIN, "governance.config", _ROOT),
           "payload": {**_ROOT, "approvals": [{"principal": "ada", "signature": ""}]}}


def _feed(body: dict[str, Any]) -> list[str]:
    """The problems of `body` fed as entry 1, after a trust root (signatures unchecked)."""
    key = SigningKey.generate(ORIGIN)
    verifier = Verifier(ORIGIN, key.public, check_signatures=False)
    genesis = rfc8785.dumps(GENESIS)
    verifier.feed(StoredEntry(0, genesis, ""))
    verifier.feed(StoredEntry(1, rfc8785.dumps({"seq": 1, "prev": leaf_hash(genesis).hex(), **body}), ""))
    return [p.kind for p in verifier.finish().problems]


GOOD = {"v": 1, "log": ORIGIN, "type": "note", "received_at": "2026-01-01T00:00:00.000Z",
        "submission_id": "s", "payload": {}}


@pytest.mark.parametrize(("changes", "kind"), [
    ({"seq": False}, "seq_mismatch"), ({"received_at": ""}, "malformed_body"), ({"v": 2}, "malformed_body"),
    ({"type": 5}, "malformed_body"), ({"payload": []}, "malformed_body"),
    # signed changes whose submission id is not their statement's digest
    ({"type": "key.added", "payload": {"key_id": 1, "public_key": "!"}}, "malformed_body"),
    ({"type": "governance.config", "payload": {"config": [], "approvals": 5}}, "malformed_body"),
    ({"type": "policy.activated", "payload": {"actor": 7, "policies": "x"}}, "malformed_body"),
])
def test_mistyped_bodies_are_problems_not_exceptions(changes: dict[str, Any], kind: str) -> None:
    assert _feed({**GOOD}) == []
    assert kind in _feed({**GOOD, **changes})


def test_size_zero_checkpoint_of_an_empty_log() -> None:
    from charter.ledger.auditor import verify_entries
    from charter.ledger.merkle import EMPTY_ROOT
    from charter.ledger.notes import sign_checkpoint

    key = SigningKey.generate(ORIGIN)
    assert verify_entries([], ORIGIN, key.public, [sign_checkpoint(ORIGIN, 0, EMPTY_ROOT, key)]).ok
    assert not verify_entries([], ORIGIN, key.public, [sign_checkpoint(ORIGIN, 0, bytes(32), key)]).ok


def test_cli_bad_input_never_shows_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "not-a-db").write_text("hello, I am not SQLite" * 100)
    cases = [
        ("ledger", "show", "99999999999999999999"),
        ("verify", "--db", f"sqlite:///{tmp_path / 'not-a-db'}"),
        ("ledger", "init", "--origin", "my log"),
        ("keys", "generate", "../evil"),
        ("ledger", "init", "--db", "sqlite:////proc/forbidden/x/ledger.db"),
    ]
    for args in cases:
        result = run_cli(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, args


def test_standalone_auditor_reports_bad_exports(tmp_path: Path) -> None:
    import subprocess
    import sys

    from charter.ledger import auditor

    export = tmp_path / "export"
    (export / "checkpoints").mkdir(parents=True)
    (export / "trust_root.json").write_text(json.dumps({"origin": ORIGIN, "log_public_key": "AAAA"}))
    (export / "entries.jsonl").write_text("[1]\n")
    result = subprocess.run([sys.executable, auditor.__file__, str(export)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
