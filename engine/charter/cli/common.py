"""What the CLI's commands share: consoles, output formats, loading policies, printing findings.

Every CLI module is imported whenever `charter` starts, for ``--help`` too, so they import only typer,
the standard library and light Charter modules at the top; commands import the rest, rich included,
when they run.
"""

import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import typer

from .._data import builtin_dir
from .._text import printable
from ..errors import CharterError, Diagnostic

if TYPE_CHECKING:
    from rich.console import Console

    from ..evaluate import Finding
    from ..frameworks import FrameworkSet
    from ..kpis import KpiCatalog
    from ..policy import PolicySet


class _LazyConsole:
    """A rich `Console` made on first use: importing rich costs more than a whole ``charter --help``."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)

    def __enter__(self) -> Any:  # rich's Live enters its console; `with` looks on the type, not __getattr__
        return self.__getattr__("__enter__")()

    def __exit__(self, *exc: object) -> None:
        self.__getattr__("__exit__")(*exc)


def _coerce_without_pydantic() -> None:
    """Let typer coerce the values a command line usually carries without importing pydantic.

    typer 0.29 coerces every parameter through a pydantic ``TypeAdapter``, built even for an option
    that was not given; importing pydantic and building the adapters cost every command 60-100 ms
    of CPU, a sixth of ``charter incidents list``. The adapters of str, choice, path and number
    parameters call typer's own functions or return the value as it is; those are called here
    directly for the values they settle (None is settled by typer before this). Any other value (a
    conversion such as ``"5"`` to 5, a value to reject, a list, a custom parser) goes through typer's
    adapter as before, so every result and message stays typer's. A typer without these internals
    (older ones coerce through click, without pydantic) is left as it is.
    """
    try:
        import typer.core
        from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
        from typer._param_types import choice_coercion_annotation, coerce_cli_choice, coerce_cli_path, routes_to_path
    except ImportError:  # pragma: no cover - typer before 0.29
        return
    if getattr(typer.core, "build_runtime_param", None) is not build_runtime_param:  # pragma: no cover
        return

    class Deferred(RuntimeParam):
        """Coerces the values that need no adapter; builds typer's runtime parameter for the rest, once."""

        descriptor: TypeDescriptor
        adapted: RuntimeParam | None

        def __init__(self, descriptor: TypeDescriptor) -> None:
            super().__init__(parameter_info=descriptor.parameter_info, annotation=descriptor.annotation)
            object.__setattr__(self, "descriptor", descriptor)
            object.__setattr__(self, "adapted", None)

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            annotation, info = self.annotation, self.parameter_info
            # The order of typer's `build_leaf_adapter`: parser, choices, numbers, str, paths.
            if info.parser is None and self.descriptor.file_annotation is None:
                choice = choice_coercion_annotation(annotation, info)
                try:
                    if choice is not None:
                        return coerce_cli_choice(value, choices=choice[0], case_sensitive=choice[1], ctx=ctx)
                    if annotation in (int, float):
                        if (type(value) is annotation and not info.clamp and (info.min is None or value >= info.min)
                                and (info.max is None or value <= info.max)):
                            return value
                    elif annotation is str:
                        if type(value) is str:
                            return value
                    elif routes_to_path(annotation, info):
                        path_type: Any = info.path_type
                        if path_type is None and isinstance(annotation, type) and issubclass(annotation, Path):
                            path_type = annotation
                        return coerce_cli_path(value, info, path_type=path_type, param=param, ctx=ctx)
                except (ValueError, AssertionError):
                    pass  # pydantic turns these into the message typer shows: let the adapter word it
            if self.adapted is None:
                object.__setattr__(self, "adapted", build_runtime_param(self.descriptor))
            assert self.adapted is not None
            return self.adapted._coerce_value(value, param=param, ctx=ctx)

    typer.core.build_runtime_param = Deferred  # type: ignore[attr-defined]


_coerce_without_pydantic()

out = cast("Console", _LazyConsole(highlight=False, soft_wrap=False))
err = cast("Console", _LazyConsole(stderr=True, highlight=False, soft_wrap=True))

STATUS_STYLE = {"pass": "green", "warn": "yellow", "breach": "bold red", "missing": "magenta", "error": "red"}


class OutputFormat(StrEnum):
    """Machine or human output."""

    TABLE = "table"
    JSON = "json"


def command_group(help_text: str) -> typer.Typer:
    """A group of subcommands with plain help: click's own layout rewraps paragraphs and shows no ``<bool>``."""
    return typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None)


def policies_dir(given: Path | None) -> Path:
    """The policy directory: as given, else ./policies, else the built-in packs."""
    if given is not None:
        return given
    local = Path("policies")
    return local if local.is_dir() else builtin_dir("policies")


def named_kpis_file(policies: Path | None) -> Path | None:
    """``POLICIES/kpis.yaml`` of a folder named on the command line, when it is a regular file."""
    path = policies / "kpis.yaml" if policies is not None else None
    return path if path is not None and path.is_file() else None


def catalog_for(policies: Path | None, kpis_file: Path | None) -> "KpiCatalog":
    """The KPI catalog: built-in plus `kpis_file`, else plus ``POLICIES/kpis.yaml`` when present."""
    from ..kpis import load_catalog

    if kpis_file is None and policies is not None and (policies / "kpis.yaml").is_file():
        kpis_file = policies / "kpis.yaml"
    return load_catalog(kpis_file)


def compile_policies(policies: Path, kpis_file: Path | None, frameworks_dir: Path | None
             ) -> "tuple[PolicySet, KpiCatalog, FrameworkSet]":
    """Compile the policy directory with its catalog and the control catalogs."""
    from ..frameworks import load_frameworks
    from ..policy import PolicyCompiler, policy_files

    catalog = catalog_for(policies, kpis_file)
    frameworks = load_frameworks(frameworks_dir)
    policy_set = PolicyCompiler(catalog, frameworks).compile_files(policy_files(policies))
    return policy_set, catalog, frameworks


#: Longest diagnostic message printed; longer ones (an echoed 10 MB value) are cut with a count.
MAX_MESSAGE = 2000
#: At most this many diagnostics are printed; the rest are counted.
MAX_DIAGNOSTICS = 200


def safe(text: str, limit: int | None = None, *, multiline: bool = False) -> str:
    """`text` for rich output: terminal controls and bidi characters escaped, markup escaped, length bounded."""
    from rich.markup import escape

    return escape(printable(text, limit, multiline=multiline))


def print_diagnostics(diagnostics: tuple[Diagnostic, ...] | list[Diagnostic], label: str, style: str) -> None:
    """Print located diagnostics to stderr (the first `MAX_DIAGNOSTICS`, each bounded and made printable)."""
    for diagnostic in diagnostics[:MAX_DIAGNOSTICS]:
        where = str(diagnostic.location)
        err.print(f"[{style}]{label}[/]: " + safe((f"{where}: " if where else "") + diagnostic.message, MAX_MESSAGE)
                  + f" [dim]\\[{diagnostic.code}][/]")
    if len(diagnostics) > MAX_DIAGNOSTICS:
        err.print(f"[{style}]…[/] {len(diagnostics) - MAX_DIAGNOSTICS:,} more not shown")


def parse_time(text: str, option: str = "--at") -> datetime.datetime:
    """An ISO 8601 time with a timezone, or ``now`` (the only place the CLI reads the clock).

    `option` names the command-line option in error messages.
    """
    if text == "now":
        # to the millisecond, as the ledger stamps entries: an entry recorded a moment ago, in this very
        # second, is in the ledger "now" (whole seconds would leave it out)
        moment = datetime.datetime.now(datetime.UTC)
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    try:
        value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CharterError.single("usage", f"{option} {text!r} is not an ISO 8601 timestamp or 'now'") from None
    if value.tzinfo is None:
        raise CharterError.single("usage", f"{option} {text!r} has no timezone; add Z or +01:00")
    return value


def print_listing(title: str, headers: list[str], rows: list[list[str]], ids: set[str] | None = None) -> None:
    """Print rows as a table, never cutting the columns named in `ids` (what a user copies).

    Cells are plain text (made printable here). On a terminal too narrow for the table with its ids
    whole, each row is printed as a record instead (``header: value`` lines); piped output is
    printed at the table's natural width, never hard-wrapped to 80 columns.
    """
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Column, Table

    ids = ids or set()
    table = Table(*[Column(h, no_wrap=h in ids, overflow="fold" if h in ids else "ellipsis") for h in headers],
                  title=title)
    for row in rows:
        table.add_row(*(safe(cell) for cell in row))
    if not out.is_terminal:
        # Console.print caps `width` at the console's own; on a console wider than any row, a table
        # that does not expand is printed at its natural width (measured once, by the print).
        Console(file=out.file, width=_UNBOUNDED, highlight=False, soft_wrap=False).print(table)
        return
    measured = Measurement.get(out, out.options.update(width=_UNBOUNDED), table)
    if measured.minimum <= out.width:
        out.print(table)
    else:
        out.print(f"[bold]{safe(title)}[/]")
        width = max(len(h) for h in headers)
        for row in rows:
            out.print()
            for header, cell in zip(headers, row, strict=True):
                if cell:
                    out.print(f"{header:>{width}}: {safe(cell)}", soft_wrap=True)


#: Width used to measure and print tables for pipes and files: wide enough for any row.
_UNBOUNDED = 100_000


# -- commands ------------------------------------------------------------------------------------


def window_label(f: "Finding") -> str:
    """``2026-05`` for a monthly window, else the window's dates."""
    if f.window_end - f.window_start >= datetime.timedelta(days=28):
        return f.window_start.strftime("%Y-%m")
    return f"{f.window_start.date().isoformat()}..{f.window_end.date().isoformat()}"


def print_findings(findings: "list[Finding]", show_all: bool, title: str) -> None:
    """A summary table per system and window, then one block per finding that needs attention."""
    from rich.table import Table

    from ..evaluate import Status

    summary = Table("system", "window", *(s.value for s in Status), title=title)
    groups: dict[tuple[str, str], list[Finding]] = {}
    for f in findings:
        groups.setdefault((f.system_id, window_label(f)), []).append(f)
    for (system_id, window), group in groups.items():
        cells = []
        for status in Status:
            n = sum(1 for f in group if f.status is status)
            cells.append(f"[{STATUS_STYLE[status.value]}]{n}[/]" if n and status is not Status.PASS else str(n))
        summary.add_row(safe(system_id), window, *cells)
    out.print(summary)
    for f in findings:
        if not show_all and f.status is Status.PASS:
            continue
        style = STATUS_STYLE[f.status.value]
        segment = safe(f" [{f.segment}]") if f.segment else ""
        out.print(f"\n[bold]{safe(f.system_id)}[/] {window_label(f)}  {safe(f.rule_ref)}{segment}  "
                  f"[{style}]{f.status.value.upper()}[/] ({f.severity.value})")
        out.print(f"  why: {safe(f.explanation, MAX_MESSAGE)}", soft_wrap=True)
        if f.controls:
            out.print(f"  controls: {safe(', '.join(f.controls))}", soft_wrap=True)
        if f.status is not Status.PASS and f.remediation:
            out.print(f"  remediation: {safe(f.remediation.strip(), MAX_MESSAGE, multiline=True)}", soft_wrap=True)


