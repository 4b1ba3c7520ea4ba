"""The system registry file."""

from __future__ import annotations

from pathlib import Path

import pytest

from charter.errors import CharterError
from charter.kpis import KpiCatalog
from charter.registry import SystemRegistry
from tests.conftest import REPO


def test_demo_registry_loads(catalog: KpiCatalog) -> None:
    registry = SystemRegistry.from_file(REPO / "evidence" / "systems.yaml", catalog)
    assert set(registry) == {"fraud-detector", "claims-approval", "turbine-maintenance", "customer-chatbot",
                             "procurement-agent"}
    assert registry["claims-approval"].rule_view()["tags"] == ["insurance", "affects-people"]


def test_registry_problems_are_located(tmp_path: Path, catalog: KpiCatalog) -> None:
    path = tmp_path / "systems.yaml"
    path.write_text(
        "systems:\n"
        "  - {id: a, name: A, owner: o, risk_tier: high, kind: classifier}\n"
        "  - {id: a, name: A2, owner: o, risk_tier: high, kind: classifier}\n"
        "  - {id: b, name: B, owner: o, risk_tier: extreme, kind: classifier}\n"
        "  - {id: c, name: C, owner: o, risk_tier: low, kind: classifier, baseline: {recal: 0.9}}\n")
    with pytest.raises(CharterError) as info:
        SystemRegistry.from_file(path, catalog)
    found = {(d.code, d.location.line) for d in info.value.diagnostics}
    assert ("duplicate_system", 3) in found
    assert ("registry_schema", 4) in found
    assert ("registry_schema", 5) in found  # 'low' is not a tier


def test_require_names_registered_systems(catalog: KpiCatalog) -> None:
    registry = SystemRegistry.from_file(REPO / "evidence" / "systems.yaml", catalog)
    with pytest.raises(CharterError) as info:
        registry.require("ghost")
    assert "claims-approval" in str(info.value) and info.value.code == "unknown_system"


def test_the_standalone_verifier_reads_eu_high_risk_as_the_registry_does(catalog: KpiCatalog) -> None:
    # The exported verifier cannot import the registry: its reading of a recorded classification
    # (`eu_high_risk`) must agree with `EUClassification.high_risk` on every route.
    from charter.ledger.auditor import eu_high_risk
    from charter.registry import AnnexIIIUse, Exemption63

    registry = SystemRegistry.from_file(REPO / "evidence" / "systems.yaml", catalog)
    annex_iii = AnnexIIIUse(area=5, point="c", reasoning="life and health insurance pricing")
    exempt = Exemption63(ground="a", reasoning="a narrow procedural task", registered_art_49_2=True)
    seen = set()
    for system_id in registry:
        base = registry[system_id].eu_ai_act
        assert base is not None
        variants = [base, base.model_copy(update={"annex_iii": annex_iii}),
                    base.model_copy(update={"annex_iii": annex_iii, "exemption_6_3": exempt,
                                            "profiles_natural_persons": False})]
        for classification in variants:
            recorded = classification.model_dump(mode="json")
            assert eu_high_risk(recorded) is classification.high_risk, (system_id, recorded)
            seen.add(classification.high_risk)
    assert seen == {True, False}
    assert eu_high_risk(None) is None
