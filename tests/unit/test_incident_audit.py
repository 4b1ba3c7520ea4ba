"""`charter audit` re-derives the incidents breaches caused: a tamper matrix on SQLite and PostgreSQL.

Each forgery is written by an insider holding the log key: a submission whose incident entries a
patched writer changed (`incident_entries` wrapped), or entries appended outside any submission with
the store's authority check skipped (`unchecked`). Every receipt and checkpoint is the log's own, so
the export verifies; only re-deriving the incidents from the re-derived findings can tell, and
`charter audit` names each forgery with its seq (exit 1).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import charter.submission
from charter.audit import ExportedLedger, audit, can_fork, read_export, verify_export
from charter.incidents import AUTOMATIC, FINDING_ATTACHED, OPENED, TRANSITION, State, load_book, transition
from charter.ledger import export_ledger, verify_ledger
from charter.ledger.records import NewEntry
from charter.submission import submit_bundle
from tests.conftest import REPO, run_cli
from tests.unit.ledger.helpers import CATALOG, COMPILER, Populated, key_of, populate, unchecked

FRAUD = sorted((REPO / "evidence").glob("fraud-detector-*.json"))
CLAIMS = REPO / "evidence" / "claims-approval-2026-05.json"
RECALL = "core.performance/recall-floor"


@dataclasses.dataclass(frozen=True)
class Call:
    """What the patched writer's `incident_entries` was called with: the finding references and breaches."""

    finding_ref: Any
    breaches: set[int]  # the indices of the submission's breach findings


Tamper = Callable[[list[NewEntry], Call], list[NewEntry]]


class Clock:
    """A clock the test sets: each submission arrives when its bundle was measured."""

    def __init__(self) -> None:
        self.now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

    def __call__(self) -> datetime.datetime:
        return self.now


@dataclasses.dataclass
class World:
    populated: Populated
    clock: Clock
    tmp: Path

    @property
    def ledger(self) -> Any:
        return self.populated.ledger

    def submit(self, path: Path, tamper: Tamper | None = None, monkeypatch: pytest.MonkeyPatch | None = None) -> int:
        """Submit a bundle (through a writer whose incident entries `tamper` changes); the bundle's seq."""
        text = path.read_bytes()
        owner = self.populated.owner_keys["tom.berger" if path == CLAIMS else "maria.keller"]
        self.clock.now = datetime.datetime.fromisoformat(json.loads(text)["measured_at"])
        if tamper is None:
            result = submit_bundle(self.ledger, text, CATALOG, key=owner)
            return int(result.bundle_entry.seq)
        assert monkeypatch is not None
        honest = charter.submission.incident_entries

        def forged(book: Any, graph: Any, system: Any, findings: Any, at: Any, finding_ref: Any) -> list[NewEntry]:
            findings = list(findings)
            return tamper(honest(book, graph, system, findings, at, finding_ref),
                          Call(finding_ref, {index for index, _ in findings}))

        with monkeypatch.context() as patch, unchecked():
            patch.setattr(charter.submission, "incident_entries", forged)
            result = submit_bundle(self.ledger, text, CATALOG, key=owner)
        return int(result.bundle_entry.seq)

    def recall_incident(self) -> Any:
        return next(i for i in load_book(self.ledger).incidents.values() if i.rule == RECALL)

    def resolve(self, incident_id: str) -> None:
        """Investigate, validate, decide and resolve, by the people allowed to (13 days before June's bundle)."""
        self.clock.now = datetime.datetime(2026, 5, 20, tzinfo=datetime.UTC)
        for action, who, extra in [("investigate", "maria.keller", ()), ("validate", "carla.rossi", ()),
                                   ("decide", "anna.schmidt", ("retrain",)), ("resolve", "maria.keller", ())]:
            transition(self.ledger, incident_id, action, key_of(who), action, extra)

    def entries(self, entry_type: str) -> list[Any]:
        return list(self.ledger.entries(types=(entry_type,)))

    def audited(self) -> tuple[int, dict[str, Any]]:
        """`charter audit` on the ledger's export, pinned to the log key: (exit code, JSON report)."""
        # the forgery is the log's own: integrity holds
        assert verify_ledger(self.ledger, self.populated.log_key.public).ok
        export_ledger(self.ledger, self.tmp / "export")
        key = base64.b64encode(self.populated.log_key.public).decode()
        result = run_cli("audit", str(self.tmp / "export"), "--log-key", key, "--format", "json", cwd=self.tmp)
        assert "Traceback" not in result.stderr, result.stderr
        report = json.loads(result.stdout)
        assert report["integrity"]["ok"] and report["verdicts_differing"] == 0 and not report["unauthorized"]
        return result.returncode, report


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> World:
    populated = populate(db_url, bundles=0)
    clock = Clock()
    populated.ledger.clock = clock
    return World(populated, clock, tmp_path)


def _changed(new: NewEntry, **changes: Any) -> NewEntry:
    """`new` with its payload fields changed (the payload may be a function of the entries appended so far)."""
    payload = new.payload

    def build(done: Any) -> Any:
        made = payload(done) if callable(payload) else payload
        return {**made, **changes}

    return dataclasses.replace(new, payload=build)


def _resolved_then_recurring(world: World) -> str:
    world.submit(FRAUD[3])  # April: recall breaches, an incident opens
    incident = world.recall_incident()
    world.resolve(incident.id)
    return str(incident.id)


# -- the untouched ledger ---------------------------------------------------------------------------


def test_an_untouched_ledger_re_derives_every_incident_entry(world: World) -> None:
    incident = _resolved_then_recurring(world)
    world.submit(FRAUD[4])  # May, within the reopen window: reopened, the breach attached
    world.submit(FRAUD[5])  # June: attached
    assert world.recall_incident().reopen_count == 1
    kinds = {(e.type, e.payload.get("action")) for e in world.ledger.entries(types=(OPENED, FINDING_ATTACHED,
                                                                                     TRANSITION))
             if e.payload.get("actor", AUTOMATIC) == AUTOMATIC and e.payload.get("incident_id") == incident}
    assert kinds == {(OPENED, None), (FINDING_ATTACHED, None), (TRANSITION, "reopen")}
    code, report = world.audited()
    assert code == 0 and report["incidents_differing"] == 0 and report["incident_differences"] == []
    assert report["incident_entries_stored"] == report["incident_entries_rederived"] >= 4


# -- the tamper matrix ------------------------------------------------------------------------------


def _only(report: dict[str, Any]) -> dict[str, Any]:
    differences = report["incident_differences"]
    assert len(differences) == 1, differences
    return dict(differences[0])


def test_a_dropped_opening_is_named(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    dropped: list[str] = []

    def drop(entries: list[NewEntry], _call: Call) -> list[NewEntry]:
        first = next(e for e in entries if e.type == OPENED)
        dropped.append(first.submission_id.removeprefix("open:"))
        return [e for e in entries if e is not first]

    bundle = world.submit(FRAUD[3], drop, monkeypatch)
    code, report = world.audited()
    assert code == 1 and report["exit_code"] == 1
    difference = _only(report)
    assert (difference["seq"], difference["bundle"], difference["incident"], difference["kind"]) == (
        bundle, bundle, dropped[0], "missing_opening")
    key = base64.b64encode(world.populated.log_key.public).decode()
    text = run_cli("audit", str(world.tmp / "export"), "--log-key", key, cwd=world.tmp)
    row = next(line for line in text.stdout.splitlines() if dropped[0] in line)
    assert text.returncode == 1 and "missing opening" in row
    assert [cell.strip() for cell in row.split("│")[1:3]] == [str(bundle)] * 2  # seq, bundle seq
    assert "incident entries differing" in text.stdout


def test_an_opening_without_a_breach_is_named(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    def invent(entries: list[NewEntry], call: Call) -> list[NewEntry]:
        opening = next(e for e in entries if e.type == OPENED)
        made, passing = opening.payload, min(set(range(len(call.breaches) + 1)) - call.breaches)
        assert callable(made)
        # an incident opened on a finding that does not breach: nobody's breach caused it
        return [*entries, NewEntry(OPENED, lambda done: {**made(done), "incident_id": "INC-f0f0f0f0",
                                                         "finding": call.finding_ref(done, passing)},
                                   "open:INC-f0f0f0f0", subject=opening.subject)]

    bundle = world.submit(FRAUD[3], invent, monkeypatch)
    forged = next(e for e in world.entries(OPENED) if e.payload["incident_id"] == "INC-f0f0f0f0")
    assert world.ledger.entry(forged.payload["finding"]["seq"]).payload["status"] != "breach"
    code, report = world.audited()
    assert code == 1
    assert _only(report) | {"detail": None} == {"seq": forged.seq, "bundle": bundle, "system": "fraud-detector",
                                                "incident": "INC-f0f0f0f0", "kind": "unexpected_opening",
                                                "fields": [], "detail": None}


def test_a_finding_attached_to_another_incident_is_named(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.submit(CLAIMS)  # another system's incidents
    world.submit(FRAUD[3])
    recall = world.recall_incident().id
    other = next(i.id for i in load_book(world.ledger).incidents.values() if i.system_id == "claims-approval")

    def misattach(entries: list[NewEntry], _call: Call) -> list[NewEntry]:
        return [_changed(e, incident_id=other) if e.type == FINDING_ATTACHED and e.submission_id.startswith(
            f"attach:{recall}:") else e for e in entries]

    bundle = world.submit(FRAUD[4], misattach, monkeypatch)
    attached = next(e for e in world.entries(FINDING_ATTACHED) if e.payload["incident_id"] == other)
    code, report = world.audited()
    assert code == 1
    difference = _only(report)
    assert (difference["seq"], difference["bundle"], difference["incident"], difference["kind"],
            difference["fields"]) == (attached.seq, bundle, other, "wrong_attachment", ["incident_id"])
    assert recall in difference["detail"] and other in difference["detail"]


def test_a_removed_automatic_reopen_is_named(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    incident = _resolved_then_recurring(world)
    bundle = world.submit(FRAUD[4], lambda entries, _call: [e for e in entries if e.type != TRANSITION], monkeypatch)
    assert world.recall_incident().state is State.RESOLVED  # nobody investigates the recurrence
    code, report = world.audited()
    assert code == 1
    difference = _only(report)
    assert (difference["seq"], difference["bundle"], difference["incident"], difference["kind"]) == (
        bundle, bundle, incident, "missing_reopen")


@pytest.mark.parametrize(("field", "value"), [
    ("deadline", {"step": "acknowledge", "due_at": "2026-12-31T00:00:00.000Z"}),
    ("severity", "low"),
])
def test_a_changed_opening_is_named_with_the_field(world: World, monkeypatch: pytest.MonkeyPatch, field: str,
                                                   value: Any) -> None:
    def change(entries: list[NewEntry], _call: Call) -> list[NewEntry]:
        return [_changed(e, **{field: value}) if e.type == OPENED else e for e in entries]

    bundle = world.submit(FRAUD[3], change, monkeypatch)
    openings = [e for e in world.entries(OPENED)]
    code, report = world.audited()
    assert code == 1
    assert [(d["seq"], d["bundle"], d["incident"], d["kind"], d["fields"]) for d in report["incident_differences"]] \
        == [(e.seq, bundle, e.payload["incident_id"], "wrong_opening", [field]) for e in openings]
    assert f"{field}: recorded" in report["incident_differences"][0]["detail"]


def test_an_automatic_reopen_no_submission_caused_is_named(world: World) -> None:
    incident = _resolved_then_recurring(world)
    honest = next(e for e in world.entries(OPENED) if e.payload["incident_id"] == incident)
    reopen = {"incident_id": incident, "action": "reopen", "from": "resolved", "to": "open", "actor": AUTOMATIC,
              "role": "system", "note": "the breach recurred within the reopen window",
              "deadline": honest.payload["deadline"]}
    with unchecked():
        forged = world.ledger.append([NewEntry(TRANSITION, reopen, f"reopen:{incident}:forged",
                                               subject="fraud-detector")])[0]
    code, report = world.audited()
    assert code == 1
    difference = _only(report)
    assert (difference["seq"], difference["bundle"], difference["incident"], difference["kind"]) == (
        forged.seq, None, incident, "unexpected_reopen")
    assert "no submission caused" in difference["detail"]


def test_the_library_result_matches_the_cli(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.submit(FRAUD[3], lambda entries, _call: [e for e in entries if e.type != OPENED], monkeypatch)
    export_ledger(world.ledger, world.tmp / "export")
    export = read_export(world.tmp / "export")
    assert verify_export(export, world.populated.log_key.public).ok
    view = ExportedLedger(export.entries, export.origin, export.parsed)
    result = audit(view, CATALOG, COMPILER)
    assert result.incident_differences and {d.kind for d in result.incident_differences} == {"missing_opening"}
    assert result.incident_entries_stored == 0 < result.incident_entries_rederived
    if can_fork():  # replay split between forked workers: the incident walk sees the same breaches
        assert audit(view, CATALOG, COMPILER, jobs=2, parallel_from=1).to_dict() == result.to_dict()


# -- the time incidents are judged at ------------------------------------------------------------------


def test_incidents_are_timed_by_the_recorded_received_at(db_url: str) -> None:
    """A clock that moves on every reading (`StepClock`) still gives deadlines the entries' own time explains."""
    from charter.authority import active_escalation
    from charter.incidents import deadline_for
    from charter.vocabulary import RiskTier, Severity

    populated = populate(db_url, bundles=4)
    ledger = populated.ledger
    graph, _ = active_escalation(ledger)
    openings = list(ledger.entries(types=(OPENED,)))
    assert openings
    for opening in openings:
        at = datetime.datetime.fromisoformat(opening.received_at.replace("Z", "+00:00"))
        p = opening.payload
        assert p["deadline"] == deadline_for(graph, Severity(p["severity"]), RiskTier(p["tier"]), State.OPEN, at)
    with pytest.raises(RuntimeError, match="only known while append runs a builder"):
        ledger.stamp()


@pytest.mark.parametrize(("shift", "named"), [(-1, False), (-59, False), (-120, True), (1, True)])
def test_deadlines_timed_by_the_clock_while_building_pass_when_earlier_by_at_most_a_minute(
        world: World, monkeypatch: pytest.MonkeyPatch, shift: int, named: bool) -> None:
    """Ledgers written before `Ledger.stamp`: a submission timed its incidents by a clock reading taken while it
    built the batch, a little before its recorded received_at. Such a deadline is accepted; a later one, or one
    more than `BUILD_CLOCK_GAP` earlier, is still named."""
    def shifted(entries: list[NewEntry], _call: Call) -> list[NewEntry]:
        out = []
        for entry in entries:
            if entry.type != OPENED:
                out.append(entry)
                continue
            payload = entry.payload

            def build(done: Any, payload: Any = payload) -> Any:
                made = dict(payload(done) if callable(payload) else payload)
                due = datetime.datetime.fromisoformat(made["deadline"]["due_at"].replace("Z", "+00:00"))
                moved = (due + datetime.timedelta(seconds=shift)).isoformat(timespec="milliseconds")
                made["deadline"] = {**made["deadline"], "due_at": moved.replace("+00:00", "Z")}
                return made
            out.append(dataclasses.replace(entry, payload=build))
        return out

    world.submit(FRAUD[3], shifted, monkeypatch)
    code, report = world.audited()
    kinds = {d["kind"] for d in report["incident_differences"]}
    assert (code, kinds) == ((1, {"wrong_opening"}) if named else (0, set())), report["incident_differences"]
