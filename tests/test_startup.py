"""Start-up cost: every command module loads on each run, so `charter --help` must not import the library."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

#: What the CLI imports only inside the commands that need it (each costs more than a bare `--help`).
HEAVY = ("rich", "pydantic", "sqlalchemy", "alembic", "rule_engine", "networkx", "yaml", "cryptography", "jinja2")


def _modules_after(code: str, cwd: Path = REPO) -> set[str]:
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)), file=sys.stderr)"
    result = subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=120,
                            check=False)
    return {m.split(".")[0] for m in json.loads(result.stderr.strip().splitlines()[-1])}


def test_importing_the_cli_imports_nothing_heavy() -> None:
    loaded = _modules_after("import typer.main, charter.cli\ntyper.main.get_command(charter.cli.app)")
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_reading_incidents_needs_no_parser_migrations_or_graphs(tmp_path: Path) -> None:
    run = ("import sys\nfrom charter.cli import main\nsys.argv = ['charter', 'demo']\n"
           "try:\n    main()\nexcept SystemExit:\n    pass")
    subprocess.run([sys.executable, "-c", run], cwd=tmp_path, capture_output=True, timeout=300, check=True)
    listing = ("import sys\nfrom charter.cli import main\nsys.argv = ['charter', 'incidents', 'list', '--db', "
               "'sqlite:///.charter/demo/ledger.db']\ntry:\n    main()\nexcept SystemExit:\n    pass")
    loaded = _modules_after(listing, tmp_path)
    # A SQLite ledger at the newest schema is read with the standard library (`ledger.sqlite_reader`).
    assert "sqlite3" in loaded and "sqlalchemy" not in loaded
    # pydantic: typer would validate every option through it (`common._coerce_without_pydantic`)
    assert loaded.isdisjoint({"alembic", "rule_engine", "networkx", "jinja2", "yaml", "pydantic"}), loaded
    # Reading the store needs neither checkpoints, exports nor verification (charter.ledger loads on use).
    assert loaded.isdisjoint({"charter.ledger.checkpoints", "charter.ledger.export", "charter.ledger.verify",
                              "statistics", "argparse"}), loaded


def test_options_coerced_without_pydantic_as_typer_coerces_them(tmp_path: Path) -> None:
    """Every parameter of every command, given its default or a typical string, gets typer's own result or error."""
    import typer.main
    from typer._click import Command, Context
    from typer._click.exceptions import BadParameter
    from typer._coercion import RuntimeParam, build_runtime_param
    from typer.core import _TyperParameter

    from charter.cli import app

    def outcome(runtime: RuntimeParam, value: object, param: _TyperParameter, ctx: Context) -> object:
        try:
            return runtime.coerce(value, param=param, ctx=ctx)
        except BadParameter as exc:
            return ("BadParameter", exc.format_message())

    def commands(command: Command) -> list[Command]:
        below = getattr(command, "commands", {}).values()
        return [command, *(c for sub in below for c in commands(sub))]

    (tmp_path / "a-file").write_text("x")
    samples = ("", "x", "json", "TABLE", "nope", "5", "0", "-1", "1.5", "true", str(tmp_path), str(tmp_path / "a-file"),
               str(tmp_path / "missing"), tmp_path, "a\0b")
    checked = 0
    for command in commands(typer.main.get_command(app)):
        ctx = Context(command)
        for param in command.params:
            if not isinstance(param, _TyperParameter) or param.multiple or param.nargs != 1:
                continue
            ours = param.get_runtime_param()
            assert type(ours).__name__ == "Deferred"
            typers = build_runtime_param(param.type_descriptor)
            for value in (param.default, *samples):
                assert outcome(ours, value, param, ctx) == outcome(typers, value, param, ctx), (command.name,
                                                                                             param.name, value)
                checked += 1
    assert checked > 1000


def test_the_shipped_rule_engine_tables_match_the_installed_grammar() -> None:
    import rule_engine.parser
    from rule_engine._vendor.ply import yacc

    from charter import _rule_engine_tables

    parser = rule_engine.parser.Parser.__new__(rule_engine.parser.Parser)
    reflect = yacc.ParserReflect({name: getattr(parser, name) for name in dir(parser)})
    reflect.get_all()
    # If this fails after a rule-engine upgrade, run: python bench/regenerate_rule_engine_tables.py
    assert _rule_engine_tables._lr_signature == reflect.signature()
    assert yacc.__tabversion__ == _rule_engine_tables._tabversion


def test_schema_head_is_the_newest_migration() -> None:
    from charter.ledger.database import code_revision
    from charter.ledger.layout import SCHEMA_HEAD

    assert code_revision() == SCHEMA_HEAD


def test_one_command_per_incident_action() -> None:
    from charter.cli.incidents_cmds import ACTION_NAMES
    from charter.incidents import ACTIONS

    assert tuple(ACTIONS) == ACTION_NAMES


def test_version_is_answered_before_the_cli_is_imported() -> None:
    """`charter --version` (the console script and `python -m charter`) prints what the CLI's own option prints."""
    loaded = _modules_after("import sys\nsys.argv = ['charter', '--version']\nfrom charter._entry import main\nmain()")
    assert loaded.isdisjoint({"typer", "typing", "dataclasses", *HEAVY}), sorted(loaded & {"typer", "typing"})
    fast = subprocess.run([sys.executable, "-m", "charter", "--version"], capture_output=True, text=True, timeout=60,
                          check=True)
    # The same option through typer, where `--version` is not the only argument.
    slow = subprocess.run([sys.executable, "-m", "charter", "--version", "--max-input-bytes", "100"],
                          capture_output=True, text=True, timeout=60, check=True)
    from charter import __version__

    assert fast.stdout == slow.stdout == f"charter {__version__}\n"


def test_the_console_script_is_the_light_entry_point() -> None:
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"charter": "charter._entry:main"}
