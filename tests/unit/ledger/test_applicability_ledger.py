"""Applicability in the ledger: classification changes and applicability documents are signed, authorized entries.

Refused at the command when the actor may not make them (nothing written), named by `verify` when an
insider forces them in; both backends.
"""

from __future__ import annotations

import datetime

import pytest

from charter.applicability import (
    activate_applicability,
    applicability_statements,
    control_applicability,
    load_applicability_file,
    state_at,
)
from charter.errors import CharterError
from charter.frameworks import load_frameworks
from charter.ledger import verify_ledger
from charter.ledger.auditor import APPLICABILITY_ACTIVATED, SYSTEM_REGISTERED
from charter.registry import EUClassification
from charter.submission import register_system, systems_in_ledger
from tests.conftest import REPO
from tests.unit.ledger.helpers import Populated, key_of, populate, unchecked

FRAMEWORKS = load_frameworks()
SOA = load_applicability_file(REPO / "policies" / "applicability" / "iso-42001.yaml", FRAMEWORKS)
REGISTRAR, APPROVER, AUTHOR = "ben.okafor", "omar.haddad", "carla.rossi"


@pytest.fixture
def world(db_url: str) -> Populated:
    return populate(db_url, bundles=0)


_unchecked = unchecked


def _first_problem(world: Populated) -> tuple[int | None, str]:
    report = verify_ledger(world.ledger, world.log_key.public, resume=False)
    assert not report.ok
    first = min(report.problems, key=lambda p: (p.seq is None, p.seq or 0))
    return first.seq, first.kind


def _bumped(version: str = "4") -> object:
    return SOA.model_copy(update={"version": version})


def test_the_demo_activates_the_statement_and_the_profile(world: Populated) -> None:
    statements = applicability_statements(world.ledger)
    assert set(statements.documents) == {"iso-42001", "nist-ai-rmf"}
    active = statements.documents["iso-42001"]
    entry = world.ledger.entry(active.seq)
    assert entry is not None and entry.type == APPLICABILITY_ACTIVATED and entry.payload["actor"] == APPROVER
    assert entry.payload["supersedes"] is None and active.document == SOA
    assert activate_applicability(world.ledger, SOA, key_of(APPROVER)) is None  # already in force


def test_a_new_version_supersedes_the_one_in_force(world: Populated) -> None:
    before = applicability_statements(world.ledger).documents["iso-42001"].seq
    entry = activate_applicability(world.ledger, _bumped(), key_of("anna.schmidt"))  # type: ignore[arg-type]
    assert entry is not None and entry.payload["supersedes"] == before
    assert applicability_statements(world.ledger).documents["iso-42001"].document.version == "4"
    assert applicability_statements(world.ledger, entry.seq).documents["iso-42001"].document.version == "3"
    assert verify_ledger(world.ledger, world.log_key.public).ok


def test_only_an_approver_activates_a_statement_of_applicability(world: Populated) -> None:
    size = world.ledger.size()
    for actor in (AUTHOR, REGISTRAR, "tom.berger"):
        with pytest.raises(CharterError) as info:
            activate_applicability(world.ledger, _bumped(), key_of(actor))  # type: ignore[arg-type]
        assert info.value.code == "not_authorized", str(info.value)
    assert world.ledger.size() == size  # nothing written
    assert verify_ledger(world.ledger, world.log_key.public).ok


def test_a_forced_activation_by_a_non_approver_is_named_by_verify(world: Populated) -> None:
    with _unchecked():
        entry = activate_applicability(world.ledger, _bumped(), key_of(AUTHOR))  # type: ignore[arg-type]
    assert entry is not None and _first_problem(world) == (entry.seq, "not_authorized")


def test_a_forced_stale_or_edited_activation_is_named_by_verify(world: Populated) -> None:
    from charter.applicability import applicability_statement
    from charter.authority import signed_entry

    document = _bumped().model_dump(mode="json")  # type: ignore[attr-defined]
    stale = signed_entry(world.ledger, APPLICABILITY_ACTIVATED, applicability_statement(document, None),
                         key_of(APPROVER))
    with pytest.raises(CharterError) as info:
        world.ledger.append([stale])
    assert info.value.code == "stale_statement"
    with _unchecked():
        entry = world.ledger.append([stale])[0]
    assert _first_problem(world) == (entry.seq, "stale_statement")


def test_an_activation_whose_digest_lies_is_refused(world: Populated) -> None:
    from charter.applicability import applicability_statement
    from charter.authority import signed_entry

    in_force = applicability_statements(world.ledger).documents["iso-42001"].seq
    statement = applicability_statement(_bumped().model_dump(mode="json"), in_force)  # type: ignore[attr-defined]
    statement["document"] = {**statement["document"], "version": "5"}
    with pytest.raises(CharterError) as info:
        world.ledger.append([signed_entry(world.ledger, APPLICABILITY_ACTIVATED, statement, key_of(APPROVER))])
    assert info.value.code == "malformed_body"


def test_limiting_a_control_to_an_unregistered_system_is_refused(world: Populated) -> None:
    decisions = tuple(d.model_copy(update={"systems": ("ghost-system",)}) if d.id == "A.10.4" else d
                      for d in SOA.decisions)
    with pytest.raises(CharterError) as info:
        activate_applicability(world.ledger, SOA.model_copy(update={"decisions": decisions}), key_of(APPROVER))
    assert info.value.code == "unknown_system" and "ghost-system" in str(info.value)


def test_a_classification_change_is_a_new_signed_entry_and_earlier_times_see_the_old_one(world: Populated) -> None:
    fraud = systems_in_ledger(world.ledger)["fraud-detector"]
    assert fraud.eu_ai_act is not None and not fraud.eu_ai_act.high_risk
    first = max(e.seq for e in world.ledger.entries(types=(SYSTEM_REGISTERED,), subject="fraud-detector"))
    registered = world.ledger.entry(first)
    assert registered is not None
    before_change = datetime.datetime.fromisoformat(registered.received_at)
    later = before_change + datetime.timedelta(days=30)
    world.ledger.clock = lambda: later
    credit = EUClassification.model_validate({
        **fraud.eu_ai_act.model_dump(mode="json"),
        "annex_iii": {"area": 5, "point": "b", "reasoning": "Now also scores applicants for card credit limits."}})
    # A registrar re-registers the system with its new classification; nobody else may.
    with pytest.raises(CharterError) as info:
        register_system(world.ledger, fraud.model_copy(update={"eu_ai_act": credit}), key_of(APPROVER))
    assert info.value.code == "not_authorized"
    entry = register_system(world.ledger, fraud.model_copy(update={"eu_ai_act": credit}), key_of(REGISTRAR))
    assert entry is not None and entry.seq > first and entry.key_id == key_of(REGISTRAR).key_id
    assert entry.payload["system"]["eu_ai_act"]["annex_iii"]["point"] == "b"
    assert register_system(world.ledger, fraud.model_copy(update={"eu_ai_act": credit}), key_of(REGISTRAR)) is None
    eu = FRAMEWORKS["eu-ai-act"]
    when = datetime.datetime(2028, 1, 1, tzinfo=datetime.UTC)
    old_systems, old_statements = state_at(world.ledger, before_change)
    new_systems, new_statements = state_at(world.ledger, later)
    assert control_applicability(eu, "art-9", old_systems["fraud-detector"], when, old_statements).status == \
        "not_applicable"
    assert control_applicability(eu, "art-9", new_systems["fraud-detector"], when, new_statements).status == \
        "applicable"
    assert verify_ledger(world.ledger, world.log_key.public).ok


def test_before_the_statement_was_activated_annex_a_is_undetermined(world: Populated) -> None:
    seq = applicability_statements(world.ledger).documents["iso-42001"].seq
    fraud = systems_in_ledger(world.ledger)["fraud-detector"]
    iso = FRAMEWORKS["iso-42001"]
    now = datetime.datetime.now(datetime.UTC)
    earlier = applicability_statements(world.ledger, seq)
    assert control_applicability(iso, "A.7.3", fraud, now, earlier).status == "undetermined"
    assert control_applicability(iso, "A.7.3", fraud, now, applicability_statements(world.ledger)).status == \
        "not_applicable"
