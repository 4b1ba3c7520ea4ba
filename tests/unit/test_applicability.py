"""Applicability: EU AI Act by classification, obligation and date; ISO/IEC 42001 and NIST AI RMF by documents."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from charter._sources import parse_yaml
from charter.applicability import (
    ActiveDocument,
    Applicability,
    ApplicabilityStatements,
    control_applicability,
    load_applicability_file,
    parse_applicability_document,
)
from charter.errors import CharterError
from charter.frameworks import load_framework_file, load_frameworks
from charter.kpis import builtin_catalog
from charter.registry import AISystem, EUClassification, SystemKind, SystemRegistry
from tests.conftest import REPO

FRAMEWORKS = load_frameworks()
EU = FRAMEWORKS["eu-ai-act"]
REGISTRY = SystemRegistry.from_file(REPO / "evidence" / "systems.yaml", builtin_catalog())
SOA = load_applicability_file(REPO / "policies" / "applicability" / "iso-42001.yaml", FRAMEWORKS)
PROFILE = load_applicability_file(REPO / "policies" / "applicability" / "nist-ai-rmf.yaml", FRAMEWORKS)
IN_FORCE = ApplicabilityStatements({"iso-42001": ActiveDocument(SOA, 41), "nist-ai-rmf": ActiveDocument(PROFILE, 42)})
NOTHING = ApplicabilityStatements()


def at(day: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(day + "T12:00:00+00:00")


def classified(system_id: str, **changes: Any) -> AISystem:
    """A demo system with its classification changed (validated again, as the registry would)."""
    system = REGISTRY[system_id]
    assert system.eu_ai_act is not None
    raw = {**system.eu_ai_act.model_dump(mode="json"), **changes}
    return system.model_copy(update={"eu_ai_act": EUClassification.model_validate(raw)})


CREDIT = {"annex_iii": {"area": 5, "point": "b", "reasoning": "Scores consumer-credit applicants."}}
MACHINE = {"annex_i": {"legislation": "Regulation (EU) 2023/1230 (machinery)", "safety_component": True}}
GPAI_SR = {"general_purpose_model": {"provider": True, "systemic_risk": True}}
LEGACY = {"placed_on_market": "2025-03-01"}

CASES: list[tuple[str, str, AISystem, str, str, str, str | None]] = [
    # (name, framework, system, control, at, status, a phrase of the reason or None) -- applies_from below
    ("art 9 on a non-high-risk system", "eu-ai-act", REGISTRY["fraud-detector"], "art-9", "2028-01-01",
     "not_applicable", "not high-risk"),
    ("art 9 on an Annex III system before the amended date", "eu-ai-act", classified("fraud-detector", **CREDIT),
     "art-9", "2026-12-03", "not_yet_applicable", "originally 2026-08-02"),
    ("art 9 on an Annex III system from the amended date", "eu-ai-act", classified("fraud-detector", **CREDIT),
     "art-9", "2027-12-02", "applicable", "Annex III 5(b)"),
    ("art 9 on an Annex I system", "eu-ai-act", classified("turbine-maintenance", **MACHINE), "art-9", "2028-01-01",
     "not_yet_applicable", "Annex I route"),
    ("art 50 on the chatbot", "eu-ai-act", REGISTRY["customer-chatbot"], "art-50", "2026-12-03", "applicable",
     "50(1)"),
    ("art 50 before the general date", "eu-ai-act", REGISTRY["customer-chatbot"], "art-50", "2026-05-01",
     "not_yet_applicable", "2026-08-02"),
    ("art 50(1) binds the provider, not a mere deployer", "eu-ai-act",
     classified("customer-chatbot", roles=["deployer"]), "art-50", "2026-12-03", "not_applicable", "50(1)"),
    ("art 50(4) binds the deployer", "eu-ai-act", classified("customer-chatbot", roles=["deployer"],
                                                               transparency=["deep_fake"]),
     "art-50", "2026-12-03", "applicable", "50(4)"),
    ("art 55 on a non-GPAI system", "eu-ai-act", REGISTRY["customer-chatbot"], "art-55", "2026-12-03",
     "not_applicable", "systemic risk"),
    ("art 55 on a GPAI provider with systemic risk", "eu-ai-act", classified("customer-chatbot", **GPAI_SR),
     "art-55", "2026-12-03", "applicable", "2025-08-02"),
    ("art 99 binds no operator", "eu-ai-act", REGISTRY["fraud-detector"], "art-99", "2026-12-03", "not_applicable",
     "binds no operator"),
    ("art 26 needs the deployer role", "eu-ai-act", classified("fraud-detector", roles=["provider"], **CREDIT),
     "art-26", "2028-01-01", "not_applicable", "binds the deployer"),
    ("art 27 for an Annex III 5(b) deployer", "eu-ai-act", classified("fraud-detector", **CREDIT), "art-27",
     "2028-01-01", "applicable", "5(b)"),
    ("art 27 not for a private Annex III 4 deployer", "eu-ai-act", classified(
        "fraud-detector", annex_iii={"area": 4, "point": "a", "reasoning": "Screens job applicants."}),
     "art-27", "2028-01-01", "not_applicable", "neither a public-body deployer"),
    ("art 49 for an Art 6(3) exempt system", "eu-ai-act", classified(
        "turbine-maintenance", **CREDIT, exemption_6_3={"ground": "d", "reasoning": "Prepares files for a human "
                                                        "credit officer only.", "registered_art_49_2": True}),
     "art-49", "2028-01-01", "applicable", "exempt under Art 6(3)(d)"),
    ("art 5 binds every operator from 2025", "eu-ai-act", REGISTRY["turbine-maintenance"], "art-5", "2025-03-01",
     "applicable", "2025-02-02"),
    ("an unclassified system", "eu-ai-act", REGISTRY["fraud-detector"].model_copy(update={"eu_ai_act": None}),
     "art-9", "2026-12-03", "undetermined", "system fraud-detector has no EU AI Act classification in the registry"),
    ("annex III area of a system outside it", "eu-ai-act", REGISTRY["claims-approval"], "annex-iii.5", "2026-12-03",
     "not_applicable", "life and health"),
    ("a chapter follows its articles", "eu-ai-act", REGISTRY["customer-chatbot"], "ch-iv", "2026-12-03",
     "applicable", "art-50"),
    ("ISO control excluded by the SoA", "iso-42001", REGISTRY["fraud-detector"], "A.7.3", "2026-12-03",
     "not_applicable", "acquires no data from third parties"),
    ("ISO control included for listed systems only: the others are not decided", "iso-42001",
     REGISTRY["turbine-maintenance"], "A.10.4", "2026-12-03", "undetermined", "does not decide it for"),
    ("ISO control included", "iso-42001", REGISTRY["turbine-maintenance"], "A.6.2.6", "2026-12-03", "applicable",
     "SoA v3 (seq 41)"),
    ("ISO clause 6.1.3", "iso-42001", REGISTRY["turbine-maintenance"], "6.1.3", "2026-12-03", "applicable",
     "clauses 4 to 10"),
    ("NIST subcategory out of the profile", "nist-ai-rmf", REGISTRY["claims-approval"], "MEASURE-2.2",
     "2026-12-03", "not_applicable", "no evaluations with human subjects"),
    ("NIST category through its subcategories", "nist-ai-rmf", REGISTRY["claims-approval"], "GOVERN-1",
     "2026-12-03", "applicable", "GOVERN-1.1"),
    # Art 111(4) as amended: 50(2) marking waits to 2026-12-02 for systems on the market before 2026-08-02.
    ("art 50(2) only, on the market before 2026-08-02, during the grace", "eu-ai-act",
     classified("customer-chatbot", **LEGACY, transparency=["synthetic_content"]), "art-50", "2026-09-01",
     "not_yet_applicable", "It applies from 2026-12-02 (Art 111(4)"),
    ("art 50(2) only, on the market before 2026-08-02, after the grace", "eu-ai-act",
     classified("customer-chatbot", **LEGACY, transparency=["synthetic_content"]), "art-50", "2026-12-02",
     "applicable", "placed on the market on 2025-03-01, before 2026-08-02"),
    ("art 50(2) only, placed on the market after 2026-08-02: no grace", "eu-ai-act",
     classified("customer-chatbot", placed_on_market="2026-09-01", transparency=["synthetic_content"]), "art-50",
     "2026-09-02", "applicable", "In application since 2026-08-02 (Art 113 second paragraph)"),
    ("art 50(1) and 50(2), on the market before 2026-08-02: 50(1) applies, 50(2) waits", "eu-ai-act",
     classified("customer-chatbot", **LEGACY), "art-50", "2026-09-01", "applicable",
     "its Art 50(2) duties apply from 2026-12-02"),
    ("art 50(2) without a market date during the grace: not deferred, and said so", "eu-ai-act",
     classified("customer-chatbot", transparency=["synthetic_content"]), "art-50", "2026-09-01", "applicable",
     "no market date is recorded in its classification, so its Art 50(2) duties are not deferred"),
    ("the grace defers 50(2) only, never a deployer's 50(4)", "eu-ai-act",
     classified("customer-chatbot", **LEGACY, roles=["deployer"], transparency=["deep_fake"]), "art-50",
     "2026-09-01", "applicable", "In application since 2026-08-02 (Art 113 second paragraph)"),
    # NIST AI 600-1 profiles generative AI: decided by the system's kind, not by its EU classification
    ("600-1 on the generative chatbot", "nist-ai-600-1", REGISTRY["customer-chatbot"], "confabulation",
     "2026-12-03", "applicable", "applies to generative systems, and customer-chatbot is one"),
    ("600-1 on an agent", "nist-ai-600-1", REGISTRY["procurement-agent"], "information-security", "2026-12-03",
     "applicable", "applies to agent systems, and procurement-agent is one"),
    ("600-1 on a classifier", "nist-ai-600-1", REGISTRY["fraud-detector"], "confabulation", "2026-12-03",
     "not_applicable", "covers generative and agent systems only; fraud-detector is a classifier"),
    ("600-1 on a classifier the EU Act calls high-risk", "nist-ai-600-1", classified("fraud-detector", **CREDIT),
     "data-privacy", "2028-01-01", "not_applicable", "is a classifier"),
]


@pytest.mark.parametrize(("name", "framework", "system", "control", "day", "status", "phrase"), CASES,
                         ids=[c[0] for c in CASES])
def test_applicability_decisions(name: str, framework: str, system: AISystem, control: str, day: str, status: str,
                                 phrase: str | None) -> None:
    decided = control_applicability(FRAMEWORKS[framework], control, system, at(day), IN_FORCE)
    assert decided.status == status, decided
    assert phrase is None or phrase in decided.reason, decided.reason


def test_the_deferred_date_is_the_amended_one_with_its_source() -> None:
    decided = control_applicability(EU, "art-9", classified("fraud-detector", **CREDIT), at("2026-12-03"), NOTHING)
    assert decided == Applicability("not_yet_applicable", decided.reason, datetime.date(2027, 12, 2),
                                    "Art 113(c) as amended by Reg (EU) 2026/1744, Annex III route")


def test_without_a_statement_of_applicability_annex_a_is_undetermined_loudly() -> None:
    decided = control_applicability(FRAMEWORKS["iso-42001"], "A.7.3", REGISTRY["fraud-detector"], at("2026-12-03"),
                                    NOTHING)
    assert decided.status == "undetermined" and "no Statement of Applicability is in force" in decided.reason
    clause = control_applicability(FRAMEWORKS["iso-42001"], "9.2", REGISTRY["fraud-detector"], at("2026-12-03"),
                                   NOTHING)
    assert clause.status == "applicable"


def test_a_control_the_document_does_not_decide_is_undetermined() -> None:
    partial = SOA.model_copy(update={"decisions": tuple(d for d in SOA.decisions if d.id != "A.6.2.6")})
    statements = ApplicabilityStatements({"iso-42001": ActiveDocument(partial, 7)})
    decided = control_applicability(FRAMEWORKS["iso-42001"], "A.6.2.6", REGISTRY["fraud-detector"],
                                    at("2026-12-03"), statements)
    assert decided.status == "undetermined" and "does not decide A.6.2.6" in decided.reason


def test_every_control_of_every_framework_gets_a_sentence() -> None:
    for framework in FRAMEWORKS.values():
        for control in framework.controls:
            for system in REGISTRY.values():
                decided = control_applicability(framework, control, system, at("2026-12-03"), IN_FORCE)
                # only an inclusion limited to other systems leaves a control undetermined (listed as a gap)
                assert decided.reason and (decided.status != "undetermined" or "does not decide it for"
                                           in decided.reason), (framework.id, control, system.id)


# -- the demo's classifications ---------------------------------------------------------------------


def test_the_demo_classifications_are_pinned() -> None:
    """Fraud detection is outside Annex III 5(b); motor insurance outside 5(c): neither is EU high-risk."""
    eu = {system_id: system.eu_ai_act for system_id, system in REGISTRY.items()}
    assert all(c is not None for c in eu.values())
    assert not any(c.high_risk for c in eu.values() if c is not None)
    fraud, claims = eu["fraud-detector"], eu["claims-approval"]
    assert fraud is not None and claims is not None
    assert "excludes AI systems used to detect financial fraud" in fraud.reasoning and "5(b)" in fraud.reasoning
    assert "life and health insurance only" in claims.reasoning and "5(c)" in claims.reasoning
    assert REGISTRY["fraud-detector"].risk_tier.value == "high"  # the internal tier is the organisation's own
    chatbot, agent, turbine = eu["customer-chatbot"], eu["procurement-agent"], eu["turbine-maintenance"]
    assert chatbot is not None and [d.value for d in chatbot.transparency] == ["interacts_with_people",
                                                                              "synthetic_content"]
    assert "deployer" in chatbot.roles
    assert agent is not None and [d.value for d in agent.transparency] == ["interacts_with_people"]
    assert turbine is not None and not turbine.transparency and turbine.annex_i is None


def _classification(**changes: Any) -> dict[str, Any]:
    system = REGISTRY["fraud-detector"]
    assert system.eu_ai_act is not None
    return {**system.eu_ai_act.model_dump(mode="json"), **changes}


@pytest.mark.parametrize(("changes", "message"), [
    ({"roles": []}, "at least 1"),
    ({"roles": ["provider", "provider"]}, "twice"),
    ({"roles": ["operator"]}, "provider"),
    ({"exemption_6_3": {"ground": "a", "reasoning": "Narrow procedural task.", "registered_art_49_2": True}},
     "only to an Annex III system"),
    ({**CREDIT, "exemption_6_3": {"ground": "a", "reasoning": "Narrow procedural task.",
                                  "registered_art_49_2": True}}, "profiles natural persons"),
    ({**CREDIT, "profiles_natural_persons": False,
      "exemption_6_3": {"ground": "a", "reasoning": "   ", "registered_art_49_2": True}}, "reasoning"),
    ({"annex_iii": {"area": 9, "point": "a", "reasoning": "x"}}, "less than or equal to 8"),
    ({"transparency": ["chatting"]}, "interacts_with_people"),
    ({"reasoning": ""}, "at least 1 character"),
])
def test_malformed_classifications_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        EUClassification.model_validate(_classification(**changes))
    assert message in str(info.value)


def test_a_registry_classification_error_names_its_line(tmp_path: Path) -> None:
    text = (REPO / "evidence" / "systems.yaml").read_text().replace("roles: [provider, deployer]", "roles: []", 1)
    (tmp_path / "systems.yaml").write_text(text)
    with pytest.raises(CharterError) as info:
        SystemRegistry.from_file(tmp_path / "systems.yaml", builtin_catalog())
    diagnostic = info.value.diagnostics[0]
    assert diagnostic.code == "registry_schema" and diagnostic.location.line is not None
    assert "eu_ai_act.roles" in str(diagnostic.location.path)


def test_an_unclassified_system_is_recorded_as_before() -> None:
    """A system without classification dumps no ``eu_ai_act`` key: its registration digest is unchanged."""
    system = REGISTRY["fraud-detector"].model_copy(update={"eu_ai_act": None})
    assert "eu_ai_act" not in system.model_dump(mode="json")
    assert "eu_ai_act" in REGISTRY["fraud-detector"].model_dump(mode="json")


# -- the catalog's obligation blocks ----------------------------------------------------------------


def test_every_article_carries_an_obligation() -> None:
    articles = [c for c in EU.controls.values() if c.kind == "article"]
    assert articles and all("obligation" in (c.model_extra or {}) for c in articles)


def _catalog_with(tmp_path: Path, old: str, new: str, name: str = "eu-ai-act.yaml") -> Path:
    """A copy of the shipped catalog `name` with its first `old` replaced by `new`."""
    text = (REPO / "frameworks" / name).read_text()
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(("old", "new", "code", "where"), [
    ("    systems: high_risk\n", "    systems: risky\n", "framework_schema", "obligation.systems"),
    ("    holders: [provider]\n", "    holders: [vendor]\n", "framework_schema", "obligation.holders"),
    ("    applies_from: high_risk\n", "    applies_from: someday\n", "framework_schema", "applies_from"),
    ("  obligation:\n    holders: [provider, deployer]\n    systems: any\n    applies_from: chapters_i_ii\n", "",
     "missing_obligation", "controls"),
    ("    annex_iii: {original: '2026-08-02', amended: '2027-12-02'}", "    annex_iii: {original: soon}",
     "framework_schema", "application_dates.high_risk"),
    ("placed_before: general, applies_from: art_50_2_legacy}", "placed_before: general, applies_from: never}",
     "framework_schema", "transitional.applies_from"),
    ("placed_before: general, applies_from: art_50_2_legacy}", "placed_before: high_risk, "
     "applies_from: art_50_2_legacy}", "framework_schema", "transitional.placed_before"),
    ("    systems: transparency\n    applies_from: general\n", "    systems: any\n    applies_from: general\n",
     "framework_schema", "transitional"),
    ("placed_before: general, applies_from: art_50_2_legacy}", "placed_before: general}", "framework_schema",
     "transitional"),
])
def test_a_malformed_obligation_is_refused_with_its_line(tmp_path: Path, old: str, new: str, code: str,
                                                         where: str) -> None:
    with pytest.raises(CharterError) as info:
        load_framework_file(_catalog_with(tmp_path, old, new))
    diagnostic = info.value.diagnostics[0]
    assert diagnostic.code == code, info.value
    assert diagnostic.location.line is not None and where in str(diagnostic.location.path), diagnostic


def test_the_market_date_is_recorded_only_when_given() -> None:
    """A classification without a market date keeps the form (and registration digest) it had before the field."""
    chatbot = REGISTRY["customer-chatbot"]
    assert chatbot.eu_ai_act is not None and "placed_on_market" not in chatbot.model_dump(mode="json")["eu_ai_act"]
    dated = classified("customer-chatbot", **LEGACY)
    assert dated.model_dump(mode="json")["eu_ai_act"]["placed_on_market"] == "2025-03-01"
    assert AISystem.model_validate(dated.model_dump(mode="json")) == dated


def test_a_new_article_with_its_own_obligation_is_accepted(tmp_path: Path) -> None:
    article = ("- id: art-4z\n  kind: article\n  title: Processing of special categories of personal data\n"
               "  parent: ch-i\n  obligation:\n    holders: [provider]\n    systems: high_risk\n"
               "    applies_from: high_risk\n")
    framework = load_framework_file(_catalog_with(tmp_path, "- id: art-5\n", article + "- id: art-5\n"))
    decided = control_applicability(framework, "art-4z", classified("fraud-detector", **CREDIT), at("2028-01-01"),
                                    NOTHING)
    assert decided.status == "applicable"


# -- hostile Statements of Applicability ------------------------------------------------------------


def _soa(mutate: Any) -> tuple[Any, Any]:
    data, _ = parse_yaml((REPO / "policies" / "applicability" / "iso-42001.yaml").read_text(), "soa.yaml")
    mutate(data)
    return parse_yaml(yaml.safe_dump(data, sort_keys=False), "soa.yaml")


def _decision(data: dict[str, Any], control: str) -> dict[str, Any]:
    return next(d for d in data["decisions"] if d["id"] == control)


@pytest.mark.parametrize(("mutate", "code", "phrase"), [
    (lambda d: d["decisions"].append({"id": "A.99.1", "included": True, "justification": "x"}), "unknown_control",
     "A.99.1"),
    (lambda d: d["decisions"].append({"id": "A.6.2.6", "included": True, "justification": "again"}),
     "duplicate_decision", "twice"),
    (lambda d: _decision(d, "A.7.3").pop("justification"), "applicability_schema", "justification"),
    (lambda d: _decision(d, "A.7.3").update(justification="  "), "applicability_schema", "justification"),
    (lambda d: d.update(decisions=[x for x in d["decisions"] if x["id"] != "A.5.5"]), "undecided_control", "A.5.5"),
    (lambda d: d["decisions"].append({"id": "6.1.3", "included": False, "justification": "x"}), "not_decidable",
     "clause"),
    (lambda d: _decision(d, "A.7.3").update(systems=["fraud-detector"]), "applicability_schema", "exclusion"),
    (lambda d: d.update(framework="sox"), "applicability_schema", "framework"),
    (lambda d: d.update(extra="field"), "applicability_schema", "extra"),
])
def test_hostile_statements_of_applicability_are_refused_with_lines(mutate: Any, code: str, phrase: str) -> None:
    data, smap = _soa(mutate)
    with pytest.raises(CharterError) as info:
        parse_applicability_document(data, smap, FRAMEWORKS)
    diagnostic = next((d for d in info.value.diagnostics if d.code == code), None)
    assert diagnostic is not None, info.value
    assert phrase in diagnostic.message or phrase in str(diagnostic.location.path), diagnostic
    assert diagnostic.location.line is not None


def test_a_huge_statement_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    from charter._limits import LIMITS

    path = tmp_path / "soa.yaml"
    line = "- {id: A.2.2, included: true, justification: x}\n"
    path.write_text("decisions:\n" + line * (LIMITS.max_bytes // len(line) + 1))
    assert path.stat().st_size > LIMITS.max_bytes
    with pytest.raises(CharterError) as info:
        load_applicability_file(path, FRAMEWORKS)
    assert info.value.code == "file_too_large"


def test_the_demo_documents_decide_everything_and_justify_exclusions() -> None:
    for document, kind in ((SOA, "annex_a_control"), (PROFILE, "subcategory")):
        framework = FRAMEWORKS[document.framework]
        assert {d.id for d in document.decisions} == {c.id for c in framework.controls.values() if c.kind == kind}
        assert any(not d.included for d in document.decisions)
        assert all(len(d.justification) > 40 for d in document.decisions if not d.included)


def test_a_missing_market_date_is_named_only_where_it_would_change_the_decision() -> None:
    art_50 = FRAMEWORKS["eu-ai-act"]
    only_marking = classified("customer-chatbot", transparency=["synthetic_content"])
    assert "no market date" in control_applicability(art_50, "art-50", only_marking, at("2026-09-01"), NOTHING).reason
    # After the grace, or with 50(1) making the article apply anyway, the market date decides nothing.
    assert "market" not in control_applicability(art_50, "art-50", only_marking, at("2026-12-03"), NOTHING).reason
    both = control_applicability(art_50, "art-50", REGISTRY["customer-chatbot"], at("2026-09-01"), NOTHING)
    assert both.status == "applicable" and "market" not in both.reason


# -- catalogs scoped to kinds of AI (NIST AI 600-1) --------------------------------------------------


def _gai_catalog_with(tmp_path: Path, old: str, new: str) -> Path:
    return _catalog_with(tmp_path, old, new, "nist-ai-600-1.yaml")


@pytest.mark.parametrize("kinds", ["[generative, chatbot]", "[]", "generative"])
def test_a_malformed_kind_scope_is_refused_with_its_line(tmp_path: Path, kinds: str) -> None:
    with pytest.raises(CharterError) as info:
        load_framework_file(_gai_catalog_with(tmp_path, "applies_to_kinds: [generative, agent]",
                                              f"applies_to_kinds: {kinds}"))
    diagnostic = info.value.diagnostics[0]
    assert diagnostic.code == "framework_schema" and "applies_to_kinds" in diagnostic.message
    assert diagnostic.location.line is not None and diagnostic.location.file is not None


def test_the_gai_profile_lists_the_twelve_risks_of_section_2() -> None:
    """Pinned: the twelve GAI risks of NIST AI 600-1 section 2, in its order, each assessed and citable."""
    profile = FRAMEWORKS["nist-ai-600-1"]
    assert [c.title for c in profile.assessed_controls()] == [
        "CBRN Information or Capabilities", "Confabulation", "Dangerous, Violent, or Hateful Content",
        "Data Privacy", "Environmental Impacts", "Harmful Bias or Homogenization", "Human-AI Configuration",
        "Information Integrity", "Information Security", "Intellectual Property",
        "Obscene, Degrading, and/or Abusive Content", "Value Chain and Component Integration"]
    assert [c.source for c in profile.assessed_controls()] == [
        f"NIST AI 600-1 §2.{n}" for n in range(1, 13)]
    assert FRAMEWORKS.check_citable("nist-ai-600-1:confabulation") is None
    assert FRAMEWORKS.check_citable("nist-ai-600-1:hallucination") is not None


def test_a_profile_scoped_to_kinds_decides_a_new_kind_too(tmp_path: Path) -> None:
    """The scope is data: a catalog listing forecasters applies to the turbine model and not to the chatbot."""
    framework = load_framework_file(_gai_catalog_with(tmp_path, "applies_to_kinds: [generative, agent]",
                                                      "applies_to_kinds: [classifier]"))
    assert control_applicability(framework, "confabulation", REGISTRY["turbine-maintenance"], at("2026-12-03"),
                                 NOTHING).status == "applicable"
    assert control_applicability(framework, "confabulation", REGISTRY["customer-chatbot"], at("2026-12-03"),
                                 NOTHING).status == "not_applicable"


def test_systems_alike_but_for_their_kind_share_no_decision() -> None:
    """The portfolio-wide shortcut decides once per class; the kind is part of the class, so a classifier
    classified exactly like a generative system is still outside NIST AI 600-1."""
    from charter.applicability import SharedApplicability

    chatbot = REGISTRY["customer-chatbot"]
    lookalike = chatbot.model_copy(update={"id": "scoring-model", "kind": SystemKind.CLASSIFIER})
    shared = SharedApplicability(at("2026-12-03"), NOTHING)
    profile = FRAMEWORKS["nist-ai-600-1"]
    assert shared.decide(profile, "confabulation", chatbot).status == "applicable"
    assert shared.decide(profile, "confabulation", lookalike).status == "not_applicable"
    assert shared.decide(profile, "confabulation", chatbot.model_copy(update={"id": "second-bot"})).status \
        == "applicable"
    assert shared.divergences == []
