"""Custom KPIs at the command line: `policy activate` records the folder's kpis.yaml; submit, report and
replay read the ledger's; a folder with other definitions is refused (exit 2, nothing written)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.governed import governed_cli, governed_ledger, ledger_size

cli, size = governed_cli, ledger_size
HOUSE = {"id": "house_metric", "name": "House metric", "category": "technical", "unit": "ratio",
         "direction": "higher", "min": 0, "max": 1, "description": "A metric of our own."}


@pytest.fixture(scope="module")
def governed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("custom-kpis")
    governed_ledger(directory)
    shutil.copytree(REPO / "policies", directory / "house")
    (directory / "house" / "kpis.yaml").write_text(yaml.safe_dump({"kpis": [HOUSE]}))
    code, out, err = cli(directory, "policy", "activate", "--policies", "house", "--key",
                         ".charter/keys/omar.haddad.key")
    assert code == 0 and "with 1 custom KPIs" in out, (out, err)
    bundle = json.loads((REPO / "evidence" / "claims-approval-2026-05.json").read_text())
    bundle["kpis"]["house_metric"] = 0.7
    (directory / "house-bundle.json").write_text(json.dumps(bundle))
    return directory


def test_submit_reads_the_recorded_catalog_without_a_folder(governed: Path) -> None:
    at = json.loads((governed / "house-bundle.json").read_text())["measured_at"]
    code, out, err = cli(governed, "submit", "house-bundle.json", "--key", ".charter/keys/tom.berger.key", "--at", at)
    assert code in (0, 1) and "receipt: seq" in out, (out, err)


def test_a_folder_with_other_definitions_is_refused(governed: Path) -> None:
    widened = governed / "widened"
    shutil.copytree(governed / "house", widened)
    (widened / "kpis.yaml").write_text(yaml.safe_dump({"kpis": [{**HOUSE, "max": 100}]}))
    before = size(governed)
    code, _, err = cli(governed, "submit", "house-bundle.json", "--key", ".charter/keys/tom.berger.key",
                       "--policies", "widened")
    assert code == 2 and "kpis_not_active" in err and "widened/kpis.yaml" in err
    code, _, err = cli(governed, "policy", "activate", "--policies", "widened", "--key",
                       ".charter/keys/omar.haddad.key")
    assert code == 2 and "custom_kpi_changed" in err and "house_metric" in err
    (widened / "kpis.yaml").unlink()  # dropping the catalog is a change too
    code, _, err = cli(governed, "policy", "activate", "--policies", "widened", "--key",
                       ".charter/keys/omar.haddad.key")
    assert code == 2 and "custom_kpi_changed" in err
    assert size(governed) == before


def test_the_service_takes_no_kpi_file(governed: Path) -> None:
    from charter.api.service import Service
    from charter.api.settings import ServiceSettings
    from charter.errors import CharterError

    settings = ServiceSettings(database_url=f"sqlite:///{governed / '.charter' / 'ledger.db'}",
                               ledger_key=governed / ".charter" / "ledger.key", kpis=governed / "house" / "kpis.yaml")
    with pytest.raises(CharterError) as info:
        Service(settings)
    assert info.value.code == "kpis_not_active"
    service = Service(settings.model_copy(update={"kpis": None}))
    assert "house_metric" in service.catalog and service.compiler is service.compiler


def test_a_baseline_may_name_a_recorded_custom_kpi(governed: Path) -> None:
    """Registration reads the catalog in force: the recorded custom KPI is accepted in a baseline, from any
    folder, and its recorded range still applies."""
    systems = (REPO / "evidence" / "systems.yaml").read_text()
    marker = "baseline: {recall: 0.91,"
    assert marker in systems
    (governed / "house-systems.yaml").write_text(systems.replace(marker, "baseline: {house_metric: 0.6, recall: 0.91,"))
    code, out, err = cli(governed, "systems", "register", "house-systems.yaml", "--key", ".charter/keys/ben.okafor.key")
    assert code == 0 and "fraud-detector: registered at seq" in out, (out, err)
    (governed / "house-too-big.yaml").write_text(systems.replace(marker, "baseline: {house_metric: 7, recall: 0.91,"))
    before = size(governed)
    code, _, err = cli(governed, "systems", "register", "house-too-big.yaml", "--key", ".charter/keys/ben.okafor.key")
    assert code == 2 and "kpi_out_of_range" in err and size(governed) == before
