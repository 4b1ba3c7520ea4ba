"""Deadlines and notifications: the escalation tick, and the channels people are notified on.

`tick` is idempotent and stateless: everything it needs is in the ledger. It escalates every
incident whose stage deadline has passed to the next role of the escalation plan, then notifies
every recipient of an undecided incident not yet notified. A delivery is recorded in the ledger
under the idempotency key (incident, round, level, recipient, channel) after it succeeded, so running
the tick twice never notifies twice, and a failing channel is retried by the next tick without
repeating the channels that worked (the key travels with the message, so a receiver can drop the
rare duplicate of a crash between delivery and record). A reopened incident starts a new round.
A serious incident (EU AI Act Art. 73) pages the reporting role until its first report is filed,
whatever its state; `page_reporting` makes that page at once, when the incident is classified.

The tick refuses a `now` later than the ledger's clock (beyond a small tolerance): escalation
times are ledger times, and a clock running ahead would page people before their deadline.
"""

from __future__ import annotations

import datetime
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .errors import CharterError
from .escalation import Channel, EscalationGraph
from .incidents import ESCALATED, NOTIFIED, Incident, escalation_chain, load_book, stage_deadline
from .ledger.records import NewEntry, format_time
from .ledger.store import Ledger

#: how far `now` may run ahead of the ledger's clock (clocks of two hosts drift a little)
FUTURE_TOLERANCE = datetime.timedelta(minutes=5)


class DeliveryError(Exception):
    """A notification could not be delivered; the next tick tries again."""


class Notifier(Protocol):
    """Delivers one message to one recipient on one channel."""

    def send(self, channel: Channel, recipient: str, message: dict[str, Any]) -> None:
        """Deliver, or raise `DeliveryError`."""


class ChannelNotifier:
    """Delivers by channel type: ``log`` appends a JSON line to a file, ``webhook`` POSTs JSON.

    Args:
        log_file: where ``log`` channels without a target write.
        timeout: seconds a webhook may take.
    """

    def __init__(self, log_file: Path, timeout: float = 5.0) -> None:
        self.log_file = log_file
        self.timeout = timeout

    def send(self, channel: Channel, recipient: str, message: dict[str, Any]) -> None:
        """Deliver `message` to `recipient` on `channel`."""
        record = {**message, "recipient": recipient}
        if channel.type == "log":
            path = Path(channel.target) if channel.target else self.log_file
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record, sort_keys=True) + "\n")
            except OSError as exc:
                raise DeliveryError(f"log {path}: {exc.strerror}") from exc
            return
        if not channel.target:
            raise DeliveryError("a webhook channel needs a target URL")
        try:
            request = urllib.request.Request(channel.target, data=json.dumps(record).encode(), method="POST",
                                             headers={"Content-Type": "application/json",
                                                      "Idempotency-Key": message["key"]})
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                if response.status >= 300:
                    raise DeliveryError(f"webhook answered {response.status}")
        except (urllib.error.URLError, OSError, ValueError, TypeError) as exc:  # ValueError: a malformed URL
            raise DeliveryError(f"webhook {channel.target}: {exc}") from exc


@dataclass
class TickReport:
    """What one tick did."""

    escalated: list[str] = field(default_factory=list)
    notified: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _chain(graph: EscalationGraph, incident: Incident) -> list[tuple[str, datetime.timedelta]]:
    """The incident's pinned escalation chain (computed from the graph only for incidents without one)."""
    pinned = incident.chain or [(role, after) for role, after in escalation_chain(graph, incident.severity,
                                                                                  incident.tier)]
    return [(role, datetime.timedelta(seconds=after)) for role, after in pinned]


def due_escalations(graph: EscalationGraph, incident: Incident, now: datetime.datetime) -> list[dict[str, Any]]:
    """The escalation levels an incident has become due for by `now` and has not had yet."""
    deadline = stage_deadline(graph, incident)
    if deadline is None:
        return []
    stage, due = deadline
    chain = _chain(graph, incident)
    levels = []
    for level in range(incident.level, len(chain)):
        role, after = chain[level]
        at = due + after
        if now < at:
            break
        levels.append({"incident_id": incident.id, "level": level + 1, "role": role,
                       "reason": f"{stage} was due {format_time(due)}; nobody acted"})
    return levels


def recipients(graph: EscalationGraph, incident: Incident) -> list[tuple[int, str, str]]:
    """Everyone an incident should have reached so far: (level, role, principal).

    While the incident is undecided: its owner (or the entry role) and the roles escalation paged.
    While a serious incident awaits its first Art. 73 report, whatever its state: the reporting
    role, at level 0 (its validator's classification pages it at once, not the chain). A paged role
    that escalation.yaml no longer declares has nobody to reach; `tick` reports it.
    """
    roles = graph.config.roles
    out: list[tuple[int, str, str]] = []
    if incident.active:
        entry = graph.config.entry
        owner_first = [incident.owner] if incident.owner in roles[entry].members else list(roles[entry].members)
        out += [(0, entry, person) for person in owner_first]
    regulatory = graph.config.regulatory
    if regulatory and incident.awaiting_report:
        out += [(0, regulatory.role, person) for person in roles[regulatory.role].members]
    if incident.active:
        for level, role in enumerate(incident.escalated_to, start=1):
            out += [(level, role, person) for person in (roles[role].members if role in roles else ())]
    return out


def notification_key(incident: Incident, level: int, person: str, channel: int) -> str:
    """The idempotency key of one delivery: incident, escalation round, level, recipient, channel."""
    return f"notify:{incident.id}:{incident.reopen_count}:{level}:{person}:{channel}"


def tick(ledger: Ledger, graph: EscalationGraph, now: datetime.datetime, notifier: Notifier) -> TickReport:
    """Escalate overdue incidents and notify everyone not yet notified. Safe to run any number of times.

    Raises:
        CharterError: `now` is later than the ledger's clock by more than `FUTURE_TOLERANCE`.
    """
    ledger_now = ledger.clock()
    if now > ledger_now + FUTURE_TOLERANCE:
        raise CharterError.single("future_time", f"--now {format_time(now)} is ahead of the ledger's clock "
                                  f"{format_time(ledger_now)}; escalating early would page people before their "
                                  "deadline")
    report = TickReport()

    def build(_next_seq: int) -> list[NewEntry]:
        book = load_book(ledger)
        entries = []
        for incident in book.incidents.values():
            for due in due_escalations(graph, incident, now):
                entries.append(NewEntry(ESCALATED, {**due, "round": incident.reopen_count},
                                        f"escalate:{incident.id}:{incident.reopen_count}:{due['level']}",
                                        subject=incident.system_id))
                report.escalated.append(f"{incident.id} -> {due['role']}")
        return entries

    ledger.append(build)
    for incident in load_book(ledger).incidents.values():
        if not incident.active and not incident.awaiting_report:
            continue  # decided, resolved or closed, and no Art. 73 report outstanding: nobody needs paging
        for role in incident.escalated_to if incident.active else ():
            if role not in graph.config.roles:
                report.failed.append(f"{incident.id}: paged role {role!r} is no longer declared in escalation.yaml")
        _deliver(ledger, graph, incident, now, notifier, report)
    return report


def _deliver(ledger: Ledger, graph: EscalationGraph, incident: Incident, now: datetime.datetime, notifier: Notifier,
             report: TickReport, only_role: str | None = None) -> None:
    """Notify every recipient of `incident` (or only those of `only_role`) not yet notified, recording each delivery."""
    for level, role, person in recipients(graph, incident):
        if only_role is not None and role != only_role:
            continue
        for index, channel in enumerate(graph.config.roles[role].channels):
            key = notification_key(incident, level, person, index)
            if key in incident.notified:
                continue
            message: dict[str, Any] = {"key": key, "incident": incident.id, "system": incident.system_id,
                                       "rule": incident.rule, "segment": incident.segment,
                                       "severity": incident.severity.value, "state": incident.state.value,
                                       "level": level, "role": role, "title": incident.title}
            if incident.awaiting_report and graph.config.regulatory and role == graph.config.regulatory.role:
                assert incident.classification is not None
                message["serious_incident"] = {k: incident.classification[k] for k in (
                    "ground", "aware_at", "basis", "due_at")}
            try:
                notifier.send(channel, person, message)
            except DeliveryError as exc:
                report.failed.append(f"{key}: {exc}")
                continue
            try:
                ledger.append([NewEntry(NOTIFIED, {"incident_id": incident.id, "key": key, "level": level,
                                                   "role": role, "recipient": person, "channel": channel.type,
                                                   "sent_at": format_time(now)}, key, subject=incident.system_id)])
            except CharterError:
                continue  # another tick recorded it first
            report.notified.append(key)


def page_reporting(ledger: Ledger, graph: EscalationGraph, incident_id: str, notifier: Notifier) -> TickReport:
    """Page the Art. 73 reporting role about a serious incident at once, as of the ledger's clock.

    The same deliveries `tick` makes, under the same idempotency keys: a later tick repeats none of
    them and retries the ones that failed. Nothing happens for an incident not awaiting a report.
    """
    report = TickReport()
    incident = load_book(ledger).incidents.get(incident_id)
    regulatory = graph.config.regulatory
    if incident is not None and regulatory is not None and incident.awaiting_report:
        _deliver(ledger, graph, incident, ledger.clock(), notifier, report, regulatory.role)
    return report
