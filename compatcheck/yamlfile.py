"""YAML loading that remembers line numbers, so config and policy errors can say ``file:line``.

``yaml.safe_load`` drops positions; composing the node tree first keeps them. Mappings come back
as :class:`LineDict`, a plain ``dict`` that also knows the line of each key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from compatcheck.errors import UsageError


class LineDict(dict[str, Any]):
    """A mapping from YAML that knows where it and each of its keys start (1-based lines)."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list[Any]):
    """A sequence from YAML that knows the line of each item."""

    line: int = 0
    item_lines: list[int]


def _convert(node: yaml.Node, name: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        out = LineDict()
        out.line = node.start_mark.line + 1
        out.key_lines = {}
        for key_node, value_node in node.value:
            key = _convert(key_node, name)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise UsageError(
                    f"{name}:{key_node.start_mark.line + 1}: mapping keys must be scalars"
                )
            skey = str(key)
            if skey in out:
                raise UsageError(f"{name}:{key_node.start_mark.line + 1}: duplicate key `{skey}`")
            out[skey] = _convert(value_node, name)
            out.key_lines[skey] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        seq = LineList(_convert(n, name) for n in node.value)
        seq.line = node.start_mark.line + 1
        seq.item_lines = [n.start_mark.line + 1 for n in node.value]
        return seq
    # Scalars: let the safe constructor resolve the tag (int, bool, date, null...).
    return yaml.SafeLoader("").construct_object(node, deep=True)


def parse_yaml(text: str, name: str) -> Any:
    """Parse one YAML document safely, with line-aware mappings; errors are one line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"{name}{where}: invalid YAML: {problem}") from None
    if node is None:
        return None
    return _convert(node, name)


def load_yaml_file(path: str | Path, what: str = "file") -> Any:
    """Read and parse ``path``; a missing file or a directory is a one-line usage error."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{p}: no such {what}") from None
    except IsADirectoryError:
        raise UsageError(f"{p}: is a directory, expected a {what}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{p}: not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"{p}: cannot read: {exc.strerror}") from None
    return parse_yaml(text, str(p))
