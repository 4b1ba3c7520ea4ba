"""The wheel carries the KPI catalog, frameworks, policy packs and demo evidence."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from charter.frameworks import REPORT_FRAMEWORKS
from tests.conftest import REPO


def test_wheel_runs_the_demo_outside_the_repository(tmp_path: Path) -> None:
    wheel_dir = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheel_dir), str(REPO)], check=True, capture_output=True, text=True, timeout=300)
    wheel = next(wheel_dir.glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for expected in ("charter/kpis.yaml", "charter/_data/frameworks/iso-42001.yaml",
                     "charter/_data/policies/core/performance.yaml", "charter/_data/evidence/systems.yaml"):
        assert expected in names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The installed copy comes first on the path, ahead of the editable install of the checkout.
    env = {**os.environ, "PYTHONPATH": str(target), "COLUMNS": "200"}
    where = subprocess.run([sys.executable, "-c", "import charter, charter._data as d; "
                            "print(charter.__file__); print(d.builtin_dir('policies'))"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True)
    module_file, policies = where.stdout.split()
    assert module_file.startswith(str(target)) and policies.startswith(str(target))
    demo = subprocess.run([sys.executable, "-m", "charter", "demo"], cwd=elsewhere, env=env, capture_output=True,
                          text=True, timeout=120)
    assert demo.returncode == 0, demo.stderr
    assert "breaches across 5 systems" in demo.stdout
    # the report templates travel in the wheel: the demo rendered all three frameworks from it
    assert len(list((elsewhere / ".charter" / "demo" / "reports").glob("*.html"))) == len(REPORT_FRAMEWORKS) == 4
