"""Deadlines and notifications: the escalation tick, and the channels people are notified on.

`tick` is idempotent and stateless: everything it needs is in the ledger. It escalates every
incident whose stage deadline has passed to the next role of the escalation plan, then notifies
every recipient not yet notified. A notification is recorded in the ledger under the idempotency
key (incident, level, recipient) after it was delivered, so running the tick twice never notifies
twice; a delivery that fails is retried by the next tick (the key travels with the message, so a
receiver can drop the rare duplicate of a crash between delivery and record).
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
from .ledger.store import Ledger, NewEntry, format_time


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
        request = urllib.request.Request(channel.target, data=json.dumps(record).encode(), method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "Idempotency-Key": message["key"]})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                if response.status >= 300:
                    raise DeliveryError(f"webhook answered {response.status}")
        except (urllib.error.URLError, OSError) as exc:
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
    """Everyone an incident should have reached so far: (level, role, principal)."""
    entry = graph.config.entry
    owner_first = [incident.owner] if incident.owner in graph.config.roles[entry].members else \
        list(graph.config.roles[entry].members)
    out = [(0, entry, person) for person in owner_first]
    regulatory = graph.config.regulatory
    if regulatory and incident.severity in regulatory.severities and incident.tier in regulatory.tiers:
        out += [(0, regulatory.role, person) for person in graph.config.roles[regulatory.role].members]
    for level, role in enumerate(incident.escalated_to, start=1):
        out += [(level, role, person) for person in graph.config.roles[role].members]
    return out


def tick(ledger: Ledger, graph: EscalationGraph, now: datetime.datetime, notifier: Notifier) -> TickReport:
    """Escalate overdue incidents and notify everyone not yet notified. Safe to run any number of times."""
    report = TickReport()

    def build(_next_seq: int) -> list[NewEntry]:
        book = load_book(ledger)
        entries = []
        for incident in book.incidents.values():
            for due in due_escalations(graph, incident, now):
                entries.append(NewEntry(ESCALATED, due, f"escalate:{incident.id}:{due['level']}",
                                        subject=incident.system_id))
                report.escalated.append(f"{incident.id} -> {due['role']}")
        return entries

    ledger.append(build)
    for incident in load_book(ledger).incidents.values():
        if not incident.active and not incident.escalated_to:
            continue
        for level, role, person in recipients(graph, incident):
            key = f"notify:{incident.id}:{level}:{person}"
            if key in incident.notified:
                continue
            message = {"key": key, "incident": incident.id, "system": incident.system_id, "rule": incident.rule,
                       "segment": incident.segment, "severity": incident.severity.value, "state": incident.state.value,
                       "level": level, "role": role, "title": incident.title}
            try:
                for channel in graph.config.roles[role].channels:
                    notifier.send(channel, person, message)
            except DeliveryError as exc:
                report.failed.append(f"{key}: {exc}")
                continue
            try:
                ledger.append([NewEntry(NOTIFIED, {"incident_id": incident.id, "key": key, "level": level,
                                                   "role": role, "recipient": person, "sent_at": format_time(now)},
                                        key, subject=incident.system_id)])
            except CharterError:
                continue  # another tick recorded it first
            report.notified.append(key)
    return report
