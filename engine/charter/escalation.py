"""The escalation graph: who investigates, validates and decides, and who is paged when nobody acts.

``policies/escalation.yaml`` declares roles (with members and channels), escalation edges (with
the severities they apply to and the time the lower role has before the higher one is paged), the
investigate/validate/decide stages per severity band with exactly one accountable role each, the
decision catalogue with the minimum authority each decision needs, per-risk-tier overrides, and the
EU AI Act Art. 73 reporting role and deadlines. It is loaded into a networkx DiGraph (edges point up
the chain) and validated: acyclic, every role staffed and reachable, every severity reaches a role that
may decide, separation of duties for tiers that require it, and Art. 73 deadlines no longer than the law's.
"""

from __future__ import annotations

import datetime
import hashlib
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import networkx as nx
import rfc8785
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ._sources import SourceMap, load_yaml_file
from .errors import CharterError, Diagnostic, DiagnosticCollector
from .policy.model import Duration, Severity, _parse_duration, format_duration
from .registry import RiskTier
from .validation import collect_validation_errors

RoleName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
STAGES = ("investigate", "validate", "decide")


class Channel(BaseModel):
    """Where a role is notified."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str = Field(pattern=r"^(log|webhook)$")
    target: str | None = Field(default=None, description="An http(s) URL for webhooks; a file path for the log.")

    @model_validator(mode="after")
    def _webhook_url(self) -> Channel:
        if self.type == "webhook":
            parts = urllib.parse.urlsplit(self.target or "")
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"a webhook needs an http(s) URL as target, not {self.target!r}")
        return self


class Role(BaseModel):
    """A role in the governance organisation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = Field(min_length=1)
    members: tuple[str, ...] = Field(description="Principals holding the role.")
    authority: int = Field(ge=0, le=100, description="Decision authority; higher may decide more.")
    channels: tuple[Channel, ...] = (Channel(type="log"),)


class Edge(BaseModel):
    """If `source` has not acted within `timeout`, `target` is paged (for the listed severities)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    source: RoleName = Field(alias="from")
    target: RoleName = Field(alias="to")
    severities: tuple[Severity, ...] = Field(min_length=1)
    timeout: Duration

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return _parse_duration(value)


class Assignment(BaseModel):
    """Who does a stage: responsible roles and exactly one accountable role."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    responsible: tuple[RoleName, ...] = Field(min_length=1)
    accountable: RoleName = Field(description="Exactly one role answers for the stage.")


class Deadlines(BaseModel):
    """Time allowed for each step, from the moment the previous one ended."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    acknowledge: Duration
    investigate: Duration
    validate_: Duration = Field(alias="validate")
    decide: Duration

    @field_validator("acknowledge", "investigate", "validate_", "decide", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return _parse_duration(value)


class StageBand(BaseModel):
    """The stages for a band of severities."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    severities: tuple[Severity, ...] = Field(min_length=1)
    investigate: Assignment
    validate_: Assignment = Field(alias="validate")
    decide: Assignment
    deadlines: Deadlines

    def assignment(self, stage: str) -> Assignment:
        """The assignment of ``investigate``, ``validate`` or ``decide``."""
        return {"investigate": self.investigate, "validate": self.validate_, "decide": self.decide}[stage]


class DecisionRule(BaseModel):
    """A decision and the least authority that may take it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_authority: RoleName
    max_duration: Duration | None = Field(default=None, description="For time-boxed decisions (accept_risk).")

    @field_validator("max_duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else _parse_duration(value)


class TierOverride(BaseModel):
    """How a risk tier changes routing: faster timeouts, higher deciders, separation of duties."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_factor: float = Field(default=1.0, ge=0.01, le=10)
    separation_of_duties: bool = False
    deciders: dict[Severity, RoleName] = Field(default_factory=dict, description="A higher decider per severity.")
    must_reach: dict[Severity, RoleName] = Field(
        default_factory=dict, description="A role the chain must reach under inaction (executive, board).")


class ReportingDeadlines(BaseModel):
    """EU AI Act Art. 73 reporting deadlines, counted from the recorded awareness of a serious incident."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: Duration = Field(description="Art. 73(2): at the latest 15 days after awareness.")
    death: Duration = Field(description="Art. 73(4): a death, at the latest 10 days after awareness.")
    widespread_or_critical_infrastructure: Duration = Field(
        description="Art. 73(3): a widespread infringement or an Art. 3(49)(b) disruption, at the latest 2 days.")

    @field_validator("default", "death", "widespread_or_critical_infrastructure", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return _parse_duration(value)


#: the keys the regulatory section had while KPI severity started the Art. 73 clock
_RETIRED_REGULATORY_KEYS = ("severities", "tiers")


class RegulatoryClock(BaseModel):
    """EU AI Act Art. 73 serious-incident reporting: who files, and the deadlines as data.

    The clock starts when an incident's validator classifies it as a serious incident under an
    Art. 3(49) ground (`charter incidents classify`), from the awareness time they record; that
    pages `role` at once, beside the escalation chain. KPI severity and risk tier no longer start
    it: a fairness breach of severity high is the likeliest serious incident (Art. 3(49)(c)).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: RoleName = Field(description="The legal/reporting role: paged on classification, files the reports.")
    deadlines: ReportingDeadlines

    @model_validator(mode="before")
    @classmethod
    def _retired_keys(cls, value: Any) -> Any:
        retired = [k for k in _RETIRED_REGULATORY_KEYS if isinstance(value, dict) and k in value]
        if retired:
            raise ValueError(f"{' and '.join(retired)} no longer start the Art. 73 clock and are refused rather than "
                             "ignored: a serious incident is now a classification by the incident's validator "
                             "(`charter incidents classify ID --serious --ground a|b|c|d`), whatever the KPI "
                             f"severity or risk tier; remove {', '.join(retired)} from regulatory")
        return value


DECISIONS = ("retrain", "rollback", "suspend", "accept_risk", "adjust_policy", "compensate")


class EscalationConfig(BaseModel):
    """The escalation document."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(ge=1, le=1)
    entry: RoleName
    roles: dict[RoleName, Role] = Field(min_length=1)
    edges: tuple[Edge, ...] = ()
    stages: tuple[StageBand, ...] = Field(min_length=1)
    decisions: dict[str, DecisionRule]
    tiers: dict[RiskTier, TierOverride] = Field(default_factory=dict)
    regulatory: RegulatoryClock | None = None

    @model_validator(mode="after")
    def _decision_names(self) -> EscalationConfig:
        unknown = sorted(set(self.decisions) - set(DECISIONS))
        if unknown:
            raise ValueError(f"unknown decisions {unknown}; the catalogue is {', '.join(DECISIONS)}")
        missing = sorted(set(DECISIONS) - set(self.decisions))
        if missing:
            raise ValueError(f"decisions {missing} have no minimum authority")
        return self


@dataclass(frozen=True)
class PlanStep:
    """When a role is paged for an incident nobody acts on, and why."""

    role: str
    after: datetime.timedelta
    path: tuple[str, ...]
    members: tuple[str, ...]
    reason: str


class EscalationGraph:
    """A validated escalation configuration with its networkx graph.

    Use `load_escalation` to build one; `check` lists everything wrong with it.
    """

    def __init__(self, config: EscalationConfig, file: str = "escalation.yaml", smap: SourceMap | None = None):
        self.config = config
        self.file = file
        self.smap = smap or SourceMap(file)
        graph: nx.DiGraph[str] = nx.DiGraph()
        for name, role in config.roles.items():
            graph.add_node(name, authority=role.authority)
        for index, edge in enumerate(config.edges):
            graph.add_edge(edge.source, edge.target, index=index)
        self.graph = nx.freeze(graph)
        # The configuration is frozen: per-severity views and plans are computed once (validation asked
        # for a view per edge and severity, which made a chain of N roles O(N^2)).
        self._views: dict[tuple[Severity, RiskTier], nx.DiGraph[str]] = {}
        self._plans: dict[tuple[Severity, RiskTier], list[PlanStep]] = {}

    @property
    def digest(self) -> str:
        """SHA-256 of the configuration as RFC 8785 canonical JSON: pins the graph a report or decision used."""
        return hashlib.sha256(rfc8785.dumps(self.config.model_dump(mode="json"))).hexdigest()

    # -- queries ---------------------------------------------------------------------------------

    def band(self, severity: Severity) -> StageBand:
        """The stage band for `severity` (validation guarantees exactly one)."""
        return next(b for b in self.config.stages if severity in b.severities)

    def tier(self, tier: RiskTier) -> TierOverride:
        """The override for a risk tier (defaults when the tier has none)."""
        return self.config.tiers.get(tier, TierOverride())

    def stage_roles(self, severity: Severity, tier: RiskTier, stage: str) -> tuple[str, str]:
        """(responsible-or-accountable role that acts, accountable role) of a stage; the tier may raise the decider."""
        assignment = self.band(severity).assignment(stage)
        if stage == "decide":
            decider = self.tier(tier).deciders.get(severity, assignment.accountable)
            return decider, decider
        return assignment.accountable, assignment.accountable

    def decider(self, severity: Severity, tier: RiskTier) -> str:
        """The role that decides incidents of this severity on systems of this tier."""
        return self.stage_roles(severity, tier, "decide")[1]

    def view(self, severity: Severity, tier: RiskTier) -> nx.DiGraph[str]:
        """The edges that apply to `severity`, weighted by their timeout scaled for `tier` (in seconds); frozen."""
        view = self._views.get((severity, tier))
        if view is None:
            factor = self.tier(tier).timeout_factor
            view = nx.DiGraph()
            view.add_nodes_from(self.graph.nodes)
            view.add_weighted_edges_from((edge.source, edge.target, edge.timeout.total_seconds() * factor)
                                         for edge in self.config.edges if severity in edge.severities)
            view = self._views[(severity, tier)] = nx.freeze(view)
        return view

    def plan(self, severity: Severity, tier: RiskTier) -> list[PlanStep]:
        """Who is paged when, if nobody acts: shortest escalation time from the entry role to each role."""
        steps = self._plans.get((severity, tier))
        if steps is None:
            steps = self._plans[(severity, tier)] = self._plan(severity, tier)
        return list(steps)

    def _plan(self, severity: Severity, tier: RiskTier) -> list[PlanStep]:
        view = self.view(severity, tier)
        lengths: dict[str, float] = nx.single_source_dijkstra_path_length(view, self.config.entry, weight="weight")
        paths: dict[str, list[str]] = nx.single_source_dijkstra_path(view, self.config.entry, weight="weight")
        steps = [PlanStep(role, datetime.timedelta(seconds=lengths[role]), tuple(paths[role]),
                          self.config.roles[role].members, "escalation" if role != self.config.entry else "entry")
                 for role in sorted(lengths, key=lambda r: (lengths[r], r))]
        # The reporting role is not in the plan: inaction never pages it; a serious-incident
        # classification does, at once (`charter incidents classify`).
        return steps

    def may_decide(self, role: str, decision: str) -> bool:
        """Whether `role` has the authority for `decision`."""
        needed = self.config.roles[self.config.decisions[decision].min_authority].authority
        return self.config.roles[role].authority >= needed

    def roles_of(self, principal: str) -> list[str]:
        """The roles `principal` holds."""
        return [name for name, role in self.config.roles.items() if principal in role.members]

    # -- validation ------------------------------------------------------------------------------

    def check(self) -> list[Diagnostic]:
        """Everything wrong with the configuration, each located in the file."""
        problems = DiagnosticCollector()
        config = self.config

        def at(*path: str | int) -> Any:
            return self.smap.location(path)

        referenced: list[tuple[tuple[Any, ...], str]] = [(("entry",), config.entry)]
        referenced += [(("edges", i, "from"), e.source) for i, e in enumerate(config.edges)]
        referenced += [(("edges", i, "to"), e.target) for i, e in enumerate(config.edges)]
        for i, band in enumerate(config.stages):
            for stage in STAGES:
                assignment = band.assignment(stage)
                referenced.append((("stages", i, stage, "accountable"), assignment.accountable))
                referenced += [(("stages", i, stage, "responsible"), r) for r in assignment.responsible]
        referenced += [(("decisions", d, "min_authority"), r.min_authority) for d, r in config.decisions.items()]
        referenced += [(("tiers", t, "deciders", s), r) for t, o in config.tiers.items() for s, r in o.deciders.items()]
        referenced += [(("tiers", t, "must_reach", s), r) for t, o in config.tiers.items()
                       for s, r in o.must_reach.items()]
        if config.regulatory:
            referenced.append((("regulatory", "role"), config.regulatory.role))
        unknown = [(path, role) for path, role in referenced if role not in config.roles]
        for path, role in unknown:
            problems.add("unknown_role", f"role {role!r} is not declared under roles", at(*path))
        if unknown:
            return problems.diagnostics  # the graph checks below would only repeat these

        for name, declared in config.roles.items():
            if not declared.members:
                problems.add("empty_role", f"role {name!r} has no member: nobody would be paged", at("roles", name))
        try:
            cycle = nx.find_cycle(self.graph)
        except nx.NetworkXNoCycle:
            cycle = []
        if cycle:
            path_text = " -> ".join([cycle[0][0], *(v for _, v in cycle)])
            problems.add("escalation_cycle", f"escalation edges form a cycle: {path_text}; push-backs belong in the "
                         "incident workflow, not in the graph", at("edges", self.graph.edges[cycle[0]]["index"]))
        parallel = {config.regulatory.role} if config.regulatory else set()
        reachable = nx.descendants(self.graph, config.entry) | {config.entry}
        for name in config.roles:
            if name not in reachable and name not in parallel:
                problems.add("unreachable_role", f"role {name!r} cannot be reached from {config.entry!r}",
                             at("roles", name))

        for severity in Severity:
            bands = [i for i, band in enumerate(config.stages) if severity in band.severities]
            if len(bands) != 1:
                problems.add("stage_coverage", f"severity {severity.value} is in {len(bands)} stage bands; "
                             "it must be in exactly one", at("stages"))
        if problems:
            return problems.diagnostics
        self._check_reporting(problems)
        self._check_dead_edges(problems)
        for severity in Severity:
            band_index = next(i for i, b in enumerate(config.stages) if severity in b.severities)
            for tier in RiskTier:
                self._check_route(severity, tier, band_index, problems)
        return problems.diagnostics

    def classifiers(self) -> list[str]:
        """The roles that may classify a serious incident: those of the validate stage, in any band."""
        return sorted({r for band in self.config.stages for r in (*band.validate_.responsible,
                                                                  band.validate_.accountable)})

    def _check_reporting(self, problems: DiagnosticCollector) -> None:
        """Art. 73's special deadlines shorten the general one; a file that lengthens them misreads the law.

        The clock starts from a classification, which pages the reporting role at once, so no
        escalation timing can be late for it (the former check that the decider is paged before the
        tightest deadline had nothing left to measure); what can be wrong is who files and the deadlines.
        """
        regulatory = self.config.regulatory
        if regulatory is None:
            return
        deadlines = regulatory.deadlines
        for name in ("death", "widespread_or_critical_infrastructure"):
            special = getattr(deadlines, name)
            if special > deadlines.default:
                problems.add("regulatory_clock", f"the {name} deadline {format_duration(special)} is longer than "
                             f"the default {format_duration(deadlines.default)}; Art. 73(3) and (4) only shorten it",
                             self.smap.location(("regulatory", "deadlines", name)))

    def _check_dead_edges(self, problems: DiagnosticCollector) -> None:
        """An edge listing a severity whose incidents never reach its source would never fire: a misreading."""
        entry = self.config.entry
        # One traversal per severity, not one path search per edge and severity.
        reached = {s: nx.descendants(self.view(s, RiskTier.MINIMAL), entry) | {entry} for s in Severity}
        for index, edge in enumerate(self.config.edges):
            dead = [s.value for s in edge.severities if edge.source not in reached[s]]
            if dead:
                problems.add("dead_edge", f"edge {edge.source} -> {edge.target} never fires for {', '.join(dead)}: "
                             f"no edge of that severity pages {edge.source!r} first",
                             self.smap.location(("edges", index, "severities")))

    def _check_route(self, severity: Severity, tier: RiskTier, band_index: int,
                     problems: DiagnosticCollector) -> None:
        config = self.config
        where = self.smap.location(("stages", band_index))
        decider = self.decider(severity, tier)
        view = self.view(severity, tier)
        if not any(self.may_decide(decider, d) for d in config.decisions):
            problems.add("powerless_decider", f"severity {severity.value}, tier {tier.value}: decider {decider!r} "
                         "has the authority for no decision", where)
        if decider != config.entry and not nx.has_path(view, config.entry, decider):
            problems.add("unreachable_decider", f"severity {severity.value}, tier {tier.value}: the decider "
                         f"{decider!r} is never paged from {config.entry!r} by the edges for this severity", where)
            return
        override = self.tier(tier)
        top = override.must_reach.get(severity)
        if top is not None and top != config.entry and not nx.has_path(view, config.entry, top):
            problems.add("unreachable_oversight", f"severity {severity.value}, tier {tier.value}: {top!r} must be "
                         f"reached, but no escalation path for this severity leads there", where)
        if override.separation_of_duties:
            band = config.stages[band_index]
            investigator, validator = band.investigate.accountable, band.validate_.accountable
            shared = sorted(set(config.roles[investigator].members) & set(config.roles[validator].members))
            if investigator == validator or shared:
                who = f"principals {', '.join(shared)} hold both roles" if shared else "the same role"
                problems.add("separation_of_duties", f"severity {severity.value}, tier {tier.value}: the validator "
                             f"{validator!r} must be independent of the investigator {investigator!r}; {who}", where)

    # -- rendering -------------------------------------------------------------------------------

    def render(self, fmt: str) -> str:
        """The graph as Mermaid (``flowchart BT``) or Graphviz DOT text."""
        def label(edge: Edge) -> str:
            return f"{'/'.join(s.value for s in edge.severities)} {format_duration(edge.timeout)}"

        if fmt == "mermaid":
            def mermaid(text: str) -> str:  # Mermaid's entity codes keep quotes and markup inside a label
                return text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")

            lines = ["flowchart BT"]
            lines += [f'    {name}["{mermaid(role.title)}<br/>{mermaid(", ".join(role.members))}"]'
                      for name, role in self.config.roles.items()]
            lines += [f"    {e.source} -->|{label(e)}| {e.target}" for e in self.config.edges]
            if self.config.regulatory:
                lines += [f"    {role} -. Art. 73 serious incident .-> {self.config.regulatory.role}"
                          for role in self.classifiers()]
            return "\n".join(lines) + "\n"
        if fmt == "dot":
            def dot(text: str) -> str:
                return text.replace("\\", "\\\\").replace('"', '\\"')

            lines = ["digraph escalation {", "    rankdir=BT;"]
            lines += [f'    {name} [label="{dot(role.title)}\\n{dot(", ".join(role.members))}"];'
                      for name, role in self.config.roles.items()]
            lines += [f'    {e.source} -> {e.target} [label="{label(e)}"];' for e in self.config.edges]
            if self.config.regulatory:
                lines += [f'    {role} -> {self.config.regulatory.role} [style=dashed, label="Art. 73 serious '
                          'incident"];' for role in self.classifiers()]
            return "\n".join(lines) + "\n}\n"
        raise CharterError.single("usage", f"unknown format {fmt!r}: use mermaid or dot")


def parse_escalation(data: Any, smap: SourceMap) -> EscalationGraph:
    """Validate a parsed escalation document and build its graph (without the graph checks).

    Raises:
        CharterError: schema problems, located by line and JSON path.
    """
    try:
        config = EscalationConfig.model_validate(data)
    except ValidationError as exc:
        raise CharterError(collect_validation_errors(exc, smap, code="escalation_schema")) from exc
    return EscalationGraph(config, smap.file, smap)


def load_escalation(path: Path, *, strict: bool = True) -> EscalationGraph:
    """Load ``escalation.yaml``; with `strict`, refuse it unless every graph check passes.

    Raises:
        CharterError: schema or graph problems, all of them, each located.
    """
    data, smap = load_yaml_file(path)
    graph = parse_escalation(data, smap)
    if strict:
        problems = graph.check()
        if problems:
            raise CharterError(problems)
    return graph


def describe_plan(steps: Iterable[PlanStep]) -> list[dict[str, Any]]:
    """JSON-ready plan rows."""
    return [{"role": s.role, "after": format_duration(s.after) if s.after else "PT0S", "path": list(s.path),
             "members": list(s.members), "reason": s.reason} for s in steps]
