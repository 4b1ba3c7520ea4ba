"""Strict YAML and JSON readers: line numbers, duplicate keys, non-finite numbers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charter._sources import json_positions, parse_json_strict, parse_yaml
from charter.errors import CharterError, json_path, parse_json_path


def test_yaml_lines_point_at_keys_and_items() -> None:
    data, smap = parse_yaml("a: 1\nb:\n  - c: 2\n    d: [1, 2]\n", "f.yaml")
    assert data == {"a": 1, "b": [{"c": 2, "d": [1, 2]}]}
    assert smap.line_of(("b",)) == 2
    assert smap.line_of(("b", 0, "d")) == 4
    assert smap.line_of(("b", 0, "missing", "deeper")) == 3  # falls back to the closest ancestor
    location = smap.location(("b", 0, "d", 1))
    assert (location.file, location.line, location.path) == ("f.yaml", 4, "$.b[0].d[1]")


def test_yaml_duplicate_key_is_an_error_with_both_lines() -> None:
    with pytest.raises(CharterError) as info:
        parse_yaml("a: 1\nb:\n  c: 2\n  c: 3\n", "p.yaml")
    assert info.value.code == "duplicate_key"
    assert info.value.location.line == 4
    assert "first on line 3" in str(info.value)


def test_yaml_syntax_error_has_a_line() -> None:
    with pytest.raises(CharterError) as info:
        parse_yaml("a: [1, 2\nb: 3\n", "p.yaml")
    assert info.value.code == "yaml_syntax" and info.value.location.line is not None


def test_yaml_does_not_construct_python_objects() -> None:
    with pytest.raises(CharterError):
        parse_yaml("a: !!python/object/apply:os.system ['true']\n", "evil.yaml")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_rejects_non_finite_numbers_with_their_path(constant: str) -> None:
    with pytest.raises(CharterError) as info:
        parse_json_strict('{"a": {"b": [1, ' + constant + "]}}", "x.json")
    assert info.value.code == "non_finite_number"
    assert info.value.location.path == "$.a.b[1]"


def test_json_rejects_duplicate_keys_with_their_path() -> None:
    with pytest.raises(CharterError) as info:
        parse_json_strict('{"kpis": {"recall": 1, "recall": 2}}')
    assert info.value.code == "duplicate_key"
    assert info.value.location.path == "$.kpis.recall"


def test_json_syntax_error_has_line() -> None:
    with pytest.raises(CharterError) as info:
        parse_json_strict('{\n"a": \n}', "x.json")
    assert info.value.code == "json_syntax" and info.value.location.line == 3


def test_json_rejects_invalid_utf8() -> None:
    with pytest.raises(CharterError) as info:
        parse_json_strict(b'{"a": "\xff"}')
    assert info.value.code == "encoding"


def test_json_rejects_numbers_that_overflow_to_infinity() -> None:
    with pytest.raises(CharterError) as info:
        parse_json_strict('{"kpis": {"latency_p95_ms": 1e999}}')
    assert info.value.code == "non_finite_number"
    assert info.value.location.path == "$.kpis.latency_p95_ms"


def test_json_syntax_error_after_a_constant_is_reported_as_syntax() -> None:
    with pytest.raises(CharterError) as info:
        parse_json_strict('{"a": NaN, "b": ')
    assert info.value.code == "json_syntax"


# -- positions of JSON values (bundle errors give line and column) -----------------------------------


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20)


def _paths(value: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


@settings(max_examples=300, deadline=None)
@given(_json_values, st.sampled_from([None, 2]), st.data())
def test_json_position_points_at_the_value_of_every_path(value: object, indent: int | None,
                                                          data: st.DataObject) -> None:
    import json

    text = json.dumps(value, indent=indent)
    path = data.draw(st.sampled_from(_paths(value)))
    position = json_positions(text, [path]).get(path)
    assert position is not None
    line, column = position
    offset = sum(len(row) + 1 for row in text.split("\n")[:line - 1]) + column - 1
    expected: object = value
    for part in path:
        expected = expected[part]  # type: ignore[index]
    assert json.JSONDecoder().raw_decode(text, offset)[0] == expected
    assert parse_json_path(json_path(path)) == path
