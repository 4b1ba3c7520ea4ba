"""Custom KPIs are recorded with the policy set they serve: bundles are read with them, not a caller's catalog.

An activation records the approver's custom KPI catalog (normalized definitions and their digest).
Later activations may add custom KPIs but never change or drop one, because bundles already judged
were read with those definitions. Refused at the command (nothing written); named by `verify` when
forced in by an insider holding the log key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from charter.authority import activate_policies, active_catalog, reading_catalog, recorded_custom_kpis
from charter.errors import CharterError
from charter.ledger import verify_ledger
from charter.ledger.auditor import POLICY_ACTIVATED, custom_kpis_of
from charter.submission import prepare_bundle, submit_bundle
from tests.conftest import REPO
from tests.unit.ledger.helpers import Populated, key_of, populate, unchecked

APPROVER = "omar.haddad"
HOUSE = {"id": "house_metric", "name": "House metric", "category": "technical", "unit": "ratio",
         "direction": "higher", "min": 0, "max": 1, "description": "A metric of our own."}


def catalog_document(*definitions: dict[str, Any]) -> dict[str, Any]:
    """A custom catalog in the normalized form `charter policy activate` records."""
    from charter.kpis import Kpi

    return {"kpis": [Kpi.model_validate(d).model_dump(mode="json") for d in definitions]}


@pytest.fixture
def world(db_url: str) -> Populated:
    return populate(db_url, bundles=0)


def _digests(world: Populated) -> list[str]:
    return list(world.ledger.authority().active_policies)


def _activate(world: Populated, kpis: dict[str, Any] | None) -> Any:
    return activate_policies(world.ledger, _digests(world), key_of(APPROVER), kpis)


def _refused(world: Populated, code: str, kpis: dict[str, Any] | None) -> None:
    size = world.ledger.size()
    with pytest.raises(CharterError) as info:
        _activate(world, kpis)
    assert info.value.code == code, str(info.value)
    assert world.ledger.size() == size
    assert verify_ledger(world.ledger, world.log_key.public).ok


def _bundle_with_house_metric(value: float) -> bytes:
    data = json.loads((REPO / "evidence" / "claims-approval-2026-05.json").read_text())
    data["kpis"]["house_metric"] = value
    return json.dumps(data).encode()


def test_an_activation_records_the_catalog_and_bundles_are_read_with_it(world: Populated) -> None:
    assert "house_metric" not in active_catalog(world.ledger)
    with pytest.raises(CharterError, match="house_metric"):
        prepare_bundle(_bundle_with_house_metric(0.7), active_catalog(world.ledger), key=key_of("tom.berger"))
    entry = _activate(world, catalog_document(HOUSE))
    assert entry is not None and custom_kpis_of(entry.payload) == {"house_metric": catalog_document(HOUSE)["kpis"][0]}
    catalog = active_catalog(world.ledger)
    assert catalog["house_metric"].max == 1
    result = submit_bundle(world.ledger, prepare_bundle(_bundle_with_house_metric(0.7), catalog,
                                                        key=key_of("tom.berger")), catalog)
    assert result.bundle_entry.seq > entry.seq
    # Out of the recorded range: refused with the ledger's definition, whatever a caller's file says.
    with pytest.raises(CharterError, match=r"outside the valid range \[0, 1\]"):
        prepare_bundle(_bundle_with_house_metric(7.0), active_catalog(world.ledger), key=key_of("tom.berger"))
    # The same set and catalog again: nothing to record.
    assert _activate(world, catalog_document(HOUSE)) is None
    assert verify_ledger(world.ledger, world.log_key.public, resume=False).ok


def test_custom_kpis_are_only_added(world: Populated) -> None:
    _activate(world, catalog_document(HOUSE))
    _refused(world, "custom_kpi_changed", catalog_document({**HOUSE, "max": 10}))  # widened
    _refused(world, "custom_kpi_changed", None)  # dropped with the file
    _refused(world, "custom_kpi_changed", catalog_document({**HOUSE, "id": "other_metric"}))  # renamed
    grown = _activate(world, catalog_document(HOUSE, {**HOUSE, "id": "second_metric", "max": 100, "unit": "count"}))
    assert grown is not None and set(active_catalog(world.ledger)) >= {"house_metric", "second_metric"}
    # Before the activation that added it, the second KPI was not in force.
    assert "second_metric" not in active_catalog(world.ledger, grown.seq)


@pytest.mark.parametrize(("definition", "phrase"), [
    ({**HOUSE, "id": "recall"}, "redefines a built-in KPI"),
    ({**HOUSE, "min": 5, "max": 1}, "greater than max"),
    ({k: v for k, v in HOUSE.items() if k != "direction"}, "direction"),
])
def test_an_invalid_catalog_is_refused_before_anything_is_written(world: Populated, definition: dict[str, Any],
                                                                   phrase: str) -> None:
    size = world.ledger.size()
    with pytest.raises(CharterError, match=phrase):
        _activate(world, {"kpis": [definition]})
    assert world.ledger.size() == size


@pytest.mark.parametrize("forged", [
    lambda payload: payload.pop("kpis"),  # dropped
    lambda payload: payload["kpis"]["document"]["kpis"][0].update(max=10),  # changed, digest now wrong
    lambda payload: payload.update(kpis={"digest": "00" * 32, "document": {"kpis": []}}),
    lambda payload: payload.update(kpis=["not", "an", "object"]),
])
def test_a_forced_change_of_a_recorded_kpi_is_named_by_verify(world: Populated, forged: Any) -> None:
    import charter.authority

    _activate(world, catalog_document(HOUSE))
    original = charter.authority.activation_statement

    def tampered(*args: Any, **kwargs: Any) -> dict[str, Any]:
        statement = original(*args, **kwargs)
        statement.setdefault("kpis", {"digest": "", "document": catalog_document(HOUSE)})
        forged(statement)
        return statement

    charter.authority.activation_statement = tampered  # type: ignore[assignment]
    try:
        with unchecked():
            entry = activate_policies(world.ledger, _digests(world), key_of(APPROVER),
                                      catalog_document(HOUSE, {**HOUSE, "id": "x_metric"}))
    finally:
        charter.authority.activation_statement = original  # type: ignore[assignment]
    assert entry is not None
    report = verify_ledger(world.ledger, world.log_key.public, resume=False)
    first = min(report.problems, key=lambda p: (p.seq is None, p.seq or 0))
    assert (first.seq, first.kind) in {(entry.seq, "custom_kpi_changed"), (entry.seq, "malformed_body")}, report


def test_reports_and_audits_read_the_recorded_catalog(world: Populated, tmp_path: Path) -> None:
    import yaml

    _activate(world, catalog_document(HOUSE))
    recorded = world.ledger.authority().custom_kpis
    assert recorded_custom_kpis(world.ledger) == recorded  # the scan an audit of an export makes
    assert "house_metric" in reading_catalog(recorded, None, "test")
    same = tmp_path / "same.yaml"
    same.write_text(yaml.safe_dump({"kpis": [HOUSE]}))
    assert "house_metric" in reading_catalog(recorded, same, "test")
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"kpis": [{**HOUSE, "max": 2}]}))
    with pytest.raises(CharterError) as info:
        reading_catalog(recorded, other, "test")
    assert info.value.code == "kpis_not_active" and info.value.diagnostics[0].location.file == str(other)
    # A ledger that recorded no custom KPI (activated before they were recorded) reads them from the file.
    assert "house_metric" in reading_catalog({}, other, "test")
    assert [e.type for e in world.ledger.entries(types=(POLICY_ACTIVATED,))][-1] == POLICY_ACTIVATED
