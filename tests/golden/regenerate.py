"""Rewrite the golden report files from the deterministic scenario: ``python -m tests.golden.regenerate``.

CI runs it and then ``git diff --exit-code tests/golden``: a change in what reports say must be
committed deliberately, with its diff reviewed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.golden.scenario import GOLDEN, build_scenario, render_all


def main() -> None:
    """Build the scenario in a temporary SQLite ledger and write the reports beside this file."""
    with tempfile.TemporaryDirectory() as folder:
        scenario = build_scenario(f"sqlite:///{Path(folder) / 'ledger.db'}")
        for name, text in render_all(scenario).items():
            (GOLDEN / name).write_text(text, encoding="utf-8")
            print(f"wrote {GOLDEN / name}")
        scenario.ledger.engine.dispose()


if __name__ == "__main__":
    main()
