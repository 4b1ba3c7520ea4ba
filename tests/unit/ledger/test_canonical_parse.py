"""The fast parse of canonical bodies agrees with the strict parser and RFC 8785 check it short-cuts."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from charter.ledger.auditor import _in_fast_profile, canonical_json, parse_body, parse_canonical, parse_canonical_fast

scalars = (st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.integers(-(10**15), 10**15)
           | st.text() | st.text(alphabet="aé\u0301\u00e9\u2028\"\\\n\x1f/\U0001f600\ud7ff\ue000")
           | st.floats(allow_nan=False, allow_infinity=False) | st.floats(min_value=1e-4, max_value=1e15)
           | st.sampled_from([0.1, 0.62, 0.9123, 1e-5, 1.0, -0.0, 1e15 + 0.5, 123456789012345.6]))
documents = st.dictionaries(st.text(), st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                                                    | st.dictionaries(st.text(), inner, max_size=4), max_leaves=12),
                            max_size=5)


def _same(a: Any, b: Any) -> bool:
    """Equal values of equal JSON types (1 == 1.0 and 0.0 == -0.0 are not the same here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return repr(a) == repr(b)
    return bool(a == b)


def _strict(body: bytes) -> tuple[str, Any]:
    """What the verifier did before the fast path: parse strictly, then compare with the canonical form."""
    try:
        value = parse_body(body)
    except (ValueError, UnicodeDecodeError):
        return "malformed", None
    try:
        canonical = canonical_json(value)
    except Exception:  # the reference's own errors for values outside JCS's domain
        return "malformed", None
    return ("canonical" if canonical == body else "not_canonical"), value


def _check(body: bytes) -> str:
    verdict, value = _strict(body)
    fast = parse_canonical_fast(body)
    if fast is not None:  # the fast path only ever accepts what the strict path accepts, with the same value
        assert verdict == "canonical" and _same(fast, value) and _in_fast_profile(fast)
    try:
        parsed, canonical = parse_canonical(body)
    except (ValueError, UnicodeDecodeError):
        assert verdict == "malformed"
        return verdict
    assert verdict == ("canonical" if canonical else "not_canonical") and _same(parsed, value)
    return verdict


def _variants(document: dict[str, Any]) -> list[bytes]:
    out = []
    for dump in (rfc8785.dumps,
                 lambda d: json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(),
                 lambda d: json.dumps(d, separators=(",", ":"), ensure_ascii=False).encode(),
                 lambda d: json.dumps(d, sort_keys=True, separators=(",", ":")).encode(),
                 lambda d: json.dumps(d, sort_keys=True).encode()):
        try:
            out.append(dump(document))
        except Exception:  # big integers and surrogates are outside some serialisers' domain
            continue
    return out


@settings(max_examples=1500, deadline=None)
@given(documents)
def test_fast_and_strict_agree_on_canonical_and_other_spellings(document: dict[str, Any]) -> None:
    for body in _variants(document):
        _check(body)


@settings(max_examples=500, deadline=None)
@given(documents, st.text(min_size=1, max_size=3), st.sampled_from([b"1", b'"x"', b"1.0", b"null", b"[]"]))
def test_duplicate_keys_are_refused_by_both(document: dict[str, Any], key: str, value: bytes) -> None:
    try:
        body = rfc8785.dumps({key: None, **document})
    except Exception:  # big integers and lone surrogates have no canonical form
        return
    encoded = json.dumps(key, ensure_ascii=False).encode()
    doubled = body[:-1] + (b"," if body != b"{}" else b"") + encoded + b":" + value + b"}"
    assert _check(doubled) == "malformed"


@pytest.mark.parametrize(("body", "verdict"), [
    (b'{"a":9007199254740991}', "canonical"), (b'{"a":9007199254740992}', "malformed"),
    (b'{"a":123456789012345678901234567890}', "malformed"), (b'{"a":1.0}', "not_canonical"),
    (b'{"a":1}', "canonical"), (b'{"a":1e-05}', "not_canonical"), (b'{"a":1e-5}', "not_canonical"),
    (b'{"a":0.00001}', "canonical"), (b'{"a":1e-7}', "canonical"), (b'{"a":1e+16}', "not_canonical"),
    (b'{"a":10000000000000000}', "malformed"), (b'{"a":1000000000000000.5}', "canonical"),
    (b'{"a":-0.0}', "not_canonical"), (b'{"a":-0}', "not_canonical"), (b'{"a":0.62}', "canonical"),
    (b'{"a":NaN}', "malformed"), (b'{"a":Infinity}', "malformed"), (b'{"a":1e400}', "malformed"),
    (b'{"a":"\\u00e9"}', "not_canonical"), ('{"a":"é"}'.encode(), "canonical"),
    (b'{"a":"\\u001f"}', "canonical"), (b'{"a":"\\u001F"}', "not_canonical"), (b'{"a":"\\/"}', "not_canonical"),
    (b'{"a":"\\ud800"}', "malformed"), (b'{"a":"\xed\xa0\x80"}', "malformed"), (b'{"a":"\xff"}', "malformed"),
    ('{"\U0001f600":2,"\uffff":1}'.encode(), "canonical"), ('{"\uffff":1,"\U0001f600":2}'.encode(), "not_canonical"),
    (b'{"b":1,"a":2}', "not_canonical"), (b'{"a": 1}', "not_canonical"), (b'{"a":1,"a":1}', "malformed"),
    (b'{"a":[1.0]}', "not_canonical"), (b'{"a":[2,-10.0]}', "not_canonical"), (b'{"a":{"b":3.0}}', "not_canonical"),
    (b'{"a":[1234567890123456]}', "canonical"), (b'{"a":-12345678901234567890}', "malformed"),
    (b"[1]", "malformed"), (b'"a"', "malformed"), (b"\xef\xbb\xbf{}", "malformed"), (b"{}", "canonical"),
    (b"[" * 100_000 + b"]" * 100_000, "malformed"),
    # nesting is judged against a fixed limit, not the stack (an object at the top counts as one level)
    (b'{"a":' + b"[" * 199 + b"]" * 199 + b"}", "canonical"), (b'{"a":' + b"[" * 200 + b"]" * 200 + b"}", "malformed"),
    (b'{"a":' + b'{"b":' * 200 + b"1" + b"}" * 200 + b"}", "malformed"),
    (b'{"a":"' + b"[{" * 300 + b'"}', "canonical"),  # brackets inside a string do not nest
    (b'{"a":"' + b'\\"[' * 300 + b'"}', "canonical"),  # nor do escaped quotes end the string
    (unicodedata.normalize("NFD", '{"a":"é"}').encode(), "canonical"),
])
def test_edge_cases(body: bytes, verdict: str) -> None:
    assert _check(body) == verdict


def test_ordinary_entry_bodies_take_the_fast_path() -> None:
    """So that the fast path is not dead code: a typical bundle body is accepted without the strict parser."""
    body = rfc8785.dumps({"log": "charter.example/ledger", "seq": 12, "prev": "ab" * 32, "type": "bundle",
                          "payload": {"metrics": {"recall": 0.8123, "n": 5000, "gap": -0.031}, "note": "é\u2014x",
                                      "model_version": "1.0.0", "digest": "7a35924a2c9016860634436848427737"},
                          "received_at": "2026-01-02T03:04:05.678Z", "v": 1, "ok": True, "none": None})
    value = parse_canonical_fast(body)
    assert value is not None and _same(value, parse_body(body))
