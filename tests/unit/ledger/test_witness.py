"""Witness cosignatures (C2SP cosignature/v1), the witness's consistency checks, publishing and checking notes."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, select, update

from charter.errors import CharterError
from charter.ledger import NewEntry, SigningKey, make_checkpoint, prove_consistency, verify_ledger
from charter.ledger.auditor import NoteError, open_checkpoint
from charter.ledger.notes import sign_checkpoint
from charter.ledger.schema import checkpoint, ledger_entry, ledger_head, ledger_receipt
from charter.ledger.witness import (
    ConsistencyProof,
    WitnessKey,
    WitnessState,
    cosign,
    cosignature_key_id,
    cosignature_message,
    find_cosignature,
    load_witness_public_key,
    make_cosignature,
    note_path,
    parse_proof,
    proof_path,
    publish_checkpoints,
    published_problems,
    read_published,
)
from tests.unit.ledger.helpers import ORIGIN, Populated, drop_guards, populate, transaction_ends

# -- the byte format, against the C2SP tlog-cosignature text ----------------------------------------

#: The checkpoint body of the tlog-cosignature spec's example, and the time of its signed-message example.
SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_TIME = 1679315147
#: The spec's example cosignature line (its witness key is not published, so only its layout can be checked).
SPEC_LINE = ("\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJs"
             "X3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==")
#: RFC 8032 section 7.1 TEST 1 secret key, used as the witness key of a known-answer vector.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
#: Derived with hashlib and cryptography alone from the spec's rules (key ID, message, timestamped_signature);
#: Ed25519 is deterministic, so the line is fixed.
VECTOR_KEY_ID = "7e6f4aaa"
VECTOR_LINE = ("\u2014 witness.example.com/w1 fm9KqgAAAABkGFDL+TPmh4BYuAjsYRoqMJCWb/gWJaeRF/kmm5tlCr9sJ57DLErur7"
               "K0yDXc2ArN+TIuotuB/HbuL3AJsp3bv/aNCQ==")


def _vector_key() -> SigningKey:
    return SigningKey("witness.example.com/w1", Ed25519PrivateKey.from_private_bytes(RFC8032_SEED))


def test_spec_example_layout() -> None:
    blob = base64.b64decode(SPEC_LINE.split(" ")[2])
    assert len(blob) == 4 + 8 + 64  # key ID || u64 timestamp || Ed25519 signature
    assert int.from_bytes(blob[4:12], "big") == SPEC_TIME  # the time of the spec's signed-message example
    assert cosignature_message(SPEC_BODY, SPEC_TIME) == (
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n")


def test_known_answer_vector() -> None:
    key = _vector_key()
    assert key.public == RFC8032_PUBLIC
    assert cosignature_key_id(key.principal, key.public).hex() == VECTOR_KEY_ID
    line = make_cosignature(SPEC_BODY, key, SPEC_TIME)
    assert line == VECTOR_LINE
    note = SPEC_BODY + "\n" + SPEC_LINE + "\n" + line + "\n"
    witness = WitnessKey(key.principal, key.public)
    found = find_cosignature(note, witness)
    assert found is not None and found.timestamp == SPEC_TIME
    # the spec's own line has the same name but another key ID: it is ignored, not judged
    assert find_cosignature(SPEC_BODY + "\n" + SPEC_LINE + "\n", witness) is None
    with pytest.raises(NoteError, match="does not verify"):
        find_cosignature(note.replace("20852163", "20852164"), witness)


def test_witness_public_key_files(tmp_path: Path) -> None:
    key = _vector_key()
    key.save(tmp_path / "w.key")
    witness = load_witness_public_key(tmp_path / "w.pub")
    assert witness == WitnessKey(key.principal, key.public)
    (tmp_path / "w.vkey").write_text(witness.vkey + "\n")
    assert witness.vkey.startswith(f"witness.example.com/w1+{VECTOR_KEY_ID}+BN")
    assert load_witness_public_key(tmp_path / "w.vkey") == witness
    (tmp_path / "bad.vkey").write_text(witness.vkey.replace(VECTOR_KEY_ID, "00000000"))
    with pytest.raises(CharterError) as caught:
        load_witness_public_key(tmp_path / "bad.vkey")
    assert caught.value.code == "key_file" and caught.value.location.file == str(tmp_path / "bad.vkey")


# -- the witness ------------------------------------------------------------------------------------

WITNESS = SigningKey.generate("audit.example/witness")


@pytest.fixture
def log(db_url: str) -> Populated:
    populated = populate(db_url, bundles=2)
    make_checkpoint(populated.ledger, 20)
    make_checkpoint(populated.ledger, 30)
    make_checkpoint(populated.ledger)
    return populated


def _proof(populated: Populated, old: int, new: int) -> ConsistencyProof:
    return parse_proof(prove_consistency(populated.ledger, old, new))


def _note(populated: Populated, size: int) -> str:
    return next(note for s, _, note in populated.ledger.checkpoints() if s == size)


def _cosign(populated: Populated, size: int, proof: ConsistencyProof | None, state: WitnessState) -> str:
    return cosign(_note(populated, size), proof, WITNESS, state, populated.log_key.public, ORIGIN, 1_800_000_000)


def test_cosign_happy_path(log: Populated, tmp_path: Path) -> None:
    state = WitnessState(WITNESS.principal)
    first = _cosign(log, 20, None, state)
    assert first.startswith(_note(log, 20)) and first.count("\n\u2014 ") == 2
    full = log.ledger.size()
    cosigned = _cosign(log, full, _proof(log, 20, full), state)
    assert open_checkpoint(cosigned, ORIGIN, log.log_key.public).size == full  # the log's line still verifies
    found = find_cosignature(cosigned, WitnessKey(WITNESS.principal, WITNESS.public))
    assert found is not None and found.timestamp == 1_800_000_000
    assert state.logs[ORIGIN].size == full
    again = _cosign(log, full, None, state)  # the same checkpoint again: a fresh cosignature, still one line
    assert again.count("\n\u2014 ") == cosigned.count("\n\u2014 ") == 2
    state.save(tmp_path / "state.json")
    loaded = WitnessState.load(tmp_path / "state.json", WITNESS.principal)
    assert loaded.logs[ORIGIN].size == full and loaded.logs[ORIGIN].root == state.logs[ORIGIN].root
    with pytest.raises(CharterError) as caught:
        WitnessState.load(tmp_path / "state.json", "someone.else/witness")
    assert caught.value.code == "witness_state"


def _refused(code: str, populated: Populated, size: int, proof: ConsistencyProof | None, state: WitnessState,
             note: str | None = None) -> None:
    before = json.loads(state.to_json())
    with pytest.raises(CharterError) as caught:
        cosign(note or _note(populated, size), proof, WITNESS, state, populated.log_key.public, ORIGIN, 1)
    assert caught.value.code == code, caught.value
    assert json.loads(state.to_json()) == before  # a refusal changes nothing


def test_inconsistent_proof_is_refused(log: Populated) -> None:
    state = WitnessState(WITNESS.principal)
    _cosign(log, 20, None, state)
    full = log.ledger.size()
    proof = _proof(log, 20, full)
    bent = ConsistencyProof(20, full, (bytes(32), *proof.hashes[1:]))
    _refused("witness_inconsistent", log, full, bent, state)
    _refused("witness_inconsistent", log, full, ConsistencyProof(20, full, proof.hashes[:-1]), state)
    _refused("witness_old_size", log, full, _proof(log, 30, full), state)  # not from where the witness left off
    _refused("witness_proof", log, full, _proof(log, 20, 30), state)  # a proof to another size


def test_rollback_is_refused(log: Populated) -> None:
    state = WitnessState(WITNESS.principal)
    _cosign(log, 30, None, state)
    _refused("witness_rollback", log, 20, None, state)
    _refused("witness_rollback", log, 20, ConsistencyProof(30, 20, ()), state)


def test_same_size_with_another_root_and_foreign_notes_are_refused(log: Populated) -> None:
    state = WitnessState(WITNESS.principal)
    _cosign(log, 30, None, state)
    other = sign_checkpoint(ORIGIN, 30, bytes(32), log.log_key)  # the log key signing a second history
    _refused("witness_conflict", log, 30, None, state, note=other)
    forged = sign_checkpoint(ORIGIN, 40, bytes(32), SigningKey.generate(ORIGIN))
    _refused("witness_bad_note", log, 40, None, state, note=forged)
    with pytest.raises(CharterError) as caught:
        cosign(_note(log, 30), None, WITNESS, state, SigningKey.generate(ORIGIN).public, ORIGIN, 1)
    assert caught.value.code == "witness_bad_note"


# -- publishing -------------------------------------------------------------------------------------


def test_publish_is_idempotent_and_writes_proofs(log: Populated, tmp_path: Path) -> None:
    directory = tmp_path / "published"
    sizes = [size for size, _, _ in log.ledger.checkpoints()]
    assert publish_checkpoints(log.ledger, directory) == sizes
    assert publish_checkpoints(log.ledger, directory) == []
    assert [n.size for n in read_published(directory)] == sizes
    assert not proof_path(directory, sizes[0]).exists()
    proof = json.loads(proof_path(directory, sizes[-1]).read_text())
    assert (proof["old_size"], proof["new_size"]) == (sizes[-2], sizes[-1])
    assert note_path(directory, 20).read_text() == _note(log, 20)
    assert published_problems(log.ledger, log.log_key.public, directory) == ([], read_published(directory))
    assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_publishing_over_a_different_note_of_the_same_size_is_refused(log: Populated, tmp_path: Path) -> None:
    directory = tmp_path / "published"
    directory.mkdir()
    other = sign_checkpoint(ORIGIN, 30, bytes(32), log.log_key)
    note_path(directory, 30).write_text(other)
    with pytest.raises(CharterError) as caught:
        publish_checkpoints(log.ledger, directory)
    assert caught.value.code == "equivocation" and caught.value.location.file == str(note_path(directory, 30))
    assert note_path(directory, 30).read_text() == other  # never overwritten
    assert [n.size for n in read_published(directory)] == [30]  # and nothing else written


# -- the two attacks by the holder of the log key ----------------------------------------------------


def truncate(populated: Populated, cut: int) -> None:
    """Delete entries from `cut` on by SQL, with their receipts and checkpoints, and fix the head row."""
    engine = populated.ledger.engine
    drop_guards(engine)
    with engine.begin() as connection:
        last = connection.execute(select(ledger_entry).where(ledger_entry.c.seq == cut - 1)).one()
        connection.execute(delete(ledger_entry).where(ledger_entry.c.seq >= cut))
        connection.execute(delete(ledger_receipt).where(ledger_receipt.c.last_seq >= cut))
        connection.execute(delete(checkpoint).where(checkpoint.c.size > cut))
        connection.execute(update(ledger_head).values(size=cut, head_hash=last.record_hash,
                                                      last_received_at=last.received_at))


def rewrite(populated: Populated, cut: int, size: int) -> None:
    """Truncate at `cut` and append other entries under the log key until the ledger has `size` entries."""
    truncate(populated, cut)
    populated.ledger.append([NewEntry("annotation", {"forged": i}, f"forged-{i}") for i in range(size - cut)])


def _cut(populated: Populated) -> int:
    return next(end for end in transaction_ends(populated.ledger.engine) if end > 30)


def _attacked(log: Populated, tmp_path: Path, attack: Any) -> list[Any]:
    directory = tmp_path / "published"
    publish_checkpoints(log.ledger, directory)
    state = WitnessState(WITNESS.principal)
    for published in read_published(directory):
        proof = None if published.size == 20 else parse_proof(json.loads(proof_path(directory,
                                                                                    published.size).read_text()))
        assert published.text is not None
        note_path(directory, published.size).write_text(
            cosign(published.text, proof, WITNESS, state, log.log_key.public, ORIGIN, 1))
    witness = WitnessKey(WITNESS.principal, WITNESS.public)
    assert published_problems(log.ledger, log.log_key.public, directory, [witness])[0] == []
    attack()
    make_checkpoint(log.ledger)  # re-signed with the log key
    assert verify_ledger(log.ledger, log.log_key.public).ok  # the database alone looks fine
    return published_problems(log.ledger, log.log_key.public, directory, [witness])[0]


def test_truncation_and_re_signing_is_caught_by_published_notes(log: Populated, tmp_path: Path) -> None:
    full, cut = log.ledger.size(), _cut(log)
    problems = _attacked(log, tmp_path, lambda: truncate(log, cut))
    assert [(p.seq, p.kind) for p in problems] == [(cut, "truncated")]
    assert f"covers {full} entries, the ledger has only {cut}" in problems[0].detail


def test_rewrite_and_re_signing_is_caught_by_published_notes(log: Populated, tmp_path: Path) -> None:
    full, cut = log.ledger.size(), _cut(log)
    problems = _attacked(log, tmp_path, lambda: rewrite(log, cut, full + 3))
    assert [p.kind for p in problems] == ["checkpoint_mismatch"]
    assert f"{full:012d}.note" in problems[0].detail
    # and the witness will not cosign the new history: no proof leads from what it cosigned
    state = WitnessState(WITNESS.principal)
    _cosign_from_published(log, tmp_path / "published", state)
    new = _note(log, full + 3)
    _refused("witness_inconsistent", log, full + 3, ConsistencyProof(full, full + 3, (bytes(32),) * 3), state,
             note=new)


def _cosign_from_published(populated: Populated, directory: Path, state: WitnessState) -> None:
    for published in read_published(directory):
        assert published.text is not None
        proof = None if not state.logs else parse_proof(json.loads(proof_path(directory, published.size).read_text()))
        cosign(published.text, proof, WITNESS, state, populated.log_key.public, ORIGIN, 1)


def test_missing_and_foreign_notes_are_reported(log: Populated, tmp_path: Path) -> None:
    directory = tmp_path / "published"
    publish_checkpoints(log.ledger, directory)
    witness = WitnessKey(WITNESS.principal, WITNESS.public)
    problems, _ = published_problems(log.ledger, log.log_key.public, directory, [witness])
    assert [p.kind for p in problems] == ["missing_cosignature"]
    note_path(directory, 25).write_text(sign_checkpoint(ORIGIN, 25, bytes(32), SigningKey.generate(ORIGIN)))
    note_path(directory, 26).write_text("not a note")
    problems, _ = published_problems(log.ledger, log.log_key.public, directory)
    assert [p.kind for p in problems] == ["published_wrong_key", "published_invalid"]
