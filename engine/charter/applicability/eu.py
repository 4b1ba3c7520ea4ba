"""EU AI Act applicability: who each article binds (its ``obligation:`` block), for which systems, from when.

The catalog (``frameworks/eu-ai-act.yaml``) holds ``application_dates`` (original and amended, with
their legal source) and an obligation block per article; the system's classification in the registry
says which roles the organisation holds and which classes the system is in.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .._sources import SourceMap
from ..errors import Diagnostic, DiagnosticCollector
from ..registry import AISystem, EUClassification, EURole
from ..validation import collect_validation_errors
from .model import Applicability

if TYPE_CHECKING:
    from ..frameworks import Control, Framework

SystemClass = Literal["any", "high_risk", "transparency", "gpai", "gpai_systemic_risk", "fria", "exempt_6_3", "none"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Transitional(_Strict):
    """A transitional rule of one paragraph: for a system placed on the market before the date `placed_before`
    names, the duties of `paragraph` apply from the date `applies_from` names (Art 111(4) for Art 50(2))."""

    paragraph: str = Field(min_length=1, description="The paragraph whose duties it defers, e.g. ``50(2)``.")
    placed_before: str = Field(min_length=1, description="A key of application_dates.")
    applies_from: str = Field(min_length=1, description="A key of application_dates.")


class Obligation(_Strict):
    """An article's ``obligation:`` block: who it binds, for which systems, from when.

    ``holders: []`` means the article binds no operator (penalties, transitional provisions).
    ``systems`` is one class or a list of classes (any of them). ``transitional`` defers one paragraph's
    duties for systems already on the market (only Art 50 duties, recorded per paragraph, can use it).
    """

    holders: tuple[EURole, ...]
    systems: tuple[SystemClass, ...] = Field(min_length=1)
    applies_from: str = Field(min_length=1)
    transitional: Transitional | None = None

    @field_validator("systems", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value


class DatePair(_Strict):
    """A date of application in the Regulation as adopted, and as amended."""

    original: datetime.date
    amended: datetime.date


class ApplicationDate(DatePair):
    """A date of application with its legal source."""

    source: str = Field(min_length=1)


class HighRiskDates(_Strict):
    """The deferred dates of Chapter III for high-risk systems, by route (Art 113(c) as amended)."""

    annex_iii: DatePair
    annex_i: DatePair
    source: str = Field(min_length=1)


def _parse_dates(raw: Any) -> tuple[dict[str, ApplicationDate], HighRiskDates]:
    if not isinstance(raw, dict) or "high_risk" not in raw:
        raise ValueError("application_dates is a mapping with a high_risk entry")
    dates = {str(k): ApplicationDate.model_validate(v) for k, v in raw.items() if k != "high_risk"}
    return dates, HighRiskDates.model_validate(raw["high_risk"])


def obligation_problems(data: dict[str, Any], smap: SourceMap) -> list[Diagnostic]:
    """Problems of the EU catalog's ``application_dates`` and ``obligation:`` blocks, with lines.

    Every control of kind ``article`` must carry an obligation; a block names known application dates.
    """
    problems = DiagnosticCollector()
    raw_dates = data.get("application_dates")
    keys: set[str] = set()
    if not isinstance(raw_dates, dict) or not isinstance(raw_dates.get("high_risk"), dict):
        problems.add("framework_schema", "the EU AI Act catalog needs application_dates with a high_risk entry",
                     smap.location(("application_dates",)))
    else:
        for key, value in raw_dates.items():
            model: type[BaseModel] = HighRiskDates if key == "high_risk" else ApplicationDate
            try:
                model.model_validate(value)
                keys.add(str(key))
            except ValidationError as exc:
                problems.extend(collect_validation_errors(exc, smap, ("application_dates", key),
                                                          code="framework_schema"))
    for index, raw in enumerate(data.get("controls") or []):
        if not isinstance(raw, dict):
            continue
        if "obligation" not in raw:
            if raw.get("kind") == "article":
                problems.add("missing_obligation", f"article {raw.get('id')!r} has no obligation block (who it "
                             "binds, for which systems, from when)", smap.location(("controls", index, "id")))
            continue
        try:
            obligation = Obligation.model_validate(raw["obligation"])
        except ValidationError as exc:
            problems.extend(collect_validation_errors(exc, smap, ("controls", index, "obligation"),
                                                      code="framework_schema"))
            continue
        # A transitional rule names plain dates; `high_risk` is a pair of routes, only for applies_from.
        named: list[tuple[tuple[str, ...], str, set[str]]] = [(("applies_from",), obligation.applies_from, keys)]
        if obligation.transitional is not None:
            rule = obligation.transitional
            named += [(("transitional", "placed_before"), rule.placed_before, keys - {"high_risk"}),
                      (("transitional", "applies_from"), rule.applies_from, keys - {"high_risk"})]
        for where, key, allowed in named if keys else []:
            if key not in allowed:
                problems.add("framework_schema", f"{where[-1]} {key!r} of {raw.get('id')!r} is no "
                             f"key of application_dates ({', '.join(sorted(allowed))})",
                             smap.location(("controls", index, "obligation", *where)))
        if obligation.transitional is not None and obligation.systems != ("transparency",):
            problems.add("framework_schema", f"a transitional rule of {raw.get('id')!r} defers one paragraph's "
                         "duties, which only Art 50 transparency duties record (systems: transparency)",
                         smap.location(("controls", index, "obligation", "transitional")))
    return problems.diagnostics


def obligation_of(control: Control) -> Obligation | None:
    """The control's obligation block (checked when the catalog was loaded), or None."""
    raw = (control.model_extra or {}).get("obligation")
    return None if raw is None else Obligation.model_validate(raw)


def _cite(control: Control) -> str:
    return f"Art {control.id[4:]}" if control.id.startswith("art-") else (control.title or control.id)


def _roles(roles: Sequence[str]) -> str:
    names = [str(r).replace("_", " ") for r in roles]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def eu_applicability(framework: Framework, control: Control, system: AISystem,
                     day: datetime.date) -> Applicability | None:
    """The EU decision for a control with an obligation block (or of Annex III); None for others (chapters)."""
    classification = system.eu_ai_act
    obligation = obligation_of(control)
    if obligation is None and not control.id.startswith("annex-iii"):
        return None
    if classification is None:
        return Applicability("undetermined", f"system {system.id} has no EU AI Act classification in the registry")
    cite = _cite(control)
    if obligation is None:  # Annex III itself, or one of its areas: where the classification places the system
        use = classification.annex_iii
        area = control.id.partition(".")[2]
        if use is not None and (not area or area == str(use.area)):
            return Applicability("applicable", f"{system.id} is classified under Annex III {use.area}({use.point}): "
                                 f"{use.reasoning}")
        where = f"Annex III point {area}" if area else "Annex III"
        return Applicability("not_applicable", f"{system.id} is not classified under {where}: "
                             f"{classification.reasoning}")
    if not obligation.holders:
        return Applicability("not_applicable", f"{cite} binds no operator: it imposes no obligation on {system.id}")
    bound = [r for r in classification.roles if r in obligation.holders]
    if not bound:
        return Applicability("not_applicable", f"{cite} binds the {_roles(obligation.holders)}; for {system.id} the "
                             f"organisation is {_roles(classification.roles)}")
    match = [_class_reason(c, classification, bound) for c in obligation.systems]
    held = [reason for ok, reason in match if ok]
    if not held:
        classes = " or ".join(_CLASS_TEXT[c] for c in obligation.systems)
        return Applicability("not_applicable", f"{cite} applies to {classes}"
                             f"; {system.id} is not one: {'; '.join(r for _, r in match)}")
    pair, source = _date(framework, obligation.applies_from, classification)
    if pair is None:
        return Applicability("undetermined", f"{cite}: no application date for {system.id} ({source})")
    deferral = ""
    if obligation.transitional is not None:
        pair, source, deferral = _transitional(framework, obligation.transitional, classification, bound, day,
                                               pair, source)
    amended = (f"originally {pair.original}, " if pair.original != pair.amended else "")
    basis = (f"{cite} binds the {_roles(obligation.holders)} of {_CLASS_TEXT[obligation.systems[0]]}"
             if len(obligation.systems) == 1 else f"{cite} binds the {_roles(obligation.holders)}")
    basis += f"; the organisation is {' and '.join(r.value.replace('_', ' ') for r in bound)} of {system.id}"
    basis += "" if held[0] == "any AI system" else f", {held[0]}"
    if day < pair.amended:
        return Applicability("not_yet_applicable", f"{basis}. It applies from {pair.amended} ({amended}{source})"
                             f"{deferral}", pair.amended, source)
    return Applicability("applicable", f"{basis}. In application since {pair.amended} ({amended}{source})"
                         f"{deferral}", pair.amended, source)


def _transitional(framework: Framework, rule: Transitional, c: EUClassification, bound: Sequence[EURole],
                  day: datetime.date, pair: DatePair, source: str) -> tuple[DatePair, str, str]:
    """The article's date and its source once `rule` is applied, and the sentence on it ("" when it does not bear).

    The rule defers the duties of one paragraph for systems placed on the market before its cut-off. When
    every duty of the system under the article is deferred, the article applies from the later date; when
    only some are, the article applies as before and the sentence names the deferred paragraph's date.
    """
    duties = [d for d in c.transparency if d.bound_role in bound]
    deferred = [d for d in duties if d.paragraph == rule.paragraph]
    if not deferred:
        return pair, source, ""
    dates, _ = _parse_dates(framework.extra.get("application_dates"))
    cutoff, late = dates[rule.placed_before], dates[rule.applies_from]
    if c.placed_on_market is None:
        if day >= late.amended or len(deferred) < len(duties):
            # The grace is over, or the article applies anyway through the system's other duties: the
            # market date would not change the decision.
            return pair, source, ""
        return pair, source, (f"; no market date is recorded in its classification, so its Art {rule.paragraph} "
                              f"duties are not deferred to {late.amended} ({late.source})")
    if c.placed_on_market >= cutoff.amended:
        return pair, source, ""
    if len(deferred) == len(duties):
        return (DatePair(original=late.original, amended=late.amended), late.source,
                f"; it was placed on the market on {c.placed_on_market}, before {cutoff.amended}, so its "
                f"Art {rule.paragraph} duties take that transitional date")
    note = (f"; its Art {rule.paragraph} duties apply from {late.amended} ({late.source}), as it was placed on "
            f"the market on {c.placed_on_market}, before {cutoff.amended}")
    return pair, source, note


_CLASS_TEXT = {"any": "any AI system", "high_risk": "high-risk AI systems",
               "transparency": "systems with an Art 50 transparency duty",
               "gpai": "general-purpose AI models",
               "gpai_systemic_risk": "general-purpose AI models with systemic risk",
               "fria": "high-risk Annex III systems that need a fundamental-rights impact assessment (Art 27(1))",
               "exempt_6_3": "Annex III systems exempt under Art 6(3)", "none": "no system"}


def _class_reason(system_class: str, c: EUClassification, bound: Sequence[EURole]) -> tuple[bool, str]:
    """Whether the classification `c` is of `system_class`, and the sentence saying so."""
    if system_class == "any":
        return True, "any AI system"
    if system_class == "none":
        return False, "the article binds no system"
    if system_class == "high_risk":
        if c.route == "annex_iii" and c.annex_iii is not None:
            return True, f"high-risk under Annex III {c.annex_iii.area}({c.annex_iii.point}) (Art 6(2))"
        if c.route == "annex_i" and c.annex_i is not None:
            return True, f"high-risk as an Annex I product or safety component ({c.annex_i.legislation}, Art 6(1))"
        if c.exemption_6_3 is not None:
            return False, (f"not high-risk: its Annex III use is exempt under Art 6(3)({c.exemption_6_3.ground}): "
                           f"{c.exemption_6_3.reasoning}")
        return False, "not high-risk: its classification records no Annex I product and no Annex III use"
    if system_class == "exempt_6_3":
        if c.exemption_6_3 is not None:
            registered = "registered" if c.exemption_6_3.registered_art_49_2 else "not yet registered"
            return True, (f"an Annex III system exempt under Art 6(3)({c.exemption_6_3.ground}), {registered} "
                          "per Art 49(2)")
        return False, "no Art 6(3) exemption is recorded"
    if system_class == "transparency":
        duties = [d for d in c.transparency if d.bound_role in bound]
        if duties:
            return True, "Art " + ", ".join(f"{d.paragraph} ({d.value.replace('_', ' ')}) binds the "
                                            f"{d.bound_role.value}" for d in duties)
        if c.transparency:
            return False, ("its Art 50 duties (" + ", ".join(d.paragraph for d in c.transparency)
                           + f") bind the {_roles(sorted({d.bound_role for d in c.transparency}))}, a role it does "
                           "not hold")
        return False, "no Art 50 transparency duty is recorded in its classification"
    model = c.general_purpose_model
    if system_class == "gpai":
        if model is not None and model.provider:
            return True, "the organisation provides its general-purpose AI model"
        return False, "the organisation provides no general-purpose AI model for it"
    if system_class == "gpai_systemic_risk":
        if model is not None and model.provider and model.systemic_risk:
            return True, "the organisation provides its general-purpose AI model, which has systemic risk (Art 51)"
        return False, "the organisation provides no general-purpose AI model with systemic risk for it"
    if system_class == "fria":
        use = c.annex_iii
        if c.route != "annex_iii" or use is None:
            return False, "not a high-risk Annex III system"
        if use.area == 2:
            return False, "Annex III point 2 (critical infrastructure) is outside Art 27(1)"
        if c.public_body_deployer:
            return True, "deployed by a public body or a private provider of public services (Art 27(1))"
        if use.area == 5 and use.point in ("b", "c"):
            return True, f"an Annex III 5({use.point}) system (Art 27(1))"
        return False, "neither a public-body deployer nor an Annex III 5(b) or 5(c) system"
    return False, f"unknown system class {system_class!r}"


_ROUTE_TEXT = {"annex_iii": "Annex III", "annex_i": "Annex I"}


def _date(framework: Framework, key: str, c: Any) -> tuple[DatePair | None, str]:
    dates, high_risk = _parse_dates(framework.extra.get("application_dates"))
    if key != "high_risk":
        date = dates.get(key)
        return (date, date.source) if date is not None else (None, f"no application date {key!r}")
    route = c.route or ("annex_iii" if c.annex_iii is not None else "annex_i" if c.annex_i is not None else None)
    if route is None:
        return None, "no high-risk route in its classification"
    return getattr(high_risk, route), f"{high_risk.source}, {_ROUTE_TEXT[route]} route"

