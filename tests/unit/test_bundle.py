"""Evidence bundles: strict validation with JSON paths, and the canonical form."""

from __future__ import annotations

import json
from typing import Any

import pytest

from charter.bundle import EvidenceBundle
from charter.errors import CharterError
from charter.kpis import KpiCatalog


def _bundle(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "system_id": "fraud-detector", "model_version": "4.2.0", "window_start": "2026-01-01T00:00:00Z",
        "window_end": "2026-02-01T00:00:00Z", "measured_at": "2026-02-02T00:00:00+01:00",
        "kpis": {"recall": 0.9, "precision": 0.8, "bias_incidents": 2},
        "segments": {"region:eu": {"recall": 0.91}}, "submitter": "maria.keller",
        "artifacts": [{"name": "report.html", "sha256": "a" * 64, "uri": "s3://bucket/report.html"}],
    }
    data.update(changes)
    return data


def _errors(catalog: KpiCatalog, data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(CharterError) as info:
        EvidenceBundle.from_json(json.dumps(data), catalog, file="b.json")
    return {d.location.path or "": d.code for d in info.value.diagnostics}


def test_valid_bundle_is_frozen_and_canonical(catalog: KpiCatalog) -> None:
    bundle = EvidenceBundle.from_json(json.dumps(_bundle()), catalog)
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises ValidationError on frozen models
        bundle.system_id = "other"  # type: ignore[misc]
    shuffled = json.dumps(dict(reversed(list(_bundle().items()))))
    assert EvidenceBundle.from_json(shuffled, catalog).canonical_bytes() == bundle.canonical_bytes()
    assert len(bundle.digest()) == 64
    assert bundle.segment_dimensions() == ["region"]


def test_signature_is_not_part_of_the_signed_bytes(catalog: KpiCatalog) -> None:
    unsigned = EvidenceBundle.from_json(json.dumps(_bundle()), catalog)
    signed = EvidenceBundle.from_json(json.dumps(_bundle(signature={"key_id": "k1", "value": "AAAA"})), catalog)
    assert signed.canonical_bytes() == unsigned.canonical_bytes()


def test_all_problems_are_reported_with_their_paths(catalog: KpiCatalog) -> None:
    errors = _errors(catalog, _bundle(
        kpis={"recall": 1.2, "recal": 0.3, "precision": "high", "bias_incidents": 1.5, "accuracy": True},
        segments={"Asia": {"recall": 0.5}, "region:asia": {"toxicity": 0.1}},
        extra_field=1))
    assert errors == {
        "$.kpis.recall": "kpi_out_of_range",
        "$.kpis.recal": "unknown_kpi",
        "$.kpis.precision": "bundle_schema",
        "$.kpis.bias_incidents": "kpi_out_of_range",
        "$.kpis.accuracy": "bundle_schema",
        "$.segments.Asia": "bundle_schema",
        '$.segments["region:asia"].toxicity': "unknown_kpi",
        "$.extra_field": "bundle_schema",
    }


@pytest.mark.parametrize(("changes", "path"), [
    ({"window_end": "2025-12-01T00:00:00Z"}, "$.window_end"),
    ({"measured_at": "2026-01-15T00:00:00Z"}, "$.measured_at"),
    ({"window_start": "2026-01-01T00:00:00"}, "$.window_start"),
    ({"kpis": {}}, "$.kpis"),
    ({"system_id": "Fraud Detector"}, "$.system_id"),
    ({"artifacts": [{"name": "r", "sha256": "XYZ", "uri": "u"}]}, "$.artifacts[0].sha256"),
])
def test_schema_problems_are_located(catalog: KpiCatalog, changes: dict[str, Any], path: str) -> None:
    assert path in _errors(catalog, _bundle(**changes))


def test_missing_required_fields(catalog: KpiCatalog) -> None:
    data = _bundle()
    del data["submitter"]
    assert _errors(catalog, data) == {"$.submitter": "bundle_schema"}


def test_custom_kpis_are_accepted_once_declared(catalog: KpiCatalog, tmp_path: Any) -> None:
    from charter.kpis import load_catalog

    path = tmp_path / "kpis.yaml"
    path.write_text("kpis:\n  - {id: claims_leakage, name: L, category: business, unit: ratio, direction: lower,"
                    " min: 0, max: 1, description: d.}\n")
    data = _bundle(kpis={"claims_leakage": 0.02})
    assert "$.kpis.claims_leakage" in _errors(catalog, data)
    assert EvidenceBundle.from_json(json.dumps(data), load_catalog(path)).kpis == {"claims_leakage": 0.02}


@pytest.mark.parametrize("changes", [
    {}, {"kpis": {"recall": 1.0, "precision": 1e-7, "bias_incidents": 0}, "segments": {}},
    {"submitter": "é\u2014\U0001f600",
     "segments": {"region:\uffff": {"recall": 0.5}, "region:\U0001f600": {"recall": 0.25}}},
])
def test_canonical_bytes_are_the_reference_rfc8785_bytes(catalog: KpiCatalog, changes: dict[str, Any]) -> None:
    import rfc8785

    bundle = EvidenceBundle.from_json(json.dumps(_bundle(**changes)), catalog)
    assert bundle.canonical_bytes() == rfc8785.dumps(bundle.unsigned_dict())
