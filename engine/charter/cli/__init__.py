"""The ``charter`` command: a thin layer that parses arguments, calls the library and renders.

Exit codes: 0 ok, 1 breaches or failing tests or verification failures, 2 bad input or usage (`charter
audit` adds 3: all verdicts agree over an export nothing outside it anchors). Bad
input is reported as the located diagnostics of a `CharterError`, never as a traceback.
"""

import gc
import sys
from typing import Annotated

import typer

from .. import __version__
from .._limits import DEFAULT_MAX_INPUT_BYTES, LIMITS
from ..errors import CharterError
from . import (
    applicability_cmds,
    audit_cmds,
    backtest_cmds,
    core,
    demo,
    escalation_cmds,
    evidence_cmds,
    governance_cmds,
    incidents_cmds,
    ingest_cmds,
    ledger,
    report_cmds,
    serve_cmds,
    tokens_cmds,
    witness_cmds,
)
from .common import command_group, err, print_diagnostics

app = typer.Typer(help="Charter: policy-as-code governance for AI performance.", no_args_is_help=True,
                  rich_markup_mode=None,
                  add_completion=False, pretty_exceptions_enable=False)
policy_app = command_group("Lint and test policies.")
policy_app.command("lint")(core.policy_lint)
policy_app.command("test")(core.policy_test)
policy_app.command("publish")(governance_cmds.policy_publish)
policy_app.command("activate")(governance_cmds.policy_activate)
escalation_cmds.escalation_app.command("activate")(governance_cmds.escalation_activate)
app.add_typer(policy_app, name="policy")
app.command()(core.kpis)
app.command()(core.schema)
app.command()(core.evaluate)
app.command()(demo.demo)
app.command()(ledger.submit)
app.command("replay")(ledger.replay_command)
app.command()(ledger.verify)
app.add_typer(ledger.ledger_app, name="ledger")
app.add_typer(witness_cmds.checkpoint_app, name="checkpoint")
app.add_typer(witness_cmds.witness_app, name="witness")
app.add_typer(ledger.keys_app, name="keys")
app.add_typer(tokens_cmds.tokens_app, name="tokens")
app.command("whoami")(tokens_cmds.whoami)
app.add_typer(ledger.systems_app, name="systems")
app.add_typer(governance_cmds.governance_app, name="governance")
app.add_typer(escalation_cmds.escalation_app, name="escalation")
app.add_typer(incidents_cmds.incidents_app, name="incidents")
app.add_typer(evidence_cmds.evidence_app, name="evidence")
app.command()(incidents_cmds.escalate)
app.command("metrics")(incidents_cmds.metrics_command)
app.add_typer(report_cmds.report_app, name="report")
app.command("backtest")(backtest_cmds.backtest_command)
app.command("audit")(audit_cmds.audit_command)
app.add_typer(applicability_cmds.applicability_app, name="applicability")
app.command("serve")(serve_cmds.serve)
app.command("ingest")(ingest_cmds.ingest)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
    max_input_bytes: Annotated[int, typer.Option(
        "--max-input-bytes", envvar="CHARTER_MAX_INPUT_BYTES", min=1,
        help="Largest input file Charter reads (bundles, policies, registries, notes).")]
    = DEFAULT_MAX_INPUT_BYTES,
) -> None:
    LIMITS.max_bytes = max_input_bytes
    if version:
        typer.echo(f"charter {__version__}")
        raise typer.Exit(0)


#: errors that report a ledger failing verification rather than bad input: exit code 1, like `charter verify`
#: (a witness refusing a checkpoint that contradicts what it cosigned is such a failure of the log)
INTEGRITY_FAILURES = frozenset({"ledger_damaged", "inconsistent_history", "equivocation", "witness_rollback",
                                "witness_inconsistent", "witness_conflict"})


def main() -> None:
    """Entry point: run the app, turning `CharterError` into located messages and exit code 2 (1 for integrity).

    Click's standalone mode already maps usage errors to exit code 2 and `typer.Exit` to its code;
    only our own error family needs handling here. Any other exception is a bug and keeps its traceback.
    """
    # Start-up allocates a few hundred thousand objects that live as long as the process (modules,
    # classes, functions): at the default threshold of 700 the collector walks them in over a hundred
    # young and one full collection, a tenth of a read command's time, and finds almost nothing.
    gc.set_threshold(_YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
    try:
        if sys.argv[1:] == ["--version"]:
            # What `_root` prints, without typer first building every command.
            typer.echo(f"charter {__version__}")
            return
        try:
            app()
        except CharterError as exc:
            print_diagnostics(exc.diagnostics, "error", "bold red")
            if len(exc.diagnostics) > 1:
                err.print(f"{len(exc.diagnostics)} problems found")
            sys.exit(1 if {d.code for d in exc.diagnostics} <= INTEGRITY_FAILURES else 2)
    finally:
        # The interpreter's exit collects every object once more before freeing it; frozen objects are
        # left out of that collection (they are still freed, files closed, atexit handlers run).
        gc.freeze()


#: Allocations between young-generation collections in the CLI (Python's default is 700).
_YOUNG_GC_THRESHOLD = 100_000


__all__ = ["app", "main"]
