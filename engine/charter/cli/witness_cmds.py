"""Commands for published checkpoints and witnesses: ``charter checkpoint publish`` and ``charter witness``.

The log operator publishes every signed checkpoint (with a consistency proof from the previous one)
to a directory that lives elsewhere. A witness, holding its own key and state file and no database
access, cosigns the published checkpoints in order, each only after checking that it extends the
last one it cosigned. ``charter verify --published DIR --witness W.pub`` then fails when the
database's history does not contain what was published and cosigned.
"""

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import CharterError
from .common import command_group, out, safe
from .ledger import DEFAULT_KEY, DbOption, KeyOption, open_ledger

if TYPE_CHECKING:
    from ..ledger import Ledger, SigningKey
    from ..ledger.auditor import Problem
    from ..ledger.witness import WitnessState

checkpoint_app = command_group("Signed checkpoints: publish them where the log operator cannot rewrite them.")
witness_app = command_group("Witness a log: cosign its checkpoints after checking they extend what was cosigned "
                            "before (C2SP tlog-witness, cosignature/v1).")

DEFAULT_WITNESS_KEY = Path(".charter/witness.key")


@checkpoint_app.command("publish")
def checkpoint_publish(
    directory: Annotated[Path, typer.Argument(help="The published directory (a git checkout, a synced bucket).")],
    db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Write every signed checkpoint to DIR as <size>.note, with <size>.proof from the previous one.

    Idempotent. Refuses (exit 1) when DIR holds a note that the ledger contradicts: another note of
    the same size (equivocation), or one the ledger's entries no longer reproduce.
    """
    from ..ledger.witness import publish_checkpoints

    ledger = open_ledger(db, ledger_key, writable=False)
    written = publish_checkpoints(ledger, directory)
    total = len(ledger.checkpoints())
    if written:
        out.print(f"published {len(written)} new checkpoints of {safe(ledger.origin)} to {safe(str(directory))} "
                  f"(sizes {', '.join(map(str, written))}); {total} in all")
    else:
        out.print(f"nothing new to publish: all {total} checkpoints are in {safe(str(directory))}")


@witness_app.command("keygen")
def witness_keygen(
    name: Annotated[str, typer.Argument(help="The witness's name, e.g. audit.example.com/witness.")],
    key_out: Annotated[Path, typer.Option("--out", help="The private key file; the public key goes beside it "
                                          "(.pub).")] = DEFAULT_WITNESS_KEY,
) -> None:
    """Generate a witness key: the private key for the witness, the .pub file for verifiers."""
    from ..ledger import SigningKey
    from ..ledger.keys import check_origin
    from ..ledger.witness import WitnessKey

    check_origin(name)
    if key_out.exists():
        raise CharterError.single("key_exists", "a key file already exists; refusing to overwrite", file=str(key_out))
    key = SigningKey.generate(name)
    public_path = key.save(key_out)
    out.print(f"witness {safe(name)}\n  private: {safe(str(key_out))} (keep it with the witness)\n"
              f"  public:  {safe(str(public_path))} (give it to verifiers: charter verify --witness)\n"
              f"  vkey:    {WitnessKey(name, key.public).vkey}", soft_wrap=True)  # copied whole: never wrapped


@witness_app.command("cosign")
def witness_cosign(
    log_key: Annotated[Path, typer.Option("--log-key", help="The log's public key as the witness pinned it "
                                          "(ORIGIN BASE64, e.g. a copy of ledger.pub).")],
    note_file: Annotated[Path | None, typer.Argument(help="A checkpoint note to cosign (or use --published).")]
    = None,
    key: Annotated[Path, typer.Option("--key", help="The witness's private key.")] = DEFAULT_WITNESS_KEY,
    state: Annotated[Path, typer.Option("--state", help="The witness's state file (created on first use).")]
    = Path(".charter/witness-state.json"),
    proof: Annotated[Path | None, typer.Option("--proof", help="Consistency proof from the last size cosigned "
                                               "(`charter ledger consistency OLD NEW`).")] = None,
    published: Annotated[Path | None, typer.Option("--published", help="Cosign the new notes of a published "
                                                   "directory, in order, with the proofs beside them.")] = None,
    output: Annotated[Path | None, typer.Option("--out", help="Write the cosigned note here (default: print "
                                                "it).")] = None,
) -> None:
    """Cosign a checkpoint after checking it extends the last one this witness cosigned (exit 1 if it does not).

    With --published DIR the witness needs no database: it walks DIR's notes above its last cosigned
    size, checks each against the one before with DIR's proof files, and adds its cosignature line
    to each note in DIR. With NOTE_FILE it checks --proof and prints (or --out) the cosigned note.
    """
    from ..ledger import SigningKey
    from ..ledger.keys import load_public_key_file
    from ..ledger.witness import WitnessState, locked

    if (note_file is None) == (published is None):
        raise CharterError.single("usage", "give either a NOTE_FILE or --published DIR")
    if published is not None and (proof is not None or output is not None):
        raise CharterError.single("usage", "--proof and --out go with NOTE_FILE, not with --published")
    witness_key = SigningKey.load(key)
    if not witness_key.principal:
        raise CharterError.single("key_file", "the key file does not name its witness (make it with "
                                  "`charter witness keygen`)", file=str(key))
    origin, public = load_public_key_file(log_key)
    with locked(state.with_name(state.name + ".lock")):
        witness_state = WitnessState.load(state, witness_key.principal)
        if published is not None:
            _cosign_published(published, witness_key, witness_state, state, public, origin)
        else:
            assert note_file is not None
            _cosign_one(note_file, proof, witness_key, witness_state, state, public, origin, output)


def _cosign_one(note_file: Path, proof_file: Path | None, witness_key: "SigningKey", witness_state: "WitnessState",
                state_path: Path, log_key: bytes, origin: str, output: Path | None) -> None:
    from .._sources import read_text
    from ..ledger.witness import MAX_NOTE_BYTES, cosign, load_proof, write_atomically

    note = read_text(note_file, MAX_NOTE_BYTES)
    proof = load_proof(proof_file) if proof_file is not None else None
    cosigned = cosign(note, proof, witness_key, witness_state, log_key, origin, int(time.time()),
                      file=str(note_file))
    witness_state.save(state_path)  # persisted before the cosignature is handed out
    if output is not None:
        write_atomically(output, cosigned)
        out.print(f"cosigned size {witness_state.logs[origin].size} of {safe(origin)}: {safe(str(output))}")
    else:
        typer.echo(cosigned, nl=False)


def _cosign_published(directory: Path, witness_key: "SigningKey", witness_state: "WitnessState", state_path: Path,
                      log_key: bytes, origin: str) -> None:
    from ..ledger.auditor import NoteError, open_checkpoint
    from ..ledger.witness import (
        WitnessKey,
        add_cosignature_to_published,
        cosign,
        find_cosignature,
        load_proof,
        proof_path,
        read_published,
    )

    me = WitnessKey(witness_key.principal, witness_key.public)
    done = []
    for published in read_published(directory):
        where = str(published.path)
        if published.text is None:
            raise CharterError.single("published_invalid", str(published.error), file=where)
        record = witness_state.logs.get(origin)
        last = record.size if record is not None else 0
        if published.size < last:
            continue
        try:
            size = open_checkpoint(published.text, origin, log_key).size
        except NoteError as exc:
            raise CharterError.single("witness_bad_note", f"refusing to cosign: {exc}", file=where) from exc
        if size != published.size:
            raise CharterError.single("published_invalid", f"the note is of size {size}", file=where)
        proof = None
        if record is not None and size > last:
            path = proof_path(directory, size)
            if not path.is_file():
                raise CharterError.single("witness_no_proof", f"no consistency proof for size {size} in the published "
                                          f"directory; ask the log for `charter ledger consistency {last} {size}` "
                                          "and cosign the note with --proof", file=str(path))
            proof = load_proof(path)
        elif record is not None and record.root == open_checkpoint(published.text, origin, log_key).root:
            try:
                if find_cosignature(published.text, me) is not None:
                    continue  # already cosigned, nothing new
            except NoteError:
                pass  # a broken line in our name: cosigning replaces it
        cosigned = cosign(published.text, proof, witness_key, witness_state, log_key, origin, int(time.time()),
                          file=where)
        witness_state.save(state_path)  # persisted before the cosignature is published
        add_cosignature_to_published(directory, size, cosigned, me)
        done.append(size)
    record = witness_state.logs.get(origin)
    if done:
        out.print(f"cosigned {safe(origin)} sizes {', '.join(map(str, done))} in {safe(str(directory))}")
    else:
        out.print(f"nothing new to cosign in {safe(str(directory))} (last cosigned size of {safe(origin)}: "
                  f"{record.size if record else 0})")


@witness_app.command("status")
def witness_status(
    state: Annotated[Path, typer.Option("--state", help="The witness's state file.")]
    = Path(".charter/witness-state.json"),
    key: Annotated[Path, typer.Option("--key", help="The witness's private key.")] = DEFAULT_WITNESS_KEY,
) -> None:
    """Print, per log, the last checkpoint this witness cosigned."""
    from ..ledger import SigningKey
    from ..ledger.witness import WitnessState

    witness_state = WitnessState.load(state, SigningKey.load(key).principal)
    if not witness_state.logs:
        out.print("this witness has cosigned nothing yet")
    for origin, record in sorted(witness_state.logs.items()):
        out.print(f"{safe(origin)}: size {record.size}, cosigned at {record.timestamp} (POSIX seconds)")


def check_for_verify(ledger: "Ledger", log_key: bytes, published: Path | None,
                     witness_files: list[Path]) -> "list[Problem]":
    """The problems `charter verify --published DIR --witness KEY...` adds to the report (and one line of news)."""
    from ..ledger.witness import load_witness_public_key, published_problems

    if published is None:
        raise CharterError.single("usage", "--witness needs --published DIR: the notes the witnesses cosigned")
    witnesses = [load_witness_public_key(path) for path in witness_files]
    problems, notes = published_problems(ledger, log_key, published, witnesses)
    if not problems:
        names = f", cosigned by {', '.join(w.name for w in witnesses)}" if witnesses else ""
        out.print(f"published: the ledger agrees with the {len(notes)} checkpoints in "
                  f"{safe(str(published))}{safe(names)}")
    return problems
