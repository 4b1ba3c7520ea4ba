"""The CLI against a real `charter serve`: CHARTER_URL and CHARTER_TOKEN choose the server, nothing else.

The service runs as a subprocess on a free loopback port, over a governed ledger built in-process
(the demo's authority set-up, everyone's keys in .charter/keys/NAME.key, an API token per person);
the CLI runs as a user runs it. No output may ever show the token the CLI authenticated with.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from charter.cli.demo import demo_governance
from charter.ledger import Ledger, SigningKey
from charter.tokens import create_token
from tests.conftest import REPO, run_cli, wait_for_service
from tests.unit.ledger.helpers import ESCALATION, POLICIES, REGISTRY

ORIGIN = "charter.local/ledger"
#: who calls the server in these tests
PEOPLE = ("tom.berger", "maria.keller", "carla.rossi", "ana.costa", "omar.haddad")
#: how long a server may take to become ready
READY_TIMEOUT = 30.0


def free_port() -> int:
    """A loopback port nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def build_ledger(directory: Path, url: str) -> Ledger:
    """The governed ledger of `tests.governed`, at `url`, with the log key and everyone's keys under `directory`."""
    log_key = SigningKey.generate(ORIGIN)
    log_key.save(directory / ".charter" / "ledger.key")
    ledger = Ledger.open(url, log_key=log_key, origin=ORIGIN, create=True)
    for name, key in demo_governance(ledger, REGISTRY, POLICIES.policies, ESCALATION).items():
        key.save(directory / ".charter" / "keys" / f"{name}.key")
    return ledger


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll /readyz until it answers 200 (`tests.conftest.wait_for_service`)."""
    wait_for_service(url, process, READY_TIMEOUT, log)


@dataclass
class Served:
    """A running server over a governed ledger, and each person's API token."""

    directory: Path
    url: str
    tokens: dict[str, str] = field(default_factory=dict)

    def cli(self, person: str | None, *args: str, cwd: Path | None = None, **env: str) -> tuple[int, str, str]:
        """Run `charter ARGS` against the server as `person` (None: no token); never a traceback or a token."""
        environment = {"CHARTER_URL": self.url, "CHARTER_TOKEN": self.tokens[person] if person else "", **env}
        result = run_cli(*args, cwd=cwd or self.directory, env=environment)
        output = result.stdout + result.stderr
        assert "Traceback" not in output, output
        for token in self.tokens.values():
            assert token not in output, f"a token was printed by charter {' '.join(args)}"
        return result.returncode, result.stdout, result.stderr


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("CHARTER_URL", "CHARTER_TOKEN", "CHARTER_DATABASE_URL")}


@contextmanager
def serving(directory: Path, url: str, workers: int = 1) -> Iterator[Served]:
    """Build a governed ledger at `url`, give each of `PEOPLE` a token, and serve it until the block ends."""
    ledger = build_ledger(directory, url)
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)
    tokens = {}
    for person in PEOPLE:
        key = SigningKey.load(directory / ".charter" / "keys" / f"{person}.key")
        tokens[person] = create_token(ledger, person, ["read", "submit", "act"], expires, key)[1]
    ledger.engine.dispose()
    port = free_port()
    log = directory / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "charter", "serve", "--db", url, "--ledger-key", ".charter/ledger.key",
             "--port", str(port), "--workers", str(workers), "--reports-dir", str(directory / "served-reports")],
            cwd=directory, env=_environment(), stdout=sink, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, process, log)
        yield Served(directory, base, tokens)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    served_log = log.read_text(errors="replace")
    assert not any(token in served_log for token in tokens.values()), "the server logged a token"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server on SQLite (one worker) for the module's tests."""
    directory = tmp_path_factory.mktemp("served")
    with serving(directory, f"sqlite:///{directory / '.charter' / 'ledger.db'}") as server:
        yield server


def _head_size(served: Served) -> int:
    token = served.tokens["ana.costa"]
    answer = httpx.get(f"{served.url}/v1/ledger/head", headers={"Authorization": f"Bearer {token}"})
    return int(answer.json()["size"])


def _key(person: str) -> str:
    return f".charter/keys/{person}.key"


CLAIMS = str(REPO / "evidence" / "claims-approval-2026-05.json")
FRAUD = str(REPO / "evidence" / "fraud-detector-2026-06.json")


def test_whoami_names_the_caller_and_their_standing(served: Served) -> None:
    code, out, _ = served.cli("tom.berger", "whoami")
    assert code == 0
    assert "tom.berger" in out and "escalation:model_owner" in out and "claims-approval" in out
    code, out, _ = served.cli("tom.berger", "whoami", "--format", "json")
    assert json.loads(out)["principal"] == "tom.berger"


def test_submit_prints_receipt_and_findings_exits_1_on_breach_and_repeats_the_receipt(served: Served) -> None:
    code, out, _ = served.cli("maria.keller", "submit", FRAUD, "--key", _key("maria.keller"))
    assert code == 1, out  # the evidence is months old by now: evidence-fresh is breached
    assert "receipt: seq" in out and "BREACH" in out and "Incidents" in out
    receipt = out.split("receipt: seq ")[1].split()[0]
    code, out, _ = served.cli("maria.keller", "submit", FRAUD, "--key", _key("maria.keller"), "--format", "json")
    assert code == 1
    [result] = json.loads(out)
    assert result["duplicate"] is True and str(result["receipt"]["seq"]) == receipt


def test_submit_validates_every_bundle_before_sending_any(served: Served) -> None:
    before = _head_size(served)
    code, _, err = served.cli("maria.keller", "submit", FRAUD, "missing.json", "--key", _key("maria.keller"))
    assert code == 2 and "missing.json" in err
    assert _head_size(served) == before


def test_submit_of_someone_elses_system_shows_the_servers_refusal(served: Served) -> None:
    code, _, err = served.cli("tom.berger", "submit", FRAUD, "--key", _key("tom.berger"))
    assert code == 2
    assert "[forbidden]" in err or "[wrong_owner]" in err


def test_incident_chain_by_the_right_people_and_an_administrator_refused(served: Served) -> None:
    served.cli("tom.berger", "submit", CLAIMS, "--key", _key("tom.berger"))
    code, out, _ = served.cli("carla.rossi", "incidents", "list", "--system", "claims-approval", "--format", "json")
    assert code == 0
    incident = next(i["id"] for i in json.loads(out) if i["state"] == "open")
    # tom.berger (first line) may not read the ledger's head, which holds the origin he signs for
    owner = {"CHARTER_ORIGIN": ORIGIN}
    code, out, err = served.cli("tom.berger", "incidents", "ack", incident, "--key", _key("tom.berger"),
                                "--note", "Looking into it", **owner)
    assert code == 0, err
    assert f"{incident}: acknowledge recorded at seq" in out and "tom.berger (model_owner)" in out
    assert served.cli("tom.berger", "incidents", "investigate", incident, "--key", _key("tom.berger"),
                      "--note", "The pipeline stalled", **owner)[0] == 0
    code, out, _ = served.cli("carla.rossi", "incidents", "validate", incident, "--key", _key("carla.rossi"),
                              "--note", "Confirmed")
    assert code == 0 and "carla.rossi (risk_compliance)" in out
    code, _, err = served.cli("ana.costa", "incidents", "decide", incident, "--key", _key("ana.costa"),
                              "--note", "Roll back", "--decision", "rollback")
    assert code == 2
    assert "administrator" in err and "separation of duties" in err and "[forbidden]" in err
    code, out, _ = served.cli("tom.berger", "incidents", "decide", incident, "--key", _key("tom.berger"),
                              "--note", "Roll back to 2.7", "--decision", "rollback", **owner)
    assert code == 0, out
    code, out, _ = served.cli("carla.rossi", "incidents", "show", incident)
    assert code == 0 and "now decided" in out and "Roll back to 2.7" in out


def test_ledger_accept_hands_in_statements_signed_elsewhere(served: Served, tmp_path: Path) -> None:
    statement = tmp_path / "token.json"
    code, out, _ = served.cli("tom.berger", "tokens", "create", "--principal", "tom.berger", "--scope", "read",
                              "--expires", "P7D", "--key", _key("tom.berger"), "--sign-only", str(statement),
                              CHARTER_ORIGIN=ORIGIN)
    assert code == 0, out
    code, out, _ = served.cli("tom.berger", "ledger", "accept", str(statement))
    assert code == 0 and "token.created by tom.berger: recorded at seq" in out
    code, out, _ = served.cli("tom.berger", "ledger", "accept", str(statement))
    assert code == 0 and "already in force or recorded" in out



def test_ledger_accept_of_an_activation_already_in_force_exits_0_as_locally(served: Served, tmp_path: Path) -> None:
    """The server answered 500 when the activation changed nothing; locally it is "already in force"."""
    statement = tmp_path / "escalation.json"
    code, out, err = served.cli("omar.haddad", "escalation", "activate", "--file", str(ESCALATION), "--key",
                                _key("omar.haddad"), "--sign-only", str(statement), CHARTER_URL="")
    assert code == 0, out + err
    code, out, err = served.cli("omar.haddad", "ledger", "accept", str(statement))
    assert code == 0 and "already in force or recorded" in out, out + err

def test_an_administrator_approves_and_revokes_keys_through_the_server(served: Served, tmp_path: Path) -> None:
    """`keys register`, `keys pending`, `keys list` and `keys revoke` against a server: a first key one of
    the two administrators it needs approved awaits the other, and is listed as such, never as registered."""
    code, _, err = served.cli("ana.costa", "keys", "generate", "nina.berg", "--out", str(tmp_path), cwd=tmp_path)
    assert code == 0, err
    request = tmp_path / "nina.json"
    code, _, err = served.cli("ana.costa", "keys", "request", str(tmp_path / "nina.berg.key"), "--out", str(request))
    assert code == 0, err  # the origin is the server's
    code, out, err = served.cli("ana.costa", "keys", "register", str(request), "--key", _key("ana.costa"))
    assert code == 0 and "awaits approval: 1 of 2" in out and "ana.costa" in out, err
    code, _, err = served.cli("ana.costa", "keys", "register", str(request), "--key", _key("ana.costa"))
    assert code == 2 and "[already_approved]" in err  # counted once
    code, out, _ = served.cli("ana.costa", "keys", "pending", "--format", "json")
    assert code == 0 and [(k["principal"], k["approved_by"]) for k in json.loads(out)] == [("nina.berg", ["ana.costa"])]
    code, out, _ = served.cli("ana.costa", "keys", "list")
    assert code == 0 and "awaiting approval" in out and "nina.berg" in out
    code, out, _ = served.cli("ana.costa", "keys", "list", "--format", "json")
    assert "nina.berg" not in {k["principal"] for k in json.loads(out)}
    # a second administrator signs elsewhere, bound to the server's log without a local ledger
    code, _, err = served.cli("ana.costa", "keys", "register", str(request), "--key", _key("ben.okafor"),
                              "--sign-only", str(tmp_path / "ben.json"))
    assert code == 0 and json.loads((tmp_path / "ben.json").read_text())[0]["log"] == ORIGIN, err
    anna = next(k for k in json.loads(served.cli("ana.costa", "keys", "list", "--format", "json")[1])
                if k["principal"] == "anna.schmidt" and k["revoked_seq"] is None)  # no other test here acts as her
    code, out, err = served.cli("ana.costa", "keys", "revoke", anna["key_id"], "--reason", "rotation",
                                "--key", _key("ana.costa"))
    assert code == 0 and f"{anna['key_id']} revoked" in out, err
    revoked = {k["key_id"]: k for k in json.loads(served.cli("ana.costa", "keys", "list", "--format", "json")[1])}
    assert revoked[anna["key_id"]]["reason"] == "rotation"


def test_tokens_create_then_use_then_revoke(served: Served) -> None:
    code, out, err = served.cli("carla.rossi", "tokens", "create", "--principal", "carla.rossi", "--scope", "read",
                                "--expires", "P30D", "--key", _key("carla.rossi"))
    assert code == 0, err
    token = out.strip().splitlines()[-1]
    assert token.startswith("chtr_") and out.count(token) == 1 and "shown only this once" in err
    token_id = token.split("_")[1]
    fresh = run_cli("whoami", cwd=served.directory, env={"CHARTER_URL": served.url, "CHARTER_TOKEN": token})
    assert fresh.returncode == 0 and "carla.rossi" in fresh.stdout and "scopes: read" in fresh.stdout
    code, out, _ = served.cli("carla.rossi", "tokens", "list", "--format", "json")
    assert any(t["token_id"] == token_id and t["status"] == "active" for t in json.loads(out))
    code, out, _ = served.cli("carla.rossi", "tokens", "revoke", token_id, "--reason", "test over",
                              "--key", _key("carla.rossi"))
    assert code == 0 and f"token {token_id} revoked" in out
    revoked = run_cli("whoami", cwd=served.directory, env={"CHARTER_URL": served.url, "CHARTER_TOKEN": token})
    assert revoked.returncode == 2 and "[unauthenticated]" in revoked.stderr
    assert token not in revoked.stdout + revoked.stderr


def test_verify_says_it_is_the_servers_verification(served: Served) -> None:
    code, out, _ = served.cli("omar.haddad", "verify")
    assert code == 0 and "OK:" in out and "verified by the server" in out and "charter audit" in out
    code, _, err = served.cli("omar.haddad", "verify", "--published", "published")
    assert code == 2 and "[not_remote]" in err


def test_report_issued_downloaded_and_verified(served: Served, tmp_path: Path) -> None:
    target = tmp_path / "reports" / "eu-ai-act.html"
    code, out, err = served.cli("omar.haddad", "report", "--framework", "eu-ai-act", "--format", "html,json",
                                "-o", str(target))
    assert code == 0, err
    assert "issued at seq" in out
    json_file = target.with_suffix(".json")
    assert target.read_text().startswith("<!DOCTYPE html>") or "<html" in target.read_text()
    code, out, _ = served.cli("omar.haddad", "report", "verify", str(json_file))
    assert code == 0 and "verified" in out
    tampered = tmp_path / "tampered.json"
    tampered.write_bytes(json_file.read_bytes().replace(b"eu-ai-act", b"eu-ai-acT", 1))
    code, out, _ = served.cli("omar.haddad", "report", "verify", str(tampered))
    assert code == 1 and "FAILED" in out


def test_commands_without_a_remote_form_refuse_and_touch_nothing_local(served: Served, tmp_path: Path) -> None:
    code, _, err = served.cli("ana.costa", "ledger", "show", "0", cwd=tmp_path)
    assert code == 2 and "charter ledger show is not available against a Charter server" in err
    assert "unset CHARTER_URL" in err
    code, _, err = served.cli("ana.costa", "escalate", cwd=tmp_path)
    assert code == 2 and "[not_remote]" in err
    assert list(tmp_path.iterdir()) == []  # no ledger, no key, no notification log was created


def test_commands_that_need_no_ledger_keep_working(served: Served, tmp_path: Path) -> None:
    assert served.cli("ana.costa", "schema", "bundle", cwd=tmp_path)[0] == 0
    assert served.cli("ana.costa", "keys", "generate", "zoe.ng", "--out", str(tmp_path / "keys"), cwd=tmp_path)[0] == 0
    code, _, _ = served.cli("ana.costa", "submit", CLAIMS, "--key", str(served.directory / _key("tom.berger")),
                              "--bundle-only", str(tmp_path / "signed.json"), cwd=tmp_path)
    assert code == 0 and (tmp_path / "signed.json").is_file()


def test_url_without_token_is_refused(served: Served) -> None:
    code, _, err = served.cli(None, "incidents", "list")
    assert code == 2 and "CHARTER_TOKEN is not" in err


def test_whoami_on_a_local_ledger_explains_there_is_no_caller(tmp_path: Path) -> None:
    result = run_cli("whoami", cwd=tmp_path, env={"CHARTER_URL": ""})
    assert result.returncode == 2 and "no authenticated caller" in result.stderr


def test_a_server_that_is_down_is_service_unavailable(served: Served) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run_cli("incidents", "list", cwd=served.directory,
                     env={"CHARTER_URL": url, "CHARTER_TOKEN": served.tokens["tom.berger"]})
    assert result.returncode == 2
    assert "[service_unavailable]" in result.stderr and url in result.stderr
    assert served.tokens["tom.berger"] not in result.stdout + result.stderr


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_on_postgresql_with_two_workers(db_url: str, tmp_path: Path) -> None:
    with serving(tmp_path, db_url, workers=2) as server:
        code, out, _ = server.cli("tom.berger", "submit", CLAIMS, "--key", _key("tom.berger"))
        assert code == 1 and "receipt: seq" in out
        code, out, _ = server.cli("carla.rossi", "incidents", "list", "--format", "json")
        assert code == 0 and [i["system"] for i in json.loads(out)] == ["claims-approval"]
        code, out, _ = server.cli("omar.haddad", "verify")
        assert code == 0 and "OK:" in out
