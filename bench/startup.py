"""Start-up cost of the `charter` command as a ratio to a bare interpreter, measured in the same run.

CPU time (user + system) of each command, median of several runs, divided by that of
``python -c pass``. Targets (issue 11): ``--version`` and ``--help`` at most 10x, ``incidents list`` on
the demo ledger at most 25x.

    python bench/startup.py [--runs 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TARGETS = {"--version": 10.0, "--help": 10.0, "incidents list": 25.0}


def cpu_seconds(args: list[str], cwd: Path) -> float:
    """User + system CPU seconds of one run of `args`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    # Bytecode is written (an installed wheel has it): with PYTHONDONTWRITEBYTECODE set, every run
    # would compile Charter's modules again, 1-2x of a bare interpreter on its own.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   env={**env, "COLUMNS": "120"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def median_cpu(args: list[str], cwd: Path, runs: int) -> float:
    cpu_seconds(args, cwd)  # warm the page cache and bytecode
    return statistics.median(cpu_seconds(args, cwd) for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    charter = [sys.executable, "-m", "charter"]
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        subprocess.run([*charter, "demo"], cwd=workdir, stdout=subprocess.DEVNULL, check=True)
        bare = median_cpu([sys.executable, "-c", "pass"], workdir, args.runs)
        commands = {"--version": ["--version"], "--help": ["--help"],
                    "incidents list": ["incidents", "list", "--db", "sqlite:///.charter/demo/ledger.db"]}
        result: dict[str, object] = {"bare_interpreter_s": round(bare, 4)}
        for name, extra in commands.items():
            seconds = median_cpu([*charter, *extra], workdir, args.runs)
            ratio = seconds / bare if bare else float("inf")
            result[name] = {"cpu_s": round(seconds, 4), "ratio": round(ratio, 1), "target": TARGETS[name],
                            "within_target": ratio <= TARGETS[name]}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"bare interpreter: {result['bare_interpreter_s']} s CPU")
    for name in commands:
        line = result[name]
        assert isinstance(line, dict)
        print(f"charter {name:15} {line['cpu_s']} s CPU = {line['ratio']}x (target {line['target']}x, "
              f"{'met' if line['within_target'] else 'MISSED'})")


if __name__ == "__main__":
    main()
