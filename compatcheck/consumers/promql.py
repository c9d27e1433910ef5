"""PromQL as compatcheck needs it: which series a query selects and which labels it leans on.

``promql-parser`` (the Rust parser of Prometheus 2.45's grammar) gives the AST; this module
reduces it to a small tree (:data:`Node`) that keeps only what a rollback can break:

* every vector selector with its metric name (or ``__name__`` matcher), its label matchers and the
  labels its *surrounding* expression needs from it (``by``, ``on``, ``group_left``, the source
  labels of ``label_replace``/``label_join``, ``le`` under ``histogram_quantile``), attributed to
  the selectors of the subtree that uses them and to no other;
* the three operators whose meaning changes when an operand disappears: ``or`` (a fallback),
  ``unless`` (a filter) and ``absent``/``absent_over_time`` (a detector); everything else is an
  ``all`` node, blank when any operand is blank.

The tree is schema-free, so each distinct expression is parsed once per process (LRU cache) and
judged against any number of schemas by :mod:`compatcheck.consumers.judge`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import promql_parser

#: Placeholder prefix for a Grafana variable that stands where PromQL wants a name (metric, label)
#: or a number; a selector or label containing it is unknown, never judged.
VAR_PREFIX = "__grafana_"

#: Reasons a label is needed, as they appear in evidence (``needed_by``).
REASON_MATCHER = "matcher"

Need = tuple[str, str]  # (label, reason)


class PromQLError(ValueError):
    """An expression promql-parser rejects; ``str()`` is the one-line reason."""


@dataclass(frozen=True, slots=True)
class Matcher:
    label: str
    op: str  # "=", "!=", "=~", "!~"
    value: str


@dataclass(frozen=True, slots=True)
class Selector:
    """One vector selector and what the expression around it needs from its series."""

    name: str | None
    name_regex: str | None
    matchers: tuple[Matcher, ...]
    needs: frozenset[Need]
    text: str


@dataclass(frozen=True, slots=True)
class Op:
    """``kind`` is ``all``, ``or``, ``unless`` or ``absent`` (see the module docstring)."""

    kind: str
    children: tuple[Node, ...]


Node = Selector | Op

CONST = Op("all", ())

_MATCH_OPS = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}
# Aggregations that keep every input label (they select series, they do not merge them).
_SELECTING_AGGS = frozenset({"topk", "bottomk", "limitk", "limit_ratio"})


# ---------------------------------------------------------------------------------------------
# Grafana variables
# ---------------------------------------------------------------------------------------------

_VAR = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_]\w*)(?::[^}]*)?\}|(?P<plain>[A-Za-z_]\w*))"
    r"|\[\[(?P<old>[A-Za-z_]\w*)(?::[^\]]*)?\]\]"
)
#: Every character that can change the scanner's state in :func:`substitute_variables`.
_SPECIAL = re.compile(r"[$\[\]\"'`\\]")
_NUMERIC_BUILTINS = frozenset(
    {"__interval_ms", "__range_s", "__range_ms", "__rate_interval_ms", "__from", "__to"}
)


def substitute_variables(text: str, numeric: bool = False) -> str:
    """Replace Grafana template variables with values PromQL can parse, as mimirtool does.

    Inside ``[...]`` (ranges, subquery steps) and after ``offset`` a variable becomes ``5m``
    (``300`` when a unit letter follows, as in ``[${__range_s}s]``); inside a quoted string it
    becomes a placeholder name (a string is any string to the parser); elsewhere it becomes a
    placeholder identifier, or the number ``1`` when ``numeric`` is set (``topk($n, ...)``, the
    second attempt of :func:`parse_expression`). ``$1`` and ``${1}`` are regex group references
    of ``label_replace``, not variables, and are kept.
    """
    if "$" not in text and "[[" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    quote = ""
    depth = 0
    while i < n:
        # Only these characters change state or start a variable: copy the run before them.
        special = _SPECIAL.search(text, i)
        if special is None:
            out.append(text[i:])
            break
        if special.start() > i:
            out.append(text[i : special.start()])
            i = special.start()
        c = text[i]
        if quote:
            if c == "\\" and quote != "`":
                out.append(text[i : i + 2])
                i += 2
                continue
            if c == quote:
                quote = ""
            elif c in "$[":
                m = _VAR.match(text, i)
                if m:
                    out.append(VAR_PREFIX + _var_name(m))
                    i = m.end()
                    continue
            out.append(c)
            i += 1
            continue
        if c in "$[":
            m = _VAR.match(text, i)
            if m:
                name = _var_name(m)
                after = text[m.end() : m.end() + 1]
                if depth > 0 or "".join(out).rstrip().endswith("offset"):
                    out.append("300" if after.isalpha() else "5m")
                elif name in _NUMERIC_BUILTINS or numeric:
                    out.append("1")
                elif name.startswith("__"):
                    out.append("300")  # $__interval & co. outside a range: a number of seconds
                else:
                    out.append(VAR_PREFIX + name)
                i = m.end()
                continue
        if c in "\"'`":
            quote = c
        elif c == "[":
            depth += 1
        elif c == "]":
            depth = max(0, depth - 1)
        out.append(c)
        i += 1
    return "".join(out)


def _var_name(m: re.Match[str]) -> str:
    return m.group("braced") or m.group("plain") or m.group("old") or ""


def matches_empty(op: str, value: str) -> bool:
    """Does the matcher accept a series that lacks the label (empty value)?"""
    if op == "=":
        return value == ""
    if op == "!=":
        return value != ""
    if VAR_PREFIX in value:
        return True  # a variable's "All" is usually `.*`: do not demand the label
    try:
        hit = re.fullmatch(value, "") is not None
    except re.error:
        return True
    return hit if op == "=~" else not hit


# ---------------------------------------------------------------------------------------------
# Parsing into the judge's tree
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Parsed:
    """One expression as :func:`parse_consumer` reads it."""

    node: Node
    #: Whether its value is an instant vector, the only kind ``or`` joins: a rewrite
    #: ``(expr) or (expr renamed)`` then parses without asking the parser again (see
    #: :func:`~compatcheck.consumers.bridge.rewrite_query`).
    vector: bool


@lru_cache(maxsize=65536)
def parse_consumer(
    text: str, grafana: bool = False, root_needs: frozenset[Need] = frozenset()
) -> Parsed:
    """Parse ``text`` and reduce it to a :data:`Node`; raises :class:`PromQLError`.

    ``grafana`` substitutes template variables first; ``root_needs`` are labels the consumer
    reads from the result itself (an alert's ``$labels.x`` templates, a ``label_values``
    variable's label). Cached: a rule set repeats the same expressions many times.
    """
    tree = parse_promql(text, grafana)
    return Parsed(_build(tree, root_needs), _is_vector(tree))


def clear_caches() -> None:
    """Forget every expression and selector parsed so far, as in a fresh process (the cold runs
    of ``bench/consumers.py``)."""
    parse_consumer.cache_clear()
    _SELECTOR_PARTS.clear()
    _SELECTORS.clear()


def parse_expression(
    text: str, grafana: bool = False, root_needs: frozenset[Need] = frozenset()
) -> Node:
    """The :data:`Node` of :func:`parse_consumer` (same cache)."""
    return parse_consumer(text, grafana, root_needs).node


def _is_vector(e: Any) -> bool:
    """Whether promql-parser's tree ``e`` has an instant-vector value; False when unsure (the
    caller then asks the parser)."""
    while isinstance(e, promql_parser.ParenExpr | promql_parser.UnaryExpr):
        e = e.expr
    if isinstance(e, promql_parser.VectorSelector | promql_parser.AggregateExpr):
        return True
    if isinstance(e, promql_parser.Call):
        return bool(e.func.return_type == promql_parser.ValueType.Vector)
    if isinstance(e, promql_parser.BinaryExpr):
        return _is_vector(e.lhs) or _is_vector(e.rhs)
    return False


def parse_promql(text: str, grafana: bool = False) -> Any:
    """promql-parser's tree of ``text`` (template variables substituted first for ``grafana``);
    raises :class:`PromQLError`. Alone, where only "does it parse" is asked: reducing the tree
    to a :data:`Node` costs more than parsing it."""
    source = substitute_variables(text) if grafana else text
    try:
        return promql_parser.parse(source)
    except ValueError as exc:
        if grafana and VAR_PREFIX in source:
            try:  # the variable may stand for a number: topk($n, ...), x > $threshold
                return promql_parser.parse(substitute_variables(text, numeric=True))
            except ValueError:
                raise PromQLError(_one_line(exc)) from None
        raise PromQLError(_one_line(exc)) from None


def _one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    return msg or type(exc).__name__


def _without(needs: frozenset[Need], labels: Iterable[str]) -> frozenset[Need]:
    if not needs:  # the common case: nothing asked from outside
        return needs
    drop = set(labels)
    return frozenset(n for n in needs if n[0] not in drop)


def _only(needs: frozenset[Need], labels: Iterable[str]) -> frozenset[Need]:
    if not needs:
        return needs
    keep = set(labels)
    return frozenset(n for n in needs if n[0] in keep)


def _tag(labels: Iterable[str], reason: str) -> frozenset[Need]:
    return frozenset((label, reason) for label in labels if label and VAR_PREFIX not in label)


def _build(e: Any, needs: frozenset[Need]) -> Node:
    # By exact class first (promql-parser's node classes are final): one dict lookup instead of
    # a chain of isinstance calls, for each of the ~6 nodes of a typical expression.
    build = _BUILDERS.get(type(e))
    if build is not None:
        return build(e, needs)
    if isinstance(e, promql_parser.VectorSelector):
        return _selector(e, needs)
    if isinstance(e, promql_parser.MatrixSelector):
        return _selector(e.vector_selector, needs)
    if isinstance(e, _WRAPPERS):
        return _build(e.expr, needs)
    if isinstance(e, _LITERALS):
        return CONST
    if isinstance(e, promql_parser.AggregateExpr):
        return _aggregate(e, needs)
    if isinstance(e, promql_parser.BinaryExpr):
        return _binary(e, needs)
    if isinstance(e, promql_parser.Call):
        return _call(e, needs)
    return CONST  # pragma: no cover - every node class of promql-parser 0.12 is handled above


_WRAPPERS = (promql_parser.ParenExpr, promql_parser.UnaryExpr, promql_parser.SubqueryExpr)
_LITERALS = (promql_parser.NumberLiteral, promql_parser.StringLiteral)


def _matrix(e: Any, needs: frozenset[Need]) -> Node:
    return _selector(e.vector_selector, needs)


def _wrapped(e: Any, needs: frozenset[Need]) -> Node:
    return _build(e.expr, needs)


def _literal(e: Any, needs: frozenset[Need]) -> Node:
    return CONST


def _selector(vs: Any, needs: frozenset[Need]) -> Selector:
    text = str(vs)
    node = _SELECTORS.get((text, needs))
    if node is not None:
        return node
    parts = _SELECTOR_PARTS.get(text)
    if parts is None:
        parts = _selector_parts(vs)
        if len(_SELECTOR_PARTS) >= _SELECTOR_PARTS_MAX:
            _SELECTOR_PARTS.clear()
        _SELECTOR_PARTS[text] = parts
    name, name_regex, matchers = parts
    node = Selector(name, name_regex, matchers, needs, text[:-2] if text.endswith("{}") else text)
    if len(_SELECTORS) >= _SELECTOR_PARTS_MAX:
        _SELECTORS.clear()
    _SELECTORS[text, needs] = node
    return node


#: A selector's name and matchers by its text (promql-parser's rendering, which spells every
#: matcher): dashboards and rule sets repeat selectors across queries, and reading the matchers
#: out of promql-parser's tree makes a Python object per matcher and per attribute, several times
#: the cost of rendering the text. Bounded: cleared when full.
_SELECTOR_PARTS: dict[str, tuple[str | None, str | None, tuple[Matcher, ...]]] = {}
_SELECTOR_PARTS_MAX = 65536
#: The node itself by (text, needs): a frozen node is shared, not built again for each query
#: that repeats the selector with the same needs (most of them). Bounded likewise.
_SELECTORS: dict[tuple[str, frozenset[Need]], Selector] = {}


def _selector_parts(vs: Any) -> tuple[str | None, str | None, tuple[Matcher, ...]]:
    name: str | None = vs.name
    name_regex: str | None = None
    matchers: list[Matcher] = []
    for m in vs.matchers.matchers:
        op = _MATCH_OPS.get(str(m.op).rsplit(".", 1)[-1], "=")
        label = m.name
        if label == "__name__":
            if op == "=" and name is None:
                name = m.value
            elif op == "=~" and name is None:
                name_regex = m.value
            continue
        matchers.append(Matcher(label, op, m.value))
    return name, name_regex, tuple(matchers)


def _aggregate(e: Any, needs: frozenset[Need]) -> Node:
    op = str(e.op).lower()
    mod = e.modifier
    labels: list[str] = list(mod.labels) if mod is not None else []
    is_by = mod is not None and str(mod.type).endswith("By")
    produced: set[str] = set()
    if op == "count_values" and isinstance(e.param, promql_parser.StringLiteral):
        produced.add(e.param.val)
    if op in _SELECTING_AGGS:
        inner = needs | _tag(labels, "by") if is_by else needs
    elif mod is None:
        inner = frozenset()
    elif is_by:
        inner = _tag(labels, "by")
    else:  # without(...): every other label survives, so outer needs pass through
        inner = _without(needs, labels)
    inner = _without(inner, produced)
    children = [_build(e.expr, inner)]
    if e.param is not None and not isinstance(e.param, _LITERALS):
        children.append(_build(e.param, frozenset()))
    return _all(children)


def _binary(e: Any, needs: frozenset[Need]) -> Node:
    op = str(e.op).lower()
    mod = e.modifier
    matching = mod.matching if mod is not None else None
    on: list[str] | None = None
    ignoring: list[str] = []
    if matching is not None:
        if str(matching.type).endswith("Include"):
            on = list(matching.labels)
        else:
            ignoring = list(matching.labels)
    card = str(mod.card).rsplit(".", 1)[-1] if mod is not None else "OneToOne"
    group = list(mod.group_labels or ()) if mod is not None else []

    if op in ("and", "or", "unless"):
        match_needs = _tag(on, "on") if on is not None else frozenset()
        lhs_needs = _without(needs, ignoring) | match_needs
        rhs_needs = lhs_needs if op == "or" else match_needs
        kind = {"and": "all", "or": "or", "unless": "unless"}[op]
        return Op(kind, (_build(e.lhs, lhs_needs), _build(e.rhs, rhs_needs)))

    match_needs = _tag(on, "on") if on is not None else frozenset()
    if card == "ManyToOne" or card == "OneToMany":
        many_needs = _without(_without(needs, group), ignoring) | match_needs
        one_needs = match_needs | _tag(
            group, "group_left" if card == "ManyToOne" else "group_right"
        )
        lhs_needs, rhs_needs = (many_needs, one_needs)
        if card == "OneToMany":
            lhs_needs, rhs_needs = one_needs, many_needs
    elif on is not None:
        # one-to-one with on(...): the result keeps only the matching labels
        lhs_needs = rhs_needs = match_needs | _only(needs, on)
    else:
        lhs_needs = rhs_needs = _without(needs, ignoring)
    return _all([_build(e.lhs, lhs_needs), _build(e.rhs, rhs_needs)])


def _call(e: Any, needs: frozenset[Need]) -> Node:
    name = e.func.name
    args = list(e.args)
    if name in ("absent", "absent_over_time"):
        # absent()'s result is built from the selector's equality matchers only; what the outer
        # expression needs is not asked of the inner series.
        return Op("absent", tuple(_build(a, frozenset()) for a in args))
    if name == "label_replace" and len(args) == 5:
        dst, src = _string(args[1]), _string(args[3])
        inner = _without(needs, [dst]) | _tag([src], "label_replace")
        return _all([_build(args[0], inner)])
    if name == "label_join" and len(args) >= 3:
        dst = _string(args[1])
        srcs = [_string(a) for a in args[3:]]
        inner = _without(needs, [dst]) | _tag(srcs, "label_join")
        return _all([_build(args[0], inner)])
    if name == "histogram_quantile" and len(args) == 2:
        return _all([_build(args[0], frozenset()), _build(args[1], needs | {("le", "le")})])
    if name in ("scalar", "vector"):
        return _all([_build(a, frozenset()) for a in args])
    return _all([_build(a, needs) for a in args])


#: The reduction of each promql-parser node class (see :func:`_build`).
_BUILDERS: dict[type, Callable[[Any, frozenset[Need]], Node]] = {
    promql_parser.VectorSelector: _selector,
    promql_parser.MatrixSelector: _matrix,
    **dict.fromkeys(_WRAPPERS, _wrapped),
    **dict.fromkeys(_LITERALS, _literal),
    promql_parser.AggregateExpr: _aggregate,
    promql_parser.BinaryExpr: _binary,
    promql_parser.Call: _call,
}


def _string(e: Any) -> str:
    return str(e.val) if isinstance(e, promql_parser.StringLiteral) else ""


def _all(children: list[Node]) -> Node:
    kept = tuple(c for c in children if c is not CONST)
    if not kept:
        return CONST
    if len(kept) == 1:
        return kept[0]
    return Op("all", kept)


def selectors(node: Node) -> list[Selector]:
    """Every selector of a tree, left to right."""
    if isinstance(node, Selector):
        return [node]
    out: list[Selector] = []
    for c in node.children:
        out.extend(selectors(c))
    return out


# ---------------------------------------------------------------------------------------------
# Textual rename (for the ``new or old`` rewrite): keeps the author's spelling and variables
# ---------------------------------------------------------------------------------------------

_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})


def rename_metrics(text: str, renames: Mapping[str, str]) -> str:
    """Rename metric-name tokens of ``text`` (not labels, functions, strings or variables).

    Works on the text rather than the AST so that Grafana variables, comments and the author's
    layout survive; the caller re-parses the result to verify it.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'`":
            j = _after_quoted(text, i)
            out.append(text[i:j])
            i = j
            continue
        if c == "$" or (c == "[" and text.startswith("[[", i)):
            m = _VAR.match(text, i)
            if m:
                out.append(m.group(0))
                i = m.end()
                continue
        if c in "{[":
            j = _skip_group(text, i, c, "}" if c == "{" else "]")
            out.append(text[i:j])
            i = j
            continue
        if c.isdigit() or (c == "." and text[i + 1 : i + 2].isdigit()):
            m2 = re.compile(r"[0-9.]+(?:[eE][+-]?\d+)?[A-Za-z0-9]*").match(text, i)
            end = m2.end() if m2 else i + 1
            out.append(text[i:end])
            i = end
            continue
        m = _IDENT.match(text, i)
        if m:
            word = m.group(0)
            j = m.end()
            k = j
            while k < n and text[k] in " \t\r\n":
                k += 1
            nxt = text[k : k + 1]
            if word.lower() in _LABEL_LIST_KEYWORDS and nxt == "(":
                end = _skip_group(text, k, "(", ")")
                out.append(text[i:end])
                i = end
                continue
            if nxt == "(" or word not in renames:
                out.append(word)
            else:
                out.append(renames[word])
            i = j
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _skip_group(text: str, i: int, open_: str, close: str) -> int:
    """Index just past the ``close`` matching ``text[i] == open_`` (quotes respected)."""
    depth = 0
    j, n = i, len(text)
    while j < n:
        c = text[j]
        if c in "\"'`":
            j = _after_quoted(text, j)
            continue
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return n


def _after_quoted(text: str, i: int) -> int:
    """Index just past the string literal that starts with the quote ``text[i]`` (backslash
    escapes, except in backtick strings, which PromQL takes raw)."""
    quote, j, n = text[i], i + 1, len(text)
    while j < n and text[j] != quote:
        j += 2 if text[j] == "\\" and quote != "`" else 1
    return j + 1
