"""Commands that change who may do what, and what is in force: governance, policy sets, escalation.

Each is signed by its actor's key (``--key``); the ledger refuses what the governance configuration
in force does not allow, and writes nothing then.
"""

import json
from pathlib import Path
from typing import Annotated

import typer

from ..errors import CharterError
from .common import OutputFormat, command_group, compile_policies, out, policies_dir, print_listing, safe
from .escalation_cmds import escalation_file
from .ledger import DEFAULT_KEY, DbOption, KeyOption, SignOnlyOption, open_ledger, warn_lockouts, write_signed

governance_app = command_group("The governance configuration: administrators, threshold, authority roles.")

ActorKey = Annotated[Path, typer.Option("--key", help="Your private key: its registration in the ledger names "
                                        "you as the actor.")]
PoliciesOption = Annotated[Path | None, typer.Option("--policies", help="Policy directory (default: ./policies, "
                                                     "else the built-in packs).")]


@governance_app.command("new")
def governance_new(
    admins: Annotated[list[Path], typer.Option("--admin", help="An administrator's public key file (.pub); repeat.")],
    threshold: Annotated[int, typer.Option(help="How many administrators must approve a change.", min=1)],
    roles: Annotated[list[str], typer.Option("--role", help="ROLE=PRINCIPAL (policy_author, policy_approver, "
                                             "system_registrar, evidence_attester); repeat.")] = [],  # noqa: B006
    output: Annotated[Path, typer.Option("--out", help="The governance file to write.")] = Path("governance.yaml"),
    key_approvals: Annotated[int | None, typer.Option(
        "--key-approvals", min=1, help="How many administrators must approve a principal's first key "
        "(default: the threshold).")] = None,
) -> None:
    """Write a governance file from administrators' public keys and role holders, for `charter ledger init`."""
    import base64

    import yaml
    from pydantic import ValidationError

    from ..authority import Administrator, GovernanceConfig
    from ..ledger.keys import load_public_key_file
    from ..validation import collect_validation_errors

    holders: dict[str, list[str]] = {}
    for item in roles:
        role, _, principal = item.partition("=")
        if not principal:
            raise CharterError.single("usage", f"--role {safe(item)}: expected ROLE=PRINCIPAL")
        holders.setdefault(role, []).append(principal)
    administrators = []
    for path in admins:
        principal, public = load_public_key_file(path)
        administrators.append(Administrator(principal=principal, public_key=base64.b64encode(public).decode()))
    try:
        config = GovernanceConfig(administrators=administrators, threshold=threshold, roles=holders,
                                  key_approvals=key_approvals)
    except ValidationError as exc:
        raise CharterError(collect_validation_errors(exc, None, code="governance_config")) from exc
    document = config.document()
    warn_lockouts(config)
    if output.exists():
        raise CharterError.single("output_exists", "refusing to overwrite", file=str(output))
    output.write_text("# Charter governance configuration: entry 0 of the ledger (`charter ledger init`).\n"
                      + yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    out.print(f"{safe(str(output))}: {len(administrators)} administrators, {threshold} needed to change it, "
              f"{document['key_approvals']} to approve a principal's first key")


@governance_app.command("show")
def governance_show(db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
                    output: Annotated[OutputFormat, typer.Option("--format", help="table or json.")]
                    = OutputFormat.TABLE) -> None:
    """Show the configuration in force and what is active: who may do what."""
    authority = open_ledger(db, ledger_key, writable=False).authority()
    if authority.config is None:
        raise CharterError.single("no_trust_root", "this ledger has no governance configuration at entry 0")
    if output is OutputFormat.JSON:
        typer.echo(json.dumps({"config": authority.config, "config_seq": authority.config_seq,
                               "active_policies": authority.active_policies,
                               "active_policies_seq": authority.active_policies_seq,
                               "escalation_seq": authority.escalation_seq}, indent=2, sort_keys=True))
        return
    admins = ", ".join(a["principal"] for a in authority.config["administrators"])
    rows = [["administrator", admins, f"{authority.config['threshold']} needed to change this configuration, "
             f"{authority.key_approvals()} to approve a principal's first key"]]
    rows += [[role, ", ".join(members), ""] for role, members in authority.config["roles"].items()]
    print_listing(f"Governance configuration (seq {authority.config_seq})", ["role", "principals", "note"], rows,
                  ids={"principals"})
    active = authority.active_policies_seq
    out.print(f"policy set in force: {len(authority.active_policies)} versions, activated at seq {active}"
              if active is not None else "[yellow]no policy set is in force: submissions are refused[/]")
    out.print(f"escalation configuration in force: activated at seq {authority.escalation_seq}"
              if authority.escalation_seq is not None else
              "[yellow]no escalation configuration is in force: submissions are refused[/]")


@governance_app.command("update")
def governance_update(
    governance: Annotated[Path, typer.Argument(help="The new governance file (YAML).")],
    admin_keys: Annotated[list[Path], typer.Option("--admin-key", help="Administrators' private keys approving "
                                                   "it: the threshold of the configuration in force and of the "
                                                   "new one.")],
    db: DbOption = None, ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Replace the governance configuration (administrators, threshold, roles), like a TUF root rotation."""
    from ..authority import load_governance, update_governance
    from ..ledger import SigningKey

    config = load_governance(governance)
    warn_lockouts(config)
    approvers = [SigningKey.load(path) for path in admin_keys]
    entry = update_governance(open_ledger(db, ledger_key, writable=True), config, approvers)
    out.print(f"seq {entry.seq}: governance configuration replaced, approved by "
              f"{', '.join(sorted({a['principal'] for a in entry.payload['approvals']}))}")


def policy_publish(
    key: ActorKey, policies: PoliciesOption = None, sign_only: SignOnlyOption = None, db: DbOption = None,
    ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Propose the policy versions of a directory, as a policy author: recorded, not yet in force."""
    from ..authority import publication_statement, publish_policies
    from ..ledger import SigningKey
    from ..ledger.auditor import POLICY_PUBLISHED

    policy_set, _, _ = compile_policies(policies_dir(policies), None, None)
    author = SigningKey.load(key)
    if sign_only is not None:
        write_signed(sign_only, POLICY_PUBLISHED, [publication_statement(
            p.policy.id, p.policy.version, p.policy.model_dump(mode="json")) for p in policy_set.policies], author,
            open_ledger(db, ledger_key, writable=False))
        return
    entries = publish_policies(open_ledger(db, ledger_key, writable=True),
                               [(p.policy.id, p.policy.version, p.policy.model_dump(mode="json"))
                                for p in policy_set.policies], author)
    for entry in entries:
        out.print(f"seq {entry.seq}: published {safe(entry.payload['id'])} {safe(entry.payload['version'])} "
                  f"(sha256 {entry.payload['digest'][:16]}…)")
    skipped = len(policy_set.policies) - len(entries)
    out.print(f"{len(entries)} policy versions published, {skipped} already in the ledger; an approver puts "
              "them in force with `charter policy activate`")


def policy_activate(
    key: ActorKey, policies: PoliciesOption = None, sign_only: SignOnlyOption = None, db: DbOption = None,
    ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Put the policy set of a directory in force, as a policy approver (every version must be published).

    The directory's custom KPIs (``kpis.yaml``) are recorded with the set: bundles are read with them,
    and later activations may add custom KPIs but never change or drop one. So is the control catalog the
    set was compiled with (which controls evidence may cite, which are organisation-level): evidence
    recorded from then on is judged by it, in `charter verify` and the exported verifier alike.
    """
    from ..authority import activate_policies, activation_statement
    from ..kpis import custom_catalog_document
    from ..ledger import SigningKey
    from ..ledger.auditor import POLICY_ACTIVATED

    directory = policies_dir(policies)
    policy_set, _, frameworks = compile_policies(directory, None, None)
    kpis = custom_catalog_document(directory / "kpis.yaml") if (directory / "kpis.yaml").is_file() else None
    controls = frameworks.control_catalog()  # recorded with the set: evidence is judged by it from then on
    if sign_only is not None:
        reader = open_ledger(db, ledger_key, writable=False)
        write_signed(sign_only, POLICY_ACTIVATED, [activation_statement(
            [p.digest for p in policy_set.policies], reader.authority().active_policies_seq, kpis, controls)],
            SigningKey.load(key), reader)
        return
    entry = activate_policies(open_ledger(db, ledger_key, writable=True),
                              [p.digest for p in policy_set.policies], SigningKey.load(key), kpis, controls)
    if entry is None:
        out.print("this policy set is already in force")
        return
    custom = entry.payload.get("kpis", {}).get("document", {}).get("kpis", [])
    with_kpis = f" with {len(custom)} custom KPIs" if custom else ""
    out.print(f"seq {entry.seq}: {len(entry.payload['policies'])} policy versions in force{with_kpis}, activated by "
              f"{safe(entry.payload['actor'])}")


def escalation_activate(
    key: ActorKey,
    file: Annotated[Path | None, typer.Option("--file", help="escalation.yaml (default: in --policies).")] = None,
    policies: PoliciesOption = None, sign_only: SignOnlyOption = None, db: DbOption = None,
    ledger_key: KeyOption = DEFAULT_KEY,
) -> None:
    """Put an escalation configuration in force, as a policy approver, after the checks of `escalation check`."""
    from .._sources import load_yaml_file
    from ..authority import activate_escalation, escalation_statement
    from ..escalation import parse_escalation
    from ..ledger import SigningKey
    from ..ledger.auditor import ESCALATION_ACTIVATED

    path = escalation_file(file, policies)
    document, smap = load_yaml_file(path)
    if not isinstance(document, dict):
        raise CharterError.single("escalation_schema", "an escalation configuration is a mapping", file=str(path))
    if sign_only is not None:
        problems = parse_escalation(document, smap).check()
        if problems:
            raise CharterError(problems)
        reader = open_ledger(db, ledger_key, writable=False)
        statement = escalation_statement(document, reader.authority().escalation_seq)
        write_signed(sign_only, ESCALATION_ACTIVATED, [statement], SigningKey.load(key), reader)
        return
    entry = activate_escalation(open_ledger(db, ledger_key, writable=True), document, SigningKey.load(key), smap)
    if entry is None:
        out.print("this escalation configuration is already in force")
        return
    out.print(f"seq {entry.seq}: escalation configuration {entry.payload['digest'][:16]}… in force, activated by "
              f"{safe(entry.payload['actor'])}")
