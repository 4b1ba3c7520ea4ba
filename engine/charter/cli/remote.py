"""The CLI against a Charter server: ``CHARTER_URL`` and ``CHARTER_TOKEN`` choose it, never a silent default.

With ``CHARTER_URL`` set, a command that has a remote form talks to the service; every other
command that would open a ledger refuses (`refuse_local`), so nobody acts on a local file believing
they acted on the server. Commands that touch no ledger (lint, evaluate, schema, key generation,
``--sign-only`` and ``--bundle-only``) work either way.
"""

import os
from typing import TYPE_CHECKING, Any

from ..errors import CharterError

if TYPE_CHECKING:
    from ..client import ServiceClient

URL_ENV = "CHARTER_URL"
TOKEN_ENV = "CHARTER_TOKEN"
ORIGIN_ENV = "CHARTER_ORIGIN"
#: Seconds the CLI waits for the service (connect, and each read); a report on a large ledger takes a while.
TIMEOUT_ENV = "CHARTER_TIMEOUT"


def command_name() -> str:
    """The running command as a user types it (``charter incidents list``), read from the command line."""
    import sys

    import typer.main

    from . import app

    words, group = ["charter"], typer.main.get_command(app)
    for word in sys.argv[1:]:
        commands = getattr(group, "commands", None)
        if not commands or word not in commands:
            if len(words) == 1:
                continue  # a root option (--max-input-bytes N) before the command
            break
        words.append(word)
        group = commands[word]
    return " ".join(words)


def remote_url() -> str | None:
    """``CHARTER_URL``, when set and not empty."""
    return os.environ.get(URL_ENV) or None


def remote_client(db: str | None = None) -> "ServiceClient | None":
    """The service client when ``CHARTER_URL`` is set; None for the local ledger.

    Args:
        db: the ``--db`` (or ``CHARTER_DATABASE_URL``) the command was given: naming a local
            database as well as a server is refused rather than one of them silently ignored.

    Raises:
        CharterError: ``usage`` for ``CHARTER_URL`` without ``CHARTER_TOKEN``, or with a database too.
    """
    url = remote_url()
    if url is None:
        return None
    token = os.environ.get(TOKEN_ENV)
    if not token:
        raise CharterError.single("usage", f"{URL_ENV} is set ({url}) but {TOKEN_ENV} is not: set {TOKEN_ENV} to an "
                                  "API token (`charter tokens create`) or an OpenID Connect token, or unset "
                                  f"{URL_ENV} to use a local ledger")
    if db is not None:
        raise CharterError.single("usage", f"both {URL_ENV} ({url}) and a database (--db or CHARTER_DATABASE_URL) "
                                  f"are set: unset {URL_ENV} to use the local ledger, or drop the database to use "
                                  "the server")
    if not url.startswith(("http://", "https://")):
        raise CharterError.single("usage", f"{URL_ENV} must be an http:// or https:// URL; got {url!r}")
    from urllib.parse import urlsplit

    if url.startswith("http://") and urlsplit(url).hostname not in ("localhost", "127.0.0.1", "::1"):
        # the bearer token would cross the network in clear text
        raise CharterError.single("usage", f"{URL_ENV} ({url}) is plain http to another machine: the token would "
                                  "travel unencrypted; use https (plain http only to this machine)")
    from ..client import ServiceClient

    timeout = os.environ.get(TIMEOUT_ENV, "")
    return ServiceClient(url, token, float(timeout) if timeout.replace(".", "", 1).isdigit() else 30)


def refuse_local() -> None:
    """Refuse to open a local ledger while ``CHARTER_URL`` names a server (called by `open_ledger`).

    Raises:
        CharterError: ``not_remote`` naming the command.
    """
    url = remote_url()
    if url is not None:
        raise CharterError.single("not_remote", f"{command_name()} is not available against a Charter server "
                                  f"({URL_ENV}={url}); unset {URL_ENV} to use a local ledger")


def refuse_options(**given: Any) -> None:
    """Refuse options that have no meaning against a server (each name given with its value; None or empty is
    not given).

    Raises:
        CharterError: ``not_remote`` naming the options.
    """
    named = [f"--{name.replace('_', '-')}" for name, value in given.items() if value not in (None, False, [], ())]
    if named:
        raise CharterError.single("not_remote", f"{command_name()} against a Charter server does not take "
                                  f"{', '.join(named)}; unset {URL_ENV} to use them on a local ledger")


def remote_origin(client: "ServiceClient") -> str:
    """The origin of the server's log, which a signed statement is bound to.

    Read from ``/v1/whoami`` when the service says it, else from ``/v1/ledger/head`` (governance
    roles, administrators and auditors may read it), else from ``CHARTER_ORIGIN``.

    Raises:
        CharterError: ``origin_unknown`` when none of these gives it.
    """
    me = client.get("/v1/whoami")
    if isinstance(me, dict) and isinstance(me.get("origin"), str):
        return str(me["origin"])
    given = os.environ.get(ORIGIN_ENV)
    if given:
        return given
    try:
        head = client.get("/v1/ledger/head")
    except CharterError as exc:
        if {d.code for d in exc.diagnostics} != {"forbidden"}:
            raise
        raise CharterError.single("origin_unknown", f"the server's log origin is needed to sign this change, and "
                                  f"{me.get('principal')!r} may not read the ledger's head: set {ORIGIN_ENV} to the "
                                  "origin (`charter ledger show 0` on the server's ledger, or ask its operator)"
                                  ) from None
    return str(head["origin"])
