"""POST /v1/reports: the report's files and its report.issued entries land together or not at all."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from charter.api.problems import PROBLEM_MEDIA_TYPE
from charter.ledger import Ledger, make_checkpoint
from charter.report import REPORT_ISSUED
from charter.tokens import create_token
from tests.api.conftest import serve
from tests.unit.ledger.helpers import key_of, populate


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[TestClient, Ledger, dict[str, str], Path]]:
    """A service whose report store is `tmp_path/reports`, and an administrator's headers."""
    populated = populate(f"sqlite:///{tmp_path / 'ledger.db'}", bundles=0)
    ledger = populated.ledger
    token = create_token(ledger, "ana.costa", ["read", "act"], ledger.clock() + datetime.timedelta(days=30),
                         key_of("ana.costa"))[1]
    make_checkpoint(ledger)
    with serve(populated, tmp_path) as client:
        yield client, ledger, {"Authorization": f"Bearer {token}"}, tmp_path / "reports"
    ledger.engine.dispose()


def _issued(ledger: Ledger) -> int:
    return sum(1 for _ in ledger.entries(types=[REPORT_ISSUED]))


def test_a_report_that_cannot_be_stored_is_not_issued_and_a_retry_issues_it_once(
        world: tuple[TestClient, Ledger, dict[str, str], Path]) -> None:
    client, ledger, headers, reports = world
    reports.write_text("not a directory", encoding="utf-8")
    spec = {"framework": "iso-42001", "formats": ["md", "json"]}
    response = client.post("/v1/reports", json=spec, headers={**headers, "Idempotency-Key": "report-1"})
    assert response.status_code == 507, response.text
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    assert response.json()["type"] == "tag:charter,2026:problem:write_failed"
    assert _issued(ledger) == 0  # no entry for a file that is not there
    reports.unlink()
    retried = client.post("/v1/reports", json=spec, headers={**headers, "Idempotency-Key": "report-1"})
    assert retried.status_code == 201, retried.text
    assert _issued(ledger) == 2
    for item in retried.json():
        download = client.get(item["download"], headers=headers)
        assert download.status_code == 200 and len(download.content) > 0


def test_report_file_names_are_in_utc_whatever_zone_at_is_given_in(
        world: tuple[TestClient, Ledger, dict[str, str], Path]) -> None:
    client, ledger, headers, _ = world
    at = ledger.clock().replace(microsecond=0).astimezone(datetime.timezone(datetime.timedelta(hours=5)))
    response = client.post("/v1/reports", json={"framework": "iso-42001", "formats": ["md"],
                                                "at": at.isoformat()}, headers=headers)
    assert response.status_code == 201, response.text
    utc = at.astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    assert response.json()[0]["name"] == f"iso-42001-portfolio-{utc}.md"
