"""The control-status rule: applicability first, then nonconformity, operating, implemented, designed, no evidence."""

from __future__ import annotations

from typing import Any

import pytest

from charter.ledger import merkle
from charter.report.model import (
    CONTROL_STATUSES,
    STATUS_DEFINITIONS,
    ApplicabilityRef,
    Citation,
    EvidenceRef,
    PairStatus,
    control_status,
)

APPLICABLE = ApplicabilityRef(status="applicable", reason="applies", source="test")


def pair(status: str = "pass", *, fresh: bool = True, governed: bool | None = None, rule: str = "p/r") -> PairStatus:
    return PairStatus(system="s", rule=rule, severity="high", status=status, fresh=fresh, points=0.0, note="note",
                      governed=governed, finding=Citation(seq=7, record_hash="00" * 32))


def item(kind: str, state: str = "current", ident: str = "x", actor: str = "") -> EvidenceRef:
    # documents are recorded by one person and attestations signed by another unless `actor` says otherwise
    return EvidenceRef(kind=kind, id=ident, title="t", actor=actor or ("doc.recorder" if kind == "document" else
                                                                       "att.signer"), state=state, valid_until=None,
                       seq=3, record_hash="11" * 32)


@pytest.mark.parametrize(("applicability", "primary", "evidence", "expected"), [
    ("not_applicable", [pair("breach")], [item("document")], "not_applicable"),
    ("not_yet_applicable", [pair()], [], "not_applicable"),
    ("applicable", [pair("breach", governed=False)], [item("document"), item("attestation")], "nonconformity"),
    ("applicable", [pair("breach", governed=True)], [item("document")], "designed"),
    ("applicable", [pair("breach", governed=False, fresh=False)], [], "nonconformity"),  # stale: still open
    ("applicable", [pair("pass"), pair("warn", rule="p/q")], [], "operating"),
    ("applicable", [pair("pass"), pair("missing", rule="p/q")], [], "no_evidence"),
    ("applicable", [pair("pass", fresh=False)], [item("document"), item("attestation")], "implemented"),
    ("applicable", [], [item("document"), item("attestation")], "implemented"),
    ("applicable", [], [item("document"), item("attestation", "expired")], "designed"),
    ("applicable", [], [item("document", "past_review"), item("attestation")], "no_evidence"),
    ("applicable", [], [item("attestation", "expired")], "no_evidence"),
    ("applicable", [], [item("attestation")], "no_evidence"),
    ("applicable", [], [item("document", "withdrawn")], "no_evidence"),
    ("undetermined", [pair()], [], "operating"),
    ("undetermined", [], [], "no_evidence"),
])
def test_status_ladder(applicability: str, primary: list[PairStatus], evidence: list[EvidenceRef],
                       expected: str) -> None:
    decision = ApplicabilityRef(status=applicability, reason="because", source="test")  # type: ignore[arg-type]
    status, reason = control_status(decision, primary, evidence)
    assert status == expected
    assert reason  # every status says why
    if applicability == "undetermined":
        assert reason.startswith("applicability undetermined (because)")
    if expected == "not_applicable":
        assert reason == "because"


def test_implemented_needs_an_attestation_by_someone_other_than_the_recorder() -> None:
    # Review M1 (b): the same person documenting and attesting a control made it implemented on their own word.
    own = [item("document", ident="doc:1", actor="tom"), item("attestation", ident="att:2", actor="tom")]
    status, reason = control_status(APPLICABLE, [], own)
    assert status == "designed"
    assert "only by who recorded the document (tom)" in reason and "separation of duties" in reason
    status, reason = control_status(APPLICABLE, [], [*own, item("attestation", ident="att:3", actor="anna")])
    assert status == "implemented" and reason == "documented (doc:1) and attested (att:3)"
    # another's document attested by tom counts; tom's own does not show as independent evidence
    both = [*own, item("document", ident="doc:4", actor="anna")]
    status, reason = control_status(APPLICABLE, [], both)
    assert status == "implemented" and reason == "documented (doc:4) and attested (att:2)"


def test_lapsed_evidence_is_named_in_the_reason() -> None:
    status, reason = control_status(APPLICABLE, [], [item("attestation", "expired", "att:12")])
    assert status == "no_evidence" and "attestation att:12 expired" in reason


def test_every_status_is_defined_for_readers() -> None:
    assert set(STATUS_DEFINITIONS) == set(CONTROL_STATUSES)


def test_a_supporting_mapping_never_makes_a_control_operating() -> None:
    # control_status only ever sees primary pairs; a control with none is not operating, whatever else passes
    assert control_status(APPLICABLE, [], [])[0] == "no_evidence"


def test_cached_proofs_verify_against_the_root() -> None:
    leaves = [bytes([i]) * 32 for i in range(37)]
    tree = merkle.MerkleTree(leaves)
    for index in (0, 17, 36):
        merkle.verify_inclusion(leaves[index], index, 37, tree.inclusion_proof(index), tree.root())


def test_now_is_taken_to_the_millisecond_as_the_ledger_stamps_entries() -> None:
    import datetime

    from charter.cli.common import parse_time

    before = datetime.datetime.now(datetime.UTC)
    parsed = parse_time("now")
    # whole seconds would put an entry recorded earlier in this second "after now", out of the report
    assert before - datetime.timedelta(milliseconds=1) <= parsed <= datetime.datetime.now(datetime.UTC)
    assert parsed.microsecond % 1000 == 0


@pytest.mark.parametrize(("share", "shown"), [(None, "n/a"), (0.0, "0%"), (0.0029, "<1%"), (0.5, "50%"),
                                              (0.996, ">99%"), (1.0, "100%")])
def test_shares_never_round_a_few_to_none_or_most_to_all(share: float | None, shown: str) -> None:
    from charter.report import percent

    assert percent(share) == shown


# -- test results and events -----------------------------------------------------------------------------

IMPLEMENTED = [item("document", ident="doc:1"), item("attestation", ident="att:2")]


def result(outcome: str, state: str = "current", *, ident: str = "test:5", name: str = "bias audit",
                performed: str = "2026-03-01T00:00:00.000Z", seq: int = 5) -> EvidenceRef:
    return EvidenceRef(kind="test_result", id=ident, title=name, actor="tom", state=state,
                       valid_until="2026-09-01T00:00:00.000Z", seq=seq, record_hash="22" * 32, valid_from=performed,
                       outcome=outcome, method="fairlearn")


def event(state: str = "current") -> EvidenceRef:
    return EvidenceRef(kind="event", id="evt:6", title="Management review", actor="anna", state=state,
                       valid_until="2027-03-01T00:00:00.000Z", seq=6, record_hash="33" * 32,
                       valid_from="2026-03-01T00:00:00.000Z", event_kind="management_review")


@pytest.mark.parametrize(("evidence", "expected"), [
    ([*IMPLEMENTED, result("passed")], "operating"),
    ([*IMPLEMENTED, event()], "operating"),
    ([*IMPLEMENTED, result("inconclusive")], "implemented"),
    ([*IMPLEMENTED, result("passed", "expired")], "implemented"),  # expired: missing
    ([*IMPLEMENTED, event("expired")], "implemented"),
    ([*IMPLEMENTED, result("passed", "withdrawn")], "implemented"),
    # a pass or an event shows nothing operating of a control not implemented
    ([result("passed")], "no_evidence"),
    ([event()], "no_evidence"),
    ([item("document"), result("passed"), event()], "designed"),
    # a current failed result is a nonconformity, implemented or not, whatever KPIs say
    ([result("failed")], "nonconformity"),
    ([*IMPLEMENTED, event(), result("failed")], "nonconformity"),
    ([*IMPLEMENTED, result("failed", "expired")], "implemented"),  # expired: missing, not open
])
def test_tests_and_events_on_the_ladder(evidence: list[EvidenceRef], expected: str) -> None:
    assert control_status(APPLICABLE, [], evidence)[0] == expected


def test_a_failed_current_test_outweighs_passing_kpis_and_is_named() -> None:
    status, reason = control_status(APPLICABLE, [pair("pass")], [*IMPLEMENTED, result("failed")])
    assert status == "nonconformity"
    assert "test result test:5 'bias audit' failed on 2026-03-01" in reason and "2026-09-01" in reason


def test_the_latest_result_of_a_test_wins() -> None:
    failed = result("failed", ident="test:5", performed="2026-03-01T00:00:00.000Z", seq=5)
    passed = result("passed", ident="test:8", performed="2026-04-01T00:00:00.000Z", seq=8)
    status, reason = control_status(APPLICABLE, [], [*IMPLEMENTED, failed, passed])
    assert status == "operating" and "test:8" in reason and "test:5" not in reason
    # recorded later but performed earlier: the failure performed last is the latest
    late_record = result("passed", ident="test:9", performed="2026-02-01T00:00:00.000Z", seq=9)
    assert control_status(APPLICABLE, [], [*IMPLEMENTED, failed, late_record])[0] == "nonconformity"
    # a withdrawn later pass does not close the failure
    withdrawn = passed.model_copy(update={"state": "withdrawn"})
    assert control_status(APPLICABLE, [], [*IMPLEMENTED, failed, withdrawn])[0] == "nonconformity"
    # another test's pass does not close this test's failure
    other = result("passed", ident="test:10", name="robustness", performed="2026-05-01T00:00:00.000Z", seq=10)
    assert control_status(APPLICABLE, [], [*IMPLEMENTED, failed, other])[0] == "nonconformity"
    # a later inconclusive result does not clear the failure (review M2): only a pass does
    unclear = result("inconclusive", ident="test:11", performed="2026-05-01T00:00:00.000Z", seq=11)
    assert control_status(APPLICABLE, [], [*IMPLEMENTED, failed, unclear])[0] == "nonconformity"


def test_lapsed_tests_and_events_are_named_in_the_reason() -> None:
    status, reason = control_status(APPLICABLE, [], [*IMPLEMENTED, result("passed", "expired"), event("expired")])
    assert status == "implemented"
    assert "not shown operating: test result test:5 'bias audit' passed on 2026-03-01, expired" in reason
    assert "event evt:6 'Management review' (management_review) on 2026-03-01, expired" in reason
    status, reason = control_status(APPLICABLE, [], [item("document", ident="doc:1"), event()])
    assert status == "designed" and "would show it operating once implemented" in reason


# -- review M2, M3: what clears a failed test ----------------------------------------------------------


def _result(seq: int, outcome: str, actor: str, day: int, state: str = "current") -> Any:
    from charter.report.model import EvidenceRef

    return EvidenceRef(kind="test_result", id=f"test:{seq}", title="bias audit", actor=actor, state=state,
                       valid_until="2027-01-01T00:00:00.000Z", seq=seq, record_hash="ab" * 32,
                       valid_from=f"2026-03-{day:02d}T00:00:00.000Z", outcome=outcome, method="fairlearn")


@pytest.mark.parametrize(("results", "status"), [
    ([("failed", "anna.schmidt")], "nonconformity"),
    ([("failed", "anna.schmidt"), ("inconclusive", "anna.schmidt")], "nonconformity"),  # inconclusive clears nothing
    ([("failed", "anna.schmidt"), ("passed", "tom.berger")], "nonconformity"),  # the owner over someone else's
    ([("failed", "anna.schmidt"), ("passed", "anna.schmidt")], "no_evidence"),  # the finder re-tested
    ([("failed", "anna.schmidt"), ("passed", "omar.haddad")], "no_evidence"),  # someone independent re-tested
    ([("failed", "tom.berger"), ("passed", "tom.berger")], "no_evidence"),  # the owner re-tested their own
    ([("failed", "anna.schmidt"), ("passed", "tom.berger"), ("passed", "omar.haddad")], "no_evidence"),
])
def test_what_clears_a_failed_test(results: list[tuple[str, str]], status: str) -> None:
    from charter.report.model import ApplicabilityRef, control_status

    evidence = [_result(seq, outcome, actor, seq) for seq, (outcome, actor) in enumerate(results, start=1)]
    applies = ApplicabilityRef(status="applicable", reason="applies")
    decided, reason = control_status(applies, [], evidence, "tom.berger")
    assert decided == status, reason
    if status == "nonconformity" and results[-1][1] == "tom.berger":
        assert "system's owner (tom.berger)" in reason


@pytest.mark.parametrize(("primary", "evidence", "expected"), [
    ([pair("pass"), pair("warn", rule="p/q")], [], "no_evidence"),
    ([pair("pass")], [item("document")], "designed"),
    ([pair("pass")], [item("document"), item("attestation")], "operating"),
    ([pair("pass", fresh=False)], [item("document"), item("attestation")], "implemented"),
    ([pair("breach", governed=False)], [item("document"), item("attestation")], "nonconformity"),
])
def test_kpis_alone_do_not_show_an_organisation_level_control_operating(
        primary: list[PairStatus], evidence: list[EvidenceRef], expected: str) -> None:
    """Review: clauses 6.2 (AI objectives) and 8.1 (operational planning) were operating on ROI and adoption
    bundles alone. A management-system control must be documented and attested; then passing KPIs show it
    operating, as a passing test does."""
    status, reason = control_status(APPLICABLE, primary, evidence, organisation=True)
    assert status == expected
    if expected == "no_evidence":
        assert "organisation-level control needs a document and an attestation" in reason
    if expected == "operating":
        assert reason.startswith("documented (x) and attested (x), and every primary KPI rule passes")
    assert control_status(APPLICABLE, [pair("pass")], [])[0] == "operating"  # a system-level control: as before
