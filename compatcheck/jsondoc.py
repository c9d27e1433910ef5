"""Decoding JSON that someone else wrote: snapshots, probe answers, manifests, hook requests.

``json.loads`` alone fails in ways a caller does not expect from a ``ValueError``-shaped API: a
document nested a thousand levels deep raises ``RecursionError`` (or decodes, and then breaks the
next recursive walker: the schema validator, the report writer), an integer of 5,000 digits raises
a plain ``ValueError``, and a key given twice silently keeps the last value. :func:`parse_json`
turns each into one :class:`JsonError` line, so every caller maps one exception onto its own
contract (an ``InputError``, a probe that is "not JSON", a 400).
"""

from __future__ import annotations

import json
import sys
from typing import Any

#: Deeper than any document compatcheck reads needs (a snapshot is about six levels deep), and
#: far from the interpreter's recursion limit, so that validators and writers recursing over
#: the result are safe too.
MAX_DEPTH = 64


class JsonError(ValueError):
    """The text is not JSON compatcheck accepts; ``str()`` is one line without the input's name,
    worded to follow "<input> is" (``not valid JSON: ...``, ``nested deeper than 64 levels``)."""


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise JsonError(f"JSON with a duplicate key `{key[:64]}`")
        out[key] = value
    return out


def _check_depth(value: Any, max_depth: int) -> None:
    """Iterative (a recursive check would fail exactly where it is needed)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > max_depth:
                    raise JsonError(f"nested deeper than {max_depth} levels")
                stack.append((child, depth + 1))


def parse_json(text: str | bytes, *, max_depth: int = MAX_DEPTH, unique_keys: bool = False) -> Any:
    """Decode ``text``; every way it is unacceptable is a :class:`JsonError`.

    ``unique_keys``: a key given twice in one object is an error instead of "the last one wins"
    (a request that says ``"new"`` twice must not be judged by whichever came last).
    """
    try:
        value = json.loads(text, object_pairs_hook=_unique if unique_keys else None)
    except JsonError:
        raise
    except json.JSONDecodeError as exc:
        raise JsonError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except UnicodeDecodeError:
        raise JsonError("not UTF-8 text") from None
    except RecursionError:
        raise JsonError(f"nested deeper than {max_depth} levels") from None
    except ValueError:
        # Python refuses to convert integers longer than sys.get_int_max_str_digits().
        limit = sys.get_int_max_str_digits()
        raise JsonError(f"JSON with a number of more than {limit} digits") from None
    if isinstance(value, dict | list):
        _check_depth(value, max_depth)
    return value
