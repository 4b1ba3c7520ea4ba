"""Meta-tests that keep the documentation and data honest."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from charter.cli import app
from charter.kpis import KpiCatalog
from tests.conftest import REPO, run_cli

README = (REPO / "README.md").read_text(encoding="utf-8")


def _commands(group: object, prefix: str = "charter") -> list[str]:
    import typer.main

    click_group = typer.main.get_command(app) if group is app else group
    found = []
    for name, command in sorted(getattr(click_group, "commands", {}).items()):
        if getattr(command, "hidden", False):
            continue
        if getattr(command, "commands", None):
            found.extend(_commands(command, f"{prefix} {name}"))
        else:
            found.append(f"{prefix} {name}")
    return found


def test_every_cli_command_is_in_the_readme() -> None:
    commands = _commands(app)
    assert "charter policy lint" in commands
    missing = [c for c in commands if c not in README]
    assert missing == []


def test_readme_charter_examples_run_with_the_documented_exit_code(tmp_path: Path) -> None:
    # Each shell block runs in order in a fresh directory holding the repository's evidence and
    # policies; lines starting with "charter " are run, and "# exit N" documents the exit code.
    blocks = re.findall(r"```(?:sh|bash|console)\n(.*?)```", README, flags=re.S)
    ran = 0
    for number, block in enumerate(blocks):
        workdir = tmp_path / f"block{number}"
        workdir.mkdir()
        for name in ("evidence", "policies"):
            (workdir / name).symlink_to(REPO / name)
        for line in (raw.strip() for raw in block.splitlines()):
            if not line.startswith("charter "):
                continue
            command, _, comment = line.partition("#")
            expected = int(m.group(1)) if (m := re.search(r"exit (\d)", comment)) else 0
            args: list[str] = []
            for arg in shlex.split(command)[1:]:  # expand globs as the shell would
                args.extend(sorted(str(p.relative_to(workdir)) for p in workdir.glob(arg)) if "*" in arg else [arg])
            result = run_cli(*args, cwd=workdir)
            assert result.returncode == expected, f"{line}\n{result.stdout}\n{result.stderr}"
            ran += 1
    assert ran >= 25


def test_every_kpi_used_by_a_policy_is_in_the_catalog(catalog: KpiCatalog) -> None:
    for path in sorted((REPO / "policies").rglob("*.yaml")):
        if (path.name.endswith("_test.yaml") or path.name in {"kpis.yaml", "escalation.yaml"}
                or "applicability" in path.relative_to(REPO / "policies").parts):
            continue
        for rule in yaml.safe_load(path.read_text())["rules"]:
            if "kpi" in rule:
                assert rule["kpi"] in catalog, (path, rule["id"])
