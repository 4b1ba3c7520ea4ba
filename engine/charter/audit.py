"""Semantic audit of an export: re-derive every recorded finding offline, after checking integrity.

``charter ledger export DIR`` writes the entries' exact bodies; the standalone verifier proves they
are the log's (hashes, chain, receipts, submitter signatures, checkpoints). That says nothing about
whether the findings the log recorded are the ones its policies give: someone holding the log key
could record a ``pass`` where the rules say ``breach``, and every signature would still verify.

`audit` closes that gap. It first verifies the export with the standalone verifier's own functions
(`auditor.read_export`, `auditor.Verifier`), and only over an export that verifies, replays
every bundle with `charter.submission.replay` (the same code `charter replay` runs on the database)
through `ExportedLedger`, a read-only view of the export that answers the two reads replay makes,
`entry(seq)` and `entries(start, stop, types=, subject=)`, from indexes built in one pass.
Alongside, `charter.incident_audit.IncidentAuditor` re-derives the incident openings, attachments
and automatic reopens each submission's re-derived breaches cause, in the same seq-order walk.
"""

from __future__ import annotations

import bisect
import heapq
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._collector import collector_paused
from ._sources import SourceMap
from .bundle import EvidenceBundle
from .errors import CharterError, Diagnostic
from .incident_audit import IncidentAuditor, IncidentDifference
from .ledger import auditor
from .ledger.auditor import SYSTEM_REGISTERED, Report, StoredEntry
from .ledger.hashing import leaf_hash
from .ledger.records import Entry
from .policy.compiler import PolicyCompiler, PolicySet
from .registry import AISystem
from .submission import BUNDLE, ReplayResult, replay

if TYPE_CHECKING:
    from .kpis import KpiCatalog

ENTRIES_FILE = "entries.jsonl"
TRUST_FILE = "trust_root.json"
_LINE = re.compile(r"line (\d+)")


@dataclass(frozen=True)
class ExportedEntry(Entry):
    """An entry of an export, its body parsed once (by the verifier, or `auditor.parse_canonical`)."""

    parsed: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def document(self) -> dict[str, Any]:
        """The parsed body (shared: do not modify it)."""
        return self.parsed

    @property
    def payload(self) -> dict[str, Any]:
        """The payload inside the body (shared: do not modify it)."""
        payload: dict[str, Any] = self.parsed["payload"]
        return payload


class ExportedLedger:
    """A read-only ledger over the entries of an export, indexed by type and subject.

    Every body is parsed once: by the verifier (`verify_export` keeps the bodies it parsed, and the
    view takes them from `parsed`), else when the view is built; lookups are a list index (`entry`) or a
    bisection into the per-type, per-subject or per-(type, subject) list of seqs (`entries`), so
    replaying every bundle reads each entry a bounded number of times rather than scanning.

    Args:
        stored: the export's entries in seq order (as `auditor.read_export` yields them); build the
            view only over entries that verified, since nothing here checks them.
        origin: the log's origin.
        parsed: the bodies of `stored` already parsed, in the same order (`Export.parsed`); shared, not copied.
    """

    def __init__(self, stored: Iterable[StoredEntry], origin: str,
                 parsed: Sequence[dict[str, Any]] | None = None) -> None:
        self.origin = origin
        self._entries: list[ExportedEntry] = []
        by_type: dict[str, list[int]] = defaultdict(list)
        by_subject: dict[str, list[int]] = defaultdict(list)
        by_both: dict[tuple[str, str], list[int]] = defaultdict(list)
        with collector_paused():  # tens of thousands of entries kept alive, none in cycles
            self._index(stored, parsed, by_type, by_subject, by_both)
        self._by_type = dict(by_type)
        self._by_subject = dict(by_subject)
        self._by_both = dict(by_both)

    def _index(self, stored: Iterable[StoredEntry], parsed: Sequence[dict[str, Any]] | None,
               by_type: dict[str, list[int]], by_subject: dict[str, list[int]],
               by_both: dict[tuple[str, str], list[int]]) -> None:
        for item in stored:
            if item.seq != len(self._entries):
                raise CharterError.single("export_malformed", f"expected seq {len(self._entries)}, found {item.seq}",
                                          file=ENTRIES_FILE)
            try:
                body = parsed[item.seq] if parsed is not None else auditor.parse_canonical(item.body)[0]
            except (ValueError, UnicodeDecodeError) as exc:
                raise CharterError.single("export_malformed", f"the body of entry {item.seq} is not JSON: {exc}",
                                          file=ENTRIES_FILE) from exc
            subject = body.get("subject")
            entry = ExportedEntry(item.seq, bytes.fromhex(str(body.get("prev", ""))), leaf_hash(item.body),
                                  item.body, str(body.get("type")), str(body.get("submission_id")),
                                  subject if isinstance(subject, str) else None,
                                  body.get("key_id") if isinstance(body.get("key_id"), str) else None,
                                  str(body.get("received_at")), item.receipt, item.range_receipt, parsed=body)
            self._entries.append(entry)
            by_type[entry.type].append(entry.seq)
            if entry.subject is not None:
                by_subject[entry.subject].append(entry.seq)
                by_both[(entry.type, entry.subject)].append(entry.seq)

    def size(self) -> int:
        """The number of entries."""
        return len(self._entries)

    def entry(self, seq: int) -> ExportedEntry | None:
        """The entry at `seq`, if any."""
        return self._entries[seq] if 0 <= seq < len(self._entries) else None

    def entries(self, start: int = 0, stop: int | None = None, *, types: Sequence[str] = (),
                subject: str | None = None) -> Iterator[ExportedEntry]:
        """Entries with ``start <= seq < stop`` of `types` (any if empty) and `subject` (any if None), in seq order.

        Lazy: a caller that stops after the first match pays for one bisection, not a scan.
        """
        stop = len(self._entries) if stop is None else min(stop, len(self._entries))
        start = max(start, 0)
        if start >= stop:
            return iter(())
        if not types:
            if subject is None:
                return iter(self._entries[start:stop])
            return self._walk(self._by_subject.get(subject, []), start, stop)
        if subject is None:
            lists = [self._by_type.get(t, []) for t in dict.fromkeys(types)]
        else:
            lists = [self._by_both.get((t, subject), []) for t in dict.fromkeys(types)]
        if len(lists) == 1:
            return self._walk(lists[0], start, stop)
        return (self._entries[seq] for seq in heapq.merge(*(self._seqs(s, start, stop) for s in lists)))

    def _walk(self, seqs: list[int], start: int, stop: int) -> Iterator[ExportedEntry]:
        return (self._entries[seq] for seq in self._seqs(seqs, start, stop))

    @staticmethod
    def _seqs(seqs: list[int], start: int, stop: int) -> Iterator[int]:
        low, high = bisect.bisect_left(seqs, start), bisect.bisect_left(seqs, stop)
        return (seqs[i] for i in range(low, high))

    def bundle_seqs(self) -> list[int]:
        """The seqs of every bundle entry, in order."""
        return list(self._by_type.get(BUNDLE, []))

    def bundle_seqs_by_subject(self) -> list[list[int]]:
        """The seqs of the bundle entries, one list per subject (bundles without a subject together), each in order."""
        groups = [list(seqs) for (kind, _), seqs in self._by_both.items() if kind == BUNDLE]
        unnamed = [seq for seq in self._by_type.get(BUNDLE, []) if self._entries[seq].subject is None]
        return [*groups, unnamed] if unnamed else groups


# -- reading and verifying an export ---------------------------------------------------------------


@dataclass
class Export:
    """An export directory read into memory: trust root, entries (bytes) and checkpoint notes.

    `parsed` holds every entry's body as `verify_export` parsed it, once a verification parsed them
    all (None before, or when one did not parse); `ExportedLedger` reuses them.
    """

    directory: Path
    origin: str
    public_key: bytes
    entries: list[StoredEntry]
    notes: list[str]
    parsed: list[dict[str, Any]] | None = None


def read_export(directory: Path) -> Export:
    """Read an export with the standalone verifier's reader, turning its errors into located `CharterError`s.

    Raises:
        CharterError: a missing directory or file, an unreadable trust root, a malformed line of
            entries.jsonl (with its line number).
    """
    import base64
    import json

    if not directory.is_dir():
        raise CharterError.single("file_not_found", "the export directory does not exist", file=str(directory))
    for name in (TRUST_FILE, ENTRIES_FILE):
        if not (directory / name).is_file():
            raise CharterError.single("file_not_found", "missing from the export (written by `charter ledger "
                                      "export`)", file=str(directory / name))
    try:
        trust, rows, notes = auditor.read_export(directory)
        origin = trust["origin"]
        public = base64.b64decode(str(trust["log_public_key"]), validate=True)
        if not isinstance(origin, str) or len(public) != 32:
            raise ValueError("origin must be a string and log_public_key a 32-byte Ed25519 key")
    except (OSError, ValueError, KeyError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError included
        raise CharterError.single("export_malformed", f"cannot read the trust root: {exc}",
                                  file=str(directory / TRUST_FILE)) from exc
    try:
        with collector_paused():  # tens of thousands of entries kept alive, none in cycles
            entries = list(rows)
    except (OSError, ValueError) as exc:
        found = _LINE.search(str(exc))
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        detail = str(cause) if not isinstance(cause, json.JSONDecodeError) else f"not JSON ({cause.msg})"
        raise CharterError.single("export_malformed", f"malformed entry line: {detail}",
                                  file=str(directory / ENTRIES_FILE),
                                  line=int(found.group(1)) if found else None) from exc
    return Export(directory, origin, public, entries, notes)


def verify_export(export: Export, public_key: bytes, notes: Sequence[str] = (),
                  progress: Callable[[int], None] | None = None) -> Report:
    """Verify the export's entries against the pinned `public_key` with the standalone verifier.

    Args:
        export: from `read_export`.
        public_key: the pinned log key (the export's own when the caller has none).
        notes: checkpoint notes: the export's and any the caller holds.
        progress: called now and then with the number of entries checked.

    Sets ``export.parsed`` to the bodies the verifier parsed when it parsed every one.
    """
    from .frameworks import builtin_control_catalog

    # The evidence rule judges what evidence cites against the catalogs Charter ships, as the store did.
    verifier = auditor.Verifier(export.origin, public_key, notes, controls=builtin_control_catalog)
    parsed: list[dict[str, Any]] = []
    complete = True
    with collector_paused():  # tens of thousands of parsed bodies kept alive, none in cycles
        for index, item in enumerate(export.entries):
            if progress is not None and index % 2000 == 0:
                progress(index)
            body = verifier.feed(item)
            if body is None:
                complete = False
            elif complete:
                parsed.append(body)
    report = verifier.finish()
    export.parsed = parsed if complete and len(parsed) == len(export.entries) else None
    if progress is not None:
        progress(len(export.entries))
    return report


# -- re-deriving verdicts ---------------------------------------------------------------------------


class _RecordedPolicyError(Exception):
    """A recorded policy version that the catalogs at hand cannot compile."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        super().__init__(diagnostics)
        self.diagnostics = tuple(diagnostics)


class _MemoCompiler(PolicyCompiler):
    """`PolicyCompiler` that compiles each recorded set of policy versions once.

    `replay` compiles the policy versions a bundle was judged by from their ledger entries; in an
    export those entries never change, so the set named by the same seqs compiles to the same result
    (the seqs are in the source names replay gives, ``ledger seq N``).
    """

    def __init__(self, base: PolicyCompiler) -> None:
        super().__init__(base.catalog, base.frameworks)
        self._done: dict[tuple[str, ...], PolicySet | _RecordedPolicyError] = {}

    def compile_documents(self, documents: Sequence[tuple[Any, SourceMap]]) -> PolicySet:
        key = tuple(smap.file for _, smap in documents)
        known = self._done.get(key)
        if known is None:
            try:
                known = super().compile_documents(documents)
            except CharterError as exc:
                known = _RecordedPolicyError(exc.diagnostics)
            self._done[key] = known
        if isinstance(known, _RecordedPolicyError):
            raise known
        return known


@dataclass(frozen=True)
class Difference:
    """One recorded verdict that the re-derivation does not give."""

    seq: int  # the bundle's
    system: str
    index: int | None  # the finding's position among the bundle's findings; None for the summary
    rule: str  # policy/rule
    segment: str | None
    stored: str  # the recorded status ("absent" when there is no such finding)
    rederived: str  # the re-derived status ("absent" likewise)
    fields: tuple[str, ...]  # the finding fields that differ

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"seq": self.seq, "system": self.system, "index": self.index, "rule": self.rule,
                "segment": self.segment, "stored": self.stored, "rederived": self.rederived,
                "fields": list(self.fields)}


@dataclass(frozen=True)
class Unreplayable:
    """A bundle whose findings could not be re-derived, and why."""

    seq: int
    code: str  # ``policy_uncompilable`` for a recorded policy the catalogs cannot compile
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"seq": self.seq, "code": self.code, "message": self.message}


@dataclass
class AuditResult:
    """What re-deriving every bundle's findings, and the incident entries they caused, found."""

    bundles: int = 0
    findings_stored: int = 0
    findings_rederived: int = 0
    differences: list[Difference] = field(default_factory=list)
    unreplayable: list[Unreplayable] = field(default_factory=list)
    #: incident transitions and waivers the escalation configuration then in force did not allow
    #: (`incidents.transition_problems`, as `charter verify` checks them)
    unauthorized: list[auditor.Problem] = field(default_factory=list)
    #: incident entries recorded by submissions (and automatic ones outside any), and re-derived
    incident_entries_stored: int = 0
    incident_entries_rederived: int = 0
    #: openings, attachments and automatic reopens the re-derived findings do not give (`charter.incident_audit`)
    incident_differences: list[IncidentDifference] = field(default_factory=list)

    @property
    def bundles_differing(self) -> int:
        """Bundles with at least one difference."""
        return len({d.seq for d in self.differences})

    @property
    def uncompilable(self) -> list[Unreplayable]:
        """Bundles skipped because a recorded policy cannot be compiled with the catalogs given."""
        return [u for u in self.unreplayable if u.code == "policy_uncompilable"]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"bundles": self.bundles, "findings_stored": self.findings_stored,
                "findings_rederived": self.findings_rederived, "verdicts_differing": len(self.differences),
                "bundles_differing": self.bundles_differing,
                "differences": [d.to_dict() for d in self.differences],
                "unreplayable": [u.to_dict() for u in self.unreplayable],
                "unauthorized": [{"seq": p.seq, "kind": p.kind, "detail": p.detail} for p in self.unauthorized],
                "incident_entries_stored": self.incident_entries_stored,
                "incident_entries_rederived": self.incident_entries_rederived,
                "incidents_differing": len(self.incident_differences),
                "incident_differences": [d.to_dict() for d in self.incident_differences]}


def differences_of(result: ReplayResult, system: str) -> list[Difference]:
    """The verdicts of one replayed bundle that differ: per finding, and the evaluation entry's summary."""
    out = []
    for index in range(max(len(result.stored), len(result.replayed))):
        old = result.stored[index] if index < len(result.stored) else None
        new = result.replayed[index] if index < len(result.replayed) else None
        if old == new:
            continue
        some = old or new or {}
        fields = tuple(sorted(k for k in set(old or {}) | set(new or {}) if (old or {}).get(k) != (new or {}).get(k)))
        out.append(Difference(result.bundle_seq, system, index, f"{some.get('policy', '?')}/{some.get('rule', '?')}",
                              some.get("segment"), str((old or {}).get("status", "absent")),
                              str((new or {}).get("status", "absent")), fields))
    if not result.summary_matches:
        from .submission import status_summary

        rederived = status_summary(result.replayed_findings())
        recorded = result.summary or []
        for index in range(max(len(recorded), len(rederived))):
            old_line = recorded[index] if index < len(recorded) else None
            new_line = rederived[index] if index < len(rederived) else None
            if old_line != new_line:
                rule, segment, _, _ = _parse_line(old_line or new_line or "? ? ?")
                out.append(Difference(result.bundle_seq, system, None, rule, segment,
                                      _parse_line(old_line)[2] if old_line else "absent",
                                      _parse_line(new_line)[2] if new_line else "absent", ("summary",)))
    return out


def _parse_line(line: str) -> tuple[str, str | None, str, str]:
    from .submission import parse_summary_line

    try:
        return parse_summary_line(line)
    except ValueError:
        return line, None, "?", "?"


#: below this many bundles, replaying in one process is quicker than forking workers
PARALLEL_FROM = 400


@dataclass
class _BundleOutcome:
    """What replaying one bundle gave, as a worker process hands it back."""

    seq: int
    #: (index, finding as JSON) of every re-derived breach; None when the findings were not re-derived
    breaches: list[tuple[int, dict[str, Any]]] | None
    stored: int = 0
    rederived: int = 0
    differences: list[Difference] = field(default_factory=list)
    unreplayable: Unreplayable | None = None


class _Replayer:
    """Replays bundles in seq order, keeping each subject's history and the registry as they grow.

    Each entry is parsed once: a bundle's history is the list of bundles replay already parsed.
    """

    def __init__(self, ledger: ExportedLedger, catalog: KpiCatalog, memo: _MemoCompiler) -> None:
        self.ledger, self.catalog, self.memo = ledger, catalog, memo
        self._histories: dict[str | None, list[EvidenceBundle] | None] = {}
        self._registrations = iter(ledger.entries(types=(SYSTEM_REGISTERED,)))
        self._pending = next(self._registrations, None)
        self._registry: dict[str, AISystem | None] = {}

    def bundle(self, seq: int) -> _BundleOutcome:
        """Replay the bundle at `seq`; bundles must come in seq order (per subject at least)."""
        entry = self.ledger.entry(seq)
        assert entry is not None
        while self._pending is not None and self._pending.seq < seq:
            try:
                registered: AISystem | None = AISystem.model_validate(self._pending.payload["system"])
            except ValueError:
                registered = None  # replay reads the registry itself and reports it
            self._registry[str((self._pending.payload.get("system") or {}).get("id"))] = registered
            self._pending = next(self._registrations, None)
        history = self._histories.setdefault(entry.subject, [])
        replayed_bundle: EvidenceBundle | None = None
        try:
            outcome = replay(self.ledger, seq, self.catalog, self.memo, history=history,
                             system=self._registry.get(str(entry.payload.get("system_id"))))
            replayed_bundle = outcome.bundle
        except _RecordedPolicyError as exc:
            first = exc.diagnostics[0]
            where = str(first.location)
            more = f" ({len(exc.diagnostics) - 1} more problems)" if len(exc.diagnostics) > 1 else ""
            return _BundleOutcome(seq, None, unreplayable=Unreplayable(
                seq, "policy_uncompilable", "a recorded policy version cannot be compiled: "
                f"{where + ': ' if where else ''}{first.message} [{first.code}]{more}; give the policy directory "
                "with its custom KPIs and frameworks (--policies)"))
        except CharterError as exc:
            first = exc.diagnostics[0]
            return _BundleOutcome(seq, None, unreplayable=Unreplayable(seq, first.code, first.message))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a record without the fields replay reads
            return _BundleOutcome(seq, None, unreplayable=Unreplayable(
                seq, "malformed_record", f"the bundle's records cannot be replayed: {type(exc).__name__}: {exc}"))
        finally:
            if history is not None:
                try:  # the bundle replay parsed, else (replay failed first) parsed here
                    history.append(replayed_bundle if replayed_bundle is not None
                                   else EvidenceBundle.from_data(entry.payload, self.catalog))
                except CharterError:
                    self._histories[entry.subject] = None  # later bundles: replay reads (and reports) it itself
        return _BundleOutcome(seq, [(i, f) for i, f in enumerate(outcome.replayed) if f["status"] == "breach"],
                              len(outcome.stored), len(outcome.replayed),
                              [] if outcome.matches else differences_of(outcome, entry.subject or "?"))


#: what forked workers replay from: set by the parent just before it forks, read by the children
_FORKED: tuple[ExportedLedger, KpiCatalog, _MemoCompiler] | None = None


def _replay_subjects(seqs: list[int]) -> list[_BundleOutcome]:
    """Replay the bundles of some subjects, in a forked worker (they inherit the parent's view)."""
    assert _FORKED is not None
    replayer = _Replayer(*_FORKED)
    with collector_paused():  # results and histories kept alive, none in cycles
        return [replayer.bundle(seq) for seq in seqs]


class _Workers:
    """Forked processes replaying the subjects' bundles (`groups`: each subject's bundle seqs), started at once.

    Forked, not spawned: the children share the parent's view in memory, so nothing is read again
    (reading the export a second time could read other bytes than those verified). The subjects are
    dealt out up front (longest first, each to the least loaded worker); each worker sends every
    subject's outcomes down its own pipe as it finishes them, so stopping is terminating and joining
    the processes, with no queue or feeder thread left behind.
    """

    def __init__(self, ledger: ExportedLedger, catalog: KpiCatalog, memo: _MemoCompiler, jobs: int,
                 groups: list[list[int]]) -> None:
        import gc
        import multiprocessing

        global _FORKED
        self.total = sum(len(g) for g in groups)
        self._forked = (ledger, catalog, memo)
        shares: list[list[list[int]]] = [[] for _ in range(min(jobs, len(groups)))]
        loads = [0] * len(shares)
        for group in sorted(groups, key=len, reverse=True):  # longest first: balanced ends
            least = loads.index(min(loads))
            shares[least].append(group)
            loads[least] += len(group)
        context = multiprocessing.get_context("fork")
        self._running: list[tuple[Any, Any, list[list[int]]]] = []
        _FORKED = self._forked
        gc.freeze()  # the children do not scan (and so copy) the parent's objects when they collect
        try:
            for share in shares:
                receive, send = context.Pipe(duplex=False)
                process = context.Process(target=_replay_share, args=(send, share), daemon=True)
                process.start()
                send.close()
                self._running.append((process, receive, share))
        except BaseException:
            self.stop()
            raise
        finally:
            gc.unfreeze()
            _FORKED = None

    def outcomes(self, progress: Callable[[int, int], None] | None = None) -> list[_BundleOutcome]:
        """Every bundle's outcome, in seq order, once all workers are done (`progress` as subjects arrive).

        A worker that dies without finishing (killed, out of memory) has its subjects replayed here.

        Raises:
            Exception: what a worker raised (a bug, not a verdict).
        """
        from multiprocessing.connection import wait

        outcomes: list[_BundleOutcome] = []
        pending = {receive: (process, share) for process, receive, share in self._running}
        try:
            while pending:
                ready = wait(list(pending))
                for receive in [r for r in list(pending) if r in ready]:
                    process, share = pending[receive]
                    try:
                        kind, value = receive.recv()
                    except (EOFError, OSError):
                        kind, value = "lost", None
                    if kind == "subject":
                        outcomes.extend(value)
                        share.pop(0)
                    elif kind == "error":
                        raise value
                    else:  # "done", or the process died: what it did not send is replayed here
                        del pending[receive]
                        process.join()
                        receive.close()
                        for group in share:
                            replayer = _Replayer(*self._forked)  # one per subject: it keeps the history
                            outcomes.extend([replayer.bundle(seq) for seq in group])
                    if progress is not None:
                        progress(len(outcomes), self.total)
        finally:
            self.stop()
        outcomes.sort(key=lambda o: o.seq)
        return outcomes

    def stop(self) -> None:
        """End the workers now (their work unused when they had not finished) and wait for them to end."""
        for process, _, _ in self._running:
            if process.is_alive():
                process.terminate()
        for process, receive, _ in self._running:
            process.join()
            receive.close()
        self._running = []


def _replay_share(send: Any, share: list[list[int]]) -> None:
    """A worker: replay each subject of `share` in turn, sending its outcomes as soon as they are known."""
    import contextlib
    import os

    # Where verification runs beside the replay (`audit_export`), it decides whether the replay is
    # wanted at all, so it should not wait for the cores.
    with contextlib.suppress(OSError):  # not permitted here: the replay just runs at the same priority
        os.nice(5)
    try:
        for group in share:
            send.send(("subject", _replay_subjects(group)))
        send.send(("done", None))
    except Exception as exc:  # a bug, not a verdict: raised again in the parent
        send.send(("error", exc))
    finally:
        send.close()


def _replay_in_workers(ledger: ExportedLedger, catalog: KpiCatalog, memo: _MemoCompiler, jobs: int,
                       groups: list[list[int]], progress: Callable[[int, int], None] | None) -> list[_BundleOutcome]:
    """Split the subjects between `jobs` forked processes (subjects are independent: each its own history)."""
    return _Workers(ledger, catalog, memo, jobs, groups).outcomes(progress)


def can_fork() -> bool:
    """Whether replay can be split between forked workers here (Linux: fork is cheap and safe enough)."""
    import multiprocessing
    import sys

    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def audit(ledger: ExportedLedger, catalog: KpiCatalog, compiler: PolicyCompiler,
          progress: Callable[[int, int], None] | None = None, jobs: int = 1,
          parallel_from: int = PARALLEL_FROM) -> AuditResult:
    """Replay every bundle of the (verified) export and compare with what was recorded.

    The findings, and what the re-derived breaches cause: the openings, attachments and automatic
    reopens of incidents each submission recorded (`IncidentAuditor`, walking the outcomes in seq
    order once every bundle is replayed).

    Args:
        ledger: the export's entries.
        catalog: the KPI catalog bundles are read with (built-in plus custom KPIs).
        compiler: compiles the recorded policy versions (with the same catalog and the frameworks).
        progress: called now and then with (bundles done, bundles in all).
        jobs: worker processes for the replay (forked, on Linux); subjects are split between them.
        parallel_from: below this many bundles, one process (starting workers costs more than it saves).
    """
    memo = _MemoCompiler(compiler)
    groups = _worker_groups(ledger, jobs, parallel_from)
    if groups:
        outcomes = _replay_in_workers(ledger, catalog, memo, jobs, groups, progress)
    else:
        outcomes = _replay_here(ledger, catalog, memo, progress)
    return _audited(ledger, outcomes, progress)


def _worker_groups(ledger: ExportedLedger, jobs: int, parallel_from: int) -> list[list[int]]:
    """Each subject's bundle seqs when the replay is to be split between workers, else nothing."""
    if jobs <= 1 or len(ledger.bundle_seqs()) < parallel_from or not can_fork():
        return []
    groups = ledger.bundle_seqs_by_subject()
    return groups if len(groups) > 1 else []


def _replay_here(ledger: ExportedLedger, catalog: KpiCatalog, memo: _MemoCompiler,
                 progress: Callable[[int, int], None] | None) -> list[_BundleOutcome]:
    # The collector is not paused here (unlike reading and verifying): measured, replay was no faster.
    seqs = ledger.bundle_seqs()
    replayer = _Replayer(ledger, catalog, memo)
    outcomes = []
    for done, seq in enumerate(seqs):
        if progress is not None and done % 50 == 0:
            progress(done, len(seqs))
        outcomes.append(replayer.bundle(seq))
    return outcomes


def _audited(ledger: ExportedLedger, outcomes: list[_BundleOutcome],
             progress: Callable[[int, int], None] | None) -> AuditResult:
    """The audit's result from every bundle's outcome (in seq order): tallies, and the incident walk."""
    result = AuditResult()
    incidents = IncidentAuditor(ledger)
    for outcome in outcomes:
        result.bundles += 1
        incidents.submission(outcome.seq, outcome.breaches)
        if outcome.unreplayable is not None:
            result.unreplayable.append(outcome.unreplayable)
            continue
        result.findings_stored += outcome.stored
        result.findings_rederived += outcome.rederived
        result.differences.extend(outcome.differences)
    result.incident_differences = incidents.finish()
    result.incident_entries_stored, result.incident_entries_rederived = incidents.recorded, incidents.rederived
    if progress is not None:
        progress(len(outcomes), len(outcomes))
    # The verifier shipped in the export can only see that an actor holds some escalation role;
    # with Charter at hand, each transition and waiver is judged by the rule the command applied.
    from .incidents import transition_problems
    from .submission import evaluation_time_problems

    result.unauthorized = sorted(transition_problems(ledger) + evaluation_time_problems(ledger),
                                 key=lambda p: (p.seq is None, p.seq or 0))
    return result


# -- verifying and auditing together ------------------------------------------------------------------

#: (phase, done, total): ``parsing`` and ``verifying`` count entries, ``auditing`` bundles (total None: not known yet)
Progress = Callable[[str, int, "int | None"], None]


@dataclass
class ExportAudit:
    """What `audit_export` found: the integrity report, and the semantic audit when the export verified."""

    report: Report
    #: None when the export failed verification: no verdict is re-derived from an export that does not verify
    result: AuditResult | None


def audit_export(export: Export, public_key: bytes, notes: Sequence[str],
                 prepare: Callable[[ExportedLedger], tuple[KpiCatalog, PolicyCompiler]], *, jobs: int = 1,
                 progress: Progress | None = None, parallel_from: int = PARALLEL_FROM) -> ExportAudit:
    """Verify an export and, only when it verifies, re-derive every verdict: what ``charter audit`` runs.

    With one job, verification (`verify_export`) comes first and the replay (`audit`) after. With
    more, on Linux, they run side by side: a forked process verifies the export while this one
    parses the bodies, builds the view and starts the replay's workers. Nothing is reported from
    the replay unless the verifier's report is ok; when it is not, the workers are stopped and the
    report is the answer, as when verifying first. Both read the same bytes in memory (the verifier
    is forked after the export was read), and over bytes that verify the plain parse here gives the
    same values as the verifier's strict one (canonical JSON has one reading), so the outcome is the
    one of verifying first, in less time.

    Args:
        export: from `read_export`.
        public_key: the pinned log key (the export's own when the caller has none).
        notes: checkpoint notes: the export's and any the caller holds.
        prepare: the catalog bundles are read with and the compiler of the recorded policies, from
            the view of the export (its recorded custom KPIs); what it raises is raised only once the
            export verified (else the failed verification is the answer).
        jobs: worker processes for the replay (and, with more than one, the verifier's process).
        progress: see `Progress`.
        parallel_from: as for `audit`.
    """
    audited = None if progress is None else lambda done, total: progress("auditing", done, total)

    def after_verifying(report: Report) -> ExportAudit:  # one step after the other (the view parses what it lacks)
        ledger = ExportedLedger(export.entries, export.origin, export.parsed)
        catalog, compiler = prepare(ledger)
        return ExportAudit(report, audit(ledger, catalog, compiler, audited, jobs, parallel_from))

    if jobs <= 1 or not can_fork():
        report = verify_export(export, public_key, notes, _entries_done(progress, export))
        return after_verifying(report) if report.ok else ExportAudit(report, None)
    verifier = _VerifierProcess(export, public_key, notes)
    early: _EarlyReplay | None = None
    try:
        parsed = _parsed_plainly(export, _entries_done(progress, export, "parsing"))
        if parsed is not None:
            early = _EarlyReplay(export, parsed, prepare, jobs, parallel_from)
        report = verifier.report(_entries_done(progress, export))
        if not report.ok:
            return ExportAudit(report, None)
        if early is None or not early.started:  # as when verifying first
            return after_verifying(report)
        export.parsed = parsed
        return ExportAudit(report, early.result(audited))
    finally:
        verifier.stop()
        if early is not None:
            early.stop()


def _entries_done(progress: Progress | None, export: Export, phase: str = "verifying") -> Callable[[int], None] | None:
    return None if progress is None else lambda done: progress(phase, done, len(export.entries))


def _parsed_plainly(export: Export, progress: Callable[[int], None] | None) -> list[dict[str, Any]] | None:
    """Every body parsed with the standard parser (no strictness checks: those are the verifier's), or
    None at the first that is not a JSON object (the verifier reports it)."""
    import json

    parsed: list[dict[str, Any]] = []
    with collector_paused():  # tens of thousands of parsed bodies kept alive, none in cycles
        for index, item in enumerate(export.entries):
            if progress is not None and index % 2000 == 0:
                progress(index)
            try:
                body = json.loads(item.body)
            except (ValueError, RecursionError):
                return None
            if type(body) is not dict:
                return None
            parsed.append(body)
    return parsed


class _VerifierProcess:
    """`verify_export` in a forked process, started at once; `report` waits for it.

    When the process cannot be started, or dies without a report, the export is verified here instead.
    """

    def __init__(self, export: Export, public_key: bytes, notes: Sequence[str]) -> None:
        import multiprocessing

        self._args = (export, public_key, notes)
        context = multiprocessing.get_context("fork")
        self._done = context.Value("q", 0, lock=False)
        self._receive, send = context.Pipe(duplex=False)
        self._process: Any = context.Process(target=_verify_and_send, args=(send, *self._args, self._done),
                                             daemon=True)
        try:
            self._process.start()
        except OSError:  # no process to be had (a limit on processes or memory): `report` verifies here
            self._process = None
        send.close()

    def report(self, progress: Callable[[int], None] | None) -> Report:
        """The verifier's report (`progress` gets the entries it checked, now and then, while it runs)."""
        from multiprocessing.connection import wait

        if self._process is None:
            return verify_export(*self._args, progress=progress)
        while True:
            ready = wait([self._receive], timeout=0.2)
            if progress is not None:
                progress(int(self._done.value))
            if ready:
                break
        try:
            kind, value = self._receive.recv()
        except EOFError:  # the process died (killed, out of memory): verify here
            return verify_export(*self._args, progress=progress)
        if kind == "error":
            raise value
        report: Report = value
        return report

    def stop(self) -> None:
        """End the process (at once, when its report is no longer wanted)."""
        if self._process is not None:
            if self._process.is_alive():
                self._process.terminate()
            self._process.join()
        self._receive.close()


def _verify_and_send(send: Any, export: Export, public_key: bytes, notes: Sequence[str], done: Any) -> None:
    def counted(entries: int) -> None:
        done.value = entries

    try:
        send.send(("report", verify_export(export, public_key, notes, counted)))
    except Exception as exc:  # a bug, not a verdict: raised again in the parent
        send.send(("error", exc))
    finally:
        send.close()


class _EarlyReplay:
    """The view, catalog and compiler of an export not verified yet, and its replay already running in workers.

    Building them reads bytes nobody has verified yet: whatever that raises (a malformed view,
    custom KPIs that do not load, a record without the fields read) only marks the early start as
    failed (`started`); once the export verified, the caller audits as when verifying first, which
    raises or reports what it does there.
    """

    def __init__(self, export: Export, parsed: list[dict[str, Any]],
                 prepare: Callable[[ExportedLedger], tuple[KpiCatalog, PolicyCompiler]], jobs: int,
                 parallel_from: int) -> None:
        self._workers: _Workers | None = None
        self.started = False
        try:
            self.ledger = ExportedLedger(export.entries, export.origin, parsed)
            self.catalog, compiler = prepare(self.ledger)
        except Exception:  # unverified bytes: judged only after verification, by the one-step-after-the-other path
            return
        self.memo = _MemoCompiler(compiler)
        groups = _worker_groups(self.ledger, jobs, parallel_from)
        if groups:
            self._workers = _Workers(self.ledger, self.catalog, self.memo, jobs, groups)
        self.started = True

    def result(self, progress: Callable[[int, int], None] | None) -> AuditResult:
        """The audit, from the workers' outcomes (or replayed here, for a few bundles); only when `started`."""
        assert self.started
        if self._workers is not None:
            outcomes = self._workers.outcomes(progress)
            self._workers = None
        else:
            outcomes = _replay_here(self.ledger, self.catalog, self.memo, progress)
        return _audited(self.ledger, outcomes, progress)

    def stop(self) -> None:
        """Stop workers whose outcomes were not taken (verification failed, or something raised)."""
        if self._workers is not None:
            self._workers.stop()
            self._workers = None
