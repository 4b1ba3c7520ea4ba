"""A deterministic ledger for golden report files: fixed keys, a scripted clock, the shipped evidence and policies.

Ed25519 signatures are deterministic, so the same scenario always yields the same entries,
checkpoint root and reports, byte for byte. `python -m tests.golden.regenerate` rewrites the files.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from charter.cli.demo import demo_evidence, demo_governance
from charter.escalation import EscalationGraph, load_escalation
from charter.frameworks import REPORT_FRAMEWORKS, FrameworkSet, load_frameworks
from charter.incidents import load_book, transition
from charter.kpis import builtin_catalog
from charter.ledger import Ledger, SigningKey
from charter.policy import PolicyCompiler, PolicySet, policy_files
from charter.registry import SystemRegistry
from charter.report import FORMATS, BoundState, ReportDocument, bind, build, render
from charter.submission import default_compiler, submit_bundle
from tests.conftest import REPO
from tests.unit.ledger.helpers import StepClock

GOLDEN = Path(__file__).resolve().parent
ORIGIN = "golden.example/ledger"
FRAMEWORKS = REPORT_FRAMEWORKS
GOLDEN_FORMATS = ("md", "json")


def fixed_key(principal: str) -> SigningKey:
    """A key derived from the principal's name: the same on every run."""
    return SigningKey(principal, Ed25519PrivateKey.from_private_bytes(hashlib.sha256(principal.encode()).digest()))


@dataclass
class Scenario:
    ledger: Ledger
    log_key: SigningKey
    policies: PolicySet
    frameworks: FrameworkSet
    graph: EscalationGraph
    as_of: datetime.datetime


def build_scenario(url: str) -> Scenario:
    """Submit every shipped bundle when it was measured, then play two incident stories."""
    catalog = builtin_catalog()
    frameworks = load_frameworks()
    policies = PolicyCompiler(catalog, frameworks).compile_files(policy_files(REPO / "policies"))
    graph = load_escalation(REPO / "policies" / "escalation.yaml")
    registry = SystemRegistry.from_file(REPO / "evidence" / "systems.yaml", catalog)
    clock = StepClock()
    log_key = fixed_key(ORIGIN)
    ledger = Ledger.open(url, log_key=log_key, origin=ORIGIN, create=True, clock=clock)
    keys = demo_governance(ledger, registry, policies.policies, REPO / "policies" / "escalation.yaml",
                           make_key=fixed_key)
    demo_evidence(ledger, keys, frameworks=frameworks)
    bundles = sorted((REPO / "evidence").glob("*.json"), key=lambda p: json.loads(p.read_text())["measured_at"])
    for path in bundles:
        data = json.loads(path.read_text())
        clock.now = datetime.datetime.fromisoformat(data["measured_at"].replace("Z", "+00:00"))
        submit_bundle(ledger, path.read_bytes(), catalog, key=keys[registry[data["system_id"]].owner])
    book = load_book(ledger)

    def incident(system: str, rule: str) -> str:
        return next(i.id for i in sorted(book.incidents.values(), key=lambda i: i.opened_at)
                    if i.system_id == system and i.rule == rule)

    claims = incident("claims-approval", "core.fairness/approval-parity")
    for action, who, decisions in [("investigate", "tom.berger", ()), ("validate", "carla.rossi", ()),
                                   ("decide", "anna.schmidt", ("retrain", "compensate"))]:
        transition(ledger, claims, action, keys[who], f"{action}: scripted", decisions)
    fraud = incident("fraud-detector", "core.performance/recall-degradation")
    for action, who in [("investigate", "maria.keller"), ("validate", "carla.rossi")]:
        transition(ledger, fraud, action, keys[who], f"{action}: scripted")
    transition(ledger, fraud, "decide", keys["anna.schmidt"], "seasonal; accepted", ("accept_risk",), "P90D")
    as_of = clock.now.replace(microsecond=0) + datetime.timedelta(days=2)
    return Scenario(ledger, log_key, policies, frameworks, graph, as_of)


def bind_scenario(scenario: Scenario, as_of: datetime.datetime | None = None) -> BoundState:
    """Verify, checkpoint and read the scenario's ledger as it stood at `as_of` (default: the scenario's time)."""
    return bind(scenario.ledger, scenario.log_key.public, as_of or scenario.as_of, default_compiler(builtin_catalog()))


def render_all(scenario: Scenario, formats: tuple[str, ...] = GOLDEN_FORMATS) -> dict[str, str]:
    """File name -> text of every framework's report in `formats`, bound to one checkpoint."""
    state = bind_scenario(scenario)
    texts = {}
    for framework in FRAMEWORKS:
        document: ReportDocument = build(state, framework, scenario.frameworks)
        for fmt in formats:
            assert fmt in FORMATS
            texts[f"{framework}.{fmt}"] = render(document, fmt, state.graph)
    return texts
