"""Control catalogs of ISO/IEC 42001, the EU AI Act and the NIST AI RMF, and control references.

A policy rule cites controls as ``FRAMEWORK:CONTROL`` (``iso-42001:A.6.2.6``, ``eu-ai-act:art-15``,
``nist-ai-rmf:MEASURE-2.5``). A reference may name a paragraph of an article (``eu-ai-act:art-15(3)``);
it resolves to the article, which must exist in the catalog.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._data import builtin_dir
from ._sources import load_yaml_file
from .errors import CharterError, DiagnosticCollector
from .validation import collect_validation_errors

_REF = re.compile(r"^(?P<framework>[a-z0-9-]+):(?P<control>[A-Za-z0-9.\-]+?)(?P<paragraph>(\([0-9a-z]+\))*)$")


class Control(BaseModel):
    """One clause, control, article or subcategory of a framework."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str = Field(min_length=1)
    kind: str
    title: str | None = None
    parent: str | None = None
    summary: str = ""


class FrameworkInfo(BaseModel):
    """Identity of a framework catalog."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str = Field(pattern=r"^[a-z0-9-]+$")
    name: str


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
        """Why `text` is not a valid control reference, or None when it resolves."""
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
        return None

    def resolve(self, text: str) -> Control | None:
        """The control a valid reference names, or None."""
        ref = parse_control_ref(text)
        if ref is None or ref.framework not in self._frameworks:
            return None
        return self._frameworks[ref.framework].controls.get(ref.control)


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
