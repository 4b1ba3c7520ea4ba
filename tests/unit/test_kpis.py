"""The KPI catalog: coverage of the DESIGN's KPIs, ranges, and custom KPIs."""

from __future__ import annotations

from pathlib import Path

import pytest

from charter.errors import CharterError
from charter.kpis import RESERVED_NAMES, Category, KpiCatalog, load_catalog

# One KPI id per concept DESIGN.md lists; a rename in the catalog must be deliberate.
DESIGN_KPIS = [
    "accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "latency_p95_ms", "throughput_rps",
    "cpu_utilization", "adoption_rate", "uplift_vs_baseline", "roi", "cost_false_positives",
    "cost_false_negatives", "cost_per_prediction", "retraining_benefit_cost_ratio", "fairness_gap",
    "explainability_coverage", "bias_incidents", "safety_incidents", "policy_violations", "audit_readiness",
    "deployment_frequency", "retraining_frequency", "human_override_rate", "monitoring_coverage", "mttd_hours",
    "mttr_hours", "hallucination_rate", "factual_accuracy", "toxicity_rate", "jailbreak_success_rate",
    "tokens_per_response", "energy_kwh_per_1k_requests", "task_success_rate", "error_propagation_rate",
    "unauthorized_actions", "sandbox_breach_attempts", "privilege_escalations", "actions_blocked_rate",
    "time_to_stop_seconds", "reasoning_trace_coverage", "multi_agent_conflict_rate",
]


def test_catalog_covers_every_kpi_of_the_design(catalog: KpiCatalog) -> None:
    assert sorted(set(DESIGN_KPIS) - set(catalog)) == []
    for category in Category:
        assert catalog.by_category(category), category


def test_every_kpi_is_complete(catalog: KpiCatalog) -> None:
    for kpi in catalog.values():
        assert kpi.description.endswith("."), kpi.id
        if kpi.unit == "ratio":
            assert (kpi.min, kpi.max) in {(0, 1)}, kpi.id
        assert kpi.id not in RESERVED_NAMES


def test_check_value(catalog: KpiCatalog) -> None:
    assert catalog["recall"].check_value(0.5) is None
    assert "outside the valid range [0, 1]" in (catalog["recall"].check_value(1.01) or "")
    assert "not a whole number" in (catalog["bias_incidents"].check_value(1.5) or "")
    assert "not a finite number" in (catalog["latency_p95_ms"].check_value(float("inf")) or "")
    assert catalog["uplift_vs_baseline"].check_value(-0.3) is None


def test_custom_kpis_extend_the_catalog(tmp_path: Path) -> None:
    path = tmp_path / "kpis.yaml"
    path.write_text("kpis:\n  - {id: claims_leakage, name: Claims leakage, category: business, unit: ratio,\n"
                    "     direction: lower, min: 0, max: 1, description: Share of paid claims that were not owed.}\n")
    catalog = load_catalog(path)
    assert catalog["claims_leakage"].direction == "lower"
    assert "recall" in catalog


@pytest.mark.parametrize(("entry", "code", "fragment"), [
    ("{id: recall, name: R, category: technical, unit: ratio, direction: higher, description: x.}",
     "kpi_redefined", "recall"),
    ("{id: segments, name: S, category: technical, unit: ratio, direction: higher, description: x.}",
     "catalog_schema", "reserved"),
    ("{id: x1, name: X, category: magic, unit: ratio, direction: higher, description: x.}",
     "catalog_schema", "category"),
    ("{id: x2, name: X, category: technical, unit: ratio, direction: up, description: x.}",
     "catalog_schema", "direction"),
    ("{id: x3, name: X, category: technical, unit: ratio, direction: higher, min: 2, max: 1, description: x.}",
     "catalog_schema", "greater than max"),
])
def test_bad_custom_kpis_are_located(tmp_path: Path, entry: str, code: str, fragment: str) -> None:
    path = tmp_path / "kpis.yaml"
    path.write_text(f"kpis:\n  - {entry}\n")
    with pytest.raises(CharterError) as info:
        load_catalog(path)
    assert info.value.code == code
    assert fragment in str(info.value)
    if code == "catalog_schema":
        assert info.value.location.file == str(path) and info.value.location.line == 2
