"""The staged policy compiler: schema, expressions, references; all errors at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from charter.errors import CharterError
from charter.policy import PolicyCompiler, PolicySet, policy_files
from charter.policy.compiler import threshold_expressions
from charter.policy.model import Rule
from tests.conftest import REPO, write_yaml

Compile = Callable[[dict[str, Any]], PolicySet]


def _policy(*rules: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"id": "p", "version": "1.0.0", "title": "t", "owner": "o", **fields, "rules": list(rules)}


def _rule(**fields: Any) -> dict[str, Any]:
    return {"id": "r", "title": "t", "severity": "high", **fields}


def _codes(compile_policy: Compile, document: dict[str, Any]) -> list[str]:
    with pytest.raises(CharterError) as info:
        compile_policy(document)
    return [d.code for d in info.value.diagnostics]


def test_shipped_policies_compile(compiler: PolicyCompiler) -> None:
    policy_set = compiler.compile_files(policy_files(REPO / "policies"))
    assert {p.policy.id for p in policy_set.policies} >= {"core.performance", "core.fairness", "core.regional",
                                                           "core.oversight"}
    assert policy_set.warnings == []


@pytest.mark.parametrize(("rule", "expected"), [
    (dict(kpi="recall", min=0.8, warn=0.85), ("recall < 0.8", "recall < 0.85", {"min": 0.8, "warn_min": 0.85})),
    (dict(kpi="latency_p95_ms", max=500, warn=300),
     ("latency_p95_ms > 500", "latency_p95_ms > 300", {"max": 500, "warn_max": 300})),
    (dict(kpi="approval_rate", min=0.2, max=0.8),
     ("approval_rate < 0.2 or approval_rate > 0.8", None, {"min": 0.2, "max": 0.8})),
])
def test_threshold_shorthand_compiles_to_expressions(rule: dict[str, Any], expected: tuple[Any, ...]) -> None:
    assert threshold_expressions(Rule.model_validate(_rule(**rule))) == expected


@pytest.mark.parametrize(("rule", "fragment"), [
    (dict(kpi="recall"), "needs 'min' or 'max'"),
    (dict(kpi="recall", min=0.8, warn=0.7), "warn 0.7 must not be below min 0.8"),
    (dict(kpi="recall", max=0.8, warn=0.9), "must not be above max"),
    (dict(kpi="recall", min=0.2, max=0.8, warn=0.5), "warn_min and/or warn_max"),
    (dict(when="recall < 1", kpi="recall", min=0.1), "exactly one of"),
    (dict(), "exactly one of"),
    (dict(when="recall < 1", min=0.5), "belong to threshold rules"),
    (dict(when="recall < 1", dimension="region"), "needs scope: segments"),
    (dict(when="recall < 1", max_age="30 days"), "ISO 8601 duration"),
    (dict(when="recall < 1", sustained=0), "greater than or equal to 1"),
])
def test_rule_schema_errors(compile_policy: Compile, rule: dict[str, Any], fragment: str) -> None:
    with pytest.raises(CharterError) as info:
        compile_policy(_policy(_rule(**rule)))
    assert fragment in str(info.value)
    assert info.value.location.rule == "r"


@pytest.mark.parametrize(("when", "code"), [
    ("recal < 0.8", "unknown_symbol"),
    ("baseline.recal < 0.8", "unknown_attribute"),
    ("recall >= '0.8'", "expression_type"),
    ("recall + 1", "expression_type"),
    ("recall <", "expression_syntax"),
    ("$random() > 0.5", "forbidden_builtin"),
    ("$nonsense > 1", "unknown_symbol"),
    ("peers.recall > 0.5", "scope_symbol"),
    ("system.owner.length > 'x'", "expression_type"),
])
def test_expression_errors(compile_policy: Compile, when: str, code: str) -> None:
    assert code in _codes(compile_policy, _policy(_rule(when=when)))


def test_now_is_allowed_and_reserved_names_are_typed(compile_policy: Compile) -> None:
    policy_set = compile_policy(_policy(
        _rule(id="a", when='$now - bundle.window_end > t"P30D"'),
        _rule(id="b", when="'payments' in system.tags and system.risk_tier == 'high' and recall < 0.9"),
        _rule(id="c", when="segments['region:asia']['recall'] < 0.5"),
        _rule(id="d", scope="segments", when="segment.dimension == 'age' and approval_rate < peers.approval_rate"),
        _rule(id="e", when="bundle.kpis.recall < previous.recall"),
    ))
    needs = {r.rule.id: sorted(map(str, r.needs)) for r in policy_set.rules()}
    assert needs == {"a": [], "b": ["recall"], "c": [], "d": ["approval_rate", "peers.approval_rate"],
                     "e": ["bundle.kpis.recall", "previous.recall"]}


def test_all_errors_of_all_files_are_reported_sorted(tmp_path: Path, compiler: PolicyCompiler) -> None:
    first = write_yaml(tmp_path / "a.yaml", _policy(_rule(id="x", when="recal < 1"),
                                                    _rule(id="y", kpi="recall", min=0.5, controls=["iso-42001:Z"])))
    second = write_yaml(tmp_path / "b.yaml", _policy(_rule(id="z", when="recall < 1"), id="p"))
    (tmp_path / "c.yaml").write_text("id: [unclosed\n")
    with pytest.raises(CharterError) as info:
        compiler.compile_files(policy_files(tmp_path))
    located = [(d.location.file, d.code) for d in info.value.diagnostics]
    assert located == [(str(first), "unknown_symbol"), (str(first), "unknown_control"),
                       (str(second), "duplicate_policy"), (str(tmp_path / "c.yaml"), "yaml_syntax")]


def test_duplicate_rule_ids(compile_policy: Compile) -> None:
    assert _codes(compile_policy, _policy(_rule(when="recall < 1"), _rule(when="recall < 2"))) == ["duplicate_rule"]


def test_warnings_for_constant_conditions_and_missing_controls(compile_policy: Compile) -> None:
    policy_set = compile_policy(_policy(_rule(when="1 > 2", controls=["iso-42001:A.6.2.6"]),
                                        _rule(id="s", when="recall < 1")))
    assert sorted(w.code for w in policy_set.warnings) == ["constant_condition", "no_controls"]


def test_unknown_threshold_kpi(compile_policy: Compile) -> None:
    with pytest.raises(CharterError) as info:
        compile_policy(_policy(_rule(kpi="recal", min=0.5)))
    assert info.value.code == "unknown_kpi" and "did you mean 'recall'" in str(info.value)


def test_policy_digest_changes_with_content(compile_policy: Compile) -> None:
    a = compile_policy(_policy(_rule(kpi="recall", min=0.5))).policies[0].digest
    b = compile_policy(_policy(_rule(kpi="recall", min=0.6))).policies[0].digest
    again = compile_policy(_policy(_rule(kpi="recall", min=0.5))).policies[0].digest
    assert a == again != b


def test_missing_directory_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(CharterError) as info:
        policy_files(tmp_path / "nope")
    assert info.value.code == "file_not_found"


def test_supporting_controls_are_checked_like_primary_ones(compile_policy: Compile) -> None:
    document = _policy(_rule(kpi="recall", min=0.5, controls=["eu-ai-act:art-15(1)"],
                             supporting_controls=["eu-ai-act:art-13(3)(b)(ii)", "iso-42001:A.6.2.99"]))
    with pytest.raises(CharterError) as info:
        compile_policy(document)
    [problem] = info.value.diagnostics
    assert (problem.code, problem.location.path) == ("unknown_control", "$.rules[0].supporting_controls[1]")
    assert problem.location.line is not None and problem.location.rule == "r"


def test_a_control_may_not_be_both_primary_and_supporting(compile_policy: Compile) -> None:
    document = _policy(_rule(kpi="recall", min=0.5, controls=["eu-ai-act:art-15(1)", "iso-42001:A.6.2.4"],
                             supporting_controls=["iso-42001:A.6.2.4"]))
    with pytest.raises(CharterError) as info:
        compile_policy(document)
    [problem] = info.value.diagnostics
    assert problem.code == "control_both_primary_and_supporting"
    assert problem.location.path == "$.rules[0].supporting_controls[0]" and problem.location.line is not None


@pytest.mark.parametrize("ref", ["iso-42001:9.2", "iso-42001:7.5", "eu-ai-act:ch-iii.s3", "eu-ai-act:annex-iii.5",
                                 "eu-ai-act:annex-iv", "eu-ai-act:art-3(49)", "nist-ai-rmf:MEASURE-2",
                                 "nist-ai-rmf:GOVERN"])
@pytest.mark.parametrize("field", ["controls", "supporting_controls"])
def test_controls_reports_do_not_assess_are_refused(compile_policy: Compile, ref: str, field: str) -> None:
    rule = _rule(kpi="recall", min=0.5, controls=["iso-42001:A.6.2.4"])
    rule[field] = [*rule.get(field, []), ref] if field == "controls" else [ref]
    assert _codes(compile_policy, _policy(rule)) == ["unassessed_control"]


def test_supporting_controls_enter_the_digest_and_empty_ones_leave_it_unchanged(compile_policy: Compile) -> None:
    plain = compile_policy(_policy(_rule(kpi="recall", min=0.5, controls=["eu-ai-act:art-15(1)"]))).policies[0]
    assert "supporting_controls" not in plain.policy.model_dump(mode="json")["rules"][0]
    empty = compile_policy(_policy(_rule(kpi="recall", min=0.5, controls=["eu-ai-act:art-15(1)"],
                                         supporting_controls=[]))).policies[0]
    supported = compile_policy(_policy(_rule(kpi="recall", min=0.5, controls=["eu-ai-act:art-15(1)"],
                                             supporting_controls=["eu-ai-act:art-9(8)"]))).policies[0]
    assert plain.digest == empty.digest != supported.digest
    dumped = supported.policy.model_dump(mode="json")
    assert dumped["rules"][0]["supporting_controls"] == ["eu-ai-act:art-9(8)"]
    assert supported.rules[0].rule.supporting_controls == ("eu-ai-act:art-9(8)",)
    assert supported.rules[0].rule.controls == ("eu-ai-act:art-15(1)",)


def test_digest_of_a_rule_without_supporting_controls_is_the_one_recorded_before_the_field(
        compile_policy: Compile) -> None:
    # Pinned from the release before `supporting_controls` existed: ledgers hold such digests.
    policy = compile_policy(_policy(_rule(kpi="recall", min=0.5, controls=["eu-ai-act:art-15"]))).policies[0]
    assert policy.digest == PRE_SUPPORTING_DIGEST


def test_publication_accepts_the_normalized_form_with_supporting_controls() -> None:
    from charter.authority import _require_normalized
    from charter.policy.model import Policy

    document = Policy.model_validate(_policy(_rule(kpi="recall", min=0.5, controls=["eu-ai-act:art-15(1)"],
                                                   supporting_controls=["eu-ai-act:art-9(8)"]))).model_dump(mode="json")
    _require_normalized(document, "p", "1.0.0")
    with pytest.raises(CharterError) as info:
        _require_normalized({**document, "rules": [{**document["rules"][0], "supporting_controls": []}]}, "p", "1.0.0")
    assert info.value.code == "policy_not_normalized"


@pytest.mark.parametrize("ref", ["x" * 121, "eu-ai-act:art-10" + "(a)" * 40])
def test_overlong_control_texts_are_schema_errors(compile_policy: Compile, ref: str) -> None:
    codes = _codes(compile_policy, _policy(_rule(kpi="recall", min=0.5, supporting_controls=[ref])))
    assert codes == ["policy_schema"]


#: digest of ``_policy(_rule(kpi="recall", min=0.5, controls=["eu-ai-act:art-15"]))`` at a8e4a6d
PRE_SUPPORTING_DIGEST = "1fadfaf0fffa000d817c304ad4b79def9c4d6c2a2c86f56ef8cc2252395ce174"


# -- a condition gated on the system is no primary evidence (review B4) ------------------------------------


@pytest.mark.parametrize("when", [
    'system.risk_tier == "high" and human_override_rate < 0.005',
    'system.risk_tier != "high" or human_override_rate < 0.005',
    'not (system.risk_tier != "high" or human_override_rate >= 0.005)',
    'human_override_rate < 0.005 and "insurance" in system.tags',
    'system.kind == "agentic" ? human_override_rate < 0.005 : false',
])
def test_a_system_gated_condition_may_not_be_a_primary_mapping(compile_policy: Compile, when: str) -> None:
    document = _policy(_rule(when=when, controls=["eu-ai-act:art-14(4)(b)"]))
    with pytest.raises(CharterError) as info:
        compile_policy(document)
    [problem] = info.value.diagnostics
    assert problem.code == "system_gated_primary" and problem.location.path == "$.rules[0].controls"
    lines = Path(str(problem.location.file)).read_text().splitlines()
    assert problem.location.rule == "r" and lines[int(problem.location.line or 0) - 1].lstrip().startswith("controls:")
    assert "gated on the system" in problem.message and "eu-ai-act:art-14(4)(b)" in problem.message
    # The same condition as supporting evidence is fine.
    compile_policy(_policy(_rule(when=when, supporting_controls=["eu-ai-act:art-14(4)(b)"])))


@pytest.mark.parametrize("when", ["human_override_rate < 0.005", "recall < baseline.recall - 0.05",
                                  "$now - bundle.window_end > t\"P45D\"",
                                  "human_override_rate < (system.risk_tier == \"high\" ? 0.01 : 0.005)"])
def test_conditions_that_always_read_the_evidence_may_be_primary(compile_policy: Compile, when: str) -> None:
    assert compile_policy(_policy(_rule(when=when, controls=["eu-ai-act:art-14(4)(b)"]))).policies


def test_the_gate_also_holds_for_warn_when(compile_policy: Compile) -> None:
    document = _policy(_rule(when="human_override_rate < 0.005", controls=["eu-ai-act:art-14(4)(b)"],
                             warn_when='system.risk_tier == "high" and human_override_rate < 0.01'))
    assert _codes(compile_policy, document) == ["system_gated_primary"]


def test_policy_versions_recorded_in_a_ledger_are_not_judged_by_the_authoring_rule(compiler: PolicyCompiler) -> None:
    # A version recorded before the rule existed must still replay: reports judge by recorded versions.
    from charter._sources import SourceMap

    document = _policy(_rule(when='system.risk_tier == "high" and human_override_rate < 0.005',
                             controls=["eu-ai-act:art-14(4)(b)"]))
    assert compiler.compile_documents([(document, SourceMap("ledger"))]).policies
