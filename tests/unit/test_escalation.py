"""The escalation graph: the reference's failure modes, plans, rendering, and random graphs."""

from __future__ import annotations

import copy
import datetime
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from charter._sources import SourceMap
from charter.errors import CharterError
from charter.escalation import load_escalation, parse_escalation
from charter.policy.model import Severity
from charter.registry import RiskTier
from tests.conftest import REPO, write_yaml

BASE: dict[str, Any] = yaml.safe_load((REPO / "policies" / "escalation.yaml").read_text())


def _codes(tmp_path: Path, document: dict[str, Any]) -> list[str]:
    path = write_yaml(tmp_path / "escalation.yaml", document)
    with pytest.raises(CharterError) as info:
        load_escalation(path)
    return [d.code for d in info.value.diagnostics]


def _edit(**changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        target = document
        *parents, last = dotted.split("__")
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return document


def test_shipped_graph_is_valid() -> None:
    graph = load_escalation(REPO / "policies" / "escalation.yaml")
    assert graph.check() == []
    assert nx.is_directed_acyclic_graph(graph.graph)


def test_f1_cycle_names_the_path(tmp_path: Path) -> None:
    document = copy.deepcopy(BASE)
    document["edges"].append({"from": "governance_committee", "to": "model_owner", "severities": ["high"],
                              "timeout": "P1D"})
    path = write_yaml(tmp_path / "escalation.yaml", document)
    with pytest.raises(CharterError) as info:
        load_escalation(path)
    cycle = next(d for d in info.value.diagnostics if d.code == "escalation_cycle")
    assert "model_owner -> risk_compliance -> governance_committee -> model_owner" in cycle.message


def test_f2_severity_whose_decider_is_never_paged(tmp_path: Path) -> None:
    document = _edit(edges__1__severities=["critical"])  # risk_compliance -> committee only for critical now
    assert "unreachable_decider" in _codes(tmp_path, document)


def test_f2b_stage_bands_must_cover_each_severity_once(tmp_path: Path) -> None:
    gap = _edit(stages__1__severities=["medium", "low"])
    assert _codes(tmp_path, gap) == ["stage_coverage"]
    overlap = _edit(stages__1__severities=["high", "medium", "low", "info"])
    assert _codes(tmp_path, overlap) == ["stage_coverage"]


def test_f2c_two_accountable_roles_are_refused(tmp_path: Path) -> None:
    document = _edit(stages__0__decide={"responsible": ["governance_committee"],
                                        "accountable": ["governance_committee", "executive"]})
    assert _codes(tmp_path, document) == ["escalation_schema"]


def test_f3_role_without_members(tmp_path: Path) -> None:
    document = copy.deepcopy(BASE)
    document["roles"]["risk_compliance"]["members"] = []
    assert _codes(tmp_path, document) == ["empty_role"]


def test_unreachable_role(tmp_path: Path) -> None:
    document = copy.deepcopy(BASE)
    document["roles"]["internal_audit"] = {"title": "Audit", "members": ["mallory"], "authority": 2}
    assert _codes(tmp_path, document) == ["unreachable_role"]


def test_an_edge_whose_source_is_never_paged_for_a_severity_is_dead(tmp_path: Path) -> None:
    # medium incidents no longer page risk_compliance, so its edge to the committee never fires for them
    document = _edit(edges__0__severities=["critical", "high"])
    path = write_yaml(tmp_path / "escalation.yaml", document)
    with pytest.raises(CharterError) as info:
        load_escalation(path)
    assert [d.code for d in info.value.diagnostics] == ["dead_edge"]
    assert "never fires for medium" in info.value.diagnostics[0].message
    assert info.value.location.path == "$.edges[1].severities"


def test_f15_separation_of_duties_by_role_and_by_principal(tmp_path: Path) -> None:
    same_role = _edit(stages__0__validate={"responsible": ["model_owner"], "accountable": "model_owner"})
    assert "separation_of_duties" in _codes(tmp_path, same_role)
    shared_person = copy.deepcopy(BASE)
    shared_person["roles"]["risk_compliance"]["members"].append("tom.berger")
    assert "separation_of_duties" in _codes(tmp_path, shared_person)


def test_f17_art73_deadlines_may_only_shorten_the_default(tmp_path: Path) -> None:
    document = copy.deepcopy(BASE)
    document["regulatory"]["deadlines"]["death"] = "P20D"  # Art. 73(4) gives 10 days, shorter than 15
    path = write_yaml(tmp_path / "escalation.yaml", document)
    with pytest.raises(CharterError) as info:
        load_escalation(path)
    assert [d.code for d in info.value.diagnostics] == ["regulatory_clock"]
    assert info.value.location.path == "$.regulatory.deadlines.death" and info.value.location.line is not None
    # The chain's timing no longer matters to Art. 73: a slow chain is no regulatory problem (the
    # classification pages the reporting role at once).
    slow = copy.deepcopy(BASE)
    slow["tiers"]["high"]["timeout_factor"] = 2.0
    assert load_escalation(write_yaml(tmp_path / "slow.yaml", slow)).check() == []


@pytest.mark.parametrize("retired", [{"severities": ["critical"]}, {"tiers": ["high"]},
                                     {"severities": ["critical"], "tiers": ["high"]}])
def test_kpi_severity_no_longer_starts_the_art73_clock_and_the_old_keys_are_refused(
        tmp_path: Path, retired: dict[str, Any]) -> None:
    document = copy.deepcopy(BASE)
    document["regulatory"].update(retired)
    path = write_yaml(tmp_path / "escalation.yaml", document)
    with pytest.raises(CharterError) as info:
        load_escalation(path)
    [diagnostic] = info.value.diagnostics
    assert diagnostic.code == "escalation_schema" and diagnostic.location.path == "$.regulatory"
    assert "charter incidents classify" in diagnostic.message
    assert all(key in diagnostic.message for key in retired)


@pytest.mark.parametrize("deadlines", [{"default": "P15D", "death": "P10D"},
                                       {"default": "P15D", "death": "P10D",
                                        "widespread_or_critical_infrastructure": "P2D", "gpai": "P1D"}])
def test_art73_deadlines_are_exactly_the_three_of_the_act(tmp_path: Path, deadlines: dict[str, str]) -> None:
    document = copy.deepcopy(BASE)
    document["regulatory"]["deadlines"] = deadlines
    assert _codes(tmp_path, document) == ["escalation_schema"]


def test_high_risk_oversight_must_be_reached(tmp_path: Path) -> None:
    document = _edit(edges__3__severities=["high"])  # executive -> board no longer for critical
    assert "unreachable_oversight" in _codes(tmp_path, document)


def test_unknown_roles_are_located(tmp_path: Path) -> None:
    document = _edit(edges__0__to="risk")
    path = write_yaml(tmp_path / "escalation.yaml", document)
    with pytest.raises(CharterError) as info:
        load_escalation(path)
    assert [d.code for d in info.value.diagnostics] == ["unknown_role"]
    assert info.value.location.path == "$.edges[0].to" and info.value.location.line is not None


def test_plan_times_for_a_critical_incident_on_a_high_risk_system() -> None:
    graph = load_escalation(REPO / "policies" / "escalation.yaml")
    plan = {step.role: step.after for step in graph.plan(Severity.CRITICAL, RiskTier.HIGH)}
    hours = datetime.timedelta(hours=1)
    # The reporting role is not in the plan: inaction never pages it, a serious-incident classification does.
    assert plan == {"model_owner": 0 * hours, "risk_compliance": 12 * hours,
                    "governance_committee": 36 * hours, "executive": 72 * hours, "board": 96 * hours}
    assert graph.decider(Severity.CRITICAL, RiskTier.HIGH) == "governance_committee"
    assert graph.may_decide("governance_committee", "compensate")
    assert not graph.may_decide("model_owner", "retrain")


def test_render_formats() -> None:
    graph = load_escalation(REPO / "policies" / "escalation.yaml")
    assert graph.render("mermaid").startswith("flowchart BT\n")
    assert "model_owner -> risk_compliance" in graph.render("dot")
    # the reporting role is paged by the validator's classification, not by the entry role
    assert "risk_compliance -. Art. 73 serious incident .-> regulatory_reporting" in graph.render("mermaid")
    assert graph.classifiers() == ["risk_compliance"]
    with pytest.raises(CharterError):
        graph.render("svg")


ROLES = [f"r{i}" for i in range(6)]


@st.composite
def random_graphs(draw: st.DrawFn) -> dict[str, Any]:
    edges = draw(st.lists(st.tuples(st.sampled_from(ROLES), st.sampled_from(ROLES),
                                    st.sets(st.sampled_from([s.value for s in Severity]), min_size=1)),
                          max_size=12).filter(lambda es: all(a != b for a, b, _ in es)))
    deciders = {s.value: draw(st.sampled_from(ROLES)) for s in Severity}
    unique: dict[tuple[str, str], set[str]] = {}
    for source, target, severities in edges:  # one edge per pair, as the graph keeps
        unique.setdefault((source, target), set()).update(severities)
    stages = [{"severities": [s], "investigate": {"responsible": ["r0"], "accountable": "r0"},
               "validate": {"responsible": ["r0"], "accountable": "r0"},
               "decide": {"responsible": [d], "accountable": d},
               "deadlines": {"acknowledge": "P1D", "investigate": "P1D", "validate": "P1D", "decide": "P1D"}}
              for s, d in deciders.items()]
    return {"version": 1, "entry": "r0",
            "roles": {r: {"title": r, "members": [f"{r}-person"], "authority": 5} for r in ROLES},
            "edges": [{"from": a, "to": b, "severities": sorted(s), "timeout": "P1D"} for (a, b), s in unique.items()],
            "stages": stages, "decisions": {d: {"min_authority": "r0"} for d in BASE["decisions"]}}


def _expected_valid(document: dict[str, Any]) -> bool:
    adjacency: dict[str, set[str]] = {r: set() for r in ROLES}
    for edge in document["edges"]:
        adjacency[edge["from"]].add(edge["to"])
    state: dict[str, int] = {}

    def has_cycle(node: str) -> bool:  # plain depth-first search, independent of networkx
        state[node] = 1
        for nxt in adjacency[node]:
            if state.get(nxt) == 1 or (nxt not in state and has_cycle(nxt)):
                return True
        state[node] = 2
        return False

    if any(r not in state and has_cycle(r) for r in ROLES):
        return False

    def reaches(severity: str | None, goal: str) -> bool:
        """Breadth-first search over the edges of one severity (None: over every edge)."""
        seen, todo = {"r0"}, ["r0"]
        while todo:
            node = todo.pop()
            for edge in document["edges"]:
                if edge["from"] == node and (severity is None or severity in edge["severities"]) \
                        and edge["to"] not in seen:
                    seen.add(edge["to"])
                    todo.append(edge["to"])
        return goal in seen

    if not all(reaches(band["severities"][0], band["decide"]["accountable"]) for band in document["stages"]):
        return False
    if any(edge["from"] != "r0" and not reaches(severity, edge["from"])
           for edge in document["edges"] for severity in edge["severities"]):
        return False  # a dead edge: it lists a severity that never pages its source
    return all(reaches(None, r) for r in ROLES)  # every role staffed above, so only reachability remains


@settings(max_examples=300, deadline=None)
@given(random_graphs())
def test_validation_accepts_exactly_acyclic_graphs_where_every_severity_reaches_a_decider(
        document: dict[str, Any]) -> None:
    graph = parse_escalation(document, SourceMap("random.yaml"))
    assert (graph.check() == []) == _expected_valid(document)
