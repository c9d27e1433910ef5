"""Reader of Prometheus rule files, and of Kubernetes ``PrometheusRule`` objects that hold them.

YAML rule files are read with ``yaml.compose_all`` (nodes, not values), so a rule's line is the
line of its first key (``- alert: X``) and an expression's line is the line of its ``expr`` value.
Multi-document streams and ``PrometheusRule`` objects (``spec.groups``) are read document by
document: a broken document does not hide the ones before it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import yaml

from compatcheck.consumers.collector import Source
from compatcheck.consumers.promql import Need
from compatcheck.model import Consumer
from compatcheck.yamlfile import LOADER, TreeError, check_tree

_TEMPLATE_LABEL = re.compile(r"\$labels\.([A-Za-z_]\w*)|index\s+\$labels\s+\"([A-Za-z_]\w*)\"")


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _mapping(node: yaml.Node | None) -> dict[str, yaml.Node] | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    return {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}


def _scalar(node: yaml.Node | None) -> str | None:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def _documents(source: Source, text: str) -> Iterator[yaml.Node]:
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
            source.parse_error(exc.line, exc.problem)
            continue
        except RecursionError:
            source.parse_error(None, "invalid YAML: nested too deeply")
            return
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else None
            source.parse_error(line, f"invalid YAML: {exc.problem or exc.context}")
            return
        except yaml.YAMLError as exc:
            source.parse_error(None, f"invalid YAML: {' '.join(str(exc).split())}")
            return
        if doc is not None:
            yield doc


def read_rule_file(source: Source, text: str) -> bool:
    """Read the rule groups of every document; False when the file holds no rule groups at all
    and has no problem (so it is not a rule file)."""
    any_groups = False
    before = source.error_count()
    for doc in _documents(source, text):
        top = _mapping(doc)
        if top is None:
            continue
        groups = top.get("groups")
        if groups is None and _scalar(top.get("kind")) == "PrometheusRule":
            spec = _mapping(top.get("spec"))
            groups = spec.get("groups") if spec is not None else None
            if groups is None:
                source.parse_error(_line(doc), "PrometheusRule has no `spec.groups`")
                any_groups = True
                continue
        if groups is None:
            continue
        any_groups = True
        if not isinstance(groups, yaml.SequenceNode):
            source.parse_error(_line(groups), "`groups` is not a list")
            continue
        for group in groups.value:
            _read_group(source, group)
    return any_groups or source.error_count() > before


def _read_group(source: Source, group: yaml.Node) -> None:
    g = _mapping(group)
    if g is None:
        source.parse_error(_line(group), "a rule group is not a mapping")
        return
    name = _scalar(g.get("name")) or ""
    rules = g.get("rules")
    if rules is None:
        return
    if not isinstance(rules, yaml.SequenceNode):
        source.parse_error(_line(rules), f"`rules` of group `{name}` is not a list")
        return
    for rule in rules.value:
        r = _mapping(rule)
        if r is None:
            source.parse_error(_line(rule), f"a rule of group `{name}` is not a mapping")
            continue
        alert, record = _scalar(r.get("alert")), _scalar(r.get("record"))
        expr_node = r.get("expr")
        expr = _scalar(expr_node)
        if (alert is None) == (record is None):
            source.parse_error(_line(rule), "a rule needs exactly one of `alert` or `record`")
            continue
        if expr_node is None or expr is None or not expr.strip():
            source.parse_error(_line(rule), f"rule `{alert or record}` has no `expr`")
            continue
        kind = "alert" if alert is not None else "record"
        rname = alert if alert is not None else record
        assert rname is not None
        consumer = Consumer(type=kind, name=rname, file=source.file, line=_line(rule), group=name)
        root_needs: frozenset[Need] = frozenset()
        if alert is not None:
            root_needs = frozenset((label, "template") for label in _template_labels(r))
        source.add(
            f"{kind}:{rname}",
            consumer,
            expr,
            _line(expr_node),
            grafana=False,
            root_needs=root_needs,
            record=record,
        )


def _template_labels(rule: dict[str, yaml.Node]) -> set[str]:
    """Labels an alert's annotations and labels print (``{{ $labels.instance }}``)."""
    values: list[str] = []
    for key in ("annotations", "labels"):
        m = _mapping(rule.get(key))
        values += [v for v in map(_scalar, (m or {}).values()) if v]
    return template_labels(values)


def template_labels(values: Iterable[str]) -> set[str]:
    """Labels the templates in ``values`` print (``{{ $labels.instance }}``): the alert needs its
    expression's result to carry them."""
    found: set[str] = set()
    for value in values:
        if "$labels" in value:
            for a, b in _TEMPLATE_LABEL.findall(value):
                found.add(a or b)
    return found
