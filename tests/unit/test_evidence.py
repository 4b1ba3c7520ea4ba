"""Typed evidence: documents and attestations recorded under the authority rule, read back with statuses over time."""

from __future__ import annotations

import datetime
import hashlib
from typing import Any

import pytest

from charter.authority import SignedStatement
from charter.errors import CharterError
from charter.evidence import (
    EvidenceItem,
    attestation_fields,
    document_fields,
    evidence_index,
    record_attestation,
    record_document,
    withdraw_evidence,
)
from charter.frameworks import FrameworkSet
from charter.ledger import verify_ledger
from charter.ledger.auditor import EVIDENCE_ATTESTATION, EVIDENCE_DOCUMENT
from charter.statements import accept
from tests.unit.ledger.helpers import Populated, key_of, populate, refused

_refused = refused  # the action raises with the code and writes nothing

ATTESTER, OWNER, ADMIN, OTHER_OWNER = "anna.schmidt", "tom.berger", "ana.costa", "maria.keller"
T0 = datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)
POLICY = hashlib.sha256(b"ai policy").hexdigest()


@pytest.fixture
def world(db_url: str) -> Populated:
    return populate(db_url, bundles=0)


def _document(frameworks: FrameworkSet, **changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"name": "AI policy", "version": "2.1", "sha256": POLICY,
                              "uri": "https://intranet.example/ai-policy.pdf", "owner": ATTESTER,
                              "review_by": "2026-12-31", "controls": ["iso-42001:A.2.2", "iso-42001:5.2"],
                              "systems": (), "frameworks": frameworks}
    fields.update(changes)
    return document_fields(**fields)


def _attestation(frameworks: FrameworkSet, **changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"statement": "The AI policy is in force.\nPublished to all staff.",
                              "controls": ["iso-42001:A.2.2"], "valid_from": T0,
                              "valid_until": T0 + datetime.timedelta(days=365), "frameworks": frameworks}
    fields.update(changes)
    return attestation_fields(**fields)


def test_documents_and_attestations_are_recorded_and_indexed(world: Populated, frameworks: FrameworkSet) -> None:
    document = record_document(world.ledger, _document(frameworks), key_of(ATTESTER), frameworks)
    attestation = record_attestation(world.ledger, _attestation(frameworks, documents=[POLICY]), key_of(ATTESTER),
                                     frameworks)
    index = evidence_index(world.ledger)
    assert [i.id for i in index.items] == [f"doc:{POLICY[:12]}:{document.seq}", f"att:{attestation.seq}"]
    doc, att = index.items
    assert (doc.kind, doc.seq, doc.record_hash, doc.actor, doc.title) == (
        "document", document.seq, document.record_hash.hex(), ATTESTER, "AI policy 2.1")
    assert (doc.sha256, doc.owner, doc.valid_until, doc.systems) == (POLICY, ATTESTER, "2026-12-31", ())
    assert att.title == "The AI policy is in force." and att.documents == (POLICY,)
    assert att.valid_from == "2026-03-01T00:00:00.000Z" and att.valid_until == "2027-03-01T00:00:00.000Z"
    assert index.for_control("iso-42001:5.2", "claims-approval") == [doc]
    assert index.for_control("iso-42001:A.2.2", "fraud-detector") == [doc, att]
    assert index.for_control("iso-42001:A.3.2", "fraud-detector") == []
    assert evidence_index(world.ledger, document.seq + 1).items == [doc]  # entries below size only
    assert evidence_index(world.ledger, document.seq).items == []
    assert verify_ledger(world.ledger, world.log_key.public, resume=False).ok


def test_statuses_over_time(world: Populated, frameworks: FrameworkSet) -> None:
    record_document(world.ledger, _document(frameworks, review_by="2026-01-05"), key_of(ATTESTER), frameworks)
    entry = record_attestation(world.ledger, _attestation(frameworks, valid_until=T0 + datetime.timedelta(days=90)),
                               key_of(ATTESTER), frameworks)
    doc, att = evidence_index(world.ledger).items
    day = datetime.timedelta(days=1)
    recorded = datetime.datetime.fromisoformat(doc.valid_from.replace("Z", "+00:00"))
    assert doc.status_at(recorded - day) == "not_yet_valid"
    assert doc.status_at(datetime.datetime(2026, 1, 5, 23, 59, tzinfo=datetime.UTC)) == "current"  # the review day
    assert doc.status_at(datetime.datetime(2026, 1, 6, tzinfo=datetime.UTC)) == "past_review"
    assert att.status_at(T0 - day) == "not_yet_valid"
    assert att.status_at(T0) == "current"
    assert att.status_at(T0 + 89 * day) == "current"
    assert att.status_at(T0 + 90 * day) == "expired"  # valid_until is exclusive
    withdrawal = withdraw_evidence(world.ledger, att.id, "RACI reorganised", key_of(ATTESTER))
    withdrawn = evidence_index(world.ledger).get(f"att:{entry.seq}")
    assert withdrawn is not None and withdrawn.withdrawn_seq == withdrawal.seq
    assert withdrawn.withdrawal_reason == "RACI reorganised"
    at = datetime.datetime.fromisoformat(withdrawn.withdrawn_at.replace("Z", "+00:00"))  # type: ignore[union-attr]
    assert withdrawn.status_at(at) == "withdrawn"
    assert withdrawn.status_at(at - datetime.timedelta(milliseconds=1)) != "withdrawn"
    assert evidence_index(world.ledger, withdrawal.seq).get(att.id) == att  # before the withdrawal: as it was


def test_a_paragraph_counts_for_its_article(world: Populated, frameworks: FrameworkSet) -> None:
    record_attestation(world.ledger, _attestation(frameworks, controls=["eu-ai-act:art-10(2)"],
                                                  systems=["claims-approval"]), key_of(OWNER), frameworks)
    index = evidence_index(world.ledger)
    assert len(index.for_control("eu-ai-act:art-10", "claims-approval")) == 1
    assert len(index.for_control("eu-ai-act:art-10(2)", "claims-approval")) == 1
    assert index.for_control("eu-ai-act:art-10(3)", "claims-approval") == []
    assert index.for_control("eu-ai-act:art-10", "fraud-detector") == []  # scoped to another system
    assert index.for_control("eu-ai-act:art-1", "claims-approval") == []


# -- authority ---------------------------------------------------------------------------------------


def test_organisation_wide_evidence_needs_the_attester_role(world: Populated, frameworks: FrameworkSet) -> None:
    error = _refused(world, "not_authorized", lambda: record_document(world.ledger, _document(frameworks),
                                                                      key_of(OWNER), frameworks))
    assert "evidence_attester" in str(error)
    _refused(world, "not_authorized", lambda: record_attestation(world.ledger, _attestation(frameworks),
                                                                 key_of(ADMIN), frameworks))


#: a system-level control: the owner of a system may evidence it for their own system
MONITORING = "iso-42001:A.6.2.6"


def test_owners_evidence_their_own_systems_only(world: Populated, frameworks: FrameworkSet) -> None:
    entry = record_attestation(world.ledger, _attestation(frameworks, controls=[MONITORING],
                                                          systems=["claims-approval"]), key_of(OWNER), frameworks)
    assert entry.payload["actor"] == OWNER and entry.payload["systems"] == ["claims-approval"]
    _refused(world, "not_authorized", lambda: record_attestation(
        world.ledger, _attestation(frameworks, controls=[MONITORING], systems=["claims-approval", "fraud-detector"]),
        key_of(OWNER), frameworks))
    _refused(world, "unknown_system", lambda: record_attestation(
        world.ledger, _attestation(frameworks, systems=["no-such-system"]), key_of(ATTESTER), frameworks))
    # The attester may scope evidence to any registered system.
    record_document(world.ledger, _document(frameworks, systems=["fraud-detector"]), key_of(ATTESTER), frameworks)


@pytest.mark.parametrize("control", ["iso-42001:A.2.2", "iso-42001:5.2", "iso-42001:9.2.1", "iso-42001:A.10.4",
                                     "nist-ai-rmf:GOVERN-1.1", "eu-ai-act:art-4", "eu-ai-act:art-17(1)(a)"])
def test_an_owner_may_not_evidence_an_organisation_level_control_of_their_own_system(
        world: Populated, frameworks: FrameworkSet, control: str) -> None:
    # Review M1: owning claims-approval made its owner the one to document and attest the AI policy.
    for controls in ([control], [MONITORING, control]):
        error = _refused(world, "not_authorized", lambda c=controls: record_document(  # type: ignore[misc]
            world.ledger, _document(frameworks, controls=c, systems=["claims-approval"]), key_of(OWNER), frameworks))
        assert f"{control} is an organisation-level control" in str(error) and "evidence_attester" in str(error)
        _refused(world, "not_authorized", lambda c=controls: record_attestation(  # type: ignore[misc]
            world.ledger, _attestation(frameworks, controls=c, systems=["claims-approval"]), key_of(OWNER),
            frameworks))
    # The evidence attester may, organisation-wide or for one system.
    record_document(world.ledger, _document(frameworks, controls=[control], systems=["claims-approval"]),
                    key_of(ATTESTER), frameworks)
    record_attestation(world.ledger, _attestation(frameworks, controls=[control]), key_of(ATTESTER), frameworks)
    assert verify_ledger(world.ledger, world.log_key.public, resume=False).ok


def test_an_attestation_cites_only_recorded_documents(world: Populated, frameworks: FrameworkSet) -> None:
    _refused(world, "unknown_document", lambda: record_attestation(
        world.ledger, _attestation(frameworks, documents=[POLICY]), key_of(ATTESTER), frameworks))
    document = record_document(world.ledger, _document(frameworks), key_of(ATTESTER), frameworks)
    record_attestation(world.ledger, _attestation(frameworks, documents=[POLICY]), key_of(ATTESTER), frameworks)
    withdraw_evidence(world.ledger, str(document.seq), "superseded", key_of(ATTESTER))
    _refused(world, "unknown_document", lambda: record_attestation(
        world.ledger, _attestation(frameworks, documents=[POLICY], statement="again"), key_of(ATTESTER), frameworks))


def test_who_may_withdraw(world: Populated, frameworks: FrameworkSet) -> None:
    entry = record_attestation(world.ledger, _attestation(frameworks, controls=[MONITORING],
                                                          systems=["claims-approval"]), key_of(OWNER), frameworks)
    _refused(world, "not_authorized", lambda: withdraw_evidence(world.ledger, f"att:{entry.seq}", "spite",
                                                                key_of(OTHER_OWNER)))
    _refused(world, "not_authorized", lambda: withdraw_evidence(world.ledger, f"att:{entry.seq}", "mine now",
                                                                key_of(ATTESTER)))
    _refused(world, "unknown_evidence", lambda: withdraw_evidence(world.ledger, "att:1", "no", key_of(ADMIN)))
    _refused(world, "unknown_evidence", lambda: withdraw_evidence(world.ledger, f"doc:abc:{entry.seq}", "no",
                                                                  key_of(ADMIN)))
    _refused(world, "unknown_evidence", lambda: withdraw_evidence(world.ledger, "att:x", "no", key_of(ADMIN)))
    withdraw_evidence(world.ledger, f"att:{entry.seq}", "owner left", key_of(ADMIN))  # an administrator may
    _refused(world, "evidence_withdrawn", lambda: withdraw_evidence(world.ledger, f"att:{entry.seq}", "twice",
                                                                    key_of(OWNER)))
    assert verify_ledger(world.ledger, world.log_key.public, resume=False).ok


def test_a_statement_signed_elsewhere_lands_once(world: Populated, frameworks: FrameworkSet) -> None:
    from charter.ledger import NewEntry

    statement = SignedStatement.sign(world.ledger.origin, EVIDENCE_DOCUMENT, _document(frameworks),
                                     key_of(ATTESTER), "2026-01-01T00:00:00.000Z")
    entry = accept(world.ledger, statement)
    assert entry is not None and entry.payload["actor"] == ATTESTER
    assert accept(world.ledger, statement) is None  # handed in twice: recorded once
    signature = statement.signature
    _refused(world, "replayed_statement", lambda: world.ledger.append([NewEntry(
        EVIDENCE_DOCUMENT, entry.payload, entry.submission_id, key_id=entry.key_id, signature=signature)]))
    _refused(world, "malformed_body", lambda: world.ledger.append([NewEntry(  # under another submission id
        EVIDENCE_DOCUMENT, entry.payload, entry.submission_id + "x", key_id=entry.key_id, signature=signature)]))
    forged = SignedStatement(statement.log, statement.type, {**statement.statement, "review_by": "2099-01-01"},
                             statement.key_id, statement.signature)
    _refused(world, "bad_signature", lambda: accept(world.ledger, forged))
    bogus = SignedStatement.sign(world.ledger.origin, EVIDENCE_ATTESTATION,
                                 {**_attestation(frameworks), "controls": ["iso-42001:A.99"]}, key_of(ATTESTER),
                                 "2026-01-01T00:00:00.000Z")
    _refused(world, "unknown_control", lambda: accept(world.ledger, bogus))


# -- hostile input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "code"), [
    ({"sha256": "abc"}, "bad_digest"),
    ({"sha256": "g" * 64}, "bad_digest"),
    ({"controls": ["iso-42001:A.99.9"]}, "unknown_control"),
    ({"controls": ["iso-42001:A.2"]}, "unknown_control"),  # an objective that groups controls
    ({"controls": ["iso-42001:9.2"]}, "unknown_control"),  # a clause nothing scores: its leaves are
    ({"controls": ["iso-42001:5.2(1)"]}, "unknown_control"),  # no paragraphs listed for 5.2
    ({"controls": ["eu-ai-act:art-10(9)"]}, "unknown_control"),  # no paragraph 9
    ({"controls": ["eu-ai-act:art-10(2)(z)"]}, "unknown_control"),
    ({"controls": ["nist:GOVERN-1.1"]}, "unknown_control"),
    ({"controls": []}, "evidence_controls"),
    ({"review_by": "next year"}, "evidence_field"),
    ({"owner": "../etc"}, "evidence_field"),
    ({"name": " "}, "evidence_field"),
    ({"uri": "x" * 5000}, "evidence_too_long"),
])
def test_bad_documents_are_refused_before_signing(frameworks: FrameworkSet, changes: dict[str, Any],
                                                  code: str) -> None:
    with pytest.raises(CharterError) as info:
        _document(frameworks, **changes)
    assert code in {d.code for d in info.value.diagnostics}, str(info.value)
    assert all(d.location.path for d in info.value.diagnostics)
    if code == "unknown_control":
        assert [d.location.path for d in info.value.diagnostics] == ["$.controls[0]"]


@pytest.mark.parametrize(("changes", "code"), [
    ({"valid_until": T0 - datetime.timedelta(days=1)}, "evidence_period"),
    ({"valid_until": T0}, "evidence_period"),
    ({"statement": "x" * 10_000_000}, "evidence_too_long"),
    ({"statement": ""}, "evidence_field"),
    ({"documents": ["not-a-digest"]}, "bad_digest"),
    ({"controls": ["iso-42001:A.2.2", "bogus"]}, "unknown_control"),
])
def test_bad_attestations_are_refused_before_signing(frameworks: FrameworkSet, changes: dict[str, Any],
                                                     code: str) -> None:
    with pytest.raises(CharterError) as info:
        _attestation(frameworks, **changes)
    assert code in {d.code for d in info.value.diagnostics}, str(info.value)[:500]
    assert len(str(info.value)) < 2000  # a 10 MB statement is counted, not echoed


def test_every_problem_is_reported_at_once(frameworks: FrameworkSet) -> None:
    with pytest.raises(CharterError) as info:
        _document(frameworks, sha256="x", controls=["iso-42001:Z"], review_by="soon")
    assert {d.code for d in info.value.diagnostics} == {"bad_digest", "unknown_control", "evidence_field"}


def test_an_uppercase_digest_is_normalized(frameworks: FrameworkSet) -> None:
    assert _document(frameworks, sha256=POLICY.upper())["sha256"] == POLICY


def test_statuses_of_an_item_without_a_ledger() -> None:
    item = EvidenceItem(kind="attestation", id="att:5", seq=5, record_hash="00" * 32, controls=("iso-42001:A.2.2",),
                        systems=(), actor=ATTESTER, title="t", valid_from="2026-01-01T00:00:00.000Z",
                        valid_until="2026-02-01T00:00:00.000Z", withdrawn_at="2026-01-15T00:00:00.000Z",
                        sha256=None, uri=None, owner=None)
    at = [datetime.datetime(2025, 12, 31, tzinfo=datetime.UTC), datetime.datetime(2026, 1, 10, tzinfo=datetime.UTC),
          datetime.datetime(2026, 1, 20, tzinfo=datetime.UTC), datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC)]
    assert [item.status_at(t) for t in at] == ["not_yet_valid", "current", "withdrawn", "withdrawn"]


def test_the_demo_evidence_gives_each_status_the_issue_asks_for(world: Populated, frameworks: FrameworkSet) -> None:
    from charter.cli.demo import demo_evidence

    demo_evidence(world.ledger, world.owner_keys, frameworks=frameworks)
    index = evidence_index(world.ledger)
    report_time = world.ledger.clock() + datetime.timedelta(days=180)  # the demo reports half a year later

    def current(ref: str) -> list[str]:
        items = index.for_control(ref, "claims-approval")
        return sorted(i.kind for i in items if i.status_at(report_time) == "current")

    assert current("iso-42001:A.2.2") == ["attestation", "document"]  # implemented
    assert current("iso-42001:5.2") == ["attestation", "document"]
    assert current("iso-42001:6.1.3") == ["document"]  # designed
    assert current("iso-42001:A.3.2") == []  # its attestation expired: no evidence
    assert [i.status_at(report_time) for i in index.for_control("iso-42001:A.3.2", "claims-approval")] == ["expired"]
    # operating through a test result and an event (documented and attested first)
    assert current("iso-42001:A.5.5") == ["attestation", "document", "test_result"]
    assert current("iso-42001:9.3.1") == ["attestation", "document", "event"]
    assert current("iso-42001:9.3.2") == ["event"]  # the review alone: no evidence of an implemented control
    assert index.for_control("iso-42001:A.5.5", "fraud-detector") == []  # scoped to the claims model
    test = next(i for i in index.items if i.kind == "test_result")
    assert (test.title, test.outcome, test.actor) == ("bias audit", "passed", "tom.berger")
    assert verify_ledger(world.ledger, world.log_key.public, resume=False).ok


def test_a_resumed_verification_knows_the_evidence_before_its_state(world: Populated,
                                                                    frameworks: FrameworkSet) -> None:
    from charter.ledger.verified import record_verified_state
    from charter.ledger.verify import verify_with_state
    from tests.unit.ledger.test_authority import _unchecked

    entry = record_attestation(world.ledger, _attestation(frameworks), key_of(ATTESTER), frameworks)
    report, verifier, _ = verify_with_state(world.ledger, world.log_key.public)
    assert report.ok
    state = record_verified_state(world.ledger, verifier, (report.entries, "2026-01-01T00:00:00.000Z"))
    assert state["authority"]["evidence"] == {str(entry.seq): [EVIDENCE_ATTESTATION, ATTESTER, None, None]}
    with _unchecked():
        forced = withdraw_evidence(world.ledger, f"att:{entry.seq}", "spite", key_of(OWNER))
    resumed = verify_ledger(world.ledger, world.log_key.public, resume=True)
    assert resumed.resumed_from == report.entries
    assert [(p.seq, p.kind) for p in resumed.problems] == [(forced.seq, "not_authorized")]


# -- the control catalog recorded with the policy activation ---------------------------------------


def _rescoped(frameworks: FrameworkSet, control: str) -> Any:
    """The built-in catalog with `control` made organisation-level, as a later catalog version might."""
    from charter.ledger.auditor import ControlCatalog

    catalog = frameworks.control_catalog()
    assert control not in catalog.organisation
    return ControlCatalog(catalog.citable, catalog.organisation | {control})


def test_evidence_is_judged_by_the_catalog_the_activation_recorded(world: Populated, frameworks: FrameworkSet) -> None:
    """A verifier (or a newer Charter) with another catalog judges recorded evidence by the catalog recorded
    with the policy set in force when it landed, and a new catalog counts only once an approver records it."""
    from charter.authority import activate_policies, recorded_controls

    authority = world.ledger.authority()
    assert authority.recorded_controls == recorded_controls(frameworks.control_catalog())  # the demo records it
    rescoped = _rescoped(frameworks, MONITORING)
    world.ledger.use_controls(rescoped)  # the verifier's own catalog now says owners may not evidence it
    earlier = record_attestation(world.ledger, _attestation(frameworks, controls=[MONITORING],
                                                            systems=["claims-approval"]), key_of(OWNER), frameworks)
    assert verify_ledger(world.ledger, world.log_key.public, resume=False).ok
    # the approver records the new catalog, the one the log now judges by, with the same policy set
    activation = activate_policies(world.ledger, authority.active_policies, key_of("omar.haddad"),
                                   controls=rescoped)
    assert activation is not None and activation.payload["controls"] == recorded_controls(rescoped)
    assert activate_policies(world.ledger, authority.active_policies, key_of("omar.haddad"),
                             controls=rescoped) is None  # the same set and catalog: nothing to record
    error = _refused(world, "not_authorized", lambda: record_attestation(
        world.ledger, _attestation(frameworks, controls=[MONITORING], systems=["claims-approval"]), key_of(OWNER),
        frameworks))
    assert f"{MONITORING} is an organisation-level control" in str(error)
    # the attestation recorded before stays valid: it is judged by the catalog of its own time
    world.ledger.use_controls(frameworks.control_catalog())
    report = verify_ledger(world.ledger, world.log_key.public, resume=False)
    assert report.ok and earlier.seq < activation.seq, report.summary()


def test_a_recorded_catalog_without_a_control_refuses_evidence_of_it(world: Populated,
                                                                      frameworks: FrameworkSet) -> None:
    from charter.authority import activate_policies
    from charter.ledger.auditor import ControlCatalog

    catalog = frameworks.control_catalog()
    narrowed = ControlCatalog(catalog.citable - {MONITORING}, catalog.organisation)
    world.ledger.use_controls(narrowed)  # a Charter whose catalogs no longer list it
    activation = activate_policies(world.ledger, world.ledger.authority().active_policies, key_of("omar.haddad"),
                                   controls=narrowed)
    assert activation is not None
    error = _refused(world, "unknown_control", lambda: record_attestation(
        world.ledger, _attestation(frameworks, controls=[MONITORING], systems=["claims-approval"]), key_of(OWNER),
        frameworks))
    assert f"recorded by the policy activation of seq {activation.seq}" in str(error)


@pytest.mark.parametrize("recorded", [
    "not an object",
    {"citable": [], "organisation": []},  # no digest
    {"digest": "0" * 64, "citable": ["iso-42001:A.2.2"], "organisation": []},  # a digest of something else
    {"digest": "x", "citable": "iso-42001:A.2.2", "organisation": []},
    {"digest": "x", "citable": [], "organisation": [1]},
    {"digest": "x", "citable": [], "organisation": [], "extra": True},
])
def test_a_malformed_recorded_catalog_is_malformed(recorded: Any) -> None:
    from charter.ledger.auditor import controls_of

    assert controls_of({"policies": [], "controls": recorded}) is None
    assert controls_of({"policies": []}) == {}


def test_a_signed_activation_records_the_catalog_it_was_signed_with(world: Populated,
                                                                    frameworks: FrameworkSet) -> None:
    """`--sign-only` then `ledger accept`: the catalog is part of what the approver signed."""
    from charter.authority import activation_statement

    authority = world.ledger.authority()
    rescoped = _rescoped(frameworks, MONITORING)
    world.ledger.use_controls(rescoped)  # the log runs a Charter whose catalogs make the control organisation-level
    fields = activation_statement(authority.active_policies, authority.active_policies_seq, None, rescoped)
    signed = SignedStatement.sign(world.ledger.origin, "policy.activated", fields, key_of("omar.haddad"),
                                  "2026-03-01T00:00:00.000Z")
    entry = accept(world.ledger, signed)
    assert entry is not None and world.ledger.authority().recorded_controls == fields["controls"]
    forged = dict(fields, controls={**fields["controls"], "organisation": []})  # digest no longer matches
    bad = SignedStatement.sign(world.ledger.origin, "policy.activated", forged, key_of("omar.haddad"),
                               "2026-03-01T00:00:01.000Z")
    _refused(world, "control_catalog_mismatch", lambda: accept(world.ledger, bad))


def test_an_approver_cannot_record_a_catalog_of_their_own(world: Populated, frameworks: FrameworkSet) -> None:
    """Review H1: an activation recording a catalog whose organisation list was emptied would let every owner
    evidence the AI policy. The log records only the catalog it judges evidence by, whoever signs."""
    from charter.authority import activate_policies, activation_statement
    from charter.ledger.auditor import ControlCatalog

    authority = world.ledger.authority()
    emptied = ControlCatalog(frameworks.control_catalog().citable, frozenset())
    error = _refused(world, "control_catalog_mismatch", lambda: activate_policies(
        world.ledger, authority.active_policies, key_of("anna.schmidt"), controls=emptied))
    assert "$.controls" in str(error)
    fields = activation_statement(authority.active_policies, authority.active_policies_seq, None, emptied)
    signed = SignedStatement.sign(world.ledger.origin, "policy.activated", fields, key_of("anna.schmidt"),
                                  "2026-03-01T00:00:00.000Z")
    _refused(world, "control_catalog_mismatch", lambda: accept(world.ledger, signed))
    _refused(world, "not_authorized", lambda: record_document(  # the owner still may not document the AI policy
        world.ledger, _document(frameworks, systems=["claims-approval"]), key_of(OWNER), frameworks))


def test_a_forced_activation_narrowing_the_organisation_scope_is_named(world: Populated,
                                                                       frameworks: FrameworkSet) -> None:
    """Offline: organisation-level controls are only added from one recorded catalog to the next, so an
    activation forced in past the log's check (by whoever holds the log key) is named by verify."""
    from charter.authority import activation_statement, signed_entry
    from charter.ledger.auditor import POLICY_ACTIVATED, ControlCatalog
    from tests.unit.ledger.helpers import unchecked

    authority = world.ledger.authority()
    emptied = ControlCatalog(frameworks.control_catalog().citable, frozenset())
    fields = activation_statement(authority.active_policies, authority.active_policies_seq, None, emptied)
    with unchecked():
        forced = world.ledger.append(lambda size: [signed_entry(world.ledger, POLICY_ACTIVATED, fields,
                                                                key_of("anna.schmidt"), size=size)])[0]
    report = verify_ledger(world.ledger, world.log_key.public, resume=False)
    assert [(p.seq, p.kind) for p in report.problems] == [(forced.seq, "control_scope_narrowed")], report.summary()
