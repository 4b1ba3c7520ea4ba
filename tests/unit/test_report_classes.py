"""Applicability decided once per classification class, and rows sharing their status: the fast path of a
large report against the direct per-system decision, for every (control, system) pair."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest

from charter import applicability as applicability_module
from charter.applicability import (
    PLACEHOLDER_ID,
    SharedApplicability,
    activate_applicability,
    applicability_statements,
    control_applicability,
    load_applicability_file,
)
from charter.kpis import builtin_catalog
from charter.registry import AISystem, EUClassification
from charter.report import BoundState, _encode, _ReportEncoder, _SharedTexts, bind, build, json_text, render
from charter.report.model import ReportContext, _applicability_ref, control_status
from charter.submission import default_compiler, register_system, systems_in_ledger
from tests.conftest import REPO
from tests.golden.scenario import FRAMEWORKS, Scenario, build_scenario, fixed_key

REGISTRAR, APPROVER = "ben.okafor", "omar.haddad"


def _classified(system: AISystem, area: int, point: str) -> EUClassification:
    assert system.eu_ai_act is not None
    return EUClassification.model_validate({
        **system.eu_ai_act.model_dump(mode="json"),
        "annex_iii": {"area": area, "point": point, "reasoning": f"Used under Annex III {area}({point})."}})


@pytest.fixture(scope="module")
def portfolio(tmp_path_factory: pytest.TempPathFactory) -> tuple[Scenario, BoundState, datetime.datetime]:
    """The golden scenario with clones: identical classifications (one class), other Annex III points, none at all,
    an id that contains another system's id, and a Statement of Applicability naming one clone."""
    scenario = build_scenario(f"sqlite:///{tmp_path_factory.mktemp('classes') / 'ledger.db'}")
    ledger, registrar = scenario.ledger, fixed_key(REGISTRAR)
    shipped = sorted(systems_in_ledger(ledger).values(), key=lambda s: s.id)
    classified = [s for s in shipped if s.eu_ai_act is not None]
    assert len(classified) >= 2
    clones: list[AISystem] = []
    for system in shipped:
        clones += [system.model_copy(update={"id": f"{system.id}-{n}"}) for n in range(3)]  # collapse with it
    base = classified[0]
    clones += [base.model_copy(update={"id": name, "eu_ai_act": _classified(base, area, point)})
               for name, area, point in (("annex-5b", 5, "b"), ("annex-5c", 5, "c"), ("annex-2a", 2, "a"),
                                         ("annex-5b-twin", 5, "b"))]
    clones.append(base.model_copy(update={"id": "unclassified-x", "eu_ai_act": None}))
    for clone in clones:
        assert register_system(ledger, clone, registrar) is not None
    soa = load_applicability_file(REPO / "policies" / "applicability" / "iso-42001.yaml", scenario.frameworks)
    named = f"{classified[1].id}-2"
    decisions = tuple(d.model_copy(update={"systems": (*d.systems, named)}) if d.systems else d
                      for d in soa.decisions)
    assert decisions != soa.decisions
    assert activate_applicability(ledger, soa.model_copy(update={"version": "99", "decisions": decisions}),
                                  fixed_key(APPROVER)) is not None
    as_of = ledger.clock().replace(microsecond=0) + datetime.timedelta(days=1)
    state = bind(ledger, scenario.log_key.public, as_of, default_compiler(builtin_catalog()))
    return scenario, state, as_of


def test_shared_decisions_equal_the_direct_ones_for_every_control_and_system(
        portfolio: tuple[Scenario, BoundState, datetime.datetime], monkeypatch: pytest.MonkeyPatch) -> None:
    scenario, state, as_of = portfolio
    statements = applicability_statements(scenario.ledger, state.binding.described_size)
    systems = sorted(state.snapshot.systems.values(), key=lambda s: s.id)
    calls = []
    shared = SharedApplicability(as_of, statements)
    assert shared.named["iso-42001"] and "eu-ai-act" not in shared.named  # the documents name systems
    one_by_one = shared.direct

    def counted(framework: Any, control_id: str, system: AISystem) -> Any:
        calls.append(system.id)
        return one_by_one(framework, control_id, system)

    monkeypatch.setattr(shared, "direct", counted)
    direct = applicability_module.control_applicability
    pairs = 0
    for framework_id in FRAMEWORKS:
        framework = scenario.frameworks[framework_id]
        for control_id in framework.controls:
            for system in systems:
                pairs += 1
                decided = shared.decide(framework, control_id, system)
                assert decided == direct(framework, control_id, system, as_of, statements), (control_id, system.id)
                assert PLACEHOLDER_ID not in decided.reason
    assert shared.divergences == []
    # one decision per class and control, for the placeholder and its first system, and the named one by one
    expected = 0
    for framework_id in FRAMEWORKS:
        named = shared.named.get(framework_id, frozenset())
        classes = {s.kind.value + (s.eu_ai_act.model_dump_json() if s.eu_ai_act else "") for s in systems
                   if s.id not in named}
        expected += len(scenario.frameworks[framework_id].controls) * (2 * len(classes)
                                                                       + sum(s.id in named for s in systems))
    assert len(calls) == expected < pairs
    reasons = {d.reason for d in (shared.decide(scenario.frameworks["eu-ai-act"], "art-9", s) for s in systems)}
    assert len(reasons) == len(systems)  # each system's reason names that system


def test_a_divergent_class_is_caught_and_decided_one_by_one(
        portfolio: tuple[Scenario, BoundState, datetime.datetime], monkeypatch: pytest.MonkeyPatch) -> None:
    scenario, state, as_of = portfolio
    statements = applicability_statements(scenario.ledger, state.binding.described_size)
    direct = applicability_module.control_applicability

    def by_name(framework: Any, control_id: str, system: AISystem, at: Any, held: Any) -> Any:
        decided = direct(framework, control_id, system, at, held)  # a rule that reads the id beyond its wording
        return dataclasses.replace(decided, reason=f"{decided.reason} [{system.id[::-1]}]")

    monkeypatch.setattr(applicability_module, "control_applicability", by_name)
    shared = SharedApplicability(as_of, statements)
    eu = scenario.frameworks["eu-ai-act"]
    systems = sorted(state.snapshot.systems.values(), key=lambda s: s.id)
    for system in systems:
        assert shared.decide(eu, "art-9", system) == by_name(eu, "art-9", system, as_of, statements)
    assert shared.divergences and all(d[:2] == ("eu-ai-act", "art-9") for d in shared.divergences)


@pytest.mark.parametrize("framework_id", FRAMEWORKS)
def test_the_report_rows_equal_the_direct_decision_for_every_pair(
        portfolio: tuple[Scenario, BoundState, datetime.datetime], framework_id: str) -> None:
    scenario, state, as_of = portfolio
    statements = applicability_statements(scenario.ledger, state.binding.described_size)
    framework = scenario.frameworks[framework_id]
    systems = state.snapshot.systems
    document = build(state, framework_id, scenario.frameworks)
    by_pair = {(p.rule, p.system): p for p in document.pairs}
    rows = bases = 0
    for control in document.controls:
        assert [row.system for row in control.systems] == sorted(document.systems)
        for row in control.systems:
            rows += 1
            applicability = _applicability_ref(control_applicability(framework, control.id, systems[row.system],
                                                                     as_of, statements))
            assert row.applicability.model_copy(update={"basis": None}) == applicability, (control.id, row.system)
            # M3: the decision cites the entry it rests on (the classification, or the statement deciding it)
            if framework_id == "eu-ai-act" or "applies_to_kinds" in framework.extra:  # the classification, the kind
                basis = state.snapshot.registrations[row.system]
            elif applicability.source == state.context.statement_labels.get(framework_id):
                basis = state.inputs.applicability_activations[framework_id]
            else:
                basis = None
            assert row.applicability.basis == basis, (control.id, row.system)
            bases += basis is not None
            primary = [by_pair[(r, row.system)] for r in row.primary_rules]
            organisation = framework.controls[control.id].scope == "organisation"
            assert (row.status, row.reason) == control_status(applicability, primary, row.evidence,
                                                              organisation=organisation)
        # what needs attention: the control's primary pairs below full points, worst first
        scanned = [by_pair[(r, s)] for r in control.primary_rules for s in document.systems
                   if (r, s) in by_pair and by_pair[(r, s)].points < 1.0]
        assert control.attention == sorted(scanned, key=lambda p: (p.points, p.system, p.rule))
    assert rows == len(document.controls) * len(document.systems) > 0 and bases > 0
    assert any(control.attention for control in document.controls)
    # the whole document equals one built with the direct per-system decision
    direct = ReportContext(applicability=lambda f, c, s: control_applicability(f, c, s, as_of, statements),
                           evidence=state.context.evidence, statement_labels=state.context.statement_labels)
    slow = build(dataclasses.replace(state, context=direct), framework_id, scenario.frameworks)
    assert slow.model_dump(mode="json") == document.model_dump(mode="json")


@pytest.mark.parametrize("framework_id", FRAMEWORKS)
def test_the_json_encoder_gives_the_bytes_of_a_pydantic_dump(
        portfolio: tuple[Scenario, BoundState, datetime.datetime], framework_id: str) -> None:
    scenario, state, _ = portfolio
    document = build(state, framework_id, scenario.frameworks)
    assert any(row.evidence for control in document.controls for row in control.systems) or \
        framework_id != "iso-42001"  # the shipped documents and attestations cite ISO controls
    assert any(control.attention for control in document.controls)
    assert render(document, "json", state.graph) == json_text(document.model_dump(mode="json"))
    # every row and control element on its own, too
    encoder = _ReportEncoder()
    for control in document.controls:
        assert encoder.control(control) == _encode(control.model_dump(mode="json"))
        for row in control.systems:
            assert encoder.row(row) == _encode(row.model_dump(mode="json"))
    assert encoder.gaps(document.gaps) == _encode(document.gaps.model_dump(mode="json"))
    assert document.proofs and all(encoder.proof(p) == _encode(p.model_dump(mode="json")) for p in document.proofs)


def test_shared_texts_follow_the_objects_they_encode() -> None:
    """A text is served again only for the very object it encodes, and forgotten when that object is freed."""
    from charter.report.model import TrendPoint

    texts, encoded = _SharedTexts(), []

    def encode(value: TrendPoint) -> str:
        encoded.append(value.value)  # not the object: this list must not keep it alive
        return _encode(value.model_dump(mode="json"))

    point = TrendPoint(window_start="2026-01-01T00:00:00Z", value=1.0)
    assert texts.get(point, encode) == texts.get(point, encode) == _encode(point.model_dump(mode="json"))
    assert len(encoded) == 1 and len(texts) == 1
    encoded.clear()
    del point
    assert len(texts) == 0
    for n in range(200):  # freed objects' ids are reused at once: each new point must get its own text
        fresh = TrendPoint(window_start=f"2026-01-01T00:00:{n % 60:02d}Z", value=float(n))
        assert texts.get(fresh, encode) == _encode(fresh.model_dump(mode="json"))
        del fresh
    assert len(texts) == 0 and len(encoded) == 200
