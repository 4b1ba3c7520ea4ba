"""Loads the shared case corpus (tests/data/cases/*.yaml) and builds each case's inputs."""

from __future__ import annotations

import copy
import datetime
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CASES_DIR = Path(__file__).resolve().parent / "data" / "cases"


@dataclass
class Case:
    name: str
    policy: dict[str, Any]
    system: dict[str, Any]
    bundle_text: str
    previous_texts: list[str]
    at: str | None
    expect: dict[str, Any]


def _shift(bundle: dict[str, Any], months_back: int) -> dict[str, Any]:
    shifted = copy.deepcopy(bundle)
    delta = datetime.timedelta(days=31 * months_back)
    for key in ("window_start", "window_end", "measured_at"):
        value = datetime.datetime.fromisoformat(shifted[key].replace("Z", "+00:00")) - delta
        shifted[key] = value.isoformat().replace("+00:00", "Z")
    return shifted


def load_cases() -> list[Case]:
    cases = []
    for path in sorted(CASES_DIR.glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        defaults = document["defaults"]
        for raw in document["cases"]:
            system = {**defaults["system"], **raw.get("system", {})}
            if "bundle_json" in raw:
                bundle_text = raw["bundle_json"]
            else:
                bundle = {**defaults["bundle"], **raw["bundle"]}
                bundle_text = json.dumps(bundle, indent=2)
            previous = [json.dumps(_shift({**defaults["bundle"], **p}, i + 1))
                        for i, p in enumerate(raw.get("previous", []))]
            cases.append(Case(raw["name"], raw["policy"], system, bundle_text, previous, raw.get("at"),
                              raw["expect"]))
    return cases


def status_map(findings: list[dict[str, Any]]) -> dict[str, str]:
    """``rule`` or ``rule@segment`` -> status, from findings as JSON data."""
    return {(f["rule"] + (f"@{f['segment']}" if f["segment"] else "")): f["status"] for f in findings}
