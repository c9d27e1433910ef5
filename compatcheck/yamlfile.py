"""YAML documents that remember where each key stands, so errors can say ``file:line: problem``.

``yaml.safe_load`` drops positions, so :func:`parse_yaml` composes the node tree once, indexes the
line of every key path, and constructs the values from that same tree. :class:`YamlDocument` then
validates values by key path (``("old", "command", 2)``) and turns a problem into one
``UsageError`` line naming the file and the line: "unknown key `comand`" is useless without saying
where. Config and policy files both use it; rule files share :func:`check_tree`.

Hostile or broken files fail in one line, in bounded time and memory:

* libyaml's loader (``yaml.CSafeLoader``) where it is installed: large files load in linear time,
  about ten times faster than the pure-Python one; its node marks keep the lines.
* Aliases are walked once. Where a format has no use for them (policy files) they are refused;
  elsewhere they may add at most :data:`MAX_ALIAS_NODES` nodes to the document once expanded, so a
  "billion laughs" file is refused before anything walks the expanded tree.
* Nesting deeper than :data:`MAX_DEPTH`, files larger than :data:`MAX_YAML_BYTES`, duplicate keys:
  one line each. ``RecursionError`` and ``MemoryError`` while loading too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from compatcheck.errors import UsageError
from compatcheck.files import read_text

#: Config and policy files are written by hand: a few KB. 8 MiB (about 100,000 waivers) is room.
MAX_YAML_BYTES = 8 * 1024 * 1024
#: compatcheck.yaml is at most six levels deep (a warm-up request's JSON body aside).
MAX_DEPTH = 64
#: Nodes that aliases may add to a document when expanded: sharing an `env` block between OLD
#: and NEW adds dozens; an alias bomb adds billions.
MAX_ALIAS_NODES = 100_000

#: libyaml's loader: same node marks (lines), ~10x faster; pure Python where libyaml is missing.
LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_KINDS: dict[type, str] = {
    list: "a list",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "nothing",
}


_NO_ALIASES = "aliases (`*name`) are not allowed in this file"


class TreeError(Exception):
    """A problem found by :func:`check_tree`, at a 1-based ``line``."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line, self.problem = line, problem


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _expanded_size(root: yaml.Node, distinct: int) -> None:
    """Raise :class:`TreeError` when expanding every alias adds more than
    :data:`MAX_ALIAS_NODES` nodes to the ``distinct`` ones, or when an alias refers to a node
    that contains it (a cycle).

    Each node is sized once (sizes are memoised), so this is linear in the file, not in the
    expansion.
    """
    limit = distinct + MAX_ALIAS_NODES
    size: dict[int, int] = {}
    open_: set[int] = set()  # nodes entered and not finished: the current path
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_.discard(key)
            total = 1 + sum(size[id(c)] for c in _children(node))
            if total > limit:
                raise TreeError(
                    _line(node), f"aliases expand to more than {MAX_ALIAS_NODES:,} extra nodes"
                )
            size[key] = total
            continue
        if key in size:
            continue
        if key in open_:
            raise TreeError(_line(node), "an alias refers to a node that contains it")
        open_.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in size)


def check_tree(
    root: yaml.Node,
    *,
    aliases: bool,
    max_depth: int | None = MAX_DEPTH,
    lines: dict[tuple[Any, ...], int] | None = None,
) -> None:
    """Walk a composed document once: duplicate keys, depth and aliases; index key lines.

    Trap: ``yaml.safe_load`` keeps the last of two equal keys without a word, so a second ``old:``
    would silently replace the first target (and a second ``expr:`` the first expression).

    Every node is walked once: a node reached again is an alias, refused unless ``aliases`` and
    then bounded by :data:`MAX_ALIAS_NODES` (see :func:`_expanded_size`). ``lines`` receives the
    line of every key path (``(*path, key)``) and of every value (``(*path, key, "=")``, list
    items ``(*path, i)``), as :class:`YamlDocument` looks them up.
    """
    seen: set[int] = set()
    shared = False
    stack: list[tuple[yaml.Node, tuple[Any, ...], int, int]] = [(root, (), 1, _line(root))]
    while stack:
        node, path, depth, at = stack.pop()
        if lines is not None:
            lines[path] = _line(node)
        if id(node) in seen:
            if not aliases:
                raise TreeError(at, _NO_ALIASES)
            shared = True
            continue
        seen.add(id(node))
        if max_depth is not None and depth > max_depth:
            raise TreeError(_line(node), f"nested deeper than {max_depth} levels")
        children: list[tuple[yaml.Node, tuple[Any, ...], int, int]] = []
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    key = key_node.value
                    if key in keys:
                        raise TreeError(_line(key_node), f"duplicate key `{key}`")
                    keys.add(key)
                else:  # a list or mapping as a key: construction refuses it (unhashable)
                    key = f"<{key_node.id} key>"
                if lines is not None:
                    lines[(*path, key)] = _line(key_node)
                children.append((value_node, (*path, key, "="), depth + 1, _line(key_node)))
        elif isinstance(node, yaml.SequenceNode):
            children = [
                (item, (*path, i), depth + 1, _line(item)) for i, item in enumerate(node.value)
            ]
        stack.extend(reversed(children))  # document order: an anchor is met before its aliases
    if shared:
        _expanded_size(root, len(seen))


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


def compose_yaml(text: str) -> yaml.Node | None:
    """The node tree of a one-document YAML text, with libyaml where available.

    A syntax error is raised as the pure-Python parser words it, so messages (and the tests that
    pin them) do not depend on whether libyaml is installed; the fast loader is used for the
    common case, a valid file.
    """
    loader = LOADER(text)
    try:
        return loader.get_single_node()  # type: ignore[no-any-return]
    except yaml.MarkedYAMLError:
        if LOADER is yaml.SafeLoader:
            raise
        for _ in yaml.parse(text, Loader=yaml.SafeLoader):
            pass
        raise
    finally:
        loader.dispose()


def _first_alias_line(text: str) -> int | None:
    """Where the first ``*alias`` stands (composed nodes only know their anchor's line)."""
    for event in yaml.parse(text, Loader=LOADER):
        if isinstance(event, yaml.AliasEvent) and event.start_mark is not None:
            return int(event.start_mark.line) + 1
    return None


def parse_yaml(text: str, path: Path, *, aliases: bool = True) -> YamlDocument:
    """Parse one document safely; every problem is one :class:`UsageError` naming the file.

    ``aliases=False`` for formats that have no use for them (see :func:`check_tree`).
    """
    if len(text) > MAX_YAML_BYTES:
        raise UsageError(f"{path}: larger than {MAX_YAML_BYTES // (1024 * 1024)} MiB")
    lines: dict[tuple[Any, ...], int] = {}
    try:
        node = compose_yaml(text)
        if node is None:
            return YamlDocument(path, None, lines)
        check_tree(node, aliases=aliases, lines=lines)
        data = LOADER("").construct_document(node)
    except TreeError as exc:
        line = _first_alias_line(text) if exc.problem == _NO_ALIASES else exc.line
        raise UsageError(f"{path}:{line or exc.line}: {exc.problem}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else 1
        raise UsageError(f"{path}:{line}: invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise UsageError(f"{path}: nested too deeply") from None
    except MemoryError:
        raise UsageError(f"{path}: too large to load (out of memory)") from None
    return YamlDocument(path, data, lines)


def load_yaml_file(path: str | Path, what: str = "file", *, aliases: bool = True) -> YamlDocument:
    """Read (at most :data:`MAX_YAML_BYTES`) and parse ``path`` (see :func:`parse_yaml`)."""
    return parse_yaml(read_text(path, what, max_bytes=MAX_YAML_BYTES), Path(path), aliases=aliases)
