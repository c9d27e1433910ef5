"""Read consumers: Prometheus rule files, Grafana dashboards and plain PromQL lists.

Every expression keeps the file and line it came from, because a finding an SRE cannot locate is a
finding they cannot act on:

* YAML rule files are read with ``yaml.compose_all`` (nodes, not values), so a rule's line is the
  line of its first key (``- alert: X``) and an expression's line is the line of its ``expr``
  value. Multi-document streams and Kubernetes ``PrometheusRule`` objects (``spec.groups``) are
  read document by document: a broken document does not hide the ones before it.
* JSON dashboards are decoded by the standard library's pure-Python scanner with a hook that
  records where every object and value starts, so a panel's line is the line of its ``{`` and a
  target's line is the line of its ``"expr"`` value — exact, whatever the formatting.
* Text files hold one expression per line; ``#`` starts a comment line.

Unreadable content becomes a ``consumers/parse-error`` finding (the run goes on); a path that does
not exist is an :class:`~compatcheck.errors.InputError` (the user mistyped something).

Subjects (the public, stable id of a consumer, used by waivers) are::

    alert:<alertname>            record:<record name>
    panel:<dashboard title>/<panel title>     (``#<id>`` appended when the title is empty or
                                               repeated in the dashboard)
    variable:<dashboard title>/<variable name>
    query:<file>:<line>          (text files: an expression has no other name)

A subject that two consumers would share (the same alert name in two groups, a per-job record
defined twice) gets ``@<file>`` (the path relative to the folder given, or the file name), then
``#<n>`` in document order if still shared.
"""

from __future__ import annotations

import bisect
import json
import json.decoder
import json.scanner
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from compatcheck.consumers.promql import Need, Node, PromQLError, parse_expression
from compatcheck.errors import InputError
from compatcheck.model import Consumer, Finding
from compatcheck.yamlfile import LOADER, TreeError, check_tree

PARSE_ERROR = "consumers/parse-error"

RULE_SUFFIXES = frozenset({".yml", ".yaml"})
DASHBOARD_SUFFIXES = frozenset({".json"})
TEXT_SUFFIXES = frozenset({".promql", ".txt"})

_TEMPLATE_LABEL = re.compile(r"\$labels\.([A-Za-z_]\w*)|index\s+\$labels\s+\"([A-Za-z_]\w*)\"")
_LABEL_VALUES = re.compile(
    r"^\s*label_values\s*\((?P<expr>.*),\s*(?P<label>[A-Za-z_]\w*)\s*\)\s*$", re.S
)
_LABEL_VALUES_1 = re.compile(r"^\s*label_values\s*\(\s*[A-Za-z_]\w*\s*\)\s*$")
_QUERY_RESULT = re.compile(r"^\s*query_result\s*\((?P<expr>.*)\)\s*$", re.S)
_OTHER_DATASOURCE = re.compile(r"loki|tempo|elastic|influx|graphite|mysql|postgres|jaeger", re.I)
_SKIPPED_VARIABLE_QUERY = re.compile(r"^\s*(metrics|label_names)\s*\(")


@dataclass(frozen=True)
class Expression:
    """One PromQL expression of one consumer (a panel has one per target)."""

    subject: str
    consumer: Consumer
    text: str
    line: int | None
    #: The name a recording rule writes, so that its readers can be judged through it.
    record: str | None = None
    node: Node | None = None
    error: str | None = None
    #: Where in the consumer: ``expr``, ``target A``, ``query``...
    where: str = "expr"


@dataclass(frozen=True)
class ConsumerSet:
    """Everything loaded from ``--consumers``: expressions, and the files that could not be read."""

    expressions: tuple[Expression, ...] = ()
    findings: tuple[Finding, ...] = ()
    consumers: dict[str, Consumer] = field(default_factory=dict)


@dataclass
class _Raw:
    base: str  # subject before de-duplication
    consumer: Consumer
    rel: str
    text: str
    line: int | None
    grafana: bool
    root_needs: frozenset[Need] = frozenset()
    record: str | None = None
    where: str = "expr"


@dataclass
class _Loader:
    raws: list[_Raw] = field(default_factory=list)
    #: rel path → (file, line, reason) of each problem: one finding per file (subject ``file:rel``)
    file_errors: dict[str, list[tuple[str, int | None, str]]] = field(default_factory=dict)

    def parse_error(self, file: str, rel: str, line: int | None, reason: str) -> None:
        self.file_errors.setdefault(rel, []).append((file, line, reason))

    def error_findings(self) -> list[Finding]:
        out: list[Finding] = []
        for rel, errors in self.file_errors.items():
            file, line, reason = errors[0]
            where = f"{file}:{line}" if line else file
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            out.append(
                Finding(
                    PARSE_ERROR,
                    f"file:{rel}",
                    f"`{where}` cannot be read as a consumer: {reason}{more}.",
                    {
                        "file": file,
                        "line": line,
                        "error": reason,
                        "errors": [{"line": n, "error": r} for _, n, r in errors],
                    },
                )
            )
        return out


@dataclass(frozen=True)
class ConsumerFile:
    """One file :func:`load_consumers` reads: ``rel`` names it in subjects; an ``explicit`` file
    (named, not found in a folder) that is not a consumer is a parse error."""

    path: Path
    rel: str
    explicit: bool


def load_consumers(paths: Sequence[str | Path]) -> ConsumerSet:
    """Load rule files, dashboards and expression lists from files and folders (recursively).

    Folders contribute their ``.yml``/``.yaml`` (rules), ``.json`` (dashboards) and
    ``.promql``/``.txt`` (expressions) files, skipping hidden ones; YAML or JSON in a folder that is
    neither a rule file nor a dashboard is ignored. A file named explicitly is read whatever its
    suffix.
    """
    return read_consumer_files(list_consumer_files(paths))


def read_consumer_files(
    files: Sequence[ConsumerFile], read: Callable[[Path], bytes] | None = None
) -> ConsumerSet:
    """Load ``files``; ``read`` supplies their bytes (default: read them from disk now)."""
    loader = _Loader()
    for f in files:
        _load_file(loader, f.path, f.rel, f.explicit, read)
    return _finish(loader)


def list_consumer_files(paths: Sequence[str | Path]) -> list[ConsumerFile]:
    """The files :func:`load_consumers` reads for ``paths``, in order; a missing path is an
    :class:`InputError`."""
    out: list[ConsumerFile] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files = sorted(
                f
                for f in path.rglob("*")
                if f.is_file()
                and f.suffix.lower() in RULE_SUFFIXES | DASHBOARD_SUFFIXES | TEXT_SUFFIXES
                and not any(part.startswith(".") for part in f.relative_to(path).parts)
            )
            out += [ConsumerFile(f, f.relative_to(path).as_posix(), False) for f in files]
        elif path.is_file():
            out.append(ConsumerFile(path, path.name, True))
        elif path.exists():
            raise InputError(f"{p}: not a file or folder")
        else:
            raise InputError(f"{p}: no such file or folder")
    return out


def _load_file(
    loader: _Loader, path: Path, rel: str, explicit: bool, read: Callable[[Path], bytes] | None
) -> None:
    file = str(path)
    try:
        text = (read or Path.read_bytes)(path).decode("utf-8")
    except UnicodeDecodeError:
        loader.parse_error(file, rel, None, "not UTF-8 text")
        return
    except OSError as exc:
        loader.parse_error(file, rel, None, f"cannot read: {exc.strerror}")
        return
    suffix = path.suffix.lower()
    if suffix not in RULE_SUFFIXES | DASHBOARD_SUFFIXES | TEXT_SUFFIXES:
        stripped = text.lstrip()
        if stripped.startswith("{"):
            suffix = ".json"
        elif re.search(r"^\s*(groups|spec)\s*:", text, re.M):
            suffix = ".yaml"
        else:
            suffix = ".promql"
    if suffix in RULE_SUFFIXES:
        found = _load_rules(loader, file, rel, text)
        kind = "a Prometheus rule file or PrometheusRule"
    elif suffix in DASHBOARD_SUFFIXES:
        found = _load_dashboard(loader, file, rel, text)
        kind = "a Grafana dashboard"
    else:
        _load_text(loader, file, rel, text)
        return
    if found is False and explicit:
        loader.parse_error(file, rel, None, f"not {kind}")


# ---------------------------------------------------------------------------------------------
# Rule files
# ---------------------------------------------------------------------------------------------


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _mapping(node: yaml.Node | None) -> dict[str, yaml.Node] | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    return {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}


def _scalar(node: yaml.Node | None) -> str | None:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def _documents(loader: _Loader, file: str, rel: str, text: str) -> Iterator[yaml.Node]:
    """The file's documents as node trees; a document with a duplicate key, or whose aliases
    expand without bound, is a parse error (as Prometheus's own loader says) and is skipped."""
    stream = yaml.compose_all(text, Loader=LOADER)
    while True:
        try:
            doc = next(stream)
            if doc is not None:
                check_tree(doc, aliases=True, max_depth=None)
        except StopIteration:
            return
        except TreeError as exc:
            loader.parse_error(file, rel, exc.line, exc.problem)
            continue
        except RecursionError:
            loader.parse_error(file, rel, None, "invalid YAML: nested too deeply")
            return
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else None
            loader.parse_error(file, rel, line, f"invalid YAML: {exc.problem or exc.context}")
            return
        except yaml.YAMLError as exc:
            loader.parse_error(file, rel, None, f"invalid YAML: {' '.join(str(exc).split())}")
            return
        if doc is not None:
            yield doc


def _load_rules(loader: _Loader, file: str, rel: str, text: str) -> bool | None:
    """Returns False when the file holds no rule groups at all (so it is not a rule file)."""
    any_groups = False
    before = len(loader.file_errors.get(rel, ()))
    for doc in _documents(loader, file, rel, text):
        top = _mapping(doc)
        if top is None:
            continue
        groups = top.get("groups")
        if groups is None and _scalar(top.get("kind")) == "PrometheusRule":
            spec = _mapping(top.get("spec"))
            groups = spec.get("groups") if spec is not None else None
            if groups is None:
                loader.parse_error(file, rel, _line(doc), "PrometheusRule has no `spec.groups`")
                any_groups = True
                continue
        if groups is None:
            continue
        any_groups = True
        if not isinstance(groups, yaml.SequenceNode):
            loader.parse_error(file, rel, _line(groups), "`groups` is not a list")
            continue
        for group in groups.value:
            _load_group(loader, file, rel, group)
    if any_groups or len(loader.file_errors.get(rel, ())) > before:
        return None
    return False


def _load_group(loader: _Loader, file: str, rel: str, group: yaml.Node) -> None:
    g = _mapping(group)
    if g is None:
        loader.parse_error(file, rel, _line(group), "a rule group is not a mapping")
        return
    name = _scalar(g.get("name")) or ""
    rules = g.get("rules")
    if rules is None:
        return
    if not isinstance(rules, yaml.SequenceNode):
        loader.parse_error(file, rel, _line(rules), f"`rules` of group `{name}` is not a list")
        return
    for rule in rules.value:
        r = _mapping(rule)
        if r is None:
            loader.parse_error(file, rel, _line(rule), f"a rule of group `{name}` is not a mapping")
            continue
        alert, record = _scalar(r.get("alert")), _scalar(r.get("record"))
        expr_node = r.get("expr")
        expr = _scalar(expr_node)
        if (alert is None) == (record is None):
            loader.parse_error(
                file, rel, _line(rule), "a rule needs exactly one of `alert` or `record`"
            )
            continue
        if expr_node is None or expr is None or not expr.strip():
            loader.parse_error(file, rel, _line(rule), f"rule `{alert or record}` has no `expr`")
            continue
        kind = "alert" if alert is not None else "record"
        rname = alert if alert is not None else record
        assert rname is not None
        consumer = Consumer(type=kind, name=rname, file=file, line=_line(rule), group=name)
        root_needs: frozenset[Need] = frozenset()
        if alert is not None:
            root_needs = frozenset((label, "template") for label in _template_labels(r))
        loader.raws.append(
            _Raw(
                base=f"{kind}:{rname}",
                consumer=consumer,
                rel=rel,
                text=expr,
                line=_line(expr_node),
                grafana=False,
                root_needs=root_needs,
                record=record,
            )
        )


def _template_labels(rule: dict[str, yaml.Node]) -> set[str]:
    """Labels an alert's annotations and labels print (``{{ $labels.instance }}``)."""
    found: set[str] = set()
    for key in ("annotations", "labels"):
        m = _mapping(rule.get(key))
        for node in (m or {}).values():
            value = _scalar(node)
            if value and "$labels" in value:
                for a, b in _TEMPLATE_LABEL.findall(value):
                    found.add(a or b)
    return found


# ---------------------------------------------------------------------------------------------
# Dashboards
# ---------------------------------------------------------------------------------------------


class _PosDict(dict[str, Any]):
    """A JSON object that remembers where it starts and where each of its values starts."""

    __slots__ = ("pos", "value_pos")

    pos: int
    value_pos: dict[str, int]


def _parse_object(
    s_and_end: tuple[str, int],
    strict: bool,
    scan_once: Any,
    object_hook: Any,
    object_pairs_hook: Any,
    memo: Any = None,
) -> tuple[_PosDict, int]:
    # Trap: the C scanner never calls back into Python, so the decoder below forces the pure
    # Python scanner (py_make_scanner), which calls this for every object with its own scan_once.
    end = s_and_end[1]
    positions: list[int] = []

    def scan(string: str, idx: int) -> Any:
        positions.append(idx)
        return scan_once(string, idx)

    pairs, new_end = json.decoder.JSONObject(s_and_end, strict, scan, None, list, memo)  # type: ignore[attr-defined]
    obj = _PosDict(pairs)
    obj.pos = end - 1
    obj.value_pos = {k: p for (k, _), p in zip(pairs, positions, strict=False)}
    return obj, new_end


class _PositionDecoder(json.JSONDecoder):
    def __init__(self) -> None:
        super().__init__()
        self.parse_object = _parse_object
        self.scan_once = json.scanner.py_make_scanner(self)  # type: ignore[attr-defined]


class _Lines:
    def __init__(self, text: str) -> None:
        self._starts = [i for i, c in enumerate(text) if c == "\n"]

    def line(self, pos: int) -> int:
        return bisect.bisect_left(self._starts, pos) + 1


def _load_dashboard(loader: _Loader, file: str, rel: str, text: str) -> bool | None:
    try:
        root = _PositionDecoder().decode(text)
    except json.JSONDecodeError as exc:
        loader.parse_error(file, rel, exc.lineno, f"invalid JSON: {exc.msg}")
        return None
    except RecursionError:
        loader.parse_error(file, rel, None, "invalid JSON: nested too deeply")
        return None
    if isinstance(root, dict) and isinstance(root.get("dashboard"), dict):
        root = root["dashboard"]  # API export: {"dashboard": {...}, "meta": {...}}
    if not isinstance(root, _PosDict) or not any(
        k in root for k in ("panels", "rows", "templating")
    ):
        return False
    lines = _Lines(text)
    title = root.get("title")
    dash = title if isinstance(title, str) and title.strip() else Path(file).stem
    panels: list[_PosDict] = []
    _collect_panels(root.get("panels"), panels)
    for row in _dicts(root.get("rows")):  # legacy schema: rows[].panels[]
        _collect_panels(row.get("panels"), panels)
    titles = Counter(_panel_title(p) for p in panels)
    for index, panel in enumerate(panels):
        _load_panel(loader, file, rel, dash, panel, index, titles, lines)
    templating = root.get("templating")
    if isinstance(templating, dict):
        for var in _dicts(templating.get("list")):
            _load_variable(loader, file, rel, dash, var, lines)
    return None


def _dicts(value: Any) -> list[_PosDict]:
    return [v for v in value if isinstance(v, _PosDict)] if isinstance(value, list) else []


def _collect_panels(value: Any, out: list[_PosDict]) -> None:
    for panel in _dicts(value):
        if panel.get("type") == "row" or "targets" not in panel:
            # a collapsed row keeps its panels inside; an expanded one has none
            _collect_panels(panel.get("panels"), out)
            if panel.get("type") == "row":
                continue
        out.append(panel)


def _panel_title(panel: _PosDict) -> str:
    title = panel.get("title")
    return title.strip() if isinstance(title, str) else ""


def _is_prometheus(ds: Any) -> bool:
    """Unknown or templated data sources count as Prometheus; Loki, Tempo... do not."""
    if isinstance(ds, dict):
        kind = ds.get("type")
        return not isinstance(kind, str) or "prometheus" in kind or kind in ("datasource", "")
    if isinstance(ds, str):  # legacy: the data source's name; only an obvious other kind is skipped
        return not _OTHER_DATASOURCE.search(ds)
    return True


def _load_panel(
    loader: _Loader,
    file: str,
    rel: str,
    dash: str,
    panel: _PosDict,
    index: int,
    titles: Counter[str],
    lines: _Lines,
) -> None:
    title = _panel_title(panel)
    pid = panel.get("id")
    panel_id: int | str | None = pid if isinstance(pid, int | str) else None
    ref = panel_id if panel_id is not None else index
    name = title if title and titles[title] == 1 else f"{title}#{ref}"
    consumer = Consumer(
        type="panel", name=title or f"#{ref}", file=file, line=lines.line(panel.pos), id=panel_id,
        dashboard=dash,
    )  # fmt: skip
    panel_ds = panel.get("datasource")
    for t_index, target in enumerate(_dicts(panel.get("targets"))):
        expr = target.get("expr")
        if not isinstance(expr, str) or not expr.strip():
            continue
        if not _is_prometheus(target.get("datasource", panel_ds)):
            continue
        ref_id = target.get("refId")
        loader.raws.append(
            _Raw(
                base=f"panel:{dash}/{name}",
                consumer=consumer,
                rel=rel,
                text=expr,
                line=lines.line(target.value_pos["expr"]),
                grafana=True,
                where=f"target {ref_id if isinstance(ref_id, str) else t_index}",
            )
        )


def _load_variable(
    loader: _Loader, file: str, rel: str, dash: str, var: _PosDict, lines: _Lines
) -> None:
    name = var.get("name")
    if not isinstance(name, str) or var.get("type", "query") != "query":
        return
    if not _is_prometheus(var.get("datasource")):
        return
    holder: _PosDict = var
    query = var.get("query")
    if isinstance(query, _PosDict):  # newer Grafana: {"query": "...", "refId": "..."}
        holder, query = query, query.get("query")
    if not isinstance(query, str) or not query.strip():
        return
    root_needs: frozenset[Need] = frozenset()
    if _LABEL_VALUES_1.match(query) or _SKIPPED_VARIABLE_QUERY.match(query):
        return  # label_values(label), metrics(...), label_names(): no selector to judge
    m = _LABEL_VALUES.match(query)
    if m:
        query = m.group("expr")
        root_needs = frozenset({(m.group("label"), "label_values")})
    else:
        m = _QUERY_RESULT.match(query)
        if m:
            query = m.group("expr")
    consumer = Consumer(
        type="variable", name=name, file=file, line=lines.line(var.pos), dashboard=dash
    )
    loader.raws.append(
        _Raw(
            base=f"variable:{dash}/{name}",
            consumer=consumer,
            rel=rel,
            text=query,
            line=lines.line(holder.value_pos["query"]),
            grafana=True,
            root_needs=root_needs,
            where="query",
        )
    )


# ---------------------------------------------------------------------------------------------
# Text files
# ---------------------------------------------------------------------------------------------


def _load_text(loader: _Loader, file: str, rel: str, text: str) -> None:
    for number, raw in enumerate(text.splitlines(), start=1):
        expr = raw.strip()
        if not expr or expr.startswith("#"):
            continue
        consumer = Consumer(type="query", name=f"{rel}:{number}", file=file, line=number)
        loader.raws.append(
            _Raw(
                base=f"query:{rel}:{number}",
                consumer=consumer,
                rel=rel,
                text=expr,
                line=number,
                grafana=True,
            )
        )


# ---------------------------------------------------------------------------------------------
# Subjects and parsing
# ---------------------------------------------------------------------------------------------


def _finish(loader: _Loader) -> ConsumerSet:
    # One consumer may own several raws (a panel's targets): identity is the Consumer object.
    owners: dict[str, list[Consumer]] = {}
    for raw in loader.raws:
        lst = owners.setdefault(raw.base, [])
        if not any(c is raw.consumer for c in lst):
            lst.append(raw.consumer)
    rel_of = {id(r.consumer): r.rel for r in loader.raws}
    subject_of: dict[int, str] = {}
    for base, owned in owners.items():
        if len(owned) == 1:
            subject_of[id(owned[0])] = base
            continue
        qualified = [f"{base}@{rel_of[id(c)]}" for c in owned]
        counts = Counter(qualified)
        seen: Counter[str] = Counter()
        for c, q in zip(owned, qualified, strict=True):
            if counts[q] > 1:
                seen[q] += 1
                q = f"{q}#{seen[q]}"
            subject_of[id(c)] = q

    expressions: list[Expression] = []
    findings = loader.error_findings()
    consumers: dict[str, Consumer] = {}
    errored: set[str] = set()
    for raw in loader.raws:
        subject = subject_of[id(raw.consumer)]
        consumers[subject] = raw.consumer
        expr = Expression(
            subject=subject,
            consumer=raw.consumer,
            text=raw.text,
            line=raw.line,
            record=raw.record,
            where=raw.where,
        )
        try:
            node = parse_expression(raw.text, raw.grafana, raw.root_needs)
        except PromQLError as exc:
            expressions.append(replace(expr, error=str(exc)))
            if subject not in errored:  # one finding per consumer: the subject is its identity
                errored.add(subject)
                findings.append(_expression_error(expr, str(exc)))
            continue
        expressions.append(replace(expr, node=node))
    return ConsumerSet(tuple(expressions), tuple(findings), consumers)


def _expression_error(expr: Expression, reason: str) -> Finding:
    c = expr.consumer
    where = f"{c.file}:{expr.line}" if expr.line else c.file
    return Finding(
        PARSE_ERROR,
        expr.subject,
        f"{c.type} `{c.name}` ({where}) has a PromQL expression that does not parse: {reason}.",
        {"consumer": c.to_json(), "expr": expr.text, "line": expr.line, "error": reason},
        consumers=(c,),
    )
