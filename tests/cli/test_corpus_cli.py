"""The shared case corpus, run through the `charter evaluate` command as a user would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli, write_yaml
from tests.corpus import Case, load_cases, status_map

CASES = load_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_via_cli(case: Case, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policy_path = write_yaml(policies / "policy.yaml", case.policy)
    systems = write_yaml(tmp_path / "systems.yaml", {"systems": [case.system]})
    bundle = tmp_path / "bundle.json"
    bundle.write_text(case.bundle_text, encoding="utf-8")
    earlier = []
    for index, text in enumerate(case.previous_texts):
        path = tmp_path / f"earlier-{index}.json"
        path.write_text(text, encoding="utf-8")
        earlier.append(str(path))
    args = ["evaluate", str(bundle), *earlier, "--policies", str(policies), "--systems", str(systems),
            "--format", "json"]
    if case.at:
        args += ["--at", case.at]
    result = run_cli(*args, cwd=tmp_path)
    assert "Traceback" not in result.stderr
    if "error" in case.expect:
        expected = case.expect["error"]
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"[{expected['code']}]" in result.stderr
        if "path" in expected:
            assert str(expected["path"]) in result.stderr
        if "line_text" in expected:
            lines = policy_path.read_text(encoding="utf-8").splitlines()
            line_no = next(i + 1 for i, line in enumerate(lines) if str(expected["line_text"]) in line)
            assert f"{policy_path}:{line_no}" in result.stderr, result.stderr
            assert f"rule {expected['rule']}" in result.stderr
        return
    findings = json.loads(result.stdout)
    main_window = json.loads(case.bundle_text)["window_end"].replace("Z", "+00:00")
    mine = [f for f in findings if f["window_end"].replace("Z", "+00:00") == main_window]
    assert status_map(mine) == case.expect["findings"]
    failing = any(f["status"] in ("breach", "error") for f in findings)
    assert result.returncode == (1 if failing else 0)

