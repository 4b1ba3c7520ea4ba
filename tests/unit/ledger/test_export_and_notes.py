"""Checkpoint notes, and the offline export verified by the standalone script alone."""

from __future__ import annotations

import ast
import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from charter.ledger import (
    SigningKey,
    auditor,
    export_ledger,
    make_checkpoint,
    merkle,
    prove_consistency,
    prove_inclusion,
)
from charter.ledger.auditor import leaf_hash
from charter.ledger.notes import NoteError, open_checkpoint, sign_checkpoint
from tests.unit.ledger.helpers import ORIGIN, Populated, populate

ROOT = bytes(range(32))


def test_note_round_trip_and_layout() -> None:
    key = SigningKey.generate(ORIGIN)
    note = sign_checkpoint(ORIGIN, 42, ROOT, key)
    lines = note.split("\n")
    assert lines[:3] == [ORIGIN, "42", base64.b64encode(ROOT).decode()] and lines[3] == ""
    assert lines[4].startswith(f"\u2014 {ORIGIN} ")
    checkpoint = open_checkpoint(note, ORIGIN, key.public)
    assert (checkpoint.size, checkpoint.root) == (42, ROOT)


def test_signatures_by_unknown_keys_are_ignored() -> None:
    key, other = SigningKey.generate(ORIGIN), SigningKey.generate("witness")
    note = sign_checkpoint(ORIGIN, 1, ROOT, key)
    cosigned = note + sign_checkpoint(ORIGIN, 1, ROOT, other).split("\n\n")[1]
    assert open_checkpoint(cosigned, ORIGIN, key.public).size == 1


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda n: n.replace("\n7\n", "\n8\n"), "does not verify"),
    (lambda n: n.replace(ORIGIN, "evil.example/log", 1), "pinned origin"),
    (lambda n: "extra\n" + n, "3 lines"),
    (lambda n: n.split("\n\n")[0] + "\n\n", "no signature by the pinned log key"),
    (lambda n: n.replace("\n\n", "\n"), "no blank line"),
    (lambda n: n.replace("\n7\n", "\n07\n"), "not a decimal"),
])
def test_bad_notes_are_refused(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    key = SigningKey.generate(ORIGIN)
    with pytest.raises(NoteError, match=message):
        open_checkpoint(mutate(sign_checkpoint(ORIGIN, 7, ROOT, key)), ORIGIN, key.public)


def test_note_signed_by_another_key_is_refused() -> None:
    note = sign_checkpoint(ORIGIN, 7, ROOT, SigningKey.generate(ORIGIN))
    with pytest.raises(NoteError):
        open_checkpoint(note, ORIGIN, SigningKey.generate(ORIGIN).public)


def test_equivocating_checkpoints_are_flagged() -> None:
    key = SigningKey.generate(ORIGIN)
    notes = [sign_checkpoint(ORIGIN, 3, ROOT, key), sign_checkpoint(ORIGIN, 3, bytes(32), key)]
    report = auditor.verify_entries([], ORIGIN, key.public, notes)
    assert "equivocation" in {p.kind for p in report.problems}


@pytest.fixture
def exported(db_url: str, tmp_path: Path) -> tuple[Populated, Path]:
    populated = populate(db_url, bundles=2)
    make_checkpoint(populated.ledger, 20)
    make_checkpoint(populated.ledger)
    export_ledger(populated.ledger, tmp_path / "export")
    return populated, tmp_path / "export"


def _run_script(export: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # -I: isolated mode, and the export directory as working directory: nothing of Charter is on hand
    # but what the script imports itself (its imports are checked below).
    return subprocess.run([sys.executable, "-I", str(export / "verify.py"), str(export), *extra],
                          cwd=export, capture_output=True, text=True, timeout=120, check=False)


def test_standalone_verifier_imports_only_stdlib_cryptography_and_rfc8785(exported: tuple[Populated, Path]) -> None:
    tree = ast.parse((exported[1] / "verify.py").read_text())
    modules = {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert modules - set(sys.stdlib_module_names) - {"__future__"} == {"cryptography", "rfc8785"}


def _pin(populated: Populated) -> tuple[str, str]:
    return "--log-key", populated.ledger.meta()["log_key_id"]


def test_export_verifies_offline(exported: tuple[Populated, Path]) -> None:
    result = _run_script(exported[1], *_pin(exported[0]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK:" in result.stdout and "anchored by checkpoint" in result.stdout
    unpinned = _run_script(exported[1])  # consistent with the key it carries, which anyone could have made
    assert unpinned.returncode == 3 and "UNANCHORED" in unpinned.stdout


def test_tampered_export_fails_offline_at_the_first_bad_seq(exported: tuple[Populated, Path]) -> None:
    path = exported[1] / "entries.jsonl"
    lines = path.read_text().splitlines()
    # An entry inside a transaction of several (it does not carry the range receipt), past the set-up.
    index = next(i for i in range(len(lines) // 2, len(lines)) if "range_receipt" not in json.loads(lines[i]))
    row = json.loads(lines[index])
    body = json.loads(base64.b64decode(row["body"]))
    body["payload"]["tampered"] = True
    import rfc8785

    row["body"] = base64.b64encode(rfc8785.dumps(body)).decode()
    lines[index] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")
    result = _run_script(exported[1])
    assert result.returncode == 1
    # The next entry no longer chains on this one; the transaction's range receipt would fail at its end too.
    assert f"seq {index}: chain_broken" in result.stdout


def test_truncated_export_is_caught_by_a_held_checkpoint(exported: tuple[Populated, Path], tmp_path: Path) -> None:
    populated, export = exported
    held = tmp_path / "held.note"
    held.write_text(populated.ledger.checkpoints()[-1][2])
    for note in (export / "checkpoints").iterdir():
        note.unlink()
    path = export / "entries.jsonl"
    lines = path.read_text().splitlines()
    # Cut at the end of a transaction (a line carrying its range receipt), as a careful attacker would.
    cut = max(i for i, line in enumerate(lines[:15]) if "range_receipt" in json.loads(line)) + 1
    path.write_text("\n".join(lines[:cut]) + "\n")
    last = base64.b64decode(json.loads(lines[cut - 1])["body"])
    (export / "head.json").write_text(json.dumps({"size": cut, "head_hash": leaf_hash(last).hex(),
                                                  "checkpoints": []}))  # and the head rewritten to match
    assert _run_script(export, *_pin(populated)).returncode == 0  # without the held checkpoint the loss is invisible
    result = _run_script(export, "--checkpoint", str(held))
    assert result.returncode == 1 and "truncated" in result.stdout


def test_inclusion_and_consistency_proofs_from_the_ledger(exported: tuple[Populated, Path]) -> None:
    ledger = exported[0].ledger
    proof = prove_inclusion(ledger, 7)
    checkpoint = proof.checkpoint
    merkle.verify_inclusion(proof.record_hash, 7, checkpoint.size, proof.hashes, checkpoint.root)
    assert proof.to_dict()["tree_size"] == checkpoint.size
    consistency = prove_consistency(ledger, 20, checkpoint.size)
    hashes = [base64.b64decode(h) for h in consistency["hashes"]]
    merkle.verify_consistency(20, checkpoint.size, merkle.root(ledger.leaf_hashes(20)), checkpoint.root, hashes)


def test_checkpoint_signer_invariants(exported: tuple[Populated, Path]) -> None:
    from charter.errors import CharterError

    ledger = exported[0].ledger
    size = ledger.size()
    assert make_checkpoint(ledger, size).size == size  # re-signing the same size returns the same note
    with pytest.raises(CharterError, match="smaller"):
        make_checkpoint(ledger, 10)
    with pytest.raises(CharterError):
        make_checkpoint(ledger, size + 1)
