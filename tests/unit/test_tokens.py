"""API tokens: created and revoked as signed ledger entries, authenticated by their argon2id hash."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charter.authority import SignedStatement
from charter.cli.tokens_cmds import add_duration
from charter.errors import CharterError
from charter.ledger import verify_ledger
from charter.ledger.auditor import (
    MAX_TOKEN_DAYS,
    TOKEN_CLOCK_SKEW,
    TOKEN_CREATED,
    TOKEN_REVOKED,
    token_shape_problem,
)
from charter.ledger.records import format_time
from charter.statements import accept
from charter.tokens import create_token, parse_token, revoke_token, token_index, token_statement
from tests.unit.ledger.helpers import Populated, key_of, populate, refused

_refused = refused  # the action raises with the code and writes nothing

ADMIN, OWNER, OTHER = "ana.costa", "maria.keller", "tom.berger"


@pytest.fixture
def world(db_url: str) -> Populated:
    return populate(db_url, bundles=0)


def _now(world: Populated) -> datetime.datetime:
    return world.ledger.clock.now  # type: ignore[attr-defined,no-any-return]


def test_create_authenticate_expire_revoke(world: Populated) -> None:
    expires = _now(world) + datetime.timedelta(days=90)
    entry, text = create_token(world.ledger, OWNER, ["submit", "read", "submit"], expires, key_of(OWNER))
    assert text.startswith("chtr_") and entry.type == TOKEN_CREATED and entry.subject == OWNER
    assert entry.payload["scopes"] == ["read", "submit"] and entry.payload["hash"].startswith("$argon2id$")
    assert text not in entry.body.decode()  # the secret is never stored
    record = token_index(world.ledger).authenticate(text, _now(world))
    assert (record.principal, record.scopes, record.created_seq, record.revoked_seq) == (
        OWNER, ("read", "submit"), entry.seq, None)
    assert record.expires_at == datetime.datetime.fromisoformat(format_time(expires))
    assert token_index(world.ledger).authenticate(text, _now(world)) == record  # cached the second time
    expired = _refused(world, "unauthenticated",
                       lambda: token_index(world.ledger).authenticate(text, expires + datetime.timedelta(seconds=1)))
    assert "expired" in str(expired)
    assert record.status(expires) == "expired"
    revocation = revoke_token(world.ledger, record.token_id, "leaked in a build log", key_of(ADMIN))
    assert revocation.type == TOKEN_REVOKED
    error = _refused(world, "unauthenticated", lambda: token_index(world.ledger).authenticate(text, _now(world)))
    assert "unknown or revoked token" in str(error)  # the cache of verified texts does not outlive revocation
    [listed] = token_index(world.ledger).records()
    assert listed.revoked_seq == revocation.seq and listed.status(_now(world)) == "revoked"
    _refused(world, "token_revoked", lambda: revoke_token(world.ledger, record.token_id, "again", key_of(OWNER)))
    _refused(world, "unknown_token", lambda: revoke_token(world.ledger, "0" * 16, "never was", key_of(ADMIN)))
    assert verify_ledger(world.ledger, world.log_key.public).ok


def test_a_wrong_secret_reads_like_an_unknown_token(world: Populated) -> None:
    _, text = create_token(world.ledger, OWNER, ["submit"], _now(world) + datetime.timedelta(days=1), key_of(OWNER))
    token_id, secret = parse_token(text)
    wrong = f"chtr_{token_id}_{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"
    for presented in (wrong, f"chtr_{'f' * 16}_{secret}"):
        error = _refused(world, "unauthenticated", lambda p=presented: token_index(world.ledger).authenticate(
            p, _now(world)))
        assert error.diagnostics[0].message == "unknown or revoked token", str(error)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(), st.from_regex(r"chtr_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", fullmatch=True),
                      st.from_regex(r"chtr_.{0,20}_.{0,50}", fullmatch=True)))
def test_any_text_is_refused_with_a_charter_error(world_with_a_token: Populated, text: str) -> None:
    index = token_index(world_with_a_token.ledger)
    with pytest.raises(CharterError) as info:
        index.authenticate(text, _now(world_with_a_token))
    assert info.value.code == "unauthenticated"
    assert info.value.diagnostics[0].message in (
        "malformed token: expected chtr_<16 hex digits>_<43 base64url characters>", "unknown or revoked token")


@pytest.fixture
def world_with_a_token(world: Populated) -> Populated:
    create_token(world.ledger, OWNER, ["submit"], _now(world) + datetime.timedelta(days=1), key_of(OWNER))
    return world


def test_only_the_principal_or_an_administrator_creates_or_revokes(world: Populated) -> None:
    expires = _now(world) + datetime.timedelta(days=30)
    _refused(world, "not_authorized", lambda: create_token(world.ledger, OWNER, ["act"], expires, key_of(OTHER)))
    entry, _ = create_token(world.ledger, OWNER, ["act"], expires, key_of(ADMIN))
    _refused(world, "not_authorized",
             lambda: revoke_token(world.ledger, entry.payload["token_id"], "spite", key_of(OTHER)))
    revoke_token(world.ledger, entry.payload["token_id"], "rotation", key_of(OWNER))
    assert verify_ledger(world.ledger, world.log_key.public).ok


def test_expiry_must_be_within_a_year_of_signing(world: Populated) -> None:
    now = _now(world)
    _refused(world, "malformed_body", lambda: create_token(world.ledger, OWNER, ["read"],
                                                           now - datetime.timedelta(days=1), key_of(OWNER)))
    _refused(world, "malformed_body", lambda: create_token(world.ledger, OWNER, ["read"],
                                                           now + datetime.timedelta(days=367), key_of(OWNER)))
    _refused(world, "token_request", lambda: create_token(world.ledger, OWNER, ["write"],
                                                          now + datetime.timedelta(days=1), key_of(OWNER)))
    _refused(world, "token_request", lambda: create_token(world.ledger, OWNER, [],
                                                          now + datetime.timedelta(days=1), key_of(OWNER)))


@pytest.mark.parametrize(("change", "message"), [
    ({"token_id": "ABC"}, "token_id must be 16 lowercase hex digits"),
    ({"scopes": ["submit", "read"]}, "scopes must be a sorted"),
    ({"scopes": ["read", "read"]}, "scopes must be a sorted"),
    ({"hash": "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA"}, "argon2id PHC"),
    ({"hash": "sha256:abc"}, "argon2id PHC"),
    ({"expires_at": "2026-01-01"}, "RFC 3339"),
    ({"extra": 1}, "has the fields"),
])
def test_token_statement_shapes(change: dict[str, Any], message: str) -> None:
    fields, _ = token_statement(OWNER, ["read"], datetime.datetime(2026, 2, 1, tzinfo=datetime.UTC))
    statement = {**fields, "actor": OWNER, "signed_at": "2026-01-01T00:00:00.000Z"}
    assert token_shape_problem(TOKEN_CREATED, statement) is None
    problem = token_shape_problem(TOKEN_CREATED, {**statement, **change})
    assert problem is not None and message in problem


def test_a_token_id_lands_once_and_signed_statements_are_accepted(world: Populated) -> None:
    fields, text = token_statement(OWNER, ["submit"], _now(world) + datetime.timedelta(days=7))
    signed_at = format_time(_now(world))
    statement = SignedStatement.sign(world.ledger.origin, TOKEN_CREATED, fields, key_of(OWNER), signed_at)
    entry = accept(world.ledger, statement)
    assert entry is not None and accept(world.ledger, statement) is None  # handed in twice: landed once
    assert token_index(world.ledger).authenticate(text, _now(world)).principal == OWNER
    again = SignedStatement.sign(world.ledger.origin, TOKEN_CREATED, fields, key_of(ADMIN), signed_at)
    _refused(world, "token_registered", lambda: accept(world.ledger, again))
    revocation = SignedStatement.sign(world.ledger.origin, TOKEN_REVOKED,
                                      {"token_id": fields["token_id"], "reason": "done"}, key_of(OWNER),
                                      format_time(_now(world)))
    assert accept(world.ledger, revocation) is not None
    assert token_index(world.ledger).records()[0].revoked_seq is not None


@pytest.mark.parametrize(("duration", "expected"), [
    ("P90D", datetime.datetime(2026, 4, 1, 12, tzinfo=datetime.UTC)),
    ("P1Y", datetime.datetime(2027, 1, 1, 12, tzinfo=datetime.UTC)),
    ("P1M", datetime.datetime(2026, 2, 1, 12, tzinfo=datetime.UTC)),
    ("P2W", datetime.datetime(2026, 1, 15, 12, tzinfo=datetime.UTC)),
    ("PT12H", datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)),
    ("P1DT1H30M", datetime.datetime(2026, 1, 2, 13, 30, tzinfo=datetime.UTC)),
])
def test_iso_8601_durations(duration: str, expected: datetime.datetime) -> None:
    assert add_duration(datetime.datetime(2026, 1, 1, 12, tzinfo=datetime.UTC), duration) == expected


def test_a_month_from_the_31st_is_the_end_of_the_next_month() -> None:
    start = datetime.datetime(2026, 1, 31, tzinfo=datetime.UTC)
    assert add_duration(start, "P1M") == datetime.datetime(2026, 2, 28, tzinfo=datetime.UTC)


@pytest.mark.parametrize("garbage", ["", "P", "PT", "P1DT", "90D", "P1.5D", "P-1D", "p90d", "P90D ", "1 year",
                                     "P9999Y"])
def test_garbage_durations_are_refused(garbage: str) -> None:
    with pytest.raises(CharterError) as info:
        add_duration(datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC), garbage)
    assert info.value.code == "usage"


def _future_dated_token(world: Populated, ahead: datetime.timedelta) -> SignedStatement:
    """A token statement whose signer dated it `ahead` of the log's clock, expiring a full year after that date."""
    signed = _now(world) + ahead
    fields, _ = token_statement(OWNER, ["read"], signed + datetime.timedelta(days=MAX_TOKEN_DAYS))
    return SignedStatement.sign(world.ledger.origin, TOKEN_CREATED, fields, key_of(OWNER), format_time(signed))


def test_a_token_lives_at_most_a_year_from_when_the_log_received_it_whatever_its_signing_time(
        world: Populated) -> None:
    # dated two years ahead: a year "from signing" would be three years from now
    error = _refused(world, "token_lifetime", lambda: accept(world.ledger, _future_dated_token(
        world, datetime.timedelta(days=730))))
    assert "after the entry was received" in str(error)
    # an honest signer's clock a little ahead of the log's is tolerated
    assert accept(world.ledger, _future_dated_token(world, TOKEN_CLOCK_SKEW / 2)) is not None


def test_verify_reports_a_token_that_lives_too_long_from_its_receipt(world: Populated,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry appended without the check (by a Charter before it, or forced in) is found by verify."""
    from charter.ledger.auditor import Authority

    unchecked = Authority._check_token_created
    monkeypatch.setattr(Authority, "_check_token_created",
                        lambda self, seq, actor, payload, received_at=None: unchecked(self, seq, actor, payload))
    entry = accept(world.ledger, _future_dated_token(world, datetime.timedelta(days=730)))
    assert entry is not None
    monkeypatch.undo()
    report = verify_ledger(world.ledger, world.log_key.public, resume=False)
    assert not report.ok
    assert any(p.seq == entry.seq and p.kind == "token_lifetime" for p in report.problems), report.problems
