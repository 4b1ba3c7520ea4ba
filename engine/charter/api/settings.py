"""The service's settings: which ledger, which keys, which identity provider, which limits."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._sources import load_yaml_file
from ..errors import CharterError
from ..validation import collect_validation_errors
from .oidc import OIDCSettings

__all__ = ["SETTINGS_ENV", "ServiceSettings", "load_settings"]

#: where `charter serve` hands the settings to its uvicorn workers (each imports the app anew)
SETTINGS_ENV = "CHARTER_SERVICE_SETTINGS"


class ServiceSettings(BaseModel):
    """What `charter serve` runs with; from flags, or a YAML file (`charter serve --config`)."""

    model_config = ConfigDict(extra="forbid")

    database_url: str = Field(description="The ledger: postgresql://... for several workers; sqlite:///... with one.")
    ledger_key: Path = Field(description="The log's private key: the service is the process that appends.")
    log_public_key: Path | None = Field(default=None, description="The pinned log public key verification uses "
                                        "(default: the .pub file beside the ledger key).")
    kpis: Path | None = Field(default=None, description="Refused when set: custom KPIs are recorded with the "
                              "policy set (`charter policy activate`) and read from the ledger.")
    reports_dir: Path = Field(default=Path(".charter/reports"), description="Where issued report files are kept "
                              "for download.")
    oidc: OIDCSettings | None = Field(default=None, description="The OpenID Connect provider people sign in with; "
                                      "without it only API tokens authenticate.")
    notifications_log: Path = Field(default=Path(".charter/notifications.log"), description="Where log channels "
                                    "write the pages the service sends (a serious incident's reporting role).")
    checkpoint_every: int = Field(default=256, ge=0, description="Sign a checkpoint after this many new entries.")
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, description="The largest request body.")
    idempotency_hours: int = Field(default=24, ge=1, description="How long a reply to an Idempotency-Key is kept.")
    workers: int = Field(default=1, ge=1, le=64)

    def check(self) -> ServiceSettings:
        """Refuse settings that cannot work: several workers on SQLite, a missing key file.

        Raises:
            CharterError: ``service_settings`` naming the setting.
        """
        if self.workers > 1 and self.database_url.startswith("sqlite"):
            raise CharterError.single("service_settings", "SQLite takes one writer process: run one worker, or "
                                      "use PostgreSQL (postgresql://...) for several", path="$.workers")
        if not self.ledger_key.is_file():
            raise CharterError.single("service_settings", f"no log key at {self.ledger_key}; the service appends "
                                      "and needs the ledger's key", path="$.ledger_key")
        return self

    def public_key_path(self) -> Path:
        """The pinned log public key file."""
        return self.log_public_key or self.ledger_key.with_suffix(".pub")

    def to_environment(self) -> str:
        """The JSON the workers read from `SETTINGS_ENV`."""
        return self.model_dump_json()


def load_settings(path: Path) -> ServiceSettings:
    """Read a settings YAML file.

    Raises:
        CharterError: unreadable YAML, or settings that do not validate (with their paths).
    """
    data, sources = load_yaml_file(path)
    try:
        return ServiceSettings.model_validate(data)
    except ValidationError as exc:
        raise CharterError(collect_validation_errors(exc, sources, code="service_settings", file=str(path))) from exc


def settings_from_environment() -> ServiceSettings:
    """The settings `charter serve` put in the environment for its workers."""
    text = os.environ.get(SETTINGS_ENV)
    if not text:
        raise CharterError.single("service_settings", f"{SETTINGS_ENV} is not set: start the service with "
                                  "`charter serve`")
    return ServiceSettings.model_validate(json.loads(text))
