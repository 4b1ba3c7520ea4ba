"""A working directory with a governed ledger, as the CLI finds it: built in-process, fast.

The ledger sits where the CLI looks by default (``.charter/ledger.db``, ``.charter/ledger.key``),
with the demo's authority set-up (`charter.cli.demo.demo_governance`) and everyone's private key
in ``.charter/keys/NAME.key``, so tests can act as any principal with ``--key``.
"""

from __future__ import annotations

from pathlib import Path

from charter.cli.demo import demo_governance
from charter.ledger import Ledger, SigningKey
from tests.conftest import run_cli
from tests.unit.ledger.helpers import ESCALATION, POLICIES, REGISTRY

ORIGIN = "charter.local/ledger"


def governed_ledger(directory: Path, *, activate_escalation: bool = True) -> Ledger:
    """Create the ledger in `directory`; with `activate_escalation` False, no escalation configuration is in force."""
    log_key = SigningKey.generate(ORIGIN)
    log_key.save(directory / ".charter" / "ledger.key")
    ledger = Ledger.open(f"sqlite:///{directory / '.charter' / 'ledger.db'}", log_key=log_key, origin=ORIGIN,
                         create=True)
    keys = demo_governance(ledger, REGISTRY, POLICIES.policies, ESCALATION, activate_escalation=activate_escalation)
    for name, key in keys.items():
        key.save(directory / ".charter" / "keys" / f"{name}.key")
    return ledger


def governance_args(directory: Path, admins: tuple[str, ...] = ("ana.costa",), threshold: int = 1) -> list[str]:
    """``--governance FILE --admin-key KEY...`` for `charter ledger init`: a governance file and its admins' keys."""
    import yaml

    keys = directory / ".charter" / "keys"
    for name in admins:
        if not (keys / f"{name}.key").exists():
            SigningKey.generate(name).save(keys / f"{name}.key")
    document = {"administrators": [{"principal": name, "public_key_file": f".charter/keys/{name}.pub"}
                                   for name in admins],
                "threshold": threshold, "roles": {"system_registrar": [admins[0]]}}
    (directory / "governance.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    args = ["--governance", str(directory / "governance.yaml")]
    for name in admins[:threshold]:
        args += ["--admin-key", str(keys / f"{name}.key")]
    return args


def governed_cli(directory: Path, *args: str) -> tuple[int, str, str]:
    """Run `charter ARGS` in `directory`: (exit code, stdout, stderr), never a traceback."""
    result = run_cli(*args, cwd=directory)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout, result.stderr


def ledger_size(directory: Path) -> int:
    """The number of entries of the ledger in `directory`, as a full `charter verify` counts them."""
    code, out, _ = governed_cli(directory, "verify", "--full")
    assert code == 0, out
    return int(out.split("OK: ")[1].split()[0])
