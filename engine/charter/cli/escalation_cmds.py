"""`charter escalation check|plan|render`: validate, explain and draw the escalation graph."""

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import CharterError
from ..vocabulary import RiskTier, Severity
from .common import OutputFormat, command_group, out, policies_dir

if TYPE_CHECKING:
    from ..escalation import EscalationGraph

escalation_app = command_group("Validate, explain and draw the escalation graph.")

FileOption = Annotated[Path | None, typer.Option("--file", help="Escalation file (default: POLICIES/escalation.yaml).")]
PoliciesOption = Annotated[Path | None, typer.Option("--policies", help="Policy directory.")]


class GraphFormat(StrEnum):
    """Drawing formats."""

    MERMAID = "mermaid"
    DOT = "dot"


def escalation_file(file: Path | None, policies: Path | None) -> Path:
    """The escalation file: as given, else ``escalation.yaml`` in the policy directory."""
    path = file or policies_dir(policies) / "escalation.yaml"
    if not path.is_file():
        raise CharterError.single("file_not_found", "no escalation file", file=str(path))
    return path


def load(file: Path | None, policies: Path | None) -> "EscalationGraph":
    """Load and fully validate the escalation file."""
    from ..escalation import load_escalation

    return load_escalation(escalation_file(file, policies))


@escalation_app.command("check")
def check(file: FileOption = None, policies: PoliciesOption = None) -> None:
    """Validate the graph: acyclic, staffed, reachable, deciders for every severity, separation of duties."""
    graph = load(file, policies)
    config = graph.config
    out.print(f"[green]ok[/]: {len(config.roles)} roles, {len(config.edges)} escalation edges, "
              f"{len(config.stages)} stage bands in {graph.file}")


@escalation_app.command("plan")
def plan(
    severity: Annotated[Severity, typer.Option(help="Incident severity.")],
    tier: Annotated[RiskTier, typer.Option(help="Risk tier of the system.")],
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.TABLE,
    file: FileOption = None, policies: PoliciesOption = None,
) -> None:
    """Who is notified when, if nobody acts on an incident."""
    from rich.table import Table

    from ..escalation import describe_plan

    graph = load(file, policies)
    rows = describe_plan(graph.plan(severity, tier))
    decider = graph.decider(severity, tier)
    if output is OutputFormat.JSON:
        typer.echo(json.dumps({"severity": severity.value, "tier": tier.value, "decider": decider, "plan": rows},
                              indent=2))
        return
    table = Table("after", "role", "members", "via", title=f"Escalation plan: {severity.value} severity, "
                  f"{tier.value}-risk system (decider: {decider})")
    for row in rows:
        via = " → ".join(row["path"]) if row["reason"] == "escalation" else row["reason"]
        table.add_row(row["after"], row["role"], ", ".join(row["members"]), via)
    out.print(table)


@escalation_app.command("render")
def render(
    output: Annotated[GraphFormat, typer.Option("--format")] = GraphFormat.MERMAID,
    file: FileOption = None, policies: PoliciesOption = None,
) -> None:
    """Draw the graph as Mermaid or Graphviz DOT."""
    typer.echo(load(file, policies).render(output.value), nl=False)
