"""Turns pydantic validation errors into located Charter diagnostics."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

from ._sources import SourceMap
from .errors import Diagnostic, Location, json_path

_FRIENDLY = {
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
}


def _message(error: dict[str, object]) -> str:
    kind = str(error.get("type", ""))
    if kind in _FRIENDLY:
        return _FRIENDLY[kind]
    message = str(error.get("msg", "invalid value"))
    # pydantic prefixes messages raised by our validators; the prefix only adds noise.
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    if kind not in {"value_error", "assertion_error"} and "input" in error:
        got = error["input"]
        if isinstance(got, str | int | float | bool) or got is None:
            message = f"{message} (got {got!r})"
    return message


def collect_validation_errors(exc: ValidationError, smap: SourceMap | None,
                              prefix: Sequence[str | int] = (), *, code: str,
                              file: str | None = None) -> list[Diagnostic]:
    """One diagnostic per pydantic error, located by JSON path (and line, when `smap` knows it).

    Args:
        exc: the pydantic error.
        smap: line numbers of the source document, if it was YAML.
        prefix: the path of the validated value inside the document.
        code: the diagnostic code to use.
        file: the file name when there is no source map.
    """
    errors = exc.errors()
    # The proper prefixes of the error locations: a set, so that each too_short check is O(1), not O(errors).
    enclosing = {tuple(e["loc"])[:depth] for e in errors for depth in range(len(e["loc"]))}
    diagnostics = []
    for error in errors:
        here = tuple(error["loc"])
        if error["type"] == "too_short" and here in enclosing:
            # A tuple whose items all failed is also reported as too short: noise next to the real errors.
            continue
        loc = [*prefix, *(part for part in error["loc"] if isinstance(part, str | int))]
        # pydantic names the branch of a union or a validator in the location; drop those.
        loc = [p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))]
        location = smap.location(loc) if smap is not None else Location(file=file, path=json_path(loc))
        diagnostics.append(Diagnostic(code, _message(dict(error)), location))
    return diagnostics
