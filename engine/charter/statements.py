"""Changes signed away from the log: written by actors with ``--sign-only``, appended by the log's operator.

Only the process that appends holds the log key. An administrator, a registrar, a policy author or
approver, or a committee member signs the change they make with their own key into a statement
file; the operator runs `charter ledger accept FILE`, which appends each statement through the same
library function a change signed on the spot goes through, so the same checks apply (the key's
registration, the actor's role, the incident's state) and a statement lands at most once.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._sources import parse_json_strict, read_bytes
from .authority import (
    KeyRequest,
    SignedStatement,
    activate_escalation,
    activate_policies,
    publish_policies,
)
from .errors import CharterError
from .evidence import EVIDENCE_TYPES  # evidence statements, accepted like the changes above
from .incidents import CLASSIFIED, REPORT_FILED, TRANSITION, classify, file_report, transition
from .ledger.auditor import (
    APPLICABILITY_ACTIVATED,
    ESCALATION_ACTIVATED,
    KEY_ADDED,
    KEY_REVOKED,
    POLICY_ACTIVATED,
    POLICY_PUBLISHED,
    SYSTEM_REGISTERED,
    TOKEN_CREATED,
    TOKEN_REVOKED,
    ControlCatalog,
)
from .ledger.records import Entry
from .ledger.store import Ledger
from .registry import AISystem
from .submission import register_key, register_system, revoke_key

#: at most this many statements in one file
MAX_STATEMENTS = 10_000


def write_statements(path: Path, statements: Sequence[SignedStatement]) -> None:
    """Write a statement file (a JSON array); never over an existing file.

    Raises:
        CharterError: ``output_exists`` or ``statement_file`` when it cannot be written.
    """
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(json.dumps([s.to_dict() for s in statements], indent=2, sort_keys=True) + "\n")
    except FileExistsError as exc:
        raise CharterError.single("output_exists", "refusing to overwrite", file=str(path)) from exc
    except OSError as exc:
        raise CharterError.single("statement_file", f"cannot write: {exc.strerror or exc}", file=str(path)) from exc


def read_statements(path: Path) -> list[SignedStatement]:
    """Read a statement file written by `write_statements`.

    Raises:
        CharterError: unreadable, not a JSON array of statements, or too many.
    """
    data = parse_json_strict(read_bytes(path), str(path))
    if not isinstance(data, list) or len(data) > MAX_STATEMENTS:
        raise CharterError.single("statement_file", f"a statement file is a JSON array of at most {MAX_STATEMENTS} "
                                  "signed statements", file=str(path), path="$")
    return [SignedStatement.from_dict(item, f"{path}") for item in data]


def accept(ledger: Ledger, statement: SignedStatement) -> Entry | None:
    """Append one signed statement through the function that makes its kind of change; None if already recorded.

    Raises:
        CharterError: a statement of an unknown kind or with missing fields, or anything the change's
            own function refuses (the actor's role, the key, the incident's state). Nothing is appended then.
    """
    if ledger.by_submission(statement.submission_id) is not None:
        return None  # handed in twice: it landed the first time
    fields = statement.fields()
    try:
        if statement.type == KEY_ADDED:
            request = KeyRequest(fields["principal"], base64.b64decode(fields["public_key"], validate=True),
                                 fields["possession"], fields.get("endorsement"))
            return register_key(ledger, request, statement)
        if statement.type == KEY_REVOKED:
            return revoke_key(ledger, fields["key_id"], fields["reason"], statement)
        if statement.type == SYSTEM_REGISTERED:
            return register_system(ledger, AISystem.model_validate(fields["system"]), statement)
        if statement.type == POLICY_PUBLISHED:
            published = publish_policies(ledger, [(fields["id"], fields["version"], fields["document"])], statement)
            return published[0] if published else None
        if statement.type == POLICY_ACTIVATED:
            return activate_policies(ledger, fields["policies"], statement,
                                     fields["kpis"]["document"] if "kpis" in fields else None,
                                     _signed_controls(fields))
        if statement.type == ESCALATION_ACTIVATED:
            return activate_escalation(ledger, fields["document"], statement)
        if statement.type == TRANSITION:
            return transition(ledger, fields["incident_id"], fields["action"], statement, fields["note"],
                              fields.get("decision", ()), fields.get("expires"))
        if statement.type == APPLICABILITY_ACTIVATED:
            from .applicability import ApplicabilityDocument, activate_applicability

            return activate_applicability(ledger, ApplicabilityDocument.model_validate(fields["document"]), statement)
        if statement.type in EVIDENCE_TYPES:
            from .evidence import accept_evidence

            return accept_evidence(ledger, statement)
        if statement.type == CLASSIFIED:
            return classify(ledger, fields["incident_id"], statement, fields["note"], serious=fields["serious"],
                            ground=fields.get("ground"), death=fields.get("death", False),
                            widespread=fields.get("widespread", False), aware_at=fields.get("aware_at"))
        if statement.type == TOKEN_CREATED:
            from .tokens import record_token

            return record_token(ledger, fields, statement)
        if statement.type == TOKEN_REVOKED:
            from .tokens import revoke_token

            return revoke_token(ledger, fields["token_id"], fields["reason"], statement)
        if statement.type == REPORT_FILED:
            return file_report(ledger, fields["incident_id"], statement, authority=fields["authority"],
                               reference=fields["reference"], kind=fields["kind"], filed_at=fields["filed_at"])
    except (KeyError, TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise CharterError.single("statement_file", f"the {statement.type} statement lacks or mistypes a field: "
                                  f"{exc}") from exc
    raise CharterError.single("statement_file", f"statements of type {statement.type!r} are not accepted: signed "
                              "statements record key, token, system, policy, escalation, applicability and "
                              "incident changes, documents and attestations")


def holding_entry(ledger: Ledger, statement: SignedStatement) -> Entry | None:
    """The entry that already holds what `statement` asks for, when `accept` found nothing to change (None).

    Handed in twice, it is the statement's own entry. Otherwise the change was in force already: for an
    activation (policies, escalation, applicability) the newest activation of its kind, the one in
    force; for a system registration the system's newest; for a publication the newest of that
    policy version. None for anything else.
    """
    own = ledger.by_submission(statement.submission_id)
    if own is not None:
        return own
    fields = statement.fields()
    subject: str | None = None
    if statement.type == SYSTEM_REGISTERED:
        system = fields.get("system")
        subject = str(system.get("id")) if isinstance(system, dict) else None
        if subject is None:
            return None
    elif statement.type == POLICY_PUBLISHED:
        subject = str(fields.get("id"))
    elif statement.type not in (POLICY_ACTIVATED, ESCALATION_ACTIVATED, APPLICABILITY_ACTIVATED):
        return None
    newest = None
    for entry in ledger.entries(types=[statement.type], subject=subject):
        if statement.type != POLICY_PUBLISHED or entry.payload.get("version") == fields.get("version"):
            newest = entry
    return newest


def _signed_controls(fields: dict[str, Any]) -> ControlCatalog | None:
    """The control catalog a signed activation records, as `activate_policies` takes it (the statement
    must then ask for exactly the recorded form, digest included, or `signed_entry` refuses it)."""
    if "controls" not in fields:
        return None
    recorded = fields["controls"]
    return ControlCatalog.from_dict({k: recorded.get(k) for k in ("citable", "organisation")}) \
        if isinstance(recorded, dict) else ControlCatalog.from_dict(recorded)
