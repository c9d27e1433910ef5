"""YAML documents that remember where each key stands, so errors can say ``file:line: problem``.

``yaml.safe_load`` drops positions, so :func:`parse_yaml` composes the node tree alongside and
indexes the line of every key path. :class:`YamlDocument` then validates values by key path
(``("old", "command", 2)``) and turns a problem into one ``UsageError`` line naming the file and
the line: "unknown key `comand`" is useless without saying where. Config and policy files both
use it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from compatcheck.errors import UsageError
from compatcheck.files import read_text

_KINDS: dict[type, str] = {
    list: "a list",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "nothing",
}


class _DuplicateKey(Exception):
    def __init__(self, key: str, line: int) -> None:
        self.key, self.line = key, line


def _index_lines(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    """Record the line of every key path; a key given twice in one mapping is an error.

    Trap: ``yaml.safe_load`` keeps the last of two equal keys without a word, so a second
    ``old:`` would silently replace the first target.
    """
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            if key in seen:
                raise _DuplicateKey(key, key_node.start_mark.line + 1)
            seen.add(key)
            out[(*path, key)] = key_node.start_mark.line + 1
            _index_lines(value_node, (*path, key, "="), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*path, i), out)


class YamlDocument:
    """One parsed YAML document: ``data`` (safe_load semantics) plus validators by key path."""

    def __init__(self, path: Path, data: Any, lines: dict[tuple[Any, ...], int]) -> None:
        self.path = path
        self.data = data
        self.lines = lines

    def vpath(self, where: tuple[Any, ...]) -> tuple[Any, ...]:
        """Key path → the path under which _index_lines stored nested values."""
        out: list[Any] = []
        for part in where:
            out.append(part)
            if isinstance(part, str):
                out.append("=")
        return tuple(out)

    def error(self, where: tuple[Any, ...], problem: str) -> UsageError:
        line = self.line_of(where)
        return UsageError(f"{self.path}:{line}: {problem}")

    def line_of(self, where: tuple[Any, ...]) -> int:
        # Key position for mapping keys, element position for list items.
        probe = where
        while probe:
            key_path = (*self.vpath(probe[:-1]), probe[-1])
            if key_path in self.lines:
                return self.lines[key_path]
            if self.vpath(probe) in self.lines:
                return self.lines[self.vpath(probe)]
            probe = probe[:-1]
        return 1

    @staticmethod
    def dotted(where: tuple[Any, ...]) -> str:
        out = ""
        for part in where:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        return out or "(top level)"

    def mapping(
        self, value: Any, where: tuple[Any, ...], allowed: tuple[str, ...]
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            got = _KINDS.get(type(value), type(value).__name__)
            if not where:
                raise self.error(where, f"the file must be a mapping of keys (got {got})")
            raise self.error(where, f"`{self.dotted(where)}` must be a mapping (got {got})")
        for key in value:
            if not isinstance(key, str):
                raise self.error(where, f"`{self.dotted(where)}`: keys must be strings")
            if key not in allowed:
                hint = ", ".join(allowed)
                raise self.error(
                    (*where, key), f"unknown key `{self.dotted((*where, key))}` (allowed: {hint})"
                )
        return value

    def string(self, value: Any, where: tuple[Any, ...]) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error(where, f"`{self.dotted(where)}` must be a string")
        return str(value)

    def path_in(self, value: Any, where: tuple[Any, ...], base: Path) -> Path:
        text = self.string(value, where)
        p = Path(text).expanduser()
        return Path(os.path.normpath(p if p.is_absolute() else base / p))

    def integer(self, value: Any, where: tuple[Any, ...], minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(where, f"`{self.dotted(where)}` must be an integer ≥ {minimum}")
        return value

    def string_list(self, value: Any, where: tuple[Any, ...]) -> list[str]:
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list):
            raise self.error(where, f"`{self.dotted(where)}` must be a list of strings")
        return [self.string(v, (*where, i)) for i, v in enumerate(value)]


def parse_yaml(text: str, path: Path) -> YamlDocument:
    """Parse one document safely; invalid YAML is a usage error naming the line."""
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else 1
        raise UsageError(f"{path}:{line}: invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: invalid YAML: {exc}") from None
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        try:
            _index_lines(node, (), lines)
        except _DuplicateKey as dup:
            raise UsageError(f"{path}:{dup.line}: duplicate key `{dup.key}`") from None
    return YamlDocument(path, data, lines)


def load_yaml_file(path: str | Path, what: str = "file") -> YamlDocument:
    """Read and parse ``path`` (see :func:`read_text` and :func:`parse_yaml`)."""
    return parse_yaml(read_text(path, what), Path(path))
