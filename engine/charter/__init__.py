"""Charter: a policy-as-code governance engine for AI performance management."""

from __future__ import annotations

import os
import sys

# Not `typing.TYPE_CHECKING`: importing `typing` alone is most of what `charter --version` would cost.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

    from .errors import CharterError, Diagnostic, Location

__version__ = "0.1.0"


class _RuleEngineTables:
    """Serves rule-engine's parser tables from `_rule_engine_tables.py`, so importing rule-engine does not rebuild them.

    rule-engine's parser asks PLY for the module ``rule_engine.parser.parsetab``, which rule-engine does not
    ship, so PLY computes its LALR tables in every process (0.3 s). PLY uses the tables found here only if
    their grammar signature equals the installed grammar's, and builds its own as before otherwise.
    """

    NAME = "rule_engine.parser.parsetab"

    def find_spec(self, name: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if name != self.NAME:
            return None
        from importlib.util import spec_from_file_location

        return spec_from_file_location(name, os.path.join(os.path.dirname(__file__), "_rule_engine_tables.py"))


sys.meta_path.append(_RuleEngineTables())

def __getattr__(name: str) -> object:
    """`CharterError`, `Diagnostic` and `Location` from `charter.errors`, imported when first asked for."""
    if name in {"CharterError", "Diagnostic", "Location"}:
        from . import errors

        return getattr(errors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CharterError", "Diagnostic", "Location", "__version__"]
