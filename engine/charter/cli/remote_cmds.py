"""The remote forms of the CLI's commands: the same output and exit codes, from a Charter server.

Each function is called by its command when ``CHARTER_URL`` is set (`charter.cli.remote.remote_client`),
after the command parsed and checked its input locally. Changes are signed here, with the actor's
own key, and handed to the service; the service never signs for anyone.
"""

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ..errors import CharterError
from .common import OutputFormat, err, out, print_findings, print_listing, safe

if TYPE_CHECKING:
    from ..authority import KeyRequest, SignedStatement
    from ..client import ServiceClient
    from ..ledger import SigningKey
    from ..submission import KeyApproval, PreparedBundle


def sign(client: "ServiceClient", entry_type: str, fields: dict[str, Any], key: "SigningKey") -> "SignedStatement":
    """`fields` as a statement of `entry_type` signed now by `key`, bound to the server's log."""
    from ..authority import SignedStatement
    from ..ledger.records import format_time, utc_now
    from .remote import remote_origin

    return SignedStatement.sign(remote_origin(client), entry_type, dict(fields), key, format_time(utc_now()))


def post_statement(client: "ServiceClient", statement: "SignedStatement", incident: str | None = None
                   ) -> dict[str, Any]:
    """Hand in a signed statement (an incident transition at its incident's route); the service's result."""
    from urllib.parse import quote

    path = f"/v1/incidents/{quote(incident, safe='')}/transitions" if incident is not None else "/v1/statements"
    _, result = client.post_json(path, statement.to_dict())
    return dict(result)


# -- evidence and statements -------------------------------------------------------------------------------------


def submit(client: "ServiceClient", prepared: "list[PreparedBundle]", output: OutputFormat) -> None:
    """POST each validated, signed bundle; print receipts, findings and incident notices; exit 1 on a breach."""
    from ..evaluate import Finding, Status
    from ..incidents import IncidentNotice
    from .ledger import print_incident_notices

    results: list[dict[str, Any]] = []
    for item in prepared:
        try:
            _, result = client.post_bytes("/v1/bundles", json.dumps(item.data).encode(), "application/json")
        except CharterError:
            if results:
                landed = ", ".join(str(r["receipt"]["seq"]) for r in results)
                err.print(f"[yellow]{len(results)} of {len(prepared)} bundles were recorded before "
                          f"{safe(item.file or '?')} was refused (bundle seqs {landed})[/]")
            raise
        results.append(result)
    findings = [Finding.model_validate(f) for r in results for f in r["findings"]]
    if output is OutputFormat.JSON:
        typer.echo(json.dumps([{**r, "file": item.file} for r, item in zip(results, prepared, strict=True)],
                              indent=2, sort_keys=True))
    else:
        for r in results:
            receipt = r["receipt"]
            note = " (already in the ledger: same receipt)" if r["duplicate"] else ""
            out.print(f"receipt: seq {receipt['seq']} record {receipt['record_hash']} "
                      f"received {receipt['received_at']}{note}")
        print_findings(findings, False, "Findings recorded")
        print_incident_notices([IncidentNotice(
            n["incident_id"], n["action"], n["system"], n["rule"], n["segment"], n["severity"], n["state"],
            n["next_step"], n["due_at"], tuple((p["role"], tuple(p["members"])) for p in n["paged"]))
            for r in results for n in r["incidents"]])
    if any(f.status is Status.BREACH for f in findings):
        raise typer.Exit(1)


def key_status(client: "ServiceClient", request: "KeyRequest") -> "KeyApproval":
    """Where a key stands on the server after an approval: registered, or pending with its approvers."""
    from ..submission import KeyApproval

    for waiting in client.get("/v1/keys/pending"):
        if waiting["key_id"] == request.key_id:
            return KeyApproval(request.key_id, str(waiting["principal"]), False, tuple(waiting["approved_by"]),
                               int(waiting["needed"]))
    registered = {k["key_id"]: k for k in client.get("/v1/keys")}
    if request.key_id in registered:
        return KeyApproval(request.key_id, str(registered[request.key_id]["principal"]), True, (), 0)
    return KeyApproval(request.key_id, None, False, (), 0)


def accept_one(client: "ServiceClient", statement: "SignedStatement") -> int | None:
    """`charter ledger accept` against a server: hand in one statement; its seq, None if already recorded."""
    result = post_statement(client, statement)
    return None if result["duplicate"] else int(result["seq"])


def incident_change(client: "ServiceClient", incident_id: str, entry_type: str, fields: dict[str, Any],
                    actor: "SigningKey") -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Sign and hand in a change of an incident; the service's result, and the incident as it now reads (None if
    the actor may not read it)."""
    from urllib.parse import quote

    from ..incidents import TRANSITION

    statement = sign(client, entry_type, fields, actor)
    result = post_statement(client, statement, incident_id if entry_type == TRANSITION else None)
    try:
        incident = client.get(f"/v1/incidents/{quote(incident_id, safe='')}")
    except CharterError:
        incident = None
    return result, incident


def actor_of(incident: dict[str, Any] | None, seq: int, principal: str) -> str:
    """``actor (role)`` as the incident's timeline records the entry at `seq`."""
    for event in (incident or {}).get("timeline", []):
        if event.get("seq") == seq:
            return str(event.get("by"))
    return principal


# -- reading ------------------------------------------------------------------------------------------------------


def incidents_list(client: "ServiceClient", state: str | None, system: str | None, output: OutputFormat) -> None:
    """`charter incidents list` from the server."""
    rows = client.get_all("/v1/incidents", {"state": state, "system": system})
    if output is OutputFormat.JSON:
        typer.echo(json.dumps(rows, indent=2))
        return
    print_listing("Incidents", ["id", "system", "rule", "segment", "severity", "state", "level", "next deadline"],
                  [[r["id"], r["system"], r["rule"], r["segment"] or "", r["severity"], r["state"], str(r["level"]),
                    f"{r['next']['step']} by {r['next']['due_at']}" if r["next"] else ""] for r in rows], ids={"id"})


def incidents_show(client: "ServiceClient", incident_id: str, output: OutputFormat) -> None:
    """`charter incidents show` from the server: the incident, the breaches behind it, its timeline."""
    from urllib.parse import quote

    incident = client.get(f"/v1/incidents/{quote(incident_id, safe='')}")
    wanted = set(incident["findings"])
    findings = [f for f in client.get_all("/v1/findings", {"system": incident["system"]}) if f["seq"] in wanted]
    if output is OutputFormat.JSON:
        typer.echo(json.dumps({**incident, "findings": findings}, indent=2))
        return
    segment = f" {safe('[' + incident['segment'] + ']')}" if incident["segment"] else ""
    out.print(f"[bold]{safe(incident['id'])}[/] {safe(incident['title'])}: {safe(incident['system'])} "
              f"{safe(incident['rule'])}{segment}, {incident['severity']} severity, {incident['tier']}-risk system, "
              f"now {incident['state']}")
    if incident["next"]:
        out.print(f"next: {incident['next']['step']} by {incident['next']['due_at']}")
    print_listing("Breaches", ["seq", "window", "status", "observed", "thresholds", "why"],
                  [[str(f["seq"]), f"{(f['window_start'] or '')[:10]}..{(f['window_end'] or '')[:10]}", f["status"],
                    _values(f["observed"]), _values(f["thresholds"]), f["explanation"]] for f in findings],
                  ids={"seq"})
    c = incident.get("classification")
    if c:
        if c.get("serious"):
            out.print(f"serious incident (EU AI Act Art. 3(49)({c.get('ground')})), classified by "
                      f"{safe(str(c.get('by')))} at seq {c.get('seq')}; aware since {c.get('aware_at')}; Art. 73 "
                      f"report due {c.get('due_at')}")
        else:
            out.print(f"serious incident: no (triage by {safe(str(c.get('by')))} at seq {c.get('seq')}: "
                      f"{safe(str(c.get('note')))})")
    print_listing("Timeline", ["when", "seq", "event", "by", "note"],
                  [[e["at"], str(e["seq"]), e["event"], e["by"], e["note"]] for e in incident["timeline"]],
                  ids={"seq"})


def _values(values: dict[str, object]) -> str:
    return ", ".join(f"{k} = {v}" for k, v in values.items())


def systems_list(client: "ServiceClient", output: OutputFormat) -> None:
    """`charter systems list` from the server (the systems the caller may see)."""
    systems = [item["registration"] for item in client.get("/v1/systems")]
    if output is OutputFormat.JSON:
        typer.echo(json.dumps(systems, indent=2))
        return
    print_listing("AI systems", ["id", "name", "owner", "risk tier", "kind", "region", "status"],
                  [[s["id"], s["name"], s["owner"], s["risk_tier"], s["kind"], s["region"], s["status"]]
                   for s in systems], ids={"id", "owner"})


def keys_list(client: "ServiceClient", output: OutputFormat) -> None:
    """`charter keys list` from the server."""
    records = client.get("/v1/keys")
    if output is OutputFormat.JSON:
        typer.echo(json.dumps(records, indent=2))
        return
    print_listing("Keys", ["key id", "principal", "added at seq", "revoked at seq"],
                  [[r["key_id"], r["principal"], str(r["added_seq"]),
                    "" if r["revoked_seq"] is None else f"{r['revoked_seq']} ({r['reason']})"] for r in records],
                  ids={"key id", "principal"})
    from .ledger import print_pending_keys

    print_pending_keys(client.get("/v1/keys/pending"), only=False)


def metrics(client: "ServiceClient", output: OutputFormat) -> dict[str, Any] | None:
    """`charter metrics` from the server: the JSON printed here, or the result for the command's tables."""
    result: dict[str, Any] = client.get("/v1/metrics/incidents")
    if output is OutputFormat.JSON:
        typer.echo(json.dumps(result, indent=2, sort_keys=True))
        return None
    return result


def whoami(client: "ServiceClient", output: OutputFormat) -> None:
    """`charter whoami`: who the server says the credential is, and what the ledger makes them."""
    me = client.get("/v1/whoami")
    if output is OutputFormat.JSON:
        typer.echo(json.dumps(me, indent=2))
        return
    how = f"API token {me['token_id']}" if me.get("token_id") else \
        f"OpenID Connect ({me.get('issuer')}, subject {me.get('subject')})"
    out.print(f"{safe(me['principal'])} at {safe(client.url)}, authenticated by {safe(how)}")
    out.print(f"scopes: {', '.join(me['scopes']) or 'none'}")
    out.print(f"roles: {safe(', '.join(me['roles'])) or 'none'}")
    if me["owns"]:
        out.print(f"owns: {safe(', '.join(me['owns']))}")


# -- tokens -------------------------------------------------------------------------------------------------------


def tokens_list(client: "ServiceClient", output: OutputFormat) -> None:
    """`charter tokens list` from the server: one's own tokens, or everyone's for an administrator or auditor."""
    records = client.get("/v1/tokens")
    if output is OutputFormat.JSON:
        typer.echo(json.dumps(records, indent=2))
        return
    print_listing("API tokens", ["token id", "principal", "scopes", "expires", "created at seq", "status"],
                  [[r["token_id"], r["principal"], ", ".join(r["scopes"]), r["expires_at"], str(r["created_seq"]),
                    r["status"] if r["revoked_seq"] is None else f"revoked at seq {r['revoked_seq']}"]
                   for r in records], ids={"token id", "principal"})


# -- the ledger and reports ---------------------------------------------------------------------------------------


def verify(client: "ServiceClient", full: bool) -> None:
    """`charter verify` against a server: the server verifies its own ledger and says so; exit 1 on a failure."""
    result = client.get("/v1/ledger/verify", {"full": "true" if full else None})
    for problem in result["problems"]:
        out.print(f"[red]{safe(problem)}[/]")
    out.print(("[green]" if result["ok"] else "[bold red]") + safe(result["summary"]) + "[/]")
    out.print(f"(verified by the server at {safe(client.url)}, with its own copy of the log key: an auditor verifies "
              "independently from an export, `charter ledger export` then `charter audit DIR --log-key KEY`)")
    if not result["ok"]:
        raise typer.Exit(1)


def report(client: "ServiceClient", framework: str, formats: list[str], paths: dict[str, Path],
           system: str | None, at: str) -> None:
    """Issue a report on the server, download each file to its path, checked against its recorded SHA-256."""
    from contextlib import ExitStack

    from ..publishing import ReportFile

    with ExitStack() as stack:
        targets = {fmt: stack.enter_context(ReportFile(path)) for fmt, path in paths.items()}
        _, items = client.post_json("/v1/reports", {"framework": framework, "formats": formats, "system": system,
                                                    "at": at})
        issued = {item["format"]: item for item in items}
        for rendition, target in targets.items():
            item = issued.get(rendition)
            if item is None:  # nothing open: no plan of action, and none left from an earlier report
                target.withdraw()
                continue
            if item.get("download") is None:
                raise CharterError.single("service_unavailable", f"the service issued {item['name']} at seq "
                                          f"{item['seq']} but keeps no file of it to download")
            data = client.download(item["download"])
            if hashlib.sha256(data).hexdigest() != item["sha256"]:
                raise CharterError.single("ledger_damaged", f"the downloaded {item['name']} does not match the "
                                          f"SHA-256 recorded at seq {item['seq']}")
            target.publish(data)
    for rendition, path in paths.items():
        item = issued.get(rendition)
        if item is not None:
            out.print(f"{safe(str(path))}: issued at seq {item['seq']} (sha256 {item['sha256'][:16]}…)")
    out.print(f"{framework}: issued by the service at {safe(client.url)}, bound to a checkpoint it signed; "
              "`charter report verify FILE` checks a file")


def report_verify(client: "ServiceClient", report_file: Path, data: bytes) -> None:
    """`charter report verify FILE` against a server; exit 1 on any failed check."""
    _, verdict = client.post_bytes("/v1/reports/verify", data, "application/octet-stream")
    for line in verdict["checked"]:
        out.print(f"ok: {safe(line)}")
    for problem in verdict["problems"]:
        out.print(f"FAILED: {safe(problem)}")
    if not verdict["ok"]:
        raise typer.Exit(1)
    out.print(f"{safe(str(report_file))}: verified (by the server at {safe(client.url)})")
