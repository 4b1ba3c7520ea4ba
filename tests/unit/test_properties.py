"""Property tests: evaluation never crashes and is deterministic; bad input always gives a located error.

CHARTER_HYPOTHESIS_EXAMPLES raises the number of examples for a longer local run.
"""

from __future__ import annotations

import datetime
import json
import math
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charter.bundle import EvidenceBundle
from charter.errors import CharterError
from charter.evaluate import evaluate_bundle, findings_json
from charter.frameworks import load_frameworks
from charter.kpis import Kpi, builtin_catalog
from charter.policy import PolicyCompiler, policy_files
from charter.registry import AISystem
from tests.conftest import REPO, write_yaml

CATALOG = builtin_catalog()
COMPILER = PolicyCompiler(CATALOG, load_frameworks())
SHIPPED = COMPILER.compile_files(policy_files(REPO / "policies")).policies
SETTINGS = settings(max_examples=int(os.environ.get("CHARTER_HYPOTHESIS_EXAMPLES", "150")), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def kpi_value(kpi: Kpi) -> st.SearchStrategy[float]:
    low = kpi.min if kpi.min is not None else -1e6
    high = kpi.max if kpi.max is not None else 1e6
    if kpi.integral:
        return st.integers(int(low), int(high)).map(float)
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


KPI_IDS = sorted(CATALOG)
kpi_maps = st.lists(st.sampled_from(KPI_IDS), min_size=1, max_size=12, unique=True).flatmap(
    lambda ids: st.fixed_dictionaries({i: kpi_value(CATALOG[i]) for i in ids}))
segment_keys = st.builds(lambda d, g: f"{d}:{g}", st.sampled_from(["region", "age", "gender"]),
                         st.sampled_from(["eu", "asia", "18-25", "26-40", "f", "m"]))
times = st.datetimes(datetime.datetime(2020, 1, 1), datetime.datetime(2030, 1, 1), timezones=st.just(datetime.UTC))


@st.composite
def valid_bundles(draw: st.DrawFn) -> EvidenceBundle:
    start = draw(times)
    end = start + datetime.timedelta(days=draw(st.integers(1, 90)))
    data = {"system_id": "sys", "model_version": "1", "window_start": start, "window_end": end,
            "measured_at": end + datetime.timedelta(hours=draw(st.integers(0, 48))), "kpis": draw(kpi_maps),
            "segments": draw(st.dictionaries(segment_keys, kpi_maps, max_size=4)), "submitter": "me"}
    return EvidenceBundle.from_data(data, CATALOG)


systems = st.builds(
    lambda tier, kind, tags, baseline: AISystem(id="sys", name="S", owner="o", risk_tier=tier, kind=kind,
                                                tags=tuple(tags), baseline=baseline),
    st.sampled_from(["minimal", "limited", "high"]), st.sampled_from(["classifier", "generative", "agent"]),
    st.lists(st.sampled_from(["affects-people", "multi-region", "payments"]), unique=True),
    st.fixed_dictionaries({}, optional={"recall": st.floats(0, 1), "approval_rate": st.floats(0, 1)}))


@SETTINGS
@given(system=systems, bundle=valid_bundles(), earlier=st.lists(valid_bundles(), max_size=3),
       offset=st.integers(-10, 200))
def test_valid_bundles_never_crash_and_evaluate_deterministically(
        system: AISystem, bundle: EvidenceBundle, earlier: list[EvidenceBundle], offset: int) -> None:
    at = bundle.measured_at + datetime.timedelta(days=offset)
    first = evaluate_bundle(system, bundle, SHIPPED, at, earlier)
    second = evaluate_bundle(system, bundle, SHIPPED, at, list(reversed(earlier)))
    assert findings_json(first) == findings_json(second)
    for finding in first:
        assert finding.explanation
        assert all(v is None or isinstance(v, str) or math.isfinite(v) for v in finding.observed.values())


json_junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)


@st.composite
def mutated_bundle_texts(draw: st.DrawFn) -> str:
    data: dict[str, Any] = json.loads((REPO / "evidence" / "claims-approval-2026-05.json").read_text())
    for _ in range(draw(st.integers(1, 3))):
        target = draw(st.sampled_from(["top", "kpis", "segments"]))
        container: Any = data if target == "top" else data.get(target)
        if not isinstance(container, dict):
            container = data
        key = draw(st.sampled_from([*container.keys(), "extra"]) if container else st.just("x"))
        if draw(st.booleans()) and key in container:
            del container[key]
        else:
            container[key] = draw(json_junk)
    text = json.dumps(data, allow_nan=True)
    if draw(st.booleans()):
        text = text.replace("0.61", draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", '"0.61"'])), 1)
    if draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]
    return text


@SETTINGS
@given(text=mutated_bundle_texts())
def test_invalid_bundles_give_a_located_charter_error(text: str) -> None:
    try:
        EvidenceBundle.from_json(text, CATALOG, file="bundle.json")
    except CharterError as exc:
        for diagnostic in exc.diagnostics:
            assert diagnostic.location.file == "bundle.json"
            assert diagnostic.location.path or diagnostic.location.line, diagnostic


expression_atoms = st.sampled_from(["recall", "precision", "0.5", "'x'", "baseline.recall", "previous.f1",
                                    "$now", "$random()", "system.tags", "bundle.window_end", "peers.recall",
                                    "segments['a:b']['recall']", "recal", "t\"P1D\"", "null", "true", "[1, 2]"])
expression_ops = st.sampled_from([" < ", " > ", " == ", " and ", " or ", " + ", " / ", " in ", " =~ ", " ?? "])
expressions = st.builds(lambda a, o, b, p, q: f"{a}{o}{b}{p}{q}", expression_atoms, expression_ops,
                        expression_atoms, st.sampled_from(["", " < 1", ")", " and not recall"]),
                        st.sampled_from(["", "(", " #c"]))
rule_fields = st.fixed_dictionaries({"id": st.sampled_from(["r", "R!", "r-2"]), "title": st.just("t"),
                                     "severity": st.sampled_from(["high", "loud"])},
                                    optional={"when": expressions, "kpi": st.sampled_from(["recall", "nope"]),
                                              "min": st.floats(-1, 2) | st.text(max_size=3),
                                              "warn": st.floats(-1, 2), "scope": st.sampled_from(["segments", "x"]),
                                              "sustained": st.integers(-1, 3),
                                              "max_age": st.sampled_from(["P1D", "1d"]),
                                              "controls": st.lists(st.sampled_from(
                                                  ["iso-42001:A.6.2.6", "iso-42001:Z", "bad"]), max_size=2)})


@SETTINGS
@given(rules=st.lists(rule_fields, min_size=0, max_size=3), extra=st.dictionaries(st.sampled_from(
    ["applies_to", "max_age", "zzz"]), json_junk, max_size=1))
def test_random_policies_compile_or_give_located_errors(tmp_path_factory: Any, rules: list[dict[str, Any]],
                                                          extra: dict[str, Any]) -> None:
    path = write_yaml(tmp_path_factory.mktemp("p") / "p.yaml",
                      {"id": "p", "version": "1.0.0", "title": "t", "owner": "o", "rules": rules, **extra})
    try:
        COMPILER.compile_files([path])
    except CharterError as exc:
        for diagnostic in exc.diagnostics:
            assert diagnostic.location.file == str(path)
            assert diagnostic.location.line is not None, diagnostic
