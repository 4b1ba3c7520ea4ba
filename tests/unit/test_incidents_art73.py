"""EU AI Act Art. 73 from triage: the validator classifies a serious incident, legal is paged and files.

KPI severity starts no clock any more: the claims model's fairness breach (severity high) is the
likeliest serious incident, under Art. 3(49)(c), and reaches legal only through its validator's
classification, with the deadline counted from the recorded awareness.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from charter.errors import CharterError
from charter.incidents import (
    GROUNDS,
    Incident,
    State,
    classify,
    file_report,
    load_book,
    metrics,
    reporting_deadline,
    transition,
)
from charter.ledger import verify_ledger
from charter.notify import page_reporting, tick
from charter.policy.model import Severity
from charter.registry import RiskTier
from tests.unit.ledger.helpers import Populated, key_of, populate, refused, register_high_risk
from tests.unit.test_incidents import CLAIMS, GRAPH, Clock, _graph, _incident, _submit

_refused = refused  # the action raises with the code and writes nothing

FAIRNESS = "core.fairness/approval-parity"
LEGAL = "eric.dubois"
AUTHORITY = "Bundesanstalt fuer Finanzdienstleistungsaufsicht (market surveillance, Art. 74(6))"


@pytest.fixture
def world(db_url: str) -> tuple[Populated, Clock]:
    populated = populate(db_url, bundles=0)
    clock = Clock()
    populated.ledger.clock = clock
    return populated, clock


class _Messages:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, channel: Any, recipient: str, message: dict[str, Any]) -> None:
        self.sent.append((recipient, message))


def _validated_claims(world: tuple[Populated, Clock], *, high_risk: bool = True) -> Incident:
    """The claims model's May fairness breach, investigated by its owner and validated by compliance; with
    `high_risk`, the registrar first records the claims model as EU high-risk (else Art. 73 does not apply)."""
    populated, clock = world
    if high_risk:
        register_high_risk(populated.ledger)
    _submit(world, CLAIMS, key_owner="tom.berger")
    incident = _incident(populated, FAIRNESS)
    clock.at("2026-06-04T09:00:00+00:00")
    transition(populated.ledger, incident.id, "investigate", key_of("tom.berger"), "proxy feature")
    clock.at("2026-06-06T15:00:00+00:00")
    transition(populated.ledger, incident.id, "validate", key_of("carla.rossi"), "disparity confirmed")
    return _incident(populated, FAIRNESS)


def test_a_fairness_breach_pages_legal_only_once_classified_and_the_report_is_timed(
        world: tuple[Populated, Clock]) -> None:
    populated, clock = world
    ledger = populated.ledger
    incident = _validated_claims(world)
    assert incident.severity is Severity.HIGH and not incident.serious
    messages = _Messages()
    tick(ledger, GRAPH, clock.now, messages)
    assert LEGAL not in {r for r, _ in messages.sent}  # severity high on a high tier pages nobody in legal
    clock.at("2026-06-06T16:00:00+00:00")
    entry = classify(ledger, incident.id, key_of("carla.rossi"), "unlawful age disparity in claim approvals",
                     serious=True, ground="c", aware_at="2026-06-06T15:00:00+00:00")
    assert entry.payload["role"] == "risk_compliance"
    assert entry.payload["reporting"] == {"basis": "default", "allowed": "P15D", "due_at": "2026-06-21T15:00:00.000Z"}
    classified = _incident(populated, FAIRNESS)
    assert classified.serious and classified.awaiting_report and classified.state is State.VALIDATED
    assert classified.reporting_status(clock.now) == "pending"
    assert classified.reporting_status(datetime.datetime(2026, 6, 22, tzinfo=datetime.UTC)) == "overdue"
    tick(ledger, GRAPH, clock.now, messages)
    pages = [m for r, m in messages.sent if r == LEGAL]
    assert len(pages) == 1 and pages[0]["role"] == "regulatory_reporting"
    assert pages[0]["serious_incident"] == {"ground": "c", "aware_at": "2026-06-06T15:00:00.000Z",
                                            "basis": "default", "due_at": "2026-06-21T15:00:00.000Z"}
    clock.at("2026-06-09T10:00:00+00:00")
    file_report(ledger, incident.id, key_of(LEGAL), authority=AUTHORITY, reference="AI-2026-0042", kind="initial",
                filed_at="2026-06-09T09:30:00+00:00")
    reported = _incident(populated, FAIRNESS)
    assert reported.reporting_status(clock.now) == "on_time" and not reported.awaiting_report
    assert [e["event"] for e in reported.timeline][-2:] == ["classified serious incident (Art. 3(49)(c))",
                                                             "initial report filed"]
    result = metrics(load_book(ledger).incidents.values(), at=clock.now)
    assert result.scopes["portfolio"]["time_to_filing"] == {"n": 1, "missing": 0, "rejected": 0, "median_h": 66.5,
                                                            "p90_h": 66.5}
    assert result.reporting["claims-approval"] == {"serious": 1, "on_time": 1, "late": 0, "pending": 0,
                                                   "overdue": 0}
    assert verify_ledger(ledger, populated.log_key.public, resume=False).ok


def test_only_an_incident_of_a_high_risk_system_is_classified_serious(world: tuple[Populated, Clock]) -> None:
    # Review L2: the claims model is not EU high-risk (motor insurance is outside Annex III 5(c)), so Art. 73
    # does not apply to its fairness breach: a serious classification is refused, a triage finding it is not
    # serious is recorded, and once a registrar records it as high-risk the validator may classify it serious.
    populated, clock = world
    ledger = populated.ledger
    incident = _validated_claims(world, high_risk=False)
    clock.at("2026-06-06T16:00:00+00:00")

    def serious() -> Any:
        return classify(ledger, incident.id, key_of("carla.rossi"), "rights", serious=True, ground="c",
                        aware_at="2026-06-06T15:00:00+00:00")

    size = ledger.size()
    with pytest.raises(CharterError) as info:
        serious()
    assert info.value.code == "not_high_risk" and "claims-approval is not high-risk" in str(info.value)
    assert ledger.size() == size
    classify(ledger, incident.id, key_of("carla.rossi"), "no Art. 73 duty: not a high-risk system", serious=False)
    assert not _incident(populated, FAIRNESS).serious
    register_high_risk(ledger)
    assert serious().payload["reporting"] is not None
    assert _incident(populated, FAIRNESS).serious
    assert verify_ledger(ledger, populated.log_key.public, resume=False).ok


def test_only_the_validator_classifies_and_only_legal_files(world: tuple[Populated, Clock]) -> None:
    populated, clock = world
    ledger = populated.ledger
    incident = _validated_claims(world)
    aware = "2026-06-06T15:00:00+00:00"
    for who in ("tom.berger", LEGAL, "maria.keller"):  # the owner, legal, another owner
        _refused(populated, "not_authorized", lambda who=who: classify(
            ledger, incident.id, key_of(who), "mine", serious=True, ground="c", aware_at=aware))
    _refused(populated, "not_classified", lambda: file_report(
        ledger, incident.id, key_of(LEGAL), authority=AUTHORITY, reference="r", kind="initial", filed_at=aware))
    classify(ledger, incident.id, key_of("omar.haddad"), "fundamental rights", serious=True, ground="c",
             aware_at=aware)  # any member of the validating role
    for who in ("carla.rossi", "anna.schmidt", "tom.berger"):
        _refused(populated, "not_authorized", lambda who=who: file_report(
            ledger, incident.id, key_of(who), authority=AUTHORITY, reference="r", kind="initial", filed_at=aware))
    _refused(populated, "future_time", lambda: file_report(
        ledger, incident.id, key_of(LEGAL), authority=AUTHORITY, reference="r", kind="initial",
        filed_at=clock.now + datetime.timedelta(hours=1)))
    _refused(populated, "filed_before_awareness", lambda: file_report(
        ledger, incident.id, key_of(LEGAL), authority=AUTHORITY, reference="r", kind="initial",
        filed_at="2026-06-06T14:00:00+00:00"))
    for kind, authority, reference in (("interim", AUTHORITY, "r"), ("initial", " ", "r"), ("initial", AUTHORITY, "")):
        _refused(populated, "usage", lambda k=kind, a=authority, r=reference: file_report(
            ledger, incident.id, key_of(LEGAL), authority=a, reference=r, kind=k, filed_at=aware))
    file_report(ledger, incident.id, key_of(LEGAL), authority=AUTHORITY, reference="r", kind="initial",
                filed_at=clock.now)
    # the authority has the determination: no reclassification after a report
    _refused(populated, "already_reported", lambda: classify(ledger, incident.id, key_of("carla.rossi"), "not so",
                                                             serious=False))
    file_report(ledger, incident.id, key_of(LEGAL), authority=AUTHORITY, reference="r", kind="complete",
                filed_at=clock.now)
    assert [f["kind"] for f in _incident(populated, FAIRNESS).filings] == ["initial", "complete"]
    assert verify_ledger(ledger, populated.log_key.public, resume=False).ok


def test_the_awareness_time_is_bounded_and_the_statement_well_formed(world: tuple[Populated, Clock]) -> None:
    populated, clock = world
    ledger = populated.ledger
    incident = _validated_claims(world)
    carla = key_of("carla.rossi")
    cases: list[tuple[str, dict[str, Any]]] = [
        ("future_time", {"serious": True, "ground": "c", "aware_at": clock.now + datetime.timedelta(minutes=1)}),
        ("awareness_before_onset", {"serious": True, "ground": "c", "aware_at": "2026-05-31T23:59:00+00:00"}),
        ("usage", {"serious": True, "ground": None, "aware_at": clock.now}),
        ("usage", {"serious": True, "ground": "e", "aware_at": clock.now}),
        ("usage", {"serious": True, "ground": "c"}),  # no awareness
        ("usage", {"serious": True, "ground": "c", "aware_at": "2026-06-06T15:00:00"}),  # no timezone
        ("usage", {"serious": True, "ground": "c", "death": True, "aware_at": clock.now}),  # death is ground (a)
        ("usage", {"serious": False, "ground": "c"}),
        ("usage", {"serious": False, "aware_at": clock.now}),
    ]
    for code, options in cases:
        _refused(populated, code, lambda o=options: classify(ledger, incident.id, carla, "triage", **o))
    _refused(populated, "rationale_required", lambda: classify(ledger, incident.id, carla, " ", serious=False))
    # awareness may precede Charter's opening of the incident (a complaint came first), not its onset
    entry = classify(ledger, incident.id, carla, "complaints since June 1", serious=True, ground="c",
                     aware_at="2026-06-01T00:00:00+00:00")
    assert entry.payload["reporting"]["due_at"] == "2026-06-16T00:00:00.000Z"


def test_a_triage_may_find_no_serious_incident_and_be_revised_until_reported(world: tuple[Populated, Clock]) -> None:
    populated, clock = world
    ledger = populated.ledger
    incident = _validated_claims(world)
    classify(ledger, incident.id, key_of("carla.rossi"), "gap within the lawful actuarial basis", serious=False)
    triaged = _incident(populated, FAIRNESS)
    assert triaged.classification is not None and not triaged.serious and triaged.reporting_status() is None
    messages = _Messages()
    tick(ledger, GRAPH, clock.now, messages)
    assert LEGAL not in {r for r, _ in messages.sent}
    assert metrics([triaged]).reporting["portfolio"]["serious"] == 0
    assert metrics([triaged]).scopes["portfolio"]["time_to_filing"]["n"] == 0
    # new evidence: the classification is revised, and the latest one counts
    classify(ledger, incident.id, key_of("carla.rossi"), "proxy discrimination after all", serious=True,
             ground="c", widespread=True, aware_at=clock.now)
    revised = _incident(populated, FAIRNESS)
    assert revised.serious and revised.classification is not None
    assert revised.classification["basis"] == "widespread_or_critical_infrastructure"
    assert verify_ledger(ledger, populated.log_key.public, resume=False).ok


def test_a_decided_incident_classified_serious_still_pages_legal_but_a_closed_one_is_reopened_first(
        world: tuple[Populated, Clock]) -> None:
    populated, clock = world
    ledger = populated.ledger
    incident = _validated_claims(world)
    transition(ledger, incident.id, "decide", key_of("anna.schmidt"), "retrain", ["retrain"])
    classify(ledger, incident.id, key_of("carla.rossi"), "after the decision", serious=True, ground="c",
             aware_at=clock.now)
    messages = _Messages()
    assert len(page_reporting(ledger, GRAPH, incident.id, messages).notified) == 1  # at once, on classification
    tick(ledger, GRAPH, clock.now, messages)
    # decided: the chain is quiet about it, legal is not, and the tick repeats no page
    assert [r for r, m in messages.sent if m["incident"] == incident.id] == [LEGAL]
    assert page_reporting(ledger, GRAPH, incident.id, messages).notified == []
    transition(ledger, incident.id, "resolve", key_of("tom.berger"), "retrained")
    transition(ledger, incident.id, "close", key_of("carla.rossi"), "done")
    _refused(populated, "invalid_transition", lambda: classify(ledger, incident.id, key_of("carla.rossi"),
                                                               "again", serious=False))
    transition(ledger, incident.id, "reopen", key_of("carla.rossi"), "new facts")
    assert classify(ledger, incident.id, key_of("carla.rossi"), "again", serious=False).payload["role"]
    assert verify_ledger(ledger, populated.log_key.public, resume=False).ok


def test_a_late_first_report_is_late_whatever_follows(world: tuple[Populated, Clock]) -> None:
    populated, clock = world
    ledger = populated.ledger
    incident = _validated_claims(world)
    classify(ledger, incident.id, key_of("carla.rossi"), "rights", serious=True, ground="c",
             aware_at="2026-06-01T12:00:00+00:00")
    clock.at("2026-06-20T00:00:00+00:00")
    file_report(ledger, incident.id, key_of(LEGAL), authority=AUTHORITY, reference="r", kind="initial",
                filed_at=clock.now)
    reported = _incident(populated, FAIRNESS)
    assert reported.reporting_status() == "late"
    assert metrics([reported]).reporting["portfolio"] == {"serious": 1, "on_time": 0, "late": 1, "pending": 0,
                                                          "overdue": 0}


@pytest.mark.parametrize(("ground", "death", "widespread", "basis", "days"), [
    ("a", False, False, "default", 15), ("c", False, False, "default", 15), ("d", False, False, "default", 15),
    ("a", True, False, "death", 10), ("b", False, False, "widespread_or_critical_infrastructure", 2),
    ("c", False, True, "widespread_or_critical_infrastructure", 2),
    ("a", True, True, "widespread_or_critical_infrastructure", 2)])
def test_the_deadline_is_the_tightest_art73_gives(ground: str, death: bool, widespread: bool, basis: str,
                                                  days: int) -> None:
    aware = datetime.datetime(2026, 6, 1, 12, tzinfo=datetime.UTC)
    due = reporting_deadline(GRAPH, ground, death, widespread, aware)
    assert due["basis"] == basis and due["due_at"] == f"2026-06-{1 + days:02d}T12:00:00.000Z"
    assert set(GROUNDS) == {"a", "b", "c", "d"}


def test_deadlines_come_from_the_configuration_and_none_without_a_regulatory_section(tmp_path: Path) -> None:
    aware = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)
    shorter = _graph(tmp_path, ("default: P15D", "default: P14D"))
    assert reporting_deadline(shorter, "c", False, False, aware)["allowed"] == "P14D"
    text = (Path(__file__).resolve().parents[2] / "policies" / "escalation.yaml").read_text()
    (tmp_path / "none.yaml").write_text(text[:text.index("\nregulatory:")] + "\n")
    from charter.escalation import load_escalation

    with pytest.raises(CharterError) as info:
        reporting_deadline(load_escalation(tmp_path / "none.yaml", strict=False), "c", False, False, aware)
    assert info.value.code == "no_regulatory_clock"


def test_time_to_filing_counts_only_serious_incidents() -> None:
    def bare(name: str, classification: dict[str, Any] | None, filed: str | None) -> Incident:
        incident = Incident(name, "s", "o", "p/r", None, Severity.HIGH, RiskTier.HIGH, "t",
                            opened_at="2026-05-02T00:00:00.000Z", onset_at="2026-05-01T00:00:00.000Z",
                            detected_at="2026-05-02T00:00:00.000Z", classification=classification)
        if filed:
            incident.filings.append({"kind": "initial", "filed_at": filed})
        return incident

    serious = {"serious": True, "aware_at": "2026-05-03T00:00:00.000Z", "due_at": "2026-05-18T00:00:00.000Z"}
    rows = [bare("on-time", serious, "2026-05-04T00:00:00.000Z"), bare("late", serious, "2026-05-23T00:00:00.000Z"),
            bare("pending", serious, None), bare("triaged", {"serious": False}, None), bare("untriaged", None, None)]
    result = metrics(rows, at=datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC))
    assert result.scopes["portfolio"]["time_to_filing"] == {"n": 2, "missing": 1, "rejected": 0, "median_h": 252.0,
                                                            "p90_h": 480.0}
    assert result.reporting["portfolio"] == {"serious": 3, "on_time": 1, "late": 1, "pending": 1, "overdue": 1}
    assert result.to_dict()["reporting"]["s"]["serious"] == 3
