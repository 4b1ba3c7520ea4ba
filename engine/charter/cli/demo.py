"""`charter demo`: the governance loop on a fresh ledger, from keys to a verified trail."""

import base64
import datetime
import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .. import __version__
from .._data import builtin_dir
from .common import compile_policies, out, print_findings, print_listing, safe

if TYPE_CHECKING:
    from ..bundle import EvidenceBundle
    from ..frameworks import FrameworkSet
    from ..ingest.demo_data import DemoWindow
    from ..kpis import KpiCatalog
    from ..ledger import Ledger, SigningKey
    from ..policy.compiler import CompiledPolicy
    from ..registry import SystemRegistry

DEMO_ORIGIN = "charter.demo/ledger"
FAIRNESS = "core.fairness/approval-parity"
RECALL = "core.performance/recall-floor"
DEMO_FORMATS = ("html", "md", "json", "oscal")
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


def art73_story(triage: Act) -> list[tuple[str, Callable[[], None]]]:
    """EU AI Act Art. 73 beside the claims story: the validator triages the validated fairness breach. The claims
    model is not high-risk under the Act (motor insurance is outside Annex III 5(c)), and Art. 73 reporting binds
    high-risk systems only, so she records that it is no serious incident: nobody is paged, nothing is filed (a
    serious classification would be refused), and the breach is governed through the workflow."""
    return [
        ("2026-06-06T16:00:00+00:00", triage("claims-approval", FAIRNESS, "carla.rossi",
                                             "Not a serious incident under Art. 73: the claims model is not "
                                             "high-risk under the EU AI Act; the age disparity is handled as a "
                                             "breach of insurance and anti-discrimination law")),
    ]


#: the demo's administrators (two of three approve a change of the governance configuration)
DEMO_ADMINS = ("ana.costa", "ben.okafor", "chen.li")
#: who holds the authority roles: the risk team authors and approves packs, the registrar keeps the inventory
DEMO_ROLES = {"policy_author": ["carla.rossi"], "policy_approver": ["omar.haddad", "anna.schmidt"],
              "system_registrar": ["ben.okafor"], "evidence_attester": ["anna.schmidt", "omar.haddad"]}


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
            for admin in DEMO_ADMINS[:2]:  # a first key takes key_approvals (here the threshold, 2) administrators
                register_key(ledger, KeyRequest.of(keys[name], ledger.origin), keys[admin])
    say(f"{DEMO_ADMINS[0]} and {DEMO_ADMINS[1]} (administrators) each approved the {len(people) - len(DEMO_ADMINS)} "
        "keys of their holders' requests: a first key needs 2 of them, as configuration changes do")
    for system in registry.values():
        register_system(ledger, system, keys[DEMO_ROLES["system_registrar"][0]])
        say(f"{DEMO_ROLES['system_registrar'][0]} registered {system.id} ({system.risk_tier.value} risk), owner "
            f"{system.owner}")
    author, approver = DEMO_ROLES["policy_author"][0], DEMO_ROLES["policy_approver"][0]
    publish_policies(ledger, [(p.policy.id, p.policy.version, p.policy.model_dump(mode="json")) for p in policies],
                     keys[author])
    from ..frameworks import builtin_control_catalog

    # the catalog the packs were compiled with is recorded with them: evidence is judged by it
    activate_policies(ledger, [p.digest for p in policies], keys[approver], controls=builtin_control_catalog())
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


def demo_evidence(ledger: "Ledger", keys: "dict[str, SigningKey]", say: Callable[[str], None] = lambda _: None,
                  frameworks: "FrameworkSet | None" = None) -> None:
    """Record the demo's process-control evidence, dated by the ledger's clock (so it is deterministic).

    The AI policy is documented by one evidence attester and attested by another (ISO/IEC 42001 A.2.2
    and 5.2: implemented; separation of duties: whoever records a document does not attest it); the
    risk treatment plan is documented only (6.1.3: designed); the roles-and-responsibilities
    attestation (A.3.2) held for 90 days and has expired by the time the demo reports (no evidence).
    The management review procedure (9.3.1) is documented and attested, and a management review held
    two weeks before shows it operating (an event); the review also covered 9.3.2 and 9.3.3, which are
    not documented, so the event alone leaves them without evidence. The claims model's societal
    impact assessment (A.5.5) is documented by its owner and attested by an evidence attester, and a
    passing bias audit shows it operating (a test result).
    """
    from ..evidence import (
        attestation_fields,
        document_fields,
        event_fields,
        record_attestation,
        record_document,
        record_event,
        record_test_result,
        test_result_fields,
    )
    from ..submission import systems_in_ledger

    attester, second = DEMO_ROLES["evidence_attester"]
    now = ledger.clock()
    policy = hashlib.sha256(b"Charter demo: AI policy 2.1 (approved by the board)\n").hexdigest()
    record_document(ledger, document_fields(
        name="AI policy", version="2.1", sha256=policy, uri="https://intranet.example/governance/ai-policy-2.1.pdf",
        owner=attester, review_by=(now + datetime.timedelta(days=365)).date(),
        controls=["iso-42001:A.2.2", "iso-42001:5.2"], frameworks=frameworks), keys[attester], frameworks)
    record_attestation(ledger, attestation_fields(
        statement="The AI policy 2.1 is approved by the board, published to all staff and in force.\n"
                  "Exceptions are granted only by the AI governance committee.",
        controls=["iso-42001:A.2.2", "iso-42001:5.2"], valid_from=now,
        valid_until=now + datetime.timedelta(days=365), documents=[policy], frameworks=frameworks),
        keys[second], frameworks)
    plan = hashlib.sha256(b"Charter demo: AI risk treatment plan and Statement of Applicability 1.0\n").hexdigest()
    record_document(ledger, document_fields(
        name="AI risk treatment plan and Statement of Applicability", version="1.0", sha256=plan,
        uri="https://intranet.example/governance/risk-treatment-1.0.xlsx", owner="carla.rossi",
        review_by=(now + datetime.timedelta(days=180)).date(), controls=["iso-42001:6.1.3"],
        frameworks=frameworks), keys[attester], frameworks)
    record_attestation(ledger, attestation_fields(
        statement="AI roles and responsibilities are assigned and communicated (RACI 3, quarterly re-attestation).",
        controls=["iso-42001:A.3.2"], valid_from=now, valid_until=now + datetime.timedelta(days=90),
        frameworks=frameworks), keys[attester], frameworks)
    say(f"{attester} (evidence attester) recorded the AI policy and the risk treatment plan and attested the "
        f"roles and responsibilities for 90 days; {second} (evidence attester, not its recorder) attested the AI "
        "policy for a year")
    day = datetime.timedelta(days=1)
    procedure = hashlib.sha256(b"Charter demo: management review procedure 1.2\n").hexdigest()
    record_document(ledger, document_fields(
        name="Management review procedure", version="1.2", sha256=procedure,
        uri="https://intranet.example/governance/management-review-1.2.pdf", owner=attester,
        review_by=(now + 365 * day).date(), controls=["iso-42001:9.3.1"], frameworks=frameworks), keys[attester],
        frameworks)
    record_attestation(ledger, attestation_fields(
        statement="Top management reviews the AI management system quarterly, following procedure 1.2.",
        controls=["iso-42001:9.3.1"], valid_from=now, valid_until=now + 365 * day, documents=[procedure],
        frameworks=frameworks), keys[second], frameworks)
    record_event(ledger, event_fields(
        kind="management_review", title="AI management system review, Q4 2025", occurred_at=now - 14 * day,
        next_due=now - 14 * day + 365 * day, participants=["ana.costa", attester, second],
        documents=[procedure], controls=["iso-42001:9.3.1", "iso-42001:9.3.2", "iso-42001:9.3.3"],
        frameworks=frameworks), keys[attester], frameworks)
    owner = systems_in_ledger(ledger)["claims-approval"].owner  # evidences its system's system-level controls
    assessment = hashlib.sha256(b"Charter demo: claims-approval societal impact assessment 1.0\n").hexdigest()
    record_document(ledger, document_fields(
        name="Claims approval societal impact assessment", version="1.0", sha256=assessment,
        uri="https://intranet.example/claims/impact-assessment-1.0.pdf", owner=owner,
        review_by=(now + 365 * day).date(), controls=["iso-42001:A.5.5"], systems=["claims-approval"],
        frameworks=frameworks), keys[owner], frameworks)
    record_attestation(ledger, attestation_fields(
        statement="Societal impacts of the claims model are assessed before each release and yearly.",
        controls=["iso-42001:A.5.5"], systems=["claims-approval"], valid_from=now, valid_until=now + 365 * day,
        documents=[assessment], frameworks=frameworks), keys[attester], frameworks)
    audit = hashlib.sha256(b"Charter demo: claims-approval bias audit report 2025-12\n").hexdigest()
    record_test_result(ledger, test_result_fields(
        name="bias audit", method="approval parity by age band and sex (fairlearn MetricFrame), holdout 2025-Q4",
        performed_at=now - 7 * day, outcome="passed", summary="Approval parity at least 0.91 in every age band "
        "and sex; no band below the 0.8 floor.", valid_until=now - 7 * day + 365 * day,
        controls=["iso-42001:A.5.5"], systems=["claims-approval"], artifact_sha256=audit,
        artifact_uri="https://intranet.example/claims/bias-audit-2025-12.pdf", frameworks=frameworks),
        keys[owner], frameworks)
    say(f"{attester} recorded the management review procedure ({second} attested it) and the Q4 management review "
        f"(an event); {owner} recorded the claims model's societal impact assessment ({attester} attested it) and a "
        "passing bias audit (a test result)")


def demo_bundle(window: "DemoWindow", owner: str, catalog: "KpiCatalog", engine: str = "duckdb",
                spark: object = None) -> "EvidenceBundle":
    """The bundle of one demo window, computed by `charter.ingest` from its log exactly as `charter ingest` would.

    Paths are recorded relative to the working directory when they lie under it, so `charter ingest --verify`
    recomputes the bundle from where the demo ran.
    """
    from ..ingest import Window, bundle_from, load_declared, load_mapping, measure

    mapping = load_mapping(window.mapping_path)
    declared = load_declared(window.declared_path)
    reference = Window.parse(window.reference_month, option="--reference") if window.reference_month else None
    # The system's whole log folder is the source: the window (and the drift reference) select their months.
    measurement = measure(_shown(window.path.parent), mapping, Window.parse(window.month), reference=reference,
                          engine=engine, spark=spark)  # type: ignore[arg-type]
    return bundle_from(measurement, system_id=window.system_id, model_version=window.model_version,
                       submitter=owner, mapping_file=window.mapping_path, mapping_uri=_shown(window.mapping_path),
                       declared=dict(declared.kpis), declared_file=window.declared_path,
                       declared_uri=_shown(window.declared_path), measured_at=window.measured_at,
                       min_label_coverage=mapping.labels.min_coverage, catalog=catalog)


def _shown(path: Path) -> str:
    """`path` relative to the working directory when it lies under it, else absolute."""
    resolved, here = path.resolve(), Path.cwd().resolve()
    return str(resolved.relative_to(here)) if resolved.is_relative_to(here) else str(resolved)


def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo ledger and keys go; recreated on every run.")]
    = Path(".charter/demo"),
    db: Annotated[str | None, typer.Option("--db", help="An empty database for the demo ledger (postgresql://...), "
                                           "e.g. to serve it with several workers; default: SQLite in WORKDIR. "
                                           "Never read from CHARTER_DATABASE_URL.")] = None,
    engine: Annotated[str, typer.Option("--engine", help="Where the KPIs are computed from the generated logs: "
                                        "duckdb (embedded) or spark (local mode; the spark extra).")] = "duckdb",
) -> None:
    """Run the loop: authority set up, logs generated, KPIs computed, bundles submitted, incidents, verify."""
    import shutil

    from ..authority import active_escalation
    from ..errors import CharterError
    from ..evaluate import Status
    from ..evidence import evidence_index
    from ..incidents import classify, load_book, metrics, transition
    from ..ingest.demo_data import generate_demo_data
    from ..ingest.sources import spark_session
    from ..ledger import Ledger, SigningKey, make_checkpoint, verify_ledger
    from ..notify import ChannelNotifier, tick
    from ..registry import SystemRegistry
    from ..report import SUFFIXES, bind, build, issue, percent, render_files
    from ..submission import default_compiler, submit_bundle

    evidence = builtin_dir("evidence")
    policies = builtin_dir("policies")
    url = db or f"sqlite:///{workdir / 'ledger.db'}"
    if db is not None:
        try:
            existing = Ledger.open(db, read_only=True)
        except CharterError:
            existing = None  # no ledger there (or none Charter can read): the demo creates one, or says why not
        if existing is not None:
            raise CharterError.single("ledger_exists", f"the database already holds the ledger {existing.origin!r}: "
                                      "the demo writes a new ledger, into an empty database only")
    if workdir.exists():
        shutil.rmtree(workdir)
    if engine not in ("duckdb", "spark"):
        raise CharterError.single("usage", f"--engine {engine!r}: use duckdb or spark")
    spark = spark_session() if engine == "spark" else None
    policy_set, catalog, frameworks = compile_policies(policies, None, None)
    # The owners' prediction logs, evaluation labels and agent traces, generated as Parquet; every bundle is
    # computed from them (the hand-written bundles in evidence/ are test fixtures and examples only).
    windows = generate_demo_data(workdir / "data")
    # The demo replays the year: each bundle arrives when it was measured, so the ledger's clock is
    # set to that moment rather than today's (which would make every bundle stale).
    moments = [window.measured_at for window in windows]
    clock = {"now": moments[0] - datetime.timedelta(days=1)}
    log_key = SigningKey.generate(DEMO_ORIGIN)
    log_key.save(workdir / "ledger.key")
    ledger = Ledger.open(url, log_key=log_key, origin=DEMO_ORIGIN, create=True, clock=lambda: clock["now"])
    where = workdir / "ledger.db" if db is None else safe(url.split("@")[-1].split("?")[0])
    out.print(f"[bold]Charter {__version__} demo[/]: a fresh ledger at {where}\n")

    registry = SystemRegistry.from_file(evidence / "systems.yaml", catalog)
    keys = demo_governance(ledger, registry, policy_set.policies, policies / "escalation.yaml", out.print)
    demo_evidence(ledger, keys, out.print, frameworks)
    for name, key in keys.items():
        key.save(workdir / "keys" / f"{name}.key")
    out.print(f"everyone's keys are in {safe(str(workdir / 'keys'))}\n")

    graph, _ = active_escalation(ledger)
    notifier = ChannelNotifier(workdir / "notifications.log")
    bundles = workdir / "bundles"
    findings = []
    events: list[tuple[datetime.datetime, Callable[[], None]]] = []

    def submit(window: "DemoWindow") -> None:
        owner = registry[window.system_id].owner
        bundle = demo_bundle(window, owner, catalog, engine, spark)
        assert bundle.provenance is not None
        name = f"{window.system_id}-{window.month}"
        result = submit_bundle(ledger, json.dumps(bundle.model_dump(mode="json")), catalog, key=keys[owner],
                               file=name)
        # Kept as recorded, for `charter ingest --verify` and for resubmission (signed again) through the service.
        bundles.mkdir(exist_ok=True)
        (bundles / f"{name}.json").write_text(json.dumps(result.bundle_entry.payload, indent=2, sort_keys=True)
                                              + "\n", encoding="utf-8")
        findings.extend(result.findings)
        count = sum(f.status is Status.BREACH for f in result.findings)
        out.print(f"{clock['now']:%Y-%m-%d %H:%M} {owner} ingested {window.system_id} {window.month} "
                  f"({bundle.provenance.rows:,} rows, {len(bundle.provenance.computed)} KPIs computed on {engine}, "
                  f"{len(bundle.kpis) - len(bundle.provenance.computed)} declared) and submitted it: seq "
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
    def triage(system_id: str, rule: str, principal: str, note: str) -> Callable[[], None]:
        def run() -> None:
            incident = next(i for i in load_book(ledger).incidents.values()
                            if i.system_id == system_id and i.rule == rule)
            classify(ledger, incident.id, keys[principal], note, serious=False)
            out.print(f"{clock['now']:%Y-%m-%d %H:%M} {incident.id} {system_id}: {principal} classified it not a "
                      f"serious incident (EU AI Act Art. 73 applies to high-risk systems only): {safe(note)}")
        return run
    for window, moment in zip(windows, moments, strict=True):
        events.append((moment, functools.partial(submit, window)))
        events.append((moment + datetime.timedelta(minutes=1), escalate))
    for when, step in [*demo_story(act, escalate), *art73_story(triage)]:
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
    measured = metrics(load_book(ledger).incidents.values(), at=clock["now"])
    portfolio = measured.scopes["portfolio"]
    out.print("portfolio: " + "; ".join(f"{name} median {v['median_h']} h (n={v['n']}, open {v['missing']})"
                                         for name, v in portfolio.items()))
    art73 = measured.reporting["portfolio"]
    out.print(f"EU AI Act Art. 73: {art73['serious']} serious incident(s); first report on time {art73['on_time']}, "
              f"late {art73['late']}, pending {art73['pending']}")
    print_listing(f"Evidence of process controls at {clock['now']:%Y-%m-%d %H:%M}",
                  ["id", "controls", "kind", "title", "status"],
                  [[i.id, ", ".join(i.controls), i.kind, i.title, i.status_at(clock["now"])]
                   for i in evidence_index(ledger).items], ids={"id"})
    state = bind(ledger, log_key.public, clock["now"], default_compiler(catalog))
    reports = workdir / "reports"
    reports.mkdir()
    from ..frameworks import REPORT_FRAMEWORKS

    for framework in REPORT_FRAMEWORKS:
        document = build(state, framework, frameworks)
        renditions = [(rendition, text, f"{framework}{SUFFIXES[rendition]}")
                      for rendition, text in render_files(document, DEMO_FORMATS, graph).items() if text is not None]
        for _, text, name in renditions:
            (reports / name).write_text(text, encoding="utf-8")
        issue(ledger, document, renditions)
        figures = document.figures
        out.print(f"report {framework}: {figures.applicable} applicable control-system pairs "
                  f"({figures.not_applicable} not applicable); "
                  + ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in figures.statuses.items()
                              if n and status != "not_applicable")
                  + f"; KPI health {percent(figures.kpi_health)}")
    out.print(f"reports ({', '.join(DEMO_FORMATS)}) for checkpoint {state.binding.checkpoint_size} written to "
              f"{safe(str(reports.resolve()))}; issuing each is a ledger entry")
    checkpoint = make_checkpoint(ledger)
    report = verify_ledger(ledger, log_key.public)
    out.print(f"\ncheckpoint signed at size {checkpoint.size}; verify: " + safe(report.summary()))
    breaches = [f for f in findings if f.status is Status.BREACH]
    out.print(f"{len(breaches)} breaches across {len({f.system_id for f in breaches})} systems, all in a verified "
              f"ledger. Inspect it with `charter verify --db {safe(url) if db is None else 'URL'} --ledger-key "
              f"{workdir / 'ledger.key'}`.")
    if not report.ok:
        raise typer.Exit(1)
