"""Re-deriving what breaches caused, offline: incident openings, attachments and automatic reopens.

`charter audit` re-derives every finding of an export; `IncidentAuditor` re-derives what those
findings caused when they were submitted. It walks the export once in seq order, alongside the
audit's replay, keeping the incident book as the recorded incident entries fold it
(`incidents.apply`) and the escalation configuration and systems in force (`incidents.InForce`, as
`charter verify` reads them). For each submission it asks `incidents.incident_entries` (the rule
`charter submit` applies) what the re-derived breaches open, attach or reopen, timed by the
submission's recorded ``received_at``, and compares that with the incident entries recorded in the
submission's transaction: type, incident, deadline, escalation chain, severity, tier, finding
reference. An opening, attachment or automatic reopen that no submission caused is a difference too.
Human transitions, waivers, classifications and filings are judged by `incidents.transition_problems`.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .incidents import (
    AUTOMATIC,
    FINDING_ATTACHED,
    INCIDENT_TYPES,
    OPENED,
    TRANSITION,
    Incident,
    IncidentBook,
    InForce,
    Waiver,
    apply,
    incident_entries,
)
from .ledger.records import Entry, LedgerReader, NewEntry, format_time

if TYPE_CHECKING:
    from collections.abc import Iterator

#: what a submission's breach causes, by entry type (a transition caused by one is always a reopen)
_LABELS = {OPENED: "opening", FINDING_ATTACHED: "attachment", TRANSITION: "reopen"}
_BUNDLE, _EVALUATION, _FINDING = "bundle", "evaluation", "finding"


@dataclass(frozen=True)
class IncidentDifference:
    """One incident entry a submission's re-derived findings do not give, or give otherwise.

    `kind` is ``missing_``, ``unexpected_`` or ``wrong_`` followed by ``opening``, ``attachment`` or
    ``reopen`` (``wrong_`` with the payload `fields` that differ), or ``malformed_entry``.
    """

    seq: int  # the recorded entry's; for a missing one, the submission's bundle
    bundle: int | None  # the submission's bundle seq; None for an entry no submission caused
    system: str
    incident: str
    kind: str
    fields: tuple[str, ...]
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"seq": self.seq, "bundle": self.bundle, "system": self.system, "incident": self.incident,
                "kind": self.kind, "fields": list(self.fields), "detail": self.detail}


class _Tentative(IncidentBook):
    """The book as one submission sees it while its entries are derived.

    `incident_entries` adds the incidents it opens to the book it is given, so a second breach of
    the same key in the batch attaches to them; here they stay in this overlay, and the audited book
    only ever holds what the recorded entries fold to.
    """

    def __init__(self, base: IncidentBook) -> None:
        super().__init__()
        self._base = base

    def latest_for(self, key: tuple[str, str, str | None]) -> Incident | None:
        """The incident opened in this batch, else the base book's."""
        return self._latest.get(key) or self._base.latest_for(key)

    def waiver_for(self, key: tuple[str, str, str | None], at: datetime.datetime) -> Waiver | None:
        """The base book's waiver (a submission grants none)."""
        return self._base.waiver_for(key, at)


def _automatic(entry: Entry) -> bool:
    """An entry only a submission writes: an opening, an attachment, or the log's own transition."""
    return entry.type in (OPENED, FINDING_ATTACHED) or (
        entry.type == TRANSITION and entry.payload.get("actor") == AUTOMATIC)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


#: how long before its recorded ``received_at`` a submission written before `Ledger.stamp` may have read
#: the clock it timed its incidents by (building a batch takes milliseconds; a minute is generous)
BUILD_CLOCK_GAP = datetime.timedelta(minutes=1)


@dataclass
class IncidentAuditor:
    """Walks a ledger's entries once, in seq order, re-deriving the incident entries of each submission.

    Call `submission` for every bundle in seq order (with its re-derived findings, or None when
    they could not be re-derived: its recorded entries are then folded unchecked), then `finish`.

    Args:
        ledger: the (verified) entries; only `entries()` is read, once.
    """

    ledger: LedgerReader
    differences: list[IncidentDifference] = field(default_factory=list)
    recorded: int = 0  # incident entries recorded by submissions (or automatic ones outside any)
    rederived: int = 0  # incident entries the re-derived findings give
    book: IncidentBook = field(default_factory=IncidentBook)
    in_force: InForce = field(default_factory=InForce)

    def __post_init__(self) -> None:
        self._entries: Iterator[Entry] = iter(self.ledger.entries())
        self._next: Entry | None = next(self._entries, None)

    def _take(self) -> Entry:
        entry = self._next
        assert entry is not None
        self._next = next(self._entries, None)
        return entry

    def _fold(self, entry: Entry) -> None:
        try:
            apply(self.book, entry)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a forged entry without its fields
            self.differences.append(IncidentDifference(
                entry.seq, None, entry.subject or "?", str(entry.payload.get("incident_id", "?")), "malformed_entry",
                (), f"the {entry.type} entry cannot be folded: {type(exc).__name__}: {exc}"))

    def _outside(self, entry: Entry) -> None:
        """An entry of no submission's transaction."""
        if self.in_force.fold(entry) or entry.type not in INCIDENT_TYPES:
            return
        if _automatic(entry):
            self.recorded += 1
            label = _LABELS[entry.type]
            self.differences.append(IncidentDifference(
                entry.seq, None, entry.subject or "?", str(entry.payload.get("incident_id", "?")),
                f"unexpected_{label}", (), f"an automatic {label} that no submission caused: only a submission's "
                "breach opens, attaches to or reopens an incident, in the submission's own transaction"))
        self._fold(entry)

    def _caused(self, bundle: Entry, entry: Entry, incident_seen: bool) -> bool:
        """Whether `entry` belongs to the transaction of the submission of `bundle` (which follows it in order)."""
        if entry.subject != bundle.subject:
            return False
        if entry.type == _EVALUATION and not incident_seen:
            return bool((entry.payload.get("bundle") or {}).get("seq") == bundle.seq)
        if entry.type == _FINDING and not incident_seen:
            refs = entry.payload.get("refs") or {}
            return bool((refs.get("bundle") or {}).get("seq") == bundle.seq)
        return _automatic(entry)

    def submission(self, seq: int, breaches: Sequence[tuple[int, dict[str, Any]]] | None) -> None:
        """Check the incident entries of the submission whose bundle is at `seq`.

        Args:
            seq: the bundle's seq; bundles must come in seq order.
            breaches: (index among the bundle's findings, finding as JSON) of every re-derived breach;
                None when the findings could not be re-derived.
        """
        while self._next is not None and self._next.seq < seq:
            self._outside(self._take())
        if self._next is None or self._next.seq != seq or self._next.type != _BUNDLE:
            raise ValueError(f"no bundle at seq {seq}, or bundles out of order")
        bundle = self._take()
        findings: list[Entry] = []
        caused: list[Entry] = []
        while self._next is not None and self._caused(bundle, self._next, bool(caused)):
            entry = self._take()
            if entry.type == _FINDING:
                findings.append(entry)
            elif entry.type != _EVALUATION:
                caused.append(entry)
        self.recorded += len(caused)
        if breaches is not None:
            self._compare(bundle, findings, caused, breaches)
        for entry in caused:
            self._fold(entry)

    def finish(self) -> list[IncidentDifference]:
        """Walk the entries after the last bundle; the differences, in seq order."""
        while self._next is not None:
            self._outside(self._take())
        self.differences.sort(key=lambda d: d.seq)
        return self.differences

    def _expected(self, bundle: Entry, findings: list[Entry], breaches: Sequence[tuple[int, dict[str, Any]]],
                  received_at: str | None = None) -> list[NewEntry]:
        system = self.in_force.systems.get(str(bundle.payload.get("system_id")))
        graph = self.in_force.graph
        if not breaches or system is None or graph is None:
            return []  # a submission needs both; without them it could open nothing

        def finding_ref(_done: Any, index: int) -> dict[str, Any]:
            # the recorded finding entry at the breach's position (the reference the submission wrote)
            if index < len(findings):
                return {"seq": findings[index].seq, "record_hash": findings[index].record_hash.hex()}
            return {"seq": None, "record_hash": None}

        at = datetime.datetime.fromisoformat((received_at or bundle.received_at).replace("Z", "+00:00"))
        return incident_entries(_Tentative(self.book), graph, system, breaches, at, finding_ref)

    def _within_clock_gap(self, bundle: Entry, findings: list[Entry], breaches: Sequence[tuple[int, dict[str, Any]]],
                          entry: Entry) -> bool:
        """Whether `entry`'s deadline is one a submission written before incidents were timed by the recorded
        ``received_at`` (`Ledger.stamp`) could have stored: those read the clock while building the batch,
        at most `BUILD_CLOCK_GAP` before their own was received, so their deadline lies between the
        deadlines of those moments. Only an earlier (stricter) deadline can pass this way; a later one, or
        one outside that window, is still a difference."""
        if not isinstance(entry.payload.get("deadline"), dict):
            return False
        received = datetime.datetime.fromisoformat(bundle.received_at.replace("Z", "+00:00"))
        # Not bounded by the previous entry's received_at: clocks can lag it (`Ledger.append` takes the later).
        floor = format_time(received - BUILD_CLOCK_GAP)
        early = [(new.type, new.payload(findings) if callable(new.payload) else new.payload)
                 for new in self._expected(bundle, findings, breaches, floor)]
        late = {_key(t, p): p for t, p in self._expected_payloads(bundle, findings, breaches)}
        low = next((p for t, p in early if t == entry.type and _key(t, p) == _key(entry.type, entry.payload)), None)
        high = late.get(_key(entry.type, entry.payload))
        recorded = entry.payload["deadline"]
        if low is None or high is None or not low.get("deadline") or not high.get("deadline"):
            return False
        same_step = low["deadline"].get("step") == high["deadline"].get("step") == recorded.get("step")
        due = str(recorded.get("due_at"))
        return bool(same_step and low["deadline"]["due_at"] <= due <= high["deadline"]["due_at"])

    def _expected_payloads(self, bundle: Entry, findings: list[Entry],
                           breaches: Sequence[tuple[int, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
        return [(new.type, new.payload(findings) if callable(new.payload) else new.payload)
                for new in self._expected(bundle, findings, breaches)]

    def _compare(self, bundle: Entry, findings: list[Entry], caused: list[Entry],
                 breaches: Sequence[tuple[int, dict[str, Any]]]) -> None:
        expected = self._expected_payloads(bundle, findings, breaches)
        self.rederived += len(expected)
        system = bundle.subject or "?"
        recorded: dict[tuple[Any, ...], list[Entry]] = {}
        for entry in caused:
            recorded.setdefault(_key(entry.type, entry.payload), []).append(entry)
        for entry_type, payload in expected:
            label = _LABELS[entry_type]
            found = recorded.get(_key(entry_type, payload))
            incident = str(payload.get("incident_id"))
            if not found:
                self.differences.append(IncidentDifference(
                    bundle.seq, bundle.seq, system, incident, f"missing_{label}", (),
                    f"{_cause(payload, label)}, but the submission recorded no such entry"))
                continue
            entry = found.pop(0)
            if entry.type != entry_type:
                kind = "unexpected_opening" if entry.type == OPENED else f"missing_{label}"
                self.differences.append(IncidentDifference(
                    entry.seq, bundle.seq, system, incident, kind, ("type",),
                    f"{_cause(payload, label)}; the submission recorded an {_LABELS[entry.type]} "
                    f"(to {entry.payload.get('incident_id')}) instead"))
                continue
            names = tuple(sorted(k for k in set(payload) | set(entry.payload)
                                 if payload.get(k) != entry.payload.get(k)))
            if names == ("deadline",) and self._within_clock_gap(bundle, findings, breaches, entry):
                continue  # timed by the clock while the batch was built, as submissions did before `Ledger.stamp`
            if names:
                shown = "; ".join(f"{k}: recorded {_show(entry.payload.get(k))}, re-derived {_show(payload.get(k))}"
                                  for k in names)
                self.differences.append(IncidentDifference(
                    entry.seq, bundle.seq, system, str(entry.payload.get("incident_id", incident)), f"wrong_{label}",
                    names, shown))
        for entries in recorded.values():
            for entry in entries:
                label = _LABELS[entry.type]
                self.differences.append(IncidentDifference(
                    entry.seq, bundle.seq, system, str(entry.payload.get("incident_id", "?")), f"unexpected_{label}",
                    (), f"the submission recorded an {label} that its re-derived findings do not cause"))


def _key(entry_type: str, payload: dict[str, Any]) -> tuple[Any, ...]:
    """How an expected entry is matched with a recorded one: a breach's by its finding, a reopen by its incident."""
    if entry_type == TRANSITION:
        return ("reopen", str(payload.get("incident_id")), str(payload.get("action")))
    ref = payload.get("finding")
    return ("finding", ref.get("seq") if isinstance(ref, dict) else None)


def _cause(payload: dict[str, Any], label: str) -> str:
    ref = payload.get("finding")
    seq = ref.get("seq") if isinstance(ref, dict) else None
    what = {"opening": "opens", "attachment": "attaches to", "reopen": "reopens"}[label]
    by = f"the breach of finding seq {seq}" if seq is not None else "a recurring breach"
    return f"{by} {what} {payload.get('incident_id')}"
