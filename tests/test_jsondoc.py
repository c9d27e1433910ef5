"""Positions of decoded JSON objects (``locate_objects``): exact whatever the formatting.

The oracle uses only the public decoder: ``raw_decode`` at an object's position gives the object,
and between the end of one member's value and the start of the next one's there is exactly a
comma, the key's string literal and a colon (with blanks), so every position is pinned.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compatcheck.jsondoc import JsonError, LocatedDict, locate_objects, parse_json, parse_object

_DECODER = json.JSONDecoder()
_MEMBER_GAP = re.compile(r'[ \t\n\r]*,?[ \t\n\r]*("(?:[^"\\]|\\.)*")[ \t\n\r]*:[ \t\n\r]*')


def _located(text: str) -> Any:
    return json.loads(text, object_pairs_hook=locate_objects(text))


def _check_positions(text: str, value: Any) -> int:
    """Assert that every object in ``value`` has exact positions; returns how many objects."""
    count = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        assert isinstance(item, LocatedDict)
        count += 1
        assert text[item.pos] == "{"
        assert _DECODER.raw_decode(text, item.pos)[0] == item
        assert list(item.value_pos) == list(item)
        prev = item.pos + 1
        for key, start in item.value_pos.items():
            gap = _MEMBER_GAP.fullmatch(text, prev, start)
            assert gap is not None, (text[prev:start], key)
            assert json.loads(gap.group(1)) == key
            decoded, prev = _DECODER.raw_decode(text, start)
            assert decoded == item[key]
            stack.append(item[key])
    return count


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=25,
)


@given(
    _VALUES,
    st.sampled_from([None, 0, 2, "\t", "\r\n "]),
    st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " \t:\r\n")]),
    st.booleans(),
)
def test_positions_are_exact_for_any_formatting(
    value: Any, indent: int | str | None, separators: tuple[str, str], ascii_only: bool
) -> None:
    text = json.dumps(value, indent=indent, separators=separators, ensure_ascii=ascii_only)
    decoded = _located(text)
    assert decoded == value
    _check_positions(text, decoded)


def test_strings_that_look_like_structure() -> None:
    text = (
        '{"a{": "}{:\\"", "b\\"}": {"c": [ {"d" :\r\n\t"x"} ], "e": "\\\\"},\n'
        ' "\\u007b": {}, "f": "\\u0022}"}'
    )
    decoded = _located(text)
    assert _check_positions(text, decoded) == 4
    assert decoded.value_pos['b"}'] == text.index('{"c"')
    assert decoded['b"}']["c"][0].value_pos["d"] == text.index('"x"')


def test_a_key_given_twice_keeps_the_last_value_and_its_position() -> None:
    text = '{"k": 1, "k": [2]}'
    decoded = _located(text)
    assert decoded == {"k": [2]}
    assert decoded.value_pos == {"k": text.index("[2]")}


def test_located_decoding_keeps_the_limits() -> None:
    text = '{\n  "a": {"b": 1},\n  "a": 2\n}'
    assert parse_json(text, located=True) == {"a": 2}
    with pytest.raises(JsonError) as info:
        parse_json(text, located=True, unique_keys=True)
    assert (str(info.value), info.value.problem) == (
        "JSON with a duplicate key `a`",
        "duplicate key `a`",
    )
    with pytest.raises(JsonError) as info:
        parse_json(text.encode()[:-2], located=True)
    assert (info.value.line, info.value.problem) == (3, "Expecting ',' delimiter")
    assert str(info.value) == "not valid JSON: Expecting ',' delimiter at line 3 column 9"
    with pytest.raises(JsonError) as info:
        parse_json("[" * 65 + "]" * 65, located=True)
    assert (info.value.line, info.value.problem) == (None, "nested deeper than 64 levels")


@pytest.mark.parametrize("text", ["[]", "null", '"{}"', "3"])
def test_parse_object_refuses_other_values(text: str) -> None:
    """Readers that need an object (a registry config, an OCI index) say so in one wording."""
    assert parse_object(b'{"a": [1]}') == {"a": [1]}
    with pytest.raises(JsonError, match=r"^not a JSON object$"):
        parse_object(text)
