"""Control catalogs of ISO/IEC 42001, the EU AI Act and the NIST AI RMF, and control references.

A policy rule cites controls as ``FRAMEWORK:CONTROL`` (``iso-42001:A.6.2.6``, ``eu-ai-act:art-15``,
``nist-ai-rmf:MEASURE-2.5``). A reference may name a paragraph of an article (``eu-ai-act:art-15(3)``,
``eu-ai-act:art-13(3)(b)(ii)``); it resolves to the article, which must exist in the catalog and list
that paragraph under ``paragraphs``. A catalog also says which kinds of control are *assessed* (given
a status in reports); only an assessed leaf control may be cited, so a citation is never dropped
silently by the report.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._data import builtin_dir
from ._sources import load_yaml_file
from .errors import CharterError, DiagnosticCollector
from .validation import collect_validation_errors

if TYPE_CHECKING:
    from .ledger.auditor import ControlCatalog

#: a catalog's list of the system kinds it is about (NIST AI 600-1: generative AI): it applies to those only
KIND_SCOPE = "applies_to_kinds"
#: the frameworks reports are issued for, in the order the demo and the golden files use (the CLI's
#: ``FrameworkName`` lists the same, as its options must be known before anything is imported)
REPORT_FRAMEWORKS = ("iso-42001", "eu-ai-act", "nist-ai-rmf", "nist-ai-600-1")

_REF = re.compile(r"^(?P<framework>[a-z0-9-]+):(?P<control>[A-Za-z0-9.\-]+?)(?P<paragraph>(\([0-9a-z]+\))*)$")
#: a paragraph as a catalog lists it: ``"2"``, ``"2(a)"``, ``"3(b)(ii)"``
_PARAGRAPH = re.compile(r"^[0-9a-z]{1,8}(\([0-9a-z]{1,8}\)){0,3}$")
#: the longest control reference accepted; real ones are under 40 characters
MAX_REF_LENGTH = 120


class Control(BaseModel):
    """One clause, control, article or subcategory of a framework."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str = Field(min_length=1)
    kind: str
    title: str | None = None
    parent: str | None = None
    summary: str = ""
    scope: Literal["system", "organisation"] = Field(
        default="system", description="Who evidences the control: ``organisation`` for a control of the "
        "management system as a whole (ISO/IEC 42001 clauses 4-10, the AI policy), whose documents and "
        "attestations only an evidence attester may record, whatever systems they name; ``system`` for one "
        "the owner of a system may also evidence for their own system.")
    paragraphs: tuple[str, ...] | None = Field(
        default=None, description="The paragraphs and points a reference may name, as \"2\", \"2(a)\", "
        "\"3(b)(ii)\"; a listed point implies its paragraph. None: the control has none to cite.")

    @field_validator("paragraphs")
    @classmethod
    def _paragraphs(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        bad = [p for p in value if not _PARAGRAPH.match(p)]
        if bad:
            raise ValueError(f"paragraphs {bad} are not of the form 2, 2(a) or 3(b)(ii)")
        return value

    def citable_paragraphs(self) -> frozenset[str]:
        """Every paragraph a reference may name: those listed, and the paragraph of every listed point."""
        out: set[str] = set()
        for paragraph in self.paragraphs or ():
            parts = paragraph.split("(")
            out.update("(".join(parts[:n]) for n in range(1, len(parts) + 1))
        return frozenset(out)


class FrameworkInfo(BaseModel):
    """Identity of a framework catalog."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str = Field(pattern=r"^[a-z0-9-]+$")
    name: str
    assessed_kinds: tuple[str, ...] | None = Field(
        default=None, description="Kinds of control that reports assess (give a status); only their leaves "
        "may be cited by rules. None: every leaf control is assessed.")


@dataclass(frozen=True)
class Framework:
    """A loaded control catalog."""

    info: FrameworkInfo
    controls: Mapping[str, Control]
    extra: Mapping[str, Any]

    @property
    def id(self) -> str:
        """The prefix used in control references."""
        return self.info.id

    @property
    def applies_to_kinds(self) -> tuple[str, ...] | None:
        """The system kinds a catalog about some kinds of AI only covers (checked at load), or None: such a
        catalog applies to systems of those kinds and to no other (`applicability.kind_applicability`)."""
        kinds = self.extra.get(KIND_SCOPE)
        return None if kinds is None else tuple(str(kind) for kind in kinds)

    def is_leaf(self, control_id: str) -> bool:
        """Whether no control of the catalog names `control_id` as its parent."""
        return control_id not in self._parents

    @cached_property
    def _parents(self) -> frozenset[str]:
        return frozenset(c.parent for c in self.controls.values() if c.parent is not None)

    def assessed(self, control_id: str) -> bool:
        """Whether reports assess `control_id`: a leaf of an assessed kind (see `FrameworkInfo.assessed_kinds`).

        Policy lint refuses citations of any other control, and reports give a status to exactly these,
        so the two share this one definition.
        """
        control = self.controls.get(control_id)
        if control is None or not self.is_leaf(control_id):
            return False
        kinds = self.info.assessed_kinds
        return kinds is None or control.kind in kinds

    def assessed_controls(self) -> list[Control]:
        """The controls reports assess, in catalog order."""
        parents = self._parents
        kinds = self.info.assessed_kinds
        return [c for c in self.controls.values()
                if c.id not in parents and (kinds is None or c.kind in kinds)]


@dataclass(frozen=True)
class ControlRef:
    """A parsed control reference."""

    framework: str
    control: str
    paragraph: str = ""

    def __str__(self) -> str:
        return f"{self.framework}:{self.control}{self.paragraph}"


def parse_control_ref(text: str) -> ControlRef | None:
    """Parse ``framework:control[(paragraph)...]``; None when the text has another shape."""
    match = _REF.match(text)
    if not match:
        return None
    return ControlRef(match["framework"], match["control"], match["paragraph"] or "")


class FrameworkSet(Mapping[str, Framework]):
    """All loaded frameworks keyed by id."""

    def __init__(self, frameworks: Mapping[str, Framework]) -> None:
        self._frameworks = dict(frameworks)

    def __getitem__(self, key: str) -> Framework:
        return self._frameworks[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._frameworks)

    def __len__(self) -> int:
        return len(self._frameworks)

    def check_ref(self, text: str) -> str | None:
        """Why `text` is not a valid control reference, or None when it resolves.

        A paragraph must be one the control's catalog entry lists under ``paragraphs``.
        """
        if len(text) > MAX_REF_LENGTH:
            return f"control reference {text[:40]!r}... is {len(text)} characters long (at most {MAX_REF_LENGTH})"
        ref = parse_control_ref(text)
        if ref is None:
            return (f"control reference {text!r} is not of the form FRAMEWORK:CONTROL "
                    "(e.g. iso-42001:A.6.2.6)")
        framework = self._frameworks.get(ref.framework)
        if framework is None:
            known = ", ".join(sorted(self._frameworks)) or "none"
            return f"unknown framework {ref.framework!r} in {text!r} (known: {known})"
        if ref.control not in framework.controls:
            close = difflib.get_close_matches(ref.control, list(framework.controls), n=1)
            hint = f" (did you mean {ref.framework}:{close[0]}?)" if close else ""
            return f"control {ref.control!r} does not exist in {ref.framework} ({framework.info.name}){hint}"
        if ref.paragraph:
            return _check_paragraph(ref, framework.controls[ref.control])
        return None

    def check_citable(self, text: str) -> str | None:
        """Why a rule may not cite `text`, or None: it must resolve (`check_ref`) to an assessed control.

        A chapter, a clause with sub-clauses or a category is never given a status by reports, so a rule
        citing it would count for nothing; the author is told to cite the leaves instead.
        """
        reason = self.check_ref(text)
        if reason is not None:
            return reason
        ref = parse_control_ref(text)
        assert ref is not None
        framework = self._frameworks[ref.framework]
        if framework.assessed(ref.control):
            return None
        control = framework.controls[ref.control]
        children = [c.id for c in framework.controls.values() if c.parent == ref.control]
        if children:
            shown = ", ".join(children[:6]) + (", ..." if len(children) > 6 else "")
            return (f"{ref.framework}:{ref.control} is a {control.kind} with {len(children)} sub-controls "
                    f"({shown}); reports assess only leaves, so cite the ones the rule evidences")
        kinds = ", ".join(framework.info.assessed_kinds or ())
        return (f"{ref.framework}:{ref.control} is a {control.kind}; reports assess only {kinds} controls "
                f"of {ref.framework}, so a rule citing it would count for nothing")

    def control_catalog(self) -> ControlCatalog:
        """What the ledger's evidence rule needs of these catalogs (`charter.ledger.auditor.ControlCatalog`):
        every reference evidence may cite, paragraph-exactly, and the organisation-level controls."""
        from .ledger.auditor import ControlCatalog

        citable: set[str] = set()
        organisation: set[str] = set()
        for framework in self._frameworks.values():
            for control in framework.assessed_controls():
                ref = f"{framework.id}:{control.id}"
                citable.add(ref)
                citable.update(ref + _ref_suffix(p) for p in control.citable_paragraphs())
            organisation.update(f"{framework.id}:{c.id}" for c in framework.controls.values()
                                if c.scope == "organisation")
        return ControlCatalog(frozenset(citable), frozenset(organisation))

    def resolve(self, text: str) -> Control | None:
        """The control a valid reference names, or None."""
        ref = parse_control_ref(text)
        if ref is None or ref.framework not in self._frameworks:
            return None
        return self._frameworks[ref.framework].controls.get(ref.control)


def _check_paragraph(ref: ControlRef, control: Control) -> str | None:
    """Why the paragraph of `ref` is not one `control` lists, or None."""
    head, rest = ref.paragraph[1:].split(")", 1)
    wanted = head + rest  # "(3)(b)(ii)" is written "3(b)(ii)" in catalogs
    if control.paragraphs is None:
        return (f"paragraph {wanted} of {ref.framework}:{ref.control} cannot be checked: the catalog lists no "
                f"paragraphs for {ref.control} (cite the {control.kind} as a whole, or list its paragraphs)")
    citable = control.citable_paragraphs()
    if wanted in citable:
        return None
    close = difflib.get_close_matches(wanted, sorted(citable), n=1)
    hint = f" (did you mean {ref.framework}:{ref.control}{_ref_suffix(close[0])}?)" if close else ""
    return f"paragraph {wanted} of {ref.framework}:{ref.control} does not exist in the catalog{hint}"


def _ref_suffix(paragraph: str) -> str:
    """The reference form of a catalog paragraph: ``"2(a)"`` -> ``"(2)(a)"``."""
    head, _, rest = paragraph.partition("(")
    return f"({head})" + (f"({rest}" if rest else "")


def load_framework_file(path: Path) -> Framework:
    """Load one catalog file (``framework:`` and ``controls:``).

    Raises:
        CharterError: schema problems and duplicate control ids, with lines.
    """
    data, smap = load_yaml_file(path)
    if not isinstance(data, dict) or not isinstance(data.get("controls"), list):
        raise CharterError.single("framework_schema", "expected 'framework' and a list under 'controls'",
                                  file=str(path), line=1)
    problems = DiagnosticCollector()
    try:
        info = FrameworkInfo.model_validate(data.get("framework"))
    except ValidationError as exc:
        raise CharterError(collect_validation_errors(exc, smap, ("framework",), code="framework_schema")) from exc
    controls: dict[str, Control] = {}
    for index, raw in enumerate(data["controls"]):
        try:
            control = Control.model_validate(raw)
        except ValidationError as exc:
            problems.extend(collect_validation_errors(exc, smap, ("controls", index), code="framework_schema"))
            continue
        if control.id in controls:
            problems.add("duplicate_control", f"control {control.id!r} is listed twice",
                         smap.location(("controls", index, "id")))
        controls[control.id] = control
    for index, control in enumerate(controls.values()):
        if control.parent is not None and control.parent not in controls:
            problems.add("unknown_parent", f"parent {control.parent!r} of {control.id!r} does not exist",
                         smap.location(("controls", index, "parent")))
    if KIND_SCOPE in data:  # a catalog about some kinds of AI only (`Framework.applies_to_kinds`)
        from .registry import SystemKind

        kinds = data[KIND_SCOPE]
        known = [k.value for k in SystemKind]
        if not isinstance(kinds, list) or not kinds or any(k not in known for k in kinds):
            problems.add("framework_schema", f"{KIND_SCOPE} is a non-empty list of system kinds "
                         f"({', '.join(known)})", smap.location((KIND_SCOPE,)))
    if info.id == "eu-ai-act":  # who each article binds and from when: what applicability is decided by
        from .applicability.eu import obligation_problems

        problems.extend(obligation_problems(data, smap))
    problems.raise_if_any()
    extra = {k: v for k, v in data.items() if k not in {"framework", "controls"}}
    return Framework(info, controls, extra)


def load_frameworks(directory: Path | None = None) -> FrameworkSet:
    """Load every ``*.yaml`` catalog of `directory` (default: the built-in ``frameworks/``)."""
    directory = directory or builtin_dir("frameworks")
    if not directory.is_dir():
        raise CharterError.single("file_not_found", "frameworks directory does not exist", file=str(directory))
    frameworks: dict[str, Framework] = {}
    problems = DiagnosticCollector()
    for path in sorted(p for p in directory.glob("*.yaml") if p.is_file()):
        try:
            framework = load_framework_file(path)
        except CharterError as exc:
            problems.extend(exc.diagnostics)
            continue
        if framework.id in frameworks:
            problems.add("duplicate_framework", f"framework {framework.id!r} is defined twice", file=str(path))
        frameworks[framework.id] = framework
    problems.raise_if_any()
    return FrameworkSet(frameworks)


_CATALOGS: dict[Path, ControlCatalog] = {}


def builtin_control_catalog() -> ControlCatalog:
    """`FrameworkSet.control_catalog` of the built-in catalogs (what the evidence commands load), read once."""
    directory = builtin_dir("frameworks")
    if directory not in _CATALOGS:
        _CATALOGS[directory] = load_frameworks(directory).control_catalog()
    return _CATALOGS[directory]
