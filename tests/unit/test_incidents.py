"""Incidents and escalation on the ledger: dedup, flapping, authority, deadlines, notifications, waivers, metrics."""

from __future__ import annotations

import datetime
import http.server
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from charter.errors import CharterError
from charter.escalation import load_escalation
from charter.incidents import State, load_book, metrics, transition
from charter.ledger import verify_ledger
from charter.notify import ChannelNotifier, DeliveryError, tick
from charter.submission import submit_bundle
from tests.conftest import REPO
from tests.unit.ledger.helpers import CATALOG, POLICIES, Populated, populate

GRAPH = load_escalation(REPO / "policies" / "escalation.yaml")
FRAUD = sorted((REPO / "evidence").glob("fraud-detector-*.json"))
CLAIMS = REPO / "evidence" / "claims-approval-2026-05.json"
RECALL = "core.performance/recall-floor"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

    def __call__(self) -> datetime.datetime:
        return self.now

    def at(self, text: str) -> datetime.datetime:
        self.now = datetime.datetime.fromisoformat(text)
        return self.now


@pytest.fixture
def world(db_url: str) -> tuple[Populated, Clock]:
    populated = populate(db_url, bundles=0)
    clock = Clock()
    populated.ledger.clock = clock
    return populated, clock


def _submit(world: tuple[Populated, Clock], path: Path, key_owner: str = "maria.keller", data: Any = None) -> Any:
    populated, clock = world
    text = json.dumps(data).encode() if data is not None else path.read_bytes()
    clock.now = datetime.datetime.fromisoformat(json.loads(text)["measured_at"])
    return submit_bundle(populated.ledger, text, CATALOG, POLICIES.policies, key=populated.owner_keys[key_owner],
                         graph=GRAPH)


def _incident(populated: Populated, rule: str = RECALL) -> Any:
    matching = [i for i in load_book(populated.ledger).incidents.values() if i.rule == rule]
    assert len(matching) == 1, matching
    return matching[0]


def test_breach_opens_one_incident_and_repeats_attach(world: tuple[Populated, Clock]) -> None:
    for path in FRAUD[:6]:
        _submit(world, path)
    incident = _incident(world[0])
    assert incident.state is State.OPEN and len(incident.findings) == 3  # April, May, June breaches
    assert incident.severity.value == "high" and incident.tier.value == "high"
    again = _submit(world, FRAUD[3])  # the same April bundle delivered twice
    assert again.duplicate and len(_incident(world[0]).findings) == 3


def test_flapping_kpi_does_not_open_and_close_incidents(world: tuple[Populated, Clock]) -> None:
    base = json.loads(FRAUD[0].read_text())
    for month, recall in enumerate([0.7, 0.9, 0.7, 0.9, 0.7], start=1):
        data = dict(base, kpis={**base["kpis"], "recall": recall},
                    window_start=f"2026-{month:02d}-01T00:00:00Z", window_end=f"2026-{month + 1:02d}-01T00:00:00Z",
                    measured_at=f"2026-{month + 1:02d}-02T00:00:00Z")
        _submit(world, FRAUD[0], data=data)
    incident = _incident(world[0])
    assert len(incident.findings) == 3 and incident.state is State.OPEN


def test_workflow_with_authority_checks(world: tuple[Populated, Clock]) -> None:
    populated, clock = world
    _submit(world, FRAUD[3])
    incident = _incident(populated)
    ledger = populated.ledger
    size = ledger.size()
    for principal, action, code in [("tom.berger", "acknowledge", "not_authorized"),  # not this system's owner
                                    ("maria.keller", "validate", "invalid_transition"),
                                    ("eve.nobody", "acknowledge", "not_authorized")]:
        with pytest.raises(CharterError) as info:
            transition(ledger, GRAPH, incident.id, action, principal, "note")
        assert info.value.code == code
    with pytest.raises(CharterError) as info:
        transition(ledger, GRAPH, incident.id, "acknowledge", "maria.keller", "  ")
    assert info.value.code == "rationale_required"
    assert ledger.size() == size  # nothing recorded by refused transitions
    clock.at("2026-05-02T08:00:00+00:00")
    transition(ledger, GRAPH, incident.id, "acknowledge", "maria.keller", "on it")
    transition(ledger, GRAPH, incident.id, "investigate", "maria.keller", "drift in instant payments")
    with pytest.raises(CharterError) as info:  # model owners may not validate
        transition(ledger, GRAPH, incident.id, "validate", "maria.keller", "fine")
    assert info.value.code == "not_authorized"
    transition(ledger, GRAPH, incident.id, "validate", "carla.rossi", "confirmed")
    with pytest.raises(CharterError) as info:  # risk may not decide a high-severity incident
        transition(ledger, GRAPH, incident.id, "decide", "carla.rossi", "retrain", ["retrain"])
    assert info.value.code == "not_authorized"
    transition(ledger, GRAPH, incident.id, "decide", "anna.schmidt", "retrain and roll back", ["retrain", "rollback"])
    transition(ledger, GRAPH, incident.id, "resolve", "maria.keller", "retrained")
    transition(ledger, GRAPH, incident.id, "close", "carla.rossi", "verified")
    final = _incident(populated)
    assert final.state is State.CLOSED and final.decisions == ["retrain", "rollback"]
    assert [e["event"] for e in final.timeline] == ["opened", "acknowledge", "investigate", "validate", "decide",
                                                    "resolve", "close"]
    assert verify_ledger(ledger, populated.log_key.public).ok


def test_separation_of_duties_on_principals(world: tuple[Populated, Clock], tmp_path: Path) -> None:
    populated, _ = world
    document = (REPO / "policies" / "escalation.yaml").read_text()
    # maria.keller also sits in risk and compliance: she may not validate what she investigated.
    (tmp_path / "escalation.yaml").write_text(document.replace("members: [carla.rossi, omar.haddad]",
                                                               "members: [carla.rossi, omar.haddad, maria.keller]"))
    graph = load_escalation(tmp_path / "escalation.yaml", strict=False)
    assert "separation_of_duties" in {d.code for d in graph.check()}  # lint refuses this organisation
    _submit(world, FRAUD[3])
    incident = _incident(populated)
    transition(populated.ledger, graph, incident.id, "investigate", "maria.keller", "mine")
    with pytest.raises(CharterError) as info:
        transition(populated.ledger, graph, incident.id, "validate", "maria.keller", "looks fine to me")
    assert info.value.code == "separation_of_duties"
    transition(populated.ledger, graph, incident.id, "validate", "carla.rossi", "independently confirmed")


def test_decider_authority_for_accept_risk_and_waiver(world: tuple[Populated, Clock]) -> None:
    populated, _ = world
    _submit(world, FRAUD[3])
    incident = _incident(populated)
    ledger = populated.ledger
    transition(ledger, GRAPH, incident.id, "investigate", "maria.keller", "known seasonal effect")
    transition(ledger, GRAPH, incident.id, "validate", "carla.rossi", "seasonal, documented")
    with pytest.raises(CharterError) as info:
        transition(ledger, GRAPH, incident.id, "decide", "anna.schmidt", "accept", ["accept_risk"])
    assert info.value.code == "expiry_required"
    with pytest.raises(CharterError) as info:
        transition(ledger, GRAPH, incident.id, "decide", "anna.schmidt", "accept", ["accept_risk"], "P120D")
    assert info.value.code == "waiver_too_long"
    transition(ledger, GRAPH, incident.id, "decide", "anna.schmidt", "accept for 45 days", ["accept_risk"], "P45D")
    transition(ledger, GRAPH, incident.id, "resolve", "maria.keller", "risk accepted")
    transition(ledger, GRAPH, incident.id, "close", "carla.rossi", "filed")
    before = len(load_book(ledger).incidents)
    _submit(world, FRAUD[4])  # May breach, inside the waiver: recorded, no incident, no reopening
    recall = [i for i in load_book(ledger).incidents.values() if i.rule == RECALL]
    assert len(recall) == 1 and recall[0].state is State.CLOSED and len(recall[0].findings) == 1
    assert len(load_book(ledger).waivers) == 1
    data = json.loads(FRAUD[5].read_text())
    data["measured_at"] = "2026-08-15T00:00:00Z"  # after the waiver expired (and the reopen window)
    _submit(world, FRAUD[5], data=data)
    recall = [i for i in load_book(ledger).incidents.values() if i.rule == RECALL]
    assert len(load_book(ledger).incidents) > before and len(recall) == 2


def test_resolved_incident_reopens_within_the_window(world: tuple[Populated, Clock]) -> None:
    populated, clock = world
    _submit(world, FRAUD[3])
    incident = _incident(populated)
    ledger = populated.ledger
    clock.at("2026-05-20T00:00:00+00:00")  # resolved 13 days before the June submission
    for action, who, extra in [("investigate", "maria.keller", ()), ("validate", "carla.rossi", ()),
                               ("decide", "anna.schmidt", ("retrain",)), ("resolve", "maria.keller", ())]:
        transition(ledger, GRAPH, incident.id, action, who, action, extra)
    _submit(world, FRAUD[4])
    again = _incident(populated)
    assert again.state is State.OPEN and again.reopen_count == 1 and again.id == incident.id


class _Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, str]] = []
        self.fail = fail

    def send(self, channel: Any, recipient: str, message: dict[str, Any]) -> None:
        if self.fail:
            raise DeliveryError("down")
        self.sent.append((recipient, message["key"]))


def test_missed_deadlines_escalate_once_and_notify_once(world: tuple[Populated, Clock]) -> None:
    populated, clock = world
    _submit(world, FRAUD[3])  # opened 2026-05-02T06:00; acknowledge due 12 h later on a high-risk system
    ledger = populated.ledger
    recorder = _Recorder()
    report = tick(ledger, GRAPH, clock.at("2026-05-02T17:00:00+00:00"), recorder)
    assert report.escalated == [] and recorder.sent == [("maria.keller", f"notify:{_incident(populated).id}:0:"
                                                                           "maria.keller")]
    report = tick(ledger, GRAPH, clock.at("2026-05-02T19:00:00+00:00"), recorder)
    assert [line.split(" -> ")[1] for line in report.escalated] == ["risk_compliance"]
    assert {r for r, _ in recorder.sent} == {"maria.keller", "carla.rossi", "omar.haddad"}
    # A restart in the middle of an escalation: a new tick finds nothing to do twice.
    count = len(recorder.sent)
    assert tick(ledger, GRAPH, clock.now, _Recorder()).escalated == []
    assert tick(ledger, GRAPH, clock.now, recorder).notified == [] and len(recorder.sent) == count
    report = tick(ledger, GRAPH, clock.at("2026-05-06T00:00:00+00:00"), recorder)
    assert [line.split(" -> ")[1] for line in report.escalated] == ["governance_committee", "executive"]
    transition(ledger, GRAPH, _incident(populated).id, "acknowledge", "jonas.weber", "the CRO takes it")
    assert verify_ledger(ledger, populated.log_key.public).ok


def test_open_incidents_keep_the_timing_they_were_opened_with(world: tuple[Populated, Clock],
                                                             tmp_path: Path) -> None:
    populated, clock = world
    _submit(world, FRAUD[3])
    # The configuration changes while the incident is open: owners now get 30 days to acknowledge.
    relaxed = (REPO / "policies" / "escalation.yaml").read_text().replace("acknowledge: P1D,", "acknowledge: P30D,")
    (tmp_path / "escalation.yaml").write_text(relaxed)
    graph = load_escalation(tmp_path / "escalation.yaml")
    report = tick(populated.ledger, graph, clock.at("2026-05-02T19:00:00+00:00"), _Recorder())
    assert [line.split(" -> ")[1] for line in report.escalated] == ["risk_compliance"]


def test_medium_incidents_on_minimal_tiers_have_no_chain_and_no_crash(world: tuple[Populated, Clock]) -> None:
    from charter.incidents import escalation_chain
    from charter.policy.model import Severity
    from charter.registry import RiskTier

    assert escalation_chain(GRAPH, Severity.LOW, RiskTier.MINIMAL) == []


def test_failed_delivery_is_retried_by_the_next_tick(world: tuple[Populated, Clock]) -> None:
    populated, clock = world
    _submit(world, FRAUD[3])
    report = tick(populated.ledger, GRAPH, clock.now, _Recorder(fail=True))
    assert report.failed and not report.notified
    assert tick(populated.ledger, GRAPH, clock.now, _Recorder()).notified


def test_log_and_webhook_channels(tmp_path: Path) -> None:
    received: list[tuple[str, dict[str, Any]]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.headers["Idempotency-Key"], body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        from charter.escalation import Channel

        notifier = ChannelNotifier(tmp_path / "n.log")
        message = {"key": "notify:INC-1:0:x", "incident": "INC-1"}
        notifier.send(Channel(type="webhook", target=f"http://127.0.0.1:{server.server_port}/hook"), "x", message)
        notifier.send(Channel(type="log"), "x", message)
        assert received == [("notify:INC-1:0:x", {**message, "recipient": "x"})]
        assert json.loads((tmp_path / "n.log").read_text())["recipient"] == "x"
        with pytest.raises(DeliveryError):
            notifier.send(Channel(type="webhook", target="http://127.0.0.1:9/none"), "x", message)
    finally:
        server.shutdown()


def test_metrics_from_timestamps(world: tuple[Populated, Clock]) -> None:
    populated, clock = world
    _submit(world, FRAUD[3])  # window ended 2026-05-01, detected 2026-05-02T06:00 -> 30 h
    incident = _incident(populated)
    ledger = populated.ledger
    clock.at("2026-05-02T08:00:00+00:00")
    transition(ledger, GRAPH, incident.id, "acknowledge", "maria.keller", "seen")  # 2 h
    clock.at("2026-05-03T06:00:00+00:00")
    transition(ledger, GRAPH, incident.id, "investigate", "maria.keller", "x")
    transition(ledger, GRAPH, incident.id, "validate", "carla.rossi", "x")
    clock.at("2026-05-04T06:00:00+00:00")
    transition(ledger, GRAPH, incident.id, "decide", "anna.schmidt", "x", ["retrain"])  # 48 h
    result = metrics(load_book(ledger).incidents.values())
    assert result["portfolio"]["mttd"] == {"n": 1, "missing": 0, "median_h": 30.0, "p90_h": 30.0}
    assert result["portfolio"]["mtta"]["median_h"] == 2.0
    assert result["fraud-detector"]["time_to_decision"]["median_h"] == 48.0
    assert result["portfolio"]["mttr"] == {"n": 0, "missing": 1, "median_h": None, "p90_h": None}


def test_clock_skew_is_refused_not_averaged() -> None:
    from charter.incidents import Incident
    from charter.policy.model import Severity
    from charter.registry import RiskTier

    skewed = Incident("INC-x", "s", "o", "p/r", None, Severity.HIGH, RiskTier.HIGH, "t",
                      opened_at="2026-05-02T06:00:00.000Z", onset_at="2026-05-01T00:00:00+00:00",
                      detected_at="2026-05-02T06:00:00+00:00", times={"acknowledge": "2026-05-02T05:57:00.000Z"})
    with pytest.raises(CharterError) as info:
        metrics([skewed])
    assert info.value.code == "clock_skew" and "180 s" in str(info.value)
