"""`charter evidence document|attest|test|event|expire|list`: typed evidence of process controls, signed into
the ledger.

Each change is signed by its actor's key (``--key``) or, with ``--sign-only FILE``, written for the
log's operator to append (`charter ledger accept`); the ledger refuses what the governance
configuration in force does not allow (exit 2, nothing written).
"""

import dataclasses
import datetime
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import CharterError
from .common import OutputFormat, command_group, out, parse_time, print_listing, safe
from .ledger import DEFAULT_KEY, DbOption, KeyOption, SignOnlyOption, open_ledger, signing_origin, write_signed

if TYPE_CHECKING:
    from ..evidence import EvidenceItem
    from ..frameworks import FrameworkSet
    from ..ledger.records import Entry

evidence_app = command_group("Documents, attestations, test results and events of process controls: record, "
                             "attest, test, expire, list.")

ActorKey = Annotated[Path, typer.Option("--key", help="Your private key: its registration in the ledger names "
                                        "you as the attester or recorder.")]
ControlOption = Annotated[list[str], typer.Option("--control", help="A control the evidence is for, e.g. "
                                                  "iso-42001:A.2.2 (repeat).")]
SystemOption = Annotated[list[str], typer.Option("--system", help="A registered system the evidence is scoped "
                                                 "to (repeat); without it, the evidence is organisation-wide.")]


def _scope(systems: list[str]) -> str:
    return ", ".join(systems) if systems else "organisation-wide"


def _sign_or_record(entry_type: str, fields: dict[str, Any], key: Path, sign_only: Path | None, db: str | None,
                    ledger_key: Path, frameworks: "FrameworkSet") -> "Entry | None":
    """Sign `fields` into a statement file (``--sign-only``), or record them now; the entry, or None when signed."""
    from ..evidence import record_evidence
    from ..ledger import SigningKey

    signer = SigningKey.load(key)
    if sign_only is not None:
        write_signed(sign_only, entry_type, [fields], signer, signing_origin(db, ledger_key))
        return None
    return record_evidence(open_ledger(db, ledger_key, writable=True), entry_type, fields, signer, frameworks)


@evidence_app.command("document")
def evidence_document(
    name: Annotated[str, typer.Option("--name", help="The document's name (e.g. 'AI policy').")],
    version: Annotated[str, typer.Option("--version", help="Its version as the document states it.")],
    uri: Annotated[str, typer.Option("--uri", help="Where the document is kept (its bytes stay outside Charter).")],
    owner: Annotated[str, typer.Option("--owner", help="The principal who owns and reviews the document.")],
    review_by: Annotated[str, typer.Option("--review-by", help="Review date (YYYY-MM-DD): the last day it counts "
                                           "as current.")],
    key: ActorKey,
    control: ControlOption,
    system: SystemOption = [],  # noqa: B006 - typer needs a list default for repeatable options
    file: Annotated[Path | None, typer.Option("--file", help="The document: its SHA-256 is computed and recorded, "
                                              "nothing else of it.")] = None,
    sha256: Annotated[str | None, typer.Option("--sha256", help="The document's SHA-256, if you computed it "
                                               "(instead of --file).")] = None,
    sign_only: SignOnlyOption = None, db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Record a document (policy, procedure, plan) by digest, owner and review date, for the controls it documents."""
    from ..evidence import document_fields, file_sha256
    from ..frameworks import load_frameworks
    from ..ledger.auditor import EVIDENCE_DOCUMENT

    if (file is None) == (sha256 is None):
        raise CharterError.single("usage", "give the document with --file PATH or its digest with --sha256 HEX "
                                  "(exactly one)")
    digest = file_sha256(file) if file is not None else str(sha256)
    frameworks = load_frameworks()
    fields = document_fields(name=name, version=version, sha256=digest, uri=uri, owner=owner, review_by=review_by,
                             controls=control, systems=system, frameworks=frameworks)
    entry = _sign_or_record(EVIDENCE_DOCUMENT, fields, key, sign_only, db, ledger_key, frameworks)
    if entry is None:
        return
    out.print(f"seq {entry.seq}: document {safe(name)} {safe(version)} (sha256 {fields['sha256'][:16]}…) recorded "
              f"by {safe(entry.payload['actor'])} for {safe(', '.join(fields['controls']))} "
              f"({safe(_scope(fields['systems']))}); review by {fields['review_by']}; id "
              f"doc:{fields['sha256'][:12]}:{entry.seq}")


def _statement_text(statement: str | None, statement_file: Path | None) -> str:
    from .._sources import read_text

    if (statement is None) == (statement_file is None):
        raise CharterError.single("usage", "give the statement with --statement TEXT or --statement-file PATH "
                                  "(exactly one)")
    if statement_file is not None:
        return read_text(statement_file)
    assert statement is not None
    return statement


def _period_end(start: datetime.datetime, valid_for: str | None, until: str | None, what: str,
                until_option: str = "--until") -> datetime.datetime:
    """The end of a period given as a duration from `start` (``--valid-for``) or a time (`until_option`)."""
    from ..policy.model import _parse_duration

    if (valid_for is None) == (until is None):
        raise CharterError.single("usage", f"{what} holds for a limited period: give --valid-for P365D or "
                                  f"{until_option} TIME (exactly one)")
    if valid_for is not None:
        try:
            return start + _parse_duration(valid_for)
        except ValueError as exc:
            raise CharterError.single("usage", f"--valid-for: {exc}") from None
        except OverflowError:  # a start near year 9999 plus the period leaves the calendar
            raise CharterError.single("usage", f"--valid-for {valid_for} from {start:%Y-%m-%d} ends after the "
                                      "last representable date") from None
    assert until is not None
    return parse_time(until, until_option)


@evidence_app.command("attest")
def evidence_attest(
    key: ActorKey,
    control: ControlOption,
    statement: Annotated[str | None, typer.Option("--statement", help="What you attest is in place.")] = None,
    statement_file: Annotated[Path | None, typer.Option("--statement-file", help="The statement, from a UTF-8 "
                                                        "text file.")] = None,
    system: SystemOption = [],  # noqa: B006 - typer needs a list default for repeatable options
    valid_from: Annotated[str, typer.Option("--valid-from", help="When the attestation starts to hold (ISO 8601, "
                                            "or 'now').")] = "now",
    valid_for: Annotated[str | None, typer.Option("--valid-for", help="How long it holds (ISO 8601 duration, "
                                                  "e.g. P365D).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="When it stops holding (ISO 8601), instead of "
                                              "--valid-for.")] = None,
    document: Annotated[list[str], typer.Option("--document", help="The SHA-256 of a recorded document the "
                                                "statement relies on (repeat).")] = [],  # noqa: B006
    sign_only: SignOnlyOption = None, db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Attest, signed with your key, that process controls are in place, for a limited period."""
    from ..evidence import attestation_fields
    from ..frameworks import load_frameworks
    from ..ledger.auditor import EVIDENCE_ATTESTATION

    text = _statement_text(statement, statement_file)
    start = parse_time(valid_from, "--valid-from")
    end = _period_end(start, valid_for, until, "an attestation")
    frameworks = load_frameworks()
    fields = attestation_fields(statement=text, controls=control, systems=system, valid_from=start,
                                valid_until=end, documents=document, frameworks=frameworks)
    entry = _sign_or_record(EVIDENCE_ATTESTATION, fields, key, sign_only, db, ledger_key, frameworks)
    if entry is None:
        return
    out.print(f"seq {entry.seq}: attestation att:{entry.seq} by {safe(entry.payload['actor'])} for "
              f"{safe(', '.join(fields['controls']))} ({safe(_scope(fields['systems']))}), valid "
              f"{fields['valid_from']} to {fields['valid_until']}")


@evidence_app.command("test")
def evidence_test(
    name: Annotated[str, typer.Option("--name", help="The test's name (e.g. 'bias audit'): a later result of the "
                                      "same name supersedes an earlier one.")],
    method: Annotated[str, typer.Option("--method", help="How it was tested: method or tool.")],
    performed_at: Annotated[str, typer.Option("--performed-at", help="When it was performed (ISO 8601, or 'now'); "
                                              "not in the future.")],
    outcome: Annotated[str, typer.Option("--outcome", help="passed, failed or inconclusive.")],
    summary: Annotated[str, typer.Option("--summary", help="What was found, in a paragraph.")],
    key: ActorKey,
    control: ControlOption,
    system: SystemOption = [],  # noqa: B006 - typer needs a list default for repeatable options
    valid_for: Annotated[str | None, typer.Option("--valid-for", help="How long the result counts from when it was "
                                                  "performed: when it must be re-run (ISO 8601 duration, e.g. "
                                                  "P180D; at most three years).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="When it must be re-run (ISO 8601), instead of "
                                              "--valid-for.")] = None,
    artifact_file: Annotated[Path | None, typer.Option("--artifact-file", help="The test report: its SHA-256 is "
                                                       "recorded, nothing else of it.")] = None,
    artifact_sha256: Annotated[str | None, typer.Option("--artifact-sha256", help="The test report's SHA-256 "
                                                        "(instead of --artifact-file).")] = None,
    artifact_uri: Annotated[str | None, typer.Option("--artifact-uri", help="Where the test report is kept.")] = None,
    sign_only: SignOnlyOption = None, db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Record a test or assessment performed on systems (bias audit, robustness test, drill) and its outcome."""
    from ..evidence import file_sha256, test_result_fields
    from ..frameworks import load_frameworks
    from ..ledger.auditor import EVIDENCE_TEST_RESULT

    if artifact_file is not None and artifact_sha256 is not None:
        raise CharterError.single("usage", "give the artifact with --artifact-file PATH or its digest with "
                                  "--artifact-sha256 HEX, not both")
    digest = file_sha256(artifact_file) if artifact_file is not None else artifact_sha256
    start = parse_time(performed_at, "--performed-at")
    end = _period_end(start, valid_for, until, "a test result")
    frameworks = load_frameworks()
    fields = test_result_fields(name=name, method=method, performed_at=start, outcome=outcome, summary=summary,
                                valid_until=end, controls=control, systems=system, artifact_sha256=digest,
                                artifact_uri=artifact_uri, frameworks=frameworks, now=parse_time("now"))
    entry = _sign_or_record(EVIDENCE_TEST_RESULT, fields, key, sign_only, db, ledger_key, frameworks)
    if entry is None:
        return
    out.print(f"seq {entry.seq}: test result test:{entry.seq} {safe(name)} {outcome} (performed "
              f"{fields['performed_at']}) recorded by {safe(entry.payload['actor'])} for "
              f"{safe(', '.join(fields['controls']))} ({safe(_scope(fields['systems']))}); re-run by "
              f"{fields['valid_until']}")


@evidence_app.command("event")
def evidence_event(
    kind: Annotated[str, typer.Option("--kind", help="management_review, internal_audit, training, drill, "
                                      "monitoring_review, communication or other.")],
    title: Annotated[str, typer.Option("--title", help="What took place (e.g. 'Management review Q2 2026').")],
    occurred_at: Annotated[str, typer.Option("--occurred-at", help="When it took place (ISO 8601, or 'now'); not in "
                                             "the future.")],
    key: ActorKey,
    control: ControlOption,
    system: SystemOption = [],  # noqa: B006 - typer needs a list default for repeatable options
    next_due: Annotated[str | None, typer.Option("--next-due", help="When the next one is due (ISO 8601): the event "
                                                 "counts until then.")] = None,
    valid_for: Annotated[str | None, typer.Option("--valid-for", help="How long it counts from when it took place "
                                                  "(ISO 8601 duration, e.g. P365D; at most three years), instead of "
                                                  "--next-due.")] = None,
    participant: Annotated[list[str], typer.Option("--participant", help="A principal who took part "
                                                   "(repeat).")] = [],  # noqa: B006
    document: Annotated[list[str], typer.Option("--document", help="The SHA-256 of a recorded document it relies on, "
                                                "such as minutes or an agenda (repeat).")] = [],  # noqa: B006
    sign_only: SignOnlyOption = None, db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Record that a process ran (management review, internal audit, training), until the next one is due."""
    from ..evidence import event_fields
    from ..frameworks import load_frameworks
    from ..ledger.auditor import EVIDENCE_EVENT

    start = parse_time(occurred_at, "--occurred-at")
    end = _period_end(start, valid_for, next_due, "an event", "--next-due")
    frameworks = load_frameworks()
    fields = event_fields(kind=kind, title=title, occurred_at=start, next_due=end, controls=control, systems=system,
                          participants=participant, documents=document, frameworks=frameworks,
                          now=parse_time("now"))
    entry = _sign_or_record(EVIDENCE_EVENT, fields, key, sign_only, db, ledger_key, frameworks)
    if entry is None:
        return
    out.print(f"seq {entry.seq}: event evt:{entry.seq} {safe(kind)} {safe(title)} ({fields['occurred_at']}) "
              f"recorded by {safe(entry.payload['actor'])} for {safe(', '.join(fields['controls']))} "
              f"({safe(_scope(fields['systems']))}); next due {fields['next_due']}")


@evidence_app.command("expire")
def evidence_expire(
    evidence_id: Annotated[str, typer.Argument(help="The evidence id (att:SEQ, doc:DIGEST:SEQ, test:SEQ, evt:SEQ) "
                                                "or its seq.")],
    reason: Annotated[str, typer.Option("--reason", help="Why it ends early (recorded in the ledger).")],
    key: Annotated[Path, typer.Option("--key", help="Your private key: the attester or recorder, or an "
                                      "administrator.")],
    sign_only: SignOnlyOption = None, db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """End a document, attestation, test result or event early: it counts as withdrawn from now on."""
    from ..evidence import parse_evidence_id, withdraw_evidence, withdrawal_fields
    from ..ledger import SigningKey
    from ..ledger.auditor import EVIDENCE_WITHDRAWN

    signer = SigningKey.load(key)
    if sign_only is not None:
        fields = withdrawal_fields(parse_evidence_id(evidence_id), reason)
        write_signed(sign_only, EVIDENCE_WITHDRAWN, [fields], signer, signing_origin(db, ledger_key))
        return
    entry = withdraw_evidence(open_ledger(db, ledger_key, writable=True), evidence_id, reason, signer)
    out.print(f"seq {entry.seq}: the evidence of seq {entry.payload['seq']} withdrawn by "
              f"{safe(entry.payload['actor'])}: {safe(reason)}")


def _row(item: "EvidenceItem", at: datetime.datetime) -> list[str]:
    until = item.valid_until or ""
    if item.withdrawn_at is not None:
        until += f" (withdrawn {item.withdrawn_at})"
    kind = item.kind + (f" {item.outcome}" if item.outcome else "") + (f" ({item.event_kind})" if item.event_kind
                                                                        else "")
    return [item.id, str(item.seq), kind, item.status_at(at), ", ".join(item.controls), _scope(list(item.systems)),
            item.actor, item.title, item.valid_from, until, item.record_hash]


@evidence_app.command("list")
def evidence_list(
    control: Annotated[str | None, typer.Option("--control", help="Only evidence for this control (a paragraph "
                                                "cited counts for its article).")] = None,
    system: Annotated[str | None, typer.Option("--system", help="Only evidence scoped to this system or "
                                               "organisation-wide.")] = None,
    at: Annotated[str, typer.Option("--at", help="Status as of this time (ISO 8601, or 'now'); evidence "
                                    "recorded later is left out.")] = "now",
    output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = OutputFormat.TABLE,
    db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """List documents, attestations, test results and events with their seq, record hash and status at a time."""
    from ..evidence import evidence_index
    from ..ledger.records import format_time

    moment = parse_time(at)
    stamp = format_time(moment)
    items = []
    for item in evidence_index(open_ledger(db, ledger_key, writable=False)).filter(control, system):
        if item.recorded_at > stamp:
            continue  # not yet in the ledger at that time
        if item.withdrawn_at is not None and item.withdrawn_at > stamp:
            item = dataclasses.replace(item, withdrawn_at=None, withdrawn_seq=None, withdrawal_reason=None)
        items.append(item)
    if output is OutputFormat.JSON:
        typer.echo(json.dumps([{**i.to_dict(), "status": i.status_at(moment)} for i in items], indent=2))
        return
    print_listing(f"Evidence at {stamp}", ["id", "seq", "kind", "status", "controls", "scope", "actor", "title",
                                           "valid from", "valid until", "record hash"],
                  [_row(i, moment) for i in items], ids={"id", "record hash"})
