"""The one error family of Charter: every failure caused by bad input is a `CharterError`.

Each error carries one or more `Diagnostic`s, each with a stable snake_case code, a message and a
location (file, line, JSON path, rule), so the CLI can report all problems of an input at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, order=True)
class Location:
    """Where a problem is: any of file, line, JSON path (``$.kpis.recall``) and rule id."""

    file: str | None = None
    line: int | None = None
    path: str | None = None
    rule: str | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts: list[str] = []
        if self.file:
            where = f"{self.file}:{self.line}" if self.line else self.file
            parts.append(f"{where}:{self.column}" if self.line and self.column else where)
        elif self.line:
            parts.append(f"line {self.line}")
        if self.rule:
            parts.append(f"rule {self.rule}")
        if self.path:
            parts.append(self.path)
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """The non-empty fields, for JSON output."""
        return {k: v for k, v in (("file", self.file), ("line", self.line), ("column", self.column),
                                  ("path", self.path), ("rule", self.rule)) if v is not None}


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in an input."""

    code: str
    message: str
    location: Location = field(default_factory=Location)

    def __str__(self) -> str:
        where = str(self.location)
        return f"{where}: {self.message} [{self.code}]" if where else f"{self.message} [{self.code}]"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form with the location flattened in."""
        return {"code": self.code, "message": self.message, **self.location.to_dict()}


def _sort_key(diagnostic: Diagnostic) -> tuple[str, int, str, str]:
    loc = diagnostic.location
    return (loc.file or "", loc.line or 0, loc.rule or "", loc.path or "")


class CharterError(Exception):
    """Bad input: a policy, bundle, catalog or command line that Charter refuses.

    Args:
        diagnostics: the problems, at least one; they are kept sorted by location.
    """

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        if not diagnostics:
            raise ValueError("a CharterError needs at least one diagnostic")
        self.diagnostics: tuple[Diagnostic, ...] = tuple(sorted(diagnostics, key=_sort_key))
        super().__init__("\n".join(str(d) for d in self.diagnostics))

    @classmethod
    def single(cls, code: str, message: str, **location: Any) -> CharterError:
        """Build an error with a single diagnostic; keyword arguments are `Location` fields."""
        return cls([Diagnostic(code, message, Location(**location))])

    @property
    def code(self) -> str:
        """The code of the first diagnostic."""
        return self.diagnostics[0].code

    @property
    def location(self) -> Location:
        """The location of the first diagnostic."""
        return self.diagnostics[0].location


class DiagnosticCollector:
    """Collects diagnostics of one stage so that all problems are reported together."""

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []

    def add(self, code: str, message: str, location: Location | None = None, **fields: Any) -> None:
        """Record one problem at `location`, or at a location built from the keyword fields."""
        self.diagnostics.append(Diagnostic(code, message, location or Location(**fields)))

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
        """Record problems found elsewhere."""
        self.diagnostics.extend(diagnostics)

    def __bool__(self) -> bool:
        return bool(self.diagnostics)

    def raise_if_any(self) -> None:
        """Raise one `CharterError` holding everything collected, if anything was."""
        if self.diagnostics:
            raise CharterError(self.diagnostics)


def json_path(parts: Iterable[str | int]) -> str:
    """Render a path of keys and indexes as a JSON path: ``$.segments["region:asia"].recall``."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}"
        else:
            escaped = part.replace("\\", "\\\\").replace('"', '\\"')
            out += f'["{escaped}"]'
    return out


_PATH_PART = re.compile(r'\.([^\W\d]\w*)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')


def parse_json_path(path: str) -> tuple[str | int, ...] | None:
    """The keys and indexes of a path written by `json_path`, or None if it is not one."""
    if not path.startswith("$"):
        return None
    parts: list[str | int] = []
    position = 1
    while position < len(path):
        match = _PATH_PART.match(path, position)
        if match is None:
            return None
        name, index, quoted = match.groups()
        if name is not None:
            parts.append(name)
        elif index is not None:
            parts.append(int(index))
        else:
            parts.append(re.sub(r"\\(.)", r"\1", quoted))
        position = match.end()
    return tuple(parts)


def with_positions(error: CharterError, locate: Callable[[tuple[str | int, ...]], tuple[int, int] | None],
                   limit: int = 100) -> CharterError:
    """`error` with line and column added to its first `limit` diagnostics that have a JSON path but no line."""
    diagnostics = []
    for count, diagnostic in enumerate(error.diagnostics):
        loc = diagnostic.location
        parts = parse_json_path(loc.path) if count < limit and loc.path and loc.line is None else None
        found = locate(parts) if parts is not None else None
        if found is not None:
            loc = Location(loc.file, found[0], loc.path, loc.rule, found[1])
        diagnostics.append(Diagnostic(diagnostic.code, diagnostic.message, loc))
    return CharterError(diagnostics)
