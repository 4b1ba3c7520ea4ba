"""`charter demo`: the governance loop on a fresh ledger, from keys to a verified trail."""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .. import __version__
from .._data import builtin_dir
from ..evaluate import Status
from ..ledger import Ledger, SigningKey, make_checkpoint, verify_ledger
from ..registry import SystemRegistry
from ..submission import register_key, register_system, submit_bundle
from .common import compile_policies, out, print_findings

DEMO_ORIGIN = "charter.demo/ledger"


def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo ledger and keys go; recreated on every run.")]
    = Path(".charter/demo"),
) -> None:
    """Run the loop: keys for the owners, systems registered, bundles submitted, findings, verify."""
    evidence = builtin_dir("evidence")
    policies = builtin_dir("policies")
    if workdir.exists():
        shutil.rmtree(workdir)
    policy_set, catalog, _ = compile_policies(policies, None, None)
    bundles = sorted(evidence.glob("*.json"), key=lambda p: json.loads(p.read_text())["measured_at"])
    # The demo replays the year: each bundle arrives when it was measured, so the ledger's clock is
    # set to that moment rather than today's (which would make every bundle stale).
    moments = [datetime.datetime.fromisoformat(json.loads(p.read_text())["measured_at"]) for p in bundles]
    clock = {"now": moments[0] - datetime.timedelta(days=1)}
    log_key = SigningKey.generate(DEMO_ORIGIN)
    log_key.save(workdir / "ledger.key")
    ledger = Ledger.open(f"sqlite:///{workdir / 'ledger.db'}", log_key=log_key, origin=DEMO_ORIGIN, create=True,
                         clock=lambda: clock["now"])
    out.print(f"[bold]Charter {__version__} demo[/]: a fresh ledger at {workdir / 'ledger.db'}\n")

    registry = SystemRegistry.from_file(evidence / "systems.yaml", catalog)
    owner_keys: dict[str, SigningKey] = {}
    for system in registry.values():
        if system.owner not in owner_keys:
            owner_keys[system.owner] = SigningKey.generate(system.owner)
            owner_keys[system.owner].save(workdir / "keys" / f"{system.owner}.key")
            register_key(ledger, system.owner, owner_keys[system.owner].public)
        register_system(ledger, system)
        out.print(f"registered {system.id} ({system.risk_tier.value} risk), owner {system.owner} with a new key")

    findings = []
    for path, moment in zip(bundles, moments, strict=True):
        clock["now"] = moment
        owner = registry[json.loads(path.read_text())["system_id"]].owner
        result = submit_bundle(ledger, path.read_bytes(), catalog, policy_set.policies, key=owner_keys[owner],
                               file=path.name)
        findings.extend(result.findings)
        count = sum(f.status is Status.BREACH for f in result.findings)
        out.print(f"submitted {path.name} signed by {owner}: seq {result.receipt.seq}, "
                  f"{len(result.findings)} findings" + (f", [bold red]{count} breaches[/]" if count else ""))
    out.print()
    print_findings(sorted(findings, key=lambda f: (f.system_id, f.window_end)), False,
                   "Findings per system and window (details below for all but passes)")
    checkpoint = make_checkpoint(ledger)
    report = verify_ledger(ledger, log_key.public)
    out.print(f"\ncheckpoint signed at size {checkpoint.size}; verify: " + escape(report.summary()))
    breaches = [f for f in findings if f.status is Status.BREACH]
    out.print(f"{len(breaches)} breaches across {len({f.system_id for f in breaches})} systems, all in a verified "
              f"ledger. Inspect it with `charter verify --db sqlite:///{workdir / 'ledger.db'} --ledger-key "
              f"{workdir / 'ledger.key'}`.")
    if not report.ok:
        raise typer.Exit(1)
