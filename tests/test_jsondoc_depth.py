"""The nesting limit (checked by a walk that skips containers of leaves at C speed) must agree
with the obvious recursive definition on every JSON document, strings full of brackets included,
decoded from text or from UTF-8/UTF-16 bytes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compatcheck.jsondoc import JsonError, parse_json


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


_TEXT = st.text(alphabet=st.sampled_from('[]{}"\\ab:,\n\u00e9\u2028'), max_size=8)
_LEAF = st.none() | st.booleans() | st.integers() | _TEXT
_JSON = st.recursive(
    _LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=40,
)


@given(value=_JSON, limit=st.integers(min_value=1, max_value=8), as_bytes=st.booleans())
def test_the_text_count_agrees_with_the_value_walk(value: Any, limit: int, as_bytes: bool) -> None:
    text = json.dumps(value, ensure_ascii=bool(limit % 2))
    data: str | bytes = text.encode("utf-16") if as_bytes and limit == 3 else text
    if as_bytes and limit != 3:
        data = text.encode()
    if _depth(value) > limit:
        with pytest.raises(JsonError, match=f"nested deeper than {limit} levels"):
            parse_json(data, max_depth=limit)
    else:
        assert parse_json(data, max_depth=limit) == value


def test_brackets_inside_strings_do_not_count() -> None:
    doc = {"a": "[[[[[[[[[[{{{{{{{{", "b": ['\\"]]]]', "x"]}
    assert parse_json(json.dumps(doc), max_depth=2) == doc
    with pytest.raises(JsonError):
        parse_json(json.dumps({"a": [[{"b": []}]]}), max_depth=3)


@given(value=_JSON)
def test_shared_strings_decode_to_the_same_document(value: Any) -> None:
    text = json.dumps(value)
    # repr tells 1, 1.0 and True apart, which == does not.
    assert repr(parse_json(text, shared_strings=True)) == repr(json.loads(text))


def test_shared_strings_are_one_object_in_lists_of_strings_only() -> None:
    text = json.dumps({"a": {"x": ["pod-1", "pod-2"]}, "b": {"y": ["pod-1"]}, "n": [1, 1.0, True]})
    doc = parse_json(text, shared_strings=True)
    assert doc["a"]["x"][0] is doc["b"]["y"][0]
    assert [type(v) for v in doc["n"]] == [int, float, bool]
    plain = parse_json(text)
    assert plain["a"]["x"][0] is not plain["b"]["y"][0]
