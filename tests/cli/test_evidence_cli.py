"""`charter evidence document|attest|expire|list` on SQLite and PostgreSQL: refusals exit 2 and write nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.unit.ledger.helpers import key_of, populate

ATTESTER, OWNER, ADMIN = "anna.schmidt", "tom.berger", "ana.costa"


class Cli:
    """Runs the CLI against one ledger (``--db``), from a directory holding the log key and everyone's keys."""

    def __init__(self, directory: Path, url: str) -> None:
        self.directory, self.url = directory, url

    def __call__(self, *args: str) -> tuple[int, str, str]:
        result = run_cli(*args, "--db", self.url, "--ledger-key", "ledger.key", cwd=self.directory)
        assert "Traceback" not in result.stderr, result.stderr
        return result.returncode, result.stdout, result.stderr

    def key(self, principal: str) -> str:
        return str(self.directory / f"{principal}.key")

    def size(self) -> int:
        from charter.ledger import Ledger

        ledger = Ledger.open(self.url, read_only=True)
        try:
            return ledger.size()
        finally:
            ledger.engine.dispose()

    def refused(self, code: str, *args: str) -> str:
        before = self.size()
        status, out, err = self(*args)
        assert status == 2 and code in err, (args, out, err)
        assert self.size() == before  # nothing written
        return err


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Cli:
    world = populate(db_url, bundles=0)
    world.log_key.save(tmp_path / "ledger.key")
    for name in (ATTESTER, OWNER, ADMIN, "maria.keller"):
        key_of(name).save(tmp_path / f"{name}.key")
    world.ledger.engine.dispose()
    return Cli(tmp_path, db_url)


def _document_args(cli: Cli, *extra: str) -> list[str]:
    return ["evidence", "document", "--name", "AI policy", "--version", "2.1", "--uri", "https://x.example/p.pdf",
            "--owner", ATTESTER, "--review-by", "2030-01-01", "--control", "iso-42001:A.2.2", "--control",
            "iso-42001:5.2", *extra]


def test_record_attest_list_expire(cli: Cli) -> None:
    import hashlib

    (cli.directory / "policy.pdf").write_bytes(b"%PDF the AI policy")
    digest = hashlib.sha256(b"%PDF the AI policy").hexdigest()
    status, out, _ = cli(*_document_args(cli, "--file", "policy.pdf", "--key", cli.key(ATTESTER)))
    assert status == 0 and f"doc:{digest[:12]}:" in out and "organisation-wide" in out, out
    doc_id = f"doc:{digest[:12]}:{cli.size() - 1}"
    status, out, _ = cli("evidence", "attest", "--statement", "The AI policy is in force.\nSee the document.",
                         "--control", "iso-42001:A.2.2", "--valid-from", "2020-01-01T00:00:00Z", "--valid-for", "P90D",
                         "--document", digest, "--key", cli.key(ATTESTER))
    assert status == 0 and "2020-03-31T00:00:00.000Z" in out, out
    old = f"att:{cli.size() - 1}"
    status, out, _ = cli("evidence", "attest", "--statement", "Monitoring is in place.", "--control",
                         "iso-42001:A.6.2.6", "--system", "claims-approval", "--valid-for", "P3650D", "--key",
                         cli.key(OWNER))
    assert status == 0 and "claims-approval" in out, out
    fresh = f"att:{cli.size() - 1}"
    status, out, _ = cli("evidence", "list", "--format", "json")
    assert status == 0
    listed = {item["id"]: item for item in json.loads(out)}
    assert {i: v["status"] for i, v in listed.items()} == {doc_id: "current", old: "expired", fresh: "current"}
    assert listed[old]["documents"] == [digest] and listed[fresh]["systems"] == ["claims-approval"]
    assert listed[doc_id]["seq"] == int(doc_id.rsplit(":", 1)[1]) and len(listed[doc_id]["record_hash"]) == 64
    status, out, _ = cli("evidence", "list", "--control", "iso-42001:A.6.2.6", "--system", "fraud-detector")
    assert status == 0 and fresh not in out  # scoped to another system
    status, out, _ = cli("evidence", "list", "--at", "2020-01-01T00:00:00Z", "--format", "json")
    assert json.loads(out) == []  # nothing was recorded yet then
    cli.refused("not_authorized", "evidence", "expire", fresh, "--reason", "spite", "--key", cli.key("maria.keller"))
    status, out, _ = cli("evidence", "expire", fresh, "--reason", "reorganised", "--key", cli.key(OWNER))
    assert status == 0 and "withdrawn" in out, out
    status, out, _ = cli("evidence", "list", "--format", "json")  # a table's columns depend on the terminal
    assert status == 0 and {i["id"]: i["status"] for i in json.loads(out)}[fresh] == "withdrawn"
    status, out, _ = cli("evidence", "list")
    assert status == 0 and doc_id in out and fresh in out
    cli.refused("evidence_withdrawn", "evidence", "expire", fresh, "--reason", "again", "--key", cli.key(ADMIN))
    status, out, _ = cli("verify", "--full")
    assert status == 0, out


def test_refusals_write_nothing(cli: Cli) -> None:
    cli.refused("not_authorized", *_document_args(cli, "--sha256", "ab" * 32, "--key", cli.key(OWNER)))
    cli.refused("not_authorized", *_document_args(cli, "--sha256", "ab" * 32, "--system", "fraud-detector", "--key",
                                                   cli.key(OWNER)))
    # Review M1: owning claims-approval does not make its owner the one to document the AI policy (A.2.2, 5.2).
    err = cli.refused("not_authorized", *_document_args(cli, "--sha256", "ab" * 32, "--system", "claims-approval",
                                                        "--key", cli.key(OWNER)))
    assert "organisation-level" in err and "iso-42001:A.2.2" in err
    cli.refused("not_authorized", "evidence", "attest", "--statement", "x", "--control", "iso-42001:5.2", "--system",
                "claims-approval", "--valid-for", "P1D", "--key", cli.key(OWNER))
    for bad in ("eu-ai-act:art-10(9)", "iso-42001:9.2"):  # a paragraph not in the catalog; a clause nothing scores
        err = cli.refused("unknown_control", "evidence", "attest", "--statement", "x", "--control", bad, "--valid-for",
                          "P1D", "--key", cli.key(ATTESTER))
        assert "$.controls[0]" in err, err
    cli.refused("unknown_system", *_document_args(cli, "--sha256", "ab" * 32, "--system", "ghost", "--key",
                                                   cli.key(ATTESTER)))
    cli.refused("bad_digest", *_document_args(cli, "--sha256", "xyz", "--key", cli.key(ATTESTER)))
    cli.refused("usage", *_document_args(cli, "--key", cli.key(ATTESTER)))  # neither --file nor --sha256
    cli.refused("file_not_found", *_document_args(cli, "--file", "missing.pdf", "--key", cli.key(ATTESTER)))
    err = cli.refused("unknown_control", *_document_args(cli, "--sha256", "ab" * 32, "--control", "iso-42001:A.2.99",
                                                         "--key", cli.key(ATTESTER)))
    assert "did you mean" in err
    attest = ["evidence", "attest", "--control", "iso-42001:A.2.2", "--key", cli.key(ATTESTER)]
    cli.refused("usage", *attest, "--statement", "x")  # no validity period
    cli.refused("usage", *attest, "--statement", "x", "--valid-for", "P1D", "--until", "2030-01-01T00:00:00Z")
    cli.refused("usage", *attest, "--statement", "x", "--valid-for", "forever")
    cli.refused("evidence_period", *attest, "--statement", "x", "--valid-from", "2030-01-01T00:00:00Z", "--until",
                "2029-01-01T00:00:00Z")
    cli.refused("unknown_document", *attest, "--statement", "x", "--valid-for", "P1D", "--document", "cd" * 32)
    (cli.directory / "huge.txt").write_text("x" * 10_000_000)
    err = cli.refused("evidence_too_long", *attest, "--statement-file", "huge.txt", "--valid-for", "P1D")
    assert len(err) < 2000
    cli.refused("unknown_evidence", "evidence", "expire", "att:1", "--reason", "x", "--key", cli.key(ADMIN))


def test_control_characters_are_escaped_in_the_table(cli: Cli) -> None:
    status, out, err = cli("evidence", "attest", "--statement", "In place\x1b[31m \u202e evil", "--control",
                           "iso-42001:A.2.2", "--valid-for", "P30D", "--key", cli.key(ATTESTER))
    assert status == 0, err
    status, out, _ = cli("evidence", "list")
    assert status == 0 and "\x1b" not in out and "\u202e" not in out
    assert "\\x1b" in out and "\\u202e" in out


def test_signed_elsewhere_and_accepted(cli: Cli) -> None:
    status, out, err = cli("evidence", "attest", "--statement", "Signed on a laptop.", "--control", "iso-42001:A.2.2",
                           "--valid-for", "P30D", "--key", cli.key(ATTESTER), "--sign-only", "att.json")
    assert status == 0 and (cli.directory / "att.json").exists(), err
    before = cli.size()
    status, out, err = cli("ledger", "accept", "att.json")
    assert status == 0 and f"recorded at seq {before}" in out, (out, err)
    status, out, _ = cli("ledger", "accept", "att.json")
    assert status == 0 and "already" in out and cli.size() == before + 1
    status, out, err = cli("evidence", "expire", f"att:{before}", "--reason", "done", "--key", cli.key(ATTESTER),
                           "--sign-only", "expire.json")
    assert status == 0, err
    assert cli("ledger", "accept", "expire.json")[0] == 0 and cli.size() == before + 2
    statement = json.loads((cli.directory / "att.json").read_text())
    statement[0]["statement"]["valid_until"] = "2099-01-01T00:00:00.000Z"  # edited after signing
    (cli.directory / "forged.json").write_text(json.dumps(statement))
    cli.refused("bad_signature", "ledger", "accept", "forged.json")


# -- test results and events -------------------------------------------------------------------------


def _test_args(cli: Cli, *extra: str, who: str = OWNER) -> list[str]:
    return ["evidence", "test", "--name", "bias audit", "--method", "fairlearn MetricFrame", "--performed-at",
            "2026-06-01T00:00:00Z", "--outcome", "passed", "--summary", "Parity within 0.03.", "--control",
            "iso-42001:A.6.2.6", "--system", "claims-approval", "--key", cli.key(who), *extra]


def _event_args(cli: Cli, *extra: str, who: str = ATTESTER) -> list[str]:
    return ["evidence", "event", "--kind", "management_review", "--title", "Management review Q2",
            "--occurred-at", "2026-06-15T00:00:00Z", "--control", "iso-42001:9.3.1", "--participant", ADMIN,
            "--key", cli.key(who), *extra]


def test_record_tests_and_events_list_and_expire(cli: Cli) -> None:
    (cli.directory / "audit.pdf").write_bytes(b"%PDF bias audit")
    status, out, err = cli(*_test_args(cli, "--valid-for", "P180D", "--artifact-file", "audit.pdf",
                                       "--artifact-uri", "https://x.example/audit.pdf"))
    assert status == 0 and "test result test:" in out and "re-run by 2026-11-28T00:00:00.000Z" in out, (out, err)
    test_id = f"test:{cli.size() - 1}"
    status, out, err = cli(*_event_args(cli, "--next-due", "2027-06-15T00:00:00Z"))
    assert status == 0 and "event evt:" in out and "organisation-wide" in out, (out, err)
    event_id = f"evt:{cli.size() - 1}"
    status, out, _ = cli("evidence", "list", "--format", "json", "--at", "2099-01-01T00:00:00Z")
    listed = {item["id"]: item for item in json.loads(out)}
    test, event = listed[test_id], listed[event_id]
    assert (test["kind"], test["outcome"], test["method"], test["title"]) == (
        "test_result", "passed", "fairlearn MetricFrame", "bias audit")
    import hashlib

    assert test["sha256"] == hashlib.sha256(b"%PDF bias audit").hexdigest()
    assert (test["valid_from"], test["valid_until"], test["status"]) == (
        "2026-06-01T00:00:00.000Z", "2026-11-28T00:00:00.000Z", "expired")
    assert (event["event_kind"], event["participants"], event["valid_until"]) == (
        "management_review", [ADMIN], "2027-06-15T00:00:00.000Z")
    status, out, _ = cli("evidence", "list", "--control", "iso-42001:9.3.1")
    assert status == 0 and event_id in out and test_id not in out
    cli.refused("not_authorized", "evidence", "expire", test_id, "--reason", "spite", "--key", cli.key("maria.keller"))
    status, out, _ = cli("evidence", "expire", test_id, "--reason", "wrong data set", "--key", cli.key(OWNER))
    assert status == 0 and "withdrawn" in out
    status, out, _ = cli("evidence", "list", "--format", "json")
    assert {i["id"]: i["status"] for i in json.loads(out)}[test_id] == "withdrawn"
    status, out, _ = cli("verify", "--full")
    assert status == 0, out


def _with(args: list[str], option: str, value: str) -> list[str]:
    """`args` with the value of `option` replaced."""
    at = args.index(option) + 1
    return [*args[:at], value, *args[at + 1:]]


def test_test_and_event_refusals_write_nothing(cli: Cli) -> None:
    # a time in the future of the receipt
    err = cli.refused("evidence_in_future", *_with(_test_args(cli, "--valid-for", "P1D"), "--performed-at",
                                                   "2099-01-01T00:00:00Z"))
    assert "$.performed_at" in err
    cli.refused("evidence_in_future", "evidence", "event", "--kind", "training", "--title", "AI literacy",
                "--occurred-at", "2099-01-01T00:00:00Z", "--valid-for", "P1D", "--control", "eu-ai-act:art-4",
                "--key", cli.key(ATTESTER))
    # unknown control, unknown system, a signer who may not
    err = cli.refused("unknown_control", *_test_args(cli, "--valid-for", "P90D", "--control", "iso-42001:A.99"))
    assert "$.controls[1]" in err
    cli.refused("unknown_system", *_test_args(cli, "--valid-for", "P90D", "--system", "ghost"))
    cli.refused("not_authorized", *_test_args(cli, "--valid-for", "P90D", who="maria.keller"))
    err = cli.refused("not_authorized", *_event_args(cli, "--valid-for", "P365D", who=OWNER))
    assert "evidence_attester" in err
    # a closed vocabulary, bounded periods, artifacts with a place
    err = cli.refused("evidence_field", *_with(_test_args(cli, "--valid-for", "P90D"), "--outcome", "mostly"))
    assert "passed, failed, inconclusive" in err
    err = cli.refused("evidence_field", *_with(_event_args(cli, "--valid-for", "P365D"), "--kind", "party"))
    assert "management_review" in err
    cli.refused("evidence_period", *_test_args(cli, "--valid-for", "P1200D"))
    cli.refused("evidence_period", *_event_args(cli, "--next-due", "2026-01-01T00:00:00Z"))
    cli.refused("usage", *_test_args(cli))  # no period
    cli.refused("usage", *_event_args(cli, "--valid-for", "P1D", "--next-due", "2027-01-01T00:00:00Z"))
    cli.refused("evidence_field", *_test_args(cli, "--valid-for", "P90D", "--artifact-sha256", "ab" * 32))
    cli.refused("unknown_document", *_event_args(cli, "--valid-for", "P365D", "--document", "cd" * 32))
    cli.refused("evidence_field", *_event_args(cli, "--valid-for", "P365D", "--participant", "../etc"))
    # the end of the calendar: a period past year 9999 is bad input, not a crash (review M4)
    err = cli.refused("usage", *_with(_test_args(cli, "--valid-for", "P30D"), "--performed-at",
                                      "9999-12-31T23:00:00Z"))
    assert "Traceback" not in err and "last representable date" in err
    cli.refused("usage", *_with(_event_args(cli, "--valid-for", "P30D"), "--occurred-at", "9999-12-31T23:00:00Z"))


def test_tests_and_events_signed_elsewhere_are_accepted(cli: Cli) -> None:
    status, _, err = cli(*_test_args(cli, "--valid-for", "P90D", "--sign-only", "test.json"))
    assert status == 0, err
    status, _, err = cli(*_event_args(cli, "--valid-for", "P365D", "--sign-only", "event.json"))
    assert status == 0, err
    before = cli.size()
    for name in ("test.json", "event.json"):
        status, out, err = cli("ledger", "accept", name)
        assert status == 0 and "recorded at seq" in out, (out, err)
    assert cli.size() == before + 2
    statement = json.loads((cli.directory / "test.json").read_text())
    statement[0]["statement"]["outcome"] = "failed"  # edited after signing
    (cli.directory / "forged.json").write_text(json.dumps(statement))
    cli.refused("bad_signature", "ledger", "accept", "forged.json")
