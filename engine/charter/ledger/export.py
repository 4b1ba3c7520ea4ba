"""`charter ledger export DIR`: everything an auditor needs, without the database or Charter.

The directory holds ``entries.jsonl`` (each entry's exact body bytes and receipt), ``checkpoints/``
(signed notes), ``head.json`` (the head row and the checkpoint rows, as the database stores them),
``trust_root.json`` (origin and log public key: the verifier trusts it only when you pin it with
the copy you were given out of band), ``controls.json`` (the catalogs' citable and organisation-level
controls the evidence rule checks against) and ``verify.py``, the standalone verifier.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

from ..errors import CharterError
from . import auditor
from .store import Ledger


def export_ledger(ledger: Ledger, directory: Path) -> int:
    """Write the export to `directory` (which must be empty or absent); returns the entry count.

    Raises:
        CharterError: ``export_target`` when the directory exists and is not empty.
    """
    if directory.exists() and not directory.is_dir():
        raise CharterError.single("export_target", "exists and is not a directory; give a new or empty directory",
                                  file=str(directory))
    if directory.exists() and any(directory.iterdir()):
        raise CharterError.single("export_target", "the export directory is not empty", file=str(directory))
    try:
        (directory / "checkpoints").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CharterError.single("export_target", f"cannot create the export directory: {exc.strerror or exc}",
                                  file=str(directory)) from exc
    meta = ledger.meta()
    trust = {"origin": ledger.origin, "log_key_id": meta["log_key_id"], "log_public_key": meta["log_public_key"]}
    (directory / "trust_root.json").write_text(json.dumps(trust, indent=2) + "\n", encoding="utf-8")
    count = 0
    with ledger.snapshot() as connection, (directory / "entries.jsonl").open("w", encoding="utf-8") as handle:
        for entry in ledger.snapshot_entries(connection):
            line: dict[str, object] = {"seq": entry.seq, "body": base64.b64encode(entry.body).decode(),
                                       "receipt": entry.receipt}
            if entry.range_receipt is not None:  # this entry closes an append transaction
                closing = entry.range_receipt
                line["range_receipt"] = {"first": closing.first, "root": base64.b64encode(closing.root).decode(),
                                         "signature": closing.signature}
            handle.write(json.dumps(line) + "\n")
            count += 1
        checkpoints = ledger.snapshot_checkpoints(connection)
        size, head_hash, last_received = ledger.snapshot_head(connection)
    head = {"size": size, "head_hash": head_hash.hex(), "last_received_at": last_received,
            "checkpoints": [{"size": s, "root": root.hex(), "note": note} for s, root, note in checkpoints]}
    (directory / "head.json").write_text(json.dumps(head, indent=2) + "\n", encoding="utf-8")
    for size, _, note in checkpoints:
        (directory / "checkpoints" / f"{size:012d}.note").write_text(note, encoding="utf-8")
    # What the standalone verifier checks evidence against (its --controls: an auditor may bring their own).
    (directory / "controls.json").write_text(json.dumps(ledger.controls.to_dict(), indent=1) + "\n",
                                             encoding="utf-8")
    shutil.copyfile(auditor.__file__, directory / "verify.py")
    return count
