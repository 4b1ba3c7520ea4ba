"""Turns pydantic validation errors into located Charter diagnostics; checks signed statements' plain fields."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .errors import CharterError, Diagnostic, Location, json_path

if TYPE_CHECKING:  # the statement checks below are read by commands that never load pydantic (incidents list)
    from pydantic import ValidationError

    from ._sources import SourceMap

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


#: Longest free text (a rationale, a revocation reason, an authority's name) a signed statement may carry:
#: the bound the registry puts on its free text and the step-up challenge on a note. A ledger entry is
#: read by every verification, so free text stays short; evidence belongs in an attached document.
MAX_TEXT = 4000


def _field_error(name: str, message: str) -> CharterError:
    return CharterError.single("invalid_field", f"{name} {message}", path=f"$.statement.{name}")


def statement_text(value: object, name: str, *, limit: int = MAX_TEXT) -> str:
    """`value`, a signed statement's free-text field `name`, checked to be a string of at most `limit` characters.

    The one check of the statements' free text, for a change signed on the spot and one handed in
    (`charter ledger accept`, ``POST /v1/statements``) alike; the path names the statement's field.

    Raises:
        CharterError: ``invalid_field`` at ``$.statement.NAME`` for a non-string or one too long.
    """
    if not isinstance(value, str):
        raise _field_error(name, f"must be a string, not {_json_type(value)}")
    if len(value) > limit:
        raise _field_error(name, f"is {len(value):,} characters long; at most {limit:,}")
    return value


def statement_flag(value: object, name: str) -> bool:
    """`value`, a signed statement's yes/no field `name`, checked to be a JSON boolean (``1`` or ``"yes"`` is not).

    Raises:
        CharterError: ``invalid_field`` at ``$.statement.NAME``.
    """
    if not isinstance(value, bool):
        raise _field_error(name, f"must be true or false, not {_json_type(value)}")
    return value


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(value), type(value).__name__)
