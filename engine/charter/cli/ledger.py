"""Commands on the ledger: init, keys, systems, submit, replay, verify, checkpoints, proofs, export.

The database is ``--db URL`` or ``CHARTER_DATABASE_URL`` (default: SQLite at ``.charter/ledger.db``);
the log's private key is ``--ledger-key`` or ``CHARTER_LEDGER_KEY`` (default ``.charter/ledger.key``),
and its public key (``ledger.pub`` beside it) is the pinned trust root `verify` checks against.
"""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import CharterError, Diagnostic
from .common import (
    OutputFormat,
    command_group,
    compile_policies,
    err,
    named_kpis_file,
    out,
    parse_time,
    policies_dir,
    print_findings,
    print_listing,
    safe,
)
from .remote import refuse_options, remote_client

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..authority import GovernanceConfig, SignedStatement
    from ..incidents import IncidentNotice
    from ..kpis import KpiCatalog
    from ..ledger import Ledger, SigningKey
    from ..ledger.records import LedgerReader
    from ..submission import KeyApproval, PreparedBundle

ledger_app = command_group("Initialize, checkpoint, prove and export the ledger.")
keys_app = command_group("Principals' keys: generate, request, register, revoke, list.")
systems_app = command_group("The registry of AI systems, kept in the ledger.")

DEFAULT_KEY = Path(".charter/ledger.key")
MAX_SEQ = 2**63 - 1
#: A checkpoint note is a few hundred bytes; with many cosignatures, a few kilobytes.
MAX_NOTE_BYTES = 1024 * 1024
DbOption = Annotated[str | None, typer.Option("--db", envvar="CHARTER_DATABASE_URL",
                                              help="Database URL (default: sqlite .charter/ledger.db).")]
KeyOption = Annotated[Path, typer.Option("--ledger-key", envvar="CHARTER_LEDGER_KEY",
                                         help="The ledger's private key file.")]


SignOnlyOption = Annotated[Path | None, typer.Option("--sign-only", help="Only sign: write the signed change to "
                                                     "this file, for the log's operator to append with `charter "
                                                     "ledger accept`; needs no log key and writes nothing.")]


def warn_lockouts(config: "GovernanceConfig") -> None:
    """Warn of what one lost, withheld or compromised administrator key could block in `config`."""
    for warning in config.lockout_warnings():
        err.print(f"[yellow]warning: {warning}[/]")


def write_signed(target: Path, entry_type: str, fields: "list[dict[str, object]]", key: "SigningKey",
                 ledger: "Ledger | str") -> None:
    """`--sign-only`: sign each change in `fields` with `key` for `ledger`'s log (opened read-only, or its
    origin: `signing_origin`), into a statement file."""
    from ..authority import SignedStatement
    from ..ledger.records import format_time, utc_now
    from ..statements import write_statements

    signed_at = format_time(utc_now())
    origin = ledger if isinstance(ledger, str) else ledger.origin
    statements = [SignedStatement.sign(origin, entry_type, dict(item), key, signed_at) for item in fields]
    write_statements(target, statements)
    out.print(f"{len(statements)} signed {entry_type} statement(s) by {safe(key.principal)} written to "
              f"{safe(str(target))}; the log's operator appends them with `charter ledger accept`")


def open_ledger(db: str | None, ledger_key: Path, *, writable: bool) -> "Ledger":
    """Open the configured ledger; writers load the log key, readers only need the database.

    Raises:
        CharterError: ``not_remote`` while ``CHARTER_URL`` names a server: a command without a remote
            form never quietly acts on a local ledger instead.
    """
    from ..ledger import Ledger, SigningKey, default_url
    from .remote import refuse_local

    refuse_local()
    key = SigningKey.load(ledger_key) if writable else None
    return Ledger.open(db or default_url(), log_key=key, read_only=not writable)


def open_reader(db: str | None, ledger_key: Path) -> "LedgerReader":
    """Open the configured ledger for reading entries only.

    A SQLite ledger at the newest schema is read with the standard library (`open_sqlite_reader`):
    importing SQLAlchemy alone costs a read command about ten times a bare interpreter's start-up.
    Anything else opens the `Ledger`, whose checks give every refusal.
    """
    from ..ledger.layout import default_url
    from ..ledger.sqlite_reader import open_sqlite_reader
    from .remote import refuse_local

    refuse_local()
    reader = open_sqlite_reader(db or default_url())
    return reader if reader is not None else open_ledger(db, ledger_key, writable=False)


def signing_origin(db: str | None, ledger_key: Path) -> str:
    """The origin a statement signed here is bound to: the server's with ``CHARTER_URL``, else the local ledger's."""
    from .remote import remote_client, remote_origin

    client = remote_client(db)
    if client is None:
        return open_ledger(db, ledger_key, writable=False).origin
    with client:
        return remote_origin(client)


def pinned_public_key(ledger_key: Path, given: Path | None) -> bytes:
    """The trust root: the log's public key from a file, never from the database."""
    from ..ledger.keys import load_public_key_file

    path = given or ledger_key.with_suffix(".pub")
    _, public = load_public_key_file(path)
    return public


@ledger_app.command("init")
def ledger_init(
    governance: Annotated[Path, typer.Option("--governance", help="The governance file (YAML): administrators "
                                             "with their public keys, the threshold, and who holds which "
                                             "authority role. It becomes entry 0, the ledger's trust root.")],
    admin_keys: Annotated[list[Path], typer.Option("--admin-key", help="An administrator's private key that "
                                                   "approves the configuration (repeat up to the threshold).")],
    origin: Annotated[str, typer.Option(help="The log's name, bound into every entry and checkpoint.")]
    = "charter.local/ledger",
    db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Create the ledger with its trust root (and the log key, if the key file does not exist yet)."""
    from ..authority import init_governance, load_governance
    from ..ledger import Ledger, SigningKey, default_url
    from ..ledger.keys import check_origin
    from .remote import refuse_local

    refuse_local()
    check_origin(origin)
    config = load_governance(governance)
    warn_lockouts(config)
    approvers = [SigningKey.load(path) for path in admin_keys]
    config.require_approvals(approvers)  # before anything is created
    if ledger_key.exists():
        key = SigningKey.load(ledger_key)
    else:
        key = SigningKey.generate(origin)
        key.save(ledger_key)
    ledger = Ledger.open(db or default_url(), log_key=key, origin=origin, create=True)
    init_governance(ledger, config, approvers)
    out.print(f"ledger {ledger.origin} ready: {ledger.size()} entries; log key {key.key_id} "
              f"(public key in {ledger_key.with_suffix('.pub')}); trust root at seq 0 with "
              f"{len(config.administrators)} administrators, {config.threshold} needed to change it")


@ledger_app.command("accept")
def ledger_accept(
    statement_files: Annotated[list[Path], typer.Argument(help="Statement files written with --sign-only.")],
    db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Append changes their actors signed elsewhere (--sign-only), as the log's operator.

    Each is checked as if its actor had made it here: their key's registration, their role under
    the configuration in force, the state of what they change. Every file is read first; a refused
    statement stops the run, and the ones before it stay recorded (the command says which).
    """
    from ..statements import accept, read_statements

    statements = [s for path in statement_files for s in read_statements(path)]
    client = remote_client(db)
    if client is not None:
        from . import remote_cmds

        with client:
            hand_in_all(statements, lambda statement: remote_cmds.accept_one(client, statement))
        return
    ledger = open_ledger(db, ledger_key, writable=True)

    def local(statement: "SignedStatement") -> int | None:
        entry = accept(ledger, statement)
        return entry.seq if entry is not None else None

    hand_in_all(statements, local)


def hand_in_all(statements: "list[SignedStatement]", hand_in: "Callable[[SignedStatement], int | None]") -> None:
    """Hand in each statement in order (`hand_in` gives its seq, None if already recorded), saying what landed.

    A refusal stops at that statement; the ones before it stay recorded, and the message says how many.
    """
    for index, statement in enumerate(statements):
        try:
            seq = hand_in(statement)
        except CharterError:
            if index:
                err.print(f"[yellow]{index} of {len(statements)} statements were recorded before this one was "
                          "refused[/]")
            raise
        actor = safe(str(statement.statement.get("actor")))
        out.print(f"{statement.type} by {actor}: " + (f"recorded at seq {seq}" if seq is not None
                                                     else "already in force or recorded"))


@keys_app.command("generate")
def keys_generate(
    principal: Annotated[str, typer.Argument(help="Who the key belongs to (e.g. the model owner).")],
    directory: Annotated[Path, typer.Option("--out", help="Where to write PRINCIPAL.key and .pub.")]
    = Path(".charter/keys"),
) -> None:
    """Generate an Ed25519 key pair for a submitter."""
    from ..ledger import SigningKey
    from ..ledger.keys import check_principal

    check_principal(principal)  # it becomes a file name: no separators, no '..' can escape --out
    path = directory / f"{principal}.key"
    if path.exists():
        raise CharterError.single("key_exists", "a key file already exists; refusing to overwrite", file=str(path))
    key = SigningKey.generate(principal)
    public_path = key.save(path)
    out.print(f"{key.key_id}\n  private: {path} (keep it secret)\n  public:  {public_path}")


@keys_app.command("request")
def keys_request(
    key_file: Annotated[Path, typer.Argument(help="Your private key (from `charter keys generate`).")],
    request_file: Annotated[Path | None, typer.Option("--out", help="Where to write the request (default: "
                                                      "beside the key, .request.json).")] = None,
    origin: Annotated[str | None, typer.Option(help="The ledger's origin (default: read from the ledger).")] = None,
    endorse_with: Annotated[Path | None, typer.Option("--endorse-with", help="A key you already have registered: "
                                                      "a second key needs its endorsement.")] = None,
    db: DbOption = None,
) -> None:
    """Ask for your key to be registered: a request with proof that you hold the private key.

    Hand the request to an administrator, who registers it with `charter keys register`.
    """
    from ..authority import KeyRequest
    from ..ledger import SigningKey

    key = SigningKey.load(key_file)
    if not key.principal:
        raise CharterError.single("key_file", "the key file names no principal (its first line)", file=str(key_file))
    if origin is None:
        origin = signing_origin(db, DEFAULT_KEY)
    target = request_file or key_file.with_suffix(".request.json")
    if target.exists():
        raise CharterError.single("key_exists", "the request file already exists; refusing to overwrite",
                                  file=str(target))
    request = KeyRequest.of(key, origin, endorse_with=SigningKey.load(endorse_with) if endorse_with else None)
    target.write_text(json.dumps(request.to_dict(origin), indent=2) + "\n", encoding="utf-8")
    out.print(f"{request.key_id} of {request.principal}: request written to {safe(str(target))}")


@keys_app.command("register")
def keys_register(
    requests: Annotated[list[Path], typer.Argument(help="Key requests (from `charter keys request`).")],
    key: Annotated[Path, typer.Option("--key", help="Your (an administrator's) private key.")],
    sign_only: SignOnlyOption = None, db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Approve principals' public keys, as an administrator, after checking each proof of possession.

    A key endorsed by one its principal already holds is registered at once; a first key once the
    configuration's ``key_approvals`` administrators have each run this with its request.
    """
    from .._sources import parse_json_strict, read_bytes
    from ..authority import KeyRequest
    from ..ledger import SigningKey
    from ..ledger.auditor import KEY_ADDED
    from ..submission import key_approval, key_statement, register_key

    admin = SigningKey.load(key)
    client = remote_client(db)
    ledger = None if client is not None else open_ledger(db, ledger_key, writable=sign_only is None)
    origin = ledger.origin if ledger is not None else signing_origin(db, ledger_key)
    parsed = [KeyRequest.from_dict(parse_json_strict(read_bytes(path), str(path)), origin, str(path))
              for path in requests]  # all checked before the first is registered
    if sign_only is not None:
        write_signed(sign_only, KEY_ADDED, [key_statement(r) for r in parsed], admin, origin)
        return
    if client is not None:
        from . import remote_cmds

        with client:
            for request in parsed:
                result = remote_cmds.post_statement(client, remote_cmds.sign(client, KEY_ADDED,
                                                                             key_statement(request), admin))
                out.print(f"seq {result['seq']}: {safe(remote_cmds.key_status(client, request).describe())}")
        return
    assert ledger is not None
    for request in parsed:
        entry = register_key(ledger, request, admin)
        out.print(f"seq {entry.seq}: {safe(key_approval(ledger, request.key_id).describe())}")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="ed25519:... key id.")],
    reason: Annotated[str, typer.Option(help="Why (compromise, rotation, leaver).")],
    key: Annotated[Path, typer.Option("--key", help="Your private key: the key's owner or an administrator.")],
    sign_only: SignOnlyOption = None, db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Revoke a key: what it signs is refused from now on; earlier entries stay valid."""
    from ..ledger import SigningKey
    from ..ledger.auditor import KEY_REVOKED
    from ..submission import revocation_statement, revoke_key

    actor = SigningKey.load(key)
    if sign_only is not None:
        write_signed(sign_only, KEY_REVOKED, [revocation_statement(key_id, reason)], actor,
                     signing_origin(db, ledger_key))
        return
    client = remote_client(db)
    if client is not None:
        from . import remote_cmds

        with client:
            result = remote_cmds.post_statement(client, remote_cmds.sign(
                client, KEY_REVOKED, revocation_statement(key_id, reason), actor))
        out.print(f"seq {result['seq']}: {key_id} revoked")
        return
    entry = revoke_key(open_ledger(db, ledger_key, writable=True), key_id, reason, actor)
    out.print(f"seq {entry.seq}: {key_id} revoked")


@keys_app.command("list")
def keys_list(db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
              output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")]
              = OutputFormat.TABLE) -> None:
    """List registered keys (administrators' keys come from the governance configuration)."""
    from ..submission import key_records

    client = remote_client(db)
    if client is not None:
        from . import remote_cmds

        with client:
            remote_cmds.keys_list(client, output)
        return
    ledger = open_ledger(db, ledger_key, writable=False)
    records = list(key_records(ledger).values())
    if output is OutputFormat.JSON:
        typer.echo(json.dumps([{"key_id": r.key_id, "principal": r.principal, "added_seq": r.added_seq,
                                "revoked_seq": r.revoked_seq, "reason": r.reason} for r in records], indent=2))
        return
    print_listing("Keys", ["key id", "principal", "added at seq", "revoked at seq"],
                  [[r.key_id, r.principal, str(r.added_seq),
                    "" if r.revoked_seq is None else f"{r.revoked_seq} ({r.reason})"] for r in records],
                  ids={"key id", "principal"})
    from ..submission import pending_keys

    print_pending_keys([pending_json(w) for w in pending_keys(ledger)], only=False)


def pending_json(waiting: "KeyApproval") -> dict[str, Any]:
    """A key awaiting approval as `charter keys pending --format json` and ``GET /v1/keys/pending`` give it."""
    return {"key_id": waiting.key_id, "principal": waiting.principal, "approved_by": list(waiting.approvers),
            "needed": waiting.needed}


def print_pending_keys(waiting: list[dict[str, Any]], only: bool) -> None:
    """The table of keys awaiting approval; `only`: it is the whole output (say so when there are none)."""
    if not waiting:  # approved by too few administrators so far: they sign nothing yet
        if only:
            out.print("no key awaits approval")
        return
    print_listing("Keys awaiting approval (they sign nothing yet)", ["key id", "principal", "approved by", "needed"],
                  [[w["key_id"], w["principal"] or "", ", ".join(w["approved_by"]), str(w["needed"])]
                   for w in waiting], ids={"key id", "principal", "approved by"})


@keys_app.command("pending")
def keys_pending(db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
                 output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")]
                 = OutputFormat.TABLE) -> None:
    """List the keys awaiting administrators' approval: who approved each so far, and how many must.

    A first key (or one after all of a principal's keys were revoked) is registered once
    ``key_approvals`` administrators ran `charter keys register` with its request; until then it
    signs nothing. ``--format json`` gives what an approval pipeline reads.
    """
    from ..submission import pending_keys

    client = remote_client(db)
    if client is not None:
        with client:
            waiting: list[dict[str, Any]] = client.get("/v1/keys/pending")
    else:
        waiting = [pending_json(w) for w in pending_keys(open_ledger(db, ledger_key, writable=False))]
    if output is OutputFormat.JSON:
        typer.echo(json.dumps(waiting, indent=2))
        return
    print_pending_keys(waiting, only=True)


@systems_app.command("register")
def systems_register(
    file: Annotated[Path, typer.Argument(help="A systems.yaml file (systems: [...]).")],
    key: Annotated[Path, typer.Option("--key", help="Your (a system registrar's) private key.")],
    sign_only: SignOnlyOption = None, db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Register (or update: owner, classification) the systems of a file, as a system registrar.

    Baselines are checked against the KPI catalog in force in the ledger (built-in KPIs plus the custom
    ones the policy activation recorded), never against a kpis.yaml in a folder.
    """
    from ..authority import active_catalog
    from ..ledger import SigningKey
    from ..ledger.auditor import SYSTEM_REGISTERED
    from ..registry import SystemRegistry
    from ..submission import register_system, system_statement
    from .remote import remote_client

    registrar = SigningKey.load(key)
    if sign_only is not None:
        # Handed to a server, the statement's baselines are checked there against its ledger's catalog.
        local = None if remote_client(db) is not None else open_ledger(db, ledger_key, writable=False)
        registry = SystemRegistry.from_file(file, active_catalog(local) if local is not None else None)
        write_signed(sign_only, SYSTEM_REGISTERED, [system_statement(s) for s in registry.values()], registrar,
                     signing_origin(db, ledger_key))
        return
    ledger = open_ledger(db, ledger_key, writable=True)
    registry = SystemRegistry.from_file(file, active_catalog(ledger))
    for system in registry.values():
        entry = register_system(ledger, system, registrar)
        out.print(f"{system.id}: " + (f"registered at seq {entry.seq}" if entry else "unchanged"))


@systems_app.command("list")
def systems_list(db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
                 output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")]
                 = OutputFormat.TABLE) -> None:
    """List the registered systems."""
    from ..submission import systems_in_ledger

    client = remote_client(db)
    if client is not None:
        from . import remote_cmds

        with client:
            remote_cmds.systems_list(client, output)
        return
    systems = systems_in_ledger(open_ledger(db, ledger_key, writable=False))
    if output is OutputFormat.JSON:
        typer.echo(json.dumps([s.model_dump(mode="json") for s in systems.values()], indent=2))
        return
    print_listing("AI systems", ["id", "name", "owner", "risk tier", "kind", "region", "status"],
                  [[s.id, s.name, s.owner, s.risk_tier.value, s.kind.value, s.region, s.status.value]
                   for s in systems.values()], ids={"id", "owner"})


def submit(
    bundles: Annotated[list[Path], typer.Argument(help="Evidence bundle files (JSON), or - for standard input.")],
    key: Annotated[Path | None, typer.Option("--key", help="Submitter's private key; signs the bundle.")] = None,
    bundle_only: Annotated[Path | None, typer.Option("--bundle-only", help="Only sign: write the signed bundle "
                                                     "to this file for the log's operator to submit; needs --key "
                                                     "and one bundle, neither the ledger nor its key.")] = None,
    policies: Annotated[Path | None, typer.Option("--policies", help="For custom KPIs (policies/kpis.yaml); when "
                                                  "it holds policies, they must be the set in force.")] = None,
    checkpoint_every: Annotated[int, typer.Option(help="Sign a checkpoint after this many new entries.")] = 256,
    at: Annotated[str | None, typer.Option("--at", help="Evaluation time (ISO 8601) for back-filled evidence; "
                                           "default: the time of submission.")] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = OutputFormat.TABLE,
    db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Submit signed bundles: validate, evaluate, append with findings and incidents, print signed receipts.

    Bundles are judged by the policy set and escalation configuration in force in the ledger, never
    by a folder of the submitter's choosing. Every bundle is read and validated before the first is
    appended: one bad file means nothing is written.
    """
    from .._sources import read_bytes
    from ..ledger import SigningKey
    from ..submission import prepare_bundle
    from .common import catalog_for

    directory = policies_dir(policies)
    signer = SigningKey.load(key) if key else None
    if bundle_only is not None:
        _sign_only(bundles, signer, catalog_for(directory, None), bundle_only)
        return
    catalog = catalog_in_force(db, ledger_key, directory if policies is not None else None)
    if at:
        parse_time(at)  # a bad --at is refused before anything is read
    prepared = []
    problems: list[Diagnostic] = []
    for path in bundles:
        try:
            prepared.append(prepare_bundle(read_bytes(path), catalog, key=signer, file=str(path)))
        except CharterError as exc:
            problems.extend(exc.diagnostics)
    if problems:
        raise CharterError(problems)
    submit_prepared(prepared, catalog, output, db=db, ledger_key=ledger_key, at=at, policies=policies,
                    directory=directory, checkpoint_every=checkpoint_every)


def submit_prepared(prepared: "list[PreparedBundle]", catalog: "KpiCatalog", output: OutputFormat, *,
                    db: str | None, ledger_key: Path, at: str | None = None, policies: Path | None = None,
                    directory: Path | None = None, checkpoint_every: int = 256) -> None:
    """Submit validated (and signed) bundles to the ledger or the server, print receipts, findings and incidents.

    Shared by `charter submit` and `charter ingest --submit`; exits 1 when a finding is a breach.
    """
    from ..evaluate import Status
    from ..ledger import make_checkpoint
    from ..ledger.checkpoints import checkpoint_due
    from ..submission import submit_bundle

    when = parse_time(at) if at else None
    client = remote_client(db)
    if client is not None:
        from ..policy import policy_files
        from . import remote_cmds

        # The server judges by its set in force and its own clock; a folder of policies could not be checked
        # against it here, and a back-dated evaluation is the log's operator's to make.
        refuse_options(at=at, policies=policies if policies is not None and directory is not None
                       and policy_files(directory) else None)
        with client:
            remote_cmds.submit(client, prepared, output)
        return
    ledger = open_ledger(db, ledger_key, writable=True)
    if policies is not None and directory is not None:
        _check_in_force(ledger, directory, catalog)
    results = []
    for item in prepared:
        try:
            results.append(submit_bundle(ledger, item, catalog, at=when))
        except CharterError as exc:
            if results:  # bundles land one by one: say which did before this one was refused
                landed = ", ".join(f"{r.bundle_entry.seq}" for r in results)
                err.print(f"[yellow]{len(results)} of {len(prepared)} bundles were recorded before "
                          f"{safe(item.file or '?')} was refused (bundle seqs {landed})[/]")
            raise exc
    if checkpoint_due(ledger, checkpoint_every):
        make_checkpoint(ledger)
    findings = [f for r in results for f in r.findings]
    if output is OutputFormat.JSON:
        typer.echo(json.dumps([{"receipt": r.receipt.to_dict(), "duplicate": r.duplicate, "file": item.file,
                                "findings": [f.model_dump(mode="json") for f in r.findings],
                                "incidents": [n.to_dict() for n in r.incidents]}
                               for r, item in zip(results, prepared, strict=True)], indent=2, sort_keys=True))
    else:
        for r in results:
            note = " (already in the ledger: same receipt)" if r.duplicate else ""
            out.print(f"receipt: seq {r.receipt.seq} record {r.receipt.record_hash} "
                      f"received {r.receipt.received_at}{note}")
        print_findings(findings, False, "Findings recorded")
        print_incident_notices([n for r in results for n in r.incidents])
    if any(f.status is Status.BREACH for f in findings):
        raise typer.Exit(1)


def catalog_in_force(db: str | None, ledger_key: Path, directory: Path | None) -> "KpiCatalog":
    """The catalog bundles are read with: the ledger's (built-in plus the custom KPIs its policy activations
    recorded). A `directory` named on the command line must hold those custom KPIs, or none. Against a
    server, the folder's catalog (the server reads each bundle again with its own).

    Raises:
        CharterError: ``kpis_not_active`` when the directory's ``kpis.yaml`` is not the catalog in force.
    """
    from ..authority import active_catalog, check_catalog_in_force
    from ..kpis import custom_catalog_document
    from .common import catalog_for
    from .remote import remote_client

    if remote_client(db) is not None:
        return catalog_for(directory, None)
    ledger = open_ledger(db, ledger_key, writable=False)
    named = named_kpis_file(directory)
    if named is not None:
        check_catalog_in_force(ledger, custom_catalog_document(named), str(named))
    return active_catalog(ledger)


def _sign_only(bundles: list[Path], signer: "SigningKey | None", catalog: "KpiCatalog", target: Path) -> None:
    """`submit --bundle-only`: validate and sign one bundle, write it; the ledger is not touched."""
    from .._sources import read_bytes
    from ..submission import prepare_bundle

    if signer is None or len(bundles) != 1:
        raise CharterError.single("usage", "--bundle-only signs one bundle with --key")
    prepared = prepare_bundle(read_bytes(bundles[0]), catalog, key=signer, file=str(bundles[0]))
    if target.exists():
        raise CharterError.single("output_exists", "refusing to overwrite", file=str(target))
    target.write_text(json.dumps(prepared.data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    out.print(f"signed bundle for {safe(prepared.bundle.system_id)} written to {safe(str(target))}; the log's "
              "operator submits it with `charter submit`")


def _check_in_force(ledger: "Ledger", directory: Path, catalog: "KpiCatalog") -> None:
    """Refuse a policy folder that is not the set in force (a submitter does not choose its judges).

    Compiles with the compiler submission uses (`default_compiler`), so the set in force is compiled
    once for this check and the judging that follows.
    """
    from ..authority import active_policies
    from ..policy import policy_files
    from ..submission import default_compiler

    files = policy_files(directory)
    if not files:
        return  # a folder of custom KPIs only
    compiler = default_compiler(catalog)
    policy_set = compiler.compile_files(files)
    active = active_policies(ledger, compiler)
    if sorted(p.digest for p in policy_set.policies) != sorted(active.published):
        raise CharterError.single("policies_not_active", f"the policies in {directory} are not the set in force "
                                  f"(activated at seq {active.activation_seq}); bundles are judged by the "
                                  "ledger's active set: drop --policies, or have the set published and "
                                  "activated", file=str(directory))


def print_incident_notices(notices: "list[IncidentNotice]") -> None:
    """What a submission did to incidents: one block per incident, with its next step, deadline and who is paged."""
    if not notices:
        return
    out.print(f"\n[bold]Incidents[/] ({len(notices)} opened or updated)")
    for n in notices:
        segment = f" [{n.segment}]" if n.segment else ""
        out.print(f"  {n.incident_id} {n.action}: {safe(n.system_id)} {safe(n.rule)}{safe(segment)} "
                  f"({n.severity}), now {n.state}")
        if n.step:
            out.print(f"    next: {n.step} by {n.due_at}")
        for role, members in n.paged:
            out.print(f"    paged: {safe(role)} ({safe(', '.join(members))})")


def replay_command(
    seq: Annotated[int, typer.Argument(help="Seq of a bundle entry.", min=0, max=MAX_SEQ)],
    db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
    policies: Annotated[Path | None, typer.Option("--policies", help="For custom KPIs and controls.")] = None,
) -> None:
    """Re-evaluate a stored bundle under its recorded policy versions; exit 1 if findings differ."""
    from ..authority import reading_catalog
    from ..policy import PolicyCompiler
    from ..submission import replay

    _, _, frameworks = compile_policies(policies_dir(policies), None, None)
    ledger = open_ledger(db, ledger_key, writable=False)
    catalog = reading_catalog(ledger.authority().custom_kpis, named_kpis_file(policies),
                              "the custom KPIs of the ledger's policy activations")
    result = replay(ledger, seq, catalog, PolicyCompiler(catalog, frameworks))
    if result.matches:
        out.print(f"[green]replay matches[/]: {len(result.stored)} findings of the bundle at seq {seq} re-derived "
                  "identically")
        return
    for line in result.differences():
        out.print(f"[red]{safe(line)}[/]")
    raise typer.Exit(1)


def verify(
    checkpoint: Annotated[list[Path], typer.Option("--checkpoint", help="A checkpoint note you hold (repeatable).")]
    = [],  # noqa: B006 - typer needs a list default for repeatable options
    no_signatures: Annotated[bool, typer.Option("--no-signatures", help="Skip signature checks (faster).")]
    = False,
    full: Annotated[bool, typer.Option("--full", help="Read every entry, instead of resuming after the "
                                       "log-signed state of the last report's verification.")] = False,
    log_public_key: Annotated[Path | None, typer.Option(help="The pinned log public key (default: "
                                                         "ledger.pub beside the ledger key).")] = None,
    db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
    witness: Annotated[list[Path], typer.Option("--witness", help="A witness public key whose cosignature a "
                                                "published checkpoint must carry (repeatable).")]
    = [],  # noqa: B006 - typer needs a list default for repeatable options
    published: Annotated[Path | None, typer.Option("--published", help="The directory of published checkpoints "
                                                   "(`charter checkpoint publish`) the ledger must agree with.")]
    = None,
) -> None:
    """Verify the ledger: bytes, hashes, chain, seq, signatures, keys, checkpoints.

    By default entries already covered by the log-signed verified state (recorded when a report was
    bound) are not read again, and the summary says so; --full reads every entry.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .._sources import read_text
    from ..ledger import verify_ledger

    client = remote_client(db)
    if client is not None:
        from . import remote_cmds

        refuse_options(checkpoint=checkpoint, no_signatures=no_signatures, log_public_key=log_public_key,
                       witness=witness, published=published)
        with client:
            remote_cmds.verify(client, full)
        return
    public = pinned_public_key(ledger_key, log_public_key)
    notes = [read_text(path, MAX_NOTE_BYTES) for path in checkpoint]
    ledger = open_ledger(db, ledger_key, writable=False)
    total = ledger.size()
    with Progress(TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as progress:
        task = progress.add_task("verify", total=total)
        report = verify_ledger(ledger, public, notes, not no_signatures,
                               progress=lambda n: progress.update(task, completed=n), resume=not full)
    if published is not None or witness:
        from .witness_cmds import check_for_verify

        report.problems.extend(check_for_verify(ledger, public, published, witness))
    for problem in report.problems:
        out.print(f"[red]{safe(str(problem))}[/]")
    out.print(("[green]" if report.ok else "[bold red]") + safe(report.summary()) + "[/]")
    if not report.ok:
        raise typer.Exit(1)


@ledger_app.command("checkpoint")
def ledger_checkpoint(db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY) -> None:
    """Sign a checkpoint of the whole ledger now and print its note."""
    from ..ledger import make_checkpoint

    typer.echo(make_checkpoint(open_ledger(db, ledger_key, writable=True)).note, nl=False)


@ledger_app.command("prove")
def ledger_prove(
    seq: Annotated[int, typer.Argument(help="The entry to prove.", min=0, max=MAX_SEQ)],
    size: Annotated[int | None, typer.Option(help="Against the checkpoint of this size (default: newest).",
                                             min=1, max=MAX_SEQ)]
    = None,
    db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Print an inclusion proof (RFC 9162) of an entry against a signed checkpoint."""
    from ..ledger import prove_inclusion

    proof = prove_inclusion(open_ledger(db, ledger_key, writable=False), seq, size)
    typer.echo(json.dumps(proof.to_dict(), indent=2))


@ledger_app.command("consistency")
def ledger_consistency(
    old_size: Annotated[int, typer.Argument(min=1, max=MAX_SEQ)],
    new_size: Annotated[int, typer.Argument(min=1, max=MAX_SEQ)],
    db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Print a consistency proof (RFC 9162) between two signed checkpoints."""
    from ..ledger import prove_consistency

    typer.echo(json.dumps(prove_consistency(open_ledger(db, ledger_key, writable=False), old_size, new_size),
                          indent=2))


@ledger_app.command("show")
def ledger_show(seq: Annotated[int, typer.Argument(min=0, max=MAX_SEQ)], db: DbOption = None,
                ledger_key: KeyOption = DEFAULT_KEY) -> None:
    """Print one entry: its body, record hash and receipt."""
    ledger = open_ledger(db, ledger_key, writable=False)
    entry = ledger.entry(seq)
    if entry is None:
        raise CharterError.single("no_entry", f"there is no entry {seq}")
    typer.echo(json.dumps({"seq": entry.seq, "record_hash": entry.record_hash.hex(),
                           "receipt": ledger.receipt_for(seq), "body": entry.document()}, indent=2))


@ledger_app.command("export")
def ledger_export(
    directory: Annotated[Path, typer.Argument(help="An empty or new directory.")],
    db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Export entries, checkpoints, trust root and a standalone verifier for offline audit."""
    from ..ledger import export_ledger

    ledger = open_ledger(db, ledger_key, writable=False)
    count = export_ledger(ledger, directory)
    out.print(f"exported {count} entries to {directory}; verify with: python {directory / 'verify.py'} {directory} "
              f"--log-key {ledger.meta()['log_key_id']} (check the fingerprint against the one you hold)")

