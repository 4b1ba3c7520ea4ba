"""Hostile sizes (issue 11, items 6 and 13): evaluation, validation and escalation stay linear, and
evaluation holds no write lock.

No test here times anything: each counts the work that made the old code quadratic, or compares
the fast path with its definition bit for bit.
"""

from __future__ import annotations

import datetime
import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charter import evaluate as evaluate_module
from charter import submission
from charter.bundle import MAX_KPI_PROBLEMS, MAX_SEGMENTS, EvidenceBundle
from charter.errors import CharterError
from charter.escalation import load_escalation
from charter.evaluate import _BundleDerived, evaluate_bundle
from charter.kpis import builtin_catalog
from charter.ledger import Ledger, NewEntry
from charter.submission import register_system, submit_bundle
from tests.conftest import REPO
from tests.unit.ledger.helpers import POLICIES, REGISTRY, key_of, populate

CATALOG = builtin_catalog()
CLAIMS = REPO / "evidence" / "claims-approval-2026-05.json"


def _claims(segments: int) -> dict[str, object]:
    data = json.loads(CLAIMS.read_text())
    data["segments"] = {f"age:g{i}": {"approval_rate": 0.6 + (i % 50) / 250} for i in range(segments)}
    return data


def peers_reference(segments: dict[str, dict[str, float]], segment: str) -> dict[str, float]:
    """The definition of ``peers``: per KPI, ``math.fsum(v / n for v in others)`` over the dimension's other groups."""
    dimension = segment.split(":", 1)[0]
    totals: dict[str, list[float]] = {}
    for key, values in segments.items():
        if key != segment and key.split(":", 1)[0] == dimension:
            for kpi_id, value in values.items():
                totals.setdefault(kpi_id, []).append(value)
    return {kpi_id: math.fsum(v / len(vs) for v in vs) for kpi_id, vs in sorted(totals.items())}


_values = st.floats(allow_nan=False, allow_infinity=False, min_value=-1.7e308, max_value=1.7e308) | \
    st.floats(min_value=0, max_value=1) | st.sampled_from([0.1, 0.2, 0.3, 1e-320, 5e-324, 1.7976931348623157e308])


@settings(max_examples=int(os.environ.get("CHARTER_PEER_EXAMPLES", "300")), deadline=None)
@given(st.dictionaries(st.sampled_from([f"{d}:{g}" for d in ("age", "region") for g in "abcdefgh"]),
                       st.dictionaries(st.sampled_from(["approval_rate", "recall", "f1"]), _values, max_size=3),
                       min_size=1, max_size=16))
def test_peer_means_equal_their_definition_to_the_bit(segments: dict[str, dict[str, float]]) -> None:
    class _Bundle:  # only .segments is read
        pass

    bundle = _Bundle()
    bundle.segments = segments  # type: ignore[attr-defined]
    bundle.digest = lambda: "x"  # type: ignore[attr-defined]
    derived = _BundleDerived(bundle)  # type: ignore[arg-type]
    for key in segments:
        try:
            expected = peers_reference(segments, key)
        except OverflowError:
            continue
        got = derived.peers(key)
        assert list(got) == list(expected)
        assert all(math.copysign(1, a) == math.copysign(1, b) and (a == b) for a, b in
                   zip(got.values(), expected.values(), strict=True)), (key, got, expected)


def test_a_bundle_is_serialized_once_however_many_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = EvidenceBundle.from_data(_claims(300), CATALOG)
    calls = []
    original = EvidenceBundle.canonical_bytes
    monkeypatch.setattr(EvidenceBundle, "canonical_bytes", lambda self: calls.append(1) or original(self))
    findings = evaluate_bundle(REGISTRY["claims-approval"], bundle, POLICIES.policies, bundle.measured_at, [])
    assert sum(1 for f in findings if f.segment) >= 300
    assert len(calls) <= 1  # was once per finding: O(segments) each, O(segments^2) in all
    assert {f.status.value for f in findings if f.segment} - {"missing"}  # the segments were really judged


def test_segment_and_kpi_counts_are_capped_with_located_errors() -> None:
    with pytest.raises(CharterError) as info:
        EvidenceBundle.from_json(json.dumps(_claims(MAX_SEGMENTS + 1)), CATALOG, file="b.json")
    assert info.value.diagnostics[0].location.path == "$.segments" and info.value.location.line is not None
    data = json.loads(CLAIMS.read_text())
    data["kpis"].update({f"custom_{i}": 0.5 for i in range(900)})
    with pytest.raises(CharterError) as info:
        EvidenceBundle.from_data(data, CATALOG, file="b.json")
    assert len(info.value.diagnostics) == MAX_KPI_PROBLEMS + 1
    assert info.value.diagnostics[-1].code == "too_many_problems" or any(
        d.code == "too_many_problems" for d in info.value.diagnostics)


def _chain(count: int) -> str:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_scale", REPO / "bench" / "scale.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.chain_escalation(count))


def test_escalation_validation_builds_each_view_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import networkx as nx

    path = tmp_path / "escalation.yaml"
    path.write_text(_chain(300))
    built = []
    original = nx.DiGraph.add_nodes_from
    monkeypatch.setattr(nx.DiGraph, "add_nodes_from", lambda self, *a, **k: built.append(1) or original(self, *a, **k))
    graph = load_escalation(path)
    assert len(graph.config.roles) == 300
    assert len(built) <= 5 * 4 + 2  # one view per severity and tier at most, not one per edge


def _submit_while_another_writer_acts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      meanwhile: Callable[[Ledger], object]) -> tuple[list[object], object, Ledger]:
    """Submit the claims bundle; during its first evaluation, another writer runs `meanwhile`."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    populated = populate(url, bundles=0)
    other = Ledger.open(url, log_key=populated.log_key)
    evaluated_systems: list[object] = []
    original = submission.evaluate_bundle

    def evaluate(system: object, *args: object, **kwargs: object) -> object:
        evaluated_systems.append(system)
        if len(evaluated_systems) == 1:
            meanwhile(other)  # needs the write lock: it would time out if evaluation held it
        return original(system, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(submission, "evaluate_bundle", evaluate)
    at = datetime.datetime.fromisoformat(json.loads(CLAIMS.read_text())["measured_at"].replace("Z", "+00:00"))
    result = submit_bundle(populated.ledger, CLAIMS.read_bytes(), CATALOG, key=populated.owner_keys["tom.berger"],
                           at=at)
    return evaluated_systems, result, other


def test_evaluation_runs_outside_the_write_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer appends while a bundle is being evaluated; the submission lands all the same."""
    evaluated, result, other = _submit_while_another_writer_acts(
        tmp_path, monkeypatch, lambda ledger: ledger.append([NewEntry("note", {"during": "evaluation"}, "note:x")]))
    assert len(evaluated) == 1  # the note changes nothing the bundle is judged by: no second evaluation
    assert result.bundle_entry.seq > other.by_submission("note:x").seq  # type: ignore[attr-defined,union-attr]


def test_a_registration_during_evaluation_is_judged_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    changed = REGISTRY["claims-approval"].model_copy(update={"tags": ("retagged",)})
    evaluated, _, _ = _submit_while_another_writer_acts(tmp_path, monkeypatch,
                                                        lambda ledger: register_system(ledger, changed,
                                                                                       key_of("ben.okafor")))
    assert len(evaluated) == 2 and evaluated[1].tags == ("retagged",)  # type: ignore[attr-defined]


def test_evaluate_module_keeps_a_bounded_cache() -> None:
    for _ in range(evaluate_module._DERIVED_KEEP * 3):
        evaluate_module._derived(EvidenceBundle.from_data(_claims(2), CATALOG))
    assert len(evaluate_module._DERIVED) <= evaluate_module._DERIVED_KEEP


def test_peer_means_of_values_near_the_float_maximum_neither_crash_nor_go_quadratic() -> None:
    """Where summing the other groups' shares overflows a float, `peers` still gives their exact mean."""
    data = _claims(50)
    for values in data["segments"].values():  # type: ignore[attr-defined]
        values["roi"] = 1.7976931348623157e308
    bundle = EvidenceBundle.from_data(data, CATALOG)
    derived = _BundleDerived(bundle)
    for key in list(bundle.segments)[:3]:
        assert derived.peers(key)["roi"] == 1.7976931348623157e308
    findings = evaluate_bundle(REGISTRY["claims-approval"], bundle, POLICIES.policies, bundle.measured_at, [])
    assert findings and all(f.status.value != "error" or "overflow" not in f.explanation for f in findings)
