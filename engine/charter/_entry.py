"""The ``charter`` console script: answers ``--version`` before the CLI (typer and every command) is imported.

``charter --version`` is what scripts and package managers run to probe an installation; importing the
whole command tree for it costs about ten times a bare interpreter, answering it here about two.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run the CLI; print the version directly when it is the only argument."""
    if sys.argv[1:] == ["--version"]:
        from . import __version__

        # The same line `charter.cli` prints for `--version` (tests compare the two).
        sys.stdout.write(f"charter {__version__}\n")
        return
    from .cli import main as cli_main

    cli_main()
