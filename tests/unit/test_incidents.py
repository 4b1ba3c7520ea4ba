"""Incidents and escalation on the ledger: dedup, flapping, authority, deadlines, notifications, waivers, metrics."""

from __future__ import annotations

import datetime
import http.server
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from charter.authority import activate_escalation, escalation_statement, signed_entry
from charter.errors import CharterError
from charter.escalation import load_escalation
from charter.incidents import State, load_book, metrics, transition
from charter.ledger import verify_ledger
from charter.ledger.auditor import ESCALATION_ACTIVATED
from charter.notify import ChannelNotifier, DeliveryError, tick
from charter.submission import submit_bundle
from tests.conftest import REPO
from tests.unit.ledger.helpers import CATALOG, Populated, key_of, populate

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
    return submit_bundle(populated.ledger, text, CATALOG, key=populated.owner_keys[key_owner])


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
                                    ("eve.nobody", "acknowledge", "unknown_key")]:  # no registered key
        with pytest.raises(CharterError) as info:
            transition(ledger, incident.id, action, key_of(principal), "note")
        assert info.value.code == code
    with pytest.raises(CharterError) as info:
        transition(ledger, incident.id, "acknowledge", key_of("maria.keller"), "  ")
    assert info.value.code == "rationale_required"
    assert ledger.size() == size  # nothing recorded by refused transitions
    clock.at("2026-05-02T08:00:00+00:00")
    transition(ledger, incident.id, "acknowledge", key_of("maria.keller"), "on it")
    transition(ledger, incident.id, "investigate", key_of("maria.keller"), "drift in instant payments")
    with pytest.raises(CharterError) as info:  # model owners may not validate
        transition(ledger, incident.id, "validate", key_of("maria.keller"), "fine")
    assert info.value.code == "not_authorized"
    transition(ledger, incident.id, "validate", key_of("carla.rossi"), "confirmed")
    with pytest.raises(CharterError) as info:  # risk may not decide a high-severity incident
        transition(ledger, incident.id, "decide", key_of("carla.rossi"), "retrain", ["retrain"])
    assert info.value.code == "not_authorized"
    transition(ledger, incident.id, "decide", key_of("anna.schmidt"), "retrain and roll back", ["retrain", "rollback"])
    transition(ledger, incident.id, "resolve", key_of("maria.keller"), "retrained")
    transition(ledger, incident.id, "close", key_of("carla.rossi"), "verified")
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
    with pytest.raises(CharterError):  # and so does activation
        _activate(populated, tmp_path / "escalation.yaml")
    _activate(populated, tmp_path / "escalation.yaml", checked=False)  # forced in: the rule still holds
    _submit(world, FRAUD[3])
    incident = _incident(populated)
    transition(populated.ledger, incident.id, "investigate", key_of("maria.keller"), "mine")
    with pytest.raises(CharterError) as info:
        transition(populated.ledger, incident.id, "validate", key_of("maria.keller"), "looks fine to me")
    assert info.value.code == "separation_of_duties"
    transition(populated.ledger, incident.id, "validate", key_of("carla.rossi"), "independently confirmed")


def test_decider_authority_for_accept_risk_and_waiver(world: tuple[Populated, Clock]) -> None:
    populated, _ = world
    _submit(world, FRAUD[3])
    incident = _incident(populated)
    ledger = populated.ledger
    transition(ledger, incident.id, "investigate", key_of("maria.keller"), "known seasonal effect")
    transition(ledger, incident.id, "validate", key_of("carla.rossi"), "seasonal, documented")
    with pytest.raises(CharterError) as info:
        transition(ledger, incident.id, "decide", key_of("anna.schmidt"), "accept", ["accept_risk"])
    assert info.value.code == "expiry_required"
    with pytest.raises(CharterError) as info:
        transition(ledger, incident.id, "decide", key_of("anna.schmidt"), "accept", ["accept_risk"], "P120D")
    assert info.value.code == "waiver_too_long"
    transition(ledger, incident.id, "decide", key_of("anna.schmidt"), "accept for 45 days", ["accept_risk"], "P45D")
    transition(ledger, incident.id, "resolve", key_of("maria.keller"), "risk accepted")
    transition(ledger, incident.id, "close", key_of("carla.rossi"), "filed")
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
        transition(ledger, incident.id, action, key_of(who), action, extra)
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
    assert report.escalated == [] and recorder.sent == [("maria.keller", f"notify:{_incident(populated).id}:0:0:"
                                                                           "maria.keller:0")]
    report = tick(ledger, GRAPH, clock.at("2026-05-02T19:00:00+00:00"), recorder)
    assert [line.split(" -> ")[1] for line in report.escalated] == ["risk_compliance"]
    assert {r for r, _ in recorder.sent} == {"maria.keller", "carla.rossi", "omar.haddad"}
    # A restart in the middle of an escalation: a new tick finds nothing to do twice.
    count = len(recorder.sent)
    assert tick(ledger, GRAPH, clock.now, _Recorder()).escalated == []
    assert tick(ledger, GRAPH, clock.now, recorder).notified == [] and len(recorder.sent) == count
    report = tick(ledger, GRAPH, clock.at("2026-05-06T00:00:00+00:00"), recorder)
    assert [line.split(" -> ")[1] for line in report.escalated] == ["governance_committee", "executive"]
    transition(ledger, _incident(populated).id, "acknowledge", key_of("jonas.weber"), "the CRO takes it")
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
    transition(ledger, incident.id, "acknowledge", key_of("maria.keller"), "seen")  # 2 h
    clock.at("2026-05-03T06:00:00+00:00")
    transition(ledger, incident.id, "investigate", key_of("maria.keller"), "x")
    transition(ledger, incident.id, "validate", key_of("carla.rossi"), "x")
    clock.at("2026-05-04T06:00:00+00:00")
    transition(ledger, incident.id, "decide", key_of("anna.schmidt"), "x", ["retrain"])  # 48 h
    result = metrics(load_book(ledger).incidents.values()).scopes
    assert result["portfolio"]["mttd"] == {"n": 1, "missing": 0, "rejected": 0, "median_h": 30.0, "p90_h": 30.0}
    assert result["portfolio"]["mtta"]["median_h"] == 2.0
    assert result["fraud-detector"]["time_to_decision"]["median_h"] == 48.0
    assert result["portfolio"]["mttr"] == {"n": 0, "missing": 1, "rejected": 0, "median_h": None, "p90_h": None}


def _bare_incident(name: str, opened: str, **times: str) -> Any:
    from charter.incidents import Incident
    from charter.policy.model import Severity
    from charter.registry import RiskTier

    return Incident(name, "s", "o", "p/r", None, Severity.HIGH, RiskTier.HIGH, "t", opened_at=opened,
                    onset_at="2026-05-01T00:00:00+00:00", detected_at="2026-05-02T06:00:00+00:00", times=times)


def test_clock_skew_is_rejected_by_incident_not_averaged_and_does_not_block_the_rest() -> None:
    good = _bare_incident("INC-good", "2026-05-02T06:00:00.000Z", acknowledge="2026-05-02T07:00:00.000Z")
    skewed = _bare_incident("INC-x", "2026-05-02T06:00:00.000Z", acknowledge="2026-05-02T05:57:00.000Z")
    result = metrics([good, skewed])
    assert result.scopes["portfolio"]["mtta"] == {"n": 1, "missing": 0, "rejected": 1, "median_h": 1.0, "p90_h": 1.0}
    assert [(r["incident"], r["metric"], r["reason"]) for r in result.rejected] == [("INC-x", "mtta", "clock_skew")]
    assert "180 s" in result.rejected[0]["message"]


def test_p90_is_the_nearest_rank_and_investigating_counts_as_acknowledging() -> None:
    opened = datetime.datetime(2026, 5, 2, 6, tzinfo=datetime.UTC)

    def acked_after(hours: int, action: str = "acknowledge") -> Any:
        return _bare_incident(f"INC-{hours}", opened.isoformat(),
                              **{action: (opened + datetime.timedelta(hours=hours)).isoformat()})

    # nearest rank: ceil(0.9 * n)-th smallest; n=5 -> 5th, n=10 -> 9th, n=15 -> 14th (no banker's rounding)
    for n, expected in [(5, 5.0), (10, 9.0), (15, 14.0)]:
        assert metrics([acked_after(h) for h in range(1, n + 1)]).scopes["portfolio"]["mtta"]["p90_h"] == expected
    # an incident taken straight into investigation was acknowledged then; the earlier of the two counts
    both = _bare_incident("INC-b", opened.isoformat(), investigate=(opened + datetime.timedelta(hours=3)).isoformat(),
                          acknowledge=(opened + datetime.timedelta(hours=5)).isoformat())
    result = metrics([acked_after(2, "investigate"), both]).scopes["portfolio"]["mtta"]
    assert result["n"] == 2 and result["median_h"] == 2.5


# -- authority, rounds and robustness ------------------------------------------------------------


def _graph(tmp_path: Path, *replacements: tuple[str, str]) -> Any:
    text = (REPO / "policies" / "escalation.yaml").read_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    (tmp_path / "escalation.yaml").write_text(text)
    return load_escalation(tmp_path / "escalation.yaml")


def _activate(populated: Populated, path: Path, checked: bool = True) -> None:
    """Put the escalation file at `path` in force, as the approver; unchecked, even one lint refuses."""
    document = yaml.safe_load(path.read_text())
    approver = key_of("omar.haddad")
    if checked:
        activate_escalation(populated.ledger, document, approver)
        return
    in_force = populated.ledger.authority().escalation_seq
    populated.ledger.append([signed_entry(populated.ledger, ESCALATION_ACTIVATED,
                                          escalation_statement(document, in_force), approver)])


def _to_validated(ledger: Any, incident_id: str) -> None:
    transition(ledger, incident_id, "investigate", key_of("maria.keller"), "drift")
    transition(ledger, incident_id, "validate", key_of("carla.rossi"), "confirmed")


def test_a_lapsed_waiver_on_a_decided_incident_lets_breaches_open_a_new_one(world: tuple[Populated, Clock]) -> None:
    populated, _ = world
    _submit(world, FRAUD[3])
    incident = _incident(populated)
    _to_validated(populated.ledger, incident.id)
    transition(populated.ledger, incident.id, "decide", key_of("anna.schmidt"), "accept 20 days", ["accept_risk"],
               "P20D")
    data = json.loads(FRAUD[4].read_text())
    data["measured_at"] = "2026-07-01T00:00:00Z"  # the waiver lapsed; the incident is still only decided
    _submit(world, FRAUD[4], data=data)
    recall = sorted((i for i in load_book(populated.ledger).incidents.values() if i.rule == RECALL),
                    key=lambda i: i.opened_at)
    assert [i.state for i in recall] == [State.DECIDED, State.OPEN] and len(recall[0].findings) == 1


def test_a_decided_remedy_under_way_collects_repeated_breaches(world: tuple[Populated, Clock]) -> None:
    populated, _ = world
    _submit(world, FRAUD[3])
    incident = _incident(populated)
    _to_validated(populated.ledger, incident.id)
    transition(populated.ledger, incident.id, "decide", key_of("anna.schmidt"), "retrain", ["retrain"])
    _submit(world, FRAUD[4])
    again = _incident(populated)
    assert again.state is State.DECIDED and len(again.findings) == 2


def test_owner_scope_holds_for_every_action_and_reopening_needs_a_validator(world: tuple[Populated, Clock]) -> None:
    populated, _ = world
    ledger = populated.ledger
    _submit(world, FRAUD[3])
    incident = _incident(populated)
    _to_validated(ledger, incident.id)
    transition(ledger, incident.id, "decide", key_of("anna.schmidt"), "retrain", ["retrain"])
    size = ledger.size()
    with pytest.raises(CharterError) as info:  # tom.berger is a model owner, but not of the fraud detector
        transition(ledger, incident.id, "resolve", key_of("tom.berger"), "done")
    assert info.value.code == "not_authorized" and "maria.keller" in str(info.value)
    transition(ledger, incident.id, "resolve", key_of("maria.keller"), "retrained")
    with pytest.raises(CharterError) as info:  # the first line cannot reopen its own resolved incident
        transition(ledger, incident.id, "reopen", key_of("maria.keller"), "again")
    assert info.value.code == "not_authorized"
    assert ledger.size() == size + 1
    transition(ledger, incident.id, "reopen", key_of("carla.rossi"), "complaint received")
    assert _incident(populated).state is State.OPEN


def test_only_the_tiers_decider_or_higher_may_decide(world: tuple[Populated, Clock], tmp_path: Path) -> None:
    populated, _ = world
    _graph(tmp_path, ("    must_reach: {critical: board, high: executive}",
                      "    must_reach: {critical: board, high: executive}\n    deciders: {high: executive}"))
    _submit(world, FRAUD[3])
    incident = _incident(populated)
    _activate(populated, tmp_path / "escalation.yaml")
    _to_validated(populated.ledger, incident.id)
    with pytest.raises(CharterError) as info:  # the band's committee is below the high tier's decider
        transition(populated.ledger, incident.id, "decide", key_of("anna.schmidt"), "retrain", ["retrain"])
    assert info.value.code == "not_authorized" and "executive" in str(info.value)
    transition(populated.ledger, incident.id, "decide", key_of("jonas.weber"), "retrain", ["retrain"])
    assert transition(populated.ledger, incident.id, "resolve", key_of("maria.keller"), "done")


def test_the_decider_may_not_be_the_validator_where_duties_are_separated(world: tuple[Populated, Clock],
                                                                         tmp_path: Path) -> None:
    populated, _ = world
    _graph(tmp_path, ("members: [anna.schmidt, david.osei, fatima.nowak]",
                      "members: [anna.schmidt, david.osei, fatima.nowak, carla.rossi]"))
    _submit(world, FRAUD[3])
    incident = _incident(populated)
    _activate(populated, tmp_path / "escalation.yaml")
    _to_validated(populated.ledger, incident.id)
    with pytest.raises(CharterError) as info:
        transition(populated.ledger, incident.id, "decide", key_of("carla.rossi"), "retrain", ["retrain"])
    assert info.value.code == "separation_of_duties"
    transition(populated.ledger, incident.id, "decide", key_of("anna.schmidt"), "retrain", ["retrain"])


def test_a_paged_role_removed_from_the_graph_is_reported_not_a_crash(world: tuple[Populated, Clock],
                                                                     tmp_path: Path) -> None:
    populated, clock = world
    _submit(world, FRAUD[3])
    tick(populated.ledger, GRAPH, clock.at("2026-05-02T19:00:00+00:00"), _Recorder())
    assert _incident(populated).escalated_to == ["risk_compliance"]
    renamed = _graph(tmp_path, *[("risk_compliance", "second_line")])
    report = tick(populated.ledger, renamed, clock.now, _Recorder())
    assert any("'risk_compliance' is no longer declared" in line for line in report.failed)
    _activate(populated, tmp_path / "escalation.yaml")
    transition(populated.ledger, _incident(populated).id, "acknowledge", key_of("maria.keller"), "seen")


def test_the_tick_refuses_a_now_ahead_of_the_ledger_clock(world: tuple[Populated, Clock]) -> None:
    populated, clock = world
    _submit(world, FRAUD[3])
    size = populated.ledger.size()
    with pytest.raises(CharterError) as info:
        tick(populated.ledger, GRAPH, clock.now + datetime.timedelta(days=3), _Recorder())
    assert info.value.code == "future_time" and populated.ledger.size() == size
    assert tick(populated.ledger, GRAPH, clock.now + datetime.timedelta(minutes=4), _Recorder()).notified


def test_a_reopened_incident_escalates_and_notifies_in_a_new_round(world: tuple[Populated, Clock]) -> None:
    populated, clock = world
    ledger = populated.ledger
    _submit(world, FRAUD[3])
    recorder = _Recorder()
    tick(ledger, GRAPH, clock.at("2026-05-02T19:00:00+00:00"), recorder)
    incident = _incident(populated)
    assert incident.level == 1
    clock.at("2026-05-20T00:00:00+00:00")  # resolved within the reopen window of the June submission
    _to_validated(ledger, incident.id)
    transition(ledger, incident.id, "decide", key_of("anna.schmidt"), "retrain", ["retrain"])
    transition(ledger, incident.id, "resolve", key_of("maria.keller"), "retrained")
    assert tick(ledger, GRAPH, clock.now, recorder).notified == []  # nobody is paged about a resolved incident
    _submit(world, FRAUD[4])  # the breach recurs: reopened, level back to 0
    reopened = _incident(populated)
    assert (reopened.state, reopened.level, reopened.escalated_to) == (State.OPEN, 0, [])
    report = tick(ledger, GRAPH, clock.at("2026-06-02T19:00:00+00:00"), recorder)  # 13 h after the reopening
    assert f"{incident.id} -> risk_compliance" in report.escalated and _incident(populated).level == 1
    assert f"notify:{incident.id}:1:0:maria.keller:0" in report.notified
    assert f"notify:{incident.id}:1:1:carla.rossi:0" in report.notified


def test_each_channel_is_recorded_on_its_own_so_a_retry_repeats_none(world: tuple[Populated, Clock],
                                                                     tmp_path: Path) -> None:
    populated, clock = world
    graph = _graph(tmp_path, ("    members: [maria.keller, tom.berger, li.wang]\n",
                              "    members: [maria.keller, tom.berger, li.wang]\n    channels: [{type: log}, "
                              "{type: webhook, target: 'http://127.0.0.1:9/hook'}]\n"))

    class WebhookDown(_Recorder):
        def send(self, channel: Any, recipient: str, message: dict[str, Any]) -> None:
            if channel.type == "webhook" and self.fail:
                raise DeliveryError("down")
            self.sent.append((recipient, message["key"]))

    _submit(world, FRAUD[3])
    first = WebhookDown(fail=True)
    report = tick(populated.ledger, graph, clock.now, first)
    assert [k.rsplit(":", 1)[1] for _, k in first.sent] == ["0"] and len(report.failed) == 1
    second = WebhookDown()
    tick(populated.ledger, graph, clock.now, second)
    assert [k.rsplit(":", 1)[1] for _, k in second.sent] == ["1"]  # only the webhook, the log line is not repeated


def test_channels_need_a_real_webhook_url_and_bad_urls_fail_as_deliveries(tmp_path: Path) -> None:
    from charter.escalation import Channel

    for target in (None, "file:///etc/passwd", "ftp://host/x", "http://"):
        with pytest.raises(ValueError, match="http"):
            Channel(type="webhook", target=target)
    malformed = Channel.model_construct(type="webhook", target="http://[::1")
    with pytest.raises(DeliveryError):
        ChannelNotifier(tmp_path / "n.log").send(malformed, "x", {"key": "k"})


def test_durations_and_timeout_factors_are_bounded(tmp_path: Path) -> None:
    from charter.policy.model import _parse_duration

    with pytest.raises(ValueError, match="at most"):
        _parse_duration("P3651D")
    with pytest.raises(ValueError):
        _parse_duration("P99999999999D")
    assert _parse_duration("P3650D") == datetime.timedelta(days=3650)
    with pytest.raises(CharterError) as info:
        _graph(tmp_path, ("timeout_factor: 0.5", "timeout_factor: 0.0001"))
    assert info.value.code == "escalation_schema"
