"""Who asked through the API (`via`): recorded in the hashed body, refused at append when it proves nothing,
and named by `charter verify` and the exported verifier when an insider with the log key forces it in."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from charter.errors import CharterError
from charter.ledger import verify_ledger
from charter.ledger.export import export_ledger
from charter.ledger.store import recording_via
from charter.submission import submit_bundle
from charter.tokens import create_token, revoke_token
from tests.conftest import REPO
from tests.unit.ledger.helpers import CATALOG, Populated, key_of, populate, unchecked

FRAUD = sorted((REPO / "evidence").glob("fraud-detector-*.json"))
OWNER, OTHER = "maria.keller", "tom.berger"


@pytest.fixture
def world(db_url: str) -> Populated:
    return populate(db_url, bundles=0)


def _via(token_id: str, principal: str = OWNER, request_id: str = "req-1") -> dict[str, Any]:
    return {"principal": principal, "method": "token", "request_id": request_id, "token_id": token_id}


def _token(world: Populated, principal: str, scopes: list[str], days: float = 30) -> str:
    expires = world.ledger.clock.now + datetime.timedelta(days=days)  # type: ignore[attr-defined]
    entry, _ = create_token(world.ledger, principal, scopes, expires, key_of(principal))
    return str(entry.payload["token_id"])


def _submit(world: Populated, path: Path) -> Any:
    at = datetime.datetime.fromisoformat(json.loads(path.read_text())["measured_at"])
    return submit_bundle(world.ledger, path.read_bytes(), CATALOG, key=key_of(OWNER), at=at)


def test_via_is_recorded_in_every_entry_of_the_transaction_and_verifies(world: Populated) -> None:
    submit = _token(world, OWNER, ["submit"])
    act = _token(world, OWNER, ["act"])
    local = _submit(world, FRAUD[0])
    assert local.bundle_entry.via is None  # the local CLI records no via, and stays valid
    with recording_via(_via(submit, request_id="req-42")):
        result = _submit(world, FRAUD[1])
    written = list(world.ledger.entries(result.bundle_entry.seq))
    assert len(written) > 2 and {e.type for e in written} >= {"bundle", "evaluation", "finding"}
    assert all(e.via == _via(submit, request_id="req-42") for e in written)
    assert json.loads(written[0].body)["via"]["token_id"] == submit  # in the hashed body, not the signed payload
    assert "via" not in written[0].payload
    with recording_via(_via(act, request_id="req-43")):
        revocation = revoke_token(world.ledger, submit, "rotated", key_of(OWNER))
    assert revocation.via is not None and revocation.via["request_id"] == "req-43"
    report = verify_ledger(world.ledger, world.log_key.public, resume=False)
    assert report.ok, report.problems


def test_a_malformed_via_is_refused_before_anything_is_appended() -> None:
    for bad in ({"principal": OWNER}, {**_via("0" * 16), "method": "password"}, {**_via("0" * 16), "extra": "x"},
                {**_via("0" * 16), "principal": ""}, {**_via("XYZ")}):
        with pytest.raises(CharterError) as info:
            recording_via(bad)
        assert info.value.code == "malformed_via"


#: name -> (how the attack asks: (world, tokens) -> (via, action)), the problem kind)
Attack = Callable[[Populated, dict[str, str]], tuple[dict[str, Any], Callable[[], Any]]]


def _bundle(index: int) -> Callable[[Populated], Callable[[], Any]]:
    return lambda world: lambda: _submit(world, FRAUD[index])


ATTACKS: dict[str, tuple[Attack, str]] = {
    "signed by another than who asked": (
        lambda w, t: (_via(t["tom"], OTHER), _bundle(1)(w)), "unauthenticated_actor"),
    "via names another principal than its token's": (
        lambda w, t: (_via(t["submit"], OTHER), _bundle(2)(w)), "unauthenticated_actor"),
    "revoked token": (lambda w, t: (_via(t["revoked"]), _bundle(3)(w)), "token_revoked"),
    "expired token": (lambda w, t: (_via(t["expired"]), _bundle(4)(w)), "token_expired"),
    "unknown token": (lambda w, t: (_via("0123456789abcdef"), _bundle(5)(w)), "unknown_token"),
    "read-only token": (lambda w, t: (_via(t["read"]), lambda: revoke_token(
        w.ledger, t["read"], "read scope writes nothing", key_of(OWNER))), "token_scope"),
    "submit token for a governance change": (lambda w, t: (_via(t["submit"]), lambda: create_token(
        w.ledger, OWNER, ["read"], w.ledger.clock.now + datetime.timedelta(days=1),  # type: ignore[attr-defined]
        key_of(OWNER))), "token_scope"),
}


def _armed(world: Populated) -> dict[str, str]:
    tokens = {"submit": _token(world, OWNER, ["submit"]), "tom": _token(world, OTHER, ["submit"]),
              "read": _token(world, OWNER, ["read"]), "revoked": _token(world, OWNER, ["submit"]),
              "expired": _token(world, OWNER, ["submit"], days=1 / 24)}
    revoke_token(world.ledger, tokens["revoked"], "leaked", key_of("ana.costa"))
    world.ledger.clock.now += datetime.timedelta(hours=2)  # type: ignore[attr-defined]
    _submit(world, FRAUD[0])  # the system has a first bundle, submitted locally
    return tokens


def test_a_via_that_proves_nothing_is_refused_and_named_when_forced_in(world: Populated, tmp_path: Path) -> None:
    tokens = _armed(world)
    expected: dict[int, str] = {}
    for name, (attack, kind) in ATTACKS.items():
        via, action = attack(world, tokens)
        size = world.ledger.size()
        with recording_via(via), pytest.raises(CharterError) as info:
            action()
        assert info.value.code == kind, (name, str(info.value))
        assert world.ledger.size() == size, name  # nothing written
        with recording_via(via), unchecked():  # an insider with the log key appends it anyway
            action()
        expected[size] = kind  # the first entry it appended: the bundle, or the signed change
    report = verify_ledger(world.ledger, world.log_key.public, resume=False)
    named = {(p.seq, p.kind) for p in report.problems}
    assert set(expected.items()) <= named, report.problems
    assert {p.kind for p in report.problems} <= set(ATTACKS_KINDS), report.problems
    export_ledger(world.ledger, tmp_path / "export")
    offline = subprocess.run([sys.executable, "-I", str(tmp_path / "export" / "verify.py"), str(tmp_path / "export"),
                              "--log-key", world.ledger.meta()["log_key_id"]], capture_output=True, text=True,
                             check=False)
    assert offline.returncode == 1, offline.stdout + offline.stderr
    offline_named = {(int(m[1]), m[2]) for m in re.finditer(r"^seq (\d+): (\w+):", offline.stdout, re.MULTILINE)}
    assert set(expected.items()) <= offline_named, offline.stdout


ATTACKS_KINDS = {kind for _, kind in ATTACKS.values()}


def test_the_auditor_rule_judges_via_shapes_as_recording_via_does(world: Populated) -> None:
    authority = world.ledger.authority()
    for bad in (None, "token", {"method": "token"}, {**_via("0" * 16), "request_id": 7}):
        problem = authority.check_via(world.ledger.size(), "bundle", {}, None, bad, "2026-01-01T00:00:00.000Z")
        assert problem is not None and problem.kind == "malformed_via", bad


def test_a_submit_token_may_write_what_a_bundle_submission_appends() -> None:
    from charter.incidents import FINDING_ATTACHED, OPENED
    from charter.ledger.auditor import SUBMIT_SCOPE_TYPES
    from charter.submission import BUNDLE, EVALUATION, FINDING

    assert set(SUBMIT_SCOPE_TYPES) == {BUNDLE, EVALUATION, FINDING, OPENED, FINDING_ATTACHED}
