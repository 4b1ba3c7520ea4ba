"""Control catalogs and control references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

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
    assert _count(frameworks, "eu-ai-act", "article") == 31


@pytest.mark.parametrize("ref", ["iso-42001:A.6.2.6", "iso-42001:9.1", "eu-ai-act:art-15", "eu-ai-act:art-10(2)(f)",
                                 "nist-ai-rmf:MEASURE-2.11", "nist-ai-rmf:GOVERN"])
def test_valid_refs(frameworks: FrameworkSet, ref: str) -> None:
    assert frameworks.check_ref(ref) is None
    assert frameworks.resolve(ref) is not None


@pytest.mark.parametrize(("ref", "fragment"), [
    ("iso-42001:A.6.2.99", "does not exist"),
    ("iso:A.6.2.6", "unknown framework 'iso'"),
    ("A.6.2.6", "not of the form"),
    ("nist-ai-rmf:MEASURE 2.5", "not of the form"),
    ("eu-ai-act:art-155", "did you mean eu-ai-act:art-55"),
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
        assert cited == {"iso-42001", "eu-ai-act", "nist-ai-rmf"} or pack == "business", (pack, cited)
        assert all(rule.rule.controls for policy in by_pack[pack] for rule in policy.rules), pack
        if kind is not None:
            assert all(kind in (policy.policy.applies_to.kinds or ()) for policy in by_pack[pack]), pack
