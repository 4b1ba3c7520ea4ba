"""The control-status rule: applicability first, then nonconformity, operating, implemented, designed, no evidence."""

from __future__ import annotations

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
