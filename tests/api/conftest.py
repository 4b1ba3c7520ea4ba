"""A served ledger: the demo's authority set-up, fraud bundles, an auditor, API tokens for each persona.

The application runs in-process (FastAPI's TestClient, a real ASGI round trip with real
authentication and real ledger writes) on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from charter.api.app import create_app
from charter.api.oidc import OIDCVerifier
from charter.api.settings import ServiceSettings
from charter.authority import Administrator, GovernanceConfig, SignedStatement, update_governance
from charter.cli.demo import DEMO_ADMINS, DEMO_ROLES
from charter.ledger import Ledger, SigningKey, make_checkpoint
from charter.ledger.records import format_time
from charter.submission import sign_bundle_data
from charter.tokens import create_token
from tests.conftest import REPO
from tests.unit.ledger.helpers import Populated, key_of, populate

#: who calls the service in these tests, and what the ledger makes them
PERSONAS = {
    "admin": "ana.costa",            # administrator
    "auditor": "iris.vogel",         # holds the auditor role
    "approver": "omar.haddad",       # policy approver, risk and compliance (second line)
    "committee": "david.osei",       # AI governance committee member
    "owner": "maria.keller",         # owns fraud-detector; first-line escalation role
    "outsider": "olga.nobody",       # authenticated, but the ledger gives her no standing
}
#: a bundle of the fraud detector nobody has submitted yet
FRESH_BUNDLE = REPO / "evidence" / "fraud-detector-2026-06.json"


@dataclass
class Served:
    """A served ledger and a client with each persona's API token."""

    populated: Populated
    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)
    report_seq: int | None = None

    @property
    def ledger(self) -> Ledger:
        return self.populated.ledger

    def headers(self, persona: str, **extra: str) -> dict[str, str]:
        """The Authorization header of `persona`'s token."""
        return {"Authorization": f"Bearer {self.tokens[persona]}", **extra}

    def signed_bundle(self, path: Path = FRESH_BUNDLE, signer: str = "maria.keller") -> bytes:
        data = json.loads(path.read_text(encoding="utf-8"))
        return json.dumps(sign_bundle_data(data, key_of(signer))).encode()

    def statement(self, entry_type: str, fields: dict[str, Any], signer: str) -> dict[str, Any]:
        signed = SignedStatement.sign(self.ledger.origin, entry_type, fields, key_of(signer),
                                      format_time(self.ledger.clock()))
        return signed.to_dict()


def add_auditor(populated: Populated) -> None:
    """Give the configuration an auditor (two of the demo's three administrators approve it)."""
    admins = [Administrator(principal=name, public_key=base64.b64encode(key_of(name).public).decode())
              for name in DEMO_ADMINS]
    config = GovernanceConfig(administrators=admins, threshold=2,
                              roles={**DEMO_ROLES, "auditor": [PERSONAS["auditor"]]})
    update_governance(populated.ledger, config, [key_of(DEMO_ADMINS[0]), key_of(DEMO_ADMINS[1])])


def issue_tokens(ledger: Ledger, scopes: tuple[str, ...] = ("read", "submit", "act")) -> dict[str, str]:
    """One token per persona, created by the administrator, valid for 90 days."""
    expires = ledger.clock() + datetime.timedelta(days=90)
    return {persona: create_token(ledger, principal, list(scopes), expires, key_of(PERSONAS["admin"]))[1]
            for persona, principal in PERSONAS.items()}


def serve(populated: Populated, tmp_path: Path, oidc: OIDCVerifier | None = None, **settings: Any) -> TestClient:
    """The application over `populated`'s ledger (its log key file is not needed: the ledger is open)."""
    options: dict[str, Any] = {"database_url": "unused://", "ledger_key": tmp_path / "unused.key",
                               "reports_dir": tmp_path / "reports", "checkpoint_every": 64, **settings}
    return TestClient(create_app(ServiceSettings(**options), ledger=populated.ledger, oidc=oidc))


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[Served]:
    """A fresh served ledger on SQLite and on PostgreSQL."""
    populated = populate(db_url, bundles=5)
    # the service runs after the evidence was measured (the step clock starts in January)
    populated.ledger.clock.now = datetime.datetime(2026, 7, 1, tzinfo=datetime.UTC)  # type: ignore[attr-defined]
    add_auditor(populated)
    tokens = issue_tokens(populated.ledger)
    make_checkpoint(populated.ledger)
    with serve(populated, tmp_path) as client:
        yield Served(populated, client, tokens)
    # return the connections now, not at garbage collection: parallel suites share PostgreSQL's 100 slots
    populated.ledger.engine.dispose()


def signing_key(principal: str) -> SigningKey:
    """The test key of `principal` (`key_of`)."""
    return key_of(principal)
