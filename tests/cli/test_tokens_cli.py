"""`charter tokens create|revoke|list` as typed at the command line, on a governed ledger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.governed import governed_cli, governed_ledger, ledger_size

cli, size = governed_cli, ledger_size


@pytest.fixture(scope="module")
def governed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("governed")
    governed_ledger(directory)
    return directory


def _tokens(directory: Path) -> dict[str, dict[str, object]]:
    status, out, _ = cli(directory, "tokens", "list", "--format", "json")
    assert status == 0
    return {t["token_id"]: t for t in json.loads(out)}


def test_create_list_revoke(governed: Path) -> None:
    status, out, err = cli(governed, "tokens", "create", "--principal", "maria.keller", "--scope", "submit",
                           "--scope", "read", "--expires", "P90D", "--key", ".charter/keys/maria.keller.key")
    assert status == 0, err
    text = out.strip().splitlines()[-1]
    assert text.startswith("chtr_") and "not shown again" not in out and "shown only this once" in err
    token_id = text.split("_")[1]
    listed = _tokens(governed)[token_id]
    assert listed["status"] == "active" and listed["scopes"] == ["read", "submit"]
    assert text not in json.dumps(listed) and "argon2" not in json.dumps(listed)
    status, _, err = cli(governed, "tokens", "revoke", token_id, "--reason", "rotation", "--key",
                         ".charter/keys/ana.costa.key")
    assert status == 0, err
    assert _tokens(governed)[token_id]["status"] == "revoked"
    status, out, _ = cli(governed, "tokens", "list")
    assert status == 0 and token_id in out


@pytest.mark.parametrize(("args", "code"), [
    (["--expires", "P90D", "--key", ".charter/keys/tom.berger.key"], "not_authorized"),
    (["--expires", "90 days", "--key", ".charter/keys/maria.keller.key"], "usage"),
    (["--expires", "P2Y", "--key", ".charter/keys/maria.keller.key"], "malformed_body"),
])
def test_refusals_exit_2_and_write_nothing(governed: Path, args: list[str], code: str) -> None:
    before = size(governed)
    status, _, err = cli(governed, "tokens", "create", "--principal", "maria.keller", "--scope", "submit", *args)
    assert status == 2 and code in err, err
    assert size(governed) == before


def test_sign_only_then_accept(governed: Path) -> None:
    status, out, err = cli(governed, "tokens", "create", "--principal", "li.wang", "--scope", "submit", "--expires",
                           "P30D", "--key", ".charter/keys/li.wang.key", "--sign-only", "token.json")
    assert status == 0, err
    token_id = out.strip().splitlines()[-1].split("_")[1]
    assert token_id not in _tokens(governed)
    assert cli(governed, "ledger", "accept", "token.json")[0] == 0
    assert _tokens(governed)[token_id]["principal"] == "li.wang"
