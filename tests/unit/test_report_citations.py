"""Review M3: a report cites every entry it relies on, not only findings, bundles, documents and attestations.

Decisions and waivers that govern a breach, incident openings, Art. 73 classifications and filings, the
classification (or Statement of Applicability, target profile) behind an applicability decision, and
the policy, escalation and applicability activations: each with seq and record hash in HTML, Markdown
and JSON, an inclusion proof, a check by `charter report verify`, and a link in OSCAL.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from trestle.oscal import assessment_results as trestle_ar
from trestle.oscal import poam as trestle_poam

from charter.incidents import classify, file_report, load_book
from charter.ledger import make_checkpoint
from charter.ledger.records import format_time
from charter.registry import AnnexIIIUse
from charter.report import ReportDocument, build, issue, oscal_input, render, verify_report
from charter.report.oscal import evidence_href, render_oscal
from charter.submission import register_system, systems_in_ledger
from tests.golden.scenario import Scenario, bind_scenario, build_scenario, fixed_key


@pytest.fixture
def triaged(db_url: str) -> tuple[Scenario, str]:
    """The golden scenario with the claims model recorded EU high-risk and its fairness incident classified
    serious and reported: every kind of governing entry is in the ledger."""
    scenario = build_scenario(db_url)
    ledger = scenario.ledger
    current = systems_in_ledger(ledger)["claims-approval"]
    assert current.eu_ai_act is not None
    register_system(ledger, current.model_copy(update={"eu_ai_act": current.eu_ai_act.model_copy(update={
        "annex_iii": AnnexIIIUse(area=5, point="c", reasoning="Test: life and health insurance pricing."),
        "reasoning": "High-risk (test): Annex III point 5(c)."})}), fixed_key("ben.okafor"))
    claims = next(i for i in load_book(ledger).incidents.values()
                  if i.system_id == "claims-approval" and i.rule == "core.fairness/approval-parity")
    now = format_time(ledger.clock())
    classify(ledger, claims.id, fixed_key("carla.rossi"), "rights of applicants", serious=True, ground="c",
             aware_at=now)
    file_report(ledger, claims.id, fixed_key("eric.dubois"), authority="BaFin", reference="AI-2026-17",
                kind="initial", filed_at=format_time(ledger.clock()))
    return scenario, claims.id


def _with_incident(scenario: Scenario, state: Any, incident_id: str) -> ReportDocument:
    """The report of the first framework that lists the incident under a control that applies to its system
    (the EU AI Act's high-risk articles do not apply yet at the scenario's time: 2 December 2027)."""
    for framework in ("eu-ai-act", "iso-42001", "nist-ai-rmf"):
        document = build(state, framework, scenario.frameworks)
        if any(i.id == incident_id for c in document.controls for i in c.open_incidents):
            return document
    raise AssertionError(f"no report lists {incident_id}")


def _types(scenario: Scenario, document: ReportDocument) -> dict[int, str]:
    """Seq -> entry type of every cited entry, after checking the ledger holds that record hash there."""
    out = {}
    for seq, record_hash in document.cited().items():
        entry = scenario.ledger.entry(seq)
        assert entry is not None and entry.record_hash.hex() == record_hash, seq
        assert seq < document.ledger.described_size
        out[seq] = entry.type
    return out


def test_every_governing_entry_is_cited_with_its_proof(triaged: tuple[Scenario, str]) -> None:
    scenario, claims = triaged
    state = bind_scenario(scenario)
    eu = build(state, "eu-ai-act", scenario.frameworks)
    types = _types(scenario, eu)
    assert {p.seq for p in eu.proofs} == set(types)
    ledger = scenario.ledger
    # the activations judged by
    inputs = eu.inputs
    assert inputs.policy_activation is not None and types[inputs.policy_activation.seq] == "policy.activated"
    assert inputs.policy_activation.seq == inputs.policy_activation_seq
    assert inputs.escalation_activation is not None and types[inputs.escalation_activation.seq] == \
        "escalation.activated"
    assert {f: types[c.seq] for f, c in inputs.applicability_activations.items()} == {
        "iso-42001": "applicability.activated", "nist-ai-rmf": "applicability.activated"}
    # "not applicable because classification Y": the registration in force, i.e. the latest of that system
    latest = {}
    for entry in ledger.entries(0, eu.ledger.described_size, types=("system.registered",)):
        latest[entry.payload["system"]["id"]] = entry.seq
    rows = [row for control in eu.controls for row in control.systems]
    assert rows and all(row.applicability.basis is not None and row.applicability.basis.seq == latest[row.system]
                        for row in rows)
    art9 = next(c for c in eu.controls if c.id == "art-9")
    claims_row = next(r for r in art9.systems if r.system == "claims-approval")
    fraud_row = next(r for r in art9.systems if r.system == "fraud-detector")
    # high-risk now, so only not yet applicable; the fraud model is not high-risk: each cites its own classification
    assert (claims_row.applicability.status, fraud_row.applicability.status) == ("not_yet_applicable",
                                                                                 "not_applicable")
    for row in (claims_row, fraud_row):
        registered = ledger.entry(row.applicability.basis.seq)  # type: ignore[union-attr]
        assert registered is not None and registered.payload["system"]["id"] == row.system
    assert ledger.entry(claims_row.applicability.basis.seq).payload["system"]["eu_ai_act"]["annex_iii"]  # type: ignore[union-attr]
    # the incident: its opening, its Art. 73 classification and its filing; the decision on it
    listing = _with_incident(scenario, state, claims)
    types.update(_types(scenario, listing))
    incidents = {i.id: i for c in listing.controls for i in c.open_incidents}
    incident = incidents[claims]
    assert types[incident.opened.seq] == "incident.opened"
    assert incident.classification is not None and incident.classification.serious
    assert types[incident.classification.seq] == "incident.classified" and incident.classification.ground == "c"
    assert [(types[f.seq], f.authority, f.reference) for f in incident.filings] == [
        ("incident.report_filed", "BaFin", "AI-2026-17")]
    decisions = [d for c in listing.controls for d in c.decisions if d.incident == claims]
    assert decisions and all(types[d.seq] == "incident.transition" and ledger.entry(d.seq).payload["action"] ==  # type: ignore[union-attr]
                             "decide" for d in decisions)
    # "governed by decision X": the entry that governs each governed breach
    governed = [p for p in listing.pairs if p.governed]
    assert governed and all(p.governed_by for p in governed)
    for pair in governed:
        for citation in pair.governed_by:
            entry = ledger.entry(citation.seq)
            assert entry is not None and entry.record_hash.hex() == citation.record_hash
            assert entry.type in ("incident.transition", "waiver.granted")
            assert f"seq {citation.seq}" in pair.note or entry.type == "waiver.granted"
    assert all(not p.governed_by for p in listing.pairs if not p.governed)
    # ISO/IEC 42001: the Statement of Applicability decides Annex A; clauses 4-10 rest on no entry
    iso = build(state, "iso-42001", scenario.frameworks)
    soa = iso.inputs.applicability_activations["iso-42001"]
    iso_rows = {(c.id, r.system): r for c in iso.controls for r in c.systems}
    assert iso_rows[("A.2.2", "claims-approval")].applicability.basis == soa
    assert iso_rows[("5.2", "claims-approval")].applicability.basis is None
    waivers = [w for c in iso.controls for w in c.waivers] + [w for c in eu.controls for w in c.waivers]
    assert waivers and all(ledger.entry(w.seq).type == "waiver.granted" for w in waivers)  # type: ignore[union-attr]
    assert {p.seq for p in iso.proofs} == set(_types(scenario, iso))


def test_markdown_and_html_show_seq_and_hash_where_they_use_an_entry(triaged: tuple[Scenario, str]) -> None:
    scenario, claims = triaged
    state = bind_scenario(scenario)
    document = _with_incident(scenario, state, claims)
    incident = next(i for c in document.controls for i in c.open_incidents if i.id == claims)
    decision = next(d for c in document.controls for d in c.decisions if d.incident == claims)
    assert incident.classification is not None
    eu = build(state, "eu-ai-act", scenario.frameworks)
    basis = next(r.applicability.basis for c in eu.controls for r in c.systems if r.system == "fraud-detector")
    assert basis is not None
    eu_markdown, eu_html = render(eu, "md", state.graph), render(eu, "html", state.graph)
    assert f"(per seq {basis.seq} `{basis.record_hash[:16]}`)" in eu_markdown
    assert f"(per seq {basis.seq} <code>{basis.record_hash[:16]}</code>)" in eu_html
    cited = {"opening": incident.opened, "classification": incident.classification, "filing": incident.filings[0],
             "decision": decision, "policy activation": document.inputs.policy_activation}
    markdown = render(document, "md", state.graph)
    html = render(document, "html", state.graph)
    for what, citation in cited.items():
        assert citation is not None
        assert f"seq {citation.seq} `{citation.record_hash[:16]}`" in markdown, what
        assert f"seq {citation.seq} <code>{citation.record_hash[:16]}</code>" in html, what
    assert "classified a serious incident (Art. 3(49)(c)), report due" in markdown
    assert "initial report filed with BaFin" in markdown and "initial report filed with BaFin" in html
    # the same ledger and time give the same bytes
    again = build(bind_scenario(scenario), document.framework, scenario.frameworks)
    assert render(again, "json", state.graph) == render(document, "json", state.graph)


def test_oscal_links_every_governing_entry(triaged: tuple[Scenario, str]) -> None:
    scenario, claims = triaged
    state = bind_scenario(scenario)
    document = _with_incident(scenario, state, claims)
    data = oscal_input(document)
    documents = render_oscal(data)
    results = json.loads(documents["assessment-results"])
    poam = json.loads(documents["plan-of-action-and-milestones"])
    trestle_ar.Model.model_validate(results)
    trestle_poam.Model.model_validate(poam)
    text = json.dumps(results) + json.dumps(poam)
    origin = document.ledger.origin
    incident = next(i for c in document.controls for i in c.open_incidents if i.id == claims)
    decision = next(d for c in document.controls for d in c.decisions if d.incident == claims)
    assert incident.classification is not None
    governing = [incident.opened, incident.classification, *incident.filings, decision,
                 *(p.governed_by[0] for p in document.pairs if p.governed_by),
                 *(r.applicability.basis for c in document.controls for r in c.systems[:1] if r.applicability.basis),
                 document.inputs.policy_activation, document.inputs.escalation_activation]
    for citation in governing:
        assert citation is not None
        assert json.dumps(evidence_href(origin, citation.seq, citation.record_hash)) in text, citation
    metadata_links = [link["href"] for link in results["assessment-results"]["metadata"]["links"]]
    assert evidence_href(origin, document.inputs.policy_activation.seq,  # type: ignore[union-attr]
                         document.inputs.policy_activation.record_hash) in metadata_links  # type: ignore[union-attr]


def test_report_verify_refuses_a_report_with_an_unproven_citation(
        triaged: tuple[Scenario, str], monkeypatch: pytest.MonkeyPatch) -> None:
    scenario, claims = triaged
    state = bind_scenario(scenario)
    document = _with_incident(scenario, state, claims)
    data = render(document, "json", state.graph)
    issue(scenario.ledger, document, [("json", data, f"{document.framework}.json")])
    make_checkpoint(scenario.ledger)
    verdict = verify_report(scenario.ledger, scenario.log_key.public, data.encode())
    assert verdict.ok, verdict.problems
    assert any("every citation in the report has its proof" in line for line in verdict.checked)
    # A report whose builder forgot to prove the filing (as it once forgot decisions) is refused.
    filing = next(i for c in document.controls for i in c.open_incidents if i.id == claims).filings[0]
    original = ReportDocument.cited

    def forgetful(self: ReportDocument) -> dict[int, str]:
        return {seq: h for seq, h in original(self).items() if seq != filing.seq}

    monkeypatch.setattr(ReportDocument, "cited", forgetful)
    partial = build(state, document.framework, scenario.frameworks)
    monkeypatch.undo()
    text = render(partial, "json", state.graph)
    assert filing.seq not in {p.seq for p in partial.proofs}
    issue(scenario.ledger, partial, [("json", text, "partial.json")])
    make_checkpoint(scenario.ledger)
    verdict = verify_report(scenario.ledger, scenario.log_key.public, text.encode())
    assert not verdict.ok
    assert any(f"1 cited entries have no inclusion proof in the report: seq {filing.seq}" in p
               for p in verdict.problems), verdict.problems


def test_a_report_before_the_classification_cites_none_of_it(triaged: tuple[Scenario, str]) -> None:
    scenario, claims = triaged
    classified = next(e for e in scenario.ledger.entries(0, None, types=("incident.classified",)))
    before = datetime.datetime.fromisoformat(classified.received_at.replace("Z", "+00:00")) - \
        datetime.timedelta(milliseconds=1)
    state = bind_scenario(scenario, as_of=before)
    document = _with_incident(scenario, state, claims)
    assert classified.seq not in document.cited() and classified.seq >= document.ledger.described_size
    incidents: list[Any] = [i for c in document.controls for i in c.open_incidents if i.id == claims]
    assert all(i.classification is None and not i.filings for i in incidents)
