"""OSCAL export: valid assessment results and POA&M (compliance-trestle, NIST JSON schemas), deterministic,
`satisfied` only for operating controls, every observation traceable to its ledger entry, hostile text inert."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trestle.oscal import assessment_results as trestle_ar
from trestle.oscal import poam as trestle_poam

from charter.errors import CharterError
from charter.report.oscal import (
    NS,
    OSCAL_VERSION,
    OscalControlStatus,
    OscalInput,
    OscalObservation,
    OscalRisk,
    assessment_results,
    control_token,
    evidence_href,
    plan_of_action,
    render_oscal,
)
from tests.conftest import REPO

AR, POAM = "assessment-results", "plan-of-action-and-milestones"
ORIGIN = "acme.example/charter"
ROOT = "e3" * 32
AS_OF = "2026-12-03T12:00:00.000Z"
PARITY = "core.fairness/approval-parity@claims-approval"
RECALL = "core.quality/recall@claims-approval"
TOXICITY = "gen.safety/toxicity@support-chatbot"


def _hash(char: str) -> str:
    return char * 64


def _input(**changes: Any) -> OscalInput:
    """A realistic report: two systems, every control status, evidence with and without ledger entries, an
    incident under investigation and an active waiver."""
    observations = (
        OscalObservation(PARITY, "claims-approval", "core.fairness/approval-parity", "Approval parity by age group",
                         "breach", ("iso-42001:A.5.5", "iso-42001:A.6.2.6", "eu-ai-act:art-10(2)(f)"),
                         {"approval_parity": 0.71}, {"approval_parity": 0.8},
                         "approval parity 0.71 is below the floor 0.8 for segment age:65+",
                         "2026-11-30T00:00:00.000Z", 41, _hash("a")),
        OscalObservation(RECALL, "claims-approval", "core.quality/recall", "Recall", "pass", ("iso-42001:A.6.2.4",),
                         {"recall": 0.93, "support": 1200.0}, {"recall": 0.9}, "recall 0.93 meets 0.9",
                         "2026-11-30T00:00:00+01:00", 42, _hash("b")),
        OscalObservation(TOXICITY, "support-chatbot", "gen.safety/toxicity", "Toxicity rate", "missing",
                         ("iso-42001:A.6.2.6",), {}, {"toxicity_rate": 0.01}, "no bundle in the window",
                         "2026-12-01T00:00:00Z", None, None),
    )
    statuses = (
        OscalControlStatus("iso-42001:A.6.2.4", "claims-approval", "operating", "its primary KPI rule passes",
                           (RECALL,)),
        OscalControlStatus("iso-42001:A.5.5", "claims-approval", "nonconformity", "breach under investigation",
                           (PARITY,)),
        OscalControlStatus("iso-42001:A.6.2.6", "claims-approval", "undetermined", "evidence disagrees", (PARITY,)),
        OscalControlStatus("iso-42001:A.2.2", "claims-approval", "implemented", "AI policy documented, attested", ()),
        OscalControlStatus("iso-42001:A.6.2.6", "support-chatbot", "no_evidence", "no bundle in the window",
                           (TOXICITY,)),
        OscalControlStatus("iso-42001:A.10.4", "support-chatbot", "not_applicable",
                           "excluded in the Statement of Applicability: no external customers", ()),
        OscalControlStatus("iso-42001:10.2", "support-chatbot", "designed", "procedure documented", ()),
    )
    risks = (
        OscalRisk("INC-1a2b3c4d", "incident", "claims-approval", "core.fairness/approval-parity", ("iso-42001:A.5.5",),
                  "Approval parity breach", "Approval parity below its floor for applicants over 65.", "high",
                  "investigating", "2026-11-30T01:00:00.000Z", "2026-12-14T01:00:00.000Z", 43, _hash("c")),
        OscalRisk("WVR-0001", "waiver", "support-chatbot", "gen.safety/toxicity", ("iso-42001:A.6.2.6",),
                  "Toxicity risk accepted", "Accepted until the retrained model ships.", "medium", "active",
                  "2026-11-01T00:00:00.000Z", "2027-01-01T00:00:00.000Z", 30, _hash("d")),
    )
    base = OscalInput("iso-42001", "ISO/IEC 42001:2023", "ISO/IEC 42001 audit readiness", AS_OF, ORIGIN, 50, ROOT,
                      statuses, observations, risks)
    return dataclasses.replace(base, **changes)


def _trestle_valid(documents: dict[str, str]) -> None:
    """Whole documents, root key included, loaded with compliance-trestle's pydantic models."""
    trestle_ar.Model.model_validate(json.loads(documents[AR]))
    if POAM in documents:
        trestle_poam.Model.model_validate(json.loads(documents[POAM]))


def _results(data: OscalInput | None = None) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = assessment_results(data or _input())[AR]["results"]
    return results


def _prop(item: dict[str, Any], name: str) -> list[str]:
    return [p["value"] for p in item.get("props", []) if p["name"] == name and p["ns"] == NS]


# -- validity ----------------------------------------------------------------------------------------


def test_both_documents_load_with_compliance_trestle() -> None:
    documents = render_oscal(_input())
    assert set(documents) == {AR, POAM}
    _trestle_valid(documents)
    ar = json.loads(documents[AR])[AR]
    assert ar["metadata"]["oscal-version"] == OSCAL_VERSION
    assert ar["metadata"]["last-modified"] == AS_OF
    assert [r["title"] for r in ar["results"]] == ["ISO/IEC 42001:2023: claims-approval",
                                                   "ISO/IEC 42001:2023: support-chatbot"]


def test_trestle_rejects_what_oscal_forbids() -> None:
    """The trestle check can fail: an objective state OSCAL does not know is refused."""
    document = assessment_results(_input())
    document[AR]["results"][0]["findings"][0]["target"]["status"]["state"] = "partially-satisfied"
    with pytest.raises(ValueError, match="state"):
        _trestle_valid({AR: json.dumps(document)})


def _schema_dirs() -> list[Path]:
    """Directories holding NIST's released OSCAL JSON schemas (oscal_assessment-results_schema.json and
    oscal_poam_schema.json, one directory per OSCAL version). They are not in this repository; the test looks
    in $CHARTER_OSCAL_SCHEMAS and in shared/reference/oscal beside the repository."""
    roots = [Path(os.environ["CHARTER_OSCAL_SCHEMAS"])] if os.environ.get("CHARTER_OSCAL_SCHEMAS") else []
    roots.append(REPO.parent / "shared" / "reference" / "oscal")
    return sorted({p.parent for root in roots if root.is_dir()
                   for p in root.rglob("oscal_assessment-results_schema.json")
                   if (p.parent / "oscal_poam_schema.json").is_file()})


def _python_patterns(node: Any) -> Any:
    """The schema with its ECMA regexes made Python's: \\p{L} and \\p{N} (which `re` lacks) as Unicode
    letter and digit classes, and a closing $ as \\Z (Python's $ also matches before a final newline)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                value = value.replace(r"\p{L}", r"[^\W\d_]").replace(r"\p{N}", r"\d")
                value = value[:-1] + r"\Z" if value.endswith("$") else value
                out[key] = value
            else:
                out[key] = _python_patterns(value)
        return out
    if isinstance(node, list):
        return [_python_patterns(item) for item in node]
    return node


def _schema_errors(documents: dict[str, str], directory: Path) -> list[str]:
    try:
        import jsonschema
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("jsonschema is not installed: pip install -e '.[dev]'")
    errors = []
    for key, name in ((AR, "oscal_assessment-results_schema.json"), (POAM, "oscal_poam_schema.json")):
        if key not in documents:
            continue
        schema = _python_patterns(json.loads((directory / name).read_text(encoding="utf-8")))
        validator = jsonschema.Draft7Validator(schema)
        errors += [f"{directory.name} {key} {list(e.absolute_path)}: {e.message[:200]}"
                   for e in validator.iter_errors(json.loads(documents[key]))]
    return errors


def test_documents_validate_against_the_nist_json_schemas() -> None:
    directories = _schema_dirs()
    if not directories:
        pytest.skip("NIST OSCAL JSON schemas not found: set CHARTER_OSCAL_SCHEMAS or add shared/reference/oscal")
    documents = render_oscal(_input())
    for directory in directories:
        assert _schema_errors(documents, directory) == []
        broken = json.loads(documents[AR])
        broken[AR]["results"][0]["observations"][0]["methods"] = []  # minItems 1: the check can fail
        assert _schema_errors({AR: json.dumps(broken)}, directory)


# -- meaning -----------------------------------------------------------------------------------------


def test_satisfied_only_where_the_control_operates() -> None:
    findings = [f for r in _results() for f in r.get("findings", [])]
    states = {(_prop(f, "control-ref")[0], _prop(f, "system")[0]): (_prop(f, "status")[0], f["target"]["status"])
              for f in findings}
    assert states == {
        ("iso-42001:A.6.2.4", "claims-approval"): ("operating", {"state": "satisfied", "reason": "pass"}),
        ("iso-42001:A.5.5", "claims-approval"): ("nonconformity", {"state": "not-satisfied", "reason": "fail"}),
        ("iso-42001:A.6.2.6", "claims-approval"): ("undetermined", {"state": "not-satisfied", "reason": "other"}),
        ("iso-42001:A.2.2", "claims-approval"): ("implemented", {"state": "not-satisfied", "reason": "other"}),
        ("iso-42001:A.6.2.6", "support-chatbot"): ("no_evidence", {"state": "not-satisfied", "reason": "other"}),
        ("iso-42001:10.2", "support-chatbot"): ("designed", {"state": "not-satisfied", "reason": "other"}),
    }
    implementation = {_prop(f, "status")[0]: f["target"].get("implementation-status", {}).get("state")
                      for f in findings}
    assert implementation == {"operating": "implemented", "implemented": "implemented", "designed": "planned",
                              "nonconformity": None, "undetermined": None, "no_evidence": None}


def test_a_passing_kpi_alone_satisfies_nothing() -> None:
    """Every observation passes, but no control is operating: no finding is satisfied."""
    data = _input()
    passing = tuple(dataclasses.replace(o, status="pass") for o in data.observations)
    statuses = tuple(dataclasses.replace(s, status="implemented") if s.status == "operating" else s
                     for s in data.statuses)
    findings = [f for r in _results(dataclasses.replace(data, observations=passing, statuses=statuses))
                for f in r.get("findings", [])]
    assert findings and all(f["target"]["status"]["state"] == "not-satisfied" for f in findings)


def test_not_applicable_controls_are_excluded_with_their_reason() -> None:
    chatbot = _results()[1]
    assert [_prop(f, "status")[0] for f in chatbot["findings"]] == ["designed", "no_evidence"]
    (selection,) = chatbot["reviewed-controls"]["control-selections"]
    assert selection["include-controls"] == [{"control-id": "iso-42001_10.2"}, {"control-id": "iso-42001_a.6.2.6"}]
    assert selection["exclude-controls"] == [{"control-id": "iso-42001_a.10.4"}]
    grouped = {p["name"]: p["value"] for p in selection["props"] if p.get("group") == "iso-42001_a.10.4"}
    assert grouped == {"control-ref": "iso-42001:A.10.4", "status": "not_applicable",
                       "reason": "excluded in the Statement of Applicability: no external customers"}
    assert "no external customers" in selection["remarks"]


def test_a_system_where_nothing_applies_includes_all_less_the_exclusions() -> None:
    data = _input()
    statuses = tuple(s for s in data.statuses if s.system == "support-chatbot" and s.status == "not_applicable")
    only = dataclasses.replace(data, statuses=statuses, observations=(), risks=())
    documents = render_oscal(only)
    _trestle_valid(documents)
    (result,) = json.loads(documents[AR])[AR]["results"]
    (selection,) = result["reviewed-controls"]["control-selections"]
    assert selection["include-all"] == {} and "findings" not in result
    assert POAM not in documents


def test_every_observation_names_its_ledger_entry() -> None:
    data = _input()
    by_id = {o.id: o for o in data.observations}
    observations = [o for r in _results() for o in r["observations"]]
    assert len(observations) == 3
    for observation in observations:
        source = next(o for o in data.observations if o.title == observation["title"])
        (evidence,) = observation["relevant-evidence"]
        assert observation["methods"] == ["TEST"] and observation["types"] == ["control-objective"]
        if source.ledger_seq is None:
            assert evidence["href"] == f"urn:charter:ledger:{ORIGIN}:checkpoint:50#root:{ROOT}"
            continue
        assert evidence["href"] == f"urn:charter:ledger:{ORIGIN}:seq:{source.ledger_seq}#sha256:{source.record_hash}"
        assert _prop(evidence, "ledger-seq") == [str(source.ledger_seq)]
        assert _prop(evidence, "record-hash") == [source.record_hash]
        for name, value in source.observed.items():
            assert f"{name.replace('_', chr(92) + '_')} = {value!r}" in observation["description"]
            assert f"{name}={value!r}" in _prop(observation, "observed")
        assert set(_prop(observation, "control-ref")) == set(source.controls)
    assert by_id[RECALL].collected != observations[1]["collected"] == "2026-11-29T23:00:00.000Z"  # normalised to UTC


def test_findings_cite_their_observations_and_risks() -> None:
    claims = _results()[0]
    observation_uuids = {_prop(o, "rule")[0]: o["uuid"] for o in claims["observations"]}
    risk_uuids = {_prop(r, "id")[0]: r["uuid"] for r in claims["risks"]}
    nonconformity = next(f for f in claims["findings"] if _prop(f, "status") == ["nonconformity"])
    assert nonconformity["related-observations"] == [
        {"observation-uuid": observation_uuids["core.fairness/approval-parity"]}]
    assert nonconformity["related-risks"] == [{"risk-uuid": risk_uuids["INC-1a2b3c4d"]}]
    assert nonconformity["target"]["target-id"] == "iso-42001_a.5.5"


def test_poam_lists_incidents_and_waivers_with_deadlines() -> None:
    poam = plan_of_action(_input())
    assert poam is not None
    document = poam[POAM]
    risks = {_prop(r, "id")[0]: r for r in document["risks"]}
    assert {k: r["status"] for k, r in risks.items()} == {"INC-1a2b3c4d": "investigating",
                                                          "WVR-0001": "deviation-approved"}
    incident = risks["INC-1a2b3c4d"]
    assert incident["deadline"] == "2026-12-14T01:00:00.000Z"
    (task,) = incident["remediations"][0]["tasks"]
    assert task["type"] == "milestone" and task["timing"] == {"on-date": {"date": "2026-12-14T01:00:00.000Z"}}
    assert incident["links"][0]["href"] == evidence_href(ORIGIN, 43, _hash("c"))
    items = {i["related-risks"][0]["risk-uuid"]: i for i in document["poam-items"]}
    assert set(items) == {r["uuid"] for r in risks.values()}
    observations = {o["uuid"] for o in document["observations"]}
    assert {o["observation-uuid"] for i in items.values() for o in i["related-observations"]} == observations
    assert document["system-id"]["identifier-type"] == "https://ietf.org/rfc/rfc4122"


@pytest.mark.parametrize(("kind", "state", "expected"), [
    ("incident", "open", "open"), ("incident", "acknowledged", "open"), ("incident", "validated", "investigating"),
    ("incident", "decided", "remediating"), ("incident", "closed", "closed"), ("waiver", "expired", "open"),
])
def test_risk_states_map_to_oscal_risk_status(kind: str, state: str, expected: str) -> None:
    data = _input()
    risk = dataclasses.replace(data.risks[0], kind=kind, state=state)
    poam = plan_of_action(dataclasses.replace(data, risks=(risk,)))
    assert poam is not None and poam[POAM]["risks"][0]["status"] == expected


def test_no_risk_no_poam() -> None:
    data = _input(risks=())
    assert plan_of_action(data) is None
    assert set(render_oscal(data)) == {AR}


@pytest.mark.parametrize(("ref", "token"), [
    ("iso-42001:A.6.2.6", "iso-42001_a.6.2.6"),
    ("iso-42001:10.2", "iso-42001_10.2"),
    ("eu-ai-act:art-55(1)(a)", "eu-ai-act_art-55.1.a"),
    ("nist-ai-rmf:MEASURE-2.6", "nist-ai-rmf_measure-2.6"),
    ("eu-ai-act:annex-iii point 5(b)", "eu-ai-act_annex-iii-point-5.b"),
    ("42:x", "_42_x"),
])
def test_control_tokens(ref: str, token: str) -> None:
    assert control_token(ref) == token
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9._-]*", token)


# -- determinism -------------------------------------------------------------------------------------


def test_same_input_same_bytes_in_any_order() -> None:
    data = _input()
    shuffled = dataclasses.replace(data, statuses=data.statuses[::-1], observations=data.observations[::-1],
                                   risks=data.risks[::-1])
    assert render_oscal(data) == render_oscal(data) == render_oscal(shuffled)


def test_uuids_are_stable_per_subject_and_new_per_document() -> None:
    first = json.loads(render_oscal(_input())[AR])[AR]
    later = json.loads(render_oscal(_input(as_of="2026-12-04T12:00:00.000Z", checkpoint_size=60))[AR])[AR]
    assert first["uuid"] != later["uuid"]
    assert first["results"][0]["uuid"] != later["results"][0]["uuid"]
    assert [f["uuid"] for f in first["results"][0]["findings"]] == [f["uuid"] for f in later["results"][0]["findings"]]
    uuids = re.findall(r'"(?:uuid|[a-z-]+-uuid)": "([^"]+)"', render_oscal(_input())[AR])
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", u) for u in uuids)


# -- hostile input -----------------------------------------------------------------------------------

HOSTILE = ("line\nbreak\r\n\ttab \x00nul \x1b[31mred\x7f \u202eevil\u202c \ud800 \ufeff *bold* [link](http://x) "
           "<script>alert(1)</script> {{ insert: param, p1 }} | pipe `code` trailing newline\n")


def test_hostile_text_still_validates_and_stays_inert() -> None:
    data = _input()
    observation = dataclasses.replace(data.observations[0], title=HOSTILE, explanation=HOSTILE + "x" * 10_000,
                                      observed={HOSTILE: 1.0, "nan": float("nan")})
    status = dataclasses.replace(data.statuses[1], reason=HOSTILE)
    excluded = dataclasses.replace(data.statuses[5], reason=HOSTILE)
    risk = dataclasses.replace(data.risks[0], title=HOSTILE, description=HOSTILE, severity=HOSTILE)
    hostile = dataclasses.replace(data, title=HOSTILE, observations=(observation, *data.observations[1:]),
                                  statuses=(data.statuses[0], status, *data.statuses[2:5], excluded, data.statuses[6]),
                                  risks=(risk, data.risks[1]))
    documents = render_oscal(hostile)
    _trestle_valid(documents)
    for directory in _schema_dirs():
        assert _schema_errors(documents, directory) == []
    for text in documents.values():
        text.encode("utf-8")  # no lone surrogate survives
        assert "x" * 10_000 in text  # the evidence is not cut
        for field, value in _strings(json.loads(text)):
            assert not re.search("[\x00-\x09\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069\ufeff]", value), field
            if field in MARKUP:  # OSCAL markup is Markdown: hostile syntax arrives escaped
                assert not re.search(r"(?<!\\)[<>*_\[\]{}`|~&#]", value), (field, value)
            if field not in MULTILINE:
                assert "\n" not in value, field


MARKUP = {"title", "description", "remarks", "statement", "text"}
MULTILINE = {"description", "remarks", "statement"}


def _strings(node: Any, field: str = "") -> list[tuple[str, str]]:
    if isinstance(node, dict):
        return [pair for key, value in node.items() for pair in _strings(value, key)]
    if isinstance(node, list):
        return [pair for item in node for pair in _strings(item, field)]
    return [(field, node)] if isinstance(node, str) else []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(min_size=1, max_size=60).filter(lambda s: s.split()), st.text(max_size=200))
def test_any_system_name_and_text_validate(system: str, text: str) -> None:
    data = _input()
    observations = tuple(dataclasses.replace(o, system=system, title=text, explanation=text)
                         for o in data.observations)
    statuses = tuple(dataclasses.replace(s, system=system, reason=text) for s in data.statuses
                     if s.system == "claims-approval" or s.status == "not_applicable")
    risks = tuple(dataclasses.replace(r, system=system, title=text, description=text) for r in data.risks)
    _trestle_valid(render_oscal(dataclasses.replace(data, observations=observations, statuses=statuses, risks=risks)))


@pytest.mark.parametrize(("changes", "code", "path"), [
    ({"as_of": "2026-12-03 noon"}, "bad_time", "$.as_of"),
    ({"as_of": "2026-12-03T12:00:00"}, "bad_time", "$.as_of"),
    ({"as_of": "1066-10-14T12:00:00Z"}, "bad_time", "$.as_of"),
    ({"as_of": "9999-12-31T23:00:00-05:00"}, "bad_time", "$.as_of"),
    ({"checkpoint_root": "E3" * 32}, "bad_checkpoint", "$.checkpoint_root"),
    ({"checkpoint_size": 0}, "bad_checkpoint", "$.checkpoint_size"),
    ({"origin": "has space"}, "bad_origin", "$.origin"),
    ({"framework": "eu-ai-act"}, "wrong_framework", "$.statuses[0].control"),
])
def test_bad_input_is_refused_with_its_path(changes: dict[str, Any], code: str, path: str) -> None:
    with pytest.raises(CharterError) as caught:
        render_oscal(_input(**changes))
    assert (code, path) in {(d.code, d.location.path) for d in caught.value.diagnostics}


def test_inconsistent_input_is_refused_all_at_once() -> None:
    data = _input()
    observations = (dataclasses.replace(data.observations[0], collected="2026-12-05T00:00:00Z", record_hash=None),
                    dataclasses.replace(data.observations[1], status="great", controls=("A.6.2.4",)),
                    data.observations[1])
    statuses = (dataclasses.replace(data.statuses[0], observations=("nope", TOXICITY)), data.statuses[0])
    risks = (dataclasses.replace(data.risks[1], state="pending"),)
    with pytest.raises(CharterError) as caught:
        render_oscal(dataclasses.replace(data, observations=observations, statuses=statuses, risks=risks))
    found = {(d.code, d.location.path) for d in caught.value.diagnostics}
    assert found == {
        ("after_report_time", "$.observations[0].collected"),
        ("bad_evidence", "$.observations[0]"),
        ("bad_status", "$.observations[1].status"),
        ("bad_control_ref", "$.observations[1].controls[0]"),
        ("duplicate_id", "$.observations[2].id"),
        ("unknown_observation", "$.statuses[0].observations[0]"),
        ("unknown_observation", "$.statuses[0].observations[1]"),
        ("duplicate_id", "$.statuses[1]"),
        ("bad_status", "$.risks[0].state"),
    }


def test_control_refs_meeting_in_one_token_are_refused() -> None:
    data = _input()
    clash = dataclasses.replace(data.statuses[0], control="iso-42001:a.6.2.4")
    with pytest.raises(CharterError, match=r"both become the OSCAL id 'iso-42001_a\.6\.2\.4'"):
        render_oscal(dataclasses.replace(data, statuses=(*data.statuses, clash)))


# -- test results and events -------------------------------------------------------------------------

BIAS_AUDIT = "test:44@claims-approval"
REVIEW = "evt:45@claims-approval"


def _with_tests_and_events(**changes: Any) -> OscalInput:
    base = _input()
    named = "core.fairness/approval-parity"  # a test named like a KPI rule
    audit = OscalObservation(BIAS_AUDIT, "claims-approval", named, named, "current", ("iso-42001:A.6.2.6",), {}, {},
                             "", "2026-11-15T00:00:00.000Z", 44, _hash("e"),
                             kind="test_result", outcome="passed", method="fairlearn MetricFrame", actor="tom.berger")
    review = OscalObservation(REVIEW, "claims-approval", "management_review", "Management review Q4", "current",
                              ("iso-42001:A.2.2",), {}, {}, "", "2026-11-20T00:00:00.000Z", 45, _hash("f"),
                              kind="event", actor="anna.schmidt")
    audit = dataclasses.replace(audit, **changes)
    statuses = tuple(dataclasses.replace(s, status="operating", observations=(REVIEW,))
                     if (s.control, s.system) == ("iso-42001:A.2.2", "claims-approval") else s for s in base.statuses)
    return dataclasses.replace(base, observations=(*base.observations, audit, review), statuses=statuses)


def test_test_results_and_events_are_observations_with_their_methods() -> None:
    data = _with_tests_and_events()
    documents = render_oscal(data)
    _trestle_valid(documents)
    claims = _results(data)[0]
    observed = {_prop(o, "ledger-seq")[0]: o for o in claims["observations"] if _prop(o, "ledger-seq")}
    audit, review = observed["44"], observed["45"]
    assert audit["methods"] == ["TEST"] and _prop(audit, "outcome") == ["passed"]
    assert _prop(audit, "method") == ["fairlearn MetricFrame"] and audit["collected"] == "2026-11-15T00:00:00.000Z"
    assert review["methods"] == ["EXAMINE"] and _prop(review, "event-kind") == ["management_review"]
    assert audit["relevant-evidence"][0]["href"] == evidence_href(ORIGIN, 44, _hash("e"))
    finding = next(f for f in claims["findings"] if _prop(f, "control-ref") == ["iso-42001:A.2.2"])
    assert finding["target"]["status"]["state"] == "satisfied"
    assert finding["related-observations"] == [{"observation-uuid": review["uuid"]}]
    # a test named like a KPI rule is no evidence about the rule's incident
    poam = json.loads(documents[POAM])[POAM]
    related = {o["observation-uuid"] for item in poam["poam-items"] for o in item.get("related-observations", [])}
    assert audit["uuid"] not in related


@pytest.mark.parametrize(("changes", "path"), [
    ({"outcome": "mostly"}, "$.observations[3].outcome"),
    ({"status": "pass"}, "$.observations[3].status"),
    ({"ledger_seq": None, "record_hash": None}, "$.observations[3]"),
])
def test_a_malformed_test_observation_is_refused(changes: dict[str, Any], path: str) -> None:
    with pytest.raises(CharterError) as info:
        render_oscal(_with_tests_and_events(**changes))
    assert path in {d.location.path for d in info.value.diagnostics}, info.value


def test_an_incident_names_only_the_controls_it_holds_in_nonconformity() -> None:
    """Review: an incident said its controls "cannot be shown operating until it is resolved" while the same
    result marked some of them satisfied (its rule's latest finding only warned, or the mapping was supporting)."""
    incident = _input().risks[0]
    bears_on = dataclasses.replace(incident, controls=("iso-42001:A.5.5", "iso-42001:A.6.2.4"))
    results = _results(_input(risks=(bears_on,)))
    (risk,) = [r for result in results for r in result.get("risks", [])
               if "INC-1a2b3c4d" in r["title"] + r["statement"]]
    statement = " ".join(risk["statement"].split())
    assert "holds in nonconformity until it is resolved: iso-42001:A.5.5." in statement
    assert "other controls it bears on (iso-42001:A.6.2.4) have their own status" in statement
    satisfied = {p["value"] for result in results for f in result["findings"] for p in f["props"]
                 if p["name"] == "control-ref" and f["target"]["status"]["state"] == "satisfied"}
    held = statement.split("until it is resolved:")[1].split(".")[0]
    assert not any(control in held for control in satisfied)
