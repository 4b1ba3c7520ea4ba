"""Canonical JSON: the fast path gives exactly the bytes of the reference RFC 8785 implementation."""

from __future__ import annotations

import json

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from charter.ledger.auditor import _in_fast_profile, canonical_json
from charter.ledger.hashing import canonical

scalars = (st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text()
           | st.floats(allow_nan=False, allow_infinity=False)
           | st.floats(min_value=1e-4, max_value=1e15, allow_nan=False) | st.sampled_from([0.1, 0.9123, 1e-5, 1.0]))
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner,
                                                                                                max_size=4),
                         max_leaves=12)


@settings(max_examples=1500, deadline=None)
@given(documents)
def test_fast_path_matches_rfc8785_byte_for_byte(value: object) -> None:
    try:
        expected = rfc8785.dumps(value)
    except Exception:  # outside JSON's domain for JCS (big integers, lone surrogates): both must refuse
        with pytest.raises(Exception):  # noqa: B017 - the reference's own error types
            canonical_json(value)
        return
    assert canonical_json(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (1.0, b"1"), (1e16, b"10000000000000000"), (1e-7, b"1e-7"), (0.000001, b"0.000001"), (-0.0, b"0"),
    ({"\uffff": 1, "\U0001f600": 2}, '{"\U0001f600":2,"\uffff":1}'.encode()),
    ({"b": [1, "x\u001f"], "a": None}, b'{"a":null,"b":[1,"x\\u001f"]}'),
])
def test_jcs_vectors(value: object, expected: bytes) -> None:
    assert canonical(value) == expected


def test_profile_guard_sends_risky_values_to_the_reference() -> None:
    assert not _in_fast_profile(1.0) and not _in_fast_profile(1e-5) and not _in_fast_profile(2**53)
    assert not _in_fast_profile({"\U0001f600": 1})
    assert _in_fast_profile({"recall": 0.62, "n": 3, "s": "é"})


def test_key_order_and_whitespace_do_not_change_the_bytes() -> None:
    a = json.loads('{"b": 1, "a": {"y": [1, 2], "x": "z"}}')
    b = json.loads('{\n "a": {"x": "z", "y": [1,2]},  "b": 1}')
    assert canonical(a) == canonical(b)
