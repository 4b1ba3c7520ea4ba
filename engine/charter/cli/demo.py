"""`charter demo`: the governance loop on a fresh ledger, from keys to a verified trail."""

import base64
import datetime
import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .. import __version__
from .._data import builtin_dir
from .common import compile_policies, out, print_findings, print_listing, safe

if TYPE_CHECKING:
    from ..ledger import Ledger, SigningKey
    from ..policy.compiler import CompiledPolicy
    from ..registry import SystemRegistry

DEMO_ORIGIN = "charter.demo/ledger"
FAIRNESS = "core.fairness/approval-parity"
RECALL = "core.performance/recall-floor"
REPORT_FRAMEWORKS = ("iso-42001", "eu-ai-act", "nist-ai-rmf")
Act = Callable[..., Callable[[], None]]

def demo_story(act: Act, escalate: Callable[[], None]) -> list[tuple[str, Callable[[], None]]]:
    """The governance loop of the article's stories, as (time, step) pairs played on the demo ledger."""
    return [
        # The fraud model's owner does not acknowledge in time: risk, then the committee, are paged.
        ("2026-05-02T19:00:00+00:00", escalate),
        ("2026-05-04T07:00:00+00:00", escalate),
        ("2026-05-04T09:00:00+00:00", act("fraud-detector", RECALL, "acknowledge", "carla.rossi",
                                          "Owner on leave; second line takes the case")),
        ("2026-05-05T10:00:00+00:00", act("fraud-detector", RECALL, "investigate", "maria.keller",
                                          "Fraud patterns shifted to instant payments")),
        # The claims model's fairness breach: owner -> compliance -> governance committee.
        ("2026-06-03T11:00:00+00:00", act("claims-approval", FAIRNESS, "acknowledge", "tom.berger",
                                          "Looking into the 18-25 approval gap")),
        ("2026-06-04T09:00:00+00:00", act("claims-approval", FAIRNESS, "investigate", "tom.berger",
                                          "Gap traced to a proxy feature: years licensed")),
        ("2026-06-06T15:00:00+00:00", act("claims-approval", FAIRNESS, "validate", "carla.rossi",
                                          "Disparity confirmed; no lawful basis for it")),
        ("2026-06-10T14:00:00+00:00", act("claims-approval", FAIRNESS, "decide", "anna.schmidt",
                                          "Committee: retrain without the proxy, and review and compensate "
                                          "affected claimants", "compensate", "retrain")),
        ("2026-06-24T16:00:00+00:00", act("claims-approval", FAIRNESS, "resolve", "tom.berger",
                                          "Model 2.8.0 deployed; parity within 3% in validation")),
        ("2026-06-26T10:00:00+00:00", act("claims-approval", FAIRNESS, "close", "carla.rossi",
                                          "Compensation paid to 412 claimants; evidence filed")),
    ]


#: the demo's administrators (two of three approve a change of the governance configuration)
DEMO_ADMINS = ("ana.costa", "ben.okafor", "chen.li")
#: who holds the authority roles: the risk team authors and approves packs, the registrar keeps the inventory
DEMO_ROLES = {"policy_author": ["carla.rossi"], "policy_approver": ["omar.haddad", "anna.schmidt"],
              "system_registrar": ["ben.okafor"]}


def demo_governance(ledger: "Ledger", registry: "SystemRegistry", policies: "Sequence[CompiledPolicy]",
                    escalation: Path, say: Callable[[str], None] = lambda _: None, *,
                    activate_escalation: bool = True,
                    make_key: "Callable[[str], SigningKey] | None" = None) -> "dict[str, SigningKey]":
    """Play the authority model on a new ledger; returns everyone's keys (administrators, role holders, members).

    Two of the three administrators approve the trust root; one registers everyone else's key from
    their requests (each with proof of possession); the registrar registers the systems; a policy
    author publishes the packs and an approver, another person, activates them and (unless
    `activate_escalation` is false) the escalation configuration. Every step is a signed entry the
    ledger checked against the configuration in force.
    """
    from .._sources import load_yaml_file
    from ..authority import (
        Administrator,
        GovernanceConfig,
        KeyRequest,
        activate_policies,
        init_governance,
        publish_policies,
    )
    from ..ledger import SigningKey
    from ..submission import register_key, register_system

    document, smap = load_yaml_file(escalation)
    members = [m for role in document["roles"].values() for m in role["members"]]
    people = dict.fromkeys([*DEMO_ADMINS, *(m for ms in DEMO_ROLES.values() for m in ms), *members,
                            *(s.owner for s in registry.values())])
    keys = {name: (make_key or SigningKey.generate)(name) for name in people}
    config = GovernanceConfig(administrators=[Administrator(principal=name, public_key=base64.b64encode(
        keys[name].public).decode()) for name in DEMO_ADMINS], threshold=2, roles=DEMO_ROLES)
    init_governance(ledger, config, [keys[DEMO_ADMINS[0]], keys[DEMO_ADMINS[1]]])
    say(f"trust root: administrators {', '.join(DEMO_ADMINS)} (2 of 3 approve changes); "
        + "; ".join(f"{role}: {', '.join(names)}" for role, names in DEMO_ROLES.items()))
    for name in people:
        if name not in DEMO_ADMINS:
            register_key(ledger, KeyRequest.of(keys[name], ledger.origin), keys[DEMO_ADMINS[0]])
    say(f"{DEMO_ADMINS[0]} (administrator) registered {len(people) - len(DEMO_ADMINS)} keys from their holders' "
        "requests")
    for system in registry.values():
        register_system(ledger, system, keys[DEMO_ROLES["system_registrar"][0]])
        say(f"{DEMO_ROLES['system_registrar'][0]} registered {system.id} ({system.risk_tier.value} risk), owner "
            f"{system.owner}")
    author, approver = DEMO_ROLES["policy_author"][0], DEMO_ROLES["policy_approver"][0]
    publish_policies(ledger, [(p.policy.id, p.policy.version, p.policy.model_dump(mode="json")) for p in policies],
                     keys[author])
    activate_policies(ledger, [p.digest for p in policies], keys[approver])
    if activate_escalation:
        from ..authority import activate_escalation as activate

        activate(ledger, document, keys[approver], smap)
    say(f"{author} published {len(policies)} policy versions; {approver} activated them"
        + (" and the escalation configuration" if activate_escalation else ""))
    from ..applicability import activate_applicability, load_applicability_file
    from ..frameworks import load_frameworks

    frameworks = load_frameworks()
    for name in ("iso-42001", "nist-ai-rmf"):
        document = load_applicability_file(builtin_dir("policies") / "applicability" / f"{name}.yaml", frameworks)
        # The demo's documents name the demo's systems: on another registry (tests) they stay out of force.
        missing = {s for d in document.decisions for s in d.systems or () if s not in registry}
        if missing:
            say(f"the demo's {document.label()} names systems not registered here ({', '.join(sorted(missing))}): "
                "not activated, so its controls stay undetermined")
            continue
        activate_applicability(ledger, document, keys[approver])
        say(f"{approver} activated the {document.label()} ({name})")
    return keys


def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo ledger and keys go; recreated on every run.")]
    = Path(".charter/demo"),
) -> None:
    """Run the loop: authority set up, systems registered, bundles submitted, findings, incidents, verify."""
    import shutil

    from ..authority import active_escalation
    from ..evaluate import Status
    from ..incidents import load_book, metrics, transition
    from ..ledger import Ledger, SigningKey, make_checkpoint, verify_ledger
    from ..notify import ChannelNotifier, tick
    from ..registry import SystemRegistry
    from ..report import bind, build_report, issue, render
    from ..submission import submit_bundle

    evidence = builtin_dir("evidence")
    policies = builtin_dir("policies")
    if workdir.exists():
        shutil.rmtree(workdir)
    policy_set, catalog, frameworks = compile_policies(policies, None, None)
    bundles = sorted(evidence.glob("*.json"), key=lambda p: json.loads(p.read_text())["measured_at"])
    # The demo replays the year: each bundle arrives when it was measured, so the ledger's clock is
    # set to that moment rather than today's (which would make every bundle stale).
    moments = [datetime.datetime.fromisoformat(json.loads(p.read_text())["measured_at"]) for p in bundles]
    clock = {"now": moments[0] - datetime.timedelta(days=1)}
    log_key = SigningKey.generate(DEMO_ORIGIN)
    log_key.save(workdir / "ledger.key")
    ledger = Ledger.open(f"sqlite:///{workdir / 'ledger.db'}", log_key=log_key, origin=DEMO_ORIGIN, create=True,
                         clock=lambda: clock["now"])
    out.print(f"[bold]Charter {__version__} demo[/]: a fresh ledger at {workdir / 'ledger.db'}\n")

    registry = SystemRegistry.from_file(evidence / "systems.yaml", catalog)
    keys = demo_governance(ledger, registry, policy_set.policies, policies / "escalation.yaml", out.print)
    for name, key in keys.items():
        key.save(workdir / "keys" / f"{name}.key")
    out.print(f"everyone's keys are in {safe(str(workdir / 'keys'))}\n")

    graph, _ = active_escalation(ledger)
    notifier = ChannelNotifier(workdir / "notifications.log")
    findings = []
    events: list[tuple[datetime.datetime, Callable[[], None]]] = []

    def submit(path: Path) -> None:
        owner = registry[json.loads(path.read_text())["system_id"]].owner
        result = submit_bundle(ledger, path.read_bytes(), catalog, key=keys[owner], file=path.name)
        findings.extend(result.findings)
        count = sum(f.status is Status.BREACH for f in result.findings)
        out.print(f"{clock['now']:%Y-%m-%d %H:%M} submitted {path.name} signed by {owner}: seq "
                  f"{result.receipt.seq}, {len(result.findings)} findings"
                  + (f", [bold red]{count} breaches[/]" if count else ""))

    def escalate() -> None:
        report = tick(ledger, graph, clock["now"], notifier)
        for line in report.escalated:
            out.print(f"{clock['now']:%Y-%m-%d %H:%M} [yellow]escalated[/] {line} (deadline missed)")

    def act(system_id: str, rule: str, action: str, principal: str, note: str, *decisions: str) -> Callable[[], None]:
        def run() -> None:
            incident = next(i for i in load_book(ledger).incidents.values()
                            if i.system_id == system_id and i.rule == rule)
            transition(ledger, incident.id, action, keys[principal], note, decisions)
            extra = f" ({', '.join(decisions)})" if decisions else ""
            out.print(f"{clock['now']:%Y-%m-%d %H:%M} {incident.id} {system_id}: {principal} {action}{extra}: "
                      f"{safe(note)}")
        return run
    for path, moment in zip(bundles, moments, strict=True):
        events.append((moment, functools.partial(submit, path)))
        events.append((moment + datetime.timedelta(minutes=1), escalate))
    for when, step in demo_story(act, escalate):
        events.append((datetime.datetime.fromisoformat(when), step))
    for moment, step in sorted(events, key=lambda e: e[0]):
        clock["now"] = moment
        step()
    out.print()
    print_findings(sorted(findings, key=lambda f: (f.system_id, f.window_end)), False,
                   "Findings per system and window (details below for all but passes)")
    out.print()
    print_listing("Incidents", ["incident", "system", "rule", "severity", "state", "escalated to", "decisions"],
                  [[i.id, i.system_id, i.rule + (f" [{i.segment}]" if i.segment else ""), i.severity.value,
                    i.state.value, ", ".join(i.escalated_to), ", ".join(i.decisions)]
                   for i in sorted(load_book(ledger).incidents.values(), key=lambda i: i.opened_at)],
                  ids={"incident"})
    portfolio = metrics(load_book(ledger).incidents.values()).scopes["portfolio"]
    out.print("portfolio: " + "; ".join(f"{name} median {v['median_h']} h (n={v['n']}, open {v['missing']})"
                                         for name, v in portfolio.items()))
    snapshot, binding = bind(ledger, log_key.public, clock["now"])
    reports = workdir / "reports"
    reports.mkdir()
    for framework in REPORT_FRAMEWORKS:
        document = build_report(snapshot, framework, frameworks, policy_set.policies, graph, binding, clock["now"])
        for fmt in ("html", "md", "json"):
            text = render(document, fmt, graph)
            (reports / f"{framework}.{fmt}").write_text(text, encoding="utf-8")
            issue(ledger, document, fmt, text, f"{framework}.{fmt}")
        score = document.scores.framework
        out.print(f"report {framework}: readiness {score.readiness:.0%}, coverage {score.coverage:.0%} "
                  f"({score.covered} of {score.assessed} controls)")
    out.print(f"reports (HTML, Markdown, JSON) for checkpoint {binding.checkpoint_size} written to "
              f"{safe(str(reports.resolve()))}; issuing each is a ledger entry")
    checkpoint = make_checkpoint(ledger)
    report = verify_ledger(ledger, log_key.public)
    out.print(f"\ncheckpoint signed at size {checkpoint.size}; verify: " + safe(report.summary()))
    breaches = [f for f in findings if f.status is Status.BREACH]
    out.print(f"{len(breaches)} breaches across {len({f.system_id for f in breaches})} systems, all in a verified "
              f"ledger. Inspect it with `charter verify --db sqlite:///{workdir / 'ledger.db'} --ledger-key "
              f"{workdir / 'ledger.key'}`.")
    if not report.ok:
        raise typer.Exit(1)
