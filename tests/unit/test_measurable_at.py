"""Late labels: a breach becomes measurable when label coverage sufficed, and MTTD runs from then."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from charter.incidents import load_book
from charter.ledger import Ledger
from charter.submission import submit_bundle
from tests.governed import governed_ledger
from tests.unit.ledger.helpers import CATALOG

UTC = datetime.UTC


def _bundle(window_end: datetime.datetime, sufficient: datetime.datetime | None) -> dict[str, Any]:
    start = (window_end - datetime.timedelta(days=1)).replace(day=1)
    provenance = {
        "generator": "charter test", "source": "logs", "rows": 1000, "computed": ["recall"],
        "inputs": [{"role": "current", "uri": "logs/p.parquet", "digest_of": "file", "sha256": "a" * 64}],
        "mapping": {"uri": "mapping.yaml", "sha256": "b" * 64},
        "label_coverage": 0.95, "min_label_coverage": 0.9,
        "labels_sufficient_at": sufficient.isoformat() if sufficient else None,
    }
    return {"system_id": "fraud-detector", "model_version": "4.2.0", "window_start": start.isoformat(),
            "window_end": window_end.isoformat(), "measured_at": (window_end + datetime.timedelta(days=9)).isoformat(),
            "kpis": {"recall": 0.5}, "submitter": "maria.keller", "provenance": provenance}


def _submit(tmp_path: Path, sufficient_after: datetime.timedelta | None) -> tuple[Ledger, Any]:
    from charter.ledger import SigningKey

    ledger = governed_ledger(tmp_path)
    key = SigningKey.load(tmp_path / ".charter" / "keys" / "maria.keller.key")
    now = datetime.datetime.now(UTC)
    window_end = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if (now - window_end) < datetime.timedelta(days=10):  # keep measured_at in the past
        window_end = (window_end - datetime.timedelta(days=1)).replace(day=1)
    sufficient = window_end + sufficient_after if sufficient_after is not None else None
    result = submit_bundle(ledger, json.dumps(_bundle(window_end, sufficient)), CATALOG, key=key)
    return ledger, (result, window_end, sufficient)


def test_a_late_labelled_breach_is_measurable_from_when_labels_sufficed(tmp_path: Path) -> None:
    ledger, (result, window_end, sufficient) = _submit(tmp_path, datetime.timedelta(days=6))
    [recall] = [f for f in result.findings if f.rule == "recall-floor"]
    assert recall.status.value == "breach"
    assert recall.measurable_at == sufficient
    assert recall.model_dump(mode="json")["measurable_at"] == sufficient.isoformat().replace("+00:00", "Z")
    [incident] = [i for i in load_book(ledger).incidents.values() if i.rule == "core.performance/recall-floor"]
    assert datetime.datetime.fromisoformat(incident.onset_at) == sufficient > window_end


def test_labels_in_time_leave_the_window_end_as_onset_and_the_payload_unchanged(tmp_path: Path) -> None:
    ledger, (result, window_end, _) = _submit(tmp_path, None)
    [recall] = [f for f in result.findings if f.rule == "recall-floor"]
    assert recall.measurable_at is None
    assert "measurable_at" not in recall.model_dump(mode="json")  # findings recorded before ingest hash as before
    [incident] = [i for i in load_book(ledger).incidents.values() if i.rule == "core.performance/recall-floor"]
    assert datetime.datetime.fromisoformat(incident.onset_at) == window_end
