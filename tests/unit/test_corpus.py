"""The shared case corpus, run through the library: compile, parse, evaluate."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from charter.bundle import EvidenceBundle
from charter.errors import CharterError
from charter.evaluate import evaluate_bundle
from charter.kpis import KpiCatalog
from charter.policy import PolicyCompiler
from charter.registry import AISystem
from tests.conftest import write_yaml
from tests.corpus import Case, load_cases, status_map

CASES = load_cases()


def _run(case: Case, tmp_path: Path, catalog: KpiCatalog, compiler: PolicyCompiler) -> dict[str, str]:
    policy_path = write_yaml(tmp_path / "policy.yaml", case.policy)
    try:
        policy_set = compiler.compile_files([policy_path])
        bundle = EvidenceBundle.from_json(case.bundle_text, catalog, file="bundle.json")
    except CharterError as exc:
        raise _Located(exc, policy_path) from exc
    previous = [EvidenceBundle.from_json(text, catalog) for text in case.previous_texts]
    at = (datetime.datetime.fromisoformat(case.at.replace("Z", "+00:00")) if case.at else bundle.measured_at)
    findings = evaluate_bundle(AISystem.model_validate(case.system), bundle, policy_set.policies, at, previous)
    return status_map([f.model_dump(mode="json") for f in findings])


class _Located(Exception):
    def __init__(self, error: CharterError, policy_path: Path) -> None:
        super().__init__(str(error))
        self.error = error
        self.policy_path = policy_path


def check_error(error: CharterError, expected: dict[str, object], policy_path: Path) -> None:
    """Assert a CharterError matches an ``expect.error`` entry of the corpus."""
    assert error.code == expected["code"], str(error)
    location = error.location
    if "path" in expected:
        assert location.path == expected["path"]
    if "rule" in expected:
        assert location.rule == expected["rule"]
    if "line_text" in expected:
        assert location.file == str(policy_path)
        assert location.line is not None
        line = policy_path.read_text(encoding="utf-8").splitlines()[location.line - 1]
        assert str(expected["line_text"]) in line, f"line {location.line} is {line!r}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Case, tmp_path: Path, catalog: KpiCatalog, compiler: PolicyCompiler) -> None:
    if "error" in case.expect:
        with pytest.raises(_Located) as info:
            _run(case, tmp_path, catalog, compiler)
        check_error(info.value.error, case.expect["error"], info.value.policy_path)
    else:
        assert _run(case, tmp_path, catalog, compiler) == case.expect["findings"]
