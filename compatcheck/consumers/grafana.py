"""Reader of Grafana dashboards: the current schema, the legacy one (``rows``), API exports.

Every decoded object knows where it and each of its values start in the text
(:func:`~compatcheck.jsondoc.locate_objects`), so a panel's line is the line of its ``{`` and a
target's line is the line of its ``"expr"`` value — exact, whatever the formatting. Decoding
applies the limits of :func:`~compatcheck.jsondoc.parse_json` (nesting depth, digits of a
number); a key given twice keeps its last value, as in Grafana (Go's ``encoding/json`` and
JavaScript's ``JSON.parse`` both keep the last one).

Each panel target and each query variable is one expression; targets and variables of another
data source (Loki, Tempo...) are skipped, unknown or templated data sources count as Prometheus.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from pathlib import Path
from typing import Any

from compatcheck.consumers.collector import Source
from compatcheck.consumers.promql import Need
from compatcheck.jsondoc import JsonError, LocatedDict, parse_json
from compatcheck.model import Consumer

_LABEL_VALUES = re.compile(
    r"^\s*label_values\s*\((?P<expr>.*),\s*(?P<label>[A-Za-z_]\w*)\s*\)\s*$", re.S
)
_LABEL_VALUES_1 = re.compile(r"^\s*label_values\s*\(\s*[A-Za-z_]\w*\s*\)\s*$")
_QUERY_RESULT = re.compile(r"^\s*query_result\s*\((?P<expr>.*)\)\s*$", re.S)
_OTHER_DATASOURCE = re.compile(r"loki|tempo|elastic|influx|graphite|mysql|postgres|jaeger", re.I)
_SKIPPED_VARIABLE_QUERY = re.compile(r"^\s*(metrics|label_names)\s*\(")
_NEWLINE = re.compile("\n")


class _Lines:
    """Line numbers (1-based) of positions in a text."""

    def __init__(self, text: str) -> None:
        self._newlines = [m.start() for m in _NEWLINE.finditer(text)]

    def line(self, pos: int) -> int:
        return bisect.bisect_left(self._newlines, pos) + 1


def read_dashboard(source: Source, text: str) -> bool:
    """Read a dashboard's panels and variables; False when the JSON is no dashboard at all."""
    try:
        root = parse_json(text, located=True)
    except JsonError as err:
        source.parse_error(err.line, f"invalid JSON: {err.problem}")
        return True
    if isinstance(root, dict) and isinstance(root.get("dashboard"), dict):
        root = root["dashboard"]  # API export: {"dashboard": {...}, "meta": {...}}
    if not isinstance(root, LocatedDict) or not any(
        k in root for k in ("panels", "rows", "templating")
    ):
        return False
    lines = _Lines(text)
    title = root.get("title")
    dash = title if isinstance(title, str) and title.strip() else Path(source.file).stem
    panels: list[LocatedDict] = []
    _collect_panels(root.get("panels"), panels)
    for row in _dicts(root.get("rows")):  # legacy schema: rows[].panels[]
        _collect_panels(row.get("panels"), panels)
    titles = Counter(_panel_title(p) for p in panels)
    for index, panel in enumerate(panels):
        _read_panel(source, dash, panel, index, titles, lines)
    templating = root.get("templating")
    if isinstance(templating, dict):
        for var in _dicts(templating.get("list")):
            _read_variable(source, dash, var, lines)
    return True


def _dicts(value: Any) -> list[LocatedDict]:
    return [v for v in value if isinstance(v, LocatedDict)] if isinstance(value, list) else []


def _collect_panels(value: Any, out: list[LocatedDict]) -> None:
    for panel in _dicts(value):
        if panel.get("type") == "row" or "targets" not in panel:
            # a collapsed row keeps its panels inside; an expanded one has none
            _collect_panels(panel.get("panels"), out)
            if panel.get("type") == "row":
                continue
        out.append(panel)


def _panel_title(panel: LocatedDict) -> str:
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


def _read_panel(
    source: Source, dash: str, panel: LocatedDict, index: int, titles: Counter[str], lines: _Lines
) -> None:
    title = _panel_title(panel)
    pid = panel.get("id")
    panel_id: int | str | None = pid if isinstance(pid, int | str) else None
    ref = panel_id if panel_id is not None else index
    name = title if title and titles[title] == 1 else f"{title}#{ref}"
    consumer = Consumer(
        type="panel", name=title or f"#{ref}", file=source.file, line=lines.line(panel.pos),
        id=panel_id, dashboard=dash,
    )  # fmt: skip
    panel_ds = panel.get("datasource")
    for t_index, target in enumerate(_dicts(panel.get("targets"))):
        expr = target.get("expr")
        if not isinstance(expr, str) or not expr.strip():
            continue
        if not _is_prometheus(target.get("datasource", panel_ds)):
            continue
        ref_id = target.get("refId")
        line = lines.line(target.value_pos["expr"])
        where = f"target {ref_id if isinstance(ref_id, str) else t_index}"
        source.add(f"panel:{dash}/{name}", consumer, expr, line, grafana=True, where=where)


def _read_variable(source: Source, dash: str, var: LocatedDict, lines: _Lines) -> None:
    name = var.get("name")
    if not isinstance(name, str) or var.get("type", "query") != "query":
        return
    if not _is_prometheus(var.get("datasource")):
        return
    holder: LocatedDict = var
    query = var.get("query")
    if isinstance(query, LocatedDict):  # newer Grafana: {"query": "...", "refId": "..."}
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
        type="variable", name=name, file=source.file, line=lines.line(var.pos), dashboard=dash
    )
    line = lines.line(holder.value_pos["query"])
    source.add(
        f"variable:{dash}/{name}",
        consumer,
        query,
        line,
        grafana=True,
        root_needs=root_needs,
        where="query",
    )
