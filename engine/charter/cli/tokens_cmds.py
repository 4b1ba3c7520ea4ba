"""`charter tokens create|revoke|list`: API tokens for pipelines and scripts, recorded in the ledger.

A token is created by its principal or an administrator (``--key``) or, with ``--sign-only FILE``,
signed for the log's operator to append (`charter ledger accept`). Its text is printed once and
never stored; the ledger keeps its argon2id hash.
"""

import datetime
import json
import re
from pathlib import Path
from typing import Annotated

import typer

from ..errors import CharterError
from .common import OutputFormat, command_group, err, out, print_listing, safe
from .ledger import DEFAULT_KEY, DbOption, KeyOption, SignOnlyOption, open_ledger, signing_origin, write_signed
from .remote import remote_client

tokens_app = command_group("API tokens for pipelines and scripts: create, revoke, list.")

# Not `charter.policy.model`'s duration parser: it has no years or months, and a token's life is
# naturally given as P1Y or P6M.
#: an ISO 8601 duration of whole units: years, months, weeks, days, then (after T) hours, minutes, seconds
_DURATION = re.compile(r"P(?:(\d{1,4})Y)?(?:(\d{1,4})M)?(?:(\d{1,4})W)?(?:(\d{1,5})D)?"
                       r"(?:T(?:(\d{1,6})H)?(?:(\d{1,8})M)?(?:(\d{1,10})S)?)?")


def add_duration(start: datetime.datetime, text: str) -> datetime.datetime:
    """`start` plus an ISO 8601 duration such as ``P90D``, ``P1Y`` or ``PT12H`` (whole units only).

    Years and months move the calendar date (1 January plus P1M is 1 February; 31 January plus P1M
    is the last day of February), the rest are fixed lengths.

    Raises:
        CharterError: ``usage`` for anything else (fractions, negative or empty durations, a bare T).
    """
    match = _DURATION.fullmatch(text)
    if match is None or not any(match.groups()) or text.endswith("T"):
        raise CharterError.single("usage", f"--expires {text!r} is not an ISO 8601 duration such as P90D, P1Y or "
                                  "PT12H")
    years, months, weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    month_index = start.month - 1 + months + 12 * years
    year, month = start.year + month_index // 12, month_index % 12 + 1
    try:
        first_of_next = datetime.date(year + month // 12, month % 12 + 1, 1)
        moved = start.replace(year=year, month=month,
                              day=min(start.day, (first_of_next - datetime.timedelta(days=1)).day))
        return moved + datetime.timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    except (ValueError, OverflowError):
        raise CharterError.single("usage", f"--expires {text!r} is too long") from None


@tokens_app.command("create")
def tokens_create(
    principal: Annotated[str, typer.Option("--principal", help="Who the token authenticates (a pipeline's "
                                           "principal, e.g. the system owner it submits for).")],
    scope: Annotated[list[str], typer.Option("--scope", help="read, submit (bundles only) or act (repeat).")],
    expires: Annotated[str, typer.Option("--expires", help="Lifetime as an ISO 8601 duration: P90D, P1Y "
                                         "(at most 366 days).")],
    key: Annotated[Path, typer.Option("--key", help="Your private key: the principal's own, or an "
                                      "administrator's.")],
    sign_only: SignOnlyOption = None, db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Create an API token; its text is printed once and is not shown again."""
    from ..ledger import SigningKey
    from ..ledger.auditor import TOKEN_CREATED
    from ..tokens import create_token, token_statement

    expires_at = add_duration(datetime.datetime.now(datetime.UTC), expires)
    signer = SigningKey.load(key)
    if sign_only is not None:
        fields, text = token_statement(principal, scope, expires_at)
        write_signed(sign_only, TOKEN_CREATED, [fields], signer, signing_origin(db, ledger_key))
        token_id = fields["token_id"]
        note = "it works once the log's operator has appended the statement"
    elif (client := remote_client(db)) is not None:
        from . import remote_cmds

        fields, text = token_statement(principal, scope, expires_at)
        with client:
            result = remote_cmds.post_statement(client, remote_cmds.sign(client, TOKEN_CREATED, fields, signer))
        token_id = fields["token_id"]
        note = f"recorded at seq {result['seq']}"
    else:
        entry, text = create_token(open_ledger(db, ledger_key, writable=True), principal, scope, expires_at, signer)
        token_id = entry.payload["token_id"]
        note = f"recorded at seq {entry.seq}"
    out.print(f"token {token_id} for {safe(principal)} ({', '.join(sorted(set(scope)))}), expires "
              f"{expires_at:%Y-%m-%dT%H:%M:%SZ}; {note}")
    err.print("warning: the token is shown only this once and is not stored anywhere; keep it in a secret store")
    typer.echo(text)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (the 16 hex digits after chtr_).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (leaked, pipeline retired, rotation).")],
    key: Annotated[Path, typer.Option("--key", help="Your private key: the token's principal or an "
                                      "administrator.")],
    sign_only: SignOnlyOption = None, db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Revoke a token: it authenticates nothing from the next entry on."""
    from ..ledger import SigningKey
    from ..ledger.auditor import TOKEN_REVOKED
    from ..tokens import revoke_token

    signer = SigningKey.load(key)
    if sign_only is not None:
        write_signed(sign_only, TOKEN_REVOKED, [{"token_id": token_id, "reason": reason}], signer,
                     signing_origin(db, ledger_key))
        return
    client = remote_client(db)
    if client is not None:
        from . import remote_cmds

        with client:
            result = remote_cmds.post_statement(client, remote_cmds.sign(
                client, TOKEN_REVOKED, {"token_id": token_id, "reason": reason}, signer))
        out.print(f"seq {result['seq']}: token {token_id} revoked")
        return
    entry = revoke_token(open_ledger(db, ledger_key, writable=True), token_id, reason, signer)
    out.print(f"seq {entry.seq}: token {token_id} revoked")


@tokens_app.command("list")
def tokens_list(db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
                output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")]
                = OutputFormat.TABLE) -> None:
    """List the tokens created in the ledger, with their status now (never a secret or hash)."""
    from ..ledger.records import format_time
    from ..tokens import token_index

    client = remote_client(db)
    if client is not None:
        from . import remote_cmds

        with client:
            remote_cmds.tokens_list(client, output)
        return
    now = datetime.datetime.now(datetime.UTC)
    records = token_index(open_ledger(db, ledger_key, writable=False)).records()
    if output is OutputFormat.JSON:
        typer.echo(json.dumps([{"token_id": r.token_id, "principal": r.principal, "scopes": list(r.scopes),
                                "expires_at": format_time(r.expires_at), "created_seq": r.created_seq,
                                "revoked_seq": r.revoked_seq, "status": r.status(now)} for r in records], indent=2))
        return
    print_listing("API tokens", ["token id", "principal", "scopes", "expires", "created at seq", "status"],
                  [[r.token_id, r.principal, ", ".join(r.scopes), format_time(r.expires_at), str(r.created_seq),
                    r.status(now) if r.revoked_seq is None else f"revoked at seq {r.revoked_seq}"]
                   for r in records], ids={"token id", "principal"})


def whoami(output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")]
           = OutputFormat.TABLE) -> None:
    """Who the Charter server (CHARTER_URL) says your credential (CHARTER_TOKEN) is: principal, scopes, roles."""
    from .remote import URL_ENV

    client = remote_client()
    if client is None:
        raise CharterError.single("usage", f"charter whoami asks a Charter server: set {URL_ENV} and CHARTER_TOKEN. "
                                  "A local ledger has no authenticated caller: its commands act with the key you "
                                  "pass (--key), and the ledger checks that key's role")
    from . import remote_cmds

    with client:
        remote_cmds.whoami(client, output)
