"""Publishing checkpoints, a witness without database access, and `verify --published --witness`, end to end.

The attacks are those of a log operator holding both the database and the log key: the database
alone verifies after them, the published and cosigned checkpoints do not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from charter.ledger import NewEntry, make_checkpoint
from charter.ledger.notes import sign_checkpoint
from charter.ledger.witness import note_path
from tests.conftest import run_cli
from tests.unit.ledger.helpers import ORIGIN, Populated, populate, transaction_ends
from tests.unit.ledger.test_witness import rewrite, truncate


class Setup:
    def __init__(self, populated: Populated, db_url: str, tmp_path: Path) -> None:
        self.populated, self.tmp = populated, tmp_path
        populated.log_key.save(tmp_path / "ledger.key")
        self.db = ("--db", db_url, "--ledger-key", str(tmp_path / "ledger.key"))
        self.published = tmp_path / "published"

    def cli(self, *args: str) -> tuple[int, str, str]:
        result = run_cli(*args, cwd=self.tmp)
        assert "Traceback" not in result.stderr, result.stderr
        return result.returncode, result.stdout, result.stderr

    def witness(self, *args: str) -> tuple[int, str, str]:
        return self.cli("witness", "cosign", "--key", "w/witness.key", "--log-key", "ledger.pub", "--state",
                        "w/state.json", *args)

    def verify(self, *args: str) -> tuple[int, str, str]:
        return self.cli("verify", "--full", *self.db, *args)


@pytest.fixture
def setup(db_url: str, tmp_path: Path) -> Setup:
    populated = populate(db_url, bundles=2)
    make_checkpoint(populated.ledger, 20)
    make_checkpoint(populated.ledger)
    s = Setup(populated, db_url, tmp_path)
    code, out, _ = s.cli("witness", "keygen", "audit.example/witness", "--out", "w/witness.key")
    assert code == 0 and "vkey:    audit.example/witness+" in out
    assert s.cli("checkpoint", "publish", "published", *s.db)[0] == 0
    code, out, err = s.witness("--published", "published")
    assert code == 0, err
    assert f"cosigned {ORIGIN} sizes 20, {populated.ledger.size()}" in out
    return s


def test_publish_cosign_verify_flow(setup: Setup) -> None:
    code, out, _ = setup.cli("checkpoint", "publish", "published", *setup.db)
    assert code == 0 and "nothing new to publish" in out  # the cosigned notes count as the same notes
    code, out, _ = setup.verify("--published", "published", "--witness", "w/witness.pub")
    assert code == 0, out
    assert "agrees with the 2 checkpoints" in out and "cosigned by audit.example/witness" in out
    code, out, _ = setup.witness("--published", "published")
    assert code == 0 and "nothing new to cosign" in out

    # a new checkpoint: published with its proof, cosigned from the published folder alone
    setup.populated.ledger.append([NewEntry("annotation", {"n": 1}, "later-1")])
    new = make_checkpoint(setup.populated.ledger)
    assert setup.cli("checkpoint", "publish", "published", *setup.db)[0] == 0
    code, out, _ = setup.witness("--published", "published")
    assert code == 0 and f"sizes {new.size}" in out
    code, out, _ = setup.cli("witness", "status", "--key", "w/witness.key", "--state", "w/state.json")
    assert f"{ORIGIN}: size {new.size}" in out


def test_explicit_note_and_proof(setup: Setup) -> None:
    old = setup.populated.ledger.size()
    setup.populated.ledger.append([NewEntry("annotation", {"n": 1}, "later-1")])
    new = make_checkpoint(setup.populated.ledger)
    code, proof, _ = setup.cli("ledger", "consistency", str(old), str(new.size), *setup.db)
    assert code == 0
    (setup.tmp / "proof.json").write_text(proof)
    (setup.tmp / "new.note").write_text(new.note)
    code, out, _ = setup.witness("new.note", "--proof", "proof.json")
    assert code == 0 and out.startswith(new.note) and "\u2014 audit.example/witness " in out
    # the same note with a proof from an older size: the witness says where it left off
    code, proof, _ = setup.cli("ledger", "consistency", "20", str(new.size), *setup.db)
    (setup.tmp / "old-proof.json").write_text(proof)
    code, _, err = setup.witness("new.note", "--proof", "old-proof.json")
    assert code == 2 and "witness_old_size" in err and "new.note" in err
    (setup.tmp / "bad.json").write_text(json.dumps({"old_size": "x"}))
    code, _, err = setup.witness("new.note", "--proof", "bad.json")
    assert code == 2 and "witness_proof" in err and "bad.json" in err
    code, _, err = setup.cli("verify", *setup.db, "--witness", "w/witness.pub")
    assert code == 2 and "--witness needs --published" in err


def test_equivocation_on_publish(setup: Setup) -> None:
    path = note_path(setup.published, 20)
    other = sign_checkpoint(ORIGIN, 20, bytes(32), setup.populated.log_key)
    path.write_text(other)
    code, _, err = setup.cli("checkpoint", "publish", "published", *setup.db)
    assert code == 1 and "equivocation" in err and "000000000020.note" in err
    assert path.read_text() == other


def _cut(setup: Setup) -> int:
    return next(end for end in transaction_ends(setup.populated.ledger.engine) if end > 20)


def test_truncation_by_the_log_key_holder_fails_verify(setup: Setup) -> None:
    full, cut = setup.populated.ledger.size(), _cut(setup)
    truncate(setup.populated, cut)
    make_checkpoint(setup.populated.ledger)  # re-signed
    code, out, _ = setup.verify()
    assert code == 0, out  # the database alone cannot tell
    code, out, _ = setup.verify("--published", "published", "--witness", "w/witness.pub")
    assert code == 1
    assert f"truncated: {full:012d}.note: a published checkpoint covers {full} entries, the ledger has only {cut}" \
        in out
    code, _, err = setup.cli("checkpoint", "publish", "published", *setup.db)
    assert code == 1 and "inconsistent_history" in err  # the log cannot publish over what it published


def test_rewrite_by_the_log_key_holder_fails_verify(setup: Setup) -> None:
    full, cut = setup.populated.ledger.size(), _cut(setup)
    rewrite(setup.populated, cut, full + 2)
    new = make_checkpoint(setup.populated.ledger)  # re-signed
    assert setup.verify()[0] == 0
    code, out, _ = setup.verify("--published", "published", "--witness", "w/witness.pub")
    assert code == 1 and "checkpoint_mismatch" in out and "history was rewritten" in out
    # the witness refuses the new history: the only proof the log can make starts from its own checkpoint
    (setup.tmp / "new.note").write_text(new.note)
    code, proof, _ = setup.cli("ledger", "consistency", "20", str(new.size), *setup.db)
    assert code == 0
    document = json.loads(proof)
    document["old_size"] = full  # claim it starts where the witness left off
    (setup.tmp / "proof.json").write_text(json.dumps(document))
    code, _, err = setup.witness("new.note", "--proof", "proof.json")
    assert code == 1 and "witness_inconsistent" in err
