"""`charter applicability`: put a Statement of Applicability or target profile in force, and explain decisions."""

import json
from pathlib import Path
from typing import Annotated

import typer

from ..errors import CharterError
from .common import OutputFormat, command_group, out, parse_time, print_listing, safe
from .ledger import DEFAULT_KEY, DbOption, KeyOption, SignOnlyOption, open_ledger, write_signed

applicability_app = command_group("Which controls apply to which system: Statement of Applicability, target "
                                  "profile, EU AI Act classification.")


@applicability_app.command("activate")
def applicability_activate(
    file: Annotated[Path, typer.Argument(help="The Statement of Applicability or target profile (YAML).")],
    key: Annotated[Path, typer.Option("--key", help="Your private key (a policy approver's).")],
    sign_only: SignOnlyOption = None, db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Put a Statement of Applicability (ISO/IEC 42001) or target profile (NIST AI RMF) in force, as a policy
    approver, after validating it against the catalog (every control decided, each with its justification)."""
    from ..applicability import activate_applicability, applicability_statement, load_applicability_file
    from ..frameworks import load_frameworks
    from ..ledger import SigningKey
    from ..ledger.auditor import APPLICABILITY_ACTIVATED

    document = load_applicability_file(file, load_frameworks())
    if sign_only is not None:
        reader = open_ledger(db, ledger_key, writable=False)
        in_force = reader.authority().applicability_seqs.get(document.framework)
        statement = applicability_statement(document.model_dump(mode="json"), in_force)
        write_signed(sign_only, APPLICABILITY_ACTIVATED, [statement], SigningKey.load(key), reader)
        return
    entry = activate_applicability(open_ledger(db, ledger_key, writable=True), document, SigningKey.load(key))
    if entry is None:
        out.print(f"this {safe(document.label())} is already in force")
        return
    excluded = sum(not d.included for d in document.decisions)
    out.print(f"seq {entry.seq}: {safe(document.label())} for {document.framework} in force "
              f"({len(document.decisions)} decisions, {excluded} excluded), activated by "
              f"{safe(entry.payload['actor'])}")


@applicability_app.command("show")
def applicability_show(
    system: Annotated[str, typer.Option("--system", help="The registered system.")],
    framework: Annotated[str, typer.Option("--framework", help="eu-ai-act, iso-42001 or nist-ai-rmf.")],
    at: Annotated[str, typer.Option("--at", help="When (ISO 8601 or 'now'): the registry, classification and "
                                    "documents as they stood then, and the dates in application.")] = "now",
    output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = OutputFormat.TABLE,
    db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Explain, control by control, whether each applies to a system and why (status, reason, date, source)."""
    from ..applicability import control_applicability, state_at
    from ..frameworks import load_frameworks

    frameworks = load_frameworks()
    if framework not in frameworks:
        raise CharterError.single("unknown_framework", f"framework {safe(framework)!r} is not loaded (known: "
                                  f"{', '.join(sorted(frameworks))})", path="--framework")
    when = parse_time(at)
    systems, statements = state_at(open_ledger(db, ledger_key, writable=False), when)
    if system not in systems:
        raise CharterError.single("unknown_system", f"system {safe(system)!r} was not registered in the ledger at "
                                  f"{when.isoformat()} (registered: {', '.join(sorted(systems)) or 'none'})")
    catalog = frameworks[framework]
    decisions = [(control, control_applicability(catalog, control.id, systems[system], when, statements))
                 for control in catalog.controls.values()]
    if output is OutputFormat.JSON:
        typer.echo(json.dumps({"system": system, "framework": framework, "at": when.isoformat(), "controls": [
            {"control": c.id, "title": c.title, "status": a.status, "reason": a.reason,
             "applies_from": a.applies_from.isoformat() if a.applies_from else None, "source": a.source}
            for c, a in decisions]}, indent=2, ensure_ascii=False))
        return
    counts: dict[str, int] = {}
    for _, decided in decisions:
        counts[decided.status] = counts.get(decided.status, 0) + 1
    print_listing(f"{framework} for {system} at {when.isoformat()}", ["control", "status", "from", "reason", "source"],
                  [[c.id, a.status, str(a.applies_from or ""), a.reason, a.source] for c, a in decisions],
                  ids={"control"})
    out.print(", ".join(f"{n} {status.replace('_', ' ')}" for status, n in sorted(counts.items())))
    if counts.get("undetermined"):
        out.print(f"[yellow]{counts['undetermined']} controls are undetermined: nothing recorded decides them "
                  "(classify the system, or activate a Statement of Applicability or target profile)[/]")
