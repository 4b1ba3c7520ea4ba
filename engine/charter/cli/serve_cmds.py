"""`charter serve`: the HTTP service (FastAPI on uvicorn) over the same library the CLI calls."""

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .common import err, safe
from .ledger import DEFAULT_KEY, DbOption, KeyOption

if TYPE_CHECKING:
    from ..api.settings import ServiceSettings


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=0, max=65535)] = 8080,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes (several need PostgreSQL).", min=1, max=64)]
    = 1,
    config: Annotated[Path | None, typer.Option("--config", help="A service settings YAML file (see docs/service.md); "
                                                "a flag given as well overrides the file's value.")] = None,
    kpis_file: Annotated[Path | None, typer.Option("--kpis", help="Refused: custom KPIs come from the ledger.")]
    = None,
    reports_dir: Annotated[Path, typer.Option(help="Where issued report files are kept for download.")]
    = Path(".charter/reports"),
    oidc_issuer: Annotated[str | None, typer.Option(help="OpenID Connect issuer people sign in with "
                                                    "(its discovery document gives the JWKS).")] = None,
    oidc_audience: Annotated[str | None, typer.Option(help="The audience (client id) ID tokens must name.")] = None,
    oidc_principal_claim: Annotated[str, typer.Option(help="The claim naming the principal.")] = "sub",
    checkpoint_every: Annotated[int, typer.Option(help="Sign a checkpoint after this many new entries.", min=0)]
    = 256,
    db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Serve the ledger over HTTP: /v1 API (OpenAPI at /openapi.json), /healthz, /readyz, /metrics.

    People authenticate with OpenID Connect bearer tokens, pipelines with API tokens (`charter tokens
    create`); every change must also be signed by its actor's registered key. Runs until interrupted.
    """
    import uvicorn

    from ..api.oidc import OIDCSettings
    from ..api.settings import SETTINGS_ENV, ServiceSettings, load_settings
    from ..errors import CharterError
    from ..ledger import Ledger, SigningKey, default_url

    if config is not None:
        given = _given_on_command_line(ctx)
        flags = {"workers": workers, "reports_dir": reports_dir, "database_url": db, "ledger_key": ledger_key,
                 "kpis": kpis_file, "checkpoint_every": checkpoint_every}
        names = {"database_url": "db", "kpis": "kpis_file"}
        settings, notes = settings_with_flags(load_settings(config), config, {
            field: value for field, value in flags.items() if names.get(field, field) in given})
        for note in notes:
            err.print(f"[yellow]{safe(note)}[/]")
        if given & {"oidc_issuer", "oidc_audience", "oidc_principal_claim"}:
            raise CharterError.single("usage", "with --config, the OpenID Connect provider is set in the file's "
                                      "oidc section, not by --oidc-* flags")
    else:
        if (oidc_issuer is None) != (oidc_audience is None):
            raise CharterError.single("usage", "--oidc-issuer and --oidc-audience go together")
        oidc = OIDCSettings.from_mapping({"issuer": oidc_issuer, "audience": oidc_audience,
                                          "principal_claim": oidc_principal_claim}) \
            if oidc_issuer and oidc_audience else None
        settings = ServiceSettings(database_url=db or default_url(), ledger_key=ledger_key, kpis=kpis_file,
                                   reports_dir=reports_dir, oidc=oidc, checkpoint_every=checkpoint_every,
                                   workers=workers)
    settings.check()
    # Open it once here, so a missing ledger, a wrong key or an old schema is refused before listening.
    Ledger.open(settings.database_url, log_key=SigningKey.load(settings.ledger_key))
    os.environ[SETTINGS_ENV] = settings.to_environment()
    if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # each worker counts in its own files here; /metrics of any worker sums them
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="charter-metrics-")
    err.print(f"charter serve: {safe(settings.database_url.split('@')[-1])} on http://{safe(host)}:{port} "
              f"({settings.workers} worker{'s' if settings.workers > 1 else ''}; "
              f"{'OpenID Connect and API tokens' if settings.oidc else 'API tokens only'})")
    uvicorn.run("charter.api.app:app_from_environment", factory=True, host=host, port=port,
                workers=settings.workers, access_log=False, log_level="warning")


#: the flags `--config` settings can be overridden by, and how each is spelled on the command line
_FLAG_NAMES = {"workers": "--workers", "reports_dir": "--reports-dir", "database_url": "--db",
               "ledger_key": "--ledger-key", "kpis": "--kpis", "checkpoint_every": "--checkpoint-every"}


def _given_on_command_line(ctx: typer.Context) -> set[str]:
    """The parameters of the running command that the user typed (not left at their defaults, not from the
    environment: a settings file is chosen explicitly, an environment variable is ambient)."""
    sources = {name: ctx.get_parameter_source(name) for name in ctx.params}
    return {name for name, source in sources.items() if source is not None and source.name == "COMMANDLINE"}


def settings_with_flags(settings: "ServiceSettings", config: Path, flags: dict[str, object]
                        ) -> "tuple[ServiceSettings, list[str]]":
    """`settings` from `config` with the flags the user gave (`flags`: setting -> value) put over it.

    A flag typed on the command line wins over the file; one left at its default changes nothing.
    Returns the settings and a note for each value of the file a flag replaced with another.
    """
    from ..api.settings import ServiceSettings

    notes = []
    for name, value in flags.items():
        if name in settings.model_fields_set and getattr(settings, name) != value:
            notes.append(f"{_FLAG_NAMES[name]} {value} overrides {name}: {getattr(settings, name)} in {config}")
    merged = ServiceSettings.model_validate({**settings.model_dump(exclude_unset=True), **flags})
    return merged, notes
