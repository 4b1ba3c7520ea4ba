"""`charter incidents ...`, `charter escalate` and `charter metrics`: the incident workflow and Art. 73 reporting."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .._text import echo
from ..errors import CharterError
from .common import OutputFormat, command_group, out, parse_time, print_listing, safe
from .ledger import (
    DEFAULT_KEY,
    DbOption,
    KeyOption,
    SignOnlyOption,
    open_ledger,
    open_reader,
    signing_origin,
    write_signed,
)
from .remote import refuse_options, remote_client

if TYPE_CHECKING:
    from ..escalation import EscalationGraph
    from ..incidents import Incident
    from ..ledger import Ledger

incidents_app = command_group("List, show and move incidents.")
#: one command per action of `charter.incidents.ACTIONS` (a test keeps the two equal)
ACTION_NAMES = ("acknowledge", "investigate", "validate", "decide", "resolve", "close", "reopen")


def _row(incident: "Incident") -> dict[str, object]:
    return {"id": incident.id, "system": incident.system_id, "rule": incident.rule, "segment": incident.segment,
            "severity": incident.severity.value, "tier": incident.tier.value, "state": incident.state.value,
            "opened_at": incident.opened_at, "findings": len(incident.findings), "level": incident.level,
            "escalated_to": incident.escalated_to, "decisions": incident.decisions}


@incidents_app.command("list")
def incidents_list(
    role: Annotated[str | None, typer.Option(help="Only incidents this role acts on or was paged for.")] = None,
    state: Annotated[str | None, typer.Option(help="Only incidents in this state.")] = None,
    system: Annotated[str | None, typer.Option(help="Only this system's incidents.")] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = OutputFormat.TABLE,
    db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """List incidents, oldest first, with the step each waits for and its deadline."""
    from ..incidents import load_book

    client = remote_client(db)
    if client is not None:
        from . import remote_cmds

        refuse_options(role=role)  # the roles' stages come from the escalation configuration, which the API has not
        with client:
            remote_cmds.incidents_list(client, state, system, output)
        return
    # Incidents carry their deadlines; the escalation configuration in force is needed only to filter by role.
    if role:
        ledger = open_ledger(db, ledger_key, writable=False)
        graph = _in_force(ledger)
        incidents = list(load_book(ledger).incidents.values())
    else:
        graph = None
        incidents = list(load_book(open_reader(db, ledger_key)).incidents.values())
    if state:
        incidents = [i for i in incidents if i.state.value == state]
    if system:
        incidents = [i for i in incidents if i.system_id == system]
    if role:
        assert graph is not None
        incidents = [i for i in incidents if role in i.escalated_to or any(
            role in {*graph.band(i.severity).assignment(stage).responsible, graph.band(i.severity).assignment(
                stage).accountable} for stage in ("investigate", "validate", "decide"))]
    incidents.sort(key=lambda i: i.opened_at)
    if output is OutputFormat.JSON:
        typer.echo(json.dumps([{**_row(i), "next": _next(graph, i)} for i in incidents], indent=2))
        return
    rows = []
    for incident in incidents:
        due = _next(graph, incident)
        rows.append([incident.id, incident.system_id, incident.rule, incident.segment or "", incident.severity.value,
                     incident.state.value, str(incident.level), f"{due['step']} by {due['due_at']}" if due else ""])
    print_listing("Incidents", ["id", "system", "rule", "segment", "severity", "state", "level", "next deadline"],
                  rows, ids={"id"})


def _in_force(ledger: "Ledger") -> "EscalationGraph":
    from ..authority import active_escalation

    return active_escalation(ledger)[0]


def _next(graph: "EscalationGraph | None", incident: "Incident") -> dict[str, str] | None:
    from ..incidents import stage_deadline
    from ..ledger.records import format_time

    due = stage_deadline(graph, incident)
    return {"step": due[0], "due_at": format_time(due[1])} if due else None


@incidents_app.command("show")
def incidents_show(incident_id: Annotated[str, typer.Argument()], db: DbOption = None,
                   ledger_key: KeyOption = DEFAULT_KEY,
                   output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")]
                   = OutputFormat.TABLE) -> None:
    """Show an incident: the breaching values and thresholds behind it, and its timeline."""
    from ..incidents import load_book

    client = remote_client(db)
    if client is not None:
        from . import remote_cmds

        with client:
            remote_cmds.incidents_show(client, incident_id, output)
        return
    ledger = open_reader(db, ledger_key)
    incident = load_book(ledger).incidents.get(incident_id)
    if incident is None:
        raise CharterError.single("unknown_incident", f"no incident {echo(incident_id)}")
    findings = []
    for seq in incident.findings:
        entry = ledger.entry(seq)
        if entry is not None:
            p = entry.payload
            findings.append({"seq": seq, "window_start": p.get("window_start"), "window_end": p.get("window_end"),
                             "status": p.get("status"), "condition": p.get("condition"),
                             "observed": p.get("observed", {}), "thresholds": p.get("thresholds", {}),
                             "explanation": p.get("explanation", "")})
    serious = _serious_incident(incident)
    if output is OutputFormat.JSON:
        typer.echo(json.dumps({**_row(incident), "title": incident.title, "findings": findings,
                               "next": _next(None, incident), "classification": serious,
                               "timeline": incident.timeline}, indent=2))
        return
    out.print(f"[bold]{safe(incident.id)}[/] {safe(incident.title)}: {safe(incident.system_id)} {safe(incident.rule)}"
              + (f" {safe('[' + incident.segment + ']')}" if incident.segment else "")
              + f", {incident.severity.value} severity, {incident.tier.value}-risk system, now {incident.state.value}")
    due = _next(None, incident)
    if due:
        out.print(f"next: {due['step']} by {due['due_at']}")
    print_listing("Breaches", ["seq", "window", "condition", "observed", "thresholds", "why"],
                  [[str(f["seq"]), f"{(f['window_start'] or '')[:10]}..{(f['window_end'] or '')[:10]}",
                    f["condition"] or "", _values(f["observed"]), _values(f["thresholds"]), f["explanation"]]
                   for f in findings],
                  ids={"seq"})
    if serious is not None:
        _print_serious(serious)
    print_listing("Timeline", ["when", "seq", "event", "by", "note"],
                  [[e["at"], str(e["seq"]), e["event"], e["by"], e["note"]] for e in incident.timeline],
                  ids={"seq"})


def _serious_incident(incident: "Incident") -> dict[str, object] | None:
    """The Art. 3(49) triage and Art. 73 reports of an incident, with the reporting status as of now."""
    from ..incidents import GROUNDS

    if incident.classification is None:
        return None
    c = incident.classification
    if not c["serious"]:
        return {"serious": False, "by": c["by"], "role": c["role"], "seq": c["seq"], "at": c["at"],
                "note": c["note"]}
    return {"serious": True, "ground": c["ground"], "ground_text": GROUNDS.get(str(c["ground"]), ""),
            "death": c["death"], "widespread": c["widespread"], "aware_at": c["aware_at"], "basis": c["basis"],
            "allowed": c["allowed"], "due_at": c["due_at"], "status": incident.reporting_status(parse_time("now")),
            "by": c["by"], "role": c["role"], "seq": c["seq"], "at": c["at"], "note": c["note"],
            "filings": incident.filings}


_STATUS = {"on_time": "first report filed in time", "late": "[red]first report filed late[/]",
           "pending": "no report filed yet; the deadline has not passed",
           "overdue": "[bold red]overdue: no report filed and the deadline has passed[/]"}


def _print_serious(serious: dict[str, object]) -> None:
    if not serious["serious"]:
        out.print(f"serious incident: no (triage by {safe(str(serious['by']))} at seq {serious['seq']}: "
                  f"{safe(str(serious['note']))})")
        return
    extra = ", ".join(x for x, on in (("death", serious["death"]), ("widespread infringement",
                                                                     serious["widespread"])) if on)
    out.print(f"serious incident (EU AI Act Art. 3(49)({serious['ground']}): {serious['ground_text']}"
              + (f"; {extra}" if extra else "") + f"), classified by {safe(str(serious['by']))} at seq "
              f"{serious['seq']}")
    out.print(f"aware since {serious['aware_at']}; Art. 73 report due {serious['due_at']} "
              f"({serious['basis']}, {serious['allowed']} from awareness): {_STATUS[str(serious['status'])]}")
    filings = serious["filings"]
    assert isinstance(filings, list)
    if filings:
        print_listing("Art. 73 reports", ["seq", "kind", "filed", "authority", "reference", "by"],
                      [[str(f["seq"]), f["kind"], f["filed_at"], f["authority"], f["reference"], f["by"]]
                       for f in filings], ids={"seq"})


def _values(values: dict[str, object]) -> str:
    return ", ".join(f"{k} = {v}" for k, v in values.items())


def _action(action: str) -> Callable[..., None]:
    def command(
        incident_id: Annotated[str, typer.Argument()],
        key: Annotated[Path, typer.Option("--key", help="Your private key: its registration names you as the actor "
                                          "(a member of a role the escalation configuration in force allows).")],
        note: Annotated[str, typer.Option("--note", help="The rationale, recorded in the ledger.")],
        decision: Annotated[list[str], typer.Option("--decision", help="With decide: retrain, rollback, suspend, "
                                                    "accept_risk, adjust_policy, compensate.")] = [],  # noqa: B006
        expires: Annotated[str | None, typer.Option(help="With accept_risk: how long the waiver holds (P30D).")]
        = None,
        sign_only: SignOnlyOption = None, db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
    ) -> None:
        from ..incidents import TRANSITION, transition, transition_statement
        from ..ledger import SigningKey

        actor = SigningKey.load(key)
        statement = transition_statement(incident_id, action, note, decision, expires)
        if sign_only is not None:
            write_signed(sign_only, TRANSITION, [statement], actor, signing_origin(db, ledger_key))
            return
        client = remote_client(db)
        if client is not None:
            from . import remote_cmds

            with client:
                result, incident = remote_cmds.incident_change(client, incident_id, TRANSITION, statement, actor)
            out.print(f"{safe(incident_id)}: {action} recorded at seq {result['seq']} by "
                      f"{safe(remote_cmds.actor_of(incident, result['seq'], actor.principal))}")
            return
        entry = transition(open_ledger(db, ledger_key, writable=True), incident_id, action, actor, note, decision,
                           expires)
        out.print(f"{safe(incident_id)}: {action} recorded at seq {entry.seq} by {safe(entry.payload['actor'])} "
                  f"({safe(entry.payload['role'])})")

    command.__doc__ = f"{action.capitalize()} an incident (signed, recorded in the ledger with its rationale)."
    return command


for _name in ACTION_NAMES:
    incidents_app.command(_name if _name != "acknowledge" else "ack")(_action(_name))


@incidents_app.command("classify")
def incidents_classify(
    incident_id: Annotated[str, typer.Argument()],
    key: Annotated[Path, typer.Option("--key", help="Your private key: a member of a role that may validate "
                                      "the incident.")],
    note: Annotated[str, typer.Option("--note", help="The rationale, recorded in the ledger.")],
    serious: Annotated[bool | None, typer.Option("--serious/--not-serious", help="A serious incident under "
                                                 "Art. 3(49), or a triage that it is not one (say which).")] = None,
    ground: Annotated[str | None, typer.Option(help="With --serious, the Art. 3(49) ground: a (death or serious "
                                               "harm to health), b (critical infrastructure), c (fundamental "
                                               "rights), d (property or environment).")] = None,
    death: Annotated[bool, typer.Option("--death", help="The incident caused a death (ground a): 10 days.")]
    = False,
    widespread: Annotated[bool, typer.Option("--widespread", help="A widespread infringement (Art. 3(61)): "
                                             "2 days.")] = False,
    aware_at: Annotated[str | None, typer.Option("--aware-at", help="When the organisation became aware of the "
                                                 "serious incident (ISO 8601, or 'now'): the clock runs from it.")]
    = None,
    log_file: Annotated[Path, typer.Option(help="Where log channels write the page to the reporting role.")]
    = Path(".charter/notifications.log"),
    sign_only: SignOnlyOption = None, db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Classify an incident as an EU AI Act serious incident (Art. 3(49)), which starts the Art. 73 clock and pages
    the reporting role; or record that it is not one. The incident's validator decides (signed, in the ledger)."""
    from ..incidents import CLASSIFIED, classification_statement, classify
    from ..ledger import SigningKey

    if serious is None:
        raise CharterError.single("usage", "say --serious (with --ground and --aware-at) or --not-serious")
    aware = parse_time(aware_at, "--aware-at") if aware_at is not None else None
    actor = SigningKey.load(key)
    statement = classification_statement(incident_id, serious=serious, note=note, ground=ground, death=death,
                                         widespread=widespread, aware_at=aware)
    if sign_only is not None:
        write_signed(sign_only, CLASSIFIED, [statement], actor, signing_origin(db, ledger_key))
        return
    client = remote_client(db)
    if client is not None:
        from . import remote_cmds

        with client:
            result, incident = remote_cmds.incident_change(client, incident_id, CLASSIFIED, statement, actor)
        by = safe(remote_cmds.actor_of(incident, result["seq"], actor.principal))
        if not serious:
            out.print(f"{safe(incident_id)}: recorded as not a serious incident at seq {result['seq']} by {by}")
            return
        due = ((incident or {}).get("classification") or {}).get("due_at", "(ask the service)")
        out.print(f"{safe(incident_id)}: serious incident (Art. 3(49)({ground})) recorded at seq {result['seq']} by "
                  f"{by}; Art. 73 report due {due}; the service's next `charter escalate` pages the reporting role")
        return
    ledger = open_ledger(db, ledger_key, writable=True)
    entry = classify(ledger, incident_id, actor, note, serious=serious, ground=ground, death=death,
                     widespread=widespread, aware_at=aware)
    p = entry.payload
    if not serious:
        out.print(f"{safe(incident_id)}: recorded as not a serious incident at seq {entry.seq} by "
                  f"{safe(p['actor'])} ({safe(p['role'])})")
        return
    from ..notify import ChannelNotifier, page_reporting

    graph = _in_force(ledger)
    assert graph.config.regulatory is not None  # classify refused the serious incident otherwise
    role = graph.config.regulatory.role
    out.print(f"{safe(incident_id)}: serious incident (Art. 3(49)({ground})) recorded at seq {entry.seq} by "
              f"{safe(p['actor'])} ({safe(p['role'])}); Art. 73 report due {p['reporting']['due_at']} "
              f"({p['reporting']['basis']}, {p['reporting']['allowed']} from awareness {p['aware_at']})")
    paged = page_reporting(ledger, graph, incident_id, ChannelNotifier(log_file))
    out.print(f"paged {role}: {safe(', '.join(graph.config.roles[role].members))} ({len(paged.notified)} "
              "notifications sent)")
    for line in paged.failed:
        out.print(f"[yellow]delivery failed[/] {safe(line)}: the classification stands; `charter escalate` retries")


@incidents_app.command("file-report")
def incidents_file_report(
    incident_id: Annotated[str, typer.Argument()],
    key: Annotated[Path, typer.Option("--key", help="Your private key: a member of the regulatory reporting "
                                      "role.")],
    authority: Annotated[str, typer.Option("--authority", help="The market surveillance authority it went to.")],
    reference: Annotated[str, typer.Option("--reference", help="The authority's or your reference for it.")],
    kind: Annotated[str, typer.Option("--kind", help="initial (may be incomplete, Art. 73(5)) or complete.")],
    filed_at: Annotated[str, typer.Option("--filed-at", help="When it was filed (ISO 8601, or 'now').")],
    sign_only: SignOnlyOption = None, db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Record an EU AI Act Art. 73 report filed for a serious incident (signed, in the ledger)."""
    from ..incidents import REPORT_FILED, file_report, filing_statement, load_book
    from ..ledger import SigningKey

    filed = parse_time(filed_at, "--filed-at")
    actor = SigningKey.load(key)
    statement = filing_statement(incident_id, authority=authority, reference=reference, kind=kind, filed_at=filed)
    if sign_only is not None:
        write_signed(sign_only, REPORT_FILED, [statement], actor, signing_origin(db, ledger_key))
        return
    client = remote_client(db)
    if client is not None:
        from . import remote_cmds

        with client:
            result, _ = remote_cmds.incident_change(client, incident_id, REPORT_FILED, statement, actor)
        out.print(f"{safe(incident_id)}: {kind} report to {safe(authority)} ({safe(reference)}) recorded at seq "
                  f"{result['seq']} by {safe(actor.principal)}")
        return
    ledger = open_ledger(db, ledger_key, writable=True)
    entry = file_report(ledger, incident_id, actor, authority=authority, reference=reference, kind=kind,
                        filed_at=filed)
    incident = load_book(ledger).incidents[incident_id]
    status = incident.reporting_status()
    assert incident.classification is not None
    out.print(f"{safe(incident_id)}: {kind} report to {safe(authority)} ({safe(reference)}) recorded at seq "
              f"{entry.seq} by {safe(entry.payload['actor'])}; the first report was filed "
              f"{'in time' if status == 'on_time' else 'late'} (due {incident.classification['due_at']})")


def escalate(
    now: Annotated[str, typer.Option("--now", help="The time to act as of (ISO 8601, or 'now').")] = "now",
    log_file: Annotated[Path, typer.Option(help="Where log channels write.")] = Path(".charter/notifications.log"),
    db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Escalate overdue incidents and send pending notifications, under the escalation configuration in force.

    Idempotent: run it from cron.
    """
    from ..notify import ChannelNotifier, tick

    ledger = open_ledger(db, ledger_key, writable=True)
    report = tick(ledger, _in_force(ledger), parse_time(now, "--now"), ChannelNotifier(log_file))
    for line in report.escalated:
        out.print(f"escalated {line}")
    out.print(f"{len(report.escalated)} escalations, {len(report.notified)} notifications sent, "
              f"{len(report.failed)} failed")
    for line in report.failed:
        out.print(f"[red]failed[/] {safe(line)}")
    if report.failed:
        raise typer.Exit(1)


def metrics_command(
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.TABLE,
    db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """MTTD, MTTA, time to decision, MTTR and Art. 73 time to filing: medians, p90 and counts per system and
    portfolio, and serious incidents reported on time, late, or pending (overdue ones among them)."""
    from ..incidents import load_book, metrics

    client = remote_client(db)
    if client is not None:
        from . import remote_cmds

        with client:
            fetched = remote_cmds.metrics(client, output)
        if fetched is None:
            return
        scopes, reporting, rejected = fetched["scopes"], fetched["reporting"], fetched["rejected"]
    else:
        result = metrics(load_book(open_ledger(db, ledger_key, writable=False)).incidents.values(),
                         at=parse_time("now"))
        if output is OutputFormat.JSON:
            typer.echo(json.dumps(result.to_dict(), indent=2, sort_keys=True))
            return
        scopes, reporting, rejected = result.scopes, result.reporting, result.rejected
    rows = []
    for scope, values in scopes.items():
        for metric, stats in values.items():
            rows.append([scope, metric, str(stats["n"]), str(stats["missing"]), str(stats["rejected"]),
                         "" if stats["median_h"] is None else str(stats["median_h"]),
                         "" if stats["p90_h"] is None else str(stats["p90_h"])])
    print_listing("Incident metrics", ["scope", "metric", "n", "open", "rejected", "median (h)", "p90 (h)"], rows,
                  ids={"scope"})
    serious = [[scope, *(str(counts[k]) for k in ("serious", "on_time", "late", "pending", "overdue"))]
               for scope, counts in reporting.items() if counts["serious"]]
    if serious:
        print_listing("Serious incidents (EU AI Act Art. 73)", ["scope", "serious", "on time", "late", "pending",
                                                                  "of which overdue"], serious, ids={"scope"})
    for problem in rejected:
        out.print(f"[yellow]rejected[/] {safe(problem['incident'])} {problem['metric']}: {safe(problem['message'])} "
                  f"({problem['reason']}: the timestamps are not trustworthy)")
