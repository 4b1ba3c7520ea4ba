"""Semantic audit of an export: the indexed view answers as the database does, and re-derivation finds forgeries."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from charter.audit import ExportedLedger, audit, can_fork, read_export, verify_export
from charter.errors import CharterError
from charter.frameworks import load_frameworks
from charter.kpis import builtin_catalog
from charter.ledger import Ledger, SigningKey, export_ledger
from charter.ledger.auditor import (
    ACTION_CONTEXT,
    SYSTEM_REGISTERED,
    CompactRange,
    action_message,
    document_digest,
    statement_id,
    statement_of,
)
from charter.ledger.hashing import (
    RANGE_RECEIPT_CONTEXT,
    RECEIPT_CONTEXT,
    canonical,
    leaf_hash,
    range_receipt_message,
    receipt_message,
)
from charter.ledger.notes import sign_checkpoint
from charter.policy import PolicyCompiler
from charter.submission import BUNDLE, EVALUATION, FINDING, replay
from tests.conftest import run_cli

CATALOG = builtin_catalog()
COMPILER = PolicyCompiler(CATALOG, load_frameworks())
#: tests of the forked workers and verifier process (Linux: fork is what they use)
FORKS = pytest.mark.skipif(not can_fork(), reason="the audit forks workers on Linux only")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh demo ledger (``charter demo``) and its export, in a directory of their own."""
    root = tmp_path_factory.mktemp("demo")
    result = run_cli("demo", cwd=root)
    assert result.returncode == 0, result.stderr
    ledger = Ledger.open(f"sqlite:///{root / '.charter/demo/ledger.db'}", read_only=True)
    export_ledger(ledger, root / "export")
    ledger.engine.dispose()
    return root


def demo_log_key(root: Path) -> SigningKey:
    return SigningKey.load(root / ".charter/demo/ledger.key")


def uncompilable_rule(payload: dict[str, Any]) -> None:
    """Forge a published policy: its first rule reads a KPI the built-in catalog lacks."""
    rules = payload["document"]["rules"]
    rules[0] = {**{k: v for k, v in rules[0].items() if k in ("id", "title", "severity", "controls")},
                "kpi": "house_metric", "min": 0.5}


def summary_without_breaches(payload: dict[str, Any]) -> None:
    """Forge an evaluation entry's status summary: every breach recorded as a pass."""
    payload["statuses"] = [s.replace(" breach ", " pass ") for s in payload["statuses"]]


Edit = tuple[int, Callable[[dict[str, Any]], None], "SigningKey | None"]


def reseal_export(source: Path, target: Path, seq: int, edit: Callable[[dict[str, Any]], None],
                  log_key: SigningKey, actor: SigningKey | None = None, more: tuple[Edit, ...] = (),
                  *, whole: bool = False) -> None:
    """Copy an export, edit entry `seq`'s body, and make it verify again as an insider holding the log key could.

    Every later body names the new previous hash, every receipt from the edited entry on is signed
    again over the new record hashes, and checkpoints (and the exported head) are signed again over
    the new roots. With `actor`, the edited statement is signed again with the actor's key (and a
    recorded document's digest recomputed), as an insider who also stole that key could; `more`
    edits later entries alike, each with its own actor.

    With `whole`, the edits receive the entry's whole body (type, subject and all) rather than its
    payload; ``seq`` and ``prev`` are set afterwards.
    """
    edits = {seq: (edit, actor), **{at: (change, signer) for at, change, signer in more}}
    seq = min(edits)
    shutil.copytree(source, target)
    rows = [json.loads(line) for line in (source / "entries.jsonl").read_text().splitlines()]
    bodies = [base64.b64decode(row["body"]) for row in rows]
    origin = json.loads(bodies[0])["log"]
    hashes: list[bytes] = []
    for index, body in enumerate(bodies):
        if index >= seq:
            document = json.loads(body)
            if index in edits:
                change, signer = edits[index]
                change(document if whole else document["payload"])
                document["seq"] = index
                if signer is not None:
                    payload = document["payload"]
                    if "document" in payload and "digest" in payload:
                        payload["digest"] = document_digest(payload["document"])
                    statement = statement_of(document["type"], payload)
                    document["sig"] = signer.sign(ACTION_CONTEXT, action_message(origin, document["type"], statement))
                    document["submission_id"] = statement_id(origin, document["type"], statement)
            document["prev"] = hashes[-1].hex() if hashes else bytes(32).hex()
            bodies[index] = body = canonical(document)
            rows[index]["body"] = base64.b64encode(body).decode()
        hashes.append(leaf_hash(body))
    first = 0
    for index, row in enumerate(rows):
        if row["receipt"]:
            row["receipt"] = log_key.sign(RECEIPT_CONTEXT, receipt_message(origin, index, hashes[index]))
            first = index + 1
            continue
        closing = row.get("range_receipt")
        if closing is None:
            continue
        tree = CompactRange()
        for leaf in hashes[first:index + 1]:
            tree.append(leaf)
        closing["root"] = base64.b64encode(tree.root()).decode()
        closing["signature"] = log_key.sign(RANGE_RECEIPT_CONTEXT,
                                            range_receipt_message(origin, first, index + 1, tree.root()))
        first = index + 1
    (target / "entries.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    rows_of_checkpoints = []
    for note in sorted((target / "checkpoints").glob("*.note")):
        size = int(note.stem)
        tree = CompactRange()
        for leaf in hashes[:size]:
            tree.append(leaf)
        note.write_text(sign_checkpoint(origin, size, tree.root(), log_key))
        rows_of_checkpoints.append({"size": size, "root": tree.root().hex(), "note": note.read_text()})
    head = json.loads((target / "head.json").read_text())
    head.update(head_hash=hashes[-1].hex(), checkpoints=rows_of_checkpoints)
    (target / "head.json").write_text(json.dumps(head))


def flip_status(payload: dict[str, Any]) -> None:
    payload["status"] = "pass" if payload["status"] != "pass" else "breach"


def breach_finding(root: Path) -> tuple[int, int]:
    """(seq of a breach finding in the demo export, seq of its bundle)."""
    export = read_export(root / "export")
    view = ExportedLedger(export.entries, export.origin)
    finding = next(e for e in view.entries(types=(FINDING,)) if e.payload["status"] == "breach")
    return finding.seq, finding.payload["refs"]["bundle"]["seq"]


def test_the_view_answers_as_the_database_does(demo: Path) -> None:
    ledger = Ledger.open(f"sqlite:///{demo / '.charter/demo/ledger.db'}", read_only=True)
    export = read_export(demo / "export")
    view = ExportedLedger(export.entries, export.origin)
    assert view.size() == ledger.size() == len(export.entries)
    subject = next(iter(ledger.entries(types=(BUNDLE,)))).subject
    queries: list[dict[str, Any]] = [
        {}, {"start": 100, "stop": 200}, {"types": (BUNDLE,)}, {"types": (SYSTEM_REGISTERED,), "stop": 300},
        {"types": (EVALUATION, FINDING), "start": 50, "stop": 400}, {"subject": subject},
        {"subject": subject, "start": 200}, {"types": (BUNDLE,), "subject": subject, "stop": 500},
        {"types": (BUNDLE, EVALUATION), "subject": subject}, {"types": ("no.such.type",)},
        {"start": 500, "stop": 100}, {"subject": "no-such-system"}, {"start": len(export.entries) + 5}]
    for query in queries:
        mine = [(e.seq, e.record_hash, e.body, e.type, e.subject, e.payload) for e in view.entries(**query)]
        theirs = [(e.seq, e.record_hash, e.body, e.type, e.subject, e.payload) for e in ledger.entries(**query)]
        assert mine == theirs, query
    for seq in (0, 1, 333, len(export.entries) - 1):
        stored, exported = ledger.entry(seq), view.entry(seq)
        assert stored is not None and exported is not None
        assert (exported.body, exported.record_hash, exported.prev_hash, exported.received_at, exported.key_id) == (
            stored.body, stored.record_hash, stored.prev_hash, stored.received_at, stored.key_id)
    assert view.entry(len(export.entries)) is None and view.entry(-1) is None
    # replay over the export gives exactly what it gives over the database
    for seq in view.bundle_seqs()[:5]:
        assert replay(view, seq, CATALOG, COMPILER) == replay(ledger, seq, CATALOG, COMPILER)  # type: ignore[arg-type]
    ledger.engine.dispose()


def test_every_demo_verdict_is_rederived(demo: Path) -> None:
    export = read_export(demo / "export")
    assert verify_export(export, demo_log_key(demo).public).ok
    ticks: list[tuple[int, int]] = []
    result = audit(ExportedLedger(export.entries, export.origin), CATALOG, COMPILER,
                   progress=lambda done, total: ticks.append((done, total)))
    bundles = sum(1 for item in export.entries if json.loads(item.body)["type"] == BUNDLE)
    findings = sum(1 for item in export.entries if json.loads(item.body)["type"] == FINDING)
    assert result.bundles == bundles == 20
    assert result.findings_rederived == result.findings_stored == findings
    assert result.differences == [] and result.unreplayable == []
    openings = sum(1 for item in export.entries if json.loads(item.body)["type"] == "incident.opened")
    assert result.incident_differences == [] and openings > 0
    assert result.incident_entries_rederived == result.incident_entries_stored >= openings
    assert ticks[-1] == (bundles, bundles)


def test_a_finding_forged_by_the_log_key_holder_verifies_but_is_caught(demo: Path, tmp_path: Path) -> None:
    finding_seq, bundle_seq = breach_finding(demo)
    reseal_export(demo / "export", tmp_path / "forged", finding_seq, flip_status, demo_log_key(demo))
    export = read_export(tmp_path / "forged")
    report = verify_export(export, demo_log_key(demo).public, export.notes)
    assert report.ok and report.covered == len(export.entries)  # integrity cannot tell
    result = audit(ExportedLedger(export.entries, export.origin), CATALOG, COMPILER)
    assert [(d.seq, d.stored, d.rederived, d.fields) for d in result.differences] == [
        (bundle_seq, "pass", "breach", ("status",))]
    assert result.differences[0].rule == f"{json.loads(export.entries[finding_seq].body)['payload']['policy']}/" \
        f"{json.loads(export.entries[finding_seq].body)['payload']['rule']}"


def test_a_forged_summary_is_caught_too(demo: Path, tmp_path: Path) -> None:
    export = read_export(demo / "export")
    view = ExportedLedger(export.entries, export.origin)
    evaluation = next(e for e in view.entries(types=(EVALUATION,))
                      if any(" breach " in line for line in e.payload["statuses"]))
    reseal_export(demo / "export", tmp_path / "forged", evaluation.seq, summary_without_breaches, demo_log_key(demo))
    forged = read_export(tmp_path / "forged")
    result = audit(ExportedLedger(forged.entries, forged.origin), CATALOG, COMPILER)
    assert result.differences and {d.seq for d in result.differences} == {evaluation.payload["bundle"]["seq"]}
    assert all(d.index is None and d.stored == "pass" and d.rederived == "breach" for d in result.differences)


def test_a_forgery_without_the_log_key_fails_integrity(demo: Path, tmp_path: Path) -> None:
    finding_seq, _ = breach_finding(demo)
    reseal_export(demo / "export", tmp_path / "forged", finding_seq, flip_status, SigningKey.generate("mallory"))
    export = read_export(tmp_path / "forged")
    report = verify_export(export, demo_log_key(demo).public, export.notes)
    assert not report.ok and report.first_bad_seq is not None and report.first_bad_seq <= finding_seq


def test_a_recorded_policy_that_cannot_be_compiled_is_reported(demo: Path, tmp_path: Path) -> None:
    export = read_export(demo / "export")
    view = ExportedLedger(export.entries, export.origin)
    policy = next(iter(view.entries(types=("policy.published",))))
    reseal_export(demo / "export", tmp_path / "custom", policy.seq, uncompilable_rule, demo_log_key(demo))
    forged = read_export(tmp_path / "custom")
    result = audit(ExportedLedger(forged.entries, forged.origin), CATALOG, COMPILER)
    assert result.uncompilable and result.uncompilable == result.unreplayable
    assert f"ledger seq {policy.seq}" in result.uncompilable[0].message
    assert "house_metric" in result.uncompilable[0].message and "--policies" in result.uncompilable[0].message


def test_malformed_entries_are_located_by_line(demo: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(demo / "export", broken)
    lines = (broken / "entries.jsonl").read_text().splitlines(keepends=True)
    lines[6] = lines[6][: len(lines[6]) // 2] + "\n"
    (broken / "entries.jsonl").write_text("".join(lines))
    with pytest.raises(CharterError) as caught:
        read_export(broken)
    location = caught.value.diagnostics[0].location
    assert caught.value.code == "export_malformed"
    assert location.file == str(broken / "entries.jsonl") and location.line == 7
    (broken / "trust_root.json").unlink()
    with pytest.raises(CharterError) as missing:
        read_export(broken)
    assert missing.value.code == "file_not_found" and missing.value.diagnostics[0].location.file.endswith(
        "trust_root.json")


def test_the_bodies_the_verifier_parsed_are_reused_by_the_view(demo: Path, tmp_path: Path) -> None:
    export = read_export(demo / "export")
    assert export.parsed is None
    assert verify_export(export, demo_log_key(demo).public).ok
    assert export.parsed is not None and len(export.parsed) == len(export.entries)
    assert [body["seq"] for body in export.parsed] == list(range(len(export.entries)))
    shared = ExportedLedger(export.entries, export.origin, export.parsed)
    own = ExportedLedger(export.entries, export.origin)
    for seq in range(len(export.entries)):
        entry, fresh = shared.entry(seq), own.entry(seq)
        assert entry is not None and fresh is not None
        assert entry.document() is export.parsed[seq] and entry.document() == fresh.document() and entry == fresh
    # a verification that stops early leaves nothing to reuse
    finding_seq, _ = breach_finding(demo)
    reseal_export(demo / "export", tmp_path / "forged", finding_seq, flip_status, SigningKey.generate("mallory"))
    forged = read_export(tmp_path / "forged")
    assert not verify_export(forged, demo_log_key(demo).public, forged.notes).ok and forged.parsed is None


def test_replay_keeps_its_findings_and_caches_do_not_leak_between_bundles(demo: Path) -> None:
    from charter import evaluate
    from charter.evaluate import Finding
    from charter.policy import explain
    from charter.submission import status_summary

    export = read_export(demo / "export")
    view = ExportedLedger(export.entries, export.origin)
    seqs = view.bundle_seqs()

    def fresh(seq: int) -> Any:
        evaluate._NAMESPACES.clear()
        explain._TEXTS.clear()
        return replay(view, seq, CATALOG, PolicyCompiler(CATALOG, load_frameworks()))

    alone = {seq: fresh(seq) for seq in seqs}
    # interleaved, with warm caches: every result as evaluated alone
    for seq in [*reversed(seqs), *seqs]:
        result = replay(view, seq, CATALOG, COMPILER)
        assert result == alone[seq] and result.replayed == alone[seq].replayed
        assert result.findings is not None and result.bundle is not None
        assert [f.model_dump(mode="json") for f in result.findings] == result.replayed
        assert status_summary(result.findings) == status_summary([Finding.model_validate(f) for f in result.replayed])


def _both_ways(view: ExportedLedger, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The audit in one process and split between forked workers; they must agree to the last field."""
    import charter.audit as audit_module

    forks: list[int] = []
    real = audit_module._replay_in_workers

    def spy(*args: Any, **kwargs: Any) -> Any:
        forks.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(audit_module, "_replay_in_workers", spy)
    alone = audit(view, CATALOG, COMPILER, jobs=1).to_dict()
    assert not forks
    ticks: list[tuple[int, int]] = []
    split = audit(view, CATALOG, COMPILER, jobs=3, parallel_from=1,
                  progress=lambda done, total: ticks.append((done, total))).to_dict()
    assert forks == [1], "the workers were not used"
    assert split == alone
    assert ticks[-1] == (alone["bundles"], alone["bundles"])
    return split


@FORKS
def test_workers_find_what_one_process_finds(demo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Differential: the honest export, a forged finding, a forged summary and an uncompilable policy."""
    export = read_export(demo / "export")
    view = ExportedLedger(export.entries, export.origin)
    honest = _both_ways(view, monkeypatch)
    assert honest["bundles"] == 20 and honest["verdicts_differing"] == 0 and honest["incident_entries_stored"] > 0
    finding_seq, bundle_seq = breach_finding(demo)
    reseal_export(demo / "export", tmp_path / "finding", finding_seq, flip_status, demo_log_key(demo))
    forged = read_export(tmp_path / "finding")
    result = _both_ways(ExportedLedger(forged.entries, forged.origin), monkeypatch)
    assert [d["seq"] for d in result["differences"]] == [bundle_seq]
    evaluation = next(e for e in view.entries(types=(EVALUATION,))
                      if any(" breach " in line for line in e.payload["statuses"]))
    reseal_export(demo / "export", tmp_path / "summary", evaluation.seq, summary_without_breaches, demo_log_key(demo))
    forged = read_export(tmp_path / "summary")
    assert _both_ways(ExportedLedger(forged.entries, forged.origin), monkeypatch)["differences"]
    policy = next(iter(view.entries(types=("policy.published",))))
    reseal_export(demo / "export", tmp_path / "custom", policy.seq, uncompilable_rule, demo_log_key(demo))
    forged = read_export(tmp_path / "custom")
    assert _both_ways(ExportedLedger(forged.entries, forged.origin), monkeypatch)["unreplayable"]


# -- verifying and replaying side by side (audit_export) ------------------------------------------------

def _prepare(_: ExportedLedger) -> tuple[Any, PolicyCompiler]:
    return CATALOG, COMPILER


def _audited(directory: Path, log_key: SigningKey, jobs: int, **options: Any) -> tuple[Any, dict[str, Any] | None]:
    from charter.audit import audit_export

    export = read_export(directory)
    done = audit_export(export, log_key.public, export.notes, options.pop("prepare", _prepare), jobs=jobs,
                        **options)
    return done.report, None if done.result is None else done.result.to_dict()


@FORKS
def test_verifying_beside_the_replay_finds_what_verifying_first_finds(demo: Path, tmp_path: Path) -> None:
    """Differential over the honest export and three forgeries, one of them without the log key."""
    key = demo_log_key(demo)
    finding_seq, bundle_seq = breach_finding(demo)
    reseal_export(demo / "export", tmp_path / "finding", finding_seq, flip_status, key)
    reseal_export(demo / "export", tmp_path / "mallory", finding_seq, flip_status, SigningKey.generate("mallory"))
    view = ExportedLedger(read_export(demo / "export").entries, read_export(demo / "export").origin)
    policy = next(iter(view.entries(types=("policy.published",))))
    reseal_export(demo / "export", tmp_path / "custom", policy.seq, uncompilable_rule, key)
    ticks: list[tuple[str, int, int | None]] = []
    for directory in (demo / "export", tmp_path / "finding", tmp_path / "mallory", tmp_path / "custom"):
        report, first = _audited(directory, key, 1)
        side_by_side, both = _audited(directory, key, 3, parallel_from=1,
                                      progress=lambda *tick: ticks.append(tick))
        assert (report.ok, report.summary(), first) == (side_by_side.ok, side_by_side.summary(), both)
    assert _audited(demo / "export", key, 3)[1] == _audited(demo / "export", key, 1)[1]  # too few bundles to fork
    assert _audited(tmp_path / "finding", key, 3)[1]["differences"][0]["seq"] == bundle_seq  # type: ignore[index]
    assert _audited(tmp_path / "mallory", key, 3)[1] is None  # no verdict from an export that does not verify
    assert {phase for phase, _, _ in ticks} == {"parsing", "verifying", "auditing"}


@FORKS
def test_a_bad_catalog_is_raised_only_over_an_export_that_verifies(demo: Path, tmp_path: Path) -> None:
    def refuse(_: ExportedLedger) -> tuple[Any, PolicyCompiler]:
        raise CharterError.single("kpi_schema", "the custom KPIs do not load")

    key = demo_log_key(demo)
    finding_seq, _ = breach_finding(demo)
    reseal_export(demo / "export", tmp_path / "mallory", finding_seq, flip_status, SigningKey.generate("mallory"))
    for jobs in (1, 3):
        report, result = _audited(tmp_path / "mallory", key, jobs, prepare=refuse, parallel_from=1)
        assert not report.ok and result is None  # the failed verification is the answer
        with pytest.raises(CharterError, match="custom KPIs"):
            _audited(demo / "export", key, jobs, prepare=refuse, parallel_from=1)


@FORKS
def test_a_verifier_process_that_dies_is_replaced_by_verifying_here(demo: Path, monkeypatch: pytest.MonkeyPatch
                                                                    ) -> None:
    import os

    import charter.audit as audit_module

    key = demo_log_key(demo)
    honest = _audited(demo / "export", key, 1)
    monkeypatch.setattr(audit_module, "_verify_and_send", lambda *_: os._exit(9))
    report, result = _audited(demo / "export", key, 3, parallel_from=1)
    assert report.ok and (report.summary(), result) == (honest[0].summary(), honest[1])


@FORKS
def test_a_verifier_process_that_cannot_start_is_replaced_by_verifying_here(demo: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing.process

    key = demo_log_key(demo)
    honest = _audited(demo / "export", key, 1)

    def no_process(self: Any) -> None:
        raise OSError("fork: Resource temporarily unavailable")

    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", no_process)
    report, result = _audited(demo / "export", key, 3)  # too few bundles for replay workers: only the verifier forks
    assert report.ok and (report.summary(), result) == (honest[0].summary(), honest[1])


@FORKS
def test_a_verifier_that_fails_fails_the_audit(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import charter.audit as audit_module

    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("a bug in the verifier")

    monkeypatch.setattr(audit_module, "verify_export", broken)
    with pytest.raises(RuntimeError, match="a bug in the verifier"):
        _audited(demo / "export", demo_log_key(demo), 3, parallel_from=1)


@FORKS
def test_workers_are_stopped_when_the_export_does_not_verify(demo: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The replay's workers never outlive a failed verification: they are terminated and joined at once."""
    import multiprocessing
    import threading

    import charter.audit as audit_module

    def blocked(_: list[int]) -> list[Any]:
        threading.Event().wait(300)  # a worker still replaying when verification fails (never set)
        return []

    monkeypatch.setattr(audit_module, "_replay_subjects", blocked)
    finding_seq, _ = breach_finding(demo)
    reseal_export(demo / "export", tmp_path / "mallory", finding_seq, flip_status, SigningKey.generate("mallory"))
    report, result = _audited(tmp_path / "mallory", demo_log_key(demo), 3, parallel_from=1)
    assert not report.ok and result is None
    assert multiprocessing.active_children() == []


def _tampered_body(source: Path, target: Path, seq: int, edit: Callable[[dict[str, Any]], None]) -> None:
    """Copy an export and edit one entry's body in place, signing nothing again (anyone could)."""
    shutil.copytree(source, target)
    rows = [json.loads(line) for line in (target / "entries.jsonl").read_text().splitlines()]
    body = json.loads(base64.b64decode(rows[seq]["body"]))
    edit(body)
    rows[seq]["body"] = base64.b64encode(canonical(body)).decode()
    (target / "entries.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


@FORKS
def test_unverified_bytes_that_break_the_early_view_give_the_integrity_report(demo: Path, tmp_path: Path) -> None:
    """What the replay's early start reads before verification (a prev that is not hex, an activation without
    its payload) cannot raise out of the audit: the answer is the failed verification, as with one job."""
    view = ExportedLedger(read_export(demo / "export").entries, read_export(demo / "export").origin)
    activation = next(iter(view.entries(types=("policy.activated",))))
    _tampered_body(demo / "export", tmp_path / "prev", 5, lambda body: body.update(prev="zz" * 32))
    _tampered_body(demo / "export", tmp_path / "payload", activation.seq, lambda body: body.pop("payload"))
    key = demo_log_key(demo)
    for name in ("prev", "payload"):
        report, result = _audited(tmp_path / name, key, 1)
        early, both = _audited(tmp_path / name, key, 3, parallel_from=1)
        assert not report.ok and result is None and both is None
        assert report.summary() == early.summary()
        assert run_cli("audit", str(tmp_path / name), "--log-key", base64.b64encode(key.public).decode(),
                       "--jobs", "2").returncode == 1


@FORKS
def test_how_deep_a_body_may_nest_does_not_depend_on_the_process(demo: Path, tmp_path: Path) -> None:
    """A body nested past the verifier's fixed limit is malformed whoever verifies it (one job, or the forked
    verifier beside the replay), even re-sealed with the log key; one within it verifies both ways."""
    finding_seq, _ = breach_finding(demo)
    key = demo_log_key(demo)

    def nested(depth: int) -> Callable[[dict[str, Any]], None]:
        def edit(payload: dict[str, Any]) -> None:
            value: Any = 1
            for _ in range(depth):
                value = [value]
            payload["extra"] = value
        return edit

    reseal_export(demo / "export", tmp_path / "deep", finding_seq, nested(250), key)
    reseal_export(demo / "export", tmp_path / "shallow", finding_seq, nested(20), key)
    for name, ok in (("deep", False), ("shallow", True)):
        alone, early = _audited(tmp_path / name, key, 1)[0], _audited(tmp_path / name, key, 3, parallel_from=1)[0]
        assert alone.summary() == early.summary() and alone.ok is early.ok
        deep_problems = [p for p in alone.problems if p.kind == "malformed_body" and "nested" in p.detail]
        assert (not ok and deep_problems and deep_problems[0].seq == finding_seq) or (ok and not deep_problems)


@FORKS
def test_a_worker_that_dies_has_its_subjects_replayed_here_and_one_that_fails_fails_the_audit(
        demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import charter.audit as audit_module

    export = read_export(demo / "export")
    view = ExportedLedger(export.entries, export.origin)
    alone = audit(view, CATALOG, COMPILER, jobs=1).to_dict()
    monkeypatch.setattr(audit_module, "_replay_subjects", lambda _: os._exit(9))  # every worker is lost at once
    assert audit(view, CATALOG, COMPILER, jobs=3, parallel_from=1).to_dict() == alone

    def broken(_: list[int]) -> list[Any]:
        raise RuntimeError("a bug in the replay")

    monkeypatch.setattr(audit_module, "_replay_subjects", broken)
    with pytest.raises(RuntimeError, match="a bug in the replay"):
        audit(view, CATALOG, COMPILER, jobs=3, parallel_from=1)
    assert __import__("multiprocessing").active_children() == []
