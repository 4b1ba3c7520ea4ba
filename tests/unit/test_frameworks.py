"""Control catalogs and control references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charter.errors import CharterError
from charter.frameworks import FrameworkSet, load_frameworks, parse_control_ref
from tests.conftest import REPO


def _count(frameworks: FrameworkSet, framework: str, kind: str) -> int:
    return sum(1 for c in frameworks[framework].controls.values() if c.kind == kind)


def test_catalog_sizes(frameworks: FrameworkSet) -> None:
    assert _count(frameworks, "iso-42001", "annex_a_control") == 38
    assert _count(frameworks, "iso-42001", "annex_a_objective") == 11
    assert _count(frameworks, "nist-ai-rmf", "function") == 4
    assert _count(frameworks, "nist-ai-rmf", "category") == 19
    assert _count(frameworks, "nist-ai-rmf", "subcategory") == 72
    # the 31 articles of the first catalog, plus 4a, 21, 47, 48, 60 and 71 (frameworks-review.md §2.1)
    assert _count(frameworks, "eu-ai-act", "article") == 37
    assert {"art-4a", "art-21", "art-47", "art-48", "art-60", "art-71"} <= set(frameworks["eu-ai-act"].controls)
    assert frameworks["eu-ai-act"].controls["art-3"].kind == "definition"
    assert frameworks["eu-ai-act"].controls["annex-iv"].parent == "ch-iii.s2"


@pytest.mark.parametrize("ref", ["iso-42001:A.6.2.6", "iso-42001:9.1", "eu-ai-act:art-15", "eu-ai-act:art-10(2)(f)",
                                 "nist-ai-rmf:MEASURE-2.11", "nist-ai-rmf:GOVERN", "eu-ai-act:art-13(3)(b)(vii)",
                                 "eu-ai-act:art-13(3)(b)", "eu-ai-act:art-17(1)", "eu-ai-act:art-3(49)(c)",
                                 "eu-ai-act:art-73(11)", "eu-ai-act:art-50(2)", "eu-ai-act:art-9(10)"])
def test_valid_refs(frameworks: FrameworkSet, ref: str) -> None:
    assert frameworks.check_ref(ref) is None
    assert frameworks.resolve(ref) is not None


@pytest.mark.parametrize(("ref", "fragment"), [
    ("iso-42001:A.6.2.99", "does not exist"),
    ("iso:A.6.2.6", "unknown framework 'iso'"),
    ("A.6.2.6", "not of the form"),
    ("nist-ai-rmf:MEASURE 2.5", "not of the form"),
    ("eu-ai-act:art-155", "did you mean eu-ai-act:art-55"),
    ("eu-ai-act:art-10(2)(zz)", "paragraph 2(zz) of eu-ai-act:art-10 does not exist in the catalog"),
    ("eu-ai-act:art-10(2)(i)", "did you mean eu-ai-act:art-10(2)(h)?"),
    ("eu-ai-act:art-15(6)", "paragraph 6 of eu-ai-act:art-15 does not exist"),
    ("eu-ai-act:art-13(3)(b)(viii)", "did you mean eu-ai-act:art-13(3)(b)(vii)?"),
    ("eu-ai-act:art-17(2)(a)", "paragraph 2(a) of eu-ai-act:art-17"),
    ("eu-ai-act:art-11(1)", "the catalog lists no paragraphs for art-11"),
    ("iso-42001:A.6.2.6(1)", "the catalog lists no paragraphs for A.6.2.6"),
    ("eu-ai-act:art-10()", "not of the form"),
    ("eu-ai-act:art-10(2", "not of the form"),
    ("eu-ai-act:art-10(2)(F)", "not of the form"),
    ("eu-ai-act:art-10" + "(2)" * 60, "characters long (at most 120)"),
    ("eu-ai-act:" + "a" * 5000, "characters long"),
])
def test_invalid_refs(frameworks: FrameworkSet, ref: str, fragment: str) -> None:
    assert fragment in (frameworks.check_ref(ref) or "")


def test_paragraph_is_kept_when_parsing() -> None:
    ref = parse_control_ref("eu-ai-act:art-15(3)")
    assert ref is not None and (ref.control, ref.paragraph) == ("art-15", "(3)")


def test_every_control_cited_by_the_shipped_policies_exists(frameworks: FrameworkSet) -> None:
    import yaml

    cited = []
    for path in sorted((REPO / "policies").rglob("*.yaml")):
        if path.name.endswith("_test.yaml"):
            continue
        document = yaml.safe_load(path.read_text())
        for rule in document.get("rules", []):
            cited.extend(rule.get("controls", []))
            cited.extend(rule.get("supporting_controls", []))
    assert cited
    assert [ref for ref in cited if frameworks.check_ref(ref)] == []


def test_broken_catalog_is_located(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("framework: {id: x, name: X}\ncontrols:\n  - {id: A, kind: c}\n"
                                     "  - {id: B, kind: c, parent: Z}\n  - {id: A, kind: c}\n")
    with pytest.raises(CharterError) as info:
        load_frameworks(tmp_path)
    codes = {d.code for d in info.value.diagnostics}
    assert codes == {"duplicate_control", "unknown_parent"}


PACKS = {"core": None, "generative": "generative", "agentic": "agent", "operations": None, "business": None}


def test_policy_packs_exist_with_tests_and_map_to_all_three_frameworks(frameworks: FrameworkSet) -> None:
    from charter.kpis import builtin_catalog
    from charter.policy import PolicyCompiler, policy_files

    compiled = PolicyCompiler(builtin_catalog(), frameworks).compile_files(policy_files(REPO / "policies"))
    by_pack: dict[str, list[Any]] = {}
    for policy in compiled.policies:
        by_pack.setdefault(policy.policy.id.split(".")[0], []).append(policy)
    assert set(by_pack) == set(PACKS)
    for pack, kind in PACKS.items():
        folder = REPO / "policies" / pack
        assert {p.stem for p in folder.glob("*.yaml") if not p.stem.endswith("_test")} == \
            {p.stem.removesuffix("_test") for p in folder.glob("*_test.yaml")}, f"{pack}: a policy without tests"
        cited = {ref.split(":")[0] for policy in by_pack[pack] for rule in policy.rules for ref in rule.rule.controls}
        assert cited - {"nist-ai-600-1"} == {"iso-42001", "eu-ai-act", "nist-ai-rmf"} or pack == "business", \
            (pack, cited)
        # the packs for generative systems and agents name the GAI risks their KPIs measure (NIST AI 600-1)
        assert ("nist-ai-600-1" in cited) == (pack in ("core", "generative", "agentic")), (pack, cited)
        # every rule maps somewhere; a self-reported ratio (audit-readiness) may only support, never evidence
        assert all(rule.rule.controls or rule.rule.supporting_controls
                   for policy in by_pack[pack] for rule in policy.rules), pack
        if kind is not None:
            assert all(kind in (policy.policy.applies_to.kinds or ()) for policy in by_pack[pack]), pack


def test_catalog_paragraphs_imply_their_parents(frameworks: FrameworkSet) -> None:
    art13 = frameworks["eu-ai-act"].controls["art-13"]
    assert {"3", "3(b)", "3(b)(v)"} <= art13.citable_paragraphs()
    assert "4" not in art13.citable_paragraphs()
    assert frameworks["eu-ai-act"].controls["art-11"].citable_paragraphs() == frozenset()


@pytest.mark.parametrize(("ref", "assessed"), [
    ("iso-42001:A.6.2.6", True), ("iso-42001:9.2.1", True), ("iso-42001:9.2", False), ("iso-42001:7.5", False),
    ("iso-42001:A.6", False), ("iso-42001:annex-a", False),
    ("eu-ai-act:art-15", True), ("eu-ai-act:art-71", True), ("eu-ai-act:ch-iii.s3", False),
    ("eu-ai-act:annex-iv", False), ("eu-ai-act:annex-iii.5", False), ("eu-ai-act:art-3", False),
    ("nist-ai-rmf:MEASURE-2.5", True), ("nist-ai-rmf:MEASURE-2", False), ("nist-ai-rmf:MEASURE", False),
])
def test_assessed_controls_are_leaves_of_the_assessed_kinds(frameworks: FrameworkSet, ref: str, assessed: bool) -> None:
    framework, control = ref.split(":")
    assert frameworks[framework].assessed(control) is assessed
    assert (frameworks.check_citable(ref) is None) is assessed
    assert (control in {c.id for c in frameworks[framework].assessed_controls()}) is assessed


def test_assessed_control_counts(frameworks: FrameworkSet) -> None:
    assert len(frameworks["eu-ai-act"].assessed_controls()) == 37
    assert len(frameworks["nist-ai-rmf"].assessed_controls()) == 72
    iso = frameworks["iso-42001"].assessed_controls()
    assert sum(c.kind == "annex_a_control" for c in iso) == 38 and "9.2" not in {c.id for c in iso}


def test_unassessed_citations_say_what_to_cite(frameworks: FrameworkSet) -> None:
    assert "cite the ones the rule evidences" in (frameworks.check_citable("iso-42001:9.2") or "")
    assert "9.2.1, 9.2.2" in (frameworks.check_citable("iso-42001:9.2") or "")
    assert "only article controls" in (frameworks.check_citable("eu-ai-act:annex-iii.5") or "")
    assert "does not exist" in (frameworks.check_citable("eu-ai-act:art-10(2)(zz)") or "")


def test_catalog_without_assessed_kinds_assesses_every_leaf(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("framework: {id: x, name: X}\ncontrols:\n  - {id: A, kind: group}\n"
                                     "  - {id: A.1, kind: item, parent: A, paragraphs: ['1', '2(a)']}\n")
    frameworks = load_frameworks(tmp_path)
    assert [c.id for c in frameworks["x"].assessed_controls()] == ["A.1"]
    assert frameworks.check_citable("x:A.1(2)(a)") is None
    assert "sub-controls" in (frameworks.check_citable("x:A") or "")


@pytest.mark.parametrize("paragraphs", ["['(2)']", "['2(a']", "['2(a)(b)(c)(d)(e)']", "['']"])
def test_malformed_catalog_paragraphs_are_refused(tmp_path: Path, paragraphs: str) -> None:
    (tmp_path / "x.yaml").write_text("framework: {id: x, name: X}\ncontrols:\n"
                                     f"  - {{id: A, kind: c, paragraphs: {paragraphs}}}\n")
    with pytest.raises(CharterError) as info:
        load_frameworks(tmp_path)
    assert info.value.code == "framework_schema" and info.value.diagnostics[0].location.line == 3


def test_every_paragraph_cited_by_the_shipped_policies_is_listed(frameworks: FrameworkSet) -> None:
    import yaml

    cited = []
    for path in sorted((REPO / "policies").rglob("*.yaml")):
        if path.name.endswith("_test.yaml") or path.name == "escalation.yaml":
            continue
        for rule in yaml.safe_load(path.read_text()).get("rules", []):
            cited.extend(r for r in (*rule.get("controls", []), *rule.get("supporting_controls", [])) if "(" in r)
    assert len(cited) > 50
    assert [ref for ref in cited if frameworks.check_citable(ref)] == []


def test_new_eu_entries_carry_an_obligation_block(frameworks: FrameworkSet) -> None:
    controls = frameworks["eu-ai-act"].controls
    for control_id in ("art-3", "art-4a", "art-21", "art-47", "art-48", "art-60", "art-71", "annex-iv"):
        obligation = (controls[control_id].model_extra or {}).get("obligation")
        assert isinstance(obligation, dict) and set(obligation) == {"holders", "systems", "applies_from"}, control_id


_REF_LIKE = r"\A(eu-ai-act|iso-42001|nist-ai-rmf):[a-zA-Z0-9.\-]{0,12}(\([0-9a-z]{0,4}\)){0,8}\Z"
_BUILTIN = load_frameworks()


@given(st.text(max_size=300) | st.from_regex(_REF_LIKE))
@settings(max_examples=300, deadline=None)
def test_any_text_gets_a_verdict_and_never_an_exception(text: str) -> None:
    frameworks = _BUILTIN
    reason, citable = frameworks.check_ref(text), frameworks.check_citable(text)
    assert reason is None or isinstance(reason, str)
    assert reason is None or citable == reason  # check_citable refuses whatever check_ref refuses, for the same reason
    if reason is None:
        assert frameworks.resolve(text) is not None


# -- control scope and the evidence rule's catalog (review M1) ----------------------------------------

ORGANISATION_ANNEX_A = {"A.2.2", "A.2.3", "A.2.4", "A.3.2", "A.3.3", "A.5.2", "A.6.1.2", "A.6.1.3", "A.7.2",
                        "A.9.2", "A.9.3", "A.10.2", "A.10.3", "A.10.4"}


def test_iso_clauses_and_the_management_controls_of_annex_a_are_organisation_level(frameworks: FrameworkSet) -> None:
    iso = frameworks["iso-42001"]
    organisation = {c.id for c in iso.controls.values() if c.scope == "organisation"}
    clauses = {c.id for c in iso.controls.values() if c.kind == "clause"}
    assert organisation == clauses | ORGANISATION_ANNEX_A
    assert {"4.3", "5.2", "6.1.3", "9.3.2", "10.2"} <= organisation
    assert iso.controls["A.6.2.6"].scope == "system" and iso.controls["A.7.4"].scope == "system"


#: GOVERN 1-6 with their 19 subcategories: the RMF's organisational outcomes (AI 100-1, section 5.1)
ORGANISATION_NIST = {"GOVERN", *(f"GOVERN-{c}" for c in range(1, 7)),
                     *(f"GOVERN-1.{s}" for s in range(1, 8)), *(f"GOVERN-2.{s}" for s in range(1, 4)),
                     "GOVERN-3.1", "GOVERN-3.2", *(f"GOVERN-4.{s}" for s in range(1, 4)), "GOVERN-5.1", "GOVERN-5.2",
                     "GOVERN-6.1", "GOVERN-6.2"}


def test_govern_and_the_acts_literacy_and_qms_articles_are_organisation_level(frameworks: FrameworkSet) -> None:
    nist = {c.id for c in frameworks["nist-ai-rmf"].controls.values() if c.scope == "organisation"}
    assert nist == ORGANISATION_NIST and len(nist) == 26
    eu = frameworks["eu-ai-act"]
    assert {c.id for c in eu.controls.values() if c.scope == "organisation"} == {"art-4", "art-17"}
    # Scope says who evidences a control, not to whom it applies: Art 17 still binds providers alone.
    assert eu.controls["art-17"].model_extra["obligation"]["holders"] == ["provider"]
    catalog = frameworks.control_catalog()
    assert {"nist-ai-rmf:GOVERN-1.1", "eu-ai-act:art-4", "eu-ai-act:art-17"} <= catalog.organisation
    assert not {"nist-ai-rmf:MAP-1.1", "nist-ai-rmf:MEASURE-2.5", "eu-ai-act:art-9"} & catalog.organisation


def test_the_control_catalog_is_exactly_what_evidence_may_cite(frameworks: FrameworkSet) -> None:
    catalog = frameworks.control_catalog()
    assert all(frameworks.check_citable(ref) is None for ref in catalog.citable)
    assert {"iso-42001:A.2.2", "eu-ai-act:art-10", "eu-ai-act:art-10(2)", "eu-ai-act:art-10(2)(a)",
            "nist-ai-rmf:GOVERN-1.1"} <= catalog.citable
    for bad in ("eu-ai-act:art-10(9)", "eu-ai-act:art-10(2)(z)", "iso-42001:9.2", "iso-42001:5.2(1)", "iso-42001:A.2",
                "nist-ai-rmf:GOVERN-1", "iso-42001:A.99"):
        assert bad not in catalog.citable and frameworks.check_citable(bad) is not None, bad
    assert "iso-42001:5.2" in catalog.organisation and "iso-42001:A.6.2.6" not in catalog.organisation
    assert type(catalog).from_dict(catalog.to_dict()) == catalog


def test_a_bad_scope_is_located(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("framework: {id: x, name: X}\ncontrols:\n  - {id: A, kind: c, scope: team}\n")
    with pytest.raises(CharterError) as info:
        load_frameworks(tmp_path)
    assert info.value.code == "framework_schema" and info.value.diagnostics[0].location.line == 3
