"""Start-up cost of the `charter` command as a ratio to a bare interpreter, measured in the same run.

CPU time (user + system) of each command, median of several runs, divided by that of
``python -c pass``. The runs are interleaved (one of each command per round, the bare interpreter
included), so a machine that speeds up or slows down during the run moves both sides of a ratio alike.
Targets (issue 11): ``--version`` and ``--help`` at most 10x, ``incidents list`` on the demo ledger at
most 25x.

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


def median_cpu_interleaved(commands: dict[str, list[str]], cwd: Path, runs: int) -> dict[str, float]:
    """Median CPU seconds of each command over `runs` rounds, each round running every command once."""
    for args in commands.values():
        cpu_seconds(args, cwd)  # warm the page cache and bytecode
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, args in commands.items():
            samples[name].append(cpu_seconds(args, cwd))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    charter = [sys.executable, "-m", "charter"]
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        subprocess.run([*charter, "demo"], cwd=workdir, stdout=subprocess.DEVNULL, check=True)
        commands = {"--version": ["--version"], "--help": ["--help"],
                    "incidents list": ["incidents", "list", "--db", "sqlite:///.charter/demo/ledger.db"]}
        medians = median_cpu_interleaved(
            {"": [sys.executable, "-c", "pass"], **{name: [*charter, *extra] for name, extra in commands.items()}},
            workdir, args.runs)
        bare = medians[""]
        result: dict[str, object] = {"bare_interpreter_s": round(bare, 4)}
        for name in commands:
            seconds = medians[name]
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
