"""Decoding JSON that someone else wrote: snapshots, probe answers, manifests, hook requests.

``json.loads`` alone fails in ways a caller does not expect from a ``ValueError``-shaped API: a
document nested a thousand levels deep raises ``RecursionError`` (or decodes, and then breaks the
next recursive walker: the schema validator, the report writer), an integer of 5,000 digits raises
a plain ``ValueError``, and a key given twice silently keeps the last value. :func:`parse_json`
turns each into one :class:`JsonError` line, so every caller maps one exception onto its own
contract (an ``InputError``, a probe that is "not JSON", a 400).

Where a reader must say where something stands (a Grafana panel's line), :func:`locate_objects`
makes the decoder build :class:`LocatedDict` objects that know their place in the text.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import Any

#: Deeper than any document compatcheck reads needs (a snapshot is about six levels deep), and
#: far from the interpreter's recursion limit, so that validators and writers recursing over
#: the result are safe too.
MAX_DEPTH = 64


#: The next token of a JSON text that positions depend on: a key, with the colon and the blanks
#: after it (group 1: the token ends where the key's value starts), or a brace (the match's last
#: character). What comes before it is skipped inside the match, at C speed: numbers, literals,
#: brackets, commas and string values (a string not followed by a colon). Possessive, so that the
#: skipping never backtracks.
_POSITION_TOKEN = re.compile(
    r'(?:[^"{}]++|"[^"\\]*+(?:\\.[^"\\]*+)*+"(?![ \t\n\r]*+:))*+'
    r'(?:("[^"\\]*+(?:\\.[^"\\]*+)*+"[ \t\n\r]*+:[ \t\n\r]*+)|[{}])'
)


class JsonError(ValueError):
    """The text is not JSON compatcheck accepts; ``str()`` is one line without the input's name,
    worded to follow "<input> is" (``not valid JSON: ...``, ``nested deeper than 64 levels``).

    For a reader that names the place itself (``file:line: invalid JSON: ...``): ``problem`` is
    the reason without the place, worded to follow "invalid JSON:", and ``line`` the line where
    the decoder stopped when the text is not JSON at all (None for the other limits).
    """

    def __init__(self, message: str, *, problem: str | None = None, line: int | None = None):
        super().__init__(message)
        self.problem = problem or message
        self.line = line


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            shown = key[:64]
            raise JsonError(
                f"JSON with a duplicate key `{shown}`", problem=f"duplicate key `{shown}`"
            )
        out[key] = value
    return out


def check_depth(value: Any, max_depth: int) -> None:
    """:class:`JsonError` when ``value`` (decoded JSON) nests deeper than ``max_depth`` levels.

    Iterative (a recursive check would fail exactly where it is needed).

    Each container's children are typed at C speed (``set(map(type, ...))``) and only containers
    are visited: a 13 MB snapshot is mostly lists of label values, and a Python-level test of
    every one of them took seconds of the hook's cold verdict.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if not any(issubclass(t, dict | list) for t in set(map(type, children))):
            continue
        if depth + 1 > max_depth:
            raise JsonError(f"nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def parse_json(
    text: str | bytes,
    *,
    max_depth: int | None = MAX_DEPTH,
    unique_keys: bool = False,
    located: bool = False,
    shared_strings: bool = False,
) -> Any:
    """Decode ``text``; every way it is unacceptable is a :class:`JsonError`.

    ``unique_keys``: a key given twice in one object is an error instead of "the last one wins"
    (a request that says ``"new"`` twice must not be judged by whichever came last).
    ``located``: every object is a :class:`LocatedDict` (positions index ``text`` decoded).
    ``max_depth=None``: the caller checks the nesting itself (:func:`check_depth`), where it can
    do so for less (a snapshot whose schema bounds the depth of all but two keys); the decoder's
    own limit (the interpreter's recursion limit) still holds.
    ``shared_strings``: equal strings in lists are one object (see :func:`_sharing_hook`).
    """
    try:
        if located and isinstance(text, bytes):
            text = text.decode("utf-8")
        hook = _pairs_hook(text, unique_keys, located)
        if shared_strings:
            hook = _sharing_hook(hook)
        value = json.loads(text, object_pairs_hook=hook)
    except JsonError:
        raise
    except json.JSONDecodeError as exc:
        raise JsonError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            problem=exc.msg,
            line=exc.lineno,
        ) from None
    except UnicodeDecodeError:
        raise JsonError("not UTF-8 text") from None
    except RecursionError:
        raise JsonError(f"nested deeper than {max_depth or MAX_DEPTH} levels") from None
    except ValueError:
        # Python refuses to convert integers longer than sys.get_int_max_str_digits().
        limit = sys.get_int_max_str_digits()
        raise JsonError(
            f"JSON with a number of more than {limit} digits",
            problem=f"a number of more than {limit} digits",
        ) from None
    if max_depth is not None and isinstance(value, dict | list):
        check_depth(value, max_depth)
    return value


def parse_object(text: str | bytes) -> dict[str, Any]:
    """Decode ``text`` that must hold a JSON object: any other value is a :class:`JsonError`
    too (``not a JSON object``)."""
    value = parse_json(text)
    if not isinstance(value, dict):
        raise JsonError("not a JSON object")
    return value


class LocatedDict(dict[str, Any]):
    """A JSON object that knows where it stands in the text it was decoded from: ``pos`` is the
    index of its ``{``, ``value_pos[key]`` the index where the value of ``key`` starts."""

    __slots__ = ("pos", "value_pos")

    pos: int
    value_pos: dict[str, int]


def _sharing_hook(
    then: Callable[[list[tuple[str, Any]]], dict[str, Any]] | None,
) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """An ``object_pairs_hook`` that makes equal strings in lists one object, then builds the
    object with ``then`` (``dict`` when None).

    The decoder makes a new string of every value it reads. A snapshot is mostly lists of label
    values, and the same namespace, pod or node is a value in most families of a big exposition:
    a 13 MB snapshot decoded with shared strings holds a sixth of the memory, and the policy hook
    decodes two of them for a cold verdict. Lists are shared as they are decoded (each object's
    lists when its ``}`` is read), so the duplicates never all exist at once. Only lists of
    strings alone: ``1``, ``1.0`` and ``true`` are equal keys of a dict, and must stay apart.
    """
    shared: dict[str, str] = {}
    share = shared.setdefault
    build = then or dict

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        for i, (key, value) in enumerate(pairs):
            if type(value) is list and value and set(map(type, value)) == {str}:
                pairs[i] = key, list(map(share, value, value))
        return build(pairs)

    return hook


def _pairs_hook(
    text: str | bytes, unique_keys: bool, located: bool
) -> Callable[[list[tuple[str, Any]]], dict[str, Any]] | None:
    if not located:
        return _unique if unique_keys else None
    assert isinstance(text, str)
    build = locate_objects(text)
    if not unique_keys:
        return build

    def unique_located(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        _unique(pairs)
        return build(pairs)

    return unique_located


def locate_objects(text: str) -> Callable[[list[tuple[str, Any]]], LocatedDict]:
    """An ``object_pairs_hook`` for decoding ``text`` that builds :class:`LocatedDict` objects.

    The decoder (the C one: nothing of its internals is used) calls the hook once per object, when
    the object's ``}`` is read, so the objects come in the order of their closing braces. A scan
    of our own over the same text, run lazily alongside, yields the positions in that order.
    """
    positions = _object_positions(text)

    def build(pairs: list[tuple[str, Any]]) -> LocatedDict:
        obj = LocatedDict(pairs)
        obj.pos, starts = next(positions)
        # A key given twice: the last value and its position win, as the dict's value does.
        obj.value_pos = dict(zip(map(itemgetter(0), pairs), starts, strict=False))
        return obj

    return build


def _object_positions(text: str) -> Iterator[tuple[int, list[int]]]:
    """``(start, value starts)`` of each object of ``text``, in the order of their ``}``.

    Exact on valid JSON, and on the valid part of any text: the decoder only asks for the
    position of an object it has read whole, so every token up to that ``}`` is valid JSON.
    """
    stack: list[tuple[int, list[int]]] = []
    for m in _POSITION_TOKEN.finditer(text):
        end = m.end()
        if m.lastindex:  # a key: its value starts where the token ends
            stack[-1][1].append(end)
        elif text[end - 1] == "{":
            stack.append((end - 1, []))
        else:
            yield stack.pop()
